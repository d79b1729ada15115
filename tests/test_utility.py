import numpy as np
import pytest
import torch
from evaluation_fixtures import structured_dataset

from synthvu_core.evaluation.encoder import EncoderConfig, train_classifier
from synthvu_core.evaluation.utility import classification_result, matched_synthetic_subset, utility_scores

torch.set_num_threads(1)
CFG = EncoderConfig(epochs=4, width=8, embed_dim=16)


def test_classification_result_by_hand():
    r = classification_result(np.array([0, 0, 0, 1, 2, 2]), np.array([0, 0, 1, 1, 0, 2]), 3)
    np.testing.assert_allclose(r.recall, [2 / 3, 1.0, 0.5])
    assert r.balanced_accuracy == pytest.approx((2 / 3 + 1 + 0.5) / 3)
    assert r.confusion.tolist() == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_absent_class_is_nan_recall_and_left_out_of_balanced_accuracy():
    r = classification_result(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    assert np.isnan(r.recall[2]) and r.balanced_accuracy == pytest.approx(0.75)


def test_one_class_has_no_balanced_accuracy():
    r = classification_result(np.zeros(4, int), np.zeros(4, int), 1)
    assert r.balanced_accuracy is None and "one class" in r.reason


def test_matched_subset_keeps_distribution_and_scales_when_short():
    real = np.array([0] * 6 + [1] * 3)
    syn = np.array([0] * 20 + [1] * 20)
    idx = matched_synthetic_subset(real, syn, 2, seed=0)
    assert np.bincount(syn[idx]).tolist() == [6, 3] and len(set(idx)) == len(idx)
    short = np.array([0] * 20 + [1] * 1)  # class 1 has a third of what is needed
    idx = matched_synthetic_subset(real, short, 2, seed=0)
    assert np.bincount(short[idx]).tolist() == [2, 1]


def test_utility_real_as_synthetic_gives_tstr_near_trtr():
    ds = structured_dataset(20)
    y = ds.labels("region")
    tr, ho, ref = ds.indices("train"), ds.indices("holdout"), ds.indices("reference")
    clf = train_classifier(ds.images[tr], y[tr], 3, config=CFG)
    u = utility_scores(
        real_classifiers=[clf],
        seeds=(0,),
        train_labels=y[tr],
        holdout_images=ds.images[ho],
        holdout_labels=y[ho],
        synthetic_images=ds.images[ref],
        synthetic_labels=y[ref],
        n_classes=3,
        config=CFG,
    )
    s, reasons = u.scalars()
    assert s["utility.trtr.balanced_accuracy"] > 0.9 and s["utility.tstr.balanced_accuracy"] > 0.9
    assert s["utility.tstr_over_trtr"] == pytest.approx(
        s["utility.tstr.balanced_accuracy"] / s["utility.trtr.balanced_accuracy"]
    )
    assert u.arrays(3)["utility/trts/confusion"].sum() == len(ref)
    # synthetic labels scrambled: TSTR falls to chance while TRTR stays
    wrong = np.random.default_rng(0).permutation(y[ref])
    u2 = utility_scores(
        real_classifiers=[clf],
        seeds=(0,),
        train_labels=y[tr],
        holdout_images=ds.images[ho],
        holdout_labels=y[ho],
        synthetic_images=ds.images[ref],
        synthetic_labels=wrong,
        n_classes=3,
        config=CFG,
    )
    assert u2.scalars()[0]["utility.trts.balanced_accuracy"] < 0.7


# ---- chance, the usefulness label, the patient bootstrap, the TSTR size ---------------------------
from synthvu_core.evaluation.utility import (  # noqa: E402
    NOT_USEFUL,
    PATIENT_SEED_INTERVAL,
    ClassificationResult,
    UtilityResult,
    chance_from_recall,
    chance_level,
    patient_bootstrap,
    report_usefulness,
    usefulness,
)


def test_chance_counts_only_the_classes_present_in_the_holdout():
    # six levels in the scheme, four present in the holdout (and a label outside the classes): chance 1/4
    assert chance_level(np.array([0, 0, 2, 3, 5, 5, -1]), 6) == pytest.approx(0.25)
    assert chance_level(np.array([0, 1, 2, 3, 4, 5]), 6) == pytest.approx(1 / 6)
    assert chance_level(np.array([2, 2, 2]), 6) is None  # one class: no chance level
    # a stored report: the holdout recall is NaN exactly where the class is absent
    assert chance_from_recall(np.array([0.5, np.nan, 0.2, 0.1, np.nan, 0.0])) == pytest.approx(0.25)


def test_not_useful_label_at_the_boundary():
    chance = 0.25
    assert usefulness(0.30, 0.25, 0.35, chance).level == "not_useful"  # interval touches chance
    assert NOT_USEFUL in usefulness(0.30, 0.25, 0.35, chance).text
    assert usefulness(0.30, 0.2501, 0.35, chance).level == "above_chance"
    assert usefulness(0.25, None, None, chance).level == "not_useful"  # no interval: the mean decides
    assert usefulness(0.26, None, None, chance).level == "unknown"
    assert usefulness(None, None, None, chance).level == "unknown"
    # from a stored report: chance from the scalar, or (older reports) from the TRTR holdout recall
    s = {"utility.tstr.balanced_accuracy": 0.267, "utility.tstr.balanced_accuracy_ci_low": 0.195,
         "utility.tstr.balanced_accuracy_ci_high": 0.34}
    old = report_usefulness(s, {"utility": {}}, np.array([1.0, np.nan, 0.5, 0.5, 1.0, np.nan]))
    assert old.level == "not_useful" and old.chance == pytest.approx(0.25) and "re-run evaluate" in old.text
    new = report_usefulness({**s, "utility.chance": 0.125}, {"utility": {"interval": PATIENT_SEED_INTERVAL}})
    assert new.level == "above_chance" and "re-run" not in new.text


def _result(y: np.ndarray, pred: np.ndarray, k: int) -> ClassificationResult:
    return classification_result(y, pred, k)


def test_patient_bootstrap_is_wider_than_the_seed_interval_when_seeds_agree():
    # 20 patients, 10 VUs each; patients differ in how well they are classified, every seed predicts the same
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 10)
    y = np.tile(np.arange(2), 100)
    skill = np.repeat(rng.uniform(0.3, 1.0, 20), 10)
    pred = np.where(rng.random(200) < skill, y, 1 - y)
    res = {s: [_result(y, pred, 2) for _ in range(3)] for s in ("trtr", "tstr", "trts")}
    u = UtilityResult(res, 100, (0, 1, 2), {}, y, groups, 2)
    s, _ = u.scalars()
    k = "utility.tstr.balanced_accuracy"
    assert s[k + "_seeds_ci_high"] - s[k + "_seeds_ci_low"] == pytest.approx(0.0, abs=1e-12)
    assert s[k + "_ci_high"] - s[k + "_ci_low"] > 0.05
    assert s[k + "_ci_low"] < s[k] < s[k + "_ci_high"]
    assert s["utility.chance"] == pytest.approx(0.5)
    # one patient per replicate-draw of the whole holdout gives the statistic itself
    boot = patient_bootstrap(y, {"a": pred[None]}, groups, 2, n_boot=400)["a"]
    assert abs(float(np.mean(boot)) - s[k]) < 0.02
    # seeds that disagree widen it further: the seed is drawn per replicate
    other = np.where(rng.random(200) < 0.5, y, 1 - y)
    both = patient_bootstrap(y, {"a": np.stack([pred, other])}, groups, 2, n_boot=400)["a"]
    assert np.std(both) > np.std(boot)


def test_tstr_trains_on_as_many_vus_as_the_real_train_split_with_extra_vus():
    ds = structured_dataset(20)
    y = ds.labels("region")
    tr, ho, ref = ds.indices("train"), ds.indices("holdout"), ds.indices("reference")
    clf = train_classifier(ds.images[tr], y[tr], 3, config=CFG)
    half = ref[: len(ref) // 3]
    common = dict(real_classifiers=[clf], seeds=(0,), train_labels=y[tr], holdout_images=ds.images[ho],
                  holdout_labels=y[ho], synthetic_images=ds.images[half], synthetic_labels=y[half], n_classes=3,
                  config=CFG)
    short = utility_scores(**common)
    assert short.tstr_train_size < len(tr) and "tstr" in short.notes
    full = utility_scores(**common, tstr_extra=(ds.images[np.concatenate([tr, ref])], y[np.concatenate([tr, ref])]))
    assert full.tstr_train_size == len(tr) and "tstr" not in full.notes


def _stored(y, groups, preds, k):
    """The arrays a report stores for per-class recall: pooled recall, holdout labels, patients, predictions."""
    from synthvu_core.evaluation.utility import pooled

    pooled_recall = pooled([classification_result(y, p, k) for p in preds], k).recall
    return {"utility/tstr/recall": pooled_recall, "utility/holdout_labels": y, "utility/holdout_patient": groups,
            "utility/tstr/holdout_predictions": np.asarray(preds)}


def test_class_recall_has_an_interval_per_class_and_none_on_one_patient():
    from synthvu_core.evaluation.utility import class_recall, recall_table

    # class 0: 6 patients, always right; class 1: 6 patients, right for half of them; class 2: one patient; 3: absent
    groups = np.concatenate([np.arange(6), np.arange(6), [6, 6]])
    y = np.array([0] * 6 + [1] * 6 + [2, 2])
    pred = np.array([0] * 6 + [1, 1, 1, 0, 0, 0] + [0, 2])
    rows = class_recall(_stored(y, groups, [pred, pred], 4), "tstr", n_boot=500)
    assert (rows[0].high, rows[0].recall) == (1.0, 1.0)  # every replicate reads 1: widened to the exact interval
    assert rows[0].low == pytest.approx(0.025 ** (1 / 6))  # Clopper-Pearson, 6 of 6 patients
    assert rows[1].recall == pytest.approx(0.5) and rows[1].low < 0.3 and rows[1].high > 0.7
    assert rows[1].support() == "6 VUs, 6 patients" and rows[1].cell().startswith("0.50 [")
    assert rows[2].recall == pytest.approx(0.5) and rows[2].low is None
    assert rows[2].cell() == "0.50 (1 patient: no interval)"
    assert rows[2].support() == "2 VUs, 1 patient" and rows[3].recall is None and rows[3].cell() == "absent"
    assert rows[1].at_or_below(0.5) and not rows[0].at_or_below(0.5) and not rows[3].at_or_below(0.5)
    table, absent = recall_table(_stored(y, groups, [pred, pred], 4))
    assert [r.index for r in table] == [0, 1, 2] and absent == [3] and table[0].trtr is None
    # a report without per-row predictions keeps its recall and says why there is no interval
    old = class_recall({"utility/tstr/recall": np.array([1.0, 0.5]), "utility/holdout_labels": y[:12],
                        "utility/holdout_patient": groups[:12]}, "tstr")
    assert old[1].recall == 0.5 and old[1].low is None and "re-run evaluate" in old[1].cell()
    assert old[1].support() == "6 VUs, 6 patients"  # known from the stored holdout without predictions
    # arrays that do not fit together are read as not stored, never as an error
    bad = {**_stored(y, groups, [pred], 4), "utility/holdout_patient": groups[:5]}
    assert class_recall(bad, "tstr")[1].support() == "6 VUs, patients not stored"
    bad = {**_stored(y, groups, [pred], 4), "utility/holdout_labels": y + 3}
    assert class_recall(bad, "tstr")[1].support() == "holdout not stored"


def test_a_class_the_real_classifier_misses_too_is_marked_as_such():
    """TSTR at or below chance on a class whose TRTR is too: the holdout cannot show the generator's share."""
    from synthvu_core.evaluation.commands import recall_lines
    from synthvu_core.evaluation.utility import REAL_ALSO_AT_CHANCE, recall_table

    groups = np.concatenate([np.arange(4), np.arange(4), np.arange(4)])
    y = np.repeat([0, 1, 2], 4)
    tstr = np.array([0] * 4 + [0] * 4 + [2] * 4)  # class 1 never recognised
    trtr = {0: np.array([0] * 4 + [0] * 4 + [2] * 4), 1: np.array([0] * 4 + [1] * 4 + [2] * 4)}
    for real_misses, pred in ((True, trtr[0]), (False, trtr[1])):
        arrays = _stored(y, groups, [tstr], 3)
        arrays["utility/trtr/recall"] = classification_result(y, pred, 3).recall
        arrays["utility/trtr/holdout_predictions"] = pred[None]
        rows, _ = recall_table(arrays)
        assert [r.real_fails_too(1 / 3) for r in rows] == [False, real_misses, False]
        lines = recall_lines(arrays, ["a", "b", "c"], 1 / 3)
        row_b = next(line for line in lines if line.startswith("  b "))
        assert "at or below chance" in row_b and (REAL_ALSO_AT_CHANCE in row_b) == real_misses
        assert not any(REAL_ALSO_AT_CHANCE in line for line in lines if not line.startswith("  b "))


def test_patient_bootstrap_is_the_mean_of_the_per_class_replicates():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(8), 3)
    y = rng.integers(0, 3, 24)
    preds = np.stack([np.where(rng.random(24) < 0.7, y, (y + 1) % 3) for _ in range(2)])
    per_class = patient_bootstrap(y, {"a": preds}, groups, 3, n_boot=300, per_class=True)["a"]
    total = patient_bootstrap(y, {"a": preds}, groups, 3, n_boot=300)["a"]
    assert per_class.shape == (300, 3)
    np.testing.assert_allclose(total, np.nanmean(per_class, axis=1))
    # by hand, replicate 0: the patients it drew and the seed it picked
    r = np.random.default_rng(0)
    draw = r.integers(0, 8, 8)
    for _ in range(299):
        r.integers(0, 8, 8)
    s = r.integers(0, 2, 300)[0]
    rows = np.concatenate([np.flatnonzero(groups == p) for p in draw])
    hand = [np.mean(preds[s][rows][y[rows] == c] == c) if (y[rows] == c).any() else np.nan for c in range(3)]
    again = patient_bootstrap(y, {"a": preds}, groups, 3, n_boot=300, seed=0, per_class=True)["a"]
    np.testing.assert_allclose(again[0], hand)
