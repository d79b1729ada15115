"""Montages of VUs for ``st.image``: uint8 grids with thin separators (numpy only; the layout is
:func:`synthvu_core.data.dataset.tile_montage`)."""

from __future__ import annotations

import numpy as np

from synthvu_core.data.dataset import label_rows, tile_montage, to_uint8

SEPARATOR = 0  # separator grey level (black lines, as in the study's figures)


def as_uint8(images: np.ndarray) -> np.ndarray:
    """float in [-1, 1] or uint8 ``[n, C, H, W]`` -> uint8 ``[n, C, H, W]``."""
    images = np.asarray(images)
    return images if images.dtype == np.uint8 else to_uint8(images)


def montage(
    images: np.ndarray, slice_index: int | None = None, ncols: int = 8, gap: int = 2, zoom: int = 2
) -> np.ndarray:
    """A grid of VUs.

    ``images``: ``[n, C, H, W]`` (float in [-1, 1] or uint8). With ``slice_index`` each tile is that
    slice of one VU (``ncols`` VUs per row); without it each row is one VU and its C slices left to
    right, as in the study's figures. ``zoom`` repeats pixels (nearest neighbour) for a crisp display.
    Returns uint8 ``[height, width]``.
    """
    u8 = as_uint8(images)
    if u8.ndim != 4 or len(u8) == 0:
        raise ValueError(f"montage needs [n, C, H, W] with n > 0, got shape {u8.shape}")
    n, c, h, w = u8.shape
    if slice_index is not None and not 0 <= slice_index < c:
        raise ValueError(f"slice {slice_index} outside 0..{c - 1}")
    tiles, ncols = (u8.reshape(n * c, h, w), c) if slice_index is None else (u8[:, slice_index], ncols)
    zoom = max(zoom, 1)  # separators are zoomed with the tiles
    return tile_montage(tiles, ncols, gap=gap * zoom, fill=SEPARATOR, zoom=zoom)


def strip(images: np.ndarray, zoom: int = 2) -> np.ndarray:
    """One row of tiles (e.g. the steps of an interpolation at one slice): ``[n, H, W]`` -> uint8 image."""
    u8 = as_uint8(images[:, None] if np.asarray(images).ndim == 3 else images)
    return montage(u8, slice_index=0, ncols=len(u8), zoom=zoom)


def labelled_rows(rows: list[tuple[str, np.ndarray]], label_share: float = 0.45) -> np.ndarray:
    """Montage rows stacked with their label (a level such as ``L4/L5``) written left of each row: white
    labels on the separator colour (:func:`synthvu_core.data.dataset.label_rows`)."""
    return label_rows(rows, fill=SEPARATOR, ink=255, label_share=label_share)


def rows_by_position(
    images: np.ndarray, labels: np.ndarray, classes: list[str], slice_index: int, ncols: int = 8, zoom: int = 2
) -> np.ndarray:
    """One slice of every VU, grouped by position: each row holds up to ``ncols`` VUs of one position and is
    labelled with it (positions in the generator's class order; a short row is padded with the separator
    colour). Returns uint8 ``[height, width]``."""
    u8 = as_uint8(images)
    labels = np.asarray(labels)
    rows = []
    for k, name in enumerate(classes):
        mine = u8[labels == k]
        for start in range(0, len(mine), ncols):
            rows.append((name, montage(mine[start : start + ncols], slice_index=slice_index, ncols=ncols, zoom=zoom)))
    if not rows:
        raise ValueError("rows_by_position needs at least one VU of a known position")
    return labelled_rows(rows)


def rows_per_vu(images: np.ndarray, labels: np.ndarray, classes: list[str], zoom: int = 2) -> np.ndarray:
    """Every slice of each VU, one VU per row (the study's layout), each row labelled with its position."""
    u8 = as_uint8(images)
    return labelled_rows([(classes[int(k)], montage(u8[i : i + 1], zoom=zoom)) for i, k in enumerate(labels)])
