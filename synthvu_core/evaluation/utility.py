"""Utility: can a VU-position classifier learn from synthetic data what it learns from real data?

* ``trtr``: trained on the real train split, tested on the real holdout split.
* ``tstr``: trained on synthetic VUs (same label distribution and count as the real train split,
  drawn from the synthetic set without replacement; scaled down evenly when a class is short),
  tested on the real holdout split.
* ``trts``: trained on the real train split, tested on the synthetic set.

Every setting runs once per classifier seed (the TSTR subset is drawn with the same seed): the
report gives the mean over seeds and a 95 % interval over classifier seeds *and* holdout patients
(:func:`patient_bootstrap`: holdout patients resampled with replacement, one seed drawn per
replicate, balanced accuracy recomputed from the stored predictions), the Student-t interval over
seeds alone beside it, and the confusion matrices pooled over seeds. The real classifiers, the
holdout set and the TSTR size depend on the dataset alone, so every generator of one dataset is
compared against the same TRTR.

Chance is ``1 / (number of classes present in the holdout)`` (:func:`chance_level`); a generator whose
TSTR interval reaches chance is "not useful for this task" (:func:`usefulness`, a pure function of
stored numbers, read by the CLI, the model card, the README table and the dashboard).

Each: balanced accuracy (mean recall over the classes present in the test set), per-class recall
(NaN for classes absent from the test set) and the confusion matrix (rows = true, columns =
predicted). With fewer than two classes nothing is classified: metrics are None with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthvu_core.evaluation.encoder import EncoderConfig, predict, train_classifier
from synthvu_core.names import MIN_RECALL_PATIENTS

SETTINGS: tuple[str, ...] = ("trtr", "tstr", "trts")


@dataclass
class ClassificationResult:
    balanced_accuracy: float | None
    recall: np.ndarray  # [K], NaN where the class is absent from the test set
    confusion: np.ndarray  # [K, K] int, rows true, columns predicted
    n_test: int
    reason: str | None = None
    predictions: np.ndarray | None = None  # [n_test] predicted classes (test rows kept), for the patient bootstrap


def classification_result(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> ClassificationResult:
    """Balanced accuracy, per-class recall and confusion matrix of predictions ``[N]``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    keep = (y_true >= 0) & (y_true < n_classes)
    y_true, y_pred = y_true[keep], y_pred[keep]
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(conf, (y_true, np.clip(y_pred, 0, n_classes - 1)), 1)
    support = conf.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, np.diag(conf) / np.maximum(support, 1), np.nan)
    if n_classes < 2:
        return ClassificationResult(None, recall, conf, len(y_true), "one class: there is nothing to classify")
    if len(y_true) == 0:
        return ClassificationResult(None, recall, conf, 0, "the test set is empty")
    return ClassificationResult(float(np.nanmean(recall)), recall, conf, len(y_true), predictions=y_pred)


# ---- chance and the usefulness label -----------------------------------------------------------

NOT_USEFUL = "not useful for this task"
PATIENT_SEED_INTERVAL = "bootstrap over holdout patients and classifier seeds"


def chance_level(labels: np.ndarray, n_classes: int) -> float | None:
    """Balanced accuracy of guessing: ``1 / (number of classes present in labels)``; None below two classes.

    Balanced accuracy averages recall over the classes present in the test set, so a class absent
    from the holdout does not count (a 6-class scheme whose holdout holds 4 levels has chance 0.25).
    """
    y = np.asarray(labels, dtype=np.int64)
    k = len(np.unique(y[(y >= 0) & (y < n_classes)]))
    return 1.0 / k if k >= 2 else None


def chance_from_recall(recall: np.ndarray | None) -> float | None:
    """Chance of a stored report from its holdout recall (NaN = class absent from the holdout); None below two."""
    if recall is None:
        return None
    k = int(np.isfinite(np.asarray(recall, dtype=np.float64)).sum())
    return 1.0 / k if k >= 2 else None


@dataclass(frozen=True)
class Usefulness:
    """Whether TSTR is above chance: ``level`` is ``not_useful`` (red), ``above_chance`` or ``unknown``."""

    level: str
    text: str
    chance: float | None = None


def usefulness(tstr: float | None, low: float | None, high: float | None, chance: float | None) -> Usefulness:
    """The label of a TSTR balanced accuracy (mean, 95 % interval) against chance: "not useful for this task"
    where the interval reaches chance (``low <= chance``), or, without an interval, where the mean does."""
    if tstr is None or chance is None:
        return Usefulness("unknown", "TSTR or its chance level is not measured: re-run evaluate", chance)
    ci = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    if (low if low is not None else tstr) <= chance:
        return Usefulness("not_useful", f"{NOT_USEFUL}: TSTR {tstr:.3f}{ci} reaches chance ({chance:.3f})", chance)
    if low is None:
        return Usefulness("unknown", f"TSTR {tstr:.3f} without an interval (chance {chance:.3f})", chance)
    return Usefulness("above_chance", f"TSTR {tstr:.3f}{ci} is above chance ({chance:.3f})", chance)


def report_chance(scalars: Mapping[str, Any], recall: np.ndarray | None = None) -> float | None:
    """``utility.chance`` of a report, or (reports written before it was stored) from the TRTR holdout recall."""
    c = scalars.get("utility.chance")
    return float(c) if c is not None else chance_from_recall(recall)


def report_usefulness(
    scalars: Mapping[str, Any], meta: Mapping[str, Any], recall: np.ndarray | None = None
) -> Usefulness:
    """:func:`usefulness` of a stored report (``recall``: its ``utility/trtr/recall`` array, for older reports)."""
    k = "utility.tstr.balanced_accuracy"
    chance = report_chance(scalars, recall)
    u = usefulness(scalars.get(k), scalars.get(k + "_ci_low"), scalars.get(k + "_ci_high"), chance)
    if (meta.get("utility") or {}).get("interval") != PATIENT_SEED_INTERVAL and u.level != "unknown":
        u = Usefulness(u.level, u.text + " (interval over classifier seeds only: re-run evaluate for holdout "
                       "patients too)", u.chance)
    return u


# ---- intervals over classifier seeds and holdout patients --------------------------------------


def patient_bootstrap(
    y_true: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    groups: np.ndarray,
    n_classes: int,
    n_boot: int = 2000,
    seed: int = 0,
    per_class: bool = False,
) -> dict[str, np.ndarray]:
    """Balanced accuracy ``[n_boot]`` per setting over bootstrap replicates of holdout patients and seeds
    (``per_class``: each class's recall ``[n_boot, K]`` instead, NaN where a replicate holds no VU of the class).

    ``predictions[name]`` is ``[S, N]`` (one row per classifier seed) for the test rows ``y_true``
    ``[N]`` of patients ``groups`` ``[N]``. Each replicate draws the patients with replacement and one
    seed (the same patients and seed for every setting, so ratios pair), and recomputes balanced
    accuracy (mean recall over the classes present in the replicate) from the stored predictions.
    """
    y = np.asarray(y_true, dtype=np.int64)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    n_p = int(g.max()) + 1 if len(g) else 0
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(rng.integers(0, n_p, n_p), minlength=n_p) for _ in range(n_boot)]).astype(float)
    total = np.zeros((n_p, n_classes))
    np.add.at(total, (g, y), 1)
    den = weights @ total  # [B, K]
    n_seeds = {len(np.atleast_2d(p)) for p in predictions.values()}
    pick = rng.integers(0, min(n_seeds) if n_seeds else 1, n_boot)
    out: dict[str, np.ndarray] = {}
    for name, pred in predictions.items():
        pred = np.atleast_2d(np.asarray(pred, dtype=np.int64))
        correct = np.zeros((len(pred), n_p, n_classes))
        for s, row in enumerate(pred):
            hit = row == y
            np.add.at(correct[s], (g[hit], y[hit]), 1)
        num = np.einsum("bp,bpk->bk", weights, correct[pick])
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
            out[name] = recall if per_class else np.nanmean(recall, axis=1)
    return out


@dataclass(frozen=True)
class ClassRecall:
    """One class's recall on the holdout (pooled over classifier seeds) with what it rests on.

    ``n_vus``/``n_patients``: the class's holdout VUs and patients (None where the report does not store them).
    ``low``/``high``: its 95 % interval (:func:`class_recall`); None with ``why`` where the class is absent, held by
    one patient (resampling one patient says nothing about another) or the report stores no per-row predictions.
    """

    recall: float | None
    n_vus: int | None
    n_patients: int | None
    low: float | None = None
    high: float | None = None
    why: str | None = None

    def cell(self) -> str:
        """``"0.64 [0.40, 0.88]"``, ``"0.00 (1 patient: no interval)"`` or ``"absent"``."""
        return "absent" if self.recall is None else interval_cell(self.recall, self.low, self.high, self.why)

    def at_or_below(self, chance: float | None) -> bool:
        """Whether the recall is at or below ``chance`` (the holdout's, as for balanced accuracy)."""
        return self.recall is not None and chance is not None and self.recall <= chance

    def support(self) -> str:
        """What the recall rests on: ``"5 VUs, 3 patients"``."""
        return support_text(self.n_vus, self.n_patients)


def interval_cell(value: float, low: float | None, high: float | None, why: str | None = None) -> str:
    """``"0.64 [0.40, 0.88]"``, or without an interval ``"0.25 (why)"`` / ``"0.25"``."""
    if low is None or high is None:
        return f"{value:.2f} ({why})" if why else f"{value:.2f}"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def support_text(n_vus: int | None, n_patients: int | None) -> str:
    """What a holdout number rests on: ``"5 VUs, 3 patients"`` (or what is not stored)."""
    if n_vus is None:
        return "holdout not stored"
    vus = "1 VU" if n_vus == 1 else f"{n_vus} VUs"
    if n_patients is None:
        return f"{vus}, patients not stored"
    return f"{vus}, {'1 patient' if n_patients == 1 else f'{n_patients} patients'}"


@dataclass(frozen=True)
class RecallRow:
    """One class present in the holdout: its index and its TRTR and TSTR :class:`ClassRecall` (None: not stored)."""

    index: int
    trtr: ClassRecall | None
    tstr: ClassRecall | None

    @property
    def support(self) -> str:
        return next(x for x in (self.trtr, self.tstr) if x is not None).support()

    def real_fails_too(self, chance: float | None) -> bool:
        """Whether TRTR is at or below ``chance`` as well as TSTR: the real classifier does not recognise the
        holdout's VUs of the class either, so this holdout cannot show what the generator does for it."""
        return all(x is not None and x.at_or_below(chance) for x in (self.trtr, self.tstr))


def classes_at_or_below(recall: np.ndarray | None, chance: float | None) -> list[int]:
    """Indices of the classes present in the holdout (finite recall) whose recall is at or below ``chance``."""
    if recall is None or chance is None:
        return []
    r = np.asarray(recall, dtype=np.float64)
    return [i for i in range(len(r)) if np.isfinite(r[i]) and r[i] <= chance]


#: What a class whose TSTR and TRTR recall are both at or below chance is marked with.
REAL_ALSO_AT_CHANCE = "so is TRTR: the real classifier does not recognise these holdout VUs either"


def recall_table(arrays: Mapping[str, np.ndarray]) -> tuple[list[RecallRow], list[int]]:
    """``(rows of the classes present in the holdout, indices of the classes absent from it)`` of a stored report's
    TRTR and TSTR per-class recall (:func:`class_recall`); both empty where it stores none."""
    cols = [class_recall(arrays, s) for s in ("trtr", "tstr")]
    n = max((len(c) for c in cols if c is not None), default=0)
    rows, absent = [], []
    for i in range(n):
        trtr, tstr = (c[i] if c is not None and i < len(c) else None for c in cols)
        if all(x is None or x.recall is None for x in (trtr, tstr)):
            absent.append(i)
        else:
            rows.append(RecallRow(i, trtr, tstr))
    return rows, absent


def _stored_holdout(arrays: Mapping[str, np.ndarray], k: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(holdout labels, their patients)`` of a report, each None where not stored or not consistent with ``k``
    classes (a label outside them; patients of another length)."""
    labels, patients = arrays.get("utility/holdout_labels"), arrays.get("utility/holdout_patient")
    if labels is None:
        return None, None
    y = np.asarray(labels, dtype=np.int64).ravel()
    if len(y) and (y.min() < 0 or y.max() >= k):
        return None, None
    groups = None if patients is None else np.asarray(patients).ravel()
    return y, groups if groups is not None and len(groups) == len(y) else None


def class_patients(arrays: Mapping[str, np.ndarray], k: int) -> list[int] | None:
    """Holdout patients of each of ``k`` classes in a stored report (what a class's recall rests on); None where the
    report stores no usable holdout labels and patients."""
    y, groups = _stored_holdout(arrays, k)
    return None if y is None or groups is None else [len(np.unique(groups[y == c])) for c in range(k)]


def exact_interval(recall: float, n: int) -> tuple[float, float]:
    """The 95 % Clopper-Pearson interval of ``recall`` read as ``recall * n`` successes in ``n`` trials."""
    from scipy.special import betaincinv

    x = recall * n
    low = 0.0 if x <= 0 else float(betaincinv(x, n - x + 1, 0.025))
    high = 1.0 if x >= n else float(betaincinv(x + 1, n - x, 0.975))
    return low, high


def class_recall(arrays: Mapping[str, np.ndarray], setting: str, n_boot: int = 2000) -> list[ClassRecall] | None:
    """Per-class recall of ``setting`` (``"trtr"`` or ``"tstr"``) of a stored report, each with its holdout VUs and
    patients and, from two holdout patients of the class up, its 95 % interval; None where it holds no recall.

    The interval is the percentile interval of the class's recall over the replicates of :func:`patient_bootstrap`
    (holdout patients resampled, one classifier seed per replicate; replicates without the class left out), widened
    to at least the exact binomial interval over the class's patients (:func:`exact_interval`): where every patient
    is classified right by every seed, each replicate agrees and the bootstrap alone would read ``[1.00, 1.00]``.
    """
    rec = arrays.get(f"utility/{setting}/recall")
    if rec is None:
        return None
    rec = np.asarray(rec, dtype=np.float64).ravel()
    k = len(rec)
    y, groups = _stored_holdout(arrays, k)
    vus = None if y is None else np.bincount(y, minlength=k)
    n_pat = class_patients(arrays, k)
    preds = arrays.get(f"utility/{setting}/holdout_predictions")
    boot = None
    if n_pat is not None and preds is not None and np.atleast_2d(preds).shape[1] == len(y):
        boot = patient_bootstrap(y, {setting: np.atleast_2d(preds)}, groups, k, n_boot, per_class=True)[setting]
    out = []
    for c, r in enumerate(rec):
        n_v, n_p = (None if vus is None else int(vus[c])), (None if n_pat is None else n_pat[c])
        if not np.isfinite(r):
            out.append(ClassRecall(None, n_v, n_p))
        elif boot is None:
            out.append(ClassRecall(float(r), n_v, n_p, why="no per-patient predictions stored: re-run evaluate"))
        elif n_p < MIN_RECALL_PATIENTS:
            out.append(ClassRecall(float(r), n_v, n_p, why=f"{n_p} patient{'' if n_p == 1 else 's'}: no interval"))
        else:
            lo, hi = np.quantile(boot[:, c][np.isfinite(boot[:, c])], [0.025, 0.975])
            e_lo, e_hi = exact_interval(float(r), n_p)
            out.append(ClassRecall(float(r), n_v, n_p, min(float(lo), e_lo), max(float(hi), e_hi)))
    return out


def matched_synthetic_subset(
    real_labels: np.ndarray, synthetic_labels: np.ndarray, n_classes: int, seed: int = 0
) -> np.ndarray:
    """Indices into the synthetic set with the real train split's label distribution and size.

    Per class ``c`` the real count ``n_c`` is drawn without replacement; when some class has fewer
    synthetic VUs than needed, every count is scaled by the same factor (distribution kept, size
    smaller).
    """
    rng = np.random.default_rng(seed)
    need = np.bincount(np.asarray(real_labels)[np.asarray(real_labels) >= 0], minlength=n_classes)
    syn = np.asarray(synthetic_labels)
    have = np.bincount(syn[(syn >= 0) & (syn < n_classes)], minlength=n_classes)
    factor = min(1.0, *(have[c] / need[c] for c in range(n_classes) if need[c] > 0)) if need.sum() else 0.0
    out = []
    for c in range(n_classes):
        k = int(np.floor(need[c] * factor))
        if k:
            out.append(rng.choice(np.flatnonzero(syn == c), size=k, replace=False))
    return np.sort(np.concatenate(out)) if out else np.empty(0, dtype=np.int64)


def pooled(results: list[ClassificationResult], n_classes: int) -> ClassificationResult:
    """One result from several seeds: confusion matrices summed, recall from the sum, balanced accuracy = mean."""
    conf = np.sum([r.confusion for r in results], axis=0) if results else np.zeros((n_classes, n_classes), np.int64)
    support = conf.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, np.diag(conf) / np.maximum(support, 1), np.nan)
    vals = [r.balanced_accuracy for r in results if r.balanced_accuracy is not None]
    reason = next((r.reason for r in results if r.reason), None)
    return ClassificationResult(
        float(np.mean(vals)) if vals else None, recall, conf, results[0].n_test if results else 0, reason
    )


@dataclass
class UtilityResult:
    """Per setting, one :class:`ClassificationResult` per seed; the holdout's labels and patients."""

    results: dict[str, list[ClassificationResult]]
    tstr_train_size: int
    seeds: tuple[int, ...] = (0,)
    notes: dict[str, str] = field(default_factory=dict)
    holdout_labels: np.ndarray | None = None
    holdout_groups: np.ndarray | None = None  # [N] patient of each holdout row; None: seeds-only intervals
    n_classes: int = 0
    n_boot: int = 2000

    def per_seed(self, setting: str) -> list[float | None]:
        return [r.balanced_accuracy for r in self.results[setting]]

    def ratios(self) -> list[float | None]:
        return [
            None if a is None or b is None or a <= 0 else b / a
            for a, b in zip(self.per_seed("trtr"), self.per_seed("tstr"))
        ]

    def chance(self) -> float | None:
        return None if self.holdout_labels is None else chance_level(self.holdout_labels, self.n_classes)

    def bootstrap(self) -> dict[str, np.ndarray]:
        """:func:`patient_bootstrap` of TRTR and TSTR (settings whose every seed has predictions), and their ratio."""
        if self.holdout_groups is None or self.holdout_labels is None or len(self.holdout_labels) == 0:
            return {}
        preds = {
            s: np.stack([r.predictions for r in self.results[s]])
            for s in ("trtr", "tstr")
            if self.results[s] and all(r.predictions is not None and r.balanced_accuracy is not None
                                       for r in self.results[s])
        }
        boot = patient_bootstrap(self.holdout_labels, preds, self.holdout_groups, self.n_classes, self.n_boot)
        if "trtr" in boot and "tstr" in boot:
            with np.errstate(invalid="ignore", divide="ignore"):
                boot["tstr_over_trtr"] = np.where(boot["trtr"] > 0, boot["tstr"] / boot["trtr"], np.nan)
        return boot

    def scalars(self) -> tuple[dict[str, float | None], dict[str, str]]:
        """Mean over seeds of every setting and of TSTR/TRTR; the 95 % interval over holdout patients and seeds
        (``_ci_low``/``_ci_high``; TRTS, tested on the synthetic set, over seeds) and over seeds alone
        (``_seeds_ci_low``/``_seeds_ci_high``); the chance level."""
        from synthvu_core.evaluation.inference import mean_ci

        out: dict[str, float | None] = {"utility.chance": self.chance()}
        reasons: dict[str, str] = {}
        if out["utility.chance"] is None:
            reasons["utility.chance"] = "fewer than two classes in the holdout: no chance level"
        boot = self.bootstrap()
        series = {
            (f"utility.{s}.balanced_accuracy", s): (self.per_seed(s), pooled(r, 1).reason)
            for s, r in self.results.items()
        }
        series[("utility.tstr_over_trtr", "tstr_over_trtr")] = (
            self.ratios(),
            "TRTR or TSTR balanced accuracy is not available (or TRTR is zero)",
        )
        for (key, name), (vals, why) in series.items():
            m, lo, hi = mean_ci([v for v in vals if v is not None])
            out[key], out[f"{key}_seeds_ci_low"], out[f"{key}_seeds_ci_high"] = m, lo, hi
            b = boot.get(name)
            b = b[np.isfinite(b)] if b is not None else None
            if m is not None and b is not None and len(b):
                lo, hi = (float(q) for q in np.quantile(b, [0.025, 0.975]))
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = lo, hi
            ends = [f"{key}{e}" for e in ("_ci_low", "_ci_high", "_seeds_ci_low", "_seeds_ci_high")]
            if m is None:
                reasons.update({k: why or "not computed" for k in [key, *ends]})
            for k in ends:
                if m is not None and out[k] is None:
                    reasons[k] = "one seed only: no interval"
        return out, reasons

    def arrays(self, n_classes: int) -> dict[str, np.ndarray]:
        a: dict[str, np.ndarray] = {}
        for s, rs in self.results.items():
            r = pooled(rs, n_classes)
            a[f"utility/{s}/confusion"] = r.confusion
            a[f"utility/{s}/recall"] = r.recall
            a[f"utility/{s}/balanced_accuracy_seeds"] = np.array([np.nan if v is None else v for v in self.per_seed(s)])
            if s != "trts" and rs and all(x.predictions is not None for x in rs):
                a[f"utility/{s}/holdout_predictions"] = np.stack([x.predictions for x in rs]).astype(np.int16)
        a["utility/seeds"] = np.array(self.seeds, dtype=np.int64)
        if self.holdout_labels is not None:
            a["utility/holdout_labels"] = np.asarray(self.holdout_labels, dtype=np.int16)
        if self.holdout_groups is not None:  # patient codes (0..P-1), not the patients' ids
            a["utility/holdout_patient"] = np.unique(np.asarray(self.holdout_groups), return_inverse=True)[1].astype(
                np.int32
            )
        return a


def _take(images: np.ndarray, extra: np.ndarray | None, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of ``images`` followed by ``extra`` (without concatenating the two), in the order of ``idx``."""
    if extra is None or len(extra) == 0:
        return images[idx]
    n0 = len(images)
    out = np.empty((len(idx), *images.shape[1:]), dtype=images.dtype)
    first = idx < n0
    out[first] = images[idx[first]]
    out[~first] = extra[idx[~first] - n0]
    return out


def _tstr(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    holdout_images: np.ndarray,
    holdout_labels: np.ndarray,
    n_classes: int,
    config: EncoderConfig,
    seed: int,
) -> ClassificationResult:
    if n_classes >= 2 and len(train_labels) >= 2:
        model = train_classifier(train_images, train_labels, n_classes, config=config, seed=seed)
        res = classification_result(holdout_labels, predict(model, holdout_images), n_classes)
        if not model.trained:
            res.balanced_accuracy = None
            res.reason = "the matched synthetic training set has fewer than two classes"
        return res
    r = classification_result(holdout_labels, np.zeros(len(holdout_labels), dtype=np.int64), n_classes)
    r.balanced_accuracy, r.confusion[:] = None, 0
    r.recall[:] = np.nan
    r.reason = r.reason or "no synthetic training set with the real label distribution could be drawn"
    return r


def utility_scores(
    *,
    real_classifiers: list[Any],
    train_labels: np.ndarray,
    holdout_images: np.ndarray,
    holdout_labels: np.ndarray,
    synthetic_images: np.ndarray,
    synthetic_labels: np.ndarray,
    n_classes: int,
    config: EncoderConfig = EncoderConfig(),
    seeds: tuple[int, ...] = (0, 1, 2),
    holdout_groups: np.ndarray | None = None,
    tstr_extra: tuple[np.ndarray, np.ndarray] | None = None,
) -> UtilityResult:
    """TRTR, TSTR and TRTS with one classifier definition, once per seed.

    ``real_classifiers[i]`` is the classifier trained on the real train split with seed ``seeds[i]``
    (:func:`~synthvu_core.evaluation.encoder.real_classifier`); the TSTR classifier of seed ``s`` is
    trained here with the same settings and seed ``s`` on a matched synthetic subset drawn with seed ``s``.
    ``holdout_groups`` (the patient of each holdout row) adds the interval over holdout patients.
    ``tstr_extra`` (images, labels): more VUs of the same generator, drawn on (after the synthetic set)
    only for the TSTR training subset, so that it can be as large as the real train split.
    """
    pool_labels = tstr_pool_labels(synthetic_labels, tstr_extra)
    pairs = list(zip(real_classifiers, seeds))
    real = [real_seed(clf, holdout_images, holdout_labels, synthetic_images, synthetic_labels, n_classes)
            for clf, _ in pairs]
    tstr = [
        tstr_seed(synthetic_images, pool_labels, tstr_extra, train_labels, holdout_images, holdout_labels, n_classes,
                  config, seed)
        for _, seed in pairs
    ]
    return utility_result(real, tstr, train_labels, holdout_labels, n_classes, seeds, holdout_groups)


def tstr_pool_labels(
    synthetic_labels: np.ndarray, tstr_extra: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Labels of the VUs a TSTR subset is drawn from: the synthetic set's, then ``tstr_extra``'s."""
    extra_labels = tstr_extra[1] if tstr_extra is not None else np.empty(0, np.int64)
    return np.concatenate([np.asarray(synthetic_labels, np.int64), np.asarray(extra_labels, np.int64)])


def tstr_seed(
    synthetic_images: np.ndarray,
    pool_labels: np.ndarray,
    tstr_extra: tuple[np.ndarray, np.ndarray] | None,
    train_labels: np.ndarray,
    holdout_images: np.ndarray,
    holdout_labels: np.ndarray,
    n_classes: int,
    config: EncoderConfig,
    seed: int,
    subset_of: Callable[..., np.ndarray] | None = None,
) -> tuple[ClassificationResult, int]:
    """TSTR of one classifier seed: ``(result on the holdout, size of the matched synthetic training subset)``.

    The subset (drawn with ``seed`` from ``pool_labels``, :func:`tstr_pool_labels`) has the real train split's
    label distribution; the classifier is trained on it with ``seed``. Needs no real classifier. ``subset_of``
    (``(train_labels, pool_labels, n_classes, seed=)`` -> indices) draws another subset:
    :func:`matched_synthetic_subset` (the real split's size) unless given.
    """
    subset = (subset_of or matched_synthetic_subset)(train_labels, pool_labels, n_classes, seed=seed)
    extra_images = tstr_extra[0] if tstr_extra is not None else None
    res = _tstr(_take(synthetic_images, extra_images, subset), pool_labels[subset], holdout_images, holdout_labels,
                n_classes, config, seed)
    return res, int(len(subset))


def real_seed(
    clf: Any, holdout_images: np.ndarray, holdout_labels: np.ndarray, synthetic_images: np.ndarray,
    synthetic_labels: np.ndarray, n_classes: int,
) -> tuple[ClassificationResult, ClassificationResult]:
    """TRTR and TRTS of one real classifier: ``(result on the holdout, result on the synthetic set)``."""
    trtr = classification_result(holdout_labels, predict(clf, holdout_images), n_classes)
    trts = classification_result(synthetic_labels, predict(clf, synthetic_images), n_classes)
    if not getattr(clf, "trained", True):
        for r in (trtr, trts):
            r.balanced_accuracy = None
            r.reason = r.reason or "the real train split has fewer than two classes"
    return trtr, trts


def utility_result(
    real: list[tuple[ClassificationResult, ClassificationResult]],
    tstr: list[tuple[ClassificationResult, int]],
    train_labels: np.ndarray,
    holdout_labels: np.ndarray,
    n_classes: int,
    seeds: tuple[int, ...],
    holdout_groups: np.ndarray | None = None,
) -> UtilityResult:
    """The :class:`UtilityResult` of per-seed :func:`real_seed` and :func:`tstr_seed` results (in ``seeds`` order;
    as many seeds as both lists hold)."""
    n = min(len(real), len(tstr), len(seeds))
    res: dict[str, list[ClassificationResult]] = {
        "trtr": [r[0] for r in real[:n]], "tstr": [t[0] for t in tstr[:n]], "trts": [r[1] for r in real[:n]],
    }
    notes: dict[str, str] = {}
    n_real = int((np.asarray(train_labels) >= 0).sum())
    size = tstr[n - 1][1] if n else 0
    if size < n_real:
        notes["tstr"] = f"TSTR trained on {size} synthetic VUs (fewer than the real train split's {n_real})"
    y = np.asarray(holdout_labels, dtype=np.int64)
    keep = (y >= 0) & (y < n_classes)  # the rows classification_result scores
    groups = None if holdout_groups is None else np.asarray(holdout_groups)[keep]
    return UtilityResult(res, int(size), tuple(seeds), notes, y[keep], groups, n_classes)
