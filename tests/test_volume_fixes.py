"""Sub-volume fixes: non-finite build options refused, ``evaluate --n-synthetic`` reaching the sub-volume evaluation,
``report show`` / ``report table`` / the Trade-offs note reading a ``volume_report.json``, and the VU's in-plane mm
labelled as the dataset's median (viewer caption, NIfTI header). Fast: the shipped sub-volume report is read, not
recomputed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from synthetic_volumes import write_spine

from synthvu_core.cli import main
from synthvu_core.data.units import ExtractConfig
from synthvu_core.errors import DataError, SelectionError

ROOT = Path(__file__).resolve().parents[1]
VOLUME_MODEL = ROOT / "models" / "diffusion3d-phantom"
VU_MODEL = ROOT / "models" / "acgan-phantom"


def _copy(model: Path, dst: Path, *, report: bool = True) -> Path:
    """A generator folder holding ``model``'s card (and its sub-volume report): no weights, nothing shipped touched."""
    (dst / "report").mkdir(parents=True)
    shutil.copy(model / "card.json", dst / "card.json")
    if report and (model / "report" / "volume_report.json").is_file():
        shutil.copy(model / "report" / "volume_report.json", dst / "report" / "volume_report.json")
    return dst


# ---- 1. data build: nan and inf refused in one line naming the option ------------------------------------------
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_subvolume_spacing_must_be_finite(value):
    with pytest.raises(DataError, match="--spacing must be a positive finite number"):
        ExtractConfig.subvolume((4, 8, 8), float(value))


@pytest.mark.parametrize(
    "extra, option",
    [
        (["--unit", "subvolume", "--size", "4,8,8", "--spacing", "inf"], "--spacing"),
        (["--slice-mm", "inf"], "--slice-mm"),
        (["--slice-mm", "nan"], "--slice-mm"),
        (["--fov-factor", "inf"], "--fov-factor"),
        (["--fov-factor", "nan"], "--fov-factor"),
        (["--fixed-mm", "inf"], "--fixed-mm"),
        (["--fixed-mm", "nan"], "--fixed-mm"),
        (["--split", "0.6,0.2,inf"], "--split"),
        (["--split", "nan,0.2,0.2"], "--split"),
    ],
)
def test_data_build_refuses_non_finite_numbers(tmp_path, capsys, extra, option):
    write_spine(tmp_path / "vols", "sub-00")
    rc = main(["data", "build", "--images", str(tmp_path / "vols"), "--out", str(tmp_path / "ds"), "--workers", "1",
               *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and option in err and "finite" in err, err
    assert not (tmp_path / "ds").exists()  # no blank dataset


# ---- 2. evaluate --n-synthetic reaches the sub-volume evaluation ------------------------------------------------
def test_evaluate_passes_n_synthetic_to_the_volume_evaluation(tmp_path, monkeypatch, capsys):
    from synthvu_core.evaluation import volume

    folder = _copy(VOLUME_MODEL, tmp_path / "g3d")
    saved = json.loads((folder / "report" / "volume_report.json").read_text())
    asked: list[dict] = []

    def fake(folder, **kwargs):
        asked.append(kwargs)
        return saved

    monkeypatch.setattr(volume, "evaluate_volume_generator", fake)
    assert main(["evaluate", str(folder), "--n-synthetic", "12", "--quiet"]) == 0
    assert main(["evaluate", str(folder), "--quiet"]) == 0
    assert [a["n_synthetic"] for a in asked] == [12, None]  # None: the evaluation's default (the train split's size)
    assert "TSTR" in capsys.readouterr().out
    assert main(["evaluate", str(folder), "--n-synthetic", "0"]) == 2  # still refused below 1


def test_evaluate_of_a_vu_generator_keeps_its_default_of_5000(tmp_path, monkeypatch):
    from synthvu_core.evaluation import report

    folder = _copy(VU_MODEL, tmp_path / "vu")
    asked: list[int] = []

    def fake(folder, **kwargs):
        asked.append(kwargs["n_synthetic"])
        raise SelectionError("stop here")

    monkeypatch.setattr(report, "evaluate_generator", fake)
    assert main(["evaluate", str(folder), "--quiet"]) == 2
    assert main(["evaluate", str(folder), "--n-synthetic", "70", "--quiet"]) == 2
    assert asked == [5000, 70]


# ---- 3. report show / report table / the Trade-offs note read the sub-volume report ------------------------------
def test_report_show_prints_the_volume_report(capsys):
    assert main(["report", "show", str(VOLUME_MODEL)]) == 0
    out, err = capsys.readouterr()
    assert not err and "no report yet" not in out
    assert "sub-volume evaluation: 828 synthetic sub-volumes" in out
    assert "TSTR 0.890 [0.73, 0.96]" in out and "chance 0.333" in out and "privacy: ok" in out
    assert main(["report", "show", str(VOLUME_MODEL), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["unit"] == "subvolume" and doc["scalars"]["utility.chance"] == pytest.approx(1 / 3)
    assert doc["volume_report"]["counts"]["synthetic"] == 828 and "independent" in doc["controls"]


def test_report_show_of_a_sub_volume_generator_without_or_with_a_foreign_report(tmp_path, capsys):
    bare = _copy(VOLUME_MODEL, tmp_path / "bare", report=False)
    assert main(["report", "show", str(bare)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "volume_report.json: no sub-volume report yet" in err
    foreign = _copy(VOLUME_MODEL, tmp_path / "foreign")
    path = foreign / "report" / "volume_report.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "model": "another"}))
    assert main(["report", "show", str(foreign)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "written for another generator or dataset" in err
    assert main(["report", "table", str(foreign)]) == 2  # never shown as its numbers
    assert "written for another generator" in capsys.readouterr().err


def test_report_table_has_a_row_for_the_volume_report(capsys):
    assert main(["report", "table", str(VOLUME_MODEL), str(VU_MODEL)]) == 0
    out, err = capsys.readouterr()
    assert not err
    rows = [line for line in out.splitlines() if line.startswith("| `diffusion3d-phantom`")]
    assert len(rows) == 2
    util, priv = rows
    assert "828 sub-volumes" in util and "0.890 [0.73, 0.96]" in util and "above chance" in util
    assert "one attack read alone" in priv and "0.490 [0.39, 0.59]" in priv and "not run on sub-volumes" in priv
    assert sum(line.startswith("| `acgan-phantom`") for line in out.splitlines()) == 2  # VU rows as before


@pytest.mark.parametrize("action", ["verify", "amend", "seeds"])
def test_vu_only_report_actions_name_the_sub_volume_report(tmp_path, capsys, action):
    folder = str(_copy(VOLUME_MODEL, tmp_path / "g3d"))
    assert main(["report", action, folder, *([folder] if action == "seeds" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"`report {action}` reads VU reports only" in err and "evaluate" not in err


def test_trade_offs_note_and_volumes_page_lines(tmp_path):
    from dashboard import volumes

    card = json.loads((VOLUME_MODEL / "card.json").read_text())
    note = volumes.no_vu_report_note(VOLUME_MODEL, card)
    assert "no report yet" not in note and "Volumes page" in note
    bare = _copy(VOLUME_MODEL, tmp_path / "bare", report=False)
    assert "without a sub-volume report yet" in volumes.no_vu_report_note(bare, card)
    assert volumes.no_vu_report_note(VU_MODEL, json.loads((VU_MODEL / "card.json").read_text())) == "no report yet"
    lines = volumes.volume_report_lines(VOLUME_MODEL, card)
    assert lines is not None and any("TSTR 0.890" in line for line in lines)
    assert volumes.volume_report_lines(bare, card) is None
    page = (ROOT / "app_pages" / "tradeoffs.py").read_text()
    assert "no_vu_report_note" in page and '"no report yet"' not in page


# ---- 4. a VU's in-plane mm is the dataset's median: said in the viewer caption and the NIfTI header ---------------
def test_vu_spacing_is_labelled_as_the_datasets_median():
    from dashboard import volumes

    vu_card = json.loads((VU_MODEL / "card.json").read_text())
    text = volumes.spacing_text(vu_card)
    assert text.startswith("2 × 0.69212 × 0.69212 mm") and "approximate" in text and "median of the dataset" in text
    sv_card = json.loads((VOLUME_MODEL / "card.json").read_text())
    assert volumes.spacing_text(sv_card) == "2 × 2 × 2 mm"  # a sub-volume's voxel is exact
    fixed = {**vu_card, "dataset": {**vu_card["dataset"], "recipe": {"extract": {"fixed_mm": 60.0}}}}
    assert "approximate" not in volumes.spacing_text(fixed)  # one field of view: one pixel size


def test_nifti_header_says_a_vus_in_plane_mm_is_the_median(tmp_path):
    from synthvu_core.models.sampling import Samples, write_nifti

    samples = Samples(np.zeros((2, 9, 16, 16), np.float32), np.array([0, 2]), ["C", "T", "L"])
    vu_card = json.loads((VU_MODEL / "card.json").read_text())
    nii = nib.load(str(write_nifti(samples, tmp_path / "vu.nii.gz", vu_card)))
    descrip = nii.header["descrip"].tobytes().rstrip(b"\0").decode()
    assert "approx" in descrip and "median" in descrip and "axis 4 = VU" in descrip
    assert np.allclose(nii.header.get_zooms()[:3], vu_card["dataset"]["spacing"])  # the voxel size is unchanged
    sv_card = json.loads((VOLUME_MODEL / "card.json").read_text())
    sv = Samples(np.zeros((1, 16, 64, 64), np.float32), np.array([1]), ["C", "T", "L"])
    descrip = nib.load(str(write_nifti(sv, tmp_path / "sv.nii.gz", sv_card))).header["descrip"].tobytes()
    assert b"approx" not in descrip
