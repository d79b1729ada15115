"""Three orthogonal planes of a sub-volume (or of a VU, whose slices are its depth) as pictures with square mm.

A unit ``[D, H, W]`` has the VU axes: ``D`` left -> right, ``H`` superior -> inferior, ``W`` anterior ->
posterior. The sagittal plane is ``[H, W]`` at a depth, the coronal plane ``[H, D]`` at a column (the patient's
left on the picture's left) and the axial plane ``[W, D]`` at a row (anterior up). Each picture is enlarged with
nearest neighbours so that one pixel is the same number of mm along both of its axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PLANES: tuple[str, ...] = ("sagittal", "coronal", "axial")
#: Axis of ``[D, H, W]`` that each plane's slider moves along.
PLANE_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 2, "axial": 1}


def _stretch(img: np.ndarray, mm_rows: float, mm_cols: float, px_per_mm: float) -> np.ndarray:
    rows = max(1, int(round(mm_rows * px_per_mm)))
    cols = max(1, int(round(mm_cols * px_per_mm)))
    r = np.minimum((np.arange(img.shape[0] * rows) // rows), img.shape[0] - 1)
    c = np.minimum((np.arange(img.shape[1] * cols) // cols), img.shape[1] - 1)
    return img[r][:, c]


def plane(unit: np.ndarray, name: str, index: int, spacing: Sequence[float] = (1.0, 1.0, 1.0),
          px_per_mm: float = 2.0) -> np.ndarray:
    """One plane of ``unit`` (uint8 ``[D, H, W]``) at ``index`` along :data:`PLANE_AXIS`, as uint8 with square mm.

    ``spacing`` is the voxel size in mm along ``(D, H, W)``; ``px_per_mm`` the picture's pixels per mm.
    """
    if name not in PLANES:
        raise ValueError(f"unknown plane {name!r}; choose one of {', '.join(PLANES)}")
    axis = PLANE_AXIS[name]
    index = int(np.clip(index, 0, unit.shape[axis] - 1))
    sd, sh, sw = (float(s) for s in spacing)
    if name == "sagittal":
        img, mm = unit[index], (sh, sw)
    elif name == "coronal":
        img, mm = unit[:, :, index].T, (sh, sd)
    else:
        img, mm = unit[:, index, :].T, (sw, sd)
    return _stretch(np.ascontiguousarray(img, dtype=np.uint8), *mm, px_per_mm)


def unit_spacing(card: dict) -> tuple[float, float, float]:
    """Voxel size (mm) along ``(D, H, W)`` of a generator card (``dataset.spacing``) or a dataset card's extract."""
    spacing = (card.get("dataset") or {}).get("spacing")
    if spacing and len(spacing) == 3:
        return tuple(float(s) for s in spacing)  # type: ignore[return-value]
    extract = card.get("extract") or {}
    if extract.get("unit") == "subvolume":
        s = float(extract["slice_mm"])
        return (s, s, s)
    return (float(extract.get("slice_mm", 2.0)), 1.0, 1.0)


def orthogonal_tile(unit: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0), px_per_mm: float = 1.0,
                    gap: int = 2) -> np.ndarray:
    """The three mid-planes of ``unit`` (uint8 ``[D, H, W]``) side by side with square mm: sagittal, coronal,
    axial, each centred in the tallest plane's height, ``gap`` black pixels between them (uint8 ``[rows, cols]``)."""
    mids = {name: unit.shape[PLANE_AXIS[name]] // 2 for name in PLANES}
    pics = [plane(unit, name, mids[name], spacing, px_per_mm) for name in PLANES]
    rows = max(p.shape[0] for p in pics)
    parts: list[np.ndarray] = []
    for i, p in enumerate(pics):
        top = (rows - p.shape[0]) // 2
        parts.append(np.pad(p, ((top, rows - p.shape[0] - top), (0, 0))))
        if i < len(pics) - 1:
            parts.append(np.zeros((rows, gap), np.uint8))
    return np.concatenate(parts, axis=1)
