"""Every shipped generator samples byte-identically and every shipped report loads identically to what the code
before the typed layer and the architecture registry gave (digests in fixtures/shipped_digests.json, taken on an
x86-64 CPU with AVX2). Where torch's kernels on another CPU round a generator's samples differently, its entry's
``samples_by_cpu`` holds the digest for that kernel level, or for that level on one CPU vendor (``AVX512
GenuineIntel``: an Intel Xeon rounds the diffusion generators' samples otherwise than an AMD EPYC; tests/kernels.py),
taken with the same code. A generator whose weights or report.json have since been replaced on purpose is skipped by
name; its digests are then retaken with this test's ``digests`` (``python -m tests.test_shipped_identical``)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from synthvu_core.names import CARD_FILE, GENERATOR_FILE, REPORT_DIR, REPORT_FILE
from tests.kernels import pick

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "shipped_digests.json"


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def digests(folder: Path) -> dict[str, str | None]:
    """sha256 of 16 VUs sampled with seed 0 (uint8 images and labels) and of the loaded report's contents."""
    import torch

    from synthvu_core.evaluation.report import load_report
    from synthvu_core.models.registry import load_generator
    from synthvu_core.models.sampling import sample_uint8

    torch.set_num_threads(1)
    s = sample_uint8(load_generator(folder), 16, seed=0)
    r = load_report(folder, check_weights=False)  # as stored (a report of an older evaluation version too)
    doc = None if r is None else json.dumps(
        {"scalars": r.scalars, "meta": r.meta, "controls": {k: [c.scalars, c.meta] for k, c in r.controls.items()},
         "integrity": r.integrity}, sort_keys=True, default=str,
    )
    return {
        "samples": hashlib.sha256(s.images.tobytes() + s.labels.tobytes()).hexdigest(),
        "report": None if doc is None else hashlib.sha256(doc.encode()).hexdigest(),
        "weights_sha256": _sha(folder / GENERATOR_FILE),
        "report_json_sha256": _sha(folder / REPORT_DIR / REPORT_FILE),
    }


EXPECTED = json.loads(FIXTURE.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_generator_samples_and_report_are_unchanged(name):
    folder = ROOT / "models" / name
    want = EXPECTED[name]
    if not folder.is_dir():
        pytest.skip(f"{name}: no longer shipped")
    if _sha(folder / GENERATOR_FILE) != want["weights_sha256"] or \
            _sha(folder / REPORT_DIR / REPORT_FILE) != want["report_json_sha256"]:
        pytest.skip(f"{name}: its weights or report were replaced since the digests were taken")
    got = digests(folder)
    assert got["samples"] == pick(want.get("samples_by_cpu", {}), want["samples"]), f"{name}: samples differ"
    assert got["report"] == want["report"], f"{name}: the loaded report differs"


if __name__ == "__main__":  # retake the digests of every shipped generator
    out = {f.name: digests(f) for f in sorted((ROOT / "models").iterdir()) if (f / CARD_FILE).is_file()}
    FIXTURE.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    sys.exit(0)
