"""Attack distances for sets too large for brute force: exact nearest synthetic VU by certified pruning.

100k candidates x 100k synthetic VUs of 9x64x64 are 3.7e14 multiply-adds in pixel space (hours on a
small CPU). Instead every VU ``x`` (centred on the synthetic mean) is split into its projection ``p_x``
on the top ``dims`` principal axes of a synthetic sample and the norm ``r_x`` of what the projection
misses. For any pair

    ``|p_x - p_y|² + (r_x - r_y)²  <=  |x - y|²  <=  |p_x - p_y|² + (r_x + r_y)²``

(Pythagoras, then the triangle inequality on the residuals). The lower bound is the squared distance
between the augmented ``(dims + 1)``-vectors ``[p, r]``: one small matrix product per block.

* **Nearest synthetic (exact).** Per candidate, the ``first`` synthetic VUs with the smallest lower bounds
  get exact pixel distances; the best of them is certified when it is no larger than the next lower bound
  (every other VU is at least that far). Uncertified candidates get exact distances to every VU whose
  lower bound is under their best so far, which makes the minimum exact. Bounds are lowered by
  :data:`BOUND_SLACK` of the squared norms to absorb float32 rounding.
* **Median distance (estimate).** The median over all synthetic VUs of
  ``|p_x - p_y|² + r_x² + r_y²`` (the distance when the residuals are orthogonal; between the bounds).
* **Distribution attack (estimate).** ``eps`` is the quantile of exact distances on a random sample of
  candidate x synthetic pairs (its bootstrap standard error is reported); counts use the same orthogonal
  estimate, so pairs the bounds decide (lower bound > eps: out; upper bound <= eps: in) are counted
  exactly and only the ambiguous ones are estimated.

The errors of the estimates are measured against exact distances in ``benchmarks/cases/evaluation.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthvu_core.evaluation.privacy import DistanceSummary, _block, _centred, squared_distance_blocks

#: Share of ``|x|² + |y|²`` taken off every lower bound: far above float32 rounding of the projections and
#: products (about 1e-6), far below the gaps between neighbours.
BOUND_SLACK = 1e-4

#: Candidates per bound block: one ``[rows, m]`` float32 block (100k synthetic: 100 MB).
BLOCK_ROWS = 256

#: Candidates per exact-distance gather (up to ``rows x first`` synthetic VUs converted at once).
GATHER_ROWS = 16


@dataclass(frozen=True)
class BoundSpace:
    """Principal axes the bounds project on: ``mean`` float32 ``[D]`` and ``axes`` ``[D, dims]`` ([-1, 1] units)."""

    mean: Any
    axes: Any
    explained: float


@dataclass
class Projected:
    """VUs in a :class:`BoundSpace`: ``coords`` float32 ``[n, dims + 1]`` (projection, residual norm),
    ``residual`` ``[n]``, ``slack`` ``[n]`` (:data:`BOUND_SLACK` of the squared norm) and ``norm_sq`` ``[n]``
    (``|coords|²`` less the slack, for the bound products)."""

    coords: Any
    residual: Any
    slack: Any
    norm_sq: Any


@dataclass
class PruneStats:
    """How the pruned search went: rows certified by the first candidates, rows that needed the fallback,
    exact pairs computed, the ``eps`` sample (pairs, bootstrap standard error) and seconds per stage."""

    dims: int
    explained: float
    certified_first: int = 0
    fallback_rows: int = 0
    exact_pairs: int = 0
    eps_pairs: int = 0
    eps_se: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)


def fit_bound_space(synthetic: np.ndarray, *, dims: int = 64, fit_rows: int = 2000, seed: int = 0) -> BoundSpace:
    """Top ``dims`` principal axes of up to ``fit_rows`` evenly spaced synthetic VUs.

    Args:
        synthetic: ``[m, ...]`` VUs (uint8 read as [-1, 1], or float); may be memory-mapped.
        dims: number of axes (fewer when the sample or the VU is smaller).
        fit_rows: VUs the axes are fitted on.
        seed: randomised SVD seed.
    """
    import torch
    from sklearn.decomposition import PCA

    m = len(synthetic)
    pick = np.unique(np.linspace(0, m - 1, min(m, fit_rows)).round().astype(np.int64))
    fit = _block(np.asarray(synthetic[pick]), 0, len(pick), None).numpy()
    k = int(min(dims, len(pick) - 1, fit.shape[1]))
    pca = PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(fit)
    return BoundSpace(
        torch.from_numpy(pca.mean_.astype(np.float32)),
        torch.from_numpy(np.ascontiguousarray(pca.components_.T.astype(np.float32))),
        float(pca.explained_variance_ratio_.sum()),
    )


def project(x: np.ndarray, space: BoundSpace, *, rows: int = 512) -> Projected:
    """``x`` ``[n, ...]`` in ``space``, streamed ``rows`` VUs at a time.

    Residual norms come from ``|c|² - |p|²`` (float32 sums, subtracted in float64): the residual is a
    sizeable share of the norm, so the cancellation is far inside :data:`BOUND_SLACK`.

    Args:
        x: VUs, uint8 read as [-1, 1] or float; may be memory-mapped.
        space: the axes from :func:`fit_bound_space`.
        rows: VUs converted at once.
    """
    import torch

    n, k = len(x), space.axes.shape[1]
    coords = torch.empty(n, k + 1, dtype=torch.float32)
    full_sq = torch.empty(n, dtype=torch.float64)
    for s in range(0, n, rows):
        c = _centred(x, s, min(n, s + rows), space.mean, False)
        p = c @ space.axes
        full_sq[s : s + len(c)] = torch.linalg.vector_norm(c, dim=1).double().square()
        coords[s : s + len(c), :k] = p
        res_sq = full_sq[s : s + len(c)] - torch.linalg.vector_norm(p, dim=1).double().square()
        coords[s : s + len(c), k] = res_sq.clamp_min(0).sqrt().float()
    slack = BOUND_SLACK * full_sq
    norm_sq = torch.linalg.vector_norm(coords, dim=1).double().square() - slack
    return Projected(coords, coords[:, k].clone(), slack.float(), norm_sq.float())


def lower_bound_block(c: Projected, s: Projected, start: int, stop: int) -> Any:
    """Lower bounds of the squared distances of candidates ``start:stop`` to every synthetic VU (``[b, m]``)."""
    import torch

    out = torch.addmm(s.norm_sq[None, :], c.coords[start:stop], s.coords.T, alpha=-2.0)
    return out.add_(c.norm_sq[start:stop, None])


def orthogonal_estimate(bounds: Any, c: Projected, s: Projected, start: int, stop: int) -> Any:
    """``|p_x - p_y|² + r_x² + r_y²`` from the lower bounds of candidates ``start:stop`` (overwrites ``bounds``)."""
    bounds.addr_(c.residual[start:stop], s.residual, alpha=2.0)
    return bounds.add_(c.slack[start:stop, None]).add_(s.slack[None, :])


def exact_pair_distances(candidates: Any, synthetic: np.ndarray, cols: np.ndarray, mean: Any) -> Any:
    """Exact squared distances ``[b, L]`` of candidate rows ``candidates`` (float32 ``[b, D]``, centred on
    ``mean``) to synthetic VUs ``cols`` ``[b, L]`` ([-1, 1] units).

    Per :data:`GATHER_ROWS` candidates the distinct synthetic VUs are converted once and one matrix product
    gives every candidate's products with all of them (``|c|² + |s|² - 2 c·s``, centred, as the brute force
    computes them); the wanted pairs are picked from it.
    """
    import torch

    out = torch.empty(cols.shape, dtype=torch.float32)
    for s in range(0, len(cols), GATHER_ROWS):
        idx = cols[s : s + GATHER_ROWS]
        flat, inverse = np.unique(idx.ravel(), return_inverse=True)
        syn = _centred(np.asarray(synthetic[flat]), 0, len(flat), mean, False)
        c = candidates[s : s + GATHER_ROWS]
        prod = torch.addmm(torch.linalg.vector_norm(syn, dim=1).square_()[None, :], c, syn.T, alpha=-2.0)
        prod.add_(torch.linalg.vector_norm(c, dim=1).square_()[:, None])
        picked = prod.gather(1, torch.from_numpy(inverse.reshape(idx.shape)))
        out[s : s + len(idx)] = picked.clamp_min_(0)
    return out


def nearest_exact(
    candidates: Any, synthetic: np.ndarray, bounds: Any, mean: Any, first: int, stats: PruneStats
) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest synthetic VU of every candidate row (float32 ``[b, D]``, centred) from its lower bounds
    ``[b, m]``: squared distances ``[b]`` and indices ``[b]`` (ties: the lowest index)."""
    import torch

    m = bounds.shape[1]
    take = min(first, m)
    lb, idx = torch.topk(bounds, min(take + 1, m), dim=1, largest=False, sorted=True)
    cols = idx[:, :take].numpy()
    d2 = exact_pair_distances(candidates, synthetic, cols, mean).numpy()
    stats.exact_pairs += d2.size
    best, arg = _lowest(d2, cols)
    certified = np.ones(len(best), dtype=bool) if take == m else best <= lb[:, take].numpy()
    stats.certified_first += int(certified.sum())
    for i in np.flatnonzero(~certified):
        d2_more, cols_more = _fallback(candidates[i], synthetic, bounds[i], float(best[i]), mean)
        stats.fallback_rows += 1
        stats.exact_pairs += len(cols_more)
        both_d, both_c = np.concatenate([[best[i]], d2_more]), np.concatenate([[arg[i]], cols_more])
        b, a = _lowest(both_d[None], both_c[None])
        best[i], arg[i] = b[0], a[0]
    return best, arg


def _lowest(d2: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise smallest value of ``d2`` ``[b, L]`` and its column id, ties broken by the lowest id."""
    order = np.lexsort((cols, d2), axis=1) if d2.shape[1] > 1 else np.zeros(d2.shape, dtype=np.int64)
    first = order[:, 0]
    rows = np.arange(len(d2))
    return d2[rows, first].copy(), cols[rows, first].copy()


def _fallback(candidate: Any, synthetic: np.ndarray, bounds: Any, best: float, mean: Any) -> tuple[Any, Any]:
    """Exact squared distances to every synthetic VU whose lower bound does not exceed ``best``."""
    import torch

    cols = torch.nonzero(bounds <= best).ravel().numpy()
    d2 = [
        exact_pair_distances(candidate[None], synthetic, cols[None, s : s + 1024], mean).numpy()[0]
        for s in range(0, len(cols), 1024)
    ]
    return (np.concatenate(d2) if d2 else np.empty(0, np.float32)), cols


def estimate_eps(
    candidates: np.ndarray,
    synthetic: np.ndarray,
    quantile: float,
    *,
    rows: int = 512,
    cols: int = 8192,
    boots: int = 20,
    seed: int = 0,
) -> tuple[float, float, int]:
    """The ``quantile`` of exact candidate-synthetic distances on ``rows`` random candidates x ``cols`` random
    synthetic VUs (all of them where the sets are that small, which makes it exact).

    Returns ``(eps, bootstrap standard error (rows and columns resampled), pairs used)``.
    """
    rng = np.random.default_rng(seed)
    n, m = len(candidates), len(synthetic)
    r = np.sort(rng.choice(n, size=min(rows, n), replace=False))
    c = np.sort(rng.choice(m, size=min(cols, m), replace=False))
    cand, syn = np.asarray(candidates[r]), np.asarray(synthetic[c])
    d = np.concatenate([d2 for _, d2 in squared_distance_blocks(cand, syn)])
    np.sqrt(d, out=d)
    eps = float(np.quantile(d, quantile))
    if len(r) == n and len(c) == m:
        return eps, 0.0, d.size
    boot = [
        np.quantile(d[np.ix_(rng.integers(0, len(r), len(r)), rng.integers(0, len(c), len(c)))], quantile)
        for _ in range(boots)
    ]
    return eps, float(np.std(boot, ddof=1)), d.size


def pruned_summary(
    candidates: np.ndarray,
    synthetic: np.ndarray,
    *,
    quantile: float = 0.01,
    dims: int = 64,
    first: int = 8,
    fit_rows: int = 2000,
    seed: int = 0,
) -> tuple[DistanceSummary, PruneStats]:
    """Attack distances for large sets: exact nearest synthetic VU, estimated median, ``eps`` and counts.

    Memory: the two projections (``(n + m) (dims + 3)`` floats), one ``[BLOCK_ROWS, m]`` float32 block and the
    ``eps`` sample; inputs may be memory-mapped.

    Args:
        candidates: ``[n, ...]`` VUs (uint8 read as [-1, 1], or float).
        synthetic: ``[m, ...]`` VUs, same layout.
        quantile: ``eps`` quantile of all candidate-synthetic distances (distribution attack).
        dims: principal axes of the bounds.
        first: exact distances per candidate before certification.
        fit_rows: synthetic VUs the axes are fitted on.
        seed: seed of the axes and of the ``eps`` sample.

    Returns ``(summary, stats)``; ``summary.d_min``/``nearest`` are exact, ``median``/``eps``/``counts``
    estimates (see the module docstring).
    """
    t0 = time.perf_counter()
    space = fit_bound_space(synthetic, dims=dims, fit_rows=fit_rows, seed=seed)
    stats = PruneStats(dims=int(space.axes.shape[1]), explained=space.explained)
    t1 = time.perf_counter()
    eps, stats.eps_se, stats.eps_pairs = estimate_eps(candidates, synthetic, quantile, seed=seed)
    t2 = time.perf_counter()
    pc, ps = project(candidates, space), project(synthetic, space)
    t3 = time.perf_counter()
    n, m = len(candidates), len(synthetic)
    d2_min, nearest = np.empty(n, np.float32), np.empty(n, np.int64)
    median, counts = np.empty(n, np.float64), np.empty(n, np.float64)
    lo_k, hi_k = (m - 1) // 2, m // 2
    for s in range(0, n, BLOCK_ROWS):
        e = min(n, s + BLOCK_ROWS)
        bounds = lower_bound_block(pc, ps, s, e)
        cand = _centred(candidates, s, e, space.mean, False)
        d2_min[s:e], nearest[s:e] = nearest_exact(cand, synthetic, bounds, space.mean, first, stats)
        est = orthogonal_estimate(bounds, pc, ps, s, e).numpy()
        counts[s:e] = (est <= np.float32(eps) ** 2).sum(1)
        est.partition((lo_k, hi_k), axis=1)
        median[s:e] = 0.5 * (np.sqrt(est[:, lo_k].clip(0)).astype(np.float64) + np.sqrt(est[:, hi_k].clip(0)))
    summary = DistanceSummary(
        d_min=np.sqrt(d2_min.clip(0)).astype(np.float64), nearest=nearest, median=median, eps={quantile: eps}
    )
    summary.counts[quantile] = counts
    stats.seconds = {"fit": t1 - t0, "eps": t2 - t1, "project": t3 - t2, "search": time.perf_counter() - t3}
    return summary, stats


#: Queries per exact-distance block of :func:`nearest_in` (taken in the order of their nearest VU by the bounds, so
#: that a block's queries share most of the VUs they need).
QUERY_ROWS = 32

#: :func:`nearest_in` searches its first ``PILOT_ROWS`` queries with the bounds; where they needed exact distances to
#: more than ``PILOT_SHARE`` of all pairs (VUs with no low-dimensional structure, e.g. noise), the rest go to the
#: brute force, which is faster then.
PILOT_ROWS = 256
PILOT_SHARE = 0.25


def fit_gram_space(x: np.ndarray, *, dims: int = 128, fit_rows: int = 512) -> BoundSpace:
    """Top ``dims`` principal axes of up to ``fit_rows`` evenly spaced rows of ``x``, from their Gram matrix.

    Eigenvectors of the ``[fit_rows, fit_rows]`` Gram matrix, mapped to pixel axes and made orthonormal by a float64
    QR step (the bounds need orthonormal axes, not exact principal ones): seconds for 512 VUs of 9x64x64, where a
    randomised SVD of the same rows (:func:`fit_bound_space`) takes tens.
    """
    import torch

    pick = np.unique(np.linspace(0, len(x) - 1, min(len(x), fit_rows)).round().astype(np.int64))
    fit = _block(np.asarray(x[pick]), 0, len(pick), None)
    mean = fit.mean(0)
    fit -= mean
    w, u = torch.linalg.eigh((fit @ fit.T).double())
    w = w.clamp_min(0)
    k = int(min(dims, len(pick) - 1, fit.shape[1]))
    top = torch.argsort(w, descending=True)[:k]
    axes, _ = torch.linalg.qr(fit.T.double() @ (u[:, top] / w[top].clamp_min(1e-12).sqrt()))
    total = float(w.sum())
    return BoundSpace(mean, axes.float().contiguous(), float(w[top].sum()) / total if total > 0 else 1.0)


def nearest_in(
    queries: np.ndarray, base: np.ndarray, *, dims: int = 128, first: int = 8, fit_rows: int = 512
) -> tuple[np.ndarray, np.ndarray, PruneStats]:
    """Exact nearest ``base`` VU of every query: ``(squared distances [n] float32, indices [n], stats)``; ties: the
    lowest index.

    The bounds project on principal axes of ``base`` (:func:`fit_gram_space`). Per block of :data:`QUERY_ROWS`
    queries: exact distances (:func:`_exact_block`) to the ``first`` VUs of each with the lowest bounds, then to
    every VU whose bound is not above a query's best so far, until none is left; so every VU that could be nearer,
    or as near, has its exact distance (where the bounds prune too little, the brute force: :data:`PILOT_SHARE`).
    Inputs ``[n, ...]``/``[m, ...]`` (uint8 read as [-1, 1], or float) may be memory-mapped.
    """
    import torch

    t0 = time.perf_counter()
    space = fit_gram_space(base, dims=dims, fit_rows=fit_rows)
    stats = PruneStats(dims=int(space.axes.shape[1]), explained=space.explained)
    t1 = time.perf_counter()
    pq, pb = project(queries, space), project(base, space)
    t2 = time.perf_counter()
    n = len(queries)
    order = np.argsort(np.concatenate([
        lower_bound_block(pq, pb, s, min(n, s + BLOCK_ROWS)).argmin(1).numpy() for s in range(0, n, BLOCK_ROWS)
    ]), kind="stable")
    d2, idx = np.empty(n, np.float32), np.empty(n, np.int64)
    for s in range(0, n, QUERY_ROWS):
        if s >= PILOT_ROWS and stats.exact_pairs > PILOT_SHARE * s * len(base):
            rest = np.sort(order[s:])
            for c in range(0, len(rest), BLOCK_ROWS):  # a block at a time: memory-mapped queries stay on disk
                part = rest[c : c + BLOCK_ROWS]
                d2[part], idx[part] = _brute_nearest(np.asarray(queries[part]), base)
            stats.fallback_rows = len(rest)
            break
        rows = np.sort(order[s : s + QUERY_ROWS])
        sub = Projected(pq.coords[rows], pq.residual[rows], pq.slack[rows], pq.norm_sq[rows])
        raw = np.asarray(queries[rows])
        q = _centred(raw, 0, len(rows), space.mean, False)
        dist = _certified_block(q, base, lower_bound_block(sub, pb, 0, len(rows)), space.mean, first, stats)
        d2[rows], idx[rows] = _settle_ties(raw, base, dist, torch.linalg.vector_norm(q, dim=1).square_())
    stats.seconds = {"fit": t1 - t0, "project": t2 - t1, "search": time.perf_counter() - t2}
    return d2, idx, stats


def _brute_nearest(queries: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distance and index of every query's nearest ``base`` VU by brute force (ties: the lowest index)."""
    best, arg = [], []
    for _, d2 in squared_distance_blocks(queries, base):
        a = d2.argmin(1)
        best.append(d2[np.arange(len(a)), a])
        arg.append(a)
    return np.concatenate(best), np.concatenate(arg)


def _certified_block(q: Any, base: np.ndarray, bounds: Any, mean: Any, first: int, stats: PruneStats) -> Any:
    """Exact squared distances ``[b, m]`` (infinity where not computed) of the centred query rows ``q`` ``[b, D]``
    to every ``base`` VU whose lower bound (``bounds`` ``[b, m]``) is not above the row's nearest distance."""
    import torch

    dist = torch.full(bounds.shape, float("inf"))
    want = torch.zeros(bounds.shape, dtype=torch.bool)
    want.scatter_(1, torch.topk(bounds, min(first, bounds.shape[1]), dim=1, largest=False).indices, True)
    while True:
        need = want & dist.isinf()
        rows = torch.nonzero(need.any(1)).ravel()
        if len(rows) == 0:
            return dist
        cols = torch.nonzero(need[rows].any(0)).ravel()
        d2 = _exact_block(q[rows], base, cols.numpy(), mean)
        dist[rows[:, None], cols[None, :]] = torch.from_numpy(d2)
        stats.exact_pairs += d2.size
        want = bounds <= dist.min(1).values[:, None]


def _settle_ties(raw: np.ndarray, base: np.ndarray, dist: Any, q_sq: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest VU from :func:`_certified_block`'s distances: where several lie within float32 rounding of
    the row's best (duplicate VUs computed in different products can differ in the last bits), their distances are
    computed again exactly (integers on the 0..255 scale for uint8 VUs, else float64) and the lowest index of the
    smallest wins, as the brute force's argmin does. ``q_sq``: the centred rows' ``|q|²`` ``[b]``."""
    best = dist.min(1).values
    scale = 3 * q_sq + 2 * best  # bounds |q|² + |s|² of every VU this near: float32 rounding is far below 1e-4 of it
    near = dist <= (best + BOUND_SLACK * scale)[:, None]
    d2, idx = best.numpy().copy(), near.int().argmax(1).numpy()
    for i in np.flatnonzero(near.sum(1).numpy() > 1):
        cols = np.flatnonzero(near[i].numpy())
        exact = _exact_sq(raw[i], np.asarray(base[cols]))
        d2[i], idx[i] = dist[i, cols[int(np.argmin(exact))]], cols[int(np.argmin(exact))]
    return d2, idx


def _exact_sq(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Squared distances of ``x`` to each row of ``ys`` without rounding where both are uint8 (integer sums of
    squared differences, in 127.5² units), else in float64. Ordered as the [-1, 1] distances."""
    a, b = x.reshape(1, -1), ys.reshape(len(ys), -1)
    if a.dtype == np.uint8 and b.dtype == np.uint8:
        diff = b.astype(np.int64) - a.astype(np.int64)
        return np.einsum("ij,ij->i", diff, diff).astype(np.float64)
    diff = _unit64(b) - _unit64(a)
    return np.einsum("ij,ij->i", diff, diff)


def _unit64(x: np.ndarray) -> np.ndarray:
    """``x`` as float64, uint8 read as [-1, 1]."""
    return x / 127.5 - 1.0 if x.dtype == np.uint8 else x.astype(np.float64)


def _exact_block(q: Any, base: np.ndarray, cols: np.ndarray, mean: Any, chunk: int = 1024) -> np.ndarray:
    """Exact squared distances ``[b, len(cols)]`` of centred query rows ``q`` to ``base[cols]`` (as the brute force
    computes them: ``|q|² + |s|² - 2 q·s``, centred, float32), ``chunk`` base VUs converted at a time."""
    import torch

    out = np.empty((len(q), len(cols)), np.float32)
    q_sq = torch.linalg.vector_norm(q, dim=1).square_()[:, None]
    for s in range(0, len(cols), chunk):
        part = cols[s : s + chunk]
        syn = _centred(np.asarray(base[part]), 0, len(part), mean, False)
        prod = torch.addmm(torch.linalg.vector_norm(syn, dim=1).square_()[None, :], q, syn.T, alpha=-2.0)
        out[:, s : s + len(part)] = prod.add_(q_sq).clamp_min_(0).numpy()
    return out
