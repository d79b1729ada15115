"""Sources of a dataset (scanner, site, sequence) and intensity harmonisation between them at ingest.

Each VU records its **source** (column :data:`~synthvu_core.names.SOURCE_COLUMN`, ``site``): the name of the input
folder it came from, or the ``source`` column of an optional sidecar CSV (:func:`read_sources`).

Harmonisation is a histogram standardisation after Nyúl, Udupa and Zhang (IEEE TMI 19:143, 2000): the
intensity percentiles :data:`LANDMARKS` of each source's VU voxels (above 0, the fill outside the volume)
are mapped piecewise-linearly onto the mean landmarks of all sources (0 and 255 stay fixed). One
look-up table per source, applied to its uint8 VUs. The card records each source's landmarks and a
16-bin histogram before and after, and the largest 1-D Wasserstein distance (in uint8 units) between
two sources' intensity distributions before and after: the measured effect.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from synthvu_core.errors import DataError

METHOD = "nyul"
METHODS = (METHOD, "none")
LANDMARKS = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99)
_QUANTILES = np.linspace(0.5, 99.5, 100)  # grid of the Wasserstein distance
_BINS = 16


def read_sources(path: str | Path) -> dict[str, str]:
    """A sidecar CSV with columns ``image`` (an image file name, or ``FOLDER/NAME``) and ``source``."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise DataError(f"{path}: cannot read the sources CSV ({e.strerror or e})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a CSV file ({e})") from None
    if not rows or not {"image", "source"} <= set(rows[0]):
        raise DataError(f"{path}: the sources CSV needs the columns image and source (one row per image file)")
    out = {}
    for i, row in enumerate(rows, start=2):
        image, source = (row.get("image") or "").strip(), (row.get("source") or "").strip()
        if not image or not source:
            raise DataError(f"{path}: line {i} has an empty image or source")
        out[image] = source
    return out


def source_of(image: Path, table: dict[str, str] | None, where: str | Path | None = None) -> str:
    """The source of one image file: its folder's name, or its row of a sidecar ``table``."""
    if table is None:
        return image.parent.name
    for key in (f"{image.parent.name}/{image.name}", image.name):
        if key in table:
            return table[key]
    raise DataError(f"{where}: no row for image {image.parent.name}/{image.name} in the sources CSV")


#: At most this many VUs per source are measured (evenly spaced): landmarks need no more.
MAX_MEASURED = 2000


def _voxels(images: np.ndarray) -> np.ndarray:
    step = max(1, -(-len(images) // MAX_MEASURED))
    flat = images[::step].reshape(-1)
    return flat[flat > 0]


def _landmarks(values: np.ndarray) -> np.ndarray:
    return np.percentile(values, LANDMARKS) if len(values) else np.zeros(len(LANDMARKS))


def _lut(landmarks: np.ndarray, target: np.ndarray) -> np.ndarray:
    """uint8 look-up table taking ``landmarks`` to ``target`` piecewise-linearly (0 and 255 fixed)."""
    src = np.concatenate([[0.0], np.maximum.accumulate(landmarks), [255.0]])
    src = src + np.arange(len(src)) * 1e-6  # strictly increasing for np.interp
    dst = np.concatenate([[0.0], target, [255.0]])
    return np.clip(np.round(np.interp(np.arange(256), src, dst)), 0, 255).astype(np.uint8)


def _summary(values: np.ndarray) -> dict[str, Any]:
    hist = np.bincount(values // _BINS, minlength=256 // _BINS).astype(float) if len(values) else np.zeros(_BINS)
    return {
        "landmarks": [round(float(v), 2) for v in _landmarks(values)],
        "histogram": [round(float(v), 4) for v in hist / max(hist.sum(), 1)],
    }


def max_distance(per_source: dict[str, np.ndarray]) -> float | None:
    """Largest 1-D Wasserstein distance between two sources' voxel intensities (None with one source)."""
    q = {k: np.percentile(v, _QUANTILES) for k, v in per_source.items() if len(v)}
    pairs = [float(np.mean(np.abs(q[a] - q[b]))) for a, b in combinations(sorted(q), 2)]
    return round(max(pairs), 3) if pairs else None


def harmonise(images: np.ndarray, sources: Sequence[str], method: str = METHOD) -> tuple[np.ndarray, dict]:
    """Standardise each source's intensities (uint8 ``[N, C, H, W]``); returns the images and the card's record.

    With one source, or ``method="none"``, the images are returned unchanged (and measured).
    """
    if method not in METHODS:
        raise DataError(f"unknown harmonisation {method!r}; choose one of {', '.join(METHODS)}")
    sources = np.asarray(sources, dtype=str)
    names = sorted(set(sources.tolist()))
    before = {s: _voxels(images[sources == s]) for s in names}
    record: dict[str, Any] = {"method": method if len(names) > 1 else "none", "landmarks_percent": list(LANDMARKS)}
    out = images
    if record["method"] == METHOD:
        marks = {s: _landmarks(v) for s, v in before.items()}
        target = np.mean([marks[s] for s in names], axis=0)
        out = images.copy()
        for s in names:
            idx = np.flatnonzero(sources == s)
            out[idx] = _lut(marks[s], target)[images[idx]]
    after = {s: _voxels(out[sources == s]) for s in names}
    record["sources"] = {
        s: {"vus": int((sources == s).sum()), "before": _summary(before[s]), "after": _summary(after[s])}
        for s in names
    }
    record["max_distance_before"] = max_distance(before)
    record["max_distance_after"] = max_distance(after)
    return out, record
