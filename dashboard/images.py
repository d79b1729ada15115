"""Montages of VUs for ``st.image``: uint8 grids with thin separators (numpy only)."""

from __future__ import annotations

import numpy as np

SEPARATOR = 0  # separator grey level (black lines, as in the study's figures)


def as_uint8(images: np.ndarray) -> np.ndarray:
    """float in [-1, 1] or uint8 ``[n, C, H, W]`` -> uint8 ``[n, C, H, W]``."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint((images.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _grid(tiles: np.ndarray, ncols: int, gap: int) -> np.ndarray:
    """``[n, H, W]`` uint8 -> one ``[rows*(H+gap)+gap, ncols*(W+gap)+gap]`` image."""
    n, h, w = tiles.shape
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    out = np.full((nrows * (h + gap) + gap, ncols * (w + gap) + gap), SEPARATOR, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        out[y : y + h, x : x + w] = tiles[i]
    return out


def montage(images: np.ndarray, slice_index: int | None = None, ncols: int = 8, gap: int = 2, zoom: int = 2) -> np.ndarray:
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
    if slice_index is None:
        grid = _grid(u8.reshape(n * c, h, w), ncols=c, gap=gap)
    else:
        if not 0 <= slice_index < c:
            raise ValueError(f"slice {slice_index} outside 0..{c - 1}")
        grid = _grid(u8[:, slice_index], ncols=ncols, gap=gap)
    if zoom > 1:
        grid = np.repeat(np.repeat(grid, zoom, axis=0), zoom, axis=1)
    return grid


def strip(images: np.ndarray, zoom: int = 2) -> np.ndarray:
    """One row of tiles (e.g. the steps of an interpolation at one slice): ``[n, H, W]`` -> uint8 image."""
    u8 = as_uint8(images[:, None] if np.asarray(images).ndim == 3 else images)
    return montage(u8, slice_index=0, ncols=len(u8), zoom=zoom)
