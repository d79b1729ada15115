"""Fail closed (issue 15): outputs that are not ours are never replaced, outputs are checked before any
work, OSError is one line, reports belong to the weights they evaluated, cards are bounded, the card
remembers its dataset, NIfTI exports open the right way up, SIGTERM cleans up like Ctrl-C."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_volumes import write_spine
from vu_rows import vu_row

from synthvu_core.cli import main
from synthvu_core.data import build as buildmod
from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.errors import CheckpointError, DataError

ROOT = Path(__file__).resolve().parents[1]
VUS = ("T11/T12", "T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5")


@pytest.fixture()
def cohort(tmp_path):
    folder = tmp_path / "vols"
    for i, codes in enumerate([(20, 21, 22, 23), (21, 22, 23, 24)]):
        write_spine(folder, f"sub-{i:02d}", codes=codes, suffix=".nii")
    return folder


def _build_args(cohort: Path, out: Path, *extra: str) -> list[str]:
    return ["data", "build", "--images", str(cohort), "--out", str(out), "--workers", "1", "--image-glob", "*_img.nii",
            "--label-glob", "*_vert.nii", "--split", "0.5,0.5,0", *extra]


def _one_error_line(capsys, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("synthvu: error: "), err
    for n in names:
        assert n in err, err
    return err


@pytest.fixture()
def no_work(monkeypatch):
    """Fail the test if a build reaches the expensive part (outputs must be checked before it)."""

    def boom(*a, **k):
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr(buildmod, "extract_pairs", boom)
    monkeypatch.setattr(buildmod, "find_pairs", boom)


def tiny_dataset(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = [vu_row(f"p{p}", v) for p in range(4) for v in VUS]
    imgs = rng.integers(0, 256, (len(rows), 1, 16, 16), dtype=np.uint8)
    return VUDataset.from_units(imgs, pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0)).save(folder)


# ---- never delete what is not ours ------------------------------------------------------------


def test_build_refuses_a_folder_that_is_not_a_dataset(cohort, tmp_path, capsys, monkeypatch):
    out = tmp_path / "thesis"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.txt").write_text("years of work")
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    with monkeypatch.context() as m:
        m.setattr(buildmod, "extract_pairs", lambda *a, **k: pytest.fail("work started before the check"))
        assert main(_build_args(cohort, out)) == 2
    _one_error_line(capsys, str(out), "not a VU dataset folder", "--force")
    assert (out / "thesis.txt").read_text() == "years of work"
    assert (out / "sub" / "data.bin").read_bytes() == b"\x00\x01"
    # --force says "yes, replace it"; our own dataset folder is replaced without it
    assert main([*_build_args(cohort, out), "--force"]) == 0
    assert VUDataset.load(out).card["counts"]["units"] > 0 and not (out / "thesis.txt").exists()
    assert main([*_build_args(cohort, out), "--slices", "3"]) == 0
    assert VUDataset.load(out).shape[0] == 3


def test_build_refuses_an_existing_file_before_any_work(cohort, tmp_path, capsys, no_work):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    assert main(_build_args(cohort, out)) == 2
    _one_error_line(capsys, str(out), "is a file")
    assert out.read_text() == "keep me"
    assert main(["data", "build", "--phantom", "2", "--out", str(out)]) == 2
    _one_error_line(capsys, str(out), "is a file")
    assert out.read_text() == "keep me"


def test_phantom_refuses_a_folder_of_other_files(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "sub-0000_img.nii.gz").write_text("not a phantom, but the name would be overwritten")
    assert main(["phantom", "--patients", "1", "--out", str(out), "--workers", "1"]) == 2
    _one_error_line(capsys, str(out), "not a phantom cohort folder")
    assert (out / "sub-0000_img.nii.gz").read_text().startswith("not a phantom")


# ---- outputs checked before work; OSError as one line -----------------------------------------------


def test_unwritable_outputs_fail_before_work_with_one_line(cohort, tmp_path, capsys, monkeypatch, no_work):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad = blocker / "out"  # its parent is a file: nothing can be created there
    assert main(_build_args(cohort, bad)) == 2
    _one_error_line(capsys, str(bad), "cannot write")
    assert main(["phantom", "--patients", "1", "--out", str(bad)]) == 2
    _one_error_line(capsys, str(bad), "cannot write")

    ds = tiny_dataset(tmp_path / "ds")
    assert main(["data", "show", str(ds), "--montage", str(bad / "m.png")]) == 2
    _one_error_line(capsys, "m.png", "cannot write")
    assert main(["data", "show", str(ds), "--montage", str(tmp_path / "m.jpg")]) == 2
    _one_error_line(capsys, "m.jpg", "unknown montage format")
    assert main(["data", "show", str(ds), "--montage", str(tmp_path / "m.png"), "--per-level", "0"]) == 2
    _one_error_line(capsys, "--per-level 0", "at least 1 VU per level")
    assert not (tmp_path / "m.png").exists()

    from synthvu_core.models import training

    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("training started before the check"))
    assert main(["train", "--dataset", str(ds), "--out", str(bad), "--steps", "1", "--quiet"]) == 2
    _one_error_line(capsys, str(bad), "cannot write the generator folder")


def test_permission_denied_is_one_line_naming_the_path(cohort, tmp_path, capsys, monkeypatch, no_work):
    """A read-only folder (as a non-root user sees it): the probe's PermissionError becomes one line."""
    import tempfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(k.get("dir")))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    out = tmp_path / "ro" / "ds"
    assert main(_build_args(cohort, out)) == 2
    _one_error_line(capsys, str(out), "Permission denied")


def test_evaluate_checks_the_report_folder_before_sampling(tmp_path, capsys, monkeypatch):
    from synthvu_core.models import registry

    gen = _tiny_generator(tmp_path / "gen")
    import tempfile

    monkeypatch.setattr(registry, "load_generator", lambda *a, **k: pytest.fail("sampled before the output check"))
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert main(["evaluate", str(gen), "--quiet", "--dataset", str(tmp_path / "nowhere")]) == 2
    _one_error_line(capsys, str(gen / "report"), "Permission denied")


def test_raw_oserror_in_a_command_is_one_line(tmp_path, capsys, monkeypatch):
    def fails(*a, **k):
        raise IsADirectoryError(21, "Is a directory", str(tmp_path / "x"))

    monkeypatch.setattr(VUDataset, "load", fails)
    assert main(["data", "show", str(tmp_path)]) == 2
    _one_error_line(capsys, str(tmp_path / "x"), "Is a directory")


# ---- SIGTERM ----------------------------------------------------------------------------------------


def test_sigterm_during_phantom_build_stops_workers_and_removes_the_temp_folder(tmp_path):
    pytest.importorskip("synthvu_core.data.phantom")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "synthvu_core", "data", "build", "--phantom", "40", "--out", str(tmp_path / "ds"),
           "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp.glob("synthvu-phantom-*/phantom/*_img.nii.gz")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the phantom build never started writing"
        time.sleep(0.1)
    pgrep = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    children = [int(p) for p in pgrep.stdout.split()]
    assert children, "the build runs worker processes"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert list(tmp.iterdir()) == [], "the temporary phantom folder is removed"
    assert not (tmp_path / "ds").exists()
    time.sleep(0.5)
    def running(pid: int) -> bool:  # a zombie waiting for its parent counts as stopped
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    alive = [c for c in children if running(c)]
    assert alive == [], "worker processes stopped with the command"


# ---- card schema with bounds ------------------------------------------------------------------------


def _tiny_generator(folder: Path) -> Path:
    """A real (untrained, tiny) generator folder with weights and a valid card."""
    from fixtures.dashboard_models import fabricate_generator

    fabricate_generator(folder, "0123456789abcdef", folder.name)
    return folder


def test_card_bounds_refuse_huge_numbers_before_building(tmp_path, capsys, monkeypatch):
    from synthvu_core.models import registry

    gen = _tiny_generator(tmp_path / "gen")
    card = json.loads((gen / "card.json").read_text())
    monkeypatch.setattr("synthvu_core.models.acgan.Generator.__init__", lambda *a, **k: pytest.fail("network built"))
    for key, value, words in (("latent_dim", 10**9, "latent_dim 1000000000 lies outside"),
                              ("shape", [9, 100000, 64], "pixels"),
                              ("architecture", {**card["architecture"], "width": 10**7}, "architecture.width"),
                              ("architecture", {**card["architecture"], "lr": float("nan")}, "architecture.lr")):
        (gen / "card.json").write_text(json.dumps({**card, key: value}))
        with pytest.raises(CheckpointError, match=words):
            registry.load_generator(gen)
        assert main(["sample", str(gen), "--n", "2", "--out", str(tmp_path / "s.npz")]) == 2
        _one_error_line(capsys, "card.json", words.split()[0])
    (gen / "card.json").write_text(json.dumps(card))
    assert registry.load_card(gen)["latent_dim"] == card["latent_dim"]


# ---- reports belong to weights; retraining sets the old report aside ---------------------------------


def test_fresh_training_sets_the_old_report_and_montages_aside(tmp_path, capsys):
    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation.report import load_report

    ds = tiny_dataset(tmp_path / "ds")
    out = tmp_path / "gen"
    args = ["train", "--dataset", str(ds), "--out", str(out), "--steps", "2", "--batch-size", "4", "--width", "4",
            "--d-width", "4", "--device", "cpu", "--checkpoint-every", "1", "--quiet"]
    assert main(args) == 0
    (out / "report").mkdir()
    meta = {"generator_sha256": hashlib.sha256((out / "generator.safetensors").read_bytes()).hexdigest(),
            "dataset_fingerprint": "x"}
    doc = {"scalars": {"privacy.worst.auc": 0.99}, "definitions": {}, "meta": meta}
    (out / "report" / "report.json").write_text(json.dumps(doc))
    np.savez(out / "report" / "arrays.npz", a=np.arange(2))
    assert load_report(out) is not None  # the report of these weights is theirs
    old_montages = sorted(p.name for p in (out / "training").glob("montage_*.png"))
    assert old_montages

    assert main([*args, "--seed", "1"]) == 0  # a fresh run into the same folder
    assert not (out / "report").exists()
    aside = [p for p in out.iterdir() if p.name.startswith("superseded-")]
    assert len(aside) == 1 and (aside[0] / "report" / "report.json").is_file()
    assert sorted(p.name for p in (aside[0] / "training").glob("montage_*.png")) == old_montages
    # even a report copied back is refused: it records the old weights' hash
    import shutil

    shutil.copytree(aside[0] / "report", out / "report")
    with pytest.raises(ReportError, match="stale report: computed for other weights"):
        load_report(out)
    capsys.readouterr()
    assert main(["report", "show", str(out)]) == 2
    _one_error_line(capsys, "stale report")
    assert main(["models", "list", "--dir", str(tmp_path)]) == 0
    (row,) = [r for r in capsys.readouterr().out.splitlines() if r.startswith("gen ")]
    assert row.split()[-1] == "stale"
    # the card remembers the dataset as it was given
    assert json.loads((out / "card.json").read_text())["dataset"]["path"] == str(ds)


# ---- the card remembers its dataset ---------------------------------------------------------------


def test_evaluate_without_dataset_uses_the_cards_dataset_or_says_what_to_pass(tmp_path, capsys, monkeypatch):
    ds = VUDataset.load(tiny_dataset(tmp_path / "ds"))
    card = {"dataset": {"fingerprint": ds.fingerprint, "path": str(tmp_path / "ds")}}
    assert buildmod.dataset_of_card(card).fingerprint == ds.fingerprint

    monkeypatch.setattr(buildmod, "demo_dataset", lambda *a, **k: pytest.fail("the 120-patient demo was rebuilt"))
    for dataset, words in (({"fingerprint": ds.fingerprint}, "does not say where"),
                           ({"fingerprint": ds.fingerprint, "path": str(tmp_path / "moved")}, "is not there"),
                           ({"fingerprint": "0123456789abcdef", "path": str(tmp_path / "ds")},
                            "holds another dataset")):
        with pytest.raises(DataError, match=words) as e:
            buildmod.dataset_of_card({"dataset": dataset}, tmp_path / "gen")
        assert "--dataset DATASET_FOLDER" in str(e.value)

    gen = _tiny_generator(tmp_path / "gen")
    card = json.loads((gen / "card.json").read_text())
    card["dataset"] = {**card["dataset"], "recipe": None, "path": None}
    (gen / "card.json").write_text(json.dumps(card))
    assert main(["evaluate", str(gen), "--quiet"]) == 2
    _one_error_line(capsys, f"synthvu_core evaluate {gen} --dataset")


def test_a_phantom_recipe_other_than_the_demo_is_rebuilt_not_the_demo(monkeypatch):
    seen = {}
    monkeypatch.setattr(buildmod, "demo_dataset",
                        lambda fp, recipe, expected_sketch=None: seen.setdefault("recipe", recipe))
    recipe = buildmod.PhantomRecipe("phantom-3-s5-t2", n_patients=3, seed=5).as_dict()
    buildmod.dataset_of_card({"dataset": {"fingerprint": "f", "recipe": recipe}})
    assert seen["recipe"].n_patients == 3 and seen["recipe"].seed == 5 and seen["recipe"] != buildmod.DEMO_PHANTOM


# ---- NIfTI export opens the right way up ------------------------------------------------------------


def test_nifti_export_orientation_units_and_positions(tmp_path):
    nib = pytest.importorskip("nibabel")
    from synthvu_core.models.sampling import Samples, export

    images = -np.ones((2, 3, 8, 6), np.float32)
    images[:, 0, 0, 0] = 1.0  # slice 0 (patient's left), row 0 (superior), column 0 (anterior)
    s = Samples(images, np.array([0, 1]), ["T", "L"])
    card = {"dataset": {"spacing": [2.0, 0.5, 0.5]}}
    path = export(s, tmp_path / "vus.nii.gz", card)
    img = nib.load(path)
    assert nib.aff2axcodes(img.affine) == ("R", "I", "P")  # slices left->right, rows down, columns front->back
    assert img.header.get_xyzt_units() == ("mm", "unknown")
    assert img.header.get_zooms()[:3] == pytest.approx((2.0, 0.5, 0.5))
    x, y, z = img.affine[:3, :3] @ np.zeros(3) + img.affine[:3, 3]
    assert x < 0 and y > 0 and z > 0, "the marked voxel lies left, anterior and superior"
    ras = nib.as_closest_canonical(img.slicer[..., 0])
    data = np.asarray(ras.dataobj)
    i, j, k = np.argwhere(data == data.max())[0]
    assert (i, j, k) == (0, data.shape[1] - 1, data.shape[2] - 1), "RAS order: leftmost, most anterior, most superior"
    assert (tmp_path / "vus.csv").read_text().splitlines() == ["index,position,label", "0,T,0", "1,L,1"]


# ---- damaged files, foreign devices and empty selections: one line naming the file or the option ----------------
def _shipped_copy(tmp_path: Path, name: str = "acgan-phantom") -> Path:
    import shutil

    return Path(shutil.copytree(ROOT / "models" / name, tmp_path / name))


def test_a_truncated_report_archive_is_one_line_in_show_table_and_amend(tmp_path, capsys):
    model = _shipped_copy(tmp_path)
    arrays = model / "report" / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[: arrays.stat().st_size // 2])
    assert main(["report", "show", str(model)]) == 2
    err = _one_error_line(capsys, str(arrays), "cut short or damaged")
    assert "allow_pickle" not in err
    assert main(["report", "table", str(model), str(ROOT / "models" / "acgan-phantom-leaky")]) == 2
    out, err = capsys.readouterr()
    assert "acgan-phantom-leaky" in out and "| acgan-phantom |" not in out  # the readable one still shows
    assert err.count(str(arrays)) == 1 and "cut short or damaged" in err
    assert main(["report", "amend", str(model)]) == 2
    assert capsys.readouterr().err.count(str(arrays)) == 1  # every step fails on it: said once


def test_share_refuses_weights_that_sample_refuses_and_writes_nothing(tmp_path, capsys):
    model = _shipped_copy(tmp_path)
    (model / "generator.safetensors").write_bytes(os.urandom(4096))
    out = tmp_path / "shared"
    assert main(["share", str(model), "--out", str(out)]) == 2
    _one_error_line(capsys, str(model / "generator.safetensors"))
    assert not out.exists()


@pytest.mark.parametrize("device, said", [("foo", "not a device name"), ("mps", "runs on cpu or cuda")])
def test_an_unknown_device_is_one_line_in_sample(tmp_path, capsys, device, said):
    out = tmp_path / "s.npz"
    assert main(["sample", "acgan-phantom", "--n", "2", "--out", str(out), "--device", device]) == 2
    _one_error_line(capsys, repr(device), said)
    assert not out.exists()


@pytest.mark.parametrize("args, said", [(["--patients", "0"], "--patients 0"), (["--levels", ","], "--levels")])
def test_an_empty_clinical_selection_is_refused_and_writes_nothing(tmp_path, capsys, args, said):
    out = tmp_path / "c.npz"
    assert main(["clinical", "sample", "acgan-joint-phantom", *args, "--out", str(out)]) == 2
    _one_error_line(capsys, said, "nothing to sample")
    assert not out.exists()


def test_resume_from_a_foreign_or_damaged_checkpoint_is_one_line_and_keeps_it(tmp_path, capsys):
    ds = tiny_dataset(tmp_path / "ds")
    out = tmp_path / "m"
    tiny = ["--steps", "2", "--checkpoint-every", "1", "--width", "4", "--d-width", "4", "--batch-size", "2",
            "--device", "cpu", "--quiet"]
    assert main(["train", "--dataset", str(ds), "--out", str(out), *tiny]) == 0
    ck = out / "training" / "checkpoint"
    state, meta = ck / "state.safetensors", ck / "state.json"
    assert state.is_file() and meta.is_file()
    kept = meta.read_bytes()
    state.write_bytes((ROOT / "models" / "acgan-phantom" / "generator.safetensors").read_bytes())  # foreign tensors
    resume = ["train", "--dataset", str(ds), "--out", str(out), *tiny[:1], "4", *tiny[2:], "--resume"]
    assert main(resume) == 2
    _one_error_line(capsys, str(ck), "does not fit this run", "without --resume")
    assert meta.read_bytes() == kept
    meta.write_text("[]")
    assert main(resume) == 2
    _one_error_line(capsys, "state.json", "not a checkpoint record")
