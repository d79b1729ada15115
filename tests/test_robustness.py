"""Robustness: nothing from a card or report is a path, forged reports are refused, non-finite weights and
outputs are refused, bad generator folders break nothing else, outputs are locked, inputs are sized before
allocation, full disks are named, shared reports keep their verdicts, stray label voxels are ignored."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from synthvu_core.cli import main
from synthvu_core.errors import CheckpointError, DataError, ReportError

ROOT = Path(__file__).resolve().parents[1]
LEAKY = ROOT / "models" / "acgan-phantom-leaky"


def _one_error_line(capsys, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("synthvu: error: "), err
    for n in names:
        assert n in err, err
    return err


def _tiny_generator(folder: Path) -> Path:
    from fixtures.dashboard_models import fabricate_generator

    fabricate_generator(folder, "0123456789abcdef", folder.name)
    return folder


def _edit_card(folder: Path, **changes) -> dict:
    card = json.loads((folder / "card.json").read_text())
    card.update(changes)
    (folder / "card.json").write_text(json.dumps(card))
    return card


# ---- a card's recipe name is never a path ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_a_recipe_name_that_is_a_path_deletes_nothing(tmp_path, capsys, monkeypatch, how):
    from synthvu_core.data import build as buildmod

    monkeypatch.setenv("SYNTHVU_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "datasets").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("years of work")
    name = str(victim) if how == "absolute" else "../../victim"
    gen = _tiny_generator(tmp_path / "gen")
    card = json.loads((gen / "card.json").read_text())
    recipe = {**buildmod.PhantomRecipe("x", n_patients=1).as_dict(), "name": name}
    _edit_card(gen, dataset={**card["dataset"], "recipe": recipe})
    monkeypatch.setattr("synthvu_core.data.phantom.write_cohort", lambda *a, **k: pytest.fail("a phantom was built"))
    assert main(["evaluate", str(gen), "--quiet"]) == 2
    _one_error_line(capsys, "card.json", "recipe", "not a plain name")
    assert (victim / "thesis.txt").read_text() == "years of work"
    with pytest.raises(DataError, match="not a plain name"):  # the library refuses it too, card or not
        buildmod.demo_dataset(recipe=buildmod.PhantomRecipe(name, n_patients=1))
    with pytest.raises(DataError, match="not a plain name"):
        buildmod.dataset_of_card({"dataset": {"fingerprint": "f", "recipe": recipe}})
    assert (victim / "thesis.txt").is_file()


def test_a_control_name_in_a_report_is_never_a_path(tmp_path):
    from synthvu_core.evaluation.report import load_report

    rep = tmp_path / "rep"
    shutil.copytree(LEAKY / "report", rep)
    doc = json.loads((rep / "report.json").read_text())
    doc["controls"] = ["../../../elsewhere"]
    (rep / "report.json").write_text(json.dumps(doc))
    with pytest.raises(ReportError, match="control '../../../elsewhere' is not a plain name"):
        load_report(rep)


# ---- reports: digest, re-derived verdicts, possible values ----------------------------------------------


@pytest.fixture()
def leaky_copy(tmp_path) -> Path:
    """The shipped leaky generator (weights, card, report) without its discriminator."""
    dst = tmp_path / "leaky"
    shutil.copytree(LEAKY, dst, ignore=shutil.ignore_patterns("discriminator.safetensors", "training"))
    return dst


def _edit_report(folder: Path, edit) -> None:
    path = folder / "report" / "report.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_a_report_edited_to_say_ok_beside_a_leaking_auc_is_refused(leaky_copy, capsys):
    from synthvu_core.evaluation.report import load_report

    assert load_report(leaky_copy).meta["verdicts"]["released_samples"]["level"] == "leak"
    def edit(d: dict) -> None:  # an editor who also drops the digest: the re-derived verdict must still refuse
        d["meta"]["verdicts"]["released_samples"].update(level="ok")
        d["meta"].pop("content_sha256", None)

    _edit_report(leaky_copy, edit)
    assert main(["report", "show", str(leaky_copy)]) == 2
    err = _one_error_line(capsys, "report.json", "released_samples", "'ok'", "'leak'")
    assert "[ok]" not in capsys.readouterr().out and "edited" in err


def test_an_edited_auc_is_refused_by_the_verdict_it_quotes(leaky_copy):
    from synthvu_core.evaluation.report import load_report

    def edit(d: dict) -> None:  # the digest dropped too: the verdict that quotes the AUC must refuse it
        d["scalars"].update({"privacy.pairwise.pixel.auc": 0.55})
        d["meta"].pop("content_sha256", None)

    _edit_report(leaky_copy, edit)
    with pytest.raises(ReportError, match="privacy.pairwise.pixel.auc"):
        load_report(leaky_copy)


def test_a_signed_report_refuses_any_edit_of_its_scalars_or_verdicts(tmp_path):
    from synthvu_core.evaluation.integrity import SIGNED
    from synthvu_core.evaluation.report import load_report, save_report

    report = load_report(LEAKY)
    report.arrays  # noqa: B018 - read before saving a copy
    save_report(report, tmp_path / "report")
    again = load_report(tmp_path / "report")
    assert again.integrity.startswith(SIGNED) and "re-derived" in again.integrity
    assert again.scalars == report.scalars
    for edit in (lambda d: d["scalars"].update({"fidelity.precision": 0.5}),
                 lambda d: d["meta"]["verdicts"]["released_samples"].update(text="Safe to share.")):
        path = tmp_path / "report" / "report.json"
        keep = path.read_text()
        doc = json.loads(keep)
        edit(doc)
        path.write_text(json.dumps(doc))
        with pytest.raises(ReportError, match="does not match its digest"):
            load_report(tmp_path / "report")
        path.write_text(keep)


def test_shipped_reports_load_as_unsigned_older_reports_with_their_verdicts_re_derived(capsys):
    from synthvu_core.evaluation.integrity import UNSIGNED
    from synthvu_core.evaluation.report import load_report

    report = load_report(LEAKY)
    assert report.integrity.startswith(("signed", UNSIGNED)) and "re-derived" in report.integrity
    assert main(["report", "show", str(LEAKY)]) == 0
    assert report.integrity in capsys.readouterr().out


@pytest.mark.parametrize(("key", "value", "words"), [
    ("utility.tstr.balanced_accuracy", -3.0, "impossible"),
    ("utility.tstr.balanced_accuracy", 1.7, "impossible"),
    ("privacy.domias.embedding.auc", 1.9, "impossible"),
    ("fidelity.precision", "high", "not a number"),
    ("fidelity.density", True, "not a number"),
])
def test_impossible_scalars_are_refused_naming_the_file_and_key(leaky_copy, capsys, key, value, words):
    _edit_report(leaky_copy, lambda d: d["scalars"].update({key: value}))
    assert main(["report", "show", str(leaky_copy)]) == 2
    _one_error_line(capsys, "report.json", key, words)


# ---- non-finite weights and outputs; card bounds of every architecture ----------------------------------


def _poison(folder: Path, value: float = float("nan")) -> str:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "generator.safetensors"))
    key = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = value
    save_file(tensors, str(folder / "generator.safetensors"))
    return key


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_in_one_line(tmp_path, capsys, value):
    gen = _tiny_generator(tmp_path / "gen")
    key = _poison(gen, value)
    out = tmp_path / "s.npz"
    assert main(["sample", str(gen), "--n", "4", "--out", str(out)]) == 2
    _one_error_line(capsys, "generator.safetensors", key, "non-finite")
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".s.npz")] == []


def test_non_finite_outputs_are_refused_and_nothing_is_written(tmp_path):
    import torch

    from synthvu_core.models.registry import load_generator
    from synthvu_core.models.sampling import sample, sample_to_file

    gen = load_generator(_tiny_generator(tmp_path / "gen"))
    gen.forward = lambda z, y: torch.full((len(z), *gen.config.shape), float("nan"))
    out = tmp_path / "s.npz"
    with pytest.raises(CheckpointError, match="non-finite values"):
        sample_to_file(gen, 4, out)
    with pytest.raises(CheckpointError, match="gen: the generator produced non-finite"):
        sample(gen, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen"]


def test_diffusion_sizes_and_infinite_priors_are_bounded(tmp_path, capsys, monkeypatch):
    from synthvu_core.models import registry

    gen = _tiny_generator(tmp_path / "gen")
    card = json.loads((gen / "card.json").read_text())
    diffusion = json.loads((ROOT / "models" / "diffusion-phantom" / "card.json").read_text())["architecture"]
    monkeypatch.setattr("synthvu_core.models.diffusion.DiffusionGenerator.__init__",
                        lambda *a, **k: pytest.fail("a network was built"))
    for changes, words in (
        ({"architecture": {**diffusion, "unet_channels": [131072, 131072]}}, "architecture.unet_channels"),
        ({"architecture": {**diffusion, "ae_channels": [8, 16, 32, 64, 128, 256, 512, 1024]}},
         "architecture.ae_channels"),
        ({"architecture": {**diffusion, "latent_channels": 100000}}, "architecture.latent_channels"),
        ({"architecture": {**diffusion, "unet_res_blocks": 10**6}}, "architecture.unet_res_blocks"),
        ({"architecture": {**diffusion, "latent_scale": float("inf")}}, "architecture.latent_scale"),
        ({"class_prior": [float("inf"), 1.0, 1.0]}, "class_prior"),
    ):
        (gen / "card.json").write_text(json.dumps({**card, **changes}))  # json writes Infinity, as a hand edit may
        with pytest.raises(CheckpointError, match=words):
            registry.load_card(gen)
        assert main(["sample", str(gen), "--n", "2", "--out", str(tmp_path / "s.npz")]) == 2
        _one_error_line(capsys, "card.json", words)
    registry.check_card(json.loads((ROOT / "models" / "diffusion-phantom" / "card.json").read_text()))


# ---- input volumes: size from the header, constant images, stray label voxels ------------------------------------


def test_a_huge_sparse_nifti_is_refused_from_its_header(tmp_path, capsys):
    import nibabel as nib

    from synthvu_core.data.nifti import load_pair

    paths = []
    for kind, dtype in (("img", np.float32), ("vert", np.int16)):
        hdr = nib.Nifti1Header()
        hdr.set_data_shape((1024, 1024, 512))
        hdr.set_data_dtype(dtype)
        hdr.set_qform(np.eye(4), 1)
        hdr.set_sform(np.eye(4), 1)
        path = tmp_path / "vols" / f"sub-01_{kind}.nii"
        path.parent.mkdir(exist_ok=True)
        with open(path, "wb") as f:
            f.write(hdr.binaryblock + b"\0" * 4)
            f.truncate(352 + 1024 * 1024 * 512 * np.dtype(dtype).itemsize)  # sparse: nothing on disk
        paths.append(path)
    with pytest.raises(DataError, match=r"1024x1024x512 voxels would need about 8\.0 GiB"):
        load_pair(*paths)
    args = ["data", "build", "--images", str(tmp_path / "vols"), "--out", str(tmp_path / "ds"), "--workers", "1",
            "--image-glob", "*_img.nii", "--label-glob", "*_vert.nii", "--split", "1,0,0"]
    assert main(args) == 2
    _one_error_line(capsys, "sub-01_img.nii", "GiB")


def test_a_constant_image_is_one_clear_error(tmp_path):
    from synthetic_volumes import spine_arrays, write_pair

    from synthvu_core.data.nifti import load_pair
    from synthvu_core.data.units import extract_units

    img, lab, _ = spine_arrays()
    volume = load_pair(*write_pair(tmp_path, "sub-01", np.full_like(img, 7.0), lab))
    with np.errstate(all="raise"), pytest.raises(DataError, match="sub-01_img.nii.gz: image is constant"):
        extract_units(volume)


def test_a_stray_label_voxel_moves_no_vu_and_makes_none(tmp_path):
    from synthetic_volumes import spine_arrays, write_pair

    from synthvu_core.data.nifti import load_pair
    from synthvu_core.data.units import extract_units

    img, lab, _ = spine_arrays()
    clean = load_pair(*write_pair(tmp_path / "clean", "sub-01", img, lab))
    stray = lab.copy()
    stray[1, 1, 1] = 22  # a speck of L3 far from the L3 body
    stray[34, 42, 94] = 19  # a lone "T12" voxel above L1
    dirty = load_pair(*write_pair(tmp_path / "dirty", "sub-01", img, stray))
    _, rows_clean = extract_units(clean)
    with pytest.warns(UserWarning, match=r"label T12 holds only 1 connected voxel"):
        images, rows = extract_units(dirty)
    assert [r["level"] for r in rows] == [r["level"] for r in rows_clean], "no VU made from a stray voxel"
    for a, b in zip(rows, rows_clean, strict=True):
        moved = np.linalg.norm([a[f"center_world_{k}"] - b[f"center_world_{k}"] for k in "xyz"])
        assert moved < 1e-3, f"{a['level']} moved {moved:.3f} mm"


# ---- a full disk names the path and the bytes; no temporary file is left ----------------------------------------


@pytest.fixture()
def full_disk(tmp_path, monkeypatch):
    """Every file opened for writing under ``tmp_path / "out"`` takes 100 kB, then raises ENOSPC."""
    import builtins
    import errno
    import io
    import zipfile

    real_open = io.open
    out = tmp_path / "out"
    out.mkdir()

    class Full:
        def __init__(self, f):
            self._f, self._left = f, 100_000

        def write(self, b):
            n = len(b.encode()) if isinstance(b, str) else memoryview(b).nbytes
            if n > self._left:
                raise OSError(errno.ENOSPC, "No space left on device")
            self._left -= n
            return self._f.write(b)

        def __getattr__(self, k):
            return getattr(self._f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return self._f.__exit__(*a)

    def fake_open(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        return Full(f) if ("w" in mode or "a" in mode) and str(file).startswith(str(out)) else f

    from nibabel.openers import ImageOpener, Opener

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(zipfile.io, "open", fake_open)
    for opener in (Opener, ImageOpener):  # nibabel keeps its own reference to open()
        monkeypatch.setitem(opener.compress_ext_map, None, (fake_open, opener.compress_ext_map[None][1]))
    return out


@pytest.mark.parametrize("name", ["s.npz", "s.nii.gz", "s.nii", "s.png"])
def test_sample_on_a_full_disk_names_the_path_and_bytes_and_leaves_nothing(tmp_path, capsys, full_disk, name):
    gen = _tiny_generator(tmp_path / "gen")
    assert main(["sample", str(gen), "--n", "1500", "--out", str(full_disk / name)]) == 2
    err = _one_error_line(capsys, str(full_disk / name), "the disk is full", "bytes")
    assert "needs about 1,1" in err and "are free there" in err, err
    assert sorted(p.name for p in full_disk.iterdir()) == [], "no temporary file is left"


def test_any_atomic_write_on_a_full_disk_names_the_path(full_disk):
    from synthvu_core.errors import DiskFullError
    from synthvu_core.storage import write_json

    with pytest.raises(DiskFullError, match=r"big\.json: the disk is full .* more than the [\d,]+ bytes written"):
        write_json(full_disk / "big.json", {"x": "y" * 300_000})
    assert list(full_disk.iterdir()) == []


def test_share_on_a_full_disk_names_the_output_not_the_shipped_report(tmp_path, capsys, monkeypatch):
    """The disk fills while the public report arrays are copied (the weights and cards fitted): the output is
    named, not the shipped report it was reading."""
    import errno
    import zipfile

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", full)
    out = tmp_path / "shared"
    assert main(["share", "acgan-phantom", "--out", str(out)]) == 2
    err = _one_error_line(capsys, str(out), "the disk is full")
    assert "unreadable" not in err and "models/acgan-phantom" not in err
    assert list(tmp_path.iterdir()) == []


def test_writers_that_lose_the_errno_on_a_full_disk_are_still_named(tmp_path, monkeypatch):
    """safetensors raises its own error with the system's words; numpy a bare OSError: both are a full disk where
    the disk has no room, and the path is named; any other failure is not taken for one."""
    import shutil
    from collections import namedtuple

    from synthvu_core.errors import DiskFullError
    from synthvu_core.storage import atomic_path

    with pytest.raises(DiskFullError, match=r"w\.safetensors: the disk is full"):
        with atomic_path(tmp_path / "w.safetensors"):
            raise RuntimeError('Error while serializing: IoError(Os { code: 28, message: "No space left on device" })')
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(DiskFullError, match=r"images\.npy: the disk is full"):
        with atomic_path(tmp_path / "images.npy"):
            raise OSError("Failed to write")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 0, 10**9))
    with pytest.raises(OSError, match="Failed to write"):
        with atomic_path(tmp_path / "images.npy"):
            raise OSError("Failed to write")
    assert list(tmp_path.iterdir()) == []


def test_an_atomic_file_write_never_replaces_a_folder(tmp_path):
    """Any writer's file output onto an existing folder is refused after the write, and the folder kept whole."""
    from synthvu_core.errors import OutputError
    from synthvu_core.storage import atomic_path

    (tmp_path / "out.npz").mkdir()
    (tmp_path / "out.npz" / "keep.txt").write_text("kept")
    with pytest.raises(OutputError, match=r"out\.npz: is a folder, not a file"):
        with atomic_path(tmp_path / "out.npz") as tmp:
            tmp.write_bytes(b"new")
    assert (tmp_path / "out.npz" / "keep.txt").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]


# ---- one writer per output folder --------------------------------------------------------------------------------


def _tiny_dataset(folder: Path) -> Path:
    from test_fail_closed import tiny_dataset

    return tiny_dataset(folder)


def test_a_second_train_into_a_locked_folder_is_refused(tmp_path, capsys):
    from synthvu_core.storage import folder_lock

    ds = _tiny_dataset(tmp_path / "ds")
    out = tmp_path / "gen"
    args = ["train", "--dataset", str(ds), "--out", str(out), "--steps", "1", "--batch-size", "4", "--width", "4",
            "--d-width", "4", "--device", "cpu", "--quiet"]
    with folder_lock(out, "train"):  # a run in progress (another process holds the same kernel lock)
        assert main(args) == 2
        _one_error_line(capsys, str(out), "another synthvu run is writing this folder", f"pid {os.getpid()}, train")
        assert not out.exists(), "the second run changed nothing"
    capsys.readouterr()
    (tmp_path / ".gen.lock").write_text("pid 999999, train, since yesterday\n")  # left by a killed run: stale
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out and (out / "card.json").is_file()
    assert not (tmp_path / ".gen.lock").exists(), "the lock file goes with its run"


@pytest.mark.slow
def test_two_trains_into_one_folder_at_once_one_wins(tmp_path):
    import subprocess
    import sys

    ds = _tiny_dataset(tmp_path / "ds")
    out = tmp_path / "gen"
    cmd = [sys.executable, "-m", "synthvu_core", "train", "--dataset", str(ds), "--out", str(out), "--steps", "40",
           "--batch-size", "4", "--width", "4", "--d-width", "4", "--device", "cpu", "--quiet"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    wrote = [r for r in results if r[0] == 0 and "wrote" in r[1]]
    refused = [r for r in results if r[0] == 2 and "another synthvu run is writing this folder" in r[2]]
    assert len(wrote) == 1 and len(refused) == 1, results


def test_evaluate_takes_the_same_lock(tmp_path):
    from synthvu_core.errors import OutputError
    from synthvu_core.evaluation.report import evaluate_generator
    from synthvu_core.storage import folder_lock

    gen = _tiny_generator(tmp_path / "gen")
    with folder_lock(gen, "train"), pytest.raises(OutputError, match="another synthvu run is writing this folder"):  # noqa: E501
        evaluate_generator(gen, n_synthetic=4, progress=False)


# ---- share keeps the verdicts ------------------------------------------------------------------------------------


def test_a_shared_leaky_generator_still_says_it_leaks(tmp_path):
    from dashboard.summary import verdict, view_of
    from synthvu_core.evaluation.report import load_report, save_report
    from synthvu_core.share import share

    src = tmp_path / "leaky"
    shutil.copytree(LEAKY, src, ignore=shutil.ignore_patterns("discriminator.safetensors"))
    save_report(load_report(src), src / "report")  # signed, as a fresh evaluation writes it
    out = share(src, tmp_path / "shared")
    shared = load_report(out)
    assert shared.integrity.startswith("signed") and "re-derived" in shared.integrity
    v = verdict(view_of(shared))
    assert v.level == "leak" and v.text.startswith("Leaks") and "Do not share" in v.text, v
    assert "re-run" not in v.text
    readme = (out / "README.md").read_text()
    assert "Leaks its training patients" in readme and "Do not share these samples" in readme
