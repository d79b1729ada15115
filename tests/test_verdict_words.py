"""Verdict (b) says what a released discriminator means for how it was trained: a non-private one is a
leak; one trained with DP-SGD is covered by the (ε, δ) bound composed over every run on its patients."""

from __future__ import annotations

from synthvu_core.evaluation.privacy import AttackResult
from synthvu_core.evaluation.verdicts import private_discriminator_epsilon as _private_discriminator
from synthvu_core.evaluation.verdicts import released_discriminator_verdict

LEAK_SENTENCE = "a released non-private discriminator is itself a leak"
RESULT = {"discriminator/pixel": AttackResult({"auc": 0.52, "auc_ci_low": 0.48, "auc_ci_high": 0.56}, {})}


def test_non_private_discriminator_gets_the_leak_sentence() -> None:
    assert LEAK_SENTENCE in released_discriminator_verdict(RESULT, None)["text"]
    assert LEAK_SENTENCE in released_discriminator_verdict({}, None)["text"]


def test_dp_trained_discriminator_is_covered_by_the_bound() -> None:
    text = released_discriminator_verdict(RESULT, None, dp_epsilon=2.99)["text"]
    assert LEAK_SENTENCE not in text and "trained with differential privacy" in text
    assert "covered by the bound composed over every run on these patients (ε = 2.99)" in text
    assert "AUC 0.520 [0.480, 0.560]" in text


def test_which_discriminators_count_as_private() -> None:
    assert _private_discriminator({"dp_epsilon": 3.0, "dp_private_module": "discriminator"}) == 3.0
    assert _private_discriminator({"dp_epsilon": 3.0}) == 3.0  # cards before the field privatised D
    assert _private_discriminator({"dp_epsilon": 3.0, "dp_private_module": "generator"}) is None
    assert _private_discriminator({"dp_epsilon": None}) is None


def _attack(auc: float, p: float) -> dict[str, AttackResult]:
    lo, hi = auc - 0.4, min(auc + 0.4, 1.0)
    return {"discriminator/pixel": AttackResult({"auc": auc, "auc_ci_low": lo, "auc_ci_high": hi}, {})}


class _Test:
    def __init__(self, p: float) -> None:
        self.p = {"discriminator/pixel": p}


def test_a_small_design_makes_a_quiet_discriminator_inconclusive_not_ok() -> None:
    quiet = released_discriminator_verdict(_attack(0.455, 0.63), _Test(0.63), patients=(5, 5))
    assert quiet["level"] == "inconclusive" and quiet["patients"] == [5, 5]
    assert "5 member and 5 non-member patients (at least 10 per side needed)" in quiet["text"]
    assert "AUC 0.455 [0.055, 0.855]" in quiet["text"]
    # a DP-trained D keeps its bound sentence; the empirical verdict stays inconclusive
    dp = released_discriminator_verdict(_attack(0.455, 0.63), _Test(0.63), dp_epsilon=10.0, patients=(5, 12))
    assert dp["level"] == "inconclusive" and "covered by the bound composed" in dp["text"]
    # enough patients: ok; no permutation test on a small design: inconclusive
    assert released_discriminator_verdict(_attack(0.455, 0.63), _Test(0.63), patients=(10, 10))["level"] == "ok"
    assert released_discriminator_verdict(_attack(0.455, 0.63), None, patients=(3, 3))["level"] == "inconclusive"
    no_test = released_discriminator_verdict(_attack(0.455, 0.63), None, patients=(20, 20))
    assert no_test["level"] == "inconclusive" and "No permutation test could be run" in no_test["text"]
    assert "p not computed" in no_test["text"]
    # a significant attack is a leak or caution however few the patients
    assert released_discriminator_verdict(_attack(1.0, 0.005), _Test(0.005), patients=(5, 5))["level"] == "leak"
    assert released_discriminator_verdict(_attack(0.7, 0.01), _Test(0.01), patients=(3, 3))["level"] == "caution"


def test_older_reports_keep_their_own_rule_when_rederived() -> None:
    from synthvu_core.evaluation.integrity import rederive_levels

    scalars = {"privacy.discriminator.pixel.auc": 0.455, "privacy.discriminator.pixel.auc_ci_low": 0.05,
               "privacy.discriminator.pixel.auc_ci_high": 0.89, "privacy.discriminator.pixel.p_value": 0.63}
    old = {"verdicts": {"released_discriminator": {"level": "ok"}}, "n_member_patients": 5}
    assert rederive_levels(scalars, old) == {"released_discriminator": "ok"}
    new = {"verdicts": {"released_discriminator": {"level": "ok", "patients": [5, 5]}}}
    assert rederive_levels(scalars, new) == {"released_discriminator": "inconclusive"}


def test_an_edited_patient_count_is_refused() -> None:
    import pytest

    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation.integrity import check_verdicts

    scalars = {"privacy.discriminator.pixel.auc": 0.455, "privacy.discriminator.pixel.auc_ci_low": 0.05,
               "privacy.discriminator.pixel.auc_ci_high": 0.89, "privacy.discriminator.pixel.p_value": 0.63}
    meta = {"verdicts": {"released_discriminator": {"level": "inconclusive", "patients": [5, 5]}},
            "n_member_patients": 5, "n_nonmember_patients": 5}
    assert check_verdicts(scalars, meta, "r.json")
    edited = {**meta, "verdicts": {"released_discriminator": {"level": "ok", "patients": [10, 10]}}}
    with pytest.raises(ReportError, match="read on \\[10, 10\\] patients per side but the design holds \\[5, 5\\]"):
        check_verdicts(scalars, edited, "r.json")


def test_the_controls_stage_reads_verdict_b_on_the_design_patients() -> None:
    from types import SimpleNamespace

    import numpy as np

    from synthvu_core.evaluation.design import MembershipDesign
    from synthvu_core.evaluation.inference import permutation_test
    from synthvu_core.evaluation.stages import stage_controls

    member, patient = np.repeat([True, False], 20), np.repeat(np.arange(10), 4).astype(str)
    rng = np.random.default_rng(0)
    scores = {n: rng.normal(size=40) for n in ("pairwise/pixel", "discriminator/pixel")}
    results = {n: AttackResult({"auc": 0.5, "auc_ci_low": 0.2, "auc_ci_high": 0.8}, {"scores": s})
               for n, s in scores.items()}
    design = MembershipDesign(np.arange(40), member, patient, np.arange(0), np.arange(0), 4, {})
    job = SimpleNamespace(controls=False, meta={},
                          state={"results": results, "test": permutation_test(scores, member, patient, n_perm=200)})
    b = stage_controls(SimpleNamespace(design=design), job).meta["verdicts"]["released_discriminator"]
    assert b["level"] == "inconclusive" and b["patients"] == [5, 5]
