"""3-D sub-volumes: isotropic extraction from NIfTI and from the phantom, the data build CLI, orientation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_volumes import spine_arrays, write_pair, write_spine

from synthvu_core.cli import main
from synthvu_core.data.dataset import VUDataset
from synthvu_core.data.nifti import load_pair
from synthvu_core.data.units import ExtractConfig, extract_units
from synthvu_core.errors import DataError


def test_subvolume_config_is_isotropic_and_vu_cards_unchanged():
    c = ExtractConfig.subvolume((8, 32, 24), 1.5)
    assert c.shape == (8, 32, 24) and c.spacing_mm == 1.5 and c.fixed_mm == pytest.approx(48.0)
    assert c.as_dict()["unit"] == "subvolume"
    assert ExtractConfig(**c.as_dict()).as_dict() == c.as_dict()  # a recipe rebuilds it
    assert "unit" not in ExtractConfig().as_dict()  # VU datasets keep their cards
    with pytest.raises(DataError, match="isotropic"):
        ExtractConfig(slices=8, size=32, slice_mm=1.0, fixed_mm=40.0, unit="subvolume")
    with pytest.raises(DataError, match="unknown unit"):
        ExtractConfig(unit="cube")
    with pytest.raises(DataError, match="one voxel size"):
        _ = ExtractConfig().spacing_mm


def _lateral_marker(img: np.ndarray) -> np.ndarray:
    """A bright block on the patient's right (+x) only: makes the volume asymmetric left to right."""
    img = img.copy()
    cx, cy = img.shape[0] // 2, img.shape[1] // 2
    img[cx + 6 : cx + 12, cy - 5 : cy + 5, :] = 240.0
    return img


@pytest.mark.parametrize("axcodes", ["RAS", "LPI", "PIR"])
def test_subvolume_axes_follow_the_anatomy_in_any_file_orientation(tmp_path, axcodes):
    img, lab, _ = spine_arrays((20, 21, 22))
    img = _lateral_marker(img)
    paths = write_pair(tmp_path, "sub-01", img, lab, axcodes=axcodes)
    config = ExtractConfig.subvolume((16, 32, 32), 1.0, align=False)
    units, rows = extract_units(load_pair(*paths), config)
    assert units.shape == (2, 16, 32, 32) and units.dtype == np.uint8
    assert all(r["spacing_mm"] == 1.0 and r["crop_mm"] == 32.0 and r["slice_mm"] == 1.0 for r in rows)
    v = units[0].astype(float)  # L1/L2: [left->right, superior->inferior, anterior->posterior]
    assert v[-4:].mean() > v[:4].mean() + 20  # the right-side marker lies at the last slices
    marker = np.unravel_index(np.argmax(v[v.shape[0] // 2].mean(axis=0)), (32,))[0]  # brightest column: anterior
    assert marker < 16, f"anterior marker at column {marker}, expected the anterior (first) half"
    upper, lower = v[:, :10].mean(), v[:, -10:].mean()  # bodies grow brighter upwards
    assert upper > lower


def test_subvolumes_equal_in_two_file_orientations(tmp_path):
    img, lab, _ = spine_arrays((20, 21, 22, 23))
    img = _lateral_marker(img)
    a = write_pair(tmp_path / "a", "sub-01", img, lab, axcodes="RAS")
    b = write_pair(tmp_path / "b", "sub-01", img, lab, axcodes="ASL")
    config = ExtractConfig.subvolume((8, 24, 24), 2.0)
    ua, _ = extract_units(load_pair(*a), config)
    ub, _ = extract_units(load_pair(*b), config)
    assert np.abs(ua.astype(int) - ub.astype(int)).max() <= 1


@pytest.mark.slow
def test_data_build_subvolume_cli(tmp_path, capsys):
    folder = tmp_path / "vols"
    for i, codes in enumerate([(20, 21, 22, 23, 24), (21, 22, 23), (19, 20, 21), (20, 21, 22, 23, 24)]):
        write_spine(folder, f"sub-{i:02d}", codes=codes)
    out = tmp_path / "ds"
    rc = main(["data", "build", "--images", str(folder), "--out", str(out), "--workers", "1", "--unit", "subvolume",
               "--size", "8,32,24", "--spacing", "1.5", "--split", "2,1,1"])
    assert rc == 0
    said = capsys.readouterr().out
    assert "sub-volumes of 1.5 mm voxels (8, 32, 24)" in said
    ds = VUDataset.load(out)
    assert isinstance(ds.images, np.memmap) and ds.images.shape == (12, 8, 32, 24)
    card = json.loads((out / "card.json").read_text())
    assert card["extract"]["unit"] == "subvolume" and card["extract"]["slice_mm"] == 1.5
    assert sum(len(v) for v in card["split"]["patients"].values()) == 4
    assert set(ds.units["spacing_mm"]) == {1.5} and set(ds.units["source_max_mm"]) == {1.0}


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--unit", "subvolume", "--slices", "5"], "--slices applies to --unit vu"),
        (["--spacing", "1"], "--spacing applies to --unit subvolume"),
        (["--unit", "subvolume", "--size", "32,64"], "three sizes D,H,W"),
        (["--unit", "subvolume", "--spacing", "0"], "--spacing must be a positive"),
    ],
)
def test_data_build_subvolume_refusals(tmp_path, capsys, extra, words):
    write_spine(tmp_path / "vols", "sub-00")
    rc = main(["data", "build", "--images", str(tmp_path / "vols"), "--out", str(tmp_path / "ds"), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and words in err
    assert not (tmp_path / "ds").exists()


@pytest.mark.slow
def test_phantom_renders_finer_slices_with_the_same_anatomy():
    from synthvu_core.data import phantom

    coarse = phantom.render_patient(0, seed=3)
    fine = phantom.render_patient(0, seed=3, lr_mm=1.0)
    assert coarse.image.shape[0] == phantom.N_LR and fine.image.shape[0] == 2 * phantom.N_LR
    assert fine.affine[0, 0] == 1.0 and coarse.affine[0, 0] == phantom.LR_MM
    assert fine.image.shape[1:] == coarse.image.shape[1:]
    assert fine.attributes == coarse.attributes
    # the same bodies: each label's centre (mm) agrees within a voxel
    for code in (2, 14, 24):
        cf = (np.argwhere(fine.labels == code).mean(0) * np.diag(fine.affine)[:3]) + fine.affine[:3, 3]
        cc = (np.argwhere(coarse.labels == code).mean(0) * np.diag(coarse.affine)[:3]) + coarse.affine[:3, 3]
        assert np.abs(cf - cc).max() < 1.0
    with pytest.raises(DataError, match="slice distance"):
        phantom.render_patient(0, lr_mm=3.0)


def test_phantom_subvolume_recipe_renders_at_the_needed_resolution():
    from synthvu_core.data.build import PhantomRecipe

    fine = PhantomRecipe.for_cohort(2, config=ExtractConfig.subvolume((8, 32, 32), 1.0))
    assert fine.lr_mm == 1.0 and fine.name == "phantom-2-s0-t2-sv8x32x32-1mm"
    assert PhantomRecipe.from_dict(fine.as_dict()).as_dict() == fine.as_dict()
    coarse = PhantomRecipe.for_cohort(2, config=ExtractConfig.subvolume((8, 32, 32), 2.0))
    assert coarse.lr_mm == 2.0 and "lr_mm" not in coarse.as_dict()
    assert "lr_mm" not in PhantomRecipe.for_cohort(2).as_dict()  # VU recipes keep their cards
