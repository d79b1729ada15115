"""CLI: data build / data show / phantom, one-line errors with exit status 2, atomic builds."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from synthetic_volumes import write_spine

from synthvu_core.cli import main
from synthvu_core.data import build as buildmod
from synthvu_core.data import dataset as dsmod
from synthvu_core.data.dataset import VUDataset


@pytest.fixture()
def cohort(tmp_path):
    folder = tmp_path / "vols"
    for i, codes in enumerate([(20, 21, 22, 23, 24), (21, 22, 23), (19, 20, 21), (20, 21, 22, 23, 24)]):
        write_spine(folder, f"sub-{i:02d}", codes=codes, suffix=".nii")
    return folder


def _one_error_line(capsys, *names):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("synthvu: error: ")
    for n in names:
        assert n in err
    return err


def test_build_and_show(cohort, tmp_path, capsys):
    out = tmp_path / "ds"
    args = [
        "data",
        "build",
        "--images",
        str(cohort),
        "--out",
        str(out),
        "--workers",
        "1",
        "--image-glob",
        "*_img.nii",
        "--label-glob",
        "*_vert.nii",
        "--split",
        "0.5,0.25,0.25",
        "--split-seed",
        "1",
        "--slices",
        "5",
        "--size",
        "32x48",
    ]
    assert main(args) == 0
    ds = VUDataset.load(out)
    assert len(ds) == 4 + 2 + 2 + 4 and ds.shape == (5, 32, 48)
    assert ds.card["counts"]["per_level"]["T12/L1"] == 1
    assert ds.card["extract"]["slices"] == 5 and ds.card["split"]["seed"] == 1
    assert sorted(ds.patients()) == ["sub-00", "sub-01", "sub-02", "sub-03"]
    capsys.readouterr()
    assert main(["data", "show", str(out), "--json", "--montage", str(tmp_path / "m.png")]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["fingerprint"] == ds.fingerprint
    assert (tmp_path / "m.png").stat().st_size > 1000
    assert main(["data", "show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "12 VUs" in text and "L4/L5" in text
    rows = {line.split()[0]: line for line in text.splitlines() if "patients: train" in line}
    assert list(rows) == ds.classes("level")  # one row per level, in anatomical order
    assert all(f"{p} " in row for row in rows.values() for p in ("train", "holdout", "reference"))
    hold = ds.units[ds.units["split"] == "holdout"]  # one holdout patient: no level's recall gets an interval
    assert hold["patient_id"].nunique() == 1
    assert "fewer than 2 holdout patients for" in text and "(`data build --split`)" in text


def test_parallel_build_matches_serial(cohort, tmp_path):
    kw = dict(image_glob="*_img.nii", label_glob="*_vert.nii", progress=False)
    serial = buildmod.build_dataset(cohort, None, workers=1, **kw)
    parallel = buildmod.build_dataset(cohort, None, workers=2, **kw)
    assert serial.fingerprint == parallel.fingerprint


def test_patient_regex_and_mapping(cohort, tmp_path):
    ds = buildmod.build_dataset(
        cohort,
        None,
        image_glob="*_img.nii",
        label_glob="*_vert.nii",
        patient_regex=r"sub-(\d+)",
        workers=1,
        progress=False,
    )
    assert ds.patients() == ["00", "01", "02", "03"]
    with pytest.raises(buildmod.DataError, match="does not match the patient regex"):
        buildmod.build_dataset(
            cohort, None, image_glob="*_img.nii", label_glob="*_vert.nii", patient_regex="^pat", workers=1
        )


def test_several_folders_keep_patients_apart(cohort, tmp_path):
    other = tmp_path / "study2"
    write_spine(other, "sub-00", codes=(22, 23), suffix=".nii")
    ds = buildmod.build_dataset(
        [cohort, other], None, image_glob="*_img.nii", label_glob="*_vert.nii", workers=1, progress=False
    )
    assert "study2_sub-00" in ds.patients() and "vols_sub-00" in ds.patients() and len(ds.patients()) == 5
    assert ds.card["ingest"]["folders"] == ["vols", "study2"]
    # sub-00_img.nii is in both folders: two sources, each named with its folder
    assert len(ds.card["sources"]) == 5 and {"vols/sub-00_img.nii", "study2/sub-00_img.nii"} <= set(ds.card["sources"])


def test_show_names_the_sources_and_their_patients_per_level(cohort, tmp_path, capsys):
    other = tmp_path / "study2"
    write_spine(other, "sub-00", codes=(22, 23), suffix=".nii")
    out = tmp_path / "ds"
    assert main(["data", "build", "--images", str(cohort), str(other), "--out", str(out), "--workers", "1",
                 "--image-glob", "*_img.nii", "--label-glob", "*_vert.nii", "--slices", "5", "--size", "32x48"]) == 0
    built = capsys.readouterr().out
    assert main(["data", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    line = next(s for s in shown.splitlines() if s.strip().startswith("sources:"))
    assert line in built and "study2" in line and "vols" in line and "harmonisation (nyul)" in line
    units = VUDataset.load(out).units
    for level, rows in units.groupby("level"):
        by = rows.groupby("site")["patient_id"].nunique()
        row = next(s for s in shown.splitlines() if s.split()[:1] == [level])
        assert "(patients by source: " + ", ".join(f"{s} {n}" for s, n in by.items()) + ")" in row


def test_missing_partner_exits_2_naming_the_file(cohort, tmp_path, capsys):
    (cohort / "sub-01_vert.nii").unlink()
    code = main(
        [
            "data",
            "build",
            "--images",
            str(cohort),
            "--out",
            str(tmp_path / "ds"),
            "--image-glob",
            "*_img.nii",
            "--label-glob",
            "*_vert.nii",
            "--workers",
            "1",
        ]
    )
    assert code == 2
    _one_error_line(capsys, "sub-01_img.nii", "no label map")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("problem", ["truncated", "single_body", "unknown_codes"])
def test_bad_pair_stops_the_build_or_is_skipped(cohort, tmp_path, capsys, problem):
    if problem == "truncated":
        bad = cohort / "sub-02_img.nii"
        bad.write_bytes(bad.read_bytes()[:5000])
    elif problem == "single_body":
        write_spine(cohort, "sub-02", codes=(22,), suffix=".nii")
    else:
        import nibabel as nib

        lbl = nib.load(str(cohort / "sub-02_vert.nii"))
        data = np.asarray(lbl.dataobj).copy()
        data[data == 20] = 77
        nib.save(nib.Nifti1Image(data, lbl.affine), str(cohort / "sub-02_vert.nii"))
    workers = "2" if problem == "truncated" else "1"  # one case through the process pool
    base = [
        "data",
        "build",
        "--images",
        str(cohort),
        "--image-glob",
        "*_img.nii",
        "--label-glob",
        "*_vert.nii",
        "--workers",
        workers,
    ]
    assert main([*base, "--out", str(tmp_path / "ds")]) == 2
    _one_error_line(capsys, "sub-02_")
    assert not (tmp_path / "ds").exists()
    assert main([*base, "--out", str(tmp_path / "ok"), "--skip-bad"]) == 0
    ds = VUDataset.load(tmp_path / "ok")
    assert [s["file"] for s in ds.card["skipped"]] == ["sub-02_img.nii"]
    assert "sub-02" not in ds.patients() and len(ds.patients()) == 3
    assert sorted(ds.card["image_sha256"]) == ds.patients()  # a skipped volume is nobody's identity in the ledger


def test_one_scan_under_two_patient_ids_is_named(tmp_path, capsys):
    for i in range(3):  # sub-00 and sub-02 the same spine: one scan under two ids
        write_spine(tmp_path / "vols", f"sub-{i:02d}", tilt=float(i % 2))
    assert main(["data", "build", "--images", str(tmp_path / "vols"), "--out", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    assert "warning: patients sub-00, sub-02 have byte-identical source images" in out and "sub-01," not in out
    write_spine(tmp_path / "vols", "sub-02", tilt=2.0)
    assert main(["data", "build", "--images", str(tmp_path / "vols"), "--out", str(tmp_path / "ds")]) == 0
    assert "byte-identical" not in capsys.readouterr().out


def test_bad_options_exit_2(cohort, tmp_path, capsys):
    base = ["data", "build", "--images", str(cohort), "--out", str(tmp_path / "ds")]
    assert main([*base, "--split", "0.5,0.5"]) == 2
    _one_error_line(capsys, "--split")
    assert main([*base, "--size", "big"]) == 2
    _one_error_line(capsys, "--size")
    assert main(["data", "build", "--images", str(tmp_path / "nowhere"), "--out", str(tmp_path / "ds")]) == 2
    _one_error_line(capsys, "nowhere")
    assert main(["data", "show", str(tmp_path / "nowhere")]) == 2
    _one_error_line(capsys, "nowhere")


def test_interrupted_build_leaves_old_dataset_intact(cohort, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ds"
    base = [
        "data",
        "build",
        "--images",
        str(cohort),
        "--out",
        str(out),
        "--image-glob",
        "*_img.nii",
        "--label-glob",
        "*_vert.nii",
        "--workers",
        "1",
    ]
    assert main(base) == 0
    old = VUDataset.load(out).fingerprint

    def dying_to_csv(self, *a, **k):  # images.npy is written, then the process "dies"
        raise KeyboardInterrupt

    import pandas as pd

    monkeypatch.setattr(pd.DataFrame, "to_csv", dying_to_csv)
    assert main([*base, "--slices", "3"]) == 130
    monkeypatch.undo()
    assert VUDataset.load(out).fingerprint == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "vols"]


def test_help_imports_no_heavy_module():
    code = (
        "import sys; from synthvu_core import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'scipy', 'monai', 'nibabel', 'pandas') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "data" in out and "phantom" in out


def test_phantom_command_and_phantom_dataset(tmp_path, capsys):
    pytest.importorskip("synthvu_core.data.phantom")
    assert main(["phantom", "--patients", "1", "--out", str(tmp_path / "ph"), "--seed", "3", "--workers", "1"]) == 0
    assert (tmp_path / "ph" / "sub-0000_img.nii.gz").is_file() and (tmp_path / "ph" / "sub-0000_vert.nii.gz").is_file()
    recipe = buildmod.PhantomRecipe.for_cohort(1, seed=3, split=dsmod.SplitConfig(1, 0, 0))
    ds = buildmod.build_phantom_dataset(recipe, tmp_path / "pds", workers=1, progress=False)
    assert len(ds) == 23 and ds.units["level"].iloc[-1] == "L5/S1" and ds.card["recipe"]["seed"] == 3
    assert ds.card["recipe"] == recipe.as_dict() and recipe.name == "phantom-1-s3-t2"
    assert buildmod.PhantomRecipe.from_dict(ds.card["recipe"]).as_dict() == recipe.as_dict()
    assert ds.card["ingest"]["folders"] == ["phantom"]
    direct = buildmod.build_dataset(tmp_path / "ph", None, workers=1, progress=False, split=dsmod.SplitConfig(1, 0, 0))
    assert direct.fingerprint == ds.fingerprint  # phantom goes through the very same ingestion
    assert main(["phantom", "--patients", "0", "--out", str(tmp_path / "none")]) == 2


def test_demo_dataset_cache_and_fingerprint_check(tmp_path, monkeypatch):
    pytest.importorskip("synthvu_core.data.phantom")
    monkeypatch.setenv("SYNTHVU_CACHE", str(tmp_path / "cache"))
    recipe = buildmod.PhantomRecipe("tiny-demo", n_patients=2, seed=0, split=dsmod.SplitConfig(1, 1, 0))
    ds = buildmod.demo_dataset(recipe=recipe)
    folder = tmp_path / "cache" / "datasets" / "tiny-demo"
    assert ds.root == folder and len(ds) == 46 and ds.card["recipe"]["name"] == "tiny-demo"
    again = buildmod.demo_dataset(ds.fingerprint, recipe=recipe)  # loaded from the cache, not rebuilt
    assert again.card["created"] == ds.card["created"]
    with pytest.raises(buildmod.DataError, match="tiny-demo.*differs"):
        buildmod.demo_dataset("0" * 16, recipe=recipe)
    # a stale cache (another code version's build) is rebuilt, not trusted and not refused
    card = json.loads((folder / "card.json").read_text())
    card["fingerprint"] = "stale"
    (folder / "card.json").write_text(json.dumps(card))
    rebuilt = buildmod.demo_dataset(ds.fingerprint, recipe=recipe)
    assert (
        rebuilt.fingerprint == ds.fingerprint
        and json.loads((folder / "card.json").read_text())["fingerprint"] == ds.fingerprint
    )
    assert buildmod.DEMO_PHANTOM.n_patients == 120 and buildmod.DEMO_PHANTOM.seed == 0


def test_a_phantom_recipe_keeps_a_plain_split_and_old_recipes_read_as_before():
    plain = buildmod.PhantomRecipe.for_cohort(4, seed=1, split=dsmod.SplitConfig(seed=2, stratify=False))
    assert plain.as_dict()["split"]["stratify"] is False
    assert buildmod.PhantomRecipe.from_dict(plain.as_dict()).split == plain.split
    strat = buildmod.PhantomRecipe.for_cohort(4, seed=1, split=dsmod.SplitConfig(seed=2))
    assert "stratify" not in strat.as_dict()["split"]  # recipes (and their cache names) stay as they were
    assert buildmod.PhantomRecipe.from_dict(strat.as_dict()).split.stratify is True


def test_build_names_the_levels_with_few_training_patients(cohort, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["data", "build", "--images", str(cohort), "--out", str(out), "--workers", "1", "--image-glob",
                 "*_img.nii", "--label-glob", "*_vert.nii", "--split", "0.5,0.25,0.25", "--slices", "5",
                 "--size", "32x48"]) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if "training patients for" in line]
    assert len(lines) == 1
    units = VUDataset.load(out).units
    train = units[units["split"] == "train"]
    for level, rows in train.groupby("level"):  # two training patients: every training level is named, with its count
        assert f"{level} ({rows['patient_id'].nunique()}" in lines[0]
    hold = units[units["split"] == "holdout"]
    assert hold["patient_id"].nunique() == 1  # so every training level's recall is read on one patient or none
    unread = dsmod.holdout_levels_unread(units)
    assert set(unread) == set(train["level"]) and set(unread.values()) <= {0, 1}
    assert dsmod.holdout_level_warning(units) in printed
    for level in set(units["level"]) - set(train["level"]):
        assert f"{level} (" not in lines[0]
