"""The typed layer reads what the files hold: ReportReading against the raw report.json of shipped generators, Card
against card.json, and the one formatter of epsilon."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthvu_core.names import CARD_FILE, REPORT_DIR, REPORT_FILE
from synthvu_core.records import (
    NO_DP_TEXT,
    Card,
    Report,
    attack_key,
    card_epsilon,
    epochs_text,
    epsilon_text,
    epsilon_value,
    interval_text,
    number_text,
    utility_key,
)

MODELS = Path(__file__).resolve().parents[1] / "models"


def raw_report(name: str) -> dict:
    path = MODELS / name / REPORT_DIR / REPORT_FILE
    if not path.is_file():
        pytest.skip(f"{name} has no shipped report")
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", ["acgan-phantom", "acgan-phantom-leaky", "acgan-dp-e1", "acgan-dp-scratch-e10"])
def test_report_reading_gives_the_stored_scalars_and_the_counted_worst_attack(name):
    doc = raw_report(name)
    r = Report(doc["scalars"], doc["definitions"], doc["meta"])
    s = doc["scalars"]
    assert r.utility("tstr") == s["utility.tstr.balanced_accuracy"] and r.ratio == s["utility.tstr_over_trtr"]
    assert r.interval(utility_key("tstr")) == (s["utility.tstr.balanced_accuracy_ci_low"],
                                               s["utility.tstr.balanced_accuracy_ci_high"])
    counted = doc["meta"]["verdicts"]["released_samples"].get("counted") or []
    if not counted:
        assert r.worst_attack() is None
        return
    attack, space = r.worst_attack()
    assert f"{attack}/{space}" in counted
    assert r.attack_auc(attack, space) == r.worst_auc == s["privacy.worst.auc"]  # the pick the report itself made
    assert all(s[attack_key(*n.split("/"))] <= r.worst_auc for n in counted)


def test_card_reads_card_json():
    raw = json.loads((MODELS / "acgan-dp-e1" / CARD_FILE).read_text())
    card = Card(raw)
    assert (card.name, card.architecture, card.scheme) == (raw["name"], raw["architecture"]["name"], raw["scheme"])
    assert card.shape_text == "x".join(map(str, raw["shape"])) and card.epsilon == raw["dp"]["epsilon"]
    assert Card({}).epsilon is None and Card({}).dp is None and Card({}).classes == []


def test_one_formatter_of_numbers_and_epsilon():
    assert epsilon_text(None) == NO_DP_TEXT == "no DP (ε = ∞)"
    assert epsilon_text(0.987) == "ε = 0.99" and epsilon_text(8, 1, none="no DP") == "ε = 8.0"
    assert epsilon_value(None) == "∞" and epsilon_value(None, none="-") == "-" and epsilon_value(3) == "3.00"
    assert number_text(None) == "—" and number_text(0.61234) == "0.612"
    assert interval_text(0.55, 0.67) == "[0.550, 0.670]" and interval_text(None, 0.6) == ""
    assert card_epsilon({"dp": None}, Report({"dp.epsilon": 2.0}, {}, {})) == 2.0


def test_patient_means_are_the_per_patient_means_of_the_stored_scores():
    import numpy as np
    import pandas as pd

    from synthvu_core.evaluation.report import load_report

    r = load_report(MODELS / "acgan-phantom-leaky", check_weights=False)  # the scores as stored, whatever their version
    a = r.arrays
    frame = pd.DataFrame({"p": a["candidates/patient"].astype(str), "m": a["candidates/is_member"].astype(bool),
                          "s": a["privacy/pairwise/pixel/scores"].astype(float)})
    means = r.patient_means("pairwise", "pixel")
    for want in (True, False):
        expected = frame[frame.m == want].groupby("p")["s"].mean()
        ids, got = means[want]
        assert ids == sorted(expected.index) and np.allclose(got, expected.loc[ids].to_numpy())
    assert r.patient_means("pairwise", "no-such-space") is None


def test_epochs_text_drops_a_zero_fraction_only():
    assert epochs_text(300.0) == "300" and epochs_text(25) == "25"
    assert epochs_text(2.5) == "2.5" and epochs_text(1.0 / 3) == "0.3" and epochs_text(None) == "—"
    assert epochs_text(299.96) == "300" and epochs_text(1 / 1840) == "0.0005" and epochs_text(0) == "0"
