"""Utility: can a VU-position classifier learn from synthetic data what it learns from real data?

* ``trtr``: trained on the real train split, tested on the real holdout split.
* ``tstr``: trained on synthetic VUs (same label distribution and count as the real train split,
  drawn from the synthetic set without replacement; scaled down evenly when a class is short),
  tested on the real holdout split.
* ``trts``: trained on the real train split, tested on the synthetic set.

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


def matched_synthetic_subset(real_labels: np.ndarray, synthetic_labels: np.ndarray, n_classes: int, seed: int = 0) -> np.ndarray:
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


@dataclass
class UtilityResult:
    results: dict[str, ClassificationResult]
    tstr_train_size: int
    notes: dict[str, str] = field(default_factory=dict)

    def scalars(self) -> tuple[dict[str, float | None], dict[str, str]]:
        out: dict[str, float | None] = {}
        reasons: dict[str, str] = {}
        for s, r in self.results.items():
            out[f"utility.{s}.balanced_accuracy"] = r.balanced_accuracy
            if r.reason:
                reasons[f"utility.{s}.balanced_accuracy"] = r.reason
        trtr, tstr = out.get("utility.trtr.balanced_accuracy"), out.get("utility.tstr.balanced_accuracy")
        key = "utility.tstr_over_trtr"
        if trtr is None or tstr is None:
            out[key] = None
            reasons[key] = "TRTR or TSTR balanced accuracy is not available"
        elif trtr <= 0:
            out[key] = None
            reasons[key] = "TRTR balanced accuracy is zero"
        else:
            out[key] = tstr / trtr
        return out, reasons

    def arrays(self) -> dict[str, np.ndarray]:
        a: dict[str, np.ndarray] = {}
        for s, r in self.results.items():
            a[f"utility/{s}/confusion"] = r.confusion
            a[f"utility/{s}/recall"] = r.recall
        return a


def utility_scores(
    *,
    real_classifier: Any,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    holdout_images: np.ndarray,
    holdout_labels: np.ndarray,
    synthetic_images: np.ndarray,
    synthetic_labels: np.ndarray,
    n_classes: int,
    config: EncoderConfig = EncoderConfig(),
    seed: int = 0,
) -> UtilityResult:
    """TRTR, TSTR and TRTS with one classifier definition.

    ``real_classifier`` is the classifier already trained on ``train_images``/``train_labels``
    (:func:`~synthvu_core.evaluation.encoder.real_classifier`); the TSTR classifier is trained here
    with the same settings and seed on the matched synthetic subset.
    """
    res: dict[str, ClassificationResult] = {}
    res["trtr"] = classification_result(holdout_labels, predict(real_classifier, holdout_images), n_classes)
    subset = matched_synthetic_subset(train_labels, synthetic_labels, n_classes, seed=seed)
    notes: dict[str, str] = {}
    if n_classes >= 2 and len(subset) >= 2:
        tstr_model = train_classifier(synthetic_images[subset], np.asarray(synthetic_labels)[subset], n_classes, config=config, seed=seed)
        res["tstr"] = classification_result(holdout_labels, predict(tstr_model, holdout_images), n_classes)
        if not tstr_model.trained:
            res["tstr"].balanced_accuracy = None
            res["tstr"].reason = "the matched synthetic training set has fewer than two classes"
    else:
        r = classification_result(holdout_labels, np.zeros(len(holdout_labels), dtype=np.int64), n_classes)
        r.balanced_accuracy, r.confusion[:] = None, 0
        r.recall[:] = np.nan
        r.reason = r.reason or "no synthetic training set with the real label distribution could be drawn"
        res["tstr"] = r
    if len(subset) < len(np.asarray(train_labels)[np.asarray(train_labels) >= 0]):
        notes["tstr"] = f"TSTR trained on {len(subset)} synthetic VUs (fewer than the real train split)"
    res["trts"] = classification_result(synthetic_labels, predict(real_classifier, synthetic_images), n_classes)
    if not getattr(real_classifier, "trained", True):
        for s in ("trtr", "trts"):
            res[s].balanced_accuracy = None
            res[s].reason = res[s].reason or "the real train split has fewer than two classes"
    return UtilityResult(res, int(len(subset)), notes)
