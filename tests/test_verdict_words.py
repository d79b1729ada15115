"""Verdict (b) says what a released discriminator means for how it was trained: a non-private one is a
leak; one trained with DP-SGD is covered by the generator's (ε, δ) bound."""

from __future__ import annotations

from synthvu_core.evaluation.privacy import AttackResult
from synthvu_core.evaluation.stages import _private_discriminator
from synthvu_core.evaluation.verdicts import released_discriminator_verdict

LEAK_SENTENCE = "a released non-private discriminator is itself a leak"
RESULT = {"discriminator/pixel": AttackResult({"auc": 0.52, "auc_ci_low": 0.48, "auc_ci_high": 0.56}, {})}


def test_non_private_discriminator_gets_the_leak_sentence() -> None:
    assert LEAK_SENTENCE in released_discriminator_verdict(RESULT, None)["text"]
    assert LEAK_SENTENCE in released_discriminator_verdict({}, None)["text"]


def test_dp_trained_discriminator_is_covered_by_the_bound() -> None:
    text = released_discriminator_verdict(RESULT, None, dp_epsilon=2.99)["text"]
    assert LEAK_SENTENCE not in text and "trained with differential privacy (ε = 2.99)" in text
    assert "AUC 0.520 [0.480, 0.560]" in text


def test_which_discriminators_count_as_private() -> None:
    assert _private_discriminator({"dp_epsilon": 3.0, "dp_private_module": "discriminator"}) == 3.0
    assert _private_discriminator({"dp_epsilon": 3.0}) == 3.0  # cards before the field privatised D
    assert _private_discriminator({"dp_epsilon": 3.0, "dp_private_module": "generator"}) is None
    assert _private_discriminator({"dp_epsilon": None}) is None
