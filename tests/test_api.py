"""The README's Python API example runs as written (8 phantom patients, 5 steps), from the front door
``import synthvu_core as sv``. Only the evaluation's default settings are shrunk here (a small encoder, one
classifier seed, few permutations and bootstrap draws) so that the example takes seconds; the calls are the
README's."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_importing_the_front_door_loads_no_torch():
    code = "import sys, synthvu_core as sv; sv.Report; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_front_door_names_the_api():
    import synthvu_core as sv
    from synthvu_core import api

    assert set(sv.API) == set(api.__all__)
    assert all(callable(getattr(sv, name)) for name in sv.API)
    with pytest.raises(AttributeError):
        sv.not_a_name  # noqa: B018


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    import torch

    from synthvu_core.evaluation import report
    from synthvu_core.evaluation.encoder import EncoderConfig
    from synthvu_core.evaluation.privacy import PrivacyConfig

    torch.set_num_threads(1)
    small = report.EvaluationConfig(
        encoder=EncoderConfig(epochs=1, width=8, embed_dim=16, min_steps=10), privacy=PrivacyConfig(n_boot=50),
        cache=False, n_perm=100, utility_seeds=(0,), overlay_synthetic=100,
    )
    monkeypatch.setattr(report, "EvaluationConfig", lambda scheme="region": replace(small, scheme=scheme))
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "(16, 9, 64, 64)"
    assert out[1] == "['released_discriminator', 'released_samples']"
    assert (tmp_path / "my-model" / "report" / "report.json").is_file()
