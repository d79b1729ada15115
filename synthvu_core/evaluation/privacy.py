"""Membership attacks against the training patients, and the metrics that judge them.

Candidates are VUs of training patients (members, label 1) and of holdout patients (non-members,
label 0). Every attack gives each candidate a score, higher meaning "more likely a member":

* ``pairwise`` (the published study; distance to closest record, GAN-Leaks full black-box):
  score = ``-(d_min(x) / median_j d(x, s_j))`` over all synthetic ``s_j``.
* ``distribution`` (the published study; Monte-Carlo attack, Hilprecht et al. 2019): the number of
  synthetic samples within ``eps`` of ``x``, ``eps`` = a quantile (1 % in pixel/embedding space,
  0.1 % in UMAP space) of all candidate-synthetic distances.
* ``domias`` (van Breugel et al. 2023): ``log p_synth(x) - log p_reference(x)`` by Gaussian KDE in
  a PCA-reduced embedding space; the reference set is real data disjoint from the candidates.
* ``discriminator`` (LOGAN white-box, Hayes et al. 2019): the discriminator's real-probability.

Distances are exact Euclidean distances computed in float32 blocks (candidates x synthetic), so
memory stays bounded (a 20k x 20k problem never holds the full matrix): per candidate block the
running minimum, the exact median (k-th values) and the smallest distances needed for the global
quantile are kept.

Metric helpers: TPR at a given FPR on the linearly interpolated ROC, the study's top-k share (k =
number of members; ties shared in expectation) and patient-level scores (mean of a patient's VU
scores). The metrics of a report (with their intervals and p-values) are assembled in
:mod:`synthvu_core.evaluation.verdicts`; the spaces and scoring of every synthetic set in
:mod:`synthvu_core.evaluation.attacks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: FPR levels reported as ``tpr_at_1pct_fpr`` / ``tpr_at_0.1pct_fpr``.
FPR_LEVELS: dict[str, float] = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0.1pct_fpr": 0.001}


# ---- distances ----------------------------------------------------------------------------


def _rows(x: np.ndarray, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of ``x`` as a torch tensor sharing its memory (a copy where ``x`` is read-only, as a
    memory-mapped dataset is: torch cannot share it). Callers never write into it."""
    import torch

    a = np.ascontiguousarray(np.asarray(x[start:stop]))
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def _block(x: np.ndarray, start: int, stop: int, offset: Any | None) -> Any:
    """Rows ``start:stop`` of ``x`` as a float32 torch matrix ``[n, D]`` (uint8 -> [-1, 1]).

    Converted with torch's in-place, multi-threaded ops (one pass each, no numpy temporaries).
    """
    import torch

    b = _rows(x, start, stop)
    b = b.reshape(stop - start, -1)
    if b.dtype == torch.uint8:
        b = b.to(torch.float32).mul_(1.0 / 127.5).sub_(1.0)
    else:  # a copy where it will be centred in place: never write into the caller's array
        b = b.to(torch.float32, copy=offset is not None)
    if offset is not None:
        b.sub_(offset)
    return b


#: Memory budgets of the streamed distances: one [chunk, m] block, one converted synthetic block.
BLOCK_BYTES = 256 * 2**20
SYNTHETIC_BYTES = 1024 * 2**20


def _auto_chunks(n: int, m: int, dim: int, chunk: int | None, synthetic_chunk: int | None) -> tuple[int, int]:
    if chunk is None:
        chunk = int(np.clip(BLOCK_BYTES // (4 * max(m, 1)), 64, max(n, 64)))
    if synthetic_chunk is None:
        synthetic_chunk = int(max(256, SYNTHETIC_BYTES // (4 * max(dim, 1))))
    return chunk, synthetic_chunk


#: Up to this many features per VU the distances are summed from differences (exact); above it they come
#: from one matrix product (``|c|² + |s|² - 2 c·s``, the way ``torch.cdist`` computes large problems).
EXACT_DIM = 64


def squared_distance_blocks(
    candidates: np.ndarray, synthetic: np.ndarray, *, chunk: int | None = None, synthetic_chunk: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Squared Euclidean distances, one candidate block at a time (see :func:`distance_blocks`).

    Yields ``(start, D2)`` with ``D2`` float32 ``[b, m]``. Where the time goes and how it is kept low:

    * each block is converted, then centred in place; when both sets are uint8 the work is done on the
      0..255 scale and only the ``[b, m]`` result is rescaled;
    * the centre is the mean of at most :data:`CENTRE_ROWS` evenly spaced synthetic VUs (distances do not
      depend on it; it only keeps the float32 product precise), not a pass over the whole set;
    * above :data:`EXACT_DIM` features one ``addmm`` per synthetic block writes straight into the block
      (``|c|² + |s|² - 2 c·s``: no augmented copies as in ``torch.cdist``, no square root); up to it the
      differences are summed exactly;
    * synthetic blocks and their norms are converted once when they fit the synthetic budget.
    """
    import torch

    n, m = len(candidates), len(synthetic)
    if n == 0 or m == 0:
        return
    dim = int(np.prod(np.shape(synthetic)[1:]))
    chunk, synthetic_chunk = _auto_chunks(n, m, dim, chunk, synthetic_chunk)
    raw = _is_u8(candidates) and _is_u8(synthetic)  # work on the 0..255 scale
    k = 127.5 if raw else 1.0
    pick = np.unique(np.linspace(0, m - 1, min(m, CENTRE_ROWS)).round().astype(np.int64))
    centre = _block(np.asarray(synthetic[pick]) if len(pick) < m else synthetic, 0, len(pick), None).mean(0)
    if raw:
        centre = (centre + 1.0) * k  # the mean on the 0..255 scale
    starts = list(range(0, m, synthetic_chunk))

    def syn_block(s0: int) -> tuple[Any, Any]:
        b = _centred(synthetic, s0, min(m, s0 + synthetic_chunk), centre, raw)
        return b, torch.linalg.vector_norm(b, dim=1).square_()

    held = [syn_block(starts[0])] if len(starts) == 1 else None
    for start in range(0, n, chunk):
        c = _centred(candidates, start, min(n, start + chunk), centre, raw)
        out = torch.empty(len(c), m, dtype=torch.float32)
        for i, s0 in enumerate(starts):
            syn, syn_sq = held[i] if held is not None else syn_block(s0)
            view = out[:, s0 : s0 + len(syn)]
            if dim <= EXACT_DIM:
                view.copy_(torch.cdist(c, syn, compute_mode="donot_use_mm_for_euclid_dist").square_())
            elif len(starts) == 1:
                torch.addmm(syn_sq[None, :], c, syn.T, alpha=-2.0, out=view)
            else:
                view.copy_(torch.addmm(syn_sq[None, :], c, syn.T, alpha=-2.0))
        if dim > EXACT_DIM:
            out.add_(torch.linalg.vector_norm(c, dim=1).square_()[:, None]).clamp_min_(0)
        if raw:
            out.mul_(1.0 / k**2)
        yield start, out.numpy()


#: Synthetic VUs averaged for the centre of the distance computation.
CENTRE_ROWS = 1024


def _is_u8(x: np.ndarray) -> bool:
    return np.asarray(x[:0]).dtype == np.uint8


def _centred(x: np.ndarray, start: int, stop: int, centre: Any, raw: bool) -> Any:
    """Rows ``start:stop`` of ``x`` as float32 ``[b, D]`` minus ``centre``, in two fast passes at most.

    ``raw``: uint8 rows stay on the 0..255 scale; otherwise uint8 is read as [-1, 1]. Never writes
    into the caller's array.
    """
    import torch

    b = _rows(x, start, stop).reshape(stop - start, -1)
    if b.dtype == torch.uint8:  # a fresh float32 copy (vectorised; mixed-dtype arithmetic is not), centred in place
        b = b.to(torch.float32)
        return b.sub_(centre) if raw else b.sub_(127.5 * (1.0 + centre)).mul_(1.0 / 127.5)
    return torch.sub(b.to(torch.float32), centre)


def distance_blocks(
    candidates: np.ndarray, synthetic: np.ndarray, *, chunk: int | None = None, synthetic_chunk: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Exact Euclidean distances, one candidate block at a time.

    ``candidates`` ``[n, ...]`` and ``synthetic`` ``[m, ...]`` (float, or uint8 read as [-1, 1]) are
    flattened. Yields ``(start, D)`` with ``D`` float32 ``[b, m]`` for candidate rows
    ``start:start+b``; memory is ``chunk x m`` floats (default: a 256 MiB block) plus one converted
    synthetic block (default 1 GiB). Both sets are centred on the synthetic mean first, which keeps
    float32 matrix products precise.
    """
    for start, d2 in squared_distance_blocks(candidates, synthetic, chunk=chunk, synthetic_chunk=synthetic_chunk):
        yield start, np.sqrt(d2, out=d2)


@dataclass
class DistanceSummary:
    """Per-candidate summaries of the candidate x synthetic distances in one space.

    ``d_min`` / ``nearest`` / ``median`` ``[n]``; ``eps`` (per requested quantile) and ``counts``
    ``[n]`` = number of synthetic within ``eps`` (``<=``).
    """

    d_min: np.ndarray
    nearest: np.ndarray
    median: np.ndarray
    eps: dict[float, float] = field(default_factory=dict)
    counts: dict[float, np.ndarray] = field(default_factory=dict)


class _SmallestKeeper:
    """Keep the ``m`` smallest values of a stream with their row ids (exact global quantiles).

    New values under the threshold (the ``m``-th smallest at the last compaction) are appended; the pool is
    cut back to ``m`` only when it exceeds :data:`KEEPER_SLACK` times ``m``, so a large ``m`` (1 % of 1e10
    distances) is partitioned a few times, not once per block.
    """

    def __init__(self, m: int):
        self.m = m
        self._values: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []
        self._size = 0
        self._threshold = np.inf

    def add(self, block: np.ndarray, row0: int) -> None:
        # Only candidates for the m smallest leave the block; row ids are derived from the few flat indices
        # kept, never materialised for the whole block.
        flat = block.ravel()
        if self._size >= self.m:
            idx = np.flatnonzero(flat <= self._threshold)
        elif flat.size > self.m:
            idx = np.argpartition(flat, self.m - 1)[: self.m]
        else:
            idx = np.arange(flat.size)
        self._values.append(flat[idx])
        self._rows.append(row0 + idx // block.shape[1])
        self._size += len(idx)
        if self._size > KEEPER_SLACK * self.m or (self._size >= self.m and not np.isfinite(self._threshold)):
            self._compact()

    def _compact(self) -> None:
        if not self._values or (len(self._values) == 1 and self._size <= self.m):
            return
        v, r = np.concatenate(self._values), np.concatenate(self._rows)
        if len(v) > self.m:
            part = np.argpartition(v, self.m - 1)[: self.m]
            v, r = v[part], r[part]
        self._values, self._rows, self._size = [v], [r], len(v)
        if len(v) >= self.m:
            self._threshold = v.max()

    @property
    def values(self) -> np.ndarray:
        self._compact()
        return self._values[0] if self._values else np.empty(0, dtype=np.float32)

    @property
    def rows(self) -> np.ndarray:
        self._compact()
        return self._rows[0] if self._rows else np.empty(0, dtype=np.int64)


#: How far the keeper's pool may grow past ``m`` before it is cut back.
KEEPER_SLACK = 1.25


def _quantile_position(q: float, total: int) -> tuple[int, int, float]:
    """numpy's linear quantile: sorted positions ``lo``, ``hi`` and the weight of ``hi``."""
    pos = q * (total - 1)
    lo = int(np.floor(pos))
    return lo, min(lo + 1, total - 1), pos - lo


def summarise_distances(
    candidates: np.ndarray, synthetic: np.ndarray, *, quantiles: tuple[float, ...] = (0.01,), chunk: int | None = None
) -> DistanceSummary:
    """Nearest synthetic, median distance and within-``eps`` counts for every candidate.

    ``eps`` for quantile ``q`` is the ``q``-quantile (numpy's linear definition) of all ``n x m``
    candidate-synthetic distances, computed exactly from the smallest distances kept while
    streaming. When distances tie at ``eps`` beyond what was kept, a second pass counts exactly.

    Works on squared distances (:func:`squared_distance_blocks`): the minimum, the two middle values and
    the kept smallest values are ordered the same, so only they take a square root (float32, as
    :func:`distance_blocks` gives them).
    """
    n, m = len(candidates), len(synthetic)
    total = n * m
    d_min = np.empty(n, dtype=np.float64)
    nearest = np.empty(n, dtype=np.int64)
    median = np.empty(n, dtype=np.float64)
    need = {q: _quantile_position(q, total)[1] + 1 for q in quantiles}
    # a margin of extra values: float32 distances tie often, and a tie at eps beyond the kept values costs
    # a second pass over all distances
    keep = _SmallestKeeper(max(need.values()) + 1 + max(1024, max(need.values()) // 100)) if quantiles else None
    lo_k, hi_k = (m - 1) // 2, m // 2
    for start, d2 in squared_distance_blocks(candidates, synthetic, chunk=chunk):
        b = d2.shape[0]
        arg = d2.argmin(1)
        nearest[start : start + b] = arg
        d_min[start : start + b] = np.sqrt(d2[np.arange(b), arg])
        if keep is not None:
            keep.add(d2, start)
        d2.partition((lo_k, hi_k), axis=1)  # in place (no copy of the block): it is not used after this
        median[start : start + b] = 0.5 * (np.sqrt(d2[:, lo_k]).astype(np.float64) + np.sqrt(d2[:, hi_k]))
    out = DistanceSummary(d_min=d_min, nearest=nearest, median=median)
    if keep is None:
        return out
    kept, kept_rows = keep.values, keep.rows
    order = np.argsort(kept, kind="stable")
    vals, rows = np.sqrt(kept[order]), kept_rows[order]
    for q in quantiles:
        lo, hi, w = _quantile_position(q, total)
        eps = float(vals[lo]) * (1 - w) + float(vals[hi]) * w
        out.eps[q] = eps
        complete = len(vals) == total or vals[-1] > eps
        if complete:
            out.counts[q] = np.bincount(rows[vals <= eps], minlength=n).astype(np.float64)
        else:  # ties at eps beyond the kept values: count in a second pass
            counts = np.zeros(n, dtype=np.float64)
            for start, d in distance_blocks(candidates, synthetic, chunk=chunk):
                counts[start : start + d.shape[0]] = (d <= eps).sum(1)
            out.counts[q] = counts
    return out


# ---- attacks ------------------------------------------------------------------------------


def pairwise_scores(summary: DistanceSummary) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise attack: ``ratio = d_min / median`` and ``score = -ratio`` (both ``[n]``).

    A median of zero (more than half of the synthetic set identical to the candidate) gives ratio 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(summary.median > 0, summary.d_min / np.where(summary.median > 0, summary.median, 1), 0.0)
    return -ratio, ratio


def domias_scores(
    candidates: np.ndarray,
    synthetic: np.ndarray,
    reference: np.ndarray,
    *,
    dims: int = 5,
    min_points: int = 20,
    seed: int = 0,
) -> tuple[np.ndarray | None, str | None]:
    """DOMIAS: ``log p_synth(x) - log p_reference(x)`` by Gaussian KDE (Scott bandwidth).

    Features ``[n, D]`` are reduced by PCA fitted on synthetic + reference together to at most
    ``dims`` dimensions (and fewer than either set's size minus one, so both covariances are full
    rank). Returns ``(scores [n], None)`` or ``(None, reason)`` when either set is too small.
    """
    from scipy.stats import gaussian_kde
    from sklearn.decomposition import PCA

    n_syn, n_ref = len(synthetic), len(reference)
    if n_ref < min_points or n_syn < min_points:
        return (
            None,
            f"needs at least {min_points} reference and synthetic points for a KDE (have {n_ref} reference, {n_syn} "
            "synthetic)",
        )
    cand = np.asarray(candidates, dtype=np.float64).reshape(len(candidates), -1)
    syn = np.asarray(synthetic, dtype=np.float64).reshape(n_syn, -1)
    ref = np.asarray(reference, dtype=np.float64).reshape(n_ref, -1)
    k = int(min(dims, cand.shape[1], n_ref - 2, n_syn - 2))
    pca = PCA(n_components=k, random_state=seed).fit(np.concatenate([syn, ref]))
    try:
        kde_syn = gaussian_kde(pca.transform(syn).T)
        kde_ref = gaussian_kde(pca.transform(ref).T)
    except np.linalg.LinAlgError as e:
        return None, f"KDE covariance is singular ({e})"
    c = pca.transform(cand).T
    return kde_syn.logpdf(c) - kde_ref.logpdf(c), None


def discriminator_scores(discriminator: Any, images: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """Discriminator attack: ``sigmoid(real_logit)`` for every image ``[n, C, H, W]`` -> ``[n]``.

    ``discriminator(x)`` returns ``(real_logit [n], class_logits [n, K])`` (or a real logit alone).
    """
    import torch

    from synthvu_core.evaluation.encoder import torch_threads

    out = []
    was_training = getattr(discriminator, "training", False)
    if hasattr(discriminator, "eval"):
        discriminator.eval()
    with torch.no_grad(), torch_threads():  # one thread, as in the evaluation's workers: the same scores
        for s in range(0, len(images), batch):
            x = _block(images, s, min(len(images), s + batch), None).reshape(-1, *np.shape(images)[1:])
            res = discriminator(x)
            logit = res[0] if isinstance(res, tuple | list) else res
            out.append(torch.sigmoid(logit.reshape(-1).float()).numpy())
    if was_training and hasattr(discriminator, "train"):
        discriminator.train()
    return np.concatenate(out).astype(np.float64) if out else np.empty(0)


# ---- metrics ------------------------------------------------------------------------------


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """TPR of the linearly interpolated ROC at ``level`` FPR.

    ``fpr``/``tpr`` as returned by :func:`sklearn.metrics.roc_curve` (non-decreasing). Where the curve
    has a vertical segment at exactly ``level``, its top is taken.
    """
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    i = int(np.searchsorted(fpr, level, side="right") - 1)
    if i < 0:
        return 0.0
    if fpr[i] == level or i == len(fpr) - 1:
        return float(tpr[i])
    w = (level - fpr[i]) / (fpr[i + 1] - fpr[i])
    return float(tpr[i] + w * (tpr[i + 1] - tpr[i]))


def topk_share(scores: np.ndarray, is_member: np.ndarray, k: int | None = None) -> float:
    """Share of members among the ``k`` highest scores (default ``k`` = number of members).

    Scores tied at the cut-off are shared in expectation (as if ties were broken at random).
    """
    scores = np.asarray(scores, dtype=np.float64)
    member = np.asarray(is_member, dtype=bool)
    k = int(member.sum()) if k is None else int(k)
    if k <= 0:
        return float("nan")
    cut = np.sort(scores)[::-1][k - 1]
    above = scores > cut
    tied = scores == cut
    take = k - int(above.sum())
    share = member[above].sum() + take * member[tied].sum() / tied.sum()
    return float(share / k)


def patient_scores(
    scores: np.ndarray, is_member: np.ndarray, patient: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient-level scores: mean of a patient's VU scores.

    Returns ``(patients [p], scores [p], is_member [p])``, patients sorted.
    """
    patient = np.asarray(patient).astype(str)
    names, inv = np.unique(patient, return_inverse=True)
    sums = np.bincount(inv, weights=np.asarray(scores, dtype=np.float64), minlength=len(names))
    cnt = np.bincount(inv, minlength=len(names))
    member = np.zeros(len(names), dtype=bool)
    member[inv] = np.asarray(is_member, dtype=bool)
    return names, sums / cnt, member


@dataclass
class AttackResult:
    """Metrics of one attack in one space: scalars (metric -> float or None) and arrays."""

    scalars: dict[str, float | None]
    arrays: dict[str, np.ndarray]
    reasons: dict[str, str] = field(default_factory=dict)


# ---- all attacks ---------------------------------------------------------------------------

#: Quantile of all candidate-synthetic distances used as the distribution attack's eps, per space.
DISTRIBUTION_QUANTILE: dict[str, float] = {"pixel": 0.01, "embedding": 0.01, "umap": 0.001}


@dataclass(frozen=True)
class PrivacyConfig:
    """Settings of the membership attacks."""

    n_boot: int = 1000
    domias_dims: int = 5
    domias_min_points: int = 20
    n_closest: int = 64
    chunk: int | None = None  # candidate rows per distance block (None: a 256 MiB block)
