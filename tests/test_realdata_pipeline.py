"""Real lumbar MRI (../shared/data/spine-mri, skipped where absent): VU counts, centres against the masks,
orientation invariance. Cite MyoSegmenTUM (Burian et al. 2019) and Chu et al. 2015 with any result shown."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from synthetic_volumes import write_pair

from synthvu_core.data.build import build_dataset
from synthvu_core.data.dataset import VUDataset
from synthvu_core.data.nifti import load_pair
from synthvu_core.data.units import extract_units

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def myo(spine_data):
    return build_dataset(spine_data / "myosegmentum", None, workers=2, progress=False)


@pytest.fixture(scope="module")
def chu(spine_data):
    return build_dataset(spine_data / "chu2015", None, workers=2, progress=False)


def test_myosegmentum_four_vus_per_subject(myo):
    assert len(myo) == 80 and myo.shape == (9, 64, 64)
    assert set(myo.card["counts"]["per_patient"].values()) == {4} and len(myo.patients()) == 20
    assert myo.card["counts"]["per_level"] == {"L1/L2": 20, "L2/L3": 20, "L3/L4": 20, "L4/L5": 20}
    assert sum(v["patients"] for v in myo.card["counts"]["per_split"].values()) == 20


def test_chu2015_six_vus_per_subject(chu):
    assert len(chu) == 30 and len(chu.patients()) == 5
    assert set(chu.card["counts"]["per_patient"].values()) == {6}
    assert list(chu.card["counts"]["per_level"]) == ["T11/T12", "T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5"]


@pytest.mark.parametrize("which", ["myo", "chu"])
def test_vu_centres_lie_between_their_bodies(which, request, spine_data):
    """Centroids recomputed from the masks on disk (scipy, file voxels -> world through the file's affine)."""
    ds = request.getfixturevalue(which)
    folder = spine_data / ("myosegmentum" if which == "myo" else "chu2015")
    for source, rows in ds.units.groupby("source"):
        lbl = nib.load(str(folder / source.replace("_img", "_vert")))
        data = np.asarray(lbl.dataobj)
        codes = sorted(set(rows["upper_code"]) | set(rows["lower_code"]))
        boxes = ndimage.find_objects(data)
        vox = np.array(
            [np.argwhere(data[boxes[c - 1]] == c).mean(axis=0) + [sl.start for sl in boxes[c - 1]] for c in codes]
        )
        world = dict(zip(codes, vox @ lbl.affine[:3, :3].T + lbl.affine[:3, 3]))
        for r in rows.itertuples():
            centre = np.array([r.center_world_x, r.center_world_y, r.center_world_z])
            up, low = world[r.upper_code], world[r.lower_code]
            seg = up - low
            t = float((centre - low) @ seg / (seg @ seg))
            assert 0.45 < t < 0.55, (source, r.level, t)
            assert np.linalg.norm(low + t * seg - centre) < 0.5  # on the centroid line, mm
            assert up[2] > centre[2] > low[2]  # superior body above
            vox_c = np.array([r.center_vox_0, r.center_vox_1, r.center_vox_2])
            np.testing.assert_allclose(lbl.affine[:3, :3] @ vox_c + lbl.affine[:3, 3], centre, atol=0.01)


def test_real_volume_orientation_invariance(spine_data, tmp_path):
    """The files' own I,P,R vs the same voxels stored as RAS and LPS: VUs agree to 1 uint8 level."""
    img_path = spine_data / "myosegmentum" / "sub-01_img.nii.gz"
    ref_vol = load_pair(img_path, spine_data / "myosegmentum" / "sub-01_vert.nii.gz")
    ref, ref_rows = extract_units(ref_vol)
    affine = ref_vol.affine.copy()
    affine[:3, 3] = 0  # write_pair sets its own origin: compare after the same shift
    for codes in ("RAS", "LPS"):
        vol = load_pair(
            *write_pair(
                tmp_path / codes, "sub-01", ref_vol.image, ref_vol.labels, axcodes=codes, affine=affine, suffix=".nii"
            )
        )
        got, rows = extract_units(vol)
        assert [r["level"] for r in rows] == [r["level"] for r in ref_rows]
        diff = np.abs(got.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.01, (codes, diff.max(), diff.mean())


def test_real_data_train_sample_evaluate_end_to_end(myo, tmp_path, monkeypatch):
    """A tiny generator on the real MyoSegmenTUM VUs: train -> sample/export -> evaluate -> report."""
    import torch

    from synthvu_core.evaluation.report import evaluate_generator, load_report
    from synthvu_core.models.registry import load_generator
    from synthvu_core.models.sampling import export, sample
    from synthvu_core.models.training import ArchOverrides, TrainConfig, train

    torch.set_num_threads(2)
    monkeypatch.setenv("SYNTHVU_CACHE", str(tmp_path / "cache"))
    cfg = TrainConfig(
        scheme="level",
        overrides=ArchOverrides(width=4, d_width=4),
        batch_size=8,
        steps=2,
        checkpoint_every=0,
        montage_every=0,
        device="cpu",
    )
    folder = train(myo, tmp_path / "gen", cfg, progress=False)
    gen = load_generator(folder)
    assert gen.card["classes"] == ["L1/L2", "L2/L3", "L3/L4", "L4/L5"]
    s = sample(gen, 6, position="L4/L5", seed=3)
    assert s.images.shape == (6, 9, 64, 64) and set(s.labels.tolist()) == {3}
    export(s, tmp_path / "vus.npz", gen.card)
    assert np.load(tmp_path / "vus.npz")["images"].shape[0] == 6

    report = evaluate_generator(folder, dataset=myo, n_synthetic=60, progress=False)
    again = load_report(folder, expected_fingerprint=myo.fingerprint)
    assert again is not None and again.scalars == report.scalars
    members = again.arrays["candidates/is_member"].astype(bool)
    patients = again.arrays["candidates/patient"].astype(str)
    assert members.any() and (~members).any()
    assert set(patients[members]) <= set(myo.patients("train"))  # candidates are balanced: a subset
    assert set(patients[~members]) <= set(myo.patients("holdout"))
    assert 0.0 <= again.scalars["privacy.pairwise.pixel.auc"] <= 1.0


def test_two_sources_split_stratified_on_every_seed(spine_data, tmp_path, capsys):
    """chu2015 (5 patients, the only ones with T11/T12 and T12/L1) gets 3 : 1 : 1 patients in train, holdout and
    reference on every split seed; the plain permutation of seed 2 put only one of them in train."""
    from synthvu_core.cli import main

    folders = [str(spine_data / "myosegmentum"), str(spine_data / "chu2015")]
    for seed, extra in ((2, []), (2, ["--no-stratify"])):
        out = tmp_path / f"s{seed}{len(extra)}"
        assert main(["data", "build", "--images", *folders, "--out", str(out), "--split-seed", str(seed), *extra]) == 0
        units = VUDataset.load(out).units.drop_duplicates("patient_id")
        chu = units.loc[units["site"] == "chu2015", "split"].value_counts().to_dict()
        printed = capsys.readouterr().out
        if extra:
            assert chu == {"reference": 3, "train": 1, "holdout": 1} and "stratified" not in printed
        else:
            assert chu == {"train": 3, "holdout": 1, "reference": 1} and "each of 2 strata" in printed
