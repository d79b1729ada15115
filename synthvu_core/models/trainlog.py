"""The training record of a generator folder: the per-step log (``training/log.csv``) and the montages
of synthetic VUs written during training (``training/montage_stepNNNNNNN.png``).

Reading is defensive: the log's columns are whatever the trainer wrote (``step``, ``epoch``,
``loss_d``, ``loss_g``, throughput, epsilon...); every column that holds numbers is returned, cells
that do not parse become NaN, and a folder without a log (older generators) gives None. Standard
library and numpy only (Pillow, loaded when a montage is read).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from synthvu_core.errors import CheckpointError

TRAINING_DIR = "training"
LOG_FILE = "log.csv"
MONTAGE = re.compile(r"montage_step(\d+)\.png")


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def read_log(folder: str | Path) -> dict[str, np.ndarray] | None:
    """Numeric columns of ``folder/training/log.csv`` as float arrays (``step`` first), or None where absent.

    Args:
        folder: a generator folder.
    """
    path = Path(folder) / TRAINING_DIR / LOG_FILE
    if not path.is_file():
        return None
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CheckpointError(f"{path}: unreadable training log ({e})") from None
    if not rows:
        return None
    columns: dict[str, np.ndarray] = {}
    for name in rows[0]:
        if name is None:
            continue
        values = np.array([_number(r.get(name) or "") for r in rows], dtype=float)
        if np.isfinite(values).any():
            columns[name.strip()] = values
    if "step" not in columns:
        columns = {"step": np.arange(1, len(rows) + 1, dtype=float), **columns}
    order = np.argsort(columns["step"], kind="stable")
    return {"step": columns["step"][order], **{k: v[order] for k, v in columns.items() if k != "step"}}


def montages(folder: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every training montage in ``folder/training``, by step."""
    found = []
    for p in (Path(folder) / TRAINING_DIR).glob("montage_step*.png"):
        m = MONTAGE.fullmatch(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


#: The layout training writes: one row per class (at most this many rows), this many samples per row.
MONTAGE_ROWS, MONTAGE_COLS = 12, 8


def montage_picture(path: str | Path, classes: list[str], tile_shape: tuple[int, int]) -> np.ndarray:
    """uint8 ``[height, width]`` picture of a training montage whose rows carry their class labels.

    Training writes the labels into the PNG. A montage written before that (exactly the unlabelled
    layout: one row per class, at most :data:`MONTAGE_ROWS`, :data:`MONTAGE_COLS` tiles of ``tile_shape``
    with 1-pixel gaps) gets them here, cut row by row; any other picture is returned as it is.
    """
    from PIL import Image

    from synthvu_core.data.dataset import label_rows

    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("L"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable training montage ({e})") from None
    rows = min(len(classes), MONTAGE_ROWS)
    h, w = tile_shape
    if rows == 0 or img.shape != (rows * (h + 1) - 1, MONTAGE_COLS * (w + 1) - 1):
        return img
    strips = [(str(classes[r]), img[r * (h + 1) : min((r + 1) * (h + 1), img.shape[0])]) for r in range(rows)]
    return label_rows(strips)
