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
