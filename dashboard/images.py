"""Montages of VUs for ``st.image``: uint8 grids with thin separators (numpy only; the layout is
:func:`synthvu_core.data.dataset.tile_montage`)."""

from __future__ import annotations

import numpy as np

from synthvu_core.data.dataset import tile_montage, to_uint8

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
    """Montage rows stacked with their label (a level such as ``L4/L5``) written left of each row.

    ``rows``: ``(label, uint8 [h, w])`` pairs (e.g. :func:`montage` of one position). The label's
    height is ``label_share`` of the row's, so it stays readable however the picture is scaled.
    Returns uint8 ``[height, width]``: white labels on the separator colour.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not rows:
        raise ValueError("labelled_rows needs at least one row")
    height = max(img.shape[0] for _, img in rows)
    font = ImageFont.load_default(size=max(12, int(height * label_share)))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    label_w = max(int(probe.textlength(label, font=font)) for label, _ in rows) + height // 3
    width = label_w + max(img.shape[1] for _, img in rows)
    out = []
    for label, img in rows:
        canvas = Image.new("L", (width, height), SEPARATOR)
        canvas.paste(Image.fromarray(np.asarray(img, dtype=np.uint8)), (label_w, 0))
        ImageDraw.Draw(canvas).text((height // 6, height // 2), label, fill=255, font=font, anchor="lm")
        out.append(np.asarray(canvas))
    return np.concatenate(out, axis=0)
