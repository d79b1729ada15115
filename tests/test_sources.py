"""Sources of a dataset: recorded per VU, harmonised at ingest (measured), shares in the samples with a warning;
label maps whose numbering contradicts their anatomy are refused."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_volumes import write_spine

from synthvu_core.cli import main
from synthvu_core.data import build as buildmod
from synthvu_core.data.harmonise import harmonise, read_sources
from synthvu_core.errors import DataError
from synthvu_core.evaluation.fidelity import source_shares
from synthvu_core.names import SOURCE_COLUMN

GLOBS = dict(image_glob="*_img.nii", label_glob="*_vert.nii", workers=1, progress=False)


def two_sources(n=40, seed=0):
    """uint8 VUs of two 'scanners': A bright with a dark stripe, B darker and flatter with a bright disc."""
    rng = np.random.default_rng(seed)
    a = rng.normal(170, 30, (n, 3, 16, 16))
    a[:, :, 6:10, :] = 40
    b = rng.normal(80, 10, (n // 2, 3, 16, 16))
    b[:, :, 4:12, 4:12] = 150
    images = np.clip(np.concatenate([a, b]), 1, 255).astype(np.uint8)
    return images, np.array(["A"] * n + ["B"] * (n // 2))


def test_harmonisation_brings_the_sources_histograms_together_and_records_them():
    images, sources = two_sources()
    out, rec = harmonise(images, sources)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert rec["method"] == "nyul" and set(rec["sources"]) == {"A", "B"}
    assert rec["max_distance_after"] < rec["max_distance_before"] / 5
    assert rec["sources"]["B"]["vus"] == 20 and len(rec["sources"]["B"]["before"]["histogram"]) == 16
    assert rec["sources"]["A"]["before"]["landmarks"] != rec["sources"]["A"]["after"]["landmarks"]
    same, rec1 = harmonise(images[:40], sources[:40])  # one source: nothing to harmonise
    assert rec1["method"] == "none" and np.array_equal(same, images[:40])
    kept, rec2 = harmonise(images, sources, "none")
    assert np.array_equal(kept, images) and rec2["max_distance_after"] == rec2["max_distance_before"]


def test_each_vu_records_its_folder_or_its_row_of_the_sources_csv(tmp_path):
    for folder, stems in (("siteA", ("sub-01", "sub-02")), ("siteB", ("sub-01",))):
        for stem in stems:
            write_spine(tmp_path / folder, stem, suffix=".nii")
    dirs = [tmp_path / "siteA", tmp_path / "siteB"]
    ds = buildmod.build_dataset(dirs, None, **GLOBS)
    by_patient = ds.units.groupby("patient_id")[SOURCE_COLUMN].first().to_dict()
    assert by_patient == {"siteA_sub-01": "siteA", "siteA_sub-02": "siteA", "siteB_sub-01": "siteB"}
    assert set(ds.card["harmonisation"]["sources"]) == {"siteA", "siteB"}
    csv = tmp_path / "sources.csv"
    csv.write_text("image,source\nsiteA/sub-01_img.nii,T1\nsub-02_img.nii,T2\nsiteB/sub-01_img.nii,T2\n")
    ds = buildmod.build_dataset(dirs, None, sources=csv, **GLOBS)
    assert ds.units.groupby("patient_id")[SOURCE_COLUMN].first().to_dict() == {
        "siteA_sub-01": "T1", "siteA_sub-02": "T2", "siteB_sub-01": "T2"}
    csv.write_text("image,source\nsub-02_img.nii,T2\n")
    with pytest.raises(DataError, match="no row for image siteA/sub-01_img.nii"):
        buildmod.build_dataset(dirs, None, sources=csv, **GLOBS)
    csv.write_text("file,site\nx,y\n")
    with pytest.raises(DataError, match="columns image and source"):
        read_sources(csv)


def test_source_shares_warn_when_a_source_gets_less_than_half_its_share():
    images, sources = two_sources()
    check = two_sources(seed=1)
    fair = two_sources(seed=2)[0]
    res = source_shares(images, sources, fair, check)
    assert res["real"] == pytest.approx({"A": 2 / 3, "B": 1 / 3})
    assert res["synthetic"]["B"] == pytest.approx(1 / 3, abs=0.05) and res["warnings"] == []
    assert res["check_accuracy"] > 0.95
    collapsed = two_sources(seed=3)[0][:40]  # only source A's kind
    res = source_shares(images, sources, collapsed, check)
    assert res["synthetic"]["B"] < 0.05
    assert len(res["warnings"]) == 1 and res["warnings"][0].startswith("source B holds 33%")


def test_a_small_source_is_not_warned_about():
    images, sources = two_sources(n=60)
    keep = np.r_[0:60, 60:65]  # B holds 5 of 65 VUs (< 10%)
    res = source_shares(images[keep], sources[keep], images[:60])
    assert res["real"]["B"] < 0.1 and res["warnings"] == []


def test_ordinal_label_map_of_a_lumbar_view_is_refused_naming_the_options(tmp_path, capsys):
    tall = dict(shape=(36, 44, 200), pitch=36.0, suffix=".nii")
    write_spine(tmp_path / "ord", "sub-01", codes=(1, 2, 3, 4, 5), **tall)
    with pytest.raises(DataError, match=r"--mapping.*--label-glob"):
        buildmod.build_dataset(tmp_path / "ord", None, **GLOBS)
    code = main(["data", "build", "--images", str(tmp_path / "ord"), "--out", str(tmp_path / "ds"),
                 "--image-glob", "*_img.nii", "--label-glob", "*_vert.nii", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "sub-01_vert.nii" in err and "C1..C5" in err and not (tmp_path / "ds").exists()
    ds = buildmod.build_dataset(tmp_path / "ord", None, mapping="1=L1,2=L2,3=L3,4=L4,5=L5", **GLOBS)
    assert sorted(ds.units["level"].unique()) == ["L1/L2", "L2/L3", "L3/L4", "L4/L5"]
    write_spine(tmp_path / "lum", "sub-01", codes=(20, 21, 22, 23, 24), **tall)  # VerSe-numbered lumbar: fine
    write_spine(tmp_path / "cerv", "sub-01", codes=(2, 3, 4, 5, 6), suffix=".nii")  # cervical at 18 mm: fine
    for folder in ("lum", "cerv"):
        assert len(buildmod.build_dataset(tmp_path / folder, None, **GLOBS)) == 4


def test_source_share_scalars_have_definitions():
    from synthvu_core.evaluation.report import definition

    assert "source chu2015" in definition("fidelity.source.chu2015.synthetic_share")
    assert "real train VUs" in definition("fidelity.source.site.a.real_share")
