"""Spine phantom: determinism, anatomy labels, NIfTI output, ingestion into VUs, no trivial level cue."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from synthvu_core import levels
from synthvu_core.data import phantom
from synthvu_core.data.nifti import load_pair
from synthvu_core.data.units import ExtractConfig, extract_units
from synthvu_core.errors import DataError

EXPECTED_CODES = [*range(2, 25), 26]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six T2 phantom patients written once for the module."""
    out = tmp_path_factory.mktemp("cohort")
    pairs = phantom.write_cohort(out, 6, seed=0, workers=2)
    return out, pairs


@pytest.fixture(scope="module")
def cohort_units(cohort):
    """VUs of the cohort cut by the ingestion: (images uint8 [n, 9, 64, 64], rows)."""
    images, rows = [], []
    for img, lbl in cohort[1]:
        ims, rs = extract_units(load_pair(img, lbl), ExtractConfig())
        images.append(ims)
        rows += rs
    return np.concatenate(images), rows


def test_render_is_deterministic_and_patients_differ():
    a = phantom.render_patient(3, seed=5)
    b = phantom.render_patient(3, seed=5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.affine, b.affine) and a.attributes == b.attributes
    c = phantom.render_patient(4, seed=5)
    d = phantom.render_patient(3, seed=6)
    for other in (c, d):
        # central sagittal slices, cropped to a common size around their centres
        s1, s2 = a.image[a.image.shape[0] // 2], other.image[other.image.shape[0] // 2]
        h, w = min(s1.shape[0], s2.shape[0]), min(s1.shape[1], s2.shape[1])

        def crop(s, h=h, w=w):
            i, j = (s.shape[0] - h) // 2, (s.shape[1] - w) // 2
            return s[i : i + h, j : j + w].astype(float)

        assert np.abs(crop(s1) - crop(s2)).mean() > 10.0


def test_volume_types_labels_and_order():
    vol = phantom.render_patient(0, seed=0)
    assert vol.image.dtype == np.uint8 and vol.labels.dtype == np.uint8
    assert vol.image.shape == vol.labels.shape and vol.image.min() >= 1
    assert sorted(np.unique(vol.labels).tolist()) == [0, *EXPECTED_CODES]
    # labels are bodies only: small compared with the volume, each a compact block
    counts = np.bincount(vol.labels.ravel(), minlength=27)
    assert all(counts[c] > 500 for c in EXPECTED_CODES)
    assert counts[1:].sum() < 0.1 * vol.labels.size
    # centroids' superior coordinate decreases from C2 to S1
    idx = np.indices(vol.labels.shape).reshape(3, -1)
    lab = vol.labels.ravel()
    s = []
    for code in EXPECTED_CODES:
        vox = idx[:, lab == code].mean(axis=1)
        s.append((vol.affine[:3, :3] @ vox + vol.affine[:3, 3])[2])
    assert np.all(np.diff(s) < -10)  # bodies at least 10 mm apart
    assert len(levels.vu_pairs(EXPECTED_CODES)) == 23
    # spine length C2-S1 in the adult range
    assert 380 < s[0] - s[-1] < 700
    # sagittal orientation: RAS, 2 mm between sagittal slices, 1 mm in-plane
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
    assert np.allclose(np.abs(np.diag(vol.affine))[:3], [phantom.LR_MM, 1, 1])


def test_unknown_contrast_is_a_user_error(tmp_path):
    with pytest.raises(DataError):
        phantom.render_patient(0, contrast="PD")
    with pytest.raises(DataError):
        phantom.write_cohort(tmp_path, 0)


def test_t1_contrast_inverts_csf():
    t2 = phantom.render_patient(1, seed=0, contrast="T2")
    t1 = phantom.render_patient(1, seed=0, contrast="T1")
    assert np.array_equal(t2.labels, t1.labels)  # same anatomy
    # marrow (labelled bodies) vs the rest: bodies are relatively brighter on T1 than on T2
    for vol in (t1, t2):
        vol.attributes["ratio"] = vol.image[vol.labels > 0].mean() / vol.image[vol.labels == 0].mean()
    assert t1.attributes["ratio"] > t2.attributes["ratio"]


def test_cohort_files_are_byte_identical_and_prefix_stable(tmp_path, cohort):
    out, pairs = cohort
    assert [p.name for p, _ in pairs[:2]] == ["sub-0000_img.nii.gz", "sub-0001_img.nii.gz"]
    small = phantom.write_cohort(tmp_path / "b", 2, seed=0, workers=1)
    for (i1, l1), (i2, l2) in zip(pairs[:2], small):
        assert i1.read_bytes() == i2.read_bytes()
        assert l1.read_bytes() == l2.read_bytes()
    img = nib.load(pairs[0][0])
    lbl = nib.load(pairs[0][1])
    assert img.get_data_dtype() == np.uint8 and lbl.get_data_dtype() == np.uint8
    assert np.array_equal(np.asarray(lbl.dataobj), phantom.render_patient(0, seed=0).labels)
    with open(out / "patients.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["patient_id"] for r in rows] == [f"sub-{i:04d}" for i in range(6)]
    assert {"age", "sex", "findings", "contrast", "lumbar_lordosis_deg", "sacral_slope_deg"} <= set(rows[0])
    assert all(r["contrast"] == "T2" for r in rows)
    findings = [f for r in rows for f in r["findings"].split(";") if f]
    assert all(f.split("@")[0] in phantom.FINDING_KINDS for f in findings)
    assert not list(out.glob(".*tmp*"))


def test_ingestion_gives_23_vus_per_patient(cohort_units):
    images, rows = cohort_units
    per_patient: dict[str, list[str]] = {}
    for r in rows:
        per_patient.setdefault(r["patient_id"], []).append(r["level"])
    assert len(per_patient) == 6
    expected = [levels.vu_name(a, b) for a, b in levels.vu_pairs(EXPECTED_CODES)]
    assert all(v == expected for v in per_patient.values())
    assert images.shape == (6 * 23, 9, 64, 64)


def test_no_trivial_intensity_or_position_cue(cohort_units):
    """Mean intensity or intensity centre of mass of a VU alone predicts its level poorly,
    while the full VU separates the regions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold, cross_val_predict

    images, rows = cohort_units
    y = np.array([r["level"] for r in rows])
    groups = np.array([r["patient_id"] for r in rows])
    x = images.astype(np.float32) / 255.0
    mean = x.mean(axis=(1, 2, 3))[:, None]
    mid = x[:, 4]
    r_idx = np.mgrid[0:64, 0:64][0] / 63.0
    w = mid.sum(axis=(1, 2))
    com_row = ((mid * r_idx).sum(axis=(1, 2)) / w)[:, None]  # vertical position of the intensity mass
    disc_row = np.abs(np.diff(mid.mean(axis=2), axis=1)).argmax(axis=1)[:, None].astype(float)  # strongest edge
    cv = GroupKFold(n_splits=3)

    def score(feats, labels):
        clf = LogisticRegression(max_iter=2000)
        pred = cross_val_predict(clf, (feats - feats.mean(0)) / (feats.std(0) + 1e-9), labels, groups=groups, cv=cv)
        return balanced_accuracy_score(labels, pred)

    # chance is 1/23 = 0.043; a per-level intensity offset or a level-dependent placement would push
    # these far up. Some region information is legitimate (discs are thinner relative to bodies in
    # the neck), hence the margins.
    assert score(mean, y) < 0.15
    assert score(np.hstack([com_row, disc_row]), y) < 0.2
    region = np.array([levels.region(v) for v in y])
    small = x[:, 2:7:2, ::8, ::8].reshape(len(x), -1)
    assert score(small, region) > 0.8
