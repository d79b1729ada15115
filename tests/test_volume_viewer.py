"""The viewer's planes: which axes each shows, which way up, and square millimetres."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import volumes


def unit() -> np.ndarray:
    """``[D=4, H=6, W=8]`` whose voxel value encodes its place: 60 d + 10 h + w."""
    d, h, w = np.meshgrid(np.arange(4), np.arange(6), np.arange(8), indexing="ij")
    return (60 * d + 10 * h + w).astype(np.uint8)


def test_each_plane_shows_its_axes_and_slice():
    u = unit()
    sag = volumes.plane(u, "sagittal", 2, px_per_mm=1)
    assert sag.shape == (6, 8) and sag[0, 0] == 120 and sag[5, 7] == 177  # superior up, anterior left
    cor = volumes.plane(u, "coronal", 3, px_per_mm=1)
    assert cor.shape == (6, 4) and cor[0, 0] == 3 and cor[0, 3] == 183 and cor[5, 0] == 53  # left on the left
    ax = volumes.plane(u, "axial", 1, px_per_mm=1)
    assert ax.shape == (8, 4) and ax[0, 0] == 10 and ax[7, 0] == 17 and ax[0, 3] == 190  # anterior up
    assert volumes.plane(u, "sagittal", 99, px_per_mm=1)[0, 0] == 180  # clipped to the last slice


def test_pixels_are_square_in_mm():
    u = unit()
    cor = volumes.plane(u, "coronal", 0, spacing=(2.0, 1.0, 1.0), px_per_mm=2)
    assert cor.shape == (6 * 2, 4 * 4)  # 1 mm rows, 2 mm columns
    assert volumes.unit_spacing({"dataset": {"spacing": [2, 1.5, 1.5]}}) == (2.0, 1.5, 1.5)
    assert volumes.unit_spacing({"extract": {"unit": "subvolume", "slice_mm": 1.0}}) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="unknown plane"):
        volumes.plane(u, "oblique", 0)


def test_orthogonal_tile_puts_the_three_mid_planes_side_by_side():
    u = np.zeros((4, 8, 6), np.uint8)
    u[2] = 10  # the sagittal mid-plane (depth 2 of 4)
    u[:, :, 3] += 1  # the coronal mid-plane (column 3 of 6)
    u[:, 4, :] += 100  # the axial mid-plane (row 4 of 8)
    t = volumes.orthogonal_tile(u, (1.0, 1.0, 1.0), px_per_mm=1, gap=2)
    assert t.shape == (8, 6 + 2 + 4 + 2 + 4)
    assert np.array_equal(t[:, :6], volumes.plane(u, "sagittal", 2, px_per_mm=1))
    assert (t[:, 6:8] == 0).all() and np.array_equal(t[:, 8:12], volumes.plane(u, "coronal", 3, px_per_mm=1))
    assert (t[0] [14:] == 0).all() and np.array_equal(t[1:7, 14:], volumes.plane(u, "axial", 4, px_per_mm=1))
