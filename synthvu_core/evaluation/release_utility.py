"""TSTR on the whole synthetic set: how useful a release of many synthetic VUs is, beside the fixed-size TSTR.

TSTR proper trains its classifier on as many synthetic VUs as the real train split holds (the published study's
design): it asks whether a synthetic VU teaches as much as a real one. A user who shares synthetic data shares
thousands of VUs, not as many as the patients gave. On a small dataset the two readings part: the classifier
trained on a few dozen samples sees a few of each level, the one trained on the whole synthetic set sees the
generator's spread. This module reads the second, with the same classifier definition, seeds, holdout and
intervals as TSTR: per utility seed ``s`` a classifier is trained with seed ``s`` on the largest subset of the
synthetic set (and ``tstr_extra``) with the real train split's label distribution (:func:`release_subset`, given
to :func:`~synthvu_core.evaluation.utility.tstr_seed` as its ``subset_of``), and scored on the real holdout.
TSTR/TRTR is read against the same TRTR classifiers.

It is read only where that subset holds at least :data:`MIN_FACTOR` times the real train split (below that, TSTR
already trains on a comparable number), and it never replaces TSTR: the goal line, the labels and the verdicts stay
on TSTR.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from synthvu_core.evaluation.utility import (
    ClassificationResult,
    class_recall,
    interval_cell,
    matched_synthetic_subset,
    report_chance,
    utility_result,
)

#: The reading is made where the whole-set subset holds at least this many times the real train split's VUs: a
#: release much larger than the data it stands in for (below it, TSTR already trains on a comparable number, and
#: the reading would cost the evaluation as many classifiers again).
MIN_FACTOR = 5
PREFIX = "utility.release."
ARRAY_PREFIX = "utility/release/"


def _counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    y = np.asarray(labels)
    return np.bincount(y[(y >= 0) & (y < n_classes)], minlength=n_classes)


def release_counts(train_labels: np.ndarray, pool_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """VUs per class of the whole-set subset: the real train split's counts scaled up to what the pool's rarest
    needed class allows, each floored (zeros where the real split holds none of the classes)."""
    need, have = _counts(train_labels, n_classes), _counts(pool_labels, n_classes)
    wanted = need > 0
    if not wanted.any():
        return np.zeros(n_classes, dtype=np.int64)
    factor = float(np.min(have[wanted] / need[wanted]))
    return np.where(wanted, np.floor(need * factor), 0).astype(np.int64)


def release_subset(train_labels: np.ndarray, pool_labels: np.ndarray, n_classes: int, seed: int = 0) -> np.ndarray:
    """Indices into the pool with :func:`release_counts` VUs of each class, drawn without replacement with ``seed``."""
    counts = release_counts(train_labels, pool_labels, n_classes)
    return matched_synthetic_subset(np.repeat(np.arange(n_classes), counts), pool_labels, n_classes, seed=seed)


def release_size(train_labels: np.ndarray, pool_labels: np.ndarray, n_classes: int) -> tuple[int, str | None]:
    """``(size of the whole-set subset, why it is not read or None)``."""
    n_real = int(_counts(train_labels, n_classes).sum())
    size = int(release_counts(train_labels, pool_labels, n_classes).sum())
    if n_real == 0 or size < MIN_FACTOR * n_real:
        return size, (f"the synthetic set gives {size} VUs with the real train split's label distribution, fewer than "
                      f"{MIN_FACTOR} times its {n_real}: not a release much larger than the data, and TSTR already "
                      "trains on a comparable number")
    return size, None


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
    scalars: Mapping[str, float | None], arrays: Mapping[str, np.ndarray], classes: list[str],
    missing: Mapping[str, str],
) -> str | None:
    """One sentence for the CLI, the card and the dashboard: the reading, or why it was not made; None for a report
    made before it. Per class it names the classes whose recall is at or below chance, and how many rest on one
    holdout patient (no interval)."""
    value = scalars.get(PREFIX + "tstr.balanced_accuracy")
    if value is None:
        why = missing.get(PREFIX + "tstr.balanced_accuracy")
        return None if why is None else f"TSTR on the whole synthetic set: not read ({why})."
    chance = report_chance(scalars, arrays.get("utility/trtr/recall"))
    n = int(scalars.get(PREFIX + "n_synthetic") or 0)

    def cell(key: str) -> str:
        return interval_cell(float(scalars[key]), scalars.get(key + "_ci_low"), scalars.get(key + "_ci_high"),
                             missing.get(key + "_ci_low"))

    text = f"Trained on the whole synthetic set ({n:,} VUs, the real train split's class mix): TSTR "
    text += cell(PREFIX + "tstr.balanced_accuracy")
    if scalars.get(PREFIX + "tstr_over_trtr") is not None:
        text += ", TSTR/TRTR " + cell(PREFIX + "tstr_over_trtr")
    text += "" if chance is None else f" (chance {chance:.3f})" + _class_part(arrays, classes, chance)
    return text + (". A reading of a large release beside TSTR, which trains on as many VUs as the real split holds "
                   "(the goal, the label and the verdicts stay on TSTR).")


def _class_part(arrays: Mapping[str, np.ndarray], classes: list[str], chance: float) -> str:
    """``"; at or below chance: X"`` or ``"; every class's recall above chance"``, with how many classes rest on one
    holdout patient."""
    rows = class_recall(arrays, "release")
    if rows is None:
        return ""
    present = [(classes[i] if i < len(classes) else str(i), r) for i, r in enumerate(rows) if r.recall is not None]
    low = [name for name, r in present if r.recall <= chance]
    one = sum(1 for _, r in present if r.n_patients == 1)
    text = f"; at or below chance: {', '.join(low)}" if low else "; every class's recall above chance"
    return text + (f" ({one} of {len(present)} classes on one holdout patient, no interval)" if one else "")
