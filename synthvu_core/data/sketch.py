"""Telling a rebuild of the same dataset from another dataset.

A dataset's fingerprint hashes its image bytes. numpy picks its float kernels by CPU (AVX-512, AVX2, NEON), so the
same phantom recipe or the same NIfTI files built on another machine may differ by one grey level in a few voxels:
another fingerprint, the same data (measured: the 120-patient demo phantom built with numpy's AVX-512 kernels and
with its AVX2 kernels differs in 0.0003 % of the voxels, by one grey level each). A content sketch tells the two
apart: sums of the uint8 voxels over fixed groups of VUs and over image regions, with the shape and a hash of the VU
table. A rebuild moves those sums by at most the voxels that moved; another dataset moves them by whole VUs.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from synthvu_core.data.dataset import VUDataset

#: VUs are summed in at most this many groups (VU index modulo the number; one VU per group up to it). With ~9 VUs
#: per group (a 400-patient phantom), noise of zero mean added to every voxel no longer cancels within a group.
MAX_VU_GROUPS = 1024
#: The most a rebuild's sums may move: the mean absolute difference per voxel, in grey levels, that they allow.
#: Rebuilds on another CPU moved them by 3e-6 (the demo phantom) and 6e-6 (a 167-patient phantom); one of the demo's
#: 2,760 VUs replaced by another moves them by 3e-3, one grey level more in 1 % of its VUs by 1e-2, zero-mean noise
#: of 1 grey level (sd) added to every voxel of a 9,200-VU phantom by 1.5e-3, another phantom seed by 4.
REBUILD_TOLERANCE = 1e-3


def units_digest(units: pd.DataFrame) -> str:
    """sha256 (16 hex digits) of the VU table's identities (patient, level, source), in row order."""
    buf = io.StringIO()
    units[["patient_id", "level", "source"]].astype(str).to_csv(buf, index=False)
    return hashlib.sha256(buf.getvalue().encode()).hexdigest()[:16]


def content_sketch(images: np.ndarray, units: pd.DataFrame, groups: int | None = None) -> dict[str, Any]:
    """The sketch of uint8 VU images ``[N, C, H, W]`` and their table: JSON-ready, at most about 10 kB. ``groups``:
    the number of VU groups (default ``min(N, MAX_VU_GROUPS)``; a stored sketch's own, to compare with it)."""
    x = np.asarray(images)
    n, c, h, w = x.shape
    per_vu = x.reshape(n, -1).sum(axis=1, dtype=np.int64)
    groups = np.zeros(max(1, min(n, groups or MAX_VU_GROUPS)), dtype=np.int64)
    np.add.at(groups, np.arange(n) % len(groups), per_vu)
    hh, ww = h // 2, w // 2  # slice × quadrant sums over all VUs (an odd row or column is left out)
    regions = x[:, :, : 2 * hh, : 2 * ww].reshape(n, c, 2, hh, 2, ww).sum(axis=(0, 3, 5), dtype=np.int64)
    return {"shape": [int(v) for v in x.shape], "units": units_digest(units),
            "vu_groups": groups.tolist(), "regions": regions.ravel().tolist()}


def sketch_distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float | None:
    """A lower bound of the mean absolute difference per voxel (grey levels) between the datasets of two sketches;
    None where they cannot be the same dataset (other shape or VU table) or a sketch is unreadable."""
    try:
        if list(a["shape"]) != list(b["shape"]) or a["units"] != b["units"]:
            return None
        voxels = float(np.prod(a["shape"]))
        parts = [np.abs(np.asarray(a[k], np.int64) - np.asarray(b[k], np.int64)).sum() / voxels
                 for k in ("vu_groups", "regions")]
    except (KeyError, TypeError, ValueError):
        return None
    return float(max(parts))


def is_rebuild(images: np.ndarray, units: pd.DataFrame, expected: Mapping[str, Any] | None) -> bool:
    """Whether ``images``/``units`` are the dataset of the ``expected`` sketch up to one-grey-level rounding."""
    if not isinstance(expected, Mapping) or not isinstance(expected.get("vu_groups"), list):
        return False
    d = sketch_distance(content_sketch(images, units, groups=len(expected["vu_groups"])), expected)
    return d is not None and d <= REBUILD_TOLERANCE


def same_dataset(
    dataset: VUDataset, fingerprint: str | None, sketch: Mapping[str, Any] | None = None, *, notice: bool = False
) -> bool:
    """Whether ``dataset`` (a :class:`~synthvu_core.data.dataset.VUDataset`) is the one of ``fingerprint``: the same
    bytes, or, given that dataset's ``sketch``, a rebuild of it on another machine (:func:`is_rebuild`; with
    ``notice``, one line on stderr says so)."""
    if fingerprint is None or dataset.fingerprint == fingerprint:
        return True
    if not is_rebuild(dataset.images, dataset.units, sketch):
        return False
    if notice:
        import sys

        where = str(dataset.root) if getattr(dataset, "root", None) is not None else "the dataset given"
        print(f"synthvu: {rebuild_notice(where, dataset, fingerprint)}", file=sys.stderr)
    return True


def rebuild_notice(where: str, dataset: VUDataset, fingerprint: str) -> str:
    """One line for a dataset accepted as a rebuild of the dataset of ``fingerprint``."""
    return (f"{where}: this build (fingerprint {dataset.fingerprint}) is a rebuild of the generator's dataset "
            f"({fingerprint}) that differs by rounding only (its content sketch is within {REBUILD_TOLERANCE} grey "
            "levels per voxel): numbers computed on it may differ slightly from those computed on the original")
