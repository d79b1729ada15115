"""Utility per source: which site's (scanner's, sequence's) holdout VUs the synthetic data teaches a classifier.

On a dataset of several sources the holdout's balanced accuracy mixes them: a generator whose samples teach one
site's levels well and another's not at all can read "above chance" overall. This module re-reads the same
classifiers' stored holdout predictions (no new fit) on each source's holdout VUs alone: TRTR, TSTR and TSTR/TRTR,
each a balanced accuracy over the classes present in that source's holdout, against that source's own chance level
(1 / those classes), with the 95 % interval over that source's holdout patients and the classifier seeds
(:func:`~synthvu_core.evaluation.utility.patient_bootstrap`). A source with fewer than :data:`MIN_PATIENTS` holdout
patients gets its point value and no interval: resampling one or two patients says next to nothing about the next
patient of that site.

Report scalars, per source ``NAME`` (datasets whose holdout holds two or more sources):
``utility.source.NAME.{n_vus, n_patients, chance}``, ``utility.source.NAME.{trtr, tstr}.balanced_accuracy`` and
``utility.source.NAME.tstr_over_trtr``, each with ``_ci_low``/``_ci_high``. :func:`source_rows` reads them back for
the CLI, the model card and the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthvu_core.evaluation.utility import (
    NOT_USEFUL,
    ClassificationResult,
    UtilityResult,
    classification_result,
    interval_cell,
    support_text,
    usefulness,
)

PREFIX = "utility.source."
#: The per-source keys after ``utility.source.NAME.`` (intervals: ``_ci_low``/``_ci_high`` after the last three).
COUNTS: tuple[str, ...] = ("n_vus", "n_patients")
READINGS: tuple[str, ...] = ("trtr.balanced_accuracy", "tstr.balanced_accuracy", "tstr_over_trtr")
#: Holdout patients a source needs for an interval: a bootstrap over two patients has three distinct draws.
MIN_PATIENTS = 3
TOO_FEW = f"fewer than {MIN_PATIENTS} holdout patients of this source: no interval"
#: What a source whose TSTR interval reaches its chance is marked with.
SOURCE_NOT_USEFUL = f"{NOT_USEFUL} on this source's VUs"
SOURCE_CANNOT_TELL = "TSTR at or below this source's chance, on too few patients for an interval: cannot tell"
SOURCE_REAL_TOO = "so is TRTR: the real classifier does not recognise this source's holdout VUs either"


def _rescored(r: ClassificationResult, mask: np.ndarray, y: np.ndarray, k: int) -> ClassificationResult:
    """``r`` re-scored on the holdout rows ``mask`` (labels ``y``); a seed without a trained classifier (balanced
    accuracy None) stays without one, whatever its placeholder predictions read."""
    if r.balanced_accuracy is None or r.predictions is None:
        return ClassificationResult(None, np.full(k, np.nan), np.zeros((k, k), np.int64), int(mask.sum()),
                                    r.reason or "not computed")
    return classification_result(y, r.predictions[mask], k)


def _subset(u: UtilityResult, mask: np.ndarray) -> UtilityResult:
    """``u`` restricted to the holdout rows ``mask`` (TRTR and TSTR re-scored from their stored predictions)."""
    y = u.holdout_labels[mask]
    res = {s: [_rescored(r, mask, y, u.n_classes) for r in u.results[s]] for s in ("trtr", "tstr")}
    groups = None if u.holdout_groups is None else u.holdout_groups[mask]
    return UtilityResult(res, u.tstr_train_size, u.seeds, {}, y, groups, u.n_classes, u.n_boot)


def _source(u: UtilityResult, mask: np.ndarray, pre: str) -> tuple[dict[str, float | None], dict[str, str]]:
    """The scalars (keys prefixed ``pre``) and reasons of the holdout rows ``mask``."""
    sub = _subset(u, mask)
    n_patients = None if sub.holdout_groups is None else len(set(sub.holdout_groups.tolist()))
    scalars, why = sub.scalars()
    out: dict[str, float | None] = {pre + "n_vus": int(mask.sum()), pre + "n_patients": n_patients,
                                    pre + "chance": scalars["utility.chance"]}
    reasons = {pre + "chance": why["utility.chance"]} if "utility.chance" in why else {}
    for key in READINGS:
        for end in ("", "_ci_low", "_ci_high"):
            k = f"utility.{key}{end}"
            out[pre + key + end] = scalars.get(k)
            if end and (n_patients or 0) < MIN_PATIENTS and scalars.get(k) is not None:
                out[pre + key + end] = None
                reasons[pre + key + end] = TOO_FEW if n_patients else "holdout patients not stored"
            elif k in why:
                reasons[pre + key + end] = why[k]
    return out, reasons


def source_scalars(u: UtilityResult, sources: np.ndarray) -> tuple[dict[str, float | None], dict[str, str]]:
    """``(scalars, reasons)`` of each source's holdout VUs (``sources``: the source of each scored holdout row,
    aligned with ``u.holdout_labels``); empty where fewer than two sources are present."""
    src = np.asarray(sources).astype(str)
    names = sorted(set(src.tolist()))
    if len(names) < 2 or u.holdout_labels is None or len(src) != len(u.holdout_labels):
        return {}, {}
    out: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for name in names:
        scalars, why = _source(u, src == name, f"{PREFIX}{name}.")
        out.update(scalars)
        reasons.update(why)
    return out, reasons


def stored_source_scalars(
    arrays: Mapping[str, np.ndarray], sources: np.ndarray, patients: np.ndarray, n_boot: int = 2000
) -> tuple[dict[str, float | None], dict[str, str]]:
    """:func:`source_scalars` of a stored report (for ``report amend``): its TRTR and TSTR holdout predictions
    re-read by the source of each holdout row. ``sources``/``patients``: each scored holdout row's source and
    patient id, in the order the report scored them.

    Raises ValueError where the report stores no per-row predictions or its rows are not those given (another
    count, or patients grouped otherwise).
    """
    need = ("utility/holdout_labels", "utility/holdout_patient", "utility/trtr/holdout_predictions",
            "utility/tstr/holdout_predictions", "utility/seeds", "utility/trtr/recall")
    if any(k not in arrays for k in need):
        raise ValueError("the report stores no per-row holdout predictions; re-run evaluate")
    y = np.asarray(arrays["utility/holdout_labels"], dtype=np.int64)
    patients = np.asarray(patients).astype(str)
    if len(sources) != len(y) or len(patients) != len(y):
        raise ValueError(f"the report scored {len(y)} holdout VUs, the dataset's holdout has {len(patients)}")
    if not np.array_equal(np.unique(patients, return_inverse=True)[1], np.asarray(arrays["utility/holdout_patient"])):
        raise ValueError("the dataset's holdout patients are not the ones the report grouped its VUs by")
    k = len(np.asarray(arrays["utility/trtr/recall"]))
    res = {}
    for s in ("trtr", "tstr"):
        preds = np.atleast_2d(arrays[f"utility/{s}/holdout_predictions"])
        res[s] = [_stored_seed(y, row, ok, k) for row, ok in zip(preds, _trained(arrays, s, len(preds)), strict=True)]
    seeds = tuple(int(x) for x in np.asarray(arrays["utility/seeds"]))
    return source_scalars(UtilityResult(res, 0, seeds, {}, y, patients, k, n_boot), np.asarray(sources).astype(str))


def _trained(arrays: Mapping[str, np.ndarray], setting: str, n_seeds: int) -> list[bool]:
    """Per seed, whether the report scored the setting (its stored balanced accuracy is a number; all, where the
    report stores none per seed)."""
    acc = arrays.get(f"utility/{setting}/balanced_accuracy_seeds")
    if acc is None or len(np.ravel(acc)) != n_seeds:
        return [True] * n_seeds
    return [bool(np.isfinite(a)) for a in np.ravel(np.asarray(acc, dtype=np.float64))]


def _stored_seed(y: np.ndarray, predictions: np.ndarray, trained: bool, k: int) -> ClassificationResult:
    if not trained:
        return ClassificationResult(None, np.full(k, np.nan), np.zeros((k, k), np.int64), len(y), "not computed")
    return classification_result(y, predictions, k)


@dataclass(frozen=True)
class Reading:
    """One balanced accuracy (or ratio) of a source with its interval; ``why`` where it has none."""

    value: float | None
    low: float | None = None
    high: float | None = None
    why: str | None = None

    def cell(self) -> str:
        """``"0.64 [0.40, 0.88]"``, ``"0.25 (fewer than 3 ...)"`` or ``"—"``."""
        if self.value is None:
            return f"— ({self.why})" if self.why else "—"
        return interval_cell(self.value, self.low, self.high, self.why)

    def short(self) -> str:
        """``"0.64 [0.40, 0.88]"``, ``"0.25"`` (no interval) or ``"—"``: a table cell whose caption says why."""
        return "—" if self.value is None else interval_cell(self.value, self.low, self.high)


@dataclass(frozen=True)
class SourceRow:
    """One source's holdout reading, as stored in a report."""

    name: str
    n_vus: int | None
    n_patients: int | None
    chance: float | None
    trtr: Reading
    tstr: Reading
    ratio: Reading

    @property
    def support(self) -> str:
        """``"6 VUs, 1 patient"``."""
        return support_text(self.n_vus, self.n_patients)

    def mark(self) -> str:
        """The warning of a source whose TSTR interval reaches its chance (as :func:`usefulness` reads the whole
        holdout), or whose TSTR without an interval is at or below it; "" where neither."""
        label = usefulness(self.tstr.value, self.tstr.low, self.tstr.high, self.chance)
        if label.level != "not_useful":
            return ""
        if self.tstr.low is None:
            return SOURCE_CANNOT_TELL
        real = usefulness(self.trtr.value, self.trtr.low, self.trtr.high, self.chance)
        return f"{SOURCE_NOT_USEFUL}" + (f"; {SOURCE_REAL_TOO}" if real.level == "not_useful" else "")


def _reading(scalars: Mapping[str, Any], missing: Mapping[str, str], key: str) -> Reading:
    lo, hi = scalars.get(key + "_ci_low"), scalars.get(key + "_ci_high")
    why = missing.get(key + "_ci_low") if lo is None else None
    return Reading(scalars.get(key), lo, hi, missing.get(key) if scalars.get(key) is None else why)


def source_rows(scalars: Mapping[str, Any], missing: Mapping[str, str] | None = None) -> list[SourceRow]:
    """The per-source readings of a stored report's scalars (``missing``: its reasons), by source name; empty where
    the report holds none (one source, or a report written before they were stored)."""
    missing = missing or {}
    names = sorted({k[len(PREFIX):-len(".n_vus")] for k in scalars if k.startswith(PREFIX) and k.endswith(".n_vus")})
    rows = []
    for name in names:
        pre = f"{PREFIX}{name}."
        n_vus, n_pat = (scalars.get(pre + c) for c in COUNTS)
        chance = scalars.get(pre + "chance")
        trtr, tstr, ratio = (_reading(scalars, missing, pre + r) for r in READINGS)
        rows.append(SourceRow(name, None if n_vus is None else int(n_vus), None if n_pat is None else int(n_pat),
                              None if chance is None else float(chance), trtr, tstr, ratio))
    return rows


def has_source_reading(scalars: Mapping[str, Any]) -> bool:
    """Whether a report's scalars hold the utility per source."""
    return any(k.startswith(PREFIX) for k in scalars)


def holdout_has_sources(meta: Mapping[str, Any]) -> bool:
    """Whether the report's real holdout held VUs of two or more sources (the fidelity stage's source check ran on
    it: ``meta["sources"]["check_accuracy"]`` is a number only then)."""
    src = meta.get("sources")
    return isinstance(src, Mapping) and src.get("check_accuracy") is not None


def untested_text(scalars: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """Which of the generator's training sources (``meta["sources"]["real"]``) the per-source reading does not
    test, and why; "" where it tests them all (or the report records fewer than two sources)."""
    src = meta.get("sources")
    real = src.get("real") if isinstance(src, Mapping) else None
    trained = sorted(real) if isinstance(real, Mapping) else []
    if len(trained) < 2:
        return ""
    if not has_source_reading(scalars):
        if holdout_has_sources(meta):
            return "not read per source (the report predates the reading): run `report amend MODEL --dataset DIR`"
        return "the holdout holds VUs of one source only: the samples are not tested on the other sources' real VUs"
    read = {r.name for r in source_rows(scalars, meta.get("missing") or {})}
    gone = [n for n in trained if n not in read]
    if not gone:
        return ""
    whose = "that source's" if len(gone) == 1 else "those sources'"
    return f"no scored holdout VUs of {', '.join(gone)}: the samples are not tested on {whose} real VUs"


def source_caption_text(scalars: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """:data:`SOURCE_NOTE` and, where some training source is untested, which (:func:`untested_text`)."""
    untested = untested_text(scalars, meta)
    return SOURCE_NOTE + (f" Untested: {untested}." if untested else "")


#: The caption every view of :func:`source_rows` carries.
SOURCE_NOTE = (
    "Each source's holdout VUs read alone by the same classifiers (no new fit): balanced accuracy over the classes "
    "present in that source's holdout; chance 1 / those classes (what always answering one of them scores). 95 % "
    "interval: percentile bootstrap over that source's holdout patients and the classifier seeds, none below "
    f"{MIN_PATIENTS} patients; on a handful of patients it is narrower than the truth, so take it as a lower "
    "bound on the uncertainty. A point value on one or two patients says little about that site's next patient."
)
