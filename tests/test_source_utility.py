"""Utility per source: each source's holdout VUs re-read from the stored predictions, against its own chance."""

from __future__ import annotations

import numpy as np
import pytest

from synthvu_core.evaluation.definitions import definition
from synthvu_core.evaluation.integrity import check_scalars
from synthvu_core.evaluation.source_utility import (
    SOURCE_CANNOT_TELL,
    SOURCE_NOT_USEFUL,
    SOURCE_REAL_TOO,
    TOO_FEW,
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
    assert why["utility.source.b.tstr.balanced_accuracy_ci_low"] == TOO_FEW
    check_scalars(s, "report.json")
    two, _ = source_scalars(_result(LABELS.copy(), tstr), np.where(np.isin(GROUPS, ["p0", "p1"]), "a", "b"))
    assert two["utility.source.a.n_patients"] == 2 and two["utility.source.a.tstr.balanced_accuracy_ci_low"] is None
    for key in s:
        assert "source" in definition(key)


def test_an_interval_follows_the_source_patients_not_the_whole_holdout():
    # TSTR right on every VU of source a, wrong on source b: the whole holdout's interval dips, source a's cannot
    tstr = LABELS.copy()
    tstr[SOURCES == "b"] = 0
    u = _result(LABELS.copy(), tstr)
    whole, _ = u.scalars()
    s, _ = source_scalars(u, SOURCES)
    key = "utility.source.a.tstr.balanced_accuracy"
    assert whole["utility.tstr.balanced_accuracy_ci_low"] < 0.9
    assert s[key + "_ci_low"] == pytest.approx(1.0) and s[key + "_ci_high"] == pytest.approx(1.0)


def test_a_seed_without_a_trained_classifier_reads_nothing_per_source():
    # the untrained seeds' placeholder predictions (all zeros) must not become a per-source accuracy
    u = _result(LABELS.copy(), np.zeros_like(LABELS))
    for r in u.results["tstr"]:
        r.balanced_accuracy, r.reason = None, "no synthetic VUs to train on"
    s, why = source_scalars(u, SOURCES)
    assert s["utility.source.a.tstr.balanced_accuracy"] is None and s["utility.source.b.tstr.balanced_accuracy"] is None
    assert why["utility.source.a.tstr.balanced_accuracy"] == "no synthetic VUs to train on"
    assert s["utility.source.a.trtr.balanced_accuracy"] == pytest.approx(1.0)
    assert source_rows(s, why)[0].mark() == ""


def test_one_source_gives_no_reading():
    assert source_scalars(_result(LABELS.copy(), LABELS.copy()), np.array(["a"] * len(LABELS))) == ({}, {})


def test_rows_read_back_and_mark_a_source_whose_interval_reaches_its_chance():
    tstr, trtr = LABELS.copy(), LABELS.copy()
    tstr[:] = 0  # source a (3 patients): TSTR 1/3 at chance, its interval reaching it; TRTR right
    s, why = source_scalars(_result(trtr, tstr), SOURCES)
    rows = {r.name: r for r in source_rows(s, why)}
    assert set(rows) == {"a", "b"}
    assert rows["a"].support == "9 VUs, 3 patients" and rows["b"].support == "2 VUs, 1 patient"
    assert rows["a"].mark() == SOURCE_NOT_USEFUL  # TRTR is not at chance: no "so is TRTR"
    assert rows["b"].mark() == SOURCE_CANNOT_TELL  # one patient: at chance, but no interval
    assert rows["b"].tstr.short() == "0.00" and TOO_FEW in rows["b"].tstr.cell()
    assert "[" in rows["a"].tstr.short()
    s, why = source_scalars(_result(np.zeros_like(LABELS), tstr), SOURCES)
    assert source_rows(s, why)[0].mark() == f"{SOURCE_NOT_USEFUL}; {SOURCE_REAL_TOO}"
    right, _ = source_scalars(_result(LABELS.copy(), LABELS.copy()), SOURCES)
    assert [r.mark() for r in source_rows(right)] == ["", ""]
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
    assert "b" in cli and SOURCE_CANNOT_TELL in cli and "no interval below 3 holdout patients" in cli
    card = "\n".join(_source_table(_Report()))
    assert "| b | 2 VUs, 1 patient | 0.500 |" in card and f"**0.00: {SOURCE_CANNOT_TELL}**" in card
    table = source_table(ReportView(scalars=s, meta={"missing": why}))
    assert [r["source"] for r in table] == ["a", "b"] and table[1]["warning"] == SOURCE_CANNOT_TELL
    assert "warning" not in source_table(ReportView(scalars=source_scalars(_result(LABELS, LABELS), SOURCES)[0]))[0]
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
    untrained = {**arrays, "utility/tstr/balanced_accuracy_seeds": np.full(3, np.nan)}
    assert stored_source_scalars(untrained, SOURCES, GROUPS)[0]["utility.source.a.tstr.balanced_accuracy"] is None


def test_report_amend_adds_the_reading_and_keeps_every_other_number(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path
    from types import SimpleNamespace

    import pandas as pd

    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation import report as report_module
    from synthvu_core.evaluation.amend import add_source_utility
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.names import SOURCE_COLUMN

    shipped = Path(__file__).resolve().parents[1] / "models" / "acgan-spine-mri"
    folder = tmp_path / "m"
    shutil.copytree(shipped, folder)
    before = load_report(folder)
    for k in [k for k in before.scalars if k.startswith("utility.source.")]:  # the report as older code wrote it
        del before.scalars[k]
        before.definitions.pop(k, None)
        before.meta["missing"].pop(k, None)
    before.meta.pop("amended", None)
    idx = np.asarray(before.arrays["embedding/real_index"])
    n = int(idx.max()) + 2
    before.arrays["embedding/real_index"] = np.insert(idx, 0, n - 1)  # a holdout row outside the scheme: not scored
    report_module.save_report(before, folder / "report")
    codes = np.asarray(before.arrays["utility/holdout_patient"])
    labels = np.full(n, -1)
    labels[idx] = before.arrays["utility/holdout_labels"]
    units = pd.DataFrame({"patient_id": ["none"] * n, SOURCE_COLUMN: ["z"] * n})
    units.loc[idx, "patient_id"] = [f"p{c}" for c in codes]
    units.loc[idx, SOURCE_COLUMN] = ["x" if c == 0 else "y" for c in codes]  # patient 0 alone in source x
    ds = SimpleNamespace(units=units, labels=lambda scheme, classes: labels)
    monkeypatch.setattr(report_module, "evaluation_datasets", lambda *a: (ds, ds))
    after, done = add_source_utility(folder)
    assert done == "added the utility per source (x, y)"
    assert {k: v for k, v in after.scalars.items() if not k.startswith("utility.source.")} == before.scalars
    assert after.scalars["utility.source.x.n_patients"] == 1 and after.scalars["utility.source.y.n_patients"] == 4
    assert after.meta["missing"]["utility.source.x.tstr.balanced_accuracy_ci_low"] == TOO_FEW
    assert after.integrity.startswith("signed") and len(after.meta["amended"]) == 1
    assert add_source_utility(folder)[1] == "the report already holds the utility per source"
    labels[idx[0]] = (labels[idx[0]] + 1) % len(before.meta["classes"])  # a dataset that is not the report's
    before.arrays["embedding/real_index"] = np.insert(idx, 0, n - 1)
    report_module.save_report(before, folder / "report")
    with pytest.raises(ReportError, match="holdout labels are not the ones the report scored"):
        add_source_utility(folder)


def test_the_shipped_real_data_report_reads_each_source():
    from pathlib import Path

    from synthvu_core.evaluation.report import load_report

    rep = load_report(Path(__file__).resolve().parents[1] / "models" / "acgan-spine-mri")
    rows = {r.name: r for r in source_rows(rep.scalars, rep.meta.get("missing"))}
    assert set(rows) == {"chu2015", "myosegmentum"}
    assert (rows["chu2015"].n_patients, rows["myosegmentum"].n_patients) == (1, 4)
    assert rows["myosegmentum"].tstr.low is not None and TOO_FEW in rows["chu2015"].tstr.cell()
    assert sum(r.n_vus for r in rows.values()) == len(rep.arrays["utility/holdout_labels"])


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


def test_the_utility_stage_stores_the_per_source_reading():
    from types import SimpleNamespace

    import pandas as pd

    from synthvu_core.evaluation.stages import stage_utility
    from synthvu_core.names import SOURCE_COLUMN

    n_train = 3
    units = pd.DataFrame({"patient_id": ["t"] * n_train + list(GROUPS), SOURCE_COLUMN: ["a"] * n_train + list(SOURCES)})
    util = SimpleNamespace(units=units)
    holdout = np.arange(n_train, n_train + len(LABELS))
    ctx = SimpleNamespace(labels=np.concatenate([[0, 1, 2], LABELS]), util_train=np.arange(n_train),
                          util_holdout=holdout, classes=["x", "y", "z"])
    tstr = LABELS.copy()
    tstr[SOURCES == "b"] = 0
    state = {"utility_real": {i: (classification_result(LABELS, LABELS, 3), classification_result(LABELS, LABELS, 3))
                              for i in range(2)},
             "utility_tstr": {i: (classification_result(LABELS, tstr, 3), 3) for i in range(2)}}
    job = SimpleNamespace(utility_dataset=util, dataset=util, config=SimpleNamespace(utility_seeds=(0, 1)), state=state,
                          tstr_extra=None, labels=np.array([0, 1, 2, 0, 1]))  # one of class 2: no whole-set reading
    part = stage_utility(ctx, job)
    assert "not a release much larger" in part.missing["utility.release.tstr.balanced_accuracy"]
    assert part.scalars["utility.source.b.tstr.balanced_accuracy"] == pytest.approx(0.0)
    assert part.scalars["utility.source.a.tstr.balanced_accuracy"] == pytest.approx(1.0)
    assert part.scalars["utility.source.a.n_patients"] == 3
    assert part.missing["utility.source.b.tstr.balanced_accuracy_ci_low"] == TOO_FEW


def test_the_usefulness_box_warns_of_a_marked_source():
    from dashboard.summary import ReportView, usefulness_box
    from synthvu_core.evaluation.utility import PATIENT_SEED_INTERVAL

    def box(tstr: np.ndarray, pooled_low: float | None = None) -> tuple[str, str]:
        u = _result(LABELS.copy(), tstr)
        (s, why), (more, why_s) = u.scalars(), source_scalars(u, SOURCES)
        if pooled_low is not None:  # the pooled interval as a larger holdout would give it: above chance
            s["utility.tstr.balanced_accuracy_ci_low"] = pooled_low
        view = ReportView(scalars={**s, **more}, meta={"missing": {**why, **why_s},
                                                        "utility": {"interval": PATIENT_SEED_INTERVAL}},
                          arrays=u.arrays(3))
        return usefulness_box(view, ["x", "y", "z"])

    tstr = LABELS.copy()
    tstr[SOURCES == "b"] = 0
    kind, text = box(tstr)
    assert kind == "warning" and "above chance" in text and "b (2 VUs, 1 patient): TSTR 0.00" in text
    assert SOURCE_CANNOT_TELL in text
    assert box(LABELS.copy())[0] == "success"
    tstr = np.where(GROUPS == "p2", (LABELS + 1) % 3, LABELS)  # source a: one of its 3 patients wrong throughout
    kind, text = box(tstr, pooled_low=0.4)
    assert kind == "warning" and text.startswith("TSTR") and "a (9 VUs, 3 patients): TSTR 0.67 [0.00, " in text
    assert SOURCE_NOT_USEFUL in text and "b (" not in text
    tstr[LABELS == 0] = 1  # and class x never recognised: the class sentence first, the source one after it
    kind, text = box(tstr, pooled_low=0.4)
    assert kind == "warning" and "at or below chance for x" in text and ". Read per source, a (9 VUs" in text


def test_a_training_source_without_holdout_vus_is_said_to_be_untested():
    from dashboard.summary import ReportView, source_caption, untested_sources
    from synthvu_core.evaluation.commands import source_lines
    from synthvu_core.evaluation.source_utility import untested_text

    s, why = source_scalars(_result(LABELS.copy(), LABELS.copy()), SOURCES)
    three = {"real": {"a": 0.5, "b": 0.3, "c": 0.2}}
    meta = {"missing": why, "sources": three}
    assert untested_text(s, meta) == "no scored holdout VUs of c: the samples are not tested on that source's real VUs"
    four = {"missing": why, "sources": {"real": {"a": 0.4, "b": 0.3, "c": 0.2, "d": 0.1}}}
    assert untested_text(s, four).startswith("no scored holdout VUs of c, d") and "those sources'" in untested_text(
        s, four)
    assert "report amend" in untested_text({}, {"sources": {**three, "check_accuracy": 0.9}})  # read before the reading
    assert untested_text(s, {"sources": ["a", "b"]}) == ""  # a malformed record: no crash
    assert untested_text(s, {"missing": why, "sources": {"real": {"a": 0.6, "b": 0.4}}}) == ""
    assert "one source only" in untested_text({}, {"sources": three})
    assert untested_text({}, {}) == ""
    assert "no scored holdout VUs of c" in "\n".join(source_lines(type("R", (), {"scalars": s, "meta": meta})()))
    assert "one source only" in "\n".join(source_lines(type("R", (), {"scalars": {}, "meta": {"sources": three}})()))
    assert "Untested: no scored holdout VUs of c" in source_caption(ReportView(scalars=s, meta=meta))
    assert untested_sources(ReportView(scalars=s, meta={"missing": why})) == ""
