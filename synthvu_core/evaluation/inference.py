"""Uncertainty for the membership attacks and for utility: what can be estimated, and how well.

* **Estimable or not.** A TPR at false-positive rate ``alpha`` rests on ``alpha x n`` expected false
  positives among ``n`` non-members; below :data:`MIN_FALSE_POSITIVES` (10) it is not estimated.
* **Patient bootstrap.** Patients (not VUs: a patient's VUs are not independent) are resampled
  with replacement within members and within non-members; a resample is a vector of patient
  multiplicities. The VU-level AUC of a resample is read from the patient-pair win matrix
  ``W[i, j]`` (wins of member patient ``i``'s VUs over non-member patient ``j``'s, ties 1/2), so
  1,000 resamples cost a few matrix products. TPR at FPR uses the same multiplicities as VU weights
  on one sorted score order. Percentile 95 % intervals.
* **Permutation p-values.** Under the null (no membership signal) patients are exchangeable:
  membership labels are permuted between patients and the VU-level AUC recomputed from the all-pairs
  win matrix. One-sided p = (1 + #{AUC_perm >= AUC}) / (1 + B). For several attacks on the same
  candidates the same permutations give the max-statistic (Westfall-Young single-step) adjusted
  p-values, which control the family-wise error whatever the attacks' correlation.
* **Seeds.** Utility numbers over classifier seeds: mean and Student-t 95 % interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Expected false positives needed before a TPR at a given FPR is reported.
MIN_FALSE_POSITIVES = 10


def estimable(alpha: float, n_negatives: int) -> bool:
    """Whether a TPR at FPR ``alpha`` is estimable with ``n_negatives`` non-members."""
    return alpha * n_negatives >= MIN_FALSE_POSITIVES


def not_estimable_reason(alpha: float, n_negatives: int, unit: str = "non-member VUs") -> str:
    return (
        f"not estimable with {n_negatives} {unit}: {alpha:g} FPR rests on {alpha * n_negatives:.2g} expected false "
        f"positives (needs at least {MIN_FALSE_POSITIVES})"
    )


# ---- patient structure ----------------------------------------------------------------------


@dataclass
class PatientIndex:
    """Candidates grouped by patient: ``inv [n]`` patient of each VU, ``member [P]``, ``sizes [P]``."""

    names: np.ndarray
    inv: np.ndarray
    member: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, is_member: np.ndarray, patient: np.ndarray) -> PatientIndex:
        names, inv = np.unique(np.asarray(patient).astype(str), return_inverse=True)
        member = np.zeros(len(names), dtype=bool)
        member[inv] = np.asarray(is_member, dtype=bool)
        return cls(names, inv, member, np.bincount(inv, minlength=len(names)))


def win_matrix(scores: np.ndarray, pidx: PatientIndex) -> np.ndarray:
    """``W [P, P]``: for patients ``p, q``, the number of VU pairs where p's VU scores above q's (ties 1/2)."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    P = len(pidx.names)
    # W[p, q] = sum over p's VUs u of (#q's VUs below u + 1/2 #q's VUs tied with u), via ranks within q
    W = np.zeros((P, P), dtype=np.float64)
    s_sorted = s[order]
    for q in range(P):
        sq = np.sort(s[pidx.inv == q])
        below = np.searchsorted(sq, s_sorted, side="left")
        upto = np.searchsorted(sq, s_sorted, side="right")
        W[:, q] = np.bincount(pidx.inv[order], weights=below + 0.5 * (upto - below), minlength=P)
    return W


def _auc_from_wins(W: np.ndarray, a: np.ndarray, b: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """AUC for weight rows ``a [B, P]`` (positives) and ``b [B, P]`` (negatives) from patient wins."""
    num = np.einsum("bp,pq,bq->b", a, W, b)
    return num / ((a @ sizes) * (b @ sizes))


def bootstrap_multiplicities(pidx: PatientIndex, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified patient resamples: multiplicities ``[B, P]`` of member and of non-member patients."""
    rng = np.random.default_rng([seed, 11])
    P = len(pidx.names)
    out = []
    for group in (np.flatnonzero(pidx.member), np.flatnonzero(~pidx.member)):
        picks = group[rng.integers(0, len(group), size=(n_boot, len(group)))]
        m = np.zeros((n_boot, P))
        np.add.at(m, (np.repeat(np.arange(n_boot), len(group)), picks.ravel()), 1.0)
        out.append(m)
    return out[0], out[1]


def _percentile(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    v = values[np.isfinite(values)]
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a))


def weighted_tpr_at_fpr(scores: np.ndarray, member: np.ndarray, weights: np.ndarray, alpha: float) -> np.ndarray:
    """TPR of the linearly interpolated ROC at FPR ``alpha`` for VU weight rows ``weights [B, n]``.

    With all weights one this is :func:`synthvu_core.evaluation.privacy.tpr_at_fpr` on scikit-learn's ROC
    (thresholds at every distinct score, the point (0, 0) first).
    """
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s_desc = s[order]
    last = np.r_[np.flatnonzero(np.diff(s_desc) != 0), len(s) - 1]  # last index of each tie group
    w = np.atleast_2d(weights)[:, order]
    pos = member[order]
    tp = np.cumsum(w * pos, axis=1)[:, last]
    fp = np.cumsum(w * ~pos, axis=1)[:, last]
    tpr = np.c_[np.zeros(len(w)), tp / tp[:, -1:]]
    fpr = np.c_[np.zeros(len(w)), fp / fp[:, -1:]]
    i = (fpr <= alpha).sum(1) - 1  # last point at or below alpha
    rows = np.arange(len(w))
    f0, t0 = fpr[rows, i], tpr[rows, i]
    j = np.minimum(i + 1, fpr.shape[1] - 1)
    f1, t1 = fpr[rows, j], tpr[rows, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        step = np.where(f1 > f0, (alpha - f0) / np.where(f1 > f0, f1 - f0, 1.0), 0.0)
    out = np.where(f0 == alpha, t0, t0 + step * (t1 - t0))
    # a vertical segment at exactly alpha: its top
    at = fpr == alpha
    top = np.where(at, tpr, -np.inf).max(1)
    return np.where(at.any(1), top, out)


@dataclass
class Intervals:
    """Percentile bootstrap intervals; None where not computable (with the reason)."""

    auc: tuple[float, float] | None
    tpr: dict[float, tuple[float, float]]
    patient_auc: tuple[float, float] | None
    reason: str | None = None


def bootstrap_intervals(
    scores: np.ndarray, is_member: np.ndarray, patient: np.ndarray, *, alphas: tuple[float, ...] = (),
    n_boot: int = 1000, seed: int = 0, W: np.ndarray | None = None,
) -> Intervals:
    """Patient-bootstrap 95 % intervals of the VU-level AUC, TPR at each FPR in ``alphas`` and patient AUC.

    Every statistic is computed on the same resamples (stratified by membership).
    """
    member = np.asarray(is_member, dtype=bool)
    pidx = PatientIndex.of(member, patient)
    if min(pidx.member.sum(), (~pidx.member).sum()) < 2:
        return Intervals(None, {}, None, "a patient bootstrap needs at least 2 member and 2 non-member patients")
    W = win_matrix(scores, pidx) if W is None else W
    a, b = bootstrap_multiplicities(pidx, n_boot, seed)
    auc = _percentile(_auc_from_wins(W, a, b, pidx.sizes))
    tpr = {}
    for alpha in alphas:
        w = (a + b)[:, pidx.inv]
        tpr[alpha] = _percentile(weighted_tpr_at_fpr(scores, member, w, alpha))
    pscore = np.bincount(pidx.inv, weights=np.asarray(scores, dtype=np.float64)) / pidx.sizes
    pw = (pscore[:, None] > pscore[None, :]) + 0.5 * (pscore[:, None] == pscore[None, :])
    pauc = _percentile(_auc_from_wins(pw, a, b, np.ones(len(pscore))))
    return Intervals(auc, tpr, pauc)


# ---- permutation tests ------------------------------------------------------------------------


@dataclass
class PermutationTest:
    """Observed AUCs, raw one-sided p-values, the permutation null AUCs ``[B]`` and win matrices per attack."""

    auc: dict[str, float]
    p: dict[str, float]
    null: dict[str, np.ndarray]
    wins: dict[str, np.ndarray]

    def adjusted(self, family: list[str]) -> dict[str, float]:
        """Max-statistic adjusted p-values over ``family`` (Westfall-Young single step)."""
        if not family:
            return {}
        mx = np.max(np.stack([self.null[k] for k in family]), axis=0)
        return {k: float((1 + (mx >= self.auc[k] - 1e-12).sum()) / (1 + len(mx))) for k in family}


def permutation_test(
    score_sets: dict[str, np.ndarray], is_member: np.ndarray, patient: np.ndarray, *, n_perm: int = 5000, seed: int = 0
) -> PermutationTest:
    """One-sided patient-permutation tests of AUC > 0.5; every attack sees the same permutations.

    ``score_sets`` maps an attack name to its candidate scores ``[n]``.
    """
    member = np.asarray(is_member, dtype=bool)
    pidx = PatientIndex.of(member, patient)
    rng = np.random.default_rng([seed, 13])
    P, n1 = len(pidx.names), int(pidx.member.sum())
    perm = np.zeros((n_perm, P))
    np.put_along_axis(perm, np.argsort(rng.random((n_perm, P)), axis=1)[:, :n1], 1.0, axis=1)
    out = PermutationTest({}, {}, {}, {})
    one = pidx.member[None].astype(float)
    for name, s in score_sets.items():
        W = win_matrix(s, pidx)
        out.wins[name] = W
        out.auc[name] = float(_auc_from_wins(W, one, 1.0 - one, pidx.sizes)[0])
        out.null[name] = _auc_from_wins(W, perm, 1.0 - perm, pidx.sizes)
        out.p[name] = float((1 + (out.null[name] >= out.auc[name] - 1e-12).sum()) / (1 + n_perm))
    return out


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (step-down, monotone)."""
    items = sorted(pvalues.items(), key=lambda kv: kv[1])
    out, running = {}, 0.0
    for i, (k, p) in enumerate(items):
        running = max(running, min(1.0, (len(items) - i) * p))
        out[k] = running
    return out


# ---- seeds -----------------------------------------------------------------------------------


def mean_ci(values: list[float] | np.ndarray, level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """``(mean, low, high)`` with a Student-t interval over seeds; ``(mean, None, None)`` with one value."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return None, None, None
    m = float(v.mean())
    if len(v) < 2:
        return m, None, None
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half
