"""NIfTI pair loading: canonical orientation and one clear error per kind of bad input."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from synthetic_volumes import spine_arrays, write_pair, write_spine

from synthvu_core.data.nifti import load_pair
from synthvu_core.errors import DataError


def test_loads_ipr_file_as_canonical_ras(tmp_path):
    img, lab = write_spine(tmp_path, axcodes="IPR")
    v = load_pair(img, lab)
    assert nib.aff2axcodes(v.affine) == ("R", "A", "S")
    assert nib.aff2axcodes(v.source_affine) == ("I", "P", "R")
    assert v.image.dtype == np.float32 and v.labels.shape == v.image.shape == spine_arrays()[0].shape
    assert v.codes == [20, 21, 22, 23, 24]
    # the canonical array equals the designed RAS array
    np.testing.assert_array_equal(v.labels, spine_arrays()[1])


def test_world_to_source_voxel_inverts_the_file_affine(tmp_path):
    img, lab = write_spine(tmp_path, axcodes="LPS")
    v = load_pair(img, lab)
    vox = np.array([[3.0, 4.0, 5.0]])
    world = vox @ v.source_affine[:3, :3].T + v.source_affine[:3, 3]
    np.testing.assert_allclose(v.world_to_source_voxel(world), vox, atol=1e-9)


def _bad(tmp_path, img=None, lab=None, aff_img=None, aff_lab=None):
    base_img, base_lab, _ = spine_arrays()
    img = base_img if img is None else img
    lab = base_lab if lab is None else lab
    pi, pl = tmp_path / "sub-01_img.nii.gz", tmp_path / "sub-01_vert.nii.gz"
    nib.save(nib.Nifti1Image(img, np.eye(4) if aff_img is None else aff_img), str(pi))
    nib.save(nib.Nifti1Image(lab, np.eye(4) if aff_lab is None else aff_lab), str(pl))
    return pi, pl


def test_truncated_gzip_names_the_file(tmp_path):
    pi, pl = write_spine(tmp_path)
    data = pi.read_bytes()
    pi.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="sub-01_img.nii.gz") as e:
        load_pair(pi, pl)
    assert "truncated" in str(e.value) or "readable" in str(e.value)


def test_garbage_file_names_the_file(tmp_path):
    pi, pl = write_spine(tmp_path)
    pl.write_bytes(gzip.compress(b"not a nifti at all"))
    with pytest.raises(DataError, match="sub-01_vert.nii.gz"):
        load_pair(pi, pl)


def test_shape_mismatch(tmp_path):
    _, lab, _ = spine_arrays()
    pi, pl = _bad(tmp_path, lab=lab[:-1])
    with pytest.raises(DataError, match=r"sub-01_vert.nii.gz.*shape"):
        load_pair(pi, pl)


def test_affine_mismatch_beyond_tolerance(tmp_path):
    shifted = np.eye(4)
    shifted[0, 3] = 0.5
    pi, pl = _bad(tmp_path, aff_lab=shifted)
    with pytest.raises(DataError, match=r"sub-01_vert.nii.gz.*affine"):
        load_pair(pi, pl)
    tiny = np.eye(4)
    tiny[0, 3] = 1e-5
    pi, pl = _bad(tmp_path, aff_lab=tiny)
    assert load_pair(pi, pl).codes  # within tolerance


def test_four_d_image_rejected_singleton_accepted(tmp_path):
    img, lab, _ = spine_arrays()
    pi, pl = _bad(tmp_path, img=np.stack([img, img], axis=-1), lab=np.stack([lab, lab], axis=-1))
    with pytest.raises(DataError, match=r"sub-01_img.nii.gz.*3-D"):
        load_pair(pi, pl)
    pi, pl = _bad(tmp_path, img=img[..., None], lab=lab[..., None])
    assert load_pair(pi, pl).image.ndim == 3


def test_nan_intensities(tmp_path):
    img, _, _ = spine_arrays()
    img[3, 3, 3] = np.nan
    pi, pl = _bad(tmp_path, img=img)
    with pytest.raises(DataError, match=r"sub-01_img.nii.gz.*non-finite"):
        load_pair(pi, pl)


def test_float_labels_must_hold_integers(tmp_path):
    _, lab, _ = spine_arrays()
    pi, pl = _bad(tmp_path, lab=lab.astype(np.float32))
    assert load_pair(pi, pl).codes == [20, 21, 22, 23, 24]  # integer-valued floats are fine
    frac = lab.astype(np.float32)
    frac[lab == 20] = 20.5
    pi, pl = _bad(tmp_path, lab=frac)
    with pytest.raises(DataError, match=r"sub-01_vert.nii.gz.*non-integer"):
        load_pair(pi, pl)


def test_empty_label_map(tmp_path):
    _, lab, _ = spine_arrays()
    pi, pl = _bad(tmp_path, lab=np.zeros_like(lab))
    with pytest.raises(DataError, match=r"sub-01_vert.nii.gz.*empty"):
        load_pair(pi, pl)


def test_unknown_codes_need_a_mapping(tmp_path):
    _, lab, _ = spine_arrays()
    local = np.where(lab > 0, lab - 19, 0).astype(np.int16)  # 1..5 = L1..L5 in a local scheme
    local[lab == 20] = 40  # 40 is not a VerSe code
    pi, pl = _bad(tmp_path, lab=local)
    with pytest.raises(DataError, match=r"sub-01_vert.nii.gz.*\[40\].*mapping"):
        load_pair(pi, pl)
    v = load_pair(pi, pl, mapping={40: 20, 2: 21, 3: 22, 4: 23, 5: 24})
    assert v.codes == [20, 21, 22, 23, 24]
    np.testing.assert_array_equal(v.labels, lab)
    with pytest.raises(DataError, match=r"\[5\] are not in the label mapping"):
        load_pair(pi, pl, mapping={40: 20, 2: 21, 3: 22, 4: 23})


def test_missing_file(tmp_path):
    pi, pl = write_spine(tmp_path)
    pl.unlink()
    with pytest.raises(DataError, match="sub-01_vert.nii.gz: label map file not found"):
        load_pair(pi, pl)


def test_write_pair_helper_keeps_arrays(tmp_path):
    img, lab, _ = spine_arrays()
    pi, pl = write_pair(tmp_path, "x", img, lab, axcodes="LPS")
    assert nib.aff2axcodes(nib.load(pi).affine) == ("L", "P", "S")
    np.testing.assert_array_equal(np.asarray(nib.as_closest_canonical(nib.load(pi)).dataobj), img)


@pytest.mark.parametrize("axcodes", ["LPS", "RAS"])
def test_truncated_gzip_inside_the_data_of_a_reoriented_file_is_one_data_error(tmp_path, axcodes):
    """Header intact, gzip stream cut inside the voxels: reorienting (LPS -> RAS) reads them, and must
    give the same DataError as every other malformed input (was a bare EOFError)."""
    pi, pl = write_spine(tmp_path, axcodes=axcodes)
    data = pi.read_bytes()
    pi.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="sub-01_img.nii.gz.*truncated or corrupt"):
        load_pair(pi, pl)
