"""UMAP overlay: fitted on real training VUs, synthetic VUs projected in (the published study).

Features are the flattened VU pixels (the study's choice; ``features="embedding"`` uses the
classifier embedding instead), reduced by PCA (fitted on the same set as UMAP) to at most 50
dimensions, then UMAP with ``n_neighbors=20, min_dist=0.0`` and a fixed seed. ``joint=True`` fits
PCA and UMAP on real training and synthetic VUs together (a toggle; the default follows the study).
No reported number is computed from these 2-D coordinates except the study's UMAP-space attacks.

Below umap-learn's small-data threshold (4,096 fitted points) UMAP finds exact neighbours by calling
its numba distance once per pair through scikit-learn's Python loop: about 40 s to place 5,000
synthetic VUs against 1,656 real ones on two cores. There we hand UMAP the same exact Euclidean
distances computed by scikit-learn's BLAS kernel (``metric="precomputed"``, supported by ``fit`` and
``transform``): the same neighbours, fit 2.6x and transform 7.5x faster (measured in one process).
Larger fits keep UMAP's own approximate (NN-descent) path.

umap-learn compiles its numba kernels (neighbour search, fuzzy simplicial set, layout) afresh in every process:
about 12 CPU-seconds of a 15-second first fit of the demo cohort, paid by every `evaluate`. :func:`umap_module`
turns on numba's own on-disk cache for those kernels (``Dispatcher.enable_caching``, numba's standard cache next
to the package or in the user's cache directory), so that only the first process on a machine compiles them; the
compiled code, and so every coordinate, is the same.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

#: umap-learn's exact-neighbour ("small data") regime: below this many fitted points distances are precomputed
SMALL_DATA = 4096
# UMAP's notices about its own settings ("n_jobs overridden by random_state", "Transforming new data with precomputed
# metric"), silenced once for the process: a `catch_warnings` block around each fit or transform is not thread-safe,
# and the evaluation runs them on two workers (an interleaved exit would leave every warning silenced).
warnings.filterwarnings("ignore", category=UserWarning, module=r"umap(\.|$)")


@dataclass(frozen=True)
class UMAPConfig:
    n_neighbors: int = 20
    min_dist: float = 0.0
    pca_dims: int = 50
    joint: bool = False
    features: str = "pixel"  # "pixel" | "embedding"


def enable_numba_cache(package: str) -> int:
    """Turn on numba's on-disk cache for every compiled function of ``package``'s imported modules that has none;
    returns how many were turned on."""
    import sys

    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    count = 0
    for name, module in list(sys.modules.items()):
        if module is None or (name != package and not name.startswith(package + ".")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher) and isinstance(value._cache, NullCache):
                value.enable_caching()
                count += 1
    return count


def umap_module() -> Any:
    """``umap`` (umap-learn), imported once per process with its numba kernels cached on disk."""
    import umap

    if not getattr(umap, "_synthvu_cached", False):
        enable_numba_cache("umap")
        umap._synthvu_cached = True
    return umap


def _flat(x: np.ndarray) -> np.ndarray:
    from synthvu_core.evaluation.encoder import as_float

    return as_float(x).reshape(len(x), -1)


@dataclass
class UMAPProjection:
    """A fitted PCA + UMAP; :meth:`transform` maps ``[n, ...]`` features to ``[n, 2]``."""

    pca: Any
    umap: Any
    fitted_on: str  # "real_train" | "joint"
    fit_points: np.ndarray | None = None  # PCA coordinates of the fitted set where UMAP got precomputed distances

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``[n, ...]`` -> ``[n, 2]`` (one call: UMAP's optimisation of new points depends on the batch)."""
        if len(x) == 0:
            return np.empty((0, 2), dtype=np.float32)
        z = self.pca.transform(_flat(x))
        if self.fit_points is not None:
            from sklearn.metrics import pairwise_distances

            z = pairwise_distances(z, self.fit_points)  # [n, n_fit]
        return np.asarray(self.umap.transform(z), dtype=np.float32)


def fit_umap(
    real_train: np.ndarray, synthetic: np.ndarray | None = None, *, config: UMAPConfig = UMAPConfig(), seed: int = 0
) -> tuple[UMAPProjection | None, np.ndarray | None, np.ndarray | None, str | None]:
    """Fit on ``real_train`` (or real + synthetic when ``config.joint``).

    Returns ``(projection, real_2d [n, 2], synthetic_2d [m, 2] or None, None)`` or
    ``(None, None, None, reason)`` when there are too few points for a neighbour graph.
    """
    from sklearn.decomposition import PCA
    from sklearn.metrics import pairwise_distances

    n = len(real_train)
    if n < 5:
        return None, None, None, f"UMAP needs at least 5 real training VUs (have {n})"
    umap = umap_module()

    real = _flat(real_train)
    syn = _flat(synthetic) if synthetic is not None and len(synthetic) else None
    fit_x = np.concatenate([real, syn]) if config.joint and syn is not None else real
    k = int(min(config.pca_dims, fit_x.shape[1], len(fit_x) - 1))
    pca = PCA(n_components=k, random_state=seed, svd_solver="randomized" if k < min(fit_x.shape) // 2 else "auto").fit(
        fit_x
    )
    fit_z = pca.transform(fit_x)
    exact = len(fit_z) < SMALL_DATA
    reducer = umap.UMAP(
        n_neighbors=int(min(config.n_neighbors, len(fit_x) - 1)),
        min_dist=config.min_dist,
        n_components=2,
        random_state=seed,
        metric="precomputed" if exact else "euclidean",
    )
    coords = np.asarray(reducer.fit_transform(pairwise_distances(fit_z) if exact else fit_z), dtype=np.float32)
    proj = UMAPProjection(
        pca, reducer, "joint" if config.joint and syn is not None else "real_train", fit_z if exact else None
    )
    if config.joint and syn is not None:
        return proj, coords[:n], coords[n:], None
    syn_2d = proj.transform(synthetic) if syn is not None else None
    return proj, coords, syn_2d, None
