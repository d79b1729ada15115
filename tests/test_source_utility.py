"""Utility per source: each source's holdout VUs re-read from the stored predictions, against its own chance."""

from __future__ import annotations

import numpy as np
import pytest

from synthvu_core.evaluation.definitions import definition
from synthvu_core.evaluation.integrity import check_scalars
from synthvu_core.evaluation.source_utility import (
    ONE_PATIENT,
    SOURCE_AT_CHANCE,
    SOURCE_REAL_TOO,
    source_rows,
    source_scalars,
)
from synthvu_core.evaluation.utility import UtilityResult, classification_result

# holdout: source "a" = patients p0, p1, p2 (classes 0, 1, 2 each); source "b" = one patient p3 (classes 1, 2)
LABELS = np.array([0, 1, 2] * 3 + [1, 2])
GROUPS = np.array(["p0"] * 3 + ["p1"] * 3 + ["p2"] * 3 + ["p3"] * 2)
SOURCES = np.array(["a"] * 9 + ["b"] * 2)


def _result(trtr: np.ndarray, tstr: np.ndarray, seeds: int = 3) -> UtilityResult:
    res = {s: [classification_result(LABELS, p, 3) for _ in range(seeds)] for s, p in (("trtr", trtr), ("tstr", tstr))}
    return UtilityResult(res, 9, tuple(range(seeds)), {}, LABELS, GROUPS, 3, n_boot=200)


def test_each_source_is_read_on_its_own_vus_against_its_own_chance():
    # TRTR right everywhere; TSTR right on source a, wrong on source b (predicts 0 for b's classes 1 and 2)
    tstr = LABELS.copy()
    tstr[SOURCES == "b"] = 0
    s, why = source_scalars(_result(LABELS.copy(), tstr), SOURCES)
    assert s["utility.source.a.n_vus"] == 9 and s["utility.source.a.n_patients"] == 3
    assert s["utility.source.b.n_vus"] == 2 and s["utility.source.b.n_patients"] == 1
    assert s["utility.source.a.chance"] == pytest.approx(1 / 3)
    assert s["utility.source.b.chance"] == pytest.approx(1 / 2)  # only classes 1 and 2 in b's holdout
    assert s["utility.source.a.tstr.balanced_accuracy"] == pytest.approx(1.0)
    assert s["utility.source.b.tstr.balanced_accuracy"] == pytest.approx(0.0)
    assert s["utility.source.b.trtr.balanced_accuracy"] == pytest.approx(1.0)
    assert s["utility.source.a.tstr_over_trtr"] == pytest.approx(1.0)
    # three patients: an interval; one patient: none, and the reason says why
    assert s["utility.source.a.tstr.balanced_accuracy_ci_low"] is not None
    assert s["utility.source.b.tstr.balanced_accuracy_ci_low"] is None
    assert why["utility.source.b.tstr.balanced_accuracy_ci_low"] == ONE_PATIENT
    check_scalars(s, "report.json")
    for key in s:
        assert "source" in definition(key)


def test_an_interval_follows_the_source_patients_not_the_whole_holdout():
    # TSTR right on p0 and p1, wrong on p2: source a's interval must span the patients' disagreement
    tstr = LABELS.copy()
    tstr[GROUPS == "p2"] = (LABELS[GROUPS == "p2"] + 1) % 3
    s, _ = source_scalars(_result(LABELS.copy(), tstr), SOURCES)
    assert s["utility.source.a.tstr.balanced_accuracy"] == pytest.approx(2 / 3)
    key = "utility.source.a.tstr.balanced_accuracy"
    assert s[key + "_ci_low"] < 0.5 < s[key + "_ci_high"]


def test_one_source_or_missing_predictions_give_no_reading():
    assert source_scalars(_result(LABELS.copy(), LABELS.copy()), np.array(["a"] * len(LABELS))) == ({}, {})
    u = _result(LABELS.copy(), LABELS.copy())
    u.results["tstr"][0].predictions = None
    assert source_scalars(u, SOURCES) == ({}, {})


def test_rows_read_back_and_mark_a_source_at_its_chance():
    tstr = LABELS.copy()
    tstr[SOURCES == "b"] = 0
    trtr = LABELS.copy()
    trtr[SOURCES == "b"] = 0
    s, why = source_scalars(_result(trtr, tstr), SOURCES)
    rows = {r.name: r for r in source_rows(s, why)}
    assert set(rows) == {"a", "b"}
    assert rows["a"].mark() == "" and rows["a"].support == "9 VUs, 3 patients"
    assert rows["b"].support == "2 VUs, 1 patient"
    assert rows["b"].mark().startswith(SOURCE_AT_CHANCE) and SOURCE_REAL_TOO in rows["b"].mark()
    assert rows["b"].tstr.short() == "0.00" and ONE_PATIENT in rows["b"].tstr.cell()
    assert "[" in rows["a"].tstr.short()
    assert source_rows({"utility.tstr.balanced_accuracy": 0.5}) == []


def test_cli_card_and_dashboard_show_the_per_source_reading():
    from dashboard.summary import ReportView, source_table
    from synthvu_core.evaluation.commands import source_lines
    from synthvu_core.modelcard import _source_table

    tstr = LABELS.copy()
    tstr[SOURCES == "b"] = 0
    s, why = source_scalars(_result(LABELS.copy(), tstr), SOURCES)

    class _Report:
        scalars, meta = s, {"missing": why}

    cli = "\n".join(source_lines(_Report()))
    assert "b" in cli and SOURCE_AT_CHANCE in cli and "1 holdout patient" in cli
    card = "\n".join(_source_table(_Report()))
    assert "| b | 2 VUs, 1 patient | 0.500 |" in card and f"**0.00: {SOURCE_AT_CHANCE}**" in card
    table = source_table(ReportView(scalars=s, meta={"missing": why}))
    assert [r["source"] for r in table] == ["a", "b"] and table[1]["warning"].startswith(SOURCE_AT_CHANCE)
    assert source_lines(type("R", (), {"scalars": {}, "meta": {}})()) == []


def test_a_stored_report_is_re_read_per_source_and_refused_on_other_rows():
    from synthvu_core.evaluation.source_utility import stored_source_scalars

    tstr = LABELS.copy()
    tstr[SOURCES == "b"] = 0
    u = _result(LABELS.copy(), tstr)
    arrays = u.arrays(3)
    assert stored_source_scalars(arrays, SOURCES, GROUPS, n_boot=200) == source_scalars(u, SOURCES)
    with pytest.raises(ValueError, match="scored 11 holdout VUs"):
        stored_source_scalars(arrays, SOURCES[:-1], GROUPS[:-1])
    with pytest.raises(ValueError, match="patients"):
        stored_source_scalars(arrays, SOURCES, GROUPS[::-1])
    with pytest.raises(ValueError, match="re-run evaluate"):
        stored_source_scalars({k: v for k, v in arrays.items() if "predictions" not in k}, SOURCES, GROUPS)


def test_report_amend_adds_the_reading_and_keeps_every_other_number(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path
    from types import SimpleNamespace

    import pandas as pd

    from synthvu_core.evaluation import report as report_module
    from synthvu_core.evaluation.amend import add_source_utility
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.names import SOURCE_COLUMN

    shipped = Path(__file__).resolve().parents[1] / "models" / "acgan-spine-mri"
    folder = tmp_path / "m"
    shutil.copytree(shipped, folder)
    before = load_report(folder)
    strip = [k for k in before.scalars if k.startswith("utility.source.")]
    for k in strip:  # the report as older code wrote it
        del before.scalars[k]
    report_module.save_report(before, folder / "report")
    idx = np.asarray(before.arrays["embedding/real_index"])
    codes = np.asarray(before.arrays["utility/holdout_patient"])
    units = pd.DataFrame({"patient_id": ["none"] * (idx.max() + 1), SOURCE_COLUMN: ["none"] * (idx.max() + 1)})
    units.loc[idx, "patient_id"] = [f"p{c}" for c in codes]
    units.loc[idx, SOURCE_COLUMN] = ["x" if c == 0 else "y" for c in codes]  # patient 0 alone in source x
    monkeypatch.setattr(report_module, "evaluation_datasets", lambda *a: (None, SimpleNamespace(units=units)))
    after, done = add_source_utility(folder)
    assert done == "added the utility per source (x, y)"
    assert {k: v for k, v in after.scalars.items() if not k.startswith("utility.source.")} == before.scalars
    assert after.scalars["utility.source.x.n_patients"] == 1 and after.scalars["utility.source.y.n_patients"] == 4
    assert after.meta["missing"]["utility.source.x.tstr.balanced_accuracy_ci_low"] == ONE_PATIENT
    assert after.integrity.startswith("signed")
    assert add_source_utility(folder)[1] == "the report already holds the utility per source"


def test_the_shipped_real_data_report_reads_each_source():
    from pathlib import Path

    from synthvu_core.evaluation.report import load_report

    rep = load_report(Path(__file__).resolve().parents[1] / "models" / "acgan-spine-mri")
    rows = {r.name: r for r in source_rows(rep.scalars, rep.meta.get("missing"))}
    assert set(rows) == {"chu2015", "myosegmentum"}
    assert (rows["chu2015"].n_patients, rows["myosegmentum"].n_patients) == (1, 4)
    assert rows["myosegmentum"].tstr.low is not None and ONE_PATIENT in rows["chu2015"].tstr.cell()


def test_the_evaluation_reads_each_scored_holdout_rows_source():
    from types import SimpleNamespace

    import pandas as pd

    from synthvu_core.evaluation.stages import _holdout_sources
    from synthvu_core.names import SOURCE_COLUMN

    units = pd.DataFrame({SOURCE_COLUMN: ["a", "b", "a", "b", "a"], "patient_id": list("vwxyz")})
    ctx = SimpleNamespace(labels=np.array([0, 1, -1, 2, 1]), util_holdout=np.array([4, 2, 1]), classes=["x", "y", "z"])
    # row 2's label lies outside the scheme: the classifiers do not score it, so it has no source here either
    assert _holdout_sources(ctx, SimpleNamespace(units=units)).tolist() == ["a", "b"]
    assert _holdout_sources(ctx, SimpleNamespace(units=units.drop(columns=[SOURCE_COLUMN]))) is None
