"""TSTR on the whole synthetic set: how useful a release of many synthetic VUs is, beside the fixed-size TSTR.

TSTR proper trains its classifier on as many synthetic VUs as the real train split holds (the published study's
design): it asks whether a synthetic VU teaches as much as a real one. A user who shares synthetic data shares
thousands of VUs, not as many as the patients gave. On a small dataset the two readings part: the classifier
trained on a few dozen samples sees a few of each level, the one trained on the whole synthetic set sees the
generator's spread. This module reads the second, with the same classifier definition, seeds, holdout and
intervals as TSTR: per utility seed ``s`` a classifier is trained with seed ``s`` on the largest subset of the
synthetic set (and ``tstr_extra``) with the real train split's label distribution (:func:`release_subset`), and
scored on the real holdout. TSTR/TRTR is read against the same TRTR classifiers.

It is read only where that subset holds at least :data:`MIN_FACTOR` times the real train split (a phantom cohort
of thousands of train VUs gains nothing over TSTR), and it never replaces TSTR: the goal line, the labels and the
verdicts stay on TSTR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from synthvu_core.evaluation.encoder import EncoderConfig
from synthvu_core.evaluation.utility import (
    ClassificationResult,
    _take,
    _tstr,
    matched_synthetic_subset,
    utility_result,
)

#: The reading is made where the whole-set subset holds at least this many times the real train split's VUs.
MIN_FACTOR = 2
PREFIX = "utility.release."
ARRAY_PREFIX = "utility/release/"


def release_subset(train_labels: np.ndarray, pool_labels: np.ndarray, n_classes: int, seed: int = 0) -> np.ndarray:
    """Indices into the pool: the real train split's label distribution, scaled up to as many VUs as the pool's
    rarest needed class allows (each count floored), drawn without replacement with ``seed``."""
    y = np.asarray(train_labels)
    need = np.bincount(y[y >= 0], minlength=n_classes)
    pool = np.asarray(pool_labels)
    have = np.bincount(pool[(pool >= 0) & (pool < n_classes)], minlength=n_classes)
    wanted = [c for c in range(n_classes) if need[c] > 0]
    if not wanted:
        return np.empty(0, dtype=np.int64)
    factor = min(have[c] / need[c] for c in wanted)
    scaled = np.where(need > 0, np.floor(need * factor), 0).astype(np.int64)
    return matched_synthetic_subset(np.repeat(np.arange(n_classes), scaled), pool, n_classes, seed=seed)


def release_size(train_labels: np.ndarray, pool_labels: np.ndarray, n_classes: int) -> tuple[int, str | None]:
    """``(size of the whole-set subset, why it is not read or None)``."""
    n_real = int((np.asarray(train_labels) >= 0).sum())
    size = len(release_subset(train_labels, pool_labels, n_classes))
    if n_real == 0 or size < MIN_FACTOR * n_real:
        return size, (f"the synthetic set gives {size} VUs with the real train split's label distribution, fewer than "
                      f"{MIN_FACTOR} times its {n_real}: the reading would repeat TSTR")
    return size, None


def release_seed(
    synthetic_images: np.ndarray,
    pool_labels: np.ndarray,
    tstr_extra: tuple[np.ndarray, np.ndarray] | None,
    train_labels: np.ndarray,
    holdout_images: np.ndarray,
    holdout_labels: np.ndarray,
    n_classes: int,
    config: EncoderConfig,
    seed: int,
) -> tuple[ClassificationResult, int]:
    """One utility seed's classifier trained on :func:`release_subset` (drawn with ``seed``), scored on the holdout:
    ``(result, subset size)``."""
    subset = release_subset(train_labels, pool_labels, n_classes, seed=seed)
    extra_images = tstr_extra[0] if tstr_extra is not None else None
    res = _tstr(_take(synthetic_images, extra_images, subset), pool_labels[subset], holdout_images, holdout_labels,
                n_classes, config, seed)
    return res, int(len(subset))


def release_part(
    real: list[tuple[ClassificationResult, ClassificationResult]],
    release: list[tuple[ClassificationResult, int]],
    train_labels: np.ndarray,
    holdout_labels: np.ndarray,
    n_classes: int,
    seeds: tuple[int, ...],
    holdout_groups: np.ndarray | None = None,
) -> tuple[dict[str, float | None], dict[str, str], dict[str, np.ndarray]]:
    """Scalars ``utility.release.{n_synthetic, tstr.balanced_accuracy, tstr_over_trtr}`` (with the intervals TSTR
    has), their reasons where missing, and the arrays ``utility/release/{recall, confusion, holdout_predictions}``."""
    u = utility_result(real, release, train_labels, holdout_labels, n_classes, seeds, holdout_groups)
    scalars, reasons = u.scalars()
    keep = ("utility.tstr.", "utility.tstr_over_trtr")

    def moved(key: str) -> str:
        return PREFIX + key.removeprefix("utility.")

    out: dict[str, float | None] = {PREFIX + "n_synthetic": float(u.tstr_train_size)}
    out.update({moved(k): v for k, v in scalars.items() if k.startswith(keep)})
    why = {moved(k): v for k, v in reasons.items() if k.startswith(keep)}
    arrays = {ARRAY_PREFIX + k.split("/")[-1]: v for k, v in u.arrays(n_classes).items()
              if k.startswith("utility/tstr/")}
    return out, why, arrays


def not_read(reason: str) -> dict[str, str]:
    """The reasons of a report without the reading (every scalar key it would hold)."""
    keys = [PREFIX + "n_synthetic"]
    for key in ("tstr.balanced_accuracy", "tstr_over_trtr"):
        keys += [PREFIX + key + end for end in ("", "_ci_low", "_ci_high", "_seeds_ci_low", "_seeds_ci_high")]
    return dict.fromkeys(keys, reason)


def release_text(
    scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray], classes: list[str], missing: Mapping[str, str]
) -> str | None:
    """One sentence for the CLI, the card and the dashboard: the reading, or why it was not made; None for a report
    made before it."""
    from synthvu_core.evaluation.utility import interval_cell

    value = scalars.get(PREFIX + "tstr.balanced_accuracy")
    if value is None:
        why = missing.get(PREFIX + "tstr.balanced_accuracy")
        return None if why is None else f"TSTR on the whole synthetic set: not read ({why})."
    recall = arrays.get(ARRAY_PREFIX + "recall")
    ratio = scalars.get(PREFIX + "tstr_over_trtr")
    n = int(scalars.get(PREFIX + "n_synthetic") or 0)
    chance = scalars.get("utility.chance")
    tstr = interval_cell(value, scalars.get(PREFIX + "tstr.balanced_accuracy_ci_low"),
                         scalars.get(PREFIX + "tstr.balanced_accuracy_ci_high"))
    text = f"Trained on the whole synthetic set ({n:,} VUs, the real train split's class mix): TSTR {tstr}"
    if ratio is not None:
        text += ", TSTR/TRTR " + interval_cell(ratio, scalars.get(PREFIX + "tstr_over_trtr_ci_low"),
                                              scalars.get(PREFIX + "tstr_over_trtr_ci_high"))
    if chance is not None:
        text += f" (chance {chance:.3f})"
        low = [] if recall is None else [c for c, r in zip(classes, recall) if np.isfinite(r) and r <= chance]
        text += "; every class above chance" if recall is not None and not low else (
            f"; at or below chance: {', '.join(low)}" if low else "")
    return text + ". A reading of a large release beside TSTR, which trains on as many VUs as the real split holds."

