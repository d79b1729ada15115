"""The ``sample`` command's process: what it imports, and the collector paused while it loads, frozen after."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from synthvu_core.cli import main
from synthvu_core.models import registry
from synthvu_core.models.sampling import collector_paused_then_frozen, sample_uint8

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "acgan-phantom"
#: Libraries the sample path never needs: the evaluation's, the dashboard's and the other export formats'.
HEAVY = ("pandas", "scipy", "sklearn", "monai", "plotly", "matplotlib", "streamlit", "umap", "nibabel", "PIL", "opacus")


@pytest.fixture
def unfrozen():
    """Whatever a test freezes goes back to the collector's ordinary generations afterwards."""
    yield
    gc.unfreeze()
    gc.enable()


def test_collector_paused_in_the_block_then_frozen_and_resumed(unfrozen):
    gc.enable()
    before = gc.get_freeze_count()
    with collector_paused_then_frozen():
        assert not gc.isenabled()
        kept = [[i] for i in range(1000)]  # tracked objects alive at the freeze
    assert gc.isenabled() and gc.get_freeze_count() >= before + len(kept)

    gc.disable()  # a collector the caller had paused stays paused
    with collector_paused_then_frozen():
        pass
    assert not gc.isenabled()

    gc.enable()
    with pytest.raises(RuntimeError), collector_paused_then_frozen():
        raise RuntimeError("a failed load")
    assert gc.isenabled()


def test_sample_command_loads_the_generator_with_the_collector_paused(tmp_path, monkeypatch, unfrozen):
    from tests.test_sampling import trained

    folder = tmp_path / "region"
    trained(folder, "region")
    seen = []
    real = registry.load_generator

    def load(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(registry, "load_generator", load)
    gc.enable()
    out = tmp_path / "x.npz"
    assert main(["sample", str(folder), "--n", "5", "--seed", "2", "--out", str(out)]) == 0
    assert seen == [False] and gc.isenabled() and gc.get_freeze_count() > 0
    with np.load(out) as f:  # the same VUs as sampled in memory: the collector changes no value
        np.testing.assert_array_equal(f["images"], sample_uint8(real(folder), 5, seed=2).images)


@pytest.mark.skipif(not (SHIPPED / "card.json").is_file(), reason="acgan-phantom is not shipped here")
def test_sample_process_imports_no_heavy_library_and_freezes_torch(tmp_path):
    code = (
        "import gc, sys\n"
        "from synthvu_core.cli import main\n"
        f"rc = main(['sample', {str(SHIPPED)!r}, '--n', '2', '--out', {str(tmp_path / 'x.npz')!r}])\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('RESULT', rc, heavy, 'torch' in sys.modules, gc.isenabled(), gc.get_freeze_count())\n"
    )
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    _, rc, rest = line.split(" ", 2)
    assert rc == "0"
    assert rest.startswith("[] True True"), f"the sample path imported {rest}"
    assert int(rest.rsplit(" ", 1)[1]) > 50_000  # torch's modules and classes, frozen: no collection walks them
