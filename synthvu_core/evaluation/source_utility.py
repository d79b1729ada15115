"""Utility per source: which site's (scanner's, sequence's) holdout VUs the synthetic data teaches a classifier.

On a dataset of several sources the holdout's balanced accuracy mixes them: a generator whose samples teach one
site's levels well and another's not at all can read "above chance" overall. This module re-reads the same
classifiers' stored holdout predictions (no new fit) on each source's holdout VUs alone: TRTR, TSTR and TSTR/TRTR,
each a balanced accuracy over the classes present in that source's holdout, against that source's own chance level
(1 / those classes), with the 95 % interval over that source's holdout patients and the classifier seeds
(:func:`~synthvu_core.evaluation.utility.patient_bootstrap`). A source with one holdout patient gets its point value
and no interval: resampling one patient says nothing about the next patient of that site.

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

from synthvu_core.evaluation.utility import UtilityResult, classification_result

PREFIX = "utility.source."
#: The per-source keys after ``utility.source.NAME.`` (intervals: ``_ci_low``/``_ci_high`` after the last three).
COUNTS: tuple[str, ...] = ("n_vus", "n_patients")
READINGS: tuple[str, ...] = ("trtr.balanced_accuracy", "tstr.balanced_accuracy", "tstr_over_trtr")
ONE_PATIENT = "1 holdout patient of this source: no interval"
#: What a source whose TSTR is at or below its chance is marked with.
SOURCE_AT_CHANCE = "TSTR at or below this source's chance: the samples teach nothing measurable about its holdout"
SOURCE_REAL_TOO = "so is TRTR: the real classifier does not recognise this source's holdout VUs either"


def _subset(u: UtilityResult, mask: np.ndarray) -> UtilityResult:
    """``u`` restricted to the holdout rows ``mask`` (TRTR and TSTR re-scored from their stored predictions)."""
    y = u.holdout_labels[mask]
    res = {
        s: [classification_result(y, r.predictions[mask], u.n_classes) for r in u.results[s]]
        for s in ("trtr", "tstr")
    }
    groups = None if u.holdout_groups is None else u.holdout_groups[mask]
    return UtilityResult(res, u.tstr_train_size, u.seeds, {}, y, groups, u.n_classes, u.n_boot)


def source_scalars(u: UtilityResult, sources: np.ndarray) -> tuple[dict[str, float | None], dict[str, str]]:
    """``(scalars, reasons)`` of each source's holdout VUs (``sources``: the source of each scored holdout row,
    aligned with ``u.holdout_labels``); empty where fewer than two sources are present or predictions are missing."""
    src = np.asarray(sources).astype(str)
    names = sorted(set(src.tolist()))
    stored = all(r.predictions is not None for s in ("trtr", "tstr") for r in u.results.get(s, []))
    if len(names) < 2 or u.holdout_labels is None or len(src) != len(u.holdout_labels) or not stored:
        return {}, {}
    out: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for name in names:
        mask = src == name
        sub = _subset(u, mask)
        n_patients = None if sub.holdout_groups is None else len(set(sub.holdout_groups.tolist()))
        scalars, why = sub.scalars()
        pre = f"{PREFIX}{name}."
        out[pre + "n_vus"], out[pre + "n_patients"] = float(mask.sum()), n_patients
        out[pre + "chance"] = scalars["utility.chance"]
        if "utility.chance" in why:
            reasons[pre + "chance"] = why["utility.chance"]
        for key in READINGS:
            for end in ("", "_ci_low", "_ci_high"):
                k = f"utility.{key}{end}"
                out[pre + key + end] = scalars.get(k)
                if end and (n_patients or 0) < 2 and scalars.get(k) is not None:
                    out[pre + key + end] = None
                    reasons[pre + key + end] = ONE_PATIENT if n_patients else "holdout patients not stored"
                elif k in why:
                    reasons[pre + key + end] = why[k]
    return out, reasons


def stored_source_scalars(
    arrays: Mapping[str, np.ndarray], sources: np.ndarray, patients: np.ndarray, n_boot: int = 2000
) -> tuple[dict[str, float | None], dict[str, str]]:
    """:func:`source_scalars` of a stored report (for ``report amend``): its TRTR and TSTR holdout predictions
    re-read by the source of each holdout row. ``sources``/``patients``: each holdout row's source and patient id,
    in the order the report scored them (the dataset's rows at ``embedding/real_index``).

    Raises ValueError where the report stores no per-row predictions or its rows are not those given (another
    count, or patients grouped otherwise).
    """
    need = ("utility/holdout_labels", "utility/holdout_patient", "utility/trtr/holdout_predictions",
            "utility/tstr/holdout_predictions", "utility/seeds")
    if any(k not in arrays for k in need):
        raise ValueError("the report stores no per-row holdout predictions; re-run evaluate")
    y = np.asarray(arrays["utility/holdout_labels"], dtype=np.int64)
    stored_groups = np.asarray(arrays["utility/holdout_patient"])
    patients = np.asarray(patients).astype(str)
    if len(sources) != len(y) or len(patients) != len(y):
        raise ValueError(f"the report scored {len(y)} holdout VUs, the dataset's holdout has {len(patients)}")
    if not np.array_equal(np.unique(patients, return_inverse=True)[1], stored_groups):
        raise ValueError("the dataset's holdout patients are not the ones the report grouped its VUs by")
    k = len(np.asarray(arrays["utility/trtr/recall"])) if "utility/trtr/recall" in arrays else int(y.max()) + 1
    seeds = tuple(int(x) for x in np.asarray(arrays["utility/seeds"]))
    res = {s: [classification_result(y, row, k) for row in np.atleast_2d(arrays[f"utility/{s}/holdout_predictions"])]
           for s in ("trtr", "tstr")}
    u = UtilityResult(res, 0, seeds, {}, y, patients, k, n_boot)
    return source_scalars(u, np.asarray(sources).astype(str))


@dataclass(frozen=True)
class Reading:
    """One balanced accuracy (or ratio) of a source with its interval; ``why`` where it has none."""

    value: float | None
    low: float | None = None
    high: float | None = None
    why: str | None = None

    def cell(self) -> str:
        """``"0.64 [0.40, 0.88]"``, ``"0.25 (1 holdout patient ...)"`` or ``"—"``."""
        if self.value is None:
            return f"— ({self.why})" if self.why else "—"
        if self.low is None or self.high is None:
            return f"{self.value:.2f} ({self.why})" if self.why else f"{self.value:.2f}"
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"

    def short(self) -> str:
        """``"0.64 [0.40, 0.88]"``, ``"0.25"`` (no interval) or ``"—"``: a table cell whose caption says why."""
        if self.value is None:
            return "—"
        return self.cell() if self.low is not None and self.high is not None else f"{self.value:.2f}"


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
        vus = "—" if self.n_vus is None else f"{self.n_vus} VU{'' if self.n_vus == 1 else 's'}"
        pats = "—" if self.n_patients is None else f"{self.n_patients} patient{'' if self.n_patients == 1 else 's'}"
        return f"{vus}, {pats}"

    def tstr_at_chance(self) -> bool:
        """Whether TSTR's point value is at or below this source's chance."""
        return self.tstr.value is not None and self.chance is not None and self.tstr.value <= self.chance

    def real_at_chance(self) -> bool:
        """Whether TRTR's point value is at or below this source's chance as well."""
        return self.trtr.value is not None and self.chance is not None and self.trtr.value <= self.chance

    def mark(self) -> str:
        """The warning of a source whose TSTR is at or below its chance ("" where it is not)."""
        if not self.tstr_at_chance():
            return ""
        return SOURCE_AT_CHANCE + (f"; {SOURCE_REAL_TOO}" if self.real_at_chance() else "")


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


#: The caption every view of :func:`source_rows` carries.
SOURCE_NOTE = (
    "Each source's holdout VUs read alone by the same classifiers (no new fit): balanced accuracy over the classes "
    "present in that source's holdout, chance 1 / those classes, 95 % interval over that source's holdout patients "
    "and the classifier seeds (none with one patient: a point value on one patient says little about that site's "
    "next patient)."
)
