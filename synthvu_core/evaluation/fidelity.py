"""Fidelity in embedding space: Fréchet distance and precision / recall / density / coverage.

* Fréchet distance between Gaussians fitted to real-holdout and synthetic embeddings (an in-domain
  FID): ``|mu_r - mu_s|^2 + Tr(S_r + S_s - 2 (S_r^1/2 S_s S_r^1/2)^1/2)``, computed with symmetric
  eigendecompositions (exact, no complex ``sqrtm`` residue).
* PRDC (Naeem et al. 2020, k = 5): each real point's ball has the radius of its k-th nearest real
  neighbour (itself excluded); precision = share of synthetic inside any real ball; recall = share of
  real inside any synthetic ball (synthetic radii); density = mean number of real balls containing a
  synthetic point, divided by k; coverage = share of real balls containing at least one synthetic
  point. "Inside" is strict (``d < radius``), as in the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(real: np.ndarray, synthetic: np.ndarray) -> float | None:
    """Fréchet distance between ``real`` ``[n, D]`` and ``synthetic`` ``[m, D]`` (None if n or m < 2)."""
    real = np.asarray(real, dtype=np.float64)
    synthetic = np.asarray(synthetic, dtype=np.float64)
    if len(real) < 2 or len(synthetic) < 2:
        return None
    mu1, mu2 = real.mean(0), synthetic.mean(0)
    s1 = np.atleast_2d(np.cov(real, rowvar=False))
    s2 = np.atleast_2d(np.cov(synthetic, rowvar=False))
    r = _sqrt_psd(s1)
    m = r @ s2 @ r
    tr_cross = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())
    fd = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_cross)
    return max(fd, 0.0)


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    d, _ = nn.kneighbors(x)
    return d[:, k]


def _within_counts(
    points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """For each point: number of ``centres`` balls containing it; for each centre: whether any point is inside."""
    from scipy.spatial.distance import cdist

    counts = np.zeros(len(points), dtype=np.int64)
    covered = np.zeros(len(centres), dtype=bool)
    for s in range(0, len(points), chunk):
        inside = cdist(points[s : s + chunk], centres) < radii[None, :]
        counts[s : s + chunk] = inside.sum(1)
        covered |= inside.any(0)
    return counts, covered


@dataclass
class PRDC:
    precision: float | None
    recall: float | None
    density: float | None
    coverage: float | None


def prdc(real: np.ndarray, synthetic: np.ndarray, k: int = 5) -> tuple[PRDC, str | None]:
    """Precision, recall, density, coverage of ``synthetic`` ``[m, D]`` against ``real`` ``[n, D]``.

    Returns ``(PRDC, None)``, or all-None with a reason when a set has ``k`` points or fewer.
    """
    if len(real) <= k or len(synthetic) <= k:
        return PRDC(
            None, None, None, None
        ), f"needs more than k={k} real and synthetic points (have {len(real)}, {len(synthetic)})"
    real = np.asarray(real, dtype=np.float64).reshape(len(real), -1)
    synthetic = np.asarray(synthetic, dtype=np.float64).reshape(len(synthetic), -1)
    r_real = _kth_radius(real, k)
    r_syn = _kth_radius(synthetic, k)
    counts, covered = _within_counts(synthetic, real, r_real)
    real_in_syn, _ = _within_counts(real, synthetic, r_syn)
    return (
        PRDC(
            precision=float((counts > 0).mean()),
            recall=float((real_in_syn > 0).mean()),
            density=float(counts.sum() / (k * len(synthetic))),
            coverage=float(covered.mean()),
        ),
        None,
    )


FIDELITY_METRICS: tuple[str, ...] = ("frechet_distance", "precision", "recall", "density", "coverage")


def equal_counts(real: np.ndarray, synthetic: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The larger set subsampled (seeded, without replacement) to the smaller one's size."""
    n = min(len(real), len(synthetic))
    rng = np.random.default_rng([seed, 37])
    pick = lambda x: x if len(x) == n else x[np.sort(rng.choice(len(x), size=n, replace=False))]  # noqa: E731
    return pick(real), pick(synthetic)


def fidelity_scores(
    real: np.ndarray, synthetic: np.ndarray, *, k: int = 5, seed: int = 0
) -> tuple[dict[str, float | None], dict[str, str]]:
    """All fidelity metrics of one pair of embedding sets: ``(scalars, reasons for None)``.

    The Fréchet distance uses every point; PRDC uses equal real and synthetic counts (the larger set
    subsampled), since coverage and recall saturate when one side is much larger.
    """
    out: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    out["frechet_distance"] = frechet_distance(real, synthetic)
    if out["frechet_distance"] is None:
        reasons["frechet_distance"] = (
            f"needs at least 2 real and 2 synthetic points (have {len(real)}, {len(synthetic)})"
        )
    p, why = prdc(*equal_counts(real, synthetic, seed), k=k)
    out.update(precision=p.precision, recall=p.recall, density=p.density, coverage=p.coverage)
    if why:
        reasons.update(dict.fromkeys(("precision", "recall", "density", "coverage"), why))
    return out, reasons


#: A source holding at least this share of the real VUs ...
SOURCE_MIN_SHARE = 0.10
#: ... is flagged when the samples give it less than this fraction of its real share.
SOURCE_SHORTFALL = 0.5


def _source_features(images: np.ndarray) -> np.ndarray:
    """Pixels averaged over 4x4 blocks, per slice: ``[N, C * H/4 * W/4]`` in [-1, 1]."""
    x = np.asarray(images, dtype=np.float32)
    if np.asarray(images).dtype == np.uint8:
        x = x / 127.5 - 1.0
    n, c, h, w = x.shape
    x = x[:, :, : h // 4 * 4, : w // 4 * 4].reshape(n, c, h // 4, 4, w // 4, 4).mean(axis=(3, 5))
    return x.reshape(n, -1)


def source_shares(
    real: np.ndarray,
    real_sources: np.ndarray,
    synthetic: np.ndarray,
    check: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Each source's share of the real VUs and of the synthetic ones, the latter as a classifier trained on the
    real VUs' sources attributes them (logistic regression on 4x4-pooled pixels, classes balanced).

    Args:
        real: real VUs ``[n, C, H, W]`` (uint8 or [-1, 1]) the generator learnt from.
        real_sources: their source names ``[n]``.
        synthetic: generated VUs ``[m, C, H, W]``.
        check: other real VUs and their sources (e.g. the holdout): the classifier's balanced accuracy there.

    Returns ``{"real": {source: share}, "synthetic": {...}, "check_accuracy": float | None, "warnings": [...]}``;
    a warning names each source with >= :data:`SOURCE_MIN_SHARE` of the real VUs that gets less than
    :data:`SOURCE_SHORTFALL` of its share in the samples.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    real_sources = np.asarray(real_sources, dtype=str)
    names = sorted(set(real_sources.tolist()))
    clf = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced")
    clf.fit(_source_features(real), real_sources)
    predicted = clf.predict(_source_features(synthetic)) if len(synthetic) else np.array([], dtype=str)
    share_real = {s: float(np.mean(real_sources == s)) for s in names}
    share_syn = {s: float(np.mean(predicted == s)) if len(predicted) else 0.0 for s in names}
    accuracy = None
    if check is not None and len(set(np.asarray(check[1], dtype=str).tolist())) > 1:
        truth = np.asarray(check[1], dtype=str)
        accuracy = float(balanced_accuracy_score(truth, clf.predict(_source_features(check[0]))))
    warnings = [
        f"source {s} holds {share_real[s]:.0%} of the real VUs but {share_syn[s]:.0%} of the samples "
        f"(less than half its share)"
        for s in names
        if share_real[s] >= SOURCE_MIN_SHARE and share_syn[s] < SOURCE_SHORTFALL * share_real[s]
    ]
    return {"real": share_real, "synthetic": share_syn, "check_accuracy": accuracy, "warnings": warnings}
