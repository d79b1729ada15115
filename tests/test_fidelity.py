import numpy as np
import pytest

from synthvu_core.evaluation.fidelity import fidelity_scores, frechet_distance, prdc


def test_frechet_distance_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(200, 4))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_a_shifted_set_is_squared_shift():
    x = np.random.default_rng(1).normal(size=(300, 3))
    shift = np.array([1.0, -2.0, 0.5])
    assert frechet_distance(x, x + shift) == pytest.approx((shift**2).sum(), rel=1e-8)


def test_frechet_distance_of_scaled_gaussians_matches_closed_form():
    # real ~ cov I, synthetic = 2 * real (cov 4I): Tr(I + 4I - 2*2I) = D
    x = np.random.default_rng(2).normal(size=(500, 3))
    x = (x - x.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T  # whiten exactly
    assert frechet_distance(x, 2 * x) == pytest.approx(3.0, rel=1e-6)


def test_frechet_distance_needs_two_points():
    assert frechet_distance(np.zeros((1, 2)), np.zeros((5, 2))) is None


def test_prdc_identical_sets():
    x = np.random.default_rng(0).normal(size=(100, 5))
    p, why = prdc(x, x, k=5)
    assert why is None
    assert (p.precision, p.recall, p.coverage) == (1.0, 1.0, 1.0)
    assert p.density == pytest.approx(1.0)


def test_prdc_far_apart_sets_are_zero():
    x = np.random.default_rng(0).normal(size=(50, 2))
    p, _ = prdc(x, x + 100.0, k=5)
    assert (p.precision, p.recall, p.density, p.coverage) == (0.0, 0.0, 0.0, 0.0)


def test_prdc_mode_collapse_has_precision_but_low_recall():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 2))
    fake = rng.normal(0, 0.05, size=(300, 2))  # all synthetic in the middle of the real cloud
    p, _ = prdc(real, fake, k=5)
    assert p.precision > 0.9 and p.recall < 0.2 and p.coverage < 0.3


def test_fidelity_scores_give_reasons_for_small_sets():
    out, reasons = fidelity_scores(np.zeros((3, 2)), np.ones((3, 2)), k=5)
    assert out["precision"] is None and "k=5" in reasons["precision"]
    assert out["frechet_distance"] is not None


def test_prdc_of_an_empty_class_says_why_instead_of_failing():
    """A class with no holdout VU (a small real cohort) gives no PRDC and a reason, not an exception."""
    from synthvu_core.evaluation.fidelity import fidelity_scores

    out, why = fidelity_scores(np.zeros((0, 8)), np.random.default_rng(0).normal(size=(20, 8)), k=5)
    assert out["precision"] is None and "have 0, 0" in why["precision"]
    assert out["frechet_distance"] is None and "frechet_distance" in why
