"""Read and validate an image / vertebral-label NIfTI pair.

:func:`load_pair` returns a :class:`Volume` in canonical RAS+ voxel order (``nibabel.as_closest_canonical``:
a lossless flip/transpose, no interpolation) together with the source file's affine, so that VU
centres can be reported in the voxel coordinates of the file the user owns.

Checks (each failure raises :class:`~synthvu_core.errors.DataError` naming the file):
readable NIfTI, 3-D (a trailing singleton 4th axis is dropped), image and labels of the same shape,
affines equal within ``affine_tol`` mm, finite intensities, integer labels, at least one labelled
body, label codes known to the VerSe scheme (or covered by a user ``mapping``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthvu_core import levels
from synthvu_core.errors import DataError

#: Largest difference (mm) tolerated between the image's and the label map's affine entries.
AFFINE_TOL_MM = 1e-3
#: Most voxels a volume may have (checked from the header, before any voxel is read): 2**28 voxels are 1 GiB as
#: float32; a spine MRI has a few tens of millions. Reading one volume holds about :data:`BYTES_PER_VOXEL` each.
MAX_VOXELS = 1 << 28
BYTES_PER_VOXEL = 16  # float32 image + int16 labels + the file's own dtype and the reoriented copies


@dataclass
class Volume:
    """A validated image / label pair in canonical RAS+ voxel order.

    ``image`` float32 ``[X, Y, Z]``; ``labels`` int16 ``[X, Y, Z]`` holding VerSe codes (0 = background);
    ``affine`` (4×4) maps canonical voxel indices to world mm (RAS+); ``source_affine`` maps the voxel
    indices of the file on disk to the same world.
    """

    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    source_affine: np.ndarray
    image_path: Path
    label_path: Path
    source_shape: tuple[int, int, int] = (0, 0, 0)
    codes: list[int] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (mm) along the three canonical axes."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    def world_to_source_voxel(self, points: np.ndarray) -> np.ndarray:
        """World mm ``[n, 3]`` -> voxel coordinates ``[n, 3]`` of the file on disk."""
        inv = np.linalg.inv(self.source_affine)
        return np.asarray(points, float) @ inv[:3, :3].T + inv[:3, 3]


def _reason(e: BaseException, path: Path) -> str:
    """A library exception as one short line (no newline, the path said once by the caller)."""
    text = " ".join(str(e).replace(str(path), path.name).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def _read(path: Path, what: str):
    import nibabel as nib

    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        img = nib.load(str(path))
    except Exception as e:  # nibabel raises many types for corrupt headers
        raise DataError(f"{path}: not a readable NIfTI {what} ({_reason(e, path)})") from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise DataError(f"{path}: {what} is {type(img).__name__}, expected NIfTI (.nii / .nii.gz)")
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
        shape = img.shape
    if len(shape) != 3:
        raise DataError(f"{path}: {what} must be a 3-D volume, got shape {tuple(shape)}")
    _check_size(path, what, tuple(int(n) for n in shape))
    return img


def _check_size(path: Path, what: str, shape: tuple[int, ...]) -> None:
    """Refuse a volume whose header asks for more than :data:`MAX_VOXELS` voxels (before any allocation)."""
    n = int(np.prod(shape, dtype=np.float64))
    if n > MAX_VOXELS:
        need = n * BYTES_PER_VOXEL / 2**30
        raise DataError(f"{path}: {what} of {'x'.join(map(str, shape))} voxels would need about {need:.1f} GiB of "
                        f"memory; at most {MAX_VOXELS:,} voxels are read ({MAX_VOXELS * 4 / 2**30:.0f} GiB as "
                        "float32): crop or resample it")


def _data(img, path: Path, what: str) -> np.ndarray:
    try:
        return np.asanyarray(img.dataobj)
    except Exception as e:  # truncated gzip: EOFError, zlib.error, OSError ...
        raise DataError(
            f"{path}: cannot read {what} voxels, the file looks truncated or corrupt ({_reason(e, path)})"
        ) from None


def _canonical(img, path: Path, what: str):
    """``nibabel.as_closest_canonical``; reorienting reads the voxels, so a truncated file fails here."""
    import nibabel as nib

    try:
        return nib.as_closest_canonical(img)
    except Exception as e:  # truncated gzip inside the data: EOFError, zlib.error, OSError ...
        why = _reason(e, path)
        raise DataError(f"{path}: cannot read {what} voxels, the file looks truncated or corrupt ({why})") from None


def _label_values(lab: np.ndarray) -> list[int]:
    """Distinct values of an integer array (a histogram when the range is small: much faster than np.unique)."""
    lo, hi = int(lab.min()), int(lab.max())
    if hi - lo <= 65535:
        flat = lab.ravel().astype(np.intp, copy=False)
        counts = np.bincount(flat - lo if lo else flat, minlength=hi - lo + 1)
        return [int(v) + lo for v in np.flatnonzero(counts)]
    return [int(v) for v in np.unique(lab)]


def load_pair(
    image: str | Path,
    labels: str | Path,
    mapping: Mapping[int, int] | None = None,
    *,
    affine_tol: float = AFFINE_TOL_MM,
) -> Volume:
    """Load, validate and reorient an image / label-map pair.

    ``mapping`` (source label -> VerSe code, see :func:`synthvu_core.levels.parse_mapping`) renames the
    label values first; labels absent from a given mapping are an error, as are unknown VerSe codes.
    """

    image, labels = Path(image), Path(labels)
    img = _read(image, "image")
    lbl = _read(labels, "label map")
    if img.shape != lbl.shape:
        raise DataError(f"{labels}: label map shape {tuple(lbl.shape)} differs from image {image.name} "
                        f"shape {tuple(img.shape)}")
    if not np.allclose(img.affine, lbl.affine, rtol=0, atol=affine_tol):
        diff = float(np.abs(img.affine - lbl.affine).max())
        raise DataError(f"{labels}: affine differs from image {image.name} by up to {diff:.4g} mm "
                        f"(tolerance {affine_tol} mm)")
    if not np.isfinite(img.affine).all() or abs(np.linalg.det(img.affine[:3, :3])) < 1e-9:
        raise DataError(f"{image}: degenerate affine (singular or non-finite)")
    source_affine = np.asarray(img.affine, dtype=float)
    source_shape = tuple(int(n) for n in img.shape)

    img = _canonical(img, image, "image")
    lbl = _canonical(lbl, labels, "label map")
    vol = _data(img, image, "image")
    lab = _data(lbl, labels, "label map")

    if not np.issubdtype(vol.dtype, np.number) or np.iscomplexobj(vol):
        raise DataError(f"{image}: image data type {vol.dtype} is not real-valued")
    vol = np.asarray(vol, dtype=np.float32)
    if not np.isfinite(vol).all():
        n_bad = int((~np.isfinite(vol)).sum())
        raise DataError(f"{image}: image holds {n_bad} non-finite (NaN/inf) intensities")

    lab = np.asarray(lab)
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.issubdtype(lab.dtype, np.floating) or not np.isfinite(lab).all():
            raise DataError(f"{labels}: label map data type {lab.dtype} is not integer")
        if not np.array_equal(lab, np.round(lab)):
            raise DataError(f"{labels}: label map holds non-integer values (is it an image, not a label map?)")
    lab = lab.astype(np.int64, copy=False) if lab.dtype.kind not in "iu" or lab.dtype.itemsize > 4 else lab
    present = [c for c in _label_values(lab) if c != 0]
    if not present:
        raise DataError(f"{labels}: label map is empty (no labelled vertebral body)")
    if mapping:
        unmapped = [c for c in present if c not in mapping]
        if unmapped:
            raise DataError(f"{labels}: label values {unmapped} are not in the label mapping")
        if min(present) < 0:
            raise DataError(f"{labels}: negative label values {[c for c in present if c < 0]}")
        lut = np.zeros(max(present) + 1, dtype=np.int64)
        for src, dst in mapping.items():
            if 0 <= src < len(lut):
                lut[src] = dst
        lab = lut[lab]
        present = sorted({int(mapping[c]) for c in present})
    unknown = [c for c in present if not levels.is_known(c)]
    if unknown:
        raise DataError(
            f"{labels}: label values {unknown} are not VerSe vertebra codes (C1-C7=1-7, T1-T12=8-19, "
            "L1-L5=20-24, L6=25, S1=26, T13=28); give a label mapping (--mapping)"
        )
    return Volume(
        image=np.ascontiguousarray(vol),
        labels=np.ascontiguousarray(lab.astype(np.int16)),
        affine=np.asarray(img.affine, dtype=float),
        source_affine=source_affine,
        image_path=image,
        label_path=labels,
        source_shape=source_shape,  # type: ignore[arg-type]
        codes=levels.sort_codes(present),
    )
