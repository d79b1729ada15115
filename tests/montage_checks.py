"""Checks shared by the montage tests: the tiles of a montage and that its rows carry the right labels."""

from __future__ import annotations

import numpy as np

from synthvu_core.models.sampling import montage_image
from synthvu_core.models.trainlog import MONTAGE_COLS


def grid_of(img: np.ndarray, rows: int, cols: int, h: int, w: int) -> np.ndarray:
    """The ``[rows, cols, h, w]`` tiles at the right of a montage (1-pixel gaps, no margin)."""
    right = img[:, img.shape[1] - (cols * (w + 1) - 1) :]
    return np.stack(
        [np.stack([right[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] for c in range(cols)])
         for r in range(rows)]
    )


def assert_rows_labelled(img: np.ndarray, labels: list[str], h: int, w: int, cols: int = MONTAGE_COLS) -> None:
    """``img`` is exactly the montage of its own tiles with ``labels`` on its rows, one per row, in order."""
    tiles = grid_of(img, len(labels), cols, h, w)
    expected = np.asarray(montage_image(tiles, labels))
    assert img.shape[1] > cols * (w + 1) - 1, "no label column"
    np.testing.assert_array_equal(img, expected)
