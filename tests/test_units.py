"""VU geometry on synthetic spines: centres, layout (superior up, anterior left), orientation invariance."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_volumes import ANTERIOR_MARKER, PITCH, spine_arrays, write_pair, write_spine

from synthvu_core.data.dataset import to_float
from synthvu_core.data.nifti import load_pair
from synthvu_core.data.units import ExtractConfig, body_centroids, extract_units, intensity_window, unit_frame
from synthvu_core.errors import DataError


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    return load_pair(*write_spine(tmp_path_factory.mktemp("spine"), axcodes="IPR"))


def test_centroids_match_design(volume):
    _, _, centres = spine_arrays()
    cents = body_centroids(volume)
    assert list(cents) == [20, 21, 22, 23, 24]
    for world, vox in zip(cents.values(), centres):
        designed = volume.affine[:3, :3] @ np.array(vox) + volume.affine[:3, 3]
        np.testing.assert_allclose(world, designed, atol=0.51)  # box of even/odd extent: half-voxel at most


def test_disc_units_centre_between_bodies(volume):
    images, rows = extract_units(volume, ExtractConfig(), patient_id="p1")
    assert images.shape == (4, 9, 64, 64) and images.dtype == np.uint8
    assert [r["level"] for r in rows] == ["L1/L2", "L2/L3", "L3/L4", "L4/L5"]
    cents = body_centroids(volume)
    for r in rows:
        centre = np.array([r["center_world_x"], r["center_world_y"], r["center_world_z"]])
        np.testing.assert_allclose(centre, (cents[r["upper_code"]] + cents[r["lower_code"]]) / 2, atol=1e-3)
        assert cents[r["lower_code"]][2] < centre[2] < cents[r["upper_code"]][2]
        assert r["crop_mm"] == pytest.approx(1.8 * PITCH, abs=0.6)
        assert r["patient_id"] == "p1" and r["region"] == "L" and r["source"] == "sub-01_img.nii.gz"
        # centre in voxels of the on-disk (I,P,R) file: axis 0 runs superior -> inferior
        vox = np.array([r["center_vox_0"], r["center_vox_1"], r["center_vox_2"]])
        world_again = volume.source_affine[:3, :3] @ vox + volume.source_affine[:3, 3]
        np.testing.assert_allclose(world_again, centre, atol=1e-2)


def test_layout_superior_up_anterior_left(volume):
    images, _ = extract_units(volume)
    mid = to_float(images[:, 4])  # central slice [n, H, W]
    h, w = mid.shape[1:]
    top, bottom = mid[:, : h // 2 - 4], mid[:, h // 2 + 4 :]
    # bodies get brighter superiorly in the design: the upper body must be on top
    assert (top.mean(axis=(1, 2)) > bottom.mean(axis=(1, 2))).all()
    # the bright anterior strip is on the left half, the canal on the right
    window = intensity_window(volume.image)
    marker = 2 * (ANTERIOR_MARKER - window[0]) / (window[1] - window[0]) - 1
    cols = np.flatnonzero((np.abs(mid[0] - min(marker, 1.0)) < 0.05).mean(axis=0) > 0.8)
    assert len(cols) and cols.max() < w // 2
    # the disc (background between boxes) crosses the middle row band
    assert mid[:, h // 2, w // 4 : w // 2].mean() < mid[:, h // 4, w // 4 : w // 2].mean()


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIL"])
def test_orientation_invariance(tmp_path, volume, axcodes):
    """Same volume, another on-disk orientation: VUs agree to 1 uint8 level (rounding of equal samples)."""
    ref, ref_rows = extract_units(volume)
    other = load_pair(*write_spine(tmp_path, axcodes=axcodes))
    got, rows = extract_units(other)
    assert [r["level"] for r in rows] == [r["level"] for r in ref_rows]
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1
    assert diff.mean() < 0.01


def test_oblique_affine_and_tilted_spine_keep_the_layout(tmp_path):
    """A rotated scanner frame (30° about x) and a leaning spine: aligned crops stay upright."""
    img, lab, _ = spine_arrays(tilt=3.0)
    a = np.deg2rad(30)
    rot = np.eye(4)
    rot[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    straight = load_pair(*write_pair(tmp_path / "s", "sub-01", img, lab))
    oblique = load_pair(*write_pair(tmp_path / "o", "sub-01", img, lab, affine=rot))
    ref, _ = extract_units(straight)
    got, _ = extract_units(oblique)
    # rotating the whole world does not rotate the aligned crop: same pixels up to rounding
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    # without alignment the crop keeps the world's superior axis, so the rotated spine looks different
    fixed = ExtractConfig(align=False)
    assert (
        np.abs(extract_units(oblique, fixed)[0].astype(int) - extract_units(straight, fixed)[0].astype(int)).mean() > 10
    )


def test_unit_frame_is_orthonormal_and_follows_the_centroid_line():
    upper, lower = np.array([0.0, 5.0, 20.0]), np.array([0.0, 0.0, 0.0])
    f = unit_frame(upper, lower)
    np.testing.assert_allclose(f @ f.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(f[0], (upper - lower) / np.linalg.norm(upper - lower))
    assert f[1][1] > 0.9  # anterior axis points to +y (anterior in RAS)
    assert f[2][0] > 0.99  # lateral axis points to the right
    np.testing.assert_allclose(unit_frame(upper, lower, align=False)[0], [0, 0, 1])


def test_fixed_mm_body_mode_and_shape_options(volume):
    _, rows = extract_units(volume, ExtractConfig(fixed_mm=50.0))
    assert {r["crop_mm"] for r in rows} == {50.0}
    assert rows[0]["spacing_mm"] == pytest.approx(50.0 / 64)
    images, rows = extract_units(volume, ExtractConfig(mode="body", slices=3, size=(32, 48)))
    assert images.shape == (5, 3, 32, 48)
    assert [r["level"] for r in rows] == ["L1", "L2", "L3", "L4", "L5"]
    with pytest.raises(DataError, match="mode"):
        ExtractConfig(mode="whole")


def test_scaling_spans_the_range(volume):
    images, _ = extract_units(volume)
    x = to_float(images)
    assert x.min() == -1.0 and x.max() > 0.9


def test_single_body_or_no_consecutive_pair_is_an_error(tmp_path):
    one = load_pair(*write_spine(tmp_path / "a", codes=(22,)))
    with pytest.raises(DataError, match=r"sub-01_vert.nii.gz.*\(L3\).*no VU possible"):
        extract_units(one)
    gap = load_pair(*write_spine(tmp_path / "b", codes=(20, 22)))
    with pytest.raises(DataError, match="no VU possible"):
        extract_units(gap)
    images, rows = extract_units(one, ExtractConfig(mode="body", fixed_mm=40.0))
    assert len(rows) == 1 and rows[0]["level"] == "L3"
