"""Utility: can a VU-position classifier learn from synthetic data what it learns from real data?

* ``trtr``: trained on the real train split, tested on the real holdout split.
* ``tstr``: trained on synthetic VUs (same label distribution and count as the real train split,
  drawn from the synthetic set without replacement; scaled down evenly when a class is short),
  tested on the real holdout split.
* ``trts``: trained on the real train split, tested on the synthetic set.

Every setting runs once per classifier seed (the TSTR subset is drawn with the same seed): the
report gives the mean and a Student-t 95 % interval over seeds, and the confusion matrices pooled
over seeds. The real classifiers, the holdout set and the TSTR size depend on the dataset alone, so
every generator of one dataset is compared against the same TRTR.

Each: balanced accuracy (mean recall over the classes present in the test set), per-class recall
(NaN for classes absent from the test set) and the confusion matrix (rows = true, columns =
predicted). With fewer than two classes nothing is classified: metrics are None with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthvu_core.evaluation.encoder import EncoderConfig, predict, train_classifier

SETTINGS: tuple[str, ...] = ("trtr", "tstr", "trts")


@dataclass
class ClassificationResult:
    balanced_accuracy: float | None
    recall: np.ndarray  # [K], NaN where the class is absent from the test set
    confusion: np.ndarray  # [K, K] int, rows true, columns predicted
    n_test: int
    reason: str | None = None


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
    return ClassificationResult(float(np.nanmean(recall)), recall, conf, len(y_true))


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
    """Per setting, one :class:`ClassificationResult` per seed."""

    results: dict[str, list[ClassificationResult]]
    tstr_train_size: int
    seeds: tuple[int, ...] = (0,)
    notes: dict[str, str] = field(default_factory=dict)

    def per_seed(self, setting: str) -> list[float | None]:
        return [r.balanced_accuracy for r in self.results[setting]]

    def ratios(self) -> list[float | None]:
        return [
            None if a is None or b is None or a <= 0 else b / a
            for a, b in zip(self.per_seed("trtr"), self.per_seed("tstr"))
        ]

    def scalars(self) -> tuple[dict[str, float | None], dict[str, str]]:
        """Mean and 95 % CI over seeds of every setting and of TSTR/TRTR."""
        from synthvu_core.evaluation.inference import mean_ci

        out: dict[str, float | None] = {}
        reasons: dict[str, str] = {}
        series = {
            f"utility.{s}.balanced_accuracy": (self.per_seed(s), pooled(r, 1).reason) for s, r in self.results.items()
        }
        series["utility.tstr_over_trtr"] = (
            self.ratios(),
            "TRTR or TSTR balanced accuracy is not available (or TRTR is zero)",
        )
        for key, (vals, why) in series.items():
            m, lo, hi = mean_ci([v for v in vals if v is not None])
            out[key], out[f"{key}_ci_low"], out[f"{key}_ci_high"] = m, lo, hi
            if m is None:
                reasons[key] = reasons[f"{key}_ci_low"] = reasons[f"{key}_ci_high"] = why or "not computed"
            elif lo is None:
                reasons[f"{key}_ci_low"] = reasons[f"{key}_ci_high"] = "one seed only: no interval"
        return out, reasons

    def arrays(self, n_classes: int) -> dict[str, np.ndarray]:
        a: dict[str, np.ndarray] = {}
        for s, rs in self.results.items():
            r = pooled(rs, n_classes)
            a[f"utility/{s}/confusion"] = r.confusion
            a[f"utility/{s}/recall"] = r.recall
            a[f"utility/{s}/balanced_accuracy_seeds"] = np.array([np.nan if v is None else v for v in self.per_seed(s)])
        a["utility/seeds"] = np.array(self.seeds, dtype=np.int64)
        return a


def _tstr(
    synthetic_images: np.ndarray,
    synthetic_labels: np.ndarray,
    subset: np.ndarray,
    holdout_images: np.ndarray,
    holdout_labels: np.ndarray,
    n_classes: int,
    config: EncoderConfig,
    seed: int,
) -> ClassificationResult:
    if n_classes >= 2 and len(subset) >= 2:
        model = train_classifier(
            synthetic_images[subset], np.asarray(synthetic_labels)[subset], n_classes, config=config, seed=seed
        )
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
) -> UtilityResult:
    """TRTR, TSTR and TRTS with one classifier definition, once per seed.

    ``real_classifiers[i]`` is the classifier trained on the real train split with seed ``seeds[i]``
    (:func:`~synthvu_core.evaluation.encoder.real_classifier`); the TSTR classifier of seed ``s`` is
    trained here with the same settings and seed ``s`` on a matched synthetic subset drawn with seed ``s``.
    """
    res: dict[str, list[ClassificationResult]] = {s: [] for s in SETTINGS}
    notes: dict[str, str] = {}
    n_real = int((np.asarray(train_labels) >= 0).sum())
    size = 0
    for clf, seed in zip(real_classifiers, seeds):
        res["trtr"].append(classification_result(holdout_labels, predict(clf, holdout_images), n_classes))
        subset = matched_synthetic_subset(train_labels, synthetic_labels, n_classes, seed=seed)
        size = len(subset)
        res["tstr"].append(
            _tstr(synthetic_images, synthetic_labels, subset, holdout_images, holdout_labels, n_classes, config, seed)
        )
        res["trts"].append(classification_result(synthetic_labels, predict(clf, synthetic_images), n_classes))
        if not getattr(clf, "trained", True):
            for s in ("trtr", "trts"):
                res[s][-1].balanced_accuracy = None
                res[s][-1].reason = res[s][-1].reason or "the real train split has fewer than two classes"
    if size < n_real:
        notes["tstr"] = f"TSTR trained on {size} synthetic VUs (fewer than the real train split's {n_real})"
    return UtilityResult(res, int(size), tuple(seeds), notes)
