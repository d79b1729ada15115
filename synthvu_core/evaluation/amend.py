"""Add to a report written by older code what ``evaluate`` now computes and the report's own records allow.

* :func:`add_source_utility`: the utility per source, re-read from the report's stored holdout predictions (no
  classifier trained again).
* :func:`add_cohort_test`: the whole-cohort nearest-patient test, below.
* :func:`add_composed_bound`: verdict (b) re-read with the DP bound composed over every run on the training patients
  (reports before it quoted the run's own ε).

The test reads only the synthetic set and the real VUs, so it is computed on **the very samples the report
evaluated**, not on new ones: they are drawn again from the same weights (the report records their sha256), count
and seed, and refused unless every member/non-member candidate's nearest-sample distance (the pairwise attack's
``d_min``, stored in the report's arrays) comes out the same. Verdict (a) is then re-read from its stored inputs with
the test added; every other number of the report is kept as it was, and ``meta["amended"]`` says what was added,
when and by which code version. The report is rewritten atomically (a failure leaves the old one).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.errors import ReportError

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.records import Report

#: The largest difference of a recomputed ``d_min`` from the stored one ([-1, 1] pixel scale, float32 distances
#: over about 37,000 values) at which the samples count as the ones evaluated.
D_MIN_TOLERANCE = 1e-3


def add_cohort_test(model_dir: str | Path, dataset: VUDataset | str | Path | None = None) -> tuple[Any, str]:
    """``(report, what was done)``: the report of ``model_dir`` with the whole-cohort test (unchanged where it has it).

    Raises :class:`~synthvu_core.errors.ReportError` naming the folder where there is no report, the report lacks
    what re-reading verdict (a) needs, or the samples drawn again are not the ones it evaluated.
    """
    from synthvu_core.evaluation.cohort import CohortTest
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.storage import folder_lock

    model_dir = Path(model_dir)
    with folder_lock(model_dir, "evaluate"):
        report = load_report(model_dir)  # refuses a report of other weights
        if report is None:
            raise ReportError(f"{model_dir}: no report to amend; run evaluate")
        if CohortTest.from_scalars(report.scalars) is not None:
            return report, "the report already holds the whole-cohort test"
        return _amend(model_dir, report, dataset)


def _amend(model_dir: Path, report: Report, dataset: VUDataset | str | Path | None) -> tuple[Any, str]:
    from synthvu_core.evaluation.cohort import cohort_test
    from synthvu_core.evaluation.definitions import definition
    from synthvu_core.evaluation.report import evaluation_datasets
    from synthvu_core.evaluation.verdicts import cohort_inputs, read_released_samples
    from synthvu_core.models.registry import load_card, load_generator
    from synthvu_core.models.sampling import sample_uint8

    meta = report.meta
    verdict = (meta.get("verdicts") or {}).get("released_samples") or {}
    if not isinstance(verdict.get("inputs"), dict):
        raise ReportError(f"{model_dir}: the report predates stored verdict inputs; re-run evaluate")
    dataset, _ = evaluation_datasets(model_dir, load_card(model_dir), dataset)
    samples = sample_uint8(load_generator(model_dir), int(meta["n_synthetic"]), seed=int(meta["synthetic_seed"]))
    check = _same_samples(model_dir, report, dataset.images, samples.images)
    units = dataset.units
    try:
        cohort = cohort_test(samples.images, dataset.images, units["patient_id"].to_numpy(),
                             units["split"].to_numpy(), seed=int(meta["seed"]), strata=dataset.split_strata())
    except ValueError as err:
        raise ReportError(f"{model_dir}: the whole-cohort test cannot be computed here ({err})") from None
    report.scalars.update(cohort.scalars())
    report.definitions.update({k: definition(k) for k in cohort.scalars()})
    inputs = {**verdict["inputs"], "cohort": cohort_inputs(cohort)}
    meta["verdicts"]["released_samples"] = {**read_released_samples(inputs), "inputs": inputs}
    _record(report, "whole-cohort nearest-patient test (cohort.*) and verdict (a) re-read with it",
            samples_check=check)
    return _saved(model_dir, report), check


def add_composed_bound(model_dir: str | Path, dataset: VUDataset | str | Path | None = None) -> tuple[Report, str]:
    """``(report, what was done)``: verdict (b) of ``model_dir``'s report re-read with the bound composed over every
    run on its training patients (the card's privacy ledger, with the runs recorded since where this machine's
    ledgers hold them); reports written before quoted this run's ε alone, even where another run voided it. Its
    level and every number are kept. Unchanged where the record is the same. ``dataset`` is not read.

    Raises :class:`~synthvu_core.errors.ReportError` naming the folder where there is no report or no readable card.
    """
    from synthvu_core.errors import SynthVUError
    from synthvu_core.evaluation.integrity import discriminator_verdict
    from synthvu_core.evaluation.report import composed_meta, load_report
    from synthvu_core.models.registry import load_card
    from synthvu_core.storage import folder_lock

    model_dir = Path(model_dir)
    with folder_lock(model_dir, "evaluate"):
        report = load_report(model_dir)
        if report is None:
            raise ReportError(f"{model_dir}: no report to amend; run evaluate")
        try:
            record = composed_meta(load_card(model_dir))
        except SynthVUError as err:
            raise ReportError(f"{model_dir}: the composed bound cannot be read ({err})") from None
        if all(report.meta.get(k) == v for k, v in record.items()):
            return report, "the report already quotes the composed bound"
        report.meta.update(record)
        d = discriminator_verdict(report.scalars, report.meta)
        if d is not None:
            report.meta["verdicts"]["released_discriminator"] = d
        _record(report, f"the composed DP bound ({record['dp_composed_bound']}) and verdict (b) re-read with it")
        return _saved(model_dir, report), f"verdict (b) re-read with the composed bound ({record['dp_composed_bound']})"


def add_source_utility(model_dir: str | Path, dataset: VUDataset | str | Path | None = None) -> tuple[Any, str]:
    """``(report, what was done)``: the report of ``model_dir`` with its utility read per source
    (:mod:`~synthvu_core.evaluation.source_utility`) from its stored holdout predictions: no classifier is trained
    again and every other number is kept. Unchanged where it has the reading or its holdout holds one source.

    Raises :class:`~synthvu_core.errors.ReportError` naming the folder where there is no report or its stored
    holdout rows are not the dataset's.
    """
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.evaluation.source_utility import has_source_reading
    from synthvu_core.storage import folder_lock

    model_dir = Path(model_dir)
    with folder_lock(model_dir, "evaluate"):
        report = load_report(model_dir)
        if report is None:
            raise ReportError(f"{model_dir}: no report to amend; run evaluate")
        if has_source_reading(report.scalars):
            return report, "the report already holds the utility per source"
        return _amend_sources(model_dir, report, dataset)


def _amend_sources(model_dir: Path, report: Report, dataset: VUDataset | str | Path | None) -> tuple[Any, str]:
    from synthvu_core.evaluation.definitions import definition
    from synthvu_core.evaluation.report import evaluation_datasets
    from synthvu_core.evaluation.source_utility import PREFIX, stored_source_scalars
    from synthvu_core.models.registry import load_card
    from synthvu_core.names import SOURCE_COLUMN

    ds, util = evaluation_datasets(model_dir, load_card(model_dir), dataset)
    if SOURCE_COLUMN not in util.units.columns:
        return report, "the dataset records no sources: nothing to add"
    arrays = report.arrays
    rows = util.units.iloc[_scored_holdout(model_dir, report, ds)]
    try:
        scalars, why = stored_source_scalars(arrays, rows[SOURCE_COLUMN].to_numpy(), rows["patient_id"].to_numpy())
    except ValueError as err:
        raise ReportError(f"{model_dir}: the utility per source cannot be read from this report ({err})") from None
    if not scalars:
        return report, "the holdout holds one source: nothing to add"
    report.scalars.update(scalars)
    report.definitions.update({k: definition(k) for k in scalars})
    report.meta.setdefault("missing", {}).update(why)
    _record(report, "utility per source (utility.source.*), re-read from the stored holdout predictions")
    names = sorted(k[len(PREFIX):-len(".n_vus")] for k in scalars if k.endswith(".n_vus"))
    return _saved(model_dir, report), f"added the utility per source ({', '.join(names)})"


def _scored_holdout(model_dir: Path, report: Report, dataset: VUDataset) -> np.ndarray:
    """The dataset rows the report's utility classifiers scored, in the order of its stored holdout predictions;
    :class:`ReportError` where the report does not store them or the dataset's labels for them are not its."""
    arrays, meta = report.arrays, report.meta
    if "embedding/real_index" not in arrays or "classes" not in meta or "scheme" not in meta:
        raise ReportError(f"{model_dir}: the report does not store which holdout rows it scored; re-run evaluate")
    idx = np.asarray(arrays["embedding/real_index"])
    labels = dataset.labels(meta["scheme"], list(meta["classes"]))[idx]
    keep = (labels >= 0) & (labels < len(meta["classes"]))  # the rows the utility classifiers scored
    stored = np.asarray(arrays.get("utility/holdout_labels", []))
    if len(stored) != int(keep.sum()) or not np.array_equal(labels[keep], stored):
        raise ReportError(f"{model_dir}: the dataset's holdout labels are not the ones the report scored; re-run "
                          "evaluate")
    return idx[keep]


def add_release_utility(model_dir: str | Path, dataset: VUDataset | str | Path | None = None) -> tuple[Report, str]:
    """``(report, what was done)``: the report of ``model_dir`` with TSTR on the whole synthetic set
    (:mod:`~synthvu_core.evaluation.release_utility`): the samples drawn again (checked to be the report's), one
    classifier trained per utility seed, scored against the stored TRTR predictions; every other number kept.
    Unchanged where it holds the reading or its reason.

    Raises :class:`~synthvu_core.errors.ReportError` naming the folder where there is no report, it lacks what the
    reading needs, or the samples drawn again are not the ones it evaluated.
    """
    from synthvu_core.evaluation.release_utility import PREFIX
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.storage import folder_lock

    model_dir = Path(model_dir)
    with folder_lock(model_dir, "evaluate"):
        report = load_report(model_dir)
        if report is None:
            raise ReportError(f"{model_dir}: no report to amend; run evaluate")
        key = PREFIX + "tstr.balanced_accuracy"
        if key in report.scalars or key in (report.meta.get("missing") or {}):
            return report, "the report already holds TSTR on the whole synthetic set (or why it is not read)"
        return _amend_release(model_dir, report, dataset)


def _amend_release(model_dir: Path, report: Report, dataset: VUDataset | str | Path | None) -> tuple[Report, str]:
    from synthvu_core.evaluation.definitions import definition
    from synthvu_core.evaluation.encoder import EncoderConfig
    from synthvu_core.evaluation.release_utility import not_read, release_part, release_size, release_subset
    from synthvu_core.evaluation.report import evaluation_datasets
    from synthvu_core.evaluation.utility import classification_result, tstr_seed
    from synthvu_core.models.registry import load_card, load_generator
    from synthvu_core.models.sampling import sample_uint8

    ds, util = evaluation_datasets(model_dir, load_card(model_dir), dataset)
    meta, arrays = report.meta, report.arrays
    rows = _scored_holdout(model_dir, report, ds)
    n_classes, y = len(meta["classes"]), np.asarray(arrays["utility/holdout_labels"], dtype=np.int64)
    train = ds.labels(meta["scheme"], list(meta["classes"]))[util.indices("train")]
    stored = [arrays.get(k) for k in ("utility/seeds", "utility/trtr/holdout_predictions")]
    counts = meta.get("synthetic_class_counts")
    if any(a is None for a in stored) or counts is None:
        raise ReportError(f"{model_dir}: the report stores no per-seed TRTR predictions or synthetic class counts to "
                          "read TSTR on the whole synthetic set against; re-run evaluate")
    why = release_size(train, np.repeat(np.arange(len(counts)), np.asarray(counts, dtype=np.int64)), n_classes)[1]
    if why is not None:  # decided by the stored class counts: nothing to draw
        meta.setdefault("missing", {}).update(not_read(why))
        _record(report, "why TSTR on the whole synthetic set is not read (utility.release.*)")
        return _saved(model_dir, report), f"not read: {why}"
    samples = sample_uint8(load_generator(model_dir), int(meta["n_synthetic"]), seed=int(meta["synthetic_seed"]))
    check = _same_samples(model_dir, report, ds.images, samples.images)
    seeds = tuple(int(s) for s in stored[0])
    config = EncoderConfig(**(meta.get("config") or {}).get("encoder", {}))
    trtr = stored[1]
    real = [(r, r) for r in (classification_result(y, p, n_classes) for p in trtr)]  # TRTS is not read here
    release = [tstr_seed(samples.images, samples.labels, None, train, util.images[rows], y, n_classes, config, s,
                         subset_of=release_subset) for s in seeds]
    groups = arrays.get("utility/holdout_patient")
    scalars, why_missing, more = release_part(real, release, train, y, n_classes, seeds, groups)
    report.scalars.update(scalars)
    report.definitions.update({k: definition(k) for k in scalars})
    meta.setdefault("missing", {}).update(why_missing)
    arrays.update(more)
    _record(report, "TSTR on the whole synthetic set (utility.release.*), its classifiers trained on the samples "
            "drawn again and scored against the stored TRTR predictions", samples_check=check)
    n = int(scalars["utility.release.n_synthetic"] or 0)
    return _saved(model_dir, report), f"added TSTR on the whole synthetic set ({n:,} VUs)"


def _record(report: Report, added: str, **more: str) -> None:
    """Note in ``meta["amended"]`` what was added, when and by which code version."""
    from synthvu_core import __version__

    report.meta.setdefault("amended", []).append({
        "added": added, "code_version": __version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **more,
    })


def _saved(model_dir: Path, report: Report) -> Report:
    """``report`` written over the folder's (atomically), read back."""
    from synthvu_core.evaluation.report import REPORT_DIR, load_report, save_report

    _ = report.arrays  # load them before the folder is replaced
    for sub in report.controls.values():
        _ = sub.arrays
    save_report(report, model_dir / REPORT_DIR)
    return load_report(model_dir)


def _same_samples(model_dir: Path, report: Report, images: np.ndarray, samples: np.ndarray) -> str:
    """Words for the check that ``samples`` are the report's synthetic set; :class:`ReportError` where not."""
    from synthvu_core.evaluation.privacy import summarise_distances

    arrays = report.arrays
    if "candidates/index" not in arrays or "privacy/pairwise/pixel/d_min" not in arrays:
        raise ReportError(f"{model_dir}: the report holds no pairwise distances to check its samples by; "
                          "re-run evaluate")
    stored = np.asarray(arrays["privacy/pairwise/pixel/d_min"], dtype=np.float64)
    again = summarise_distances(images[np.asarray(arrays["candidates/index"])], samples, quantiles=()).d_min
    worst = float(np.max(np.abs(again - stored))) if len(stored) else 0.0
    if len(again) != len(stored) or worst > D_MIN_TOLERANCE:
        raise ReportError(f"{model_dir}: the samples drawn again are not the ones the report evaluated (nearest-sample "
                          f"distances differ by up to {worst:.3g}); re-run evaluate")
    return (f"the {len(stored)} candidates' nearest-sample distances of the pairwise attack recomputed on the samples "
            f"drawn again: largest difference {worst:.2g}")
