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


# ---- arguments are checked as the command line checks them --------------------------------------------------------

API_VUS = ("T12/L1", "L1/L2", "L4/L5")
TINY = dict(steps=1, batch_size=2, width=4, d_width=4, device="cpu")


def api_dataset():
    """Four patients of three VUs each (32 x 32), split 0.5/0.25/0.25; in memory."""
    import numpy as np
    import pandas as pd
    from vu_rows import vu_row

    from synthvu_core.data.dataset import SplitConfig, VUDataset

    rng = np.random.default_rng(0)
    rows = [vu_row(f"p{p}", v) for p in range(4) for v in API_VUS]
    imgs = rng.integers(0, 256, (len(rows), 1, 32, 32), dtype=np.uint8)
    return VUDataset.from_units(imgs, pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0))


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory) -> Path:
    """A one-step width-4 generator trained through the front door, in a folder of its own (``models/tiny-api``)."""
    import torch

    import synthvu_core as sv

    torch.set_num_threads(1)
    return sv.train(api_dataset(), tmp_path_factory.mktemp("api") / "models" / "tiny-api", **TINY)


def test_train_applies_split_as_the_command_line_does(tmp_path):
    """``split``/``split_seed`` train on another patient-wise split (as ``train --split``), never ignored."""
    import json

    import synthvu_core as sv
    from synthvu_core.errors import DataError, SelectionError

    out = sv.train(api_dataset(), tmp_path / "few", split="0.25,0.5,0.25", split_seed=3, **TINY)
    card = json.loads((out / "card.json").read_text())
    assert card["dataset"]["split"] == {"train": 0.25, "holdout": 0.5, "reference": 0.25, "seed": 3, "stratify": True}
    assert card["dataset"]["n_train"] == len(API_VUS)  # one of four patients
    with pytest.raises(DataError, match="--split"):
        sv.train(api_dataset(), tmp_path / "bad", split="0.5,0.5", **TINY)
    with pytest.raises(SelectionError, match="split"):
        sv.train(api_dataset(), tmp_path / "bad", split=0.5, **TINY)
    with pytest.raises(SelectionError, match="split_seed"):
        sv.train(api_dataset(), tmp_path / "bad", split="0.5,0.25,0.25", split_seed="x", **TINY)
    assert not (tmp_path / "bad").exists()


def test_train_takes_the_folders_lock_as_the_command_line_does(tmp_path):
    """A folder another run is writing (its lock held) is refused before any step, and nothing is written."""
    import synthvu_core as sv
    from synthvu_core.errors import OutputError
    from synthvu_core.storage import folder_lock

    with folder_lock(tmp_path / "busy", "train"):
        with pytest.raises(OutputError, match="another synthvu run is writing this folder"):
            sv.train(api_dataset(), tmp_path / "busy", **TINY)
    assert not (tmp_path / "busy").exists()


def test_load_generator_and_sample_check_their_arguments(tiny_generator):
    import torch

    import synthvu_core as sv
    from synthvu_core.errors import SelectionError

    for device in ("gpu", "tpu:0", 3):
        with pytest.raises(SelectionError, match="device"):
            sv.load_generator(tiny_generator, device)
    if not torch.cuda.is_available():
        with pytest.raises(SelectionError, match="no CUDA device"):
            sv.load_generator(tiny_generator, "cuda")
    with pytest.raises(SelectionError, match="model"):
        sv.load_generator(None)
    g = sv.load_generator(tiny_generator, "auto")
    assert sv.sample(g, 2, seed=1).images.shape == (2, 1, 32, 32)
    assert len(sv.sample(tiny_generator, 1).labels) == 1  # a folder works as well as a loaded generator
    for n in (2.5, "3", True, 0, -1, None):
        with pytest.raises(SelectionError, match=r"sample: n must be an integer of at least 1"):
            sv.sample(g, n)
    for seed in ("x", 1.5, None):
        with pytest.raises(SelectionError, match=r"sample: seed must be an integer"):
            sv.sample(g, 2, seed=seed)
    for generator in (None, 3, {"card": 1}):
        with pytest.raises(SelectionError, match="sample: generator must be"):
            sv.sample(generator, 2)


def test_evaluate_reads_registered_names_and_checks_n_synthetic_up_front(tiny_generator, monkeypatch):
    import synthvu_core as sv
    from synthvu_core.errors import SelectionError
    from synthvu_core.evaluation import report

    calls = []
    monkeypatch.setattr(report, "evaluate_generator", lambda model, dataset, **kw: calls.append((model, kw)) or "done")
    monkeypatch.setenv("SYNTHVU_MODELS", str(tiny_generator.parent))
    assert sv.evaluate("tiny-api", seed=2) == "done"  # a registered name, as `evaluate tiny-api`
    assert Path(calls[0][0]) == tiny_generator
    assert (calls[0][1]["n_synthetic"], calls[0][1]["seed"]) == (5000, 2)
    for n in (0, -3, "x", 2.5, True):
        with pytest.raises(SelectionError, match="n_synthetic must be an integer of at least 1"):
            sv.evaluate("tiny-api", n_synthetic=n)
    with pytest.raises(SelectionError, match="seed"):
        sv.evaluate("tiny-api", seed="x")
    assert len(calls) == 1  # every refusal before any work


def volume_generator_copy(folder: Path) -> Path:
    """The shipped sub-volume generator's card and report (no weights) in ``folder``."""
    import shutil

    shipped = ROOT / "models" / "diffusion3d-phantom"
    (folder / "report").mkdir(parents=True)
    shutil.copy(shipped / "card.json", folder / "card.json")
    shutil.copy(shipped / "report" / "volume_report.json", folder / "report" / "volume_report.json")
    return folder


def test_evaluate_routes_a_sub_volume_generator_as_the_command_line_does(tmp_path, monkeypatch):
    import synthvu_core as sv
    from synthvu_core.errors import SelectionError
    from synthvu_core.evaluation import report, volume

    folder = volume_generator_copy(tmp_path / "vol")
    calls = []

    def not_for_volumes(*args, **kw):
        raise AssertionError("a sub-volume generator evaluated as a VU generator")

    monkeypatch.setattr(report, "evaluate_generator", not_for_volumes)
    monkeypatch.setattr(volume, "evaluate_volume_generator",
                        lambda folder, **kw: calls.append((folder, kw)) or {"scalars": {}})
    assert sv.evaluate(folder, seed=1) == {"scalars": {}}
    assert calls == [(folder, {"dataset": None, "n_synthetic": None, "seed": 1})]  # n: the train split's, as the CLI
    sv.evaluate(folder, tmp_path / "ds", n_synthetic=7)
    assert calls[1][1] == {"dataset": tmp_path / "ds", "n_synthetic": 7, "seed": 0}
    with pytest.raises(SelectionError, match="sub-volume generator; controls"):
        sv.evaluate(folder, controls=True)
    assert len(calls) == 2


def test_load_report_of_a_sub_volume_generator_is_its_volume_report(tmp_path):
    import json

    import synthvu_core as sv
    from synthvu_core.errors import ReportError

    shipped = sv.load_report("diffusion3d-phantom")  # a registered name
    assert isinstance(shipped, dict) and shipped["model"] == "diffusion3d-phantom" and "scalars" in shipped
    folder = volume_generator_copy(tmp_path / "vol")
    assert sv.load_report(folder) == shipped
    saved = json.loads((folder / "report" / "volume_report.json").read_text())
    (folder / "report" / "volume_report.json").write_text(json.dumps({**saved, "model": "another"}))
    with pytest.raises(ReportError, match="another generator"):  # checked as `report show` checks it
        sv.load_report(folder)
    assert isinstance(sv.load_report("acgan-phantom"), sv.Report)


@pytest.fixture
def recorded_builds(monkeypatch):
    """``data.build``'s two builds replaced by recorders of what they are given (with the builds' signatures)."""
    from functools import wraps

    from synthvu_core.data import build

    calls = []
    for name in ("build_phantom_dataset", "build_dataset"):
        record = wraps(getattr(build, name))(lambda source, out, **kw: calls.append((source, out, kw)))
        monkeypatch.setattr(build, name, record)
    return calls


def test_build_dataset_routes_options_as_data_build_does(recorded_builds, tmp_path):
    import synthvu_core as sv
    from synthvu_core.data.dataset import SplitConfig

    sv.build_dataset(phantom=3, out=tmp_path / "ph", seed=4, contrast="T1", workers=1, force=True,
                     clinical="table.csv", split="0.5,0.25,0.25", split_seed=2)
    recipe, out, kw = recorded_builds[0]
    assert (recipe.n_patients, recipe.seed, recipe.contrast, out) == (3, 4, "T1", tmp_path / "ph")
    assert recipe.split == SplitConfig(0.5, 0.25, 0.25, seed=2, stratify=True)
    assert kw == {"progress": False, "workers": 1, "force": True, "clinical": "table.csv"}
    sv.build_dataset(["a", "b"], tmp_path / "ds", split="0.6,0.2,0.2", stratify=False, workers=2)
    images, out, kw = recorded_builds[1]
    assert images == ["a", "b"] and kw["split"] == SplitConfig(0.6, 0.2, 0.2, seed=0, stratify=False)
    assert kw["workers"] == 2
    sv.build_dataset("a", split_seed=5)  # --split-seed alone: the default ratios under another seed
    assert recorded_builds[2][2]["split"] == SplitConfig(seed=5)
    own = SplitConfig(0.4, 0.3, 0.3, seed=9)
    sv.build_dataset(phantom=2, split=own)
    assert recorded_builds[3][0].split == own


def test_build_dataset_refuses_bad_arguments_in_one_line(recorded_builds):
    import synthvu_core as sv
    from synthvu_core.data.dataset import SplitConfig
    from synthvu_core.errors import DataError, SelectionError

    bad = [
        (dict(phantom="x"), SelectionError, "phantom"), (dict(phantom=0), SelectionError, "phantom"),
        (dict(phantom=True), SelectionError, "phantom"), (dict(phantom=2.5), SelectionError, "phantom"),
        (dict(images=123), SelectionError, "images"), (dict(images=[]), SelectionError, "images"),
        (dict(images=["a", 3]), SelectionError, "images"), (dict(phantom=2, seed="x"), SelectionError, "seed"),
        (dict(phantom=2, split="0.5,0.5"), DataError, "--split"), (dict(phantom=2, split=0.6), SelectionError, "split"),
        (dict(phantom=2, split_seed="x"), SelectionError, "split_seed"),
        (dict(phantom=2, stratify="no"), SelectionError, "stratify"),
        (dict(phantom=2, split=SplitConfig(), split_seed=1), SelectionError, "split_seed"),
        (dict(phantom=2, mapping="1=L1"), SelectionError, "'mapping' is not an option"),
        (dict(images="a", contrast="T1"), SelectionError, "'contrast' is not an option"),
        (dict(images="a", seed=1), SelectionError, "seed"),
    ]
    for kwargs, error, match in bad:
        with pytest.raises(error, match=match):
            sv.build_dataset(**kwargs)
    assert recorded_builds == []  # every refusal before any work
