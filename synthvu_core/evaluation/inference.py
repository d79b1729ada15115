"""Uncertainty for the membership attacks and for utility: what can be estimated, and how well.

* **Estimable or not.** A TPR at false-positive rate ``alpha`` rests on ``alpha x n`` expected false
  positives among ``n`` non-members; below :data:`MIN_FALSE_POSITIVES` (10) it is not estimated.
* **Patient-clustered intervals** (the unit of resampling and of variance is the patient: a patient's
  VUs are not independent). The VU-level AUC is read from the patient-pair win matrix ``W[i, j]``
  (wins of member patient ``i``'s VUs over non-member patient ``j``'s, ties 1/2). Its variance is
  Obuchowski's (1997) clustered-ROC estimator: DeLong's structural components summed per patient,
  ``var = I1/(I1-1) sum_i a_i^2 + I0/(I0-1) sum_j b_j^2`` over the ``I1`` member and ``I0``
  non-member patients, and the 95 % interval uses a Student-t quantile on the Welch-Satterthwaite
  degrees of freedom of those two sums (clipped to [0, 1]). With 6 vs 6 patients the percentile
  patient bootstrap covered a null AUC of 0.5 in about 89 % of simulated cohorts, this interval in
  93-97 % (``tests/test_inference.py``). The patient-level AUC is the same estimator with one unit per
  patient (DeLong). Differences of two AUCs on the same candidates (a control's rise over the
  generator's own AUC) use the paired components. Where the components have no spread (perfect
  separation) the variance is floored at the Birnbaum-Klose bound ``t(1-t)/min(I1, I0)`` at the
  estimate moved half a patient pair from 0 or 1.
* **TPR at FPR** has no closed-form clustered variance: a stratified patient bootstrap (multiplicities
  as VU weights on one sorted score order) gives its standard error, inflated by ``I/(I-1)`` (the
  bootstrap's small-sample bias) and used with a Student-t quantile on ``min(I1, I0) - 1`` degrees of
  freedom (simulated coverage at 6 vs 6 patients 93 %; the percentile interval 85 %).
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


def _t_quantile(df: float, level: float = 0.95) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, max(df, 1.0)))


def _clip(low: float, high: float) -> tuple[float, float]:
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0))


@dataclass
class AUCComponents:
    """A VU-level AUC and its per-patient structural components (Obuchowski 1997).

    ``member [I1]``: ``(V10_i - m_i * auc) / N1`` for member patient ``i`` with ``m_i`` VUs, where
    ``V10_i`` sums over its VUs the share of non-member VUs they outscore; ``nonmember [I0]`` the
    same for non-member patients (share of member VUs outscoring theirs). Both sum to zero; the AUC
    is a mean of these per-patient sums, so its variance is their between-patient variance.
    """

    estimate: float
    member: np.ndarray
    nonmember: np.ndarray

    def __sub__(self, other: AUCComponents) -> AUCComponents:
        """The paired components of ``self - other`` (two AUCs on the same candidates and patients)."""
        return AUCComponents(
            self.estimate - other.estimate, self.member - other.member, self.nonmember - other.nonmember
        )

    def variance_and_df(self) -> tuple[float, float]:
        """Clustered variance and its Welch-Satterthwaite degrees of freedom."""
        i1, i0 = len(self.member), len(self.nonmember)
        a = i1 / (i1 - 1) * float(np.sum(self.member**2))
        b = i0 / (i0 - 1) * float(np.sum(self.nonmember**2))
        if a + b <= 0:
            return 0.0, float(min(i1, i0) - 1)
        return a + b, (a + b) ** 2 / (a**2 / (i1 - 1) + b**2 / (i0 - 1))

    def interval(self, level: float = 0.95, *, difference: bool = False) -> tuple[float, float]:
        """Student-t interval; an AUC's is clipped to [0, 1] and its zero variance floored (a difference's is not).

        Args:
            level: coverage of the interval.
            difference: the components are a paired difference (range [-1, 1], no variance floor).
        """
        var, df = self.variance_and_df()
        if var <= 0 and not difference:
            var = _variance_floor(self.estimate, len(self.member), len(self.nonmember))
        half = _t_quantile(df, level) * np.sqrt(var)
        lo, hi = self.estimate - half, self.estimate + half
        return (float(max(lo, -1.0)), float(min(hi, 1.0))) if difference else _clip(lo, hi)


def _variance_floor(auc: float, i1: int, i0: int) -> float:
    """Birnbaum-Klose bound at the AUC moved half a patient pair away from 0 and 1."""
    pairs = i1 * i0
    t = (auc * pairs + 0.5) / (pairs + 1)
    return t * (1 - t) / min(i1, i0)


def auc_components(W: np.ndarray, pidx: PatientIndex) -> AUCComponents:
    """Per-patient structural components of the VU-level AUC from the patient win matrix ``W [P, P]``.

    Args:
        W: patient-pair wins (:func:`win_matrix`).
        pidx: the candidates' patients.
    """
    m = pidx.member
    sizes = pidx.sizes.astype(np.float64)
    n1, n0 = sizes[m].sum(), sizes[~m].sum()
    wins = W[np.ix_(m, ~m)]
    auc = float(wins.sum() / (n1 * n0))
    v10, v01 = wins.sum(1) / n0, wins.sum(0) / n1
    return AUCComponents(auc, (v10 - sizes[m] * auc) / n1, (v01 - sizes[~m] * auc) / n0)


def patient_index_of_means(pidx: PatientIndex) -> PatientIndex:
    """The same patients, one unit each (for the patient-level AUC of mean scores)."""
    P = len(pidx.names)
    return PatientIndex(pidx.names, np.arange(P), pidx.member, np.ones(P, dtype=np.int64))


def patient_mean_wins(scores: np.ndarray, pidx: PatientIndex) -> np.ndarray:
    """``[P, P]`` win matrix of the patients' mean scores (ties 1/2)."""
    pscore = np.bincount(pidx.inv, weights=np.asarray(scores, dtype=np.float64)) / pidx.sizes
    return (pscore[:, None] > pscore[None, :]) + 0.5 * (pscore[:, None] == pscore[None, :])


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
    """Patient-clustered 95 % intervals; None where not computable (with the reason)."""

    auc: tuple[float, float] | None
    tpr: dict[float, tuple[float, float]]
    patient_auc: tuple[float, float] | None
    reason: str | None = None


def bootstrap_t_interval(
    estimate: float, resamples: np.ndarray, pidx: PatientIndex, level: float = 0.95
) -> tuple[float, float]:
    """``estimate`` +- t x the patient-bootstrap standard error, inflated for few patients; clipped to [0, 1].

    Args:
        estimate: the statistic on the observed candidates.
        resamples: the statistic on stratified patient resamples ``[B]``.
        pidx: the candidates' patients (``I1`` members, ``I0`` non-members).
        level: coverage of the interval.
    """
    i1, i0 = int(pidx.member.sum()), int((~pidx.member).sum())
    v = resamples[np.isfinite(resamples)]
    inflate = max(i1 / (i1 - 1), i0 / (i0 - 1))
    half = _t_quantile(min(i1, i0) - 1, level) * np.sqrt(inflate * np.var(v, ddof=1))
    return _clip(estimate - half, estimate + half)


def patient_intervals(
    scores: np.ndarray, is_member: np.ndarray, patient: np.ndarray, *, alphas: tuple[float, ...] = (),
    n_boot: int = 1000, seed: int = 0, W: np.ndarray | None = None,
) -> Intervals:
    """Patient-clustered 95 % intervals of the VU-level AUC, TPR at each FPR in ``alphas`` and patient AUC.

    Args:
        scores: candidate scores ``[n]`` (higher = more likely a member).
        is_member: membership of each candidate ``[n]``.
        patient: patient id of each candidate ``[n]``.
        alphas: FPR levels whose TPR gets an interval (bootstrap-t).
        n_boot: patient-bootstrap resamples (TPR only).
        seed: seed of the resamples.
        W: the patient win matrix when already computed (:func:`win_matrix`).
    """
    member = np.asarray(is_member, dtype=bool)
    pidx = PatientIndex.of(member, patient)
    if min(pidx.member.sum(), (~pidx.member).sum()) < 2:
        return Intervals(None, {}, None, "patient-clustered intervals need at least 2 member and 2 non-member patients")
    W = win_matrix(scores, pidx) if W is None else W
    auc = auc_components(W, pidx).interval()
    tpr = {}
    if alphas:
        a, b = bootstrap_multiplicities(pidx, n_boot, seed)
        w = (a + b)[:, pidx.inv]
        for alpha in alphas:
            est = float(weighted_tpr_at_fpr(scores, member, np.ones((1, len(member))), alpha)[0])
            tpr[alpha] = bootstrap_t_interval(est, weighted_tpr_at_fpr(scores, member, w, alpha), pidx)
    pauc = auc_components(patient_mean_wins(scores, pidx), patient_index_of_means(pidx)).interval()
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

    def adjusted_below(self, family: list[str]) -> dict[str, float]:
        """Max-statistic adjusted p-values of AUC < 0.5 over ``family`` (the minimum of the null AUCs)."""
        if not family:
            return {}
        mn = np.min(np.stack([self.null[k] for k in family]), axis=0)
        return {k: float((1 + (mn <= self.auc[k] + 1e-12).sum()) / (1 + len(mn))) for k in family}


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
