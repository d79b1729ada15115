"""The whole-cohort nearest-patient experiment (benchmarks/experiments/nearest_patient.py): its counts, its
randomisation p-value and its rank-sum AUC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from benchmarks.experiments.nearest_patient import nearest_patient_counts, randomisation_test
from synthvu_core.data.dataset import VUDataset


def _dataset(n_patients: int = 6, per_patient: int = 2) -> VUDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_patients * per_patient, 1, 4, 4), dtype=np.uint8)
    units = pd.DataFrame({"patient_id": [f"p{i // per_patient}" for i in range(len(images))]})
    return VUDataset(images, units, {})


def test_counts_name_the_patient_of_each_samples_nearest_vu():
    ds = _dataset()
    real = ds.images.astype(np.float32) / 127.5 - 1.0
    samples = real[[0, 1, 5, 5, 11]] + 0.01  # near copies of p0, p0, p2, p2, p5
    patients, counts, vus = nearest_patient_counts(samples, ds, chunk=2)
    assert patients == [f"p{i}" for i in range(6)]
    assert counts.tolist() == [2, 0, 2, 0, 0, 1]
    assert vus.tolist() == [2] * 6


def test_samples_drawn_to_the_train_patients_are_detected_and_others_are_not():
    is_train = np.array([True] * 15 + [False] * 10)
    vus = np.full(25, 4.0)
    drawn = np.where(is_train, 120.0, 20.0)  # samples crowd round the train patients
    res = randomisation_test(drawn, vus, is_train)
    assert res["share_train"] == pytest.approx(1800 / 2000)
    assert res["expected"] == pytest.approx(0.6, abs=0.01)
    assert res["p"] < 0.001 and res["patient_auc"] == 1.0
    even = randomisation_test(np.full(25, 80.0), vus, is_train)  # every patient attracts as many
    assert even["p"] > 0.5 and even["patient_auc"] == 0.5


def test_rank_sum_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(3)
    counts, vus = rng.integers(0, 6, 25).astype(float), rng.integers(2, 5, 25).astype(float)
    is_train = rng.permutation(np.array([True] * 15 + [False] * 10))
    res = randomisation_test(counts, vus, is_train)
    assert res["patient_auc"] == pytest.approx(roc_auc_score(is_train, counts / vus), abs=5e-4)
