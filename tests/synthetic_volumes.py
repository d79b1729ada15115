"""Small synthetic spines written as NIfTI pairs for the data tests (no real data needed).

The volume is designed in RAS+ world mm: bodies are boxes stacked along +z (superior), each a bit
brighter than the one below; a bright strip lies in front (+y, anterior) of the bodies and a
mid-grey canal behind them. Any on-disk orientation can be asked for.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (36, 44, 96)  # x (L->R), y (P->A), z (I->S), 1 mm voxels
PITCH = 18.0  # mm between body centres
ANTERIOR_MARKER = 250.0
CANAL = 120.0


def spine_arrays(
    codes=(20, 21, 22, 23, 24), *, tilt: float = 0.0, shape=SHAPE, pitch: float = PITCH
) -> tuple[np.ndarray, np.ndarray, list]:
    """float32 image and int16 labels ``[X, Y, Z]`` in RAS order, and the designed body centres (voxels).

    ``tilt`` shifts each body anteriorly by ``tilt`` mm per body (a leaning spine).
    """
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    img = np.full(shape, 20.0, np.float32)
    lab = np.zeros(shape, np.int16)
    cx, cy = shape[0] / 2, shape[1] / 2
    n = len(codes)
    centres = []
    for i, code in enumerate(codes):  # codes superior first: the first body is the highest
        cz = shape[2] / 2 + ((n - 1) / 2 - i) * pitch
        by = cy + tilt * ((n - 1) / 2 - i)
        body = (abs(x - cx) <= 9) & (abs(y - by) <= 7) & (abs(z - cz) <= 6)
        img[body] = 100.0 + 20.0 * (n - i)
        lab[body] = code
        centres.append((cx, by, cz))
    img[(abs(x - cx) <= 9) & (y >= cy + 9) & (y <= cy + 11)] = ANTERIOR_MARKER
    img[(abs(x - cx) <= 4) & (y >= cy - 14) & (y <= cy - 10)] = CANAL
    return img, lab, centres


def write_pair(folder: Path, stem: str, img: np.ndarray, lab: np.ndarray, *, axcodes: str = "RAS",
               affine: np.ndarray | None = None, suffix: str = ".nii.gz") -> tuple[Path, Path]:
    """Write RAS-ordered arrays as ``<stem>_img`` / ``<stem>_vert`` in the orientation ``axcodes``."""
    folder.mkdir(parents=True, exist_ok=True)
    aff = np.diag([1.0, 1.0, 1.0, 1.0]) if affine is None else affine
    aff = aff.copy()
    aff[:3, 3] = [-10.0, 25.0, -300.0]
    out = []
    for arr, kind in ((img, "img"), (lab, "vert")):
        nii = nib.Nifti1Image(arr, aff)
        if axcodes != "RAS":
            t = nib.orientations.ornt_transform(
                nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt(tuple(axcodes))
            )
            nii = nii.as_reoriented(t)
        path = folder / f"{stem}_{kind}{suffix}"
        nib.save(nii, str(path))
        out.append(path)
    return out[0], out[1]


def write_spine(folder: Path, stem: str = "sub-01", codes=(20, 21, 22, 23, 24), **kwargs) -> tuple[Path, Path]:
    extra = {k: kwargs.pop(k) for k in ("shape", "pitch") if k in kwargs}
    img, lab, _ = spine_arrays(codes, tilt=kwargs.pop("tilt", 0.0), **extra)
    return write_pair(folder, stem, img, lab, **kwargs)
