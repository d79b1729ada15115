"""Verdict (a) read from stored scalars: power fixes the family, two-sided reading, "inconclusive", calibration."""

import numpy as np
import pytest

from synthvu_core.evaluation import verdicts as vd
from synthvu_core.evaluation.calibration import Scenario, false_alarm_rates


def _attack(auc, lo, hi, p, power="power", control=(0.7, 0.62, 0.78), needed=12):
    return {
        "auc": auc, "auc_ci": [lo, hi], "tpr_at_1pct_fpr": None, "p": p, "power": power,
        "control_auc": control[0], "control_ci": list(control[1:]), "patients_needed": needed,
    }


def _inputs(attacks, counted=None, patients=(43, 43), adjusted=None, below=None, independent=None):
    counted = [n for n, a in attacks.items() if a["power"] == "power"] if counted is None else counted
    others = [n for n in counted if n != vd.PRIMARY]
    return {
        "alpha": 0.05, "primary": vd.PRIMARY, "counted": counted, "attacks": attacks, "power_checked": True,
        "adjusted_p": adjusted if adjusted is not None else {n: attacks[n]["p"] for n in others},
        "below_p": below if below is not None else {n: 0.9 for n in counted},
        "independent": independent or {"passes": True, "rows": {}},
        "patients": list(patients),
    }


def test_ok_needs_power_and_enough_patients_and_names_the_primary():
    v = vd.read_released_samples(_inputs({vd.PRIMARY: _attack(0.51, 0.45, 0.57, 0.4)}))
    assert v["level"] == "ok" and "0.510 [0.450, 0.570]" in v["text"] and "Primary attack" in v["text"]


def test_no_counted_attack_is_inconclusive_never_ok_and_shows_the_unpowered_primary():
    a = {vd.PRIMARY: _attack(0.648, 0.34, 0.96, 0.2, power="no_power", control=(0.66, 0.40, 0.92), needed=57)}
    v = vd.read_released_samples(_inputs(a, patients=(8, 8)))
    assert v["level"] == "inconclusive" and v["patients_needed"] == 57
    assert "0.648 [0.340, 0.960]" in v["text"] and "57 patients per side" in v["text"] and "not counted" in v["text"]
    assert "5% control AUC 0.660 [0.400, 0.920]" in v["text"]


@pytest.mark.parametrize("patients,needed,level", [((8, 8), 3, "inconclusive"), ((20, 30), 25, "inconclusive"),
                                                  ((30, 30), 25, "ok"), ((43, 43), None, "inconclusive")])
def test_fewer_patients_than_the_design_needs_is_inconclusive(patients, needed, level):
    v = vd.read_released_samples(_inputs({vd.PRIMARY: _attack(0.5, 0.4, 0.6, 0.5, needed=needed)}, patients=patients))
    assert v["level"] == level
    if patients == (8, 8):  # the floor: never "ok" on 8 + 8 patients, whatever the power estimate says
        assert v["patients_needed"] == vd.MIN_PATIENTS_PER_SIDE


def test_without_the_graded_controls_an_inconclusive_verdict_does_not_speak_of_them_as_run():
    inputs = _inputs({vd.PRIMARY: _attack(0.593, 0.10, 1.0, 0.33, needed=None)}, patients=(5, 5))
    inputs["power_checked"] = False
    v = vd.read_released_samples(inputs)
    assert v["level"] == "inconclusive" and "rises above 0.5 on the 5% control" not in v["text"]
    assert "at least 10 per side; the graded controls (evaluate --controls) would tell how many" in v["text"]
    inputs["power_checked"] = True
    assert "rises above 0.5 on the 5% control" in vd.read_released_samples(inputs)["text"]
    inputs = _inputs({vd.PRIMARY: _attack(0.51, 0.45, 0.57, 0.4, needed=None)}, patients=(43, 43))
    inputs["power_checked"] = False  # enough patients, no controls: the need is unknown, not "fewer than it needs"
    v = vd.read_released_samples(inputs)
    assert v["level"] == "inconclusive" and "fewer than it needs" not in v["text"]
    assert "with 43 member and 43 non-member patients, how many patients per side the design needs is not known" \
        in v["text"]


def test_an_auc_significantly_below_chance_or_an_independent_control_off_chance_is_a_design_imbalance():
    a = {vd.PRIMARY: _attack(0.438, 0.391, 0.486, 0.99)}
    v = vd.read_released_samples(_inputs(a, below={vd.PRIMARY: 0.002}))
    assert v["level"] == "imbalance" and "0.438 [0.391, 0.486]" in v["text"] and "below 0.5" in v["text"]
    off = {"passes": False, "rows": {vd.PRIMARY: {"auc": 0.58, "ci_family": [0.52, 0.64], "covers": False}}}
    v = vd.read_released_samples(_inputs({vd.PRIMARY: _attack(0.5, 0.45, 0.55, 0.5)}, independent=off))
    assert v["level"] == "imbalance" and "0.580 [0.520, 0.640]" in v["text"]


def test_a_significant_strong_attack_is_a_leak_and_a_weak_one_caution():
    strong = {vd.PRIMARY: _attack(0.9, 0.85, 0.95, 0.0002)}
    assert vd.read_released_samples(_inputs(strong, patients=(6, 6)))["level"] == "leak"
    weak = {vd.PRIMARY: _attack(0.56, 0.52, 0.6, 0.001)}
    assert vd.read_released_samples(_inputs(weak))["level"] == "caution"


def test_an_attack_without_power_never_counts_even_when_its_own_result_is_significant():
    a = {vd.PRIMARY: _attack(0.5, 0.45, 0.55, 0.5), "domias/umap": _attack(0.6, 0.53, 0.67, 0.001, power="detects")}
    v = vd.read_released_samples(_inputs(a))
    assert v["counted"] == [vd.PRIMARY] and v["level"] == "ok"


def test_patients_needed_follows_the_clustered_variance():
    # n = 20 * ((1.960 + 0.842) * 0.05 / 0.1)^2 = 39.3 -> 40
    assert vd.patients_needed(0.6, 0.05, 20) == 40
    assert vd.patients_needed(0.5, 0.05, 20) is None and vd.patients_needed(None, 0.05, 20) is None


def test_power_is_detection_of_the_five_percent_control_not_any_rise():
    from synthvu_core.evaluation.verdicts import attack_metrics, power_curves
    from synthvu_core.names import graded_control

    patient = np.repeat([f"p{i}" for i in range(16)], 23)
    member = np.repeat(np.arange(16) < 8, 23)
    rng = np.random.default_rng(0)
    own = np.repeat(np.tile(rng.normal(0, 0.7, 8), 2), 23) + rng.normal(size=len(member))  # own AUC near 0.5
    u = rng.random(len(member))
    curves = {}
    for name, shift, share in (("pairwise/pixel", 0.4, 0.15), ("distribution/pixel", 6.0, 0.6)):
        mix = attack_metrics(own + shift * (member & (u < share)), member, patient, n_boot=20)
        base = {name: attack_metrics(own, member, patient, n_boot=20)}
        curves[name] = power_curves({graded_control(0.05): {name: mix}}, base, member, patient)[name]
    weak, strong = curves["pairwise/pixel"], curves["distribution/pixel"]
    assert weak["rise_low"][0] > 0 and weak["ci_low"][0] <= 0.5  # a significant rise, yet no detection
    assert weak["has_power"] is False and not weak["counts"]
    assert strong["ci_low"][0] > 0.5 and strong["has_power"] and strong["counts"] and strong["status"] == "power"
    assert strong["patients_needed"] is not None and strong["se_power"] > 0


@pytest.mark.parametrize("k", [1, 7])
def test_verdict_a_keeps_its_false_alarm_rate_under_no_leak(k):
    # 120 null cohorts of 20 + 20 patients (8 VUs each; copies planted for half the member VUs): the family
    # fixed by power alone, the primary raw, the worst other max-statistic adjusted and the whole-cohort test, Holm.
    # Nominal 5 %; the bound is 5 % + 2 Monte Carlo se.
    r = false_alarm_rates(Scenario(20, 8, k, copied=0.5), 120, n_perm=300, seed=k)
    assert r["family"] == pytest.approx(k, abs=0.1)  # the k attacks that see the copies have power
    assert r["false_alarm"] <= 0.05 + 2 * r["mc_se"]


def test_the_non_member_side_takes_every_holdout_patient_and_a_cap_is_stated():
    from evaluation_fixtures import structured_dataset

    from synthvu_core.evaluation.design import membership_design

    ds = structured_dataset(60)
    labels = ds.labels("region", ds.classes("region"))
    holdout = {str(p) for p in ds.units["patient_id"].to_numpy()[ds.indices("holdout")]}
    d = membership_design(ds, labels, per_group=4 * 6)
    c = d.counts()
    assert c["n_nonmember_patients"] == len(holdout) > c["n_member_patients"]
    assert "capped at 24 VUs" in d.notes["members"] and "nonmembers" not in d.notes
    capped = membership_design(ds, labels, per_group=4 * 6, nonmember_cap=2 * d.vus_per_patient)
    assert capped.counts()["n_nonmember_patients"] == 2 and "2 of" in capped.notes["nonmembers"]
    assert set(d.patient[~d.is_member]).isdisjoint(d.patient[d.is_member])


def test_realistic_control_copies_other_member_vus_at_the_near_duplicate_scale():
    from evaluation_fixtures import structured_dataset

    from synthvu_core.evaluation.controls import as_float, near_duplicate_scale, realistic_replacements

    ds = structured_dataset(30)
    rows = ds.indices("reference")
    scale = near_duplicate_scale(ds, rows)
    x = as_float(ds.images[rows]).reshape(len(rows), -1)
    pid = ds.units["patient_id"].astype(str).to_numpy()[rows]
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    d[pid[:, None] == pid[None, :]] = np.inf
    assert scale == pytest.approx(float(np.median(d.min(1))), rel=1e-4)
    source = ds.indices("train")[:5]
    pos, imgs = realistic_replacements(ds, 200, source, scale, seed=0)
    assert len(pos) == 10 and set(pos) <= set(range(200))
    gaps = [min(np.linalg.norm(im - as_float(ds.images[r])) for r in source) for im in imgs]
    assert np.median(gaps) == pytest.approx(scale, rel=0.25)  # clipping trims a little


def test_verify_lists_scalars_beyond_tolerance_and_changed_verdicts():
    from types import SimpleNamespace

    from synthvu_core.evaluation.verify import differences, tolerance

    def rep(auc, p, level, ctl):
        c = SimpleNamespace(scalars={"privacy.pairwise.pixel.auc": ctl})
        v = {"released_samples": {"level": level, "counted": ["pairwise/pixel"]}}
        return SimpleNamespace(scalars={"privacy.pairwise.pixel.auc": auc, "privacy.pairwise.pixel.p_value": p},
                               meta={"verdicts": v}, controls={"independent": c})

    saved = rep(0.61, 0.004, "caution", 0.49)
    assert differences(saved, rep(0.61, 0.004, "caution", 0.49)) == []
    diffs = differences(saved, rep(0.61, 0.03, "ok", 0.49 + 1e-6))
    assert any(d.startswith("privacy.pairwise.pixel.p_value") for d in diffs)
    assert any(d.startswith("controls.independent.privacy.pairwise.pixel.auc") for d in diffs)
    assert "verdict released_samples: saved caution, re-run ok" in diffs
    rules = [("*.p_value", 0.05), ("*", 1e-9)]
    assert tolerance("privacy.a.b.p_value", rules) == 0.05 and tolerance("privacy.a.b.auc", rules) == 1e-9
    assert not any("p_value" in d for d in differences(saved, rep(0.61, 0.03, "caution", 0.49), rules))


def test_cache_keys_change_with_the_code_and_the_library_versions(monkeypatch):
    from synthvu_core.evaluation import provenance

    a = provenance.code_digest(("encoder",))
    assert a == provenance.code_digest(("encoder",)) and a != provenance.code_digest(("encoder", "controls"))
    monkeypatch.setattr(provenance, "library_versions", lambda: {"torch": "0.0-other"})
    assert provenance.code_digest(("encoder",)) != a
    from evaluation_fixtures import structured_dataset

    from synthvu_core.evaluation.controls import control_cache_key
    from synthvu_core.evaluation.encoder import EncoderConfig, _cache_key

    ds = structured_dataset(6)
    rows = ds.indices("train")
    keys = [_cache_key(ds, "region", ["L"], 0, EncoderConfig(), rows), control_cache_key({"x": 1})]
    monkeypatch.setattr(provenance, "code_digest", lambda modules: "another code")
    assert _cache_key(ds, "region", ["L"], 0, EncoderConfig(), rows) != keys[0]
    assert control_cache_key({"x": 1}) != keys[1]
