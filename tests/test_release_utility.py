"""TSTR on the whole synthetic set: the subset, when it is read, its scalars and the sentence every view shows."""

from __future__ import annotations

import numpy as np
import pytest

from synthvu_core.evaluation.definitions import definition
from synthvu_core.evaluation.integrity import check_scalars
from synthvu_core.evaluation.release_utility import (
    ARRAY_PREFIX,
    MIN_FACTOR,
    PREFIX,
    not_read,
    release_part,
    release_size,
    release_subset,
    release_text,
)
from synthvu_core.evaluation.utility import classification_result

# holdout: three patients, classes 0, 1, 2 each
LABELS = np.array([0, 1, 2] * 3)
GROUPS = np.repeat(["p0", "p1", "p2"], 3)


def test_the_subset_keeps_the_real_label_mix_and_grows_to_what_the_rarest_class_allows():
    train = np.array([0, 0, 1, 1, 1, 1, -1])  # one VU outside the classes counts for nothing
    pool = np.array([0] * 10 + [1] * 100 + [2] * 50 + [-1] * 5)
    idx = release_subset(train, pool, 3, seed=0)
    assert np.bincount(pool[idx], minlength=3).tolist() == [10, 20, 0]  # x5: class 0 has 10, needs 2 per copy
    assert len(set(idx.tolist())) == len(idx)  # without replacement
    assert not np.array_equal(idx, release_subset(train, pool, 3, seed=1))  # the seed draws another subset
    assert release_size(train, pool, 3) == (30, None)
    size, why = release_size(train, np.array([0] * 6 + [1] * 100), 3)  # x3: fewer than MIN_FACTOR times
    assert size == 18 and MIN_FACTOR == 5 and "fewer than 5 times its 6" in why and "not a release" in why
    assert release_size(np.array([-1, -1]), pool, 3)[1] is not None  # no real train VU in the classes


def _real(pred: np.ndarray) -> tuple:
    return classification_result(LABELS, pred, 3), classification_result(LABELS, LABELS, 3)


def test_the_reading_is_tstr_of_the_whole_set_against_the_same_trtr():
    trtr = LABELS.copy()
    trtr[0] = 1  # TRTR: 8 of 9 right
    release_pred = LABELS.copy()
    release_pred[[1, 4]] = 0  # class 1 recall 1/3
    real = [_real(trtr) for _ in range(2)] + [_real(LABELS.copy())]  # seed 2: TRTR all right
    release = [(classification_result(LABELS, release_pred, 3), 300) for _ in range(2)]
    release.append((classification_result(LABELS, LABELS.copy(), 3), 300))  # seed 2: all right too
    s, why, arrays = release_part(real, release, np.array([0, 1, 2] * 10), LABELS, 3, (0, 1, 2), GROUPS)
    assert s[PREFIX + "n_synthetic"] == 300
    b_trtr = classification_result(LABELS, trtr, 3).balanced_accuracy
    b_rel = classification_result(LABELS, release_pred, 3).balanced_accuracy
    assert s[PREFIX + "tstr.balanced_accuracy"] == pytest.approx((2 * b_rel + 1) / 3)
    assert s[PREFIX + "tstr_over_trtr"] == pytest.approx((2 * b_rel / b_trtr + 1) / 3)  # each seed with its own TRTR
    assert s[PREFIX + "tstr.balanced_accuracy_ci_low"] <= b_rel <= s[PREFIX + "tstr.balanced_accuracy_ci_high"]
    assert not any(k.startswith(("utility.trtr", "utility.trts", "utility.chance")) for k in s)  # TSTR's keys only
    assert arrays[ARRAY_PREFIX + "recall"][1] == pytest.approx((1 / 3 * 2 + 1) / 3)  # pooled over seeds
    assert set(arrays) == {ARRAY_PREFIX + k for k in ("confusion", "recall", "balanced_accuracy_seeds",
                                                       "holdout_predictions")}
    assert not why
    check_scalars(s, "report.json")
    for key in [*s, *not_read("x")]:
        assert "whole" in definition(key)


def test_the_sentence_gives_the_reading_its_chance_and_the_levels_at_chance_or_why_it_is_missing():
    classes = ["L1/L2", "L2/L3", "L3/L4"]
    s = {PREFIX + "tstr.balanced_accuracy": 0.6, PREFIX + "tstr.balanced_accuracy_ci_low": 0.4,
         PREFIX + "tstr.balanced_accuracy_ci_high": 0.8, PREFIX + "tstr_over_trtr": 0.9, PREFIX + "n_synthetic": 4598.0,
         "utility.chance": 1 / 3}
    text = release_text(s, {ARRAY_PREFIX + "recall": np.array([0.9, 1 / 3, np.nan])}, classes, {})  # at chance
    assert "4,598 VUs" in text and "TSTR 0.60 [0.40, 0.80]" in text and "TSTR/TRTR 0.90" in text
    assert "chance 0.333" in text and "at or below chance: L2/L3" in text and "L3/L4" not in text
    assert "every class's recall above chance" in release_text(
        s, {ARRAY_PREFIX + "recall": np.array([0.9, 0.5, np.nan])}, classes, {})
    y = np.array([0, 1, 2, 0, 1, 0, 1])  # class 2 in one holdout patient only: its recall has no interval
    stored = {ARRAY_PREFIX + "recall": np.ones(3), ARRAY_PREFIX + "holdout_predictions": np.stack([y, y]),
              "utility/holdout_labels": y, "utility/holdout_patient": np.array([0, 0, 0, 1, 1, 2, 2])}
    assert "(1 of 3 classes on one holdout patient, no interval)" in release_text(s, stored, classes, {})
    why = not_read("the synthetic set gives 9 VUs")
    expected = "TSTR on the whole synthetic set: not read (the synthetic set gives 9 VUs)."
    assert release_text({}, {}, classes, why) == expected
    assert release_text({}, {}, classes, {}) is None  # a report made before the reading says nothing


def test_the_cli_the_card_overview_and_the_meeting_page_show_the_reading():
    from dashboard.presentation import _usefulness_html
    from dashboard.summary import ReportView, release_sentence
    from synthvu_core.evaluation.commands import utility_lines
    from synthvu_core.modelcard import _utility_lines

    s = {PREFIX + "tstr.balanced_accuracy": 0.6, PREFIX + "tstr_over_trtr": 0.9, PREFIX + "n_synthetic": 4598.0,
         "utility.chance": 1 / 3}
    arrays = {ARRAY_PREFIX + "recall": np.array([0.9, 0.5, 0.4])}

    class _Report:
        scalars, meta = s, {"classes": ["a", "b", "c"]}

    _Report.arrays = arrays
    view = ReportView(scalars=s, meta={"classes": ["a", "b", "c"]}, arrays=arrays)
    for shown in ("\n".join(utility_lines(_Report())), "\n".join(_utility_lines(_Report())),
                  release_sentence(view, ["a", "b", "c"]), _usefulness_html(view, ["a", "b", "c"])):
        assert "whole synthetic set (4,598 VUs" in shown and "TSTR/TRTR 0.90" in shown
    assert release_sentence(ReportView(scalars={}, meta={}), ["a"]) == ""


def test_no_shipped_report_lacks_a_reading_a_re_run_would_make():
    """`report verify` refuses a report that predates the reading where a re-run would make it: every shipped report
    holds it (or why not), or has too few samples for it (the subset is never larger than the samples)."""
    import json
    from pathlib import Path

    reports = sorted(Path(__file__).resolve().parents[1].glob("models/*/report/report.json"))
    assert reports
    for path in reports:
        doc = json.loads(path.read_text())
        if PREFIX + "tstr.balanced_accuracy" in doc["scalars"] or PREFIX + "tstr.balanced_accuracy" in doc["meta"].get(
                "missing", {}):
            continue
        n_train = doc["meta"]["utility"]["n_train"]
        assert sum(doc["meta"]["synthetic_class_counts"]) < MIN_FACTOR * n_train, path.parent.parent.name
