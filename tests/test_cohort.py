"""The whole-cohort nearest-patient test (synthvu_core.evaluation.cohort): its counts, its randomisation p-value,
its rank-sum AUC, and how verdict (a) reads it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from synthvu_core.evaluation import verdicts as vd
from synthvu_core.evaluation.cohort import CohortTest, cohort_test, nearest_patient_counts, randomisation_test


def _real(n_patients: int = 6, per_patient: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_patients * per_patient, 1, 4, 4), dtype=np.uint8)
    return images, np.array([f"p{i // per_patient}" for i in range(len(images))])


def test_counts_name_the_patient_of_each_samples_nearest_vu():
    images, owner = _real()
    real = images.astype(np.float32) / 127.5 - 1.0
    samples = real[[0, 1, 5, 5, 11]] + 0.01  # near copies of p0, p0, p2, p2, p5
    patients, counts, vus = nearest_patient_counts(samples, real, owner, chunk=2)
    assert patients == [f"p{i}" for i in range(6)]
    assert counts.tolist() == [2, 0, 2, 0, 0, 1]
    assert vus.tolist() == [2] * 6


def test_samples_drawn_to_the_train_patients_are_detected_and_others_are_not():
    is_train = np.array([True] * 15 + [False] * 10)
    vus = np.full(25, 4.0)
    drawn = np.where(is_train, 120.0, 20.0)  # samples crowd round the train patients
    res = randomisation_test(drawn, vus, is_train)
    assert res.share_train == pytest.approx(1800 / 2000)
    assert res.expected_share == pytest.approx(0.6, abs=0.01)
    assert res.p_value < 0.001 and res.patient_auc == 1.0 and res.patient_auc_p_value < 0.001
    assert (res.n_train_patients, res.n_other_patients, res.n_samples) == (15, 10, 2000)
    even = randomisation_test(np.full(25, 80.0), vus, is_train)  # every patient attracts as many
    assert even.p_value > 0.5 and even.patient_auc == 0.5


def test_rank_sum_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(3)
    counts, vus = rng.integers(0, 6, 25).astype(float), rng.integers(2, 5, 25).astype(float)
    is_train = rng.permutation(np.array([True] * 15 + [False] * 10))
    res = randomisation_test(counts, vus, is_train)
    assert res.patient_auc == pytest.approx(roc_auc_score(is_train, counts / vus), abs=5e-4)


def test_p_values_are_uniform_when_the_samples_ignore_the_split():
    rng = np.random.default_rng(11)
    vus = rng.integers(2, 6, 25).astype(float)
    labels = np.array([True] * 15 + [False] * 10)
    p = [randomisation_test(rng.poisson(40.0, 25).astype(float), vus, rng.permutation(labels), seed=i, n_perm=400
                            ).p_value for i in range(300)]
    assert 0.02 < np.mean(np.array(p) < 0.05) < 0.09  # about 5 % false alarms (binomial 300 x 0.05: sd 1.3 %)
    assert 0.4 < np.median(p) < 0.6


def test_cohort_test_reads_the_training_patients_from_the_split_column():
    images, owner = _real()
    split = np.where(np.isin(owner, ["p0", "p1", "p2"]), "train", np.where(owner == "p3", "holdout", "reference"))
    samples = np.repeat(images[[0, 2, 4]], 20, axis=0)  # exact copies of the three training patients' VUs
    t = cohort_test(samples, images, owner, split, seed=0)
    assert (t.share_train, t.n_train_patients, t.n_other_patients, t.n_samples) == (1.0, 3, 3, 60)
    assert t.expected_share == pytest.approx(0.5, abs=0.02) and t.patient_auc == 1.0
    assert CohortTest.from_scalars(t.scalars()) == t and CohortTest.from_scalars({}) is None


def _verdict_inputs(cohort=None):
    a = {vd.PRIMARY: {"auc": 0.62, "auc_ci": [0.28, 0.96], "tpr_at_1pct_fpr": None, "p": 0.3, "power": "no_power",
                      "control_auc": 0.66, "control_ci": [0.40, 0.92], "patients_needed": 57}}
    inputs = {"alpha": 0.05, "primary": vd.PRIMARY, "counted": [], "attacks": a, "power_checked": True,
              "adjusted_p": {}, "below_p": {}, "independent": {"passes": True, "rows": {}}, "patients": [5, 5]}
    if cohort is not None:
        inputs["cohort"] = cohort
    return inputs


@pytest.mark.parametrize("p,auc,level", [(0.006, 0.80, "leak"), (0.009, 0.64, "caution"), (0.26, 0.57, "inconclusive"),
                                         (0.03, 0.7, "caution")])
def test_a_significant_whole_cohort_test_is_read_without_power_and_always_named(p, auc, level):
    cohort = {"p": p, "auc": auc, "auc_p": p, "share": 0.84, "expected": 0.6, "patients": [15, 10]}
    v = vd.read_released_samples(_verdict_inputs(cohort))
    assert v["level"] == level
    assert "Whole-cohort test: 84% of the samples are nearest a VU of one of the 15 training patients (expected 60% " \
           "among all 25 patients)" in v["text"] and "Primary attack" in v["text"]
    assert v["cohort"]["p_holm"] == pytest.approx(p)  # the only test in the family: Holm leaves it alone
    assert vd.read_released_samples(_verdict_inputs())["level"] == "inconclusive"  # older reports: as before
    assert "Whole-cohort" not in vd.read_released_samples(_verdict_inputs())["text"]


def test_the_whole_cohort_test_joins_the_holm_family():
    cohort = {"p": 0.03, "auc": 0.7, "auc_p": 0.03, "share": 0.7, "expected": 0.6, "patients": [15, 10]}
    inputs = _verdict_inputs(cohort)
    inputs["counted"] = [vd.PRIMARY]
    inputs["attacks"][vd.PRIMARY].update(power="power", p=0.02)
    v = vd.read_released_samples(inputs)  # Holm over 2: 0.02 x 2 = 0.04, then max(0.04, 0.03) = 0.04
    assert v["level"] == "caution" and v["cohort"]["p_holm"] == pytest.approx(0.04)
    assert "Holm over 2 tests" in v["text"]


def _saved_report(folder, cohort_p=0.006):
    from synthvu_core.evaluation.report import Report, definition, save_report

    t = CohortTest(0.84, 0.6, 0.7, cohort_p, 0.8, cohort_p, 15, 10, 2000)
    inputs = _verdict_inputs(vd.cohort_inputs(t))
    scalars = {"privacy.pairwise.pixel.auc": 0.62, **t.scalars()}
    meta = {"verdicts": {"released_samples": {**vd.read_released_samples(inputs), "inputs": inputs}}}
    save_report(Report(scalars, {k: definition(k) for k in scalars}, meta, _arrays={}), folder)
    return folder


def test_a_report_whose_verdict_reads_another_cohort_test_than_its_scalars_is_refused(tmp_path):
    import json

    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation.integrity import sign
    from synthvu_core.evaluation.report import load_report

    folder = _saved_report(tmp_path / "report")
    assert load_report(folder).meta["verdicts"]["released_samples"]["level"] == "leak"
    doc = json.loads((folder / "report.json").read_text())
    doc["meta"]["verdicts"]["released_samples"]["inputs"]["cohort"]["p"] = 0.9  # read as not significant
    doc["meta"]["verdicts"]["released_samples"]["level"] = "inconclusive"
    (folder / "report.json").write_text(json.dumps(sign(doc)))
    with pytest.raises(ReportError, match="whole-cohort test"):
        load_report(folder)
    del doc["meta"]["verdicts"]["released_samples"]["inputs"]["cohort"]  # or not read at all
    (folder / "report.json").write_text(json.dumps(sign(doc)))
    with pytest.raises(ReportError, match="lacks the whole-cohort test"):
        load_report(folder)


def test_saving_a_vu_report_keeps_the_reports_beside_it(tmp_path):
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "clinical.json").write_text("{}")
    _saved_report(folder)
    assert (folder / "clinical.json").read_text() == "{}" and (folder / "report.json").is_file()


def test_large_cohorts_take_the_pruned_search_with_the_same_counts(monkeypatch):
    from synthvu_core.evaluation import cohort, pruned

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(40, 2, 8, 8), dtype=np.uint8)
    owner = np.array([f"p{i // 4}" for i in range(40)])
    samples = np.clip(images[rng.integers(0, 40, 120)] + rng.normal(0, 40, (120, 2, 8, 8)), 0, 255).astype(np.uint8)
    search, calls = pruned.nearest_in, []
    monkeypatch.setattr(pruned, "nearest_in", lambda *a, **k: calls.append(1) or search(*a, dims=8))
    brute = nearest_patient_counts(samples, images, owner)
    assert not calls  # below the work threshold: the brute force
    monkeypatch.setattr(cohort, "PRUNED_WORK", 1)
    monkeypatch.setattr(cohort, "PRUNED_MIN_DIM", 8)
    fast = nearest_patient_counts(samples, images, owner)
    assert calls == [1]
    assert fast[0] == brute[0]
    np.testing.assert_array_equal(fast[1], brute[1])


def test_a_stratified_split_is_relabelled_within_its_strata():
    # stratum "b" (5 patients, 3 of them training) draws every sample; stratum "a" (20, 12 training) none. Within
    # strata every relabelling keeps 3 training patients in "b", so the share can never move; uniform
    # relabellings move it.
    counts = np.r_[np.full(5, 40.0), np.zeros(20)]
    vus = np.full(25, 2.0)
    is_train = np.r_[[True, True, True, False, False], np.arange(20) < 12]
    strata = np.array(["b"] * 5 + ["a"] * 20)
    within = randomisation_test(counts, vus, is_train, n_perm=500, strata=strata)
    assert within.share_train == pytest.approx(0.6)
    assert within.expected_share == pytest.approx(0.6) and within.share_null_95 == pytest.approx(0.6)
    assert within.p_value == 1.0
    uniform = randomisation_test(counts, vus, is_train, n_perm=500)
    assert uniform.share_null_95 > 0.75 and uniform.p_value < 0.9


def test_cohort_test_passes_the_strata_by_patient():
    images, patients = _real(n_patients=4, per_patient=2)
    split = np.where(np.isin(patients, ["p0", "p2"]), "train", "reference")
    strata = {"p0": "x", "p1": "x", "p2": "y", "p3": "y"}
    t = cohort_test(images[[0, 1, 4]], images, patients, split, strata=strata)
    assert t.n_train_patients == 2 and t.share_train == pytest.approx(1.0)
    # one training patient per stratum: the sample of p0 (stratum x) and of p2 (stratum y) each find a train patient
    # in half the relabellings of their stratum, so the share 1.0 comes in a quarter of them
    assert t.p_value == pytest.approx(0.25, abs=0.02)
