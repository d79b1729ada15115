import json

import numpy as np
import pytest
import torch
from evaluation_fixtures import structured_dataset

from synthvu_core.errors import ReportError
from synthvu_core.evaluation import attacks
from synthvu_core.evaluation.attacks import SyntheticSet, summary_of_matrix
from synthvu_core.evaluation.controls import graded_replacements, independent_samples
from synthvu_core.evaluation.design import membership_design
from synthvu_core.evaluation.encoder import EncoderConfig
from synthvu_core.evaluation.privacy import PrivacyConfig, summarise_distances
from synthvu_core.evaluation.report import EvaluationConfig, definition, load_report, run_evaluation, save_report
from synthvu_core.names import (
    BLACK_BOX_ATTACKS,
    COUNTED_POWER,
    GRADED_CONTROLS,
    INDEPENDENT_CONTROL,
    REALISTIC_CONTROL,
)

torch.set_num_threads(1)
CFG = EvaluationConfig(
    encoder=EncoderConfig(epochs=2, width=8, embed_dim=16, min_steps=30),
    privacy=PrivacyConfig(n_boot=300),
    cache=False,
    n_perm=500,
)


def _leaky_set():
    """A leaky "generator": a third of its samples are lightly perturbed copies of member VUs."""
    ds = structured_dataset(40)
    classes = ds.classes("region")
    labels = ds.labels("region", classes)
    d = membership_design(ds, labels)
    x, _ = independent_samples(ds, d.control_rows, 240, seed=5)
    pos, copies = graded_replacements(ds, 240, d.candidates[d.is_member], 0.3, seed=9)
    x[pos] = copies
    return ds, d, x, labels[np.resize(d.control_rows, 240)]


@pytest.fixture(scope="module")
def evaluated():
    ds, d, x, y = _leaky_set()
    report = run_evaluation(ds, x, y, config=CFG, controls=True, progress=False, seed=0)
    return ds, d, report


def test_the_lanes_in_order_give_the_concurrent_report(evaluated):
    """concurrent=False runs every task one after another in one thread: every number is the same."""
    from dataclasses import replace

    ds, _, x, y = _leaky_set()
    serial = run_evaluation(ds, x, y, config=replace(CFG, concurrent=False), controls=True, progress=False, seed=0)
    _, _, report = evaluated
    assert set(serial.scalars) == set(report.scalars)
    for k, v in report.scalars.items():
        assert (v is None and serial.scalars[k] is None) or v == pytest.approx(serial.scalars[k], abs=1e-9), k
    for name, ctl in report.controls.items():
        assert ctl.scalars == pytest.approx(serial.controls[name].scalars, abs=1e-9), name
    assert serial.meta["verdicts"] == report.meta["verdicts"]
    assert {"utility", "privacy", "controls", "classifiers", "total"} <= set(report.meta["timings_s"])


def test_membership_design_is_balanced_and_reference_halves_are_disjoint(evaluated):
    ds, d, report = evaluated
    split = ds.units["split"].to_numpy()
    pid = ds.units["patient_id"].astype(str).to_numpy()
    assert (split[d.candidates[d.is_member]] == "train").all() and (
        split[d.candidates[~d.is_member]] == "holdout"
    ).all()
    _, per_patient = np.unique(d.patient, return_counts=True)
    assert len(set(per_patient)) == 1 and per_patient[0] == d.vus_per_patient
    assert len(set(d.patient[d.is_member])) == len(set(d.patient[~d.is_member])) == report.meta["n_member_patients"]
    fit, ctl, cand = (set(pid[r]) for r in (d.fit_rows, d.control_rows, d.candidates))
    assert fit and ctl and not (fit & ctl) and not (fit & cand) and not (ctl & cand)
    assert (split[d.fit_rows] == "reference").all() and (split[d.control_rows] == "reference").all()
    assert report.meta["n_members"] == report.meta["n_nonmembers"] == len(d.candidates) // 2


def test_attack_spaces_are_fitted_on_the_reference_fit_half_only(monkeypatch):
    import synthvu_core.evaluation.embedding as emb
    import synthvu_core.evaluation.encoder as enc

    ds = structured_dataset(24)
    classes = ds.classes("region")
    d = membership_design(ds, ds.labels("region", classes))
    calls = {}
    real_rc, real_fit = enc.real_classifier, emb.fit_umap

    def spy_classifier(*args, rows=None, **kwargs):
        calls["rows"] = rows
        return real_rc(*args, rows=rows, **kwargs)

    def spy_umap(x, *args, **kwargs):
        calls["umap_n"] = len(x)
        return real_fit(x, *args, **kwargs)

    monkeypatch.setattr(enc, "real_classifier", spy_classifier)
    monkeypatch.setattr(emb, "fit_umap", spy_umap)
    spaces = attacks.fit_attack_spaces(ds, d.candidates, d.fit_rows, scheme="region", classes=classes, config=CFG)
    np.testing.assert_array_equal(calls["rows"], d.fit_rows)
    assert calls["umap_n"] == len(d.fit_rows)
    assert set(spaces.candidates) == {"pixel", "embedding", "umap"} and len(spaces.reference_embedding) == len(
        d.fit_rows
    )


def test_dense_summary_matches_the_streamed_one_and_replacement_recomputes_columns():
    rng = np.random.default_rng(0)
    cand = rng.integers(0, 4, size=(30, 3)).astype(np.float32)
    syn = rng.integers(0, 4, size=(50, 3)).astype(np.float32)
    space = attacks.AttackSpaces({"pixel": cand})
    base = SyntheticSet.of(space, syn)
    for q in (0.01, 0.2):
        a, b = base.summary(space, "pixel", q), summarise_distances(cand, syn, quantiles=(q,))
        np.testing.assert_allclose(a.d_min, b.d_min, atol=1e-5)
        np.testing.assert_allclose(a.median, b.median, atol=1e-5)
        assert a.eps[q] == pytest.approx(b.eps[q], abs=1e-5)
        np.testing.assert_array_equal(a.counts[q], b.counts[q])
    cand, syn = rng.normal(size=(30, 3)).astype(np.float32), rng.normal(size=(50, 3)).astype(np.float32)
    space = attacks.AttackSpaces({"pixel": cand})
    idx, new = np.array([3, 7]), cand[:2] + 0.05
    mixed = syn.copy()
    mixed[idx] = new
    got = summary_of_matrix(SyntheticSet.of(space, syn).replaced(space, idx, new).distances["pixel"], 0.05)
    want = summarise_distances(cand, mixed, quantiles=(0.05,))
    np.testing.assert_allclose(got.d_min, want.d_min, atol=1e-4)
    np.testing.assert_allclose(got.median, want.median, atol=1e-4)
    np.testing.assert_array_equal(got.counts[0.05], want.counts[0.05])


def test_graded_controls_are_nested_and_power_curves_rise(evaluated):
    ds, d, report = evaluated
    members = d.candidates[d.is_member]
    small, _ = graded_replacements(ds, 500, members, 0.01, seed=0)
    big, _ = graded_replacements(ds, 500, members, 0.2, seed=0)
    assert set(small) <= set(big) and len(big) == 100
    power = report.meta["power"]
    # the fixture already leaks (30% member copies): the primary attack counts, by power or as a finding
    assert power["pairwise/pixel"]["counts"] and power["pairwise/pixel"]["status"] in COUNTED_POWER
    for name, curve in power.items():
        assert curve["counts"] == (curve["status"] in COUNTED_POWER), name
        auc, rise = curve["auc"], curve["rise"]
        assert rise == pytest.approx([a - curve["own_auc"] for a in auc]), name
        if curve["has_power"]:
            assert auc[0] <= auc[1] + 0.03 and auc[1] <= auc[2] + 0.03, name
            assert rise[0] <= rise[1] + 0.03 and rise[1] <= rise[2] + 0.03, name
            assert curve["ci_low"][1] > 0.5, name  # power: the 5% mixture is detected
            assert curve["ci_low"][2] > 0.5, name


def _result(scores):
    from synthvu_core.evaluation.verdicts import attack_metrics

    return attack_metrics(scores, MEMBER, PATIENT, n_boot=50)


PATIENT = np.repeat([f"p{i}" for i in range(12)], 23)  # 6 member vs 6 non-member patients, 23 VUs each
MEMBER = np.repeat(np.arange(12) < 6, 23)


def _mixture_scores(own: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A graded control's scores: a share ``fraction`` of the member VUs pushed up (their copies were found)."""
    rng = np.random.default_rng(seed)
    hit = MEMBER & (rng.random(len(own)) < 10 * fraction)
    return own + 4.0 * hit


@pytest.mark.parametrize("own_effect", [0.0, 8.0])
def test_power_is_detection_of_the_mixture_whatever_the_own_auc(own_effect):
    from synthvu_core.evaluation.verdicts import power_curves
    from synthvu_core.names import GRADED_FRACTIONS, graded_control

    rng = np.random.default_rng(0)
    own = np.repeat(rng.normal(0, 0.5, 12), 23) + rng.normal(size=len(MEMBER)) + own_effect * MEMBER
    controls = {graded_control(f): {"pairwise/pixel": _result(_mixture_scores(own, f, 1))} for f in GRADED_FRACTIONS}
    curve = power_curves(controls, {"pairwise/pixel": _result(own)}, MEMBER, PATIENT)["pairwise/pixel"]
    assert curve["status"] == "power" and curve["counts"] and curve["has_power"]
    assert curve["ci_low"][1] > 0.5
    assert curve["rise"][0] <= curve["rise"][1] <= curve["rise"][2]
    if own_effect:  # own AUC 1: the mixture cannot rise, yet it is detected: power, counted
        assert curve["own_auc"] == 1.0 and curve["rise"] == [0.0, 0.0, 0.0]


def test_a_null_generator_whose_mixture_does_not_rise_has_no_power():
    from synthvu_core.evaluation.verdicts import power_curves
    from synthvu_core.names import GRADED_FRACTIONS, graded_control

    rng = np.random.default_rng(3)
    own = np.repeat(rng.normal(0, 0.5, 12), 23) + rng.normal(size=len(MEMBER))
    controls = {graded_control(f): {"pairwise/pixel": _result(own + 1e-9 * f)} for f in GRADED_FRACTIONS}
    curve = power_curves(controls, {"pairwise/pixel": _result(own)}, MEMBER, PATIENT)["pairwise/pixel"]
    assert curve["has_power"] is False and curve["status"] == "no_power" and not curve["counts"]


def test_independent_control_covers_half_where_attacks_count(evaluated):
    _, _, report = evaluated
    ctl = report.controls[INDEPENDENT_CONTROL].scalars
    for name in report.meta["verdicts"]["released_samples"]["counted"]:
        a, s = name.split("/")
        assert ctl[f"privacy.{a}.{s}.auc_ci_low"] <= 0.5 <= ctl[f"privacy.{a}.{s}.auc_ci_high"], name
    assert set(report.controls) - {REALISTIC_CONTROL} == {*GRADED_CONTROLS, INDEPENDENT_CONTROL}
    assert REALISTIC_CONTROL in report.controls or report.meta["controls_skipped"][REALISTIC_CONTROL]


def test_independent_check_reads_family_wise_intervals_that_contain_the_pointwise_ones(evaluated):
    _, _, report = evaluated
    check = report.meta["independent_control"]
    counted = report.meta["verdicts"]["released_samples"]["counted"]
    assert check["family"] == counted and check["level"] == pytest.approx(1 - 0.05 / len(counted))
    for name, row in check["rows"].items():
        lo95, hi95 = row["ci_95"]
        assert row["ci_family"][0] <= lo95 and hi95 <= row["ci_family"][1], name
        assert row["covers"] == (row["ci_family"][0] <= 0.5 <= row["ci_family"][1])
    assert check["passes"] is True and "chance" in check["text"]


def _independent_results(shift: float, k: int, seed: int):
    rng = np.random.default_rng(seed)
    scores = {f"pairwise/s{j}": rng.normal(size=len(MEMBER)) + shift * MEMBER for j in range(k)}
    return {n: _result(s) for n, s in scores.items()}, list(scores)


def test_independent_check_holds_its_family_wise_level_under_the_null_and_fails_a_biased_space():
    from synthvu_core.evaluation.verdicts import independent_check

    passes = [independent_check(*_independent_results(0.0, 4, s), MEMBER, PATIENT)["passes"] for s in range(200)]
    assert np.mean(passes) >= 0.92  # nominal 0.95 family-wise (Bonferroni: at least that)
    biased = independent_check(*_independent_results(1.5, 4, 0), MEMBER, PATIENT)
    assert biased["passes"] is False and "separate" in biased["text"]
    assert all(not r["covers"] for r in biased["rows"].values())


def test_verdicts_per_threat_model(evaluated):
    _, _, report = evaluated
    a = report.meta["verdicts"]["released_samples"]
    assert a["level"] in ("leak", "caution") and a["primary"]["attack"] == "pairwise/pixel"
    assert all(n.split("/")[0] in BLACK_BOX_ATTACKS for n in a["counted"])
    assert report.scalars["privacy.worst.auc"] == max(
        report.scalars[f"privacy.{n.replace('/', '.')}.auc"] for n in a["counted"]
    )
    b = report.meta["verdicts"]["released_discriminator"]
    assert b["level"] == "not_applicable" and "private" in b["text"]


def test_every_scalar_has_a_definition_and_contract_keys_exist(evaluated):
    _, _, report = evaluated
    for key in report.scalars:
        assert report.definitions[key] == definition(key)
    for key in (
        "utility.trtr.balanced_accuracy",
        "utility.tstr_over_trtr",
        "utility.tstr.balanced_accuracy_ci_low",
        "utility.tstr_over_trtr_ci_high",
        "fidelity.frechet_distance",
        "fidelity.coverage",
        "privacy.pairwise.pixel.auc",
        "privacy.pairwise.pixel.p_value",
        "privacy.distribution.umap.tpr_at_0.1pct_fpr",
        "privacy.domias.embedding.auc",
        "privacy.pairwise.embedding.patient_auc_ci_low",
        "privacy.worst.auc",
        "dp.epsilon",
        "privacy.discriminator.pixel.auc",
    ):
        assert key in report.scalars, key
    assert report.scalars["privacy.pairwise.pixel.tpr_at_1pct_fpr"] is None
    assert "not estimable with 72 non-member VUs" in report.meta["missing"]["privacy.pairwise.pixel.tpr_at_1pct_fpr"]
    a = report.arrays
    assert len(a["utility/trtr/balanced_accuracy_seeds"]) == 5 and a["utility/trtr/confusion"].shape == (3, 3)
    n_holdout = report.meta["utility"]["n_holdout"]
    assert a["utility/tstr/holdout_predictions"].shape == (5, n_holdout) == (5, len(a["utility/holdout_patient"]))
    assert report.scalars["utility.chance"] == pytest.approx(1 / 3)
    assert "utility.tstr.balanced_accuracy_seeds_ci_low" in report.scalars
    lo, m, hi = (report.scalars[f"utility.tstr.balanced_accuracy{s}"] for s in ("_ci_low", "", "_ci_high"))
    assert lo <= m <= hi
    assert set(a["umap/real_split"]) == {"train", "holdout"} and report.meta["umap"]["role"].startswith("overlay")
    assert np.all(np.diff(a["privacy/closest/distance"]) >= 0)


def test_save_load_roundtrip_is_lazy_and_checks_fingerprint(evaluated, tmp_path):
    ds, _, report = evaluated
    assert load_report(tmp_path) is None
    save_report(report, tmp_path / "report")
    loaded = load_report(tmp_path, expected_fingerprint=ds.fingerprint)
    assert loaded.scalars == report.scalars and loaded._arrays is None
    np.testing.assert_array_equal(
        loaded.arrays["privacy/pairwise/pixel/scores"], report.arrays["privacy/pairwise/pixel/scores"]
    )
    assert loaded.controls[INDEPENDENT_CONTROL].scalars == report.controls[INDEPENDENT_CONTROL].scalars
    assert loaded.meta["verdicts"] == json.loads(json.dumps(report.meta["verdicts"]))
    with pytest.raises(ReportError, match="report.json"):
        load_report(tmp_path, expected_fingerprint="0" * 16)


def test_corrupt_report_names_the_file(evaluated, tmp_path):
    _, _, report = evaluated
    save_report(report, tmp_path / "report")
    (tmp_path / "report" / "report.json").write_text("{ not json")
    with pytest.raises(ReportError, match="report.json"):
        load_report(tmp_path)
    save_report(report, tmp_path / "report")
    (tmp_path / "report" / "arrays.npz").write_bytes(b"garbage")
    with pytest.raises(ReportError, match="arrays.npz"):
        load_report(tmp_path)


def test_nan_scalar_is_saved_as_none_with_reason(evaluated, tmp_path):
    _, _, report = evaluated
    report.scalars["fidelity.density"] = float("nan")
    save_report(report, tmp_path / "r")
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert doc["scalars"]["fidelity.density"] is None and "fidelity.density" in doc["meta"]["missing"]


def test_one_class_and_few_patients_give_none_with_reasons():
    from synthvu_core.data.dataset import SplitConfig

    ds = structured_dataset(3, levels=("L2/L3", "L3/L4", "L4/L5"), split=SplitConfig(1, 1, 1, seed=0))
    x = ds.tensors(ds.indices("train"))
    y = np.zeros(len(x), dtype=np.int64)
    r = run_evaluation(ds, x, y, config=CFG, progress=False)
    for key in (
        "utility.trtr.balanced_accuracy",
        "utility.tstr.balanced_accuracy",
        "utility.tstr_over_trtr",
        "privacy.domias.embedding.auc",
        "privacy.pairwise.pixel.auc_ci_low",
        "privacy.pairwise.umap.auc",
    ):
        assert r.scalars[key] is None and r.meta["missing"][key], key
    assert r.scalars["privacy.pairwise.pixel.auc"] is not None  # copies of members: still computable
    assert "untrained" in r.meta["notes"]["embedding"]
    assert r.meta["verdicts"]["released_samples"]["level"] == "inconclusive"


def test_a_design_too_small_for_a_permutation_test_writes_a_report_its_loader_reads(tmp_path):
    """Four phantom-sized patients: no permutation test, verdict (a) inconclusive, and the saved report loads (its
    level re-derived from the stored inputs, not refused as edited)."""
    from synthvu_core.data.dataset import SplitConfig
    from synthvu_core.evaluation.integrity import rederive_levels

    ds = structured_dataset(4, levels=("C3/C4", "T4/T5", "L4/L5"), split=SplitConfig(0.6, 0.2, 0.2, seed=0))
    x = ds.tensors(ds.indices("train"))
    y = ds.labels("region", ds.classes("region"))[ds.indices("train")]
    r = run_evaluation(ds, x, y, config=CFG, progress=False)
    samples = r.meta["verdicts"]["released_samples"]
    assert samples["level"] == "inconclusive" and "too few patients for a permutation test" in samples["text"]
    assert samples["inputs"]["permutation_test"] is False
    save_report(r, tmp_path / "report")
    loaded = load_report(tmp_path, expected_fingerprint=ds.fingerprint)
    assert loaded.meta["verdicts"]["released_samples"]["level"] == "inconclusive"
    assert rederive_levels(loaded.scalars, loaded.meta)["released_samples"] == "inconclusive"


def test_readme_table_names_the_class_with_the_lowest_trts_recall():
    from synthvu_core.evaluation.table import UTILITY_HEADER, lowest_recall, utility_row

    arrays = {"utility/trts/recall": np.array([0.99, np.nan, 0.42, 0.8])}
    assert lowest_recall(arrays, ["C", "T", "L", "S"]) == "0.420 (L)"
    assert lowest_recall({}, ["C"]) == "—"
    row = utility_row("g", {"dataset": {}, "training": {}}, {}, "0.420 (L)")
    assert row.count("|") == UTILITY_HEADER.splitlines()[0].count("|") and "0.420 (L)" in row


def test_independent_scores_are_cached_atomically_and_a_damaged_entry_is_recomputed(tmp_path, monkeypatch):
    from synthvu_core.evaluation.controls import cached_scores, control_cache_key

    monkeypatch.setenv("SYNTHVU_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"pairwise/pixel": np.arange(5.0), "domias/embedding": np.ones(5)}, {"pairwise/umap": "no UMAP"}

    key = control_cache_key({"dataset": "abc", "n": 5})
    assert key != control_cache_key({"dataset": "abc", "n": 6})
    first = cached_scores(key, compute, n=5)
    again = cached_scores(key, compute, n=5)
    assert len(calls) == 1
    assert again[1] == first[1] == {"pairwise/umap": "no UMAP"}
    assert set(again[0]) == {"pairwise/pixel", "domias/embedding"}
    np.testing.assert_array_equal(again[0]["pairwise/pixel"], np.arange(5.0))
    entry = tmp_path / "controls" / f"{key}.npz"
    entry.write_bytes(b"not a zip")
    cached_scores(key, compute, n=5)
    assert len(calls) == 2 and not list(entry.parent.glob("*.tmp-*"))
    cached_scores(key, compute, n=6)  # an entry of another candidate count is not trusted
    assert len(calls) == 3
    cached_scores(control_cache_key({"dataset": "other"}), compute, n=5, enabled=False)
    assert len(calls) == 4 and len(list(entry.parent.glob("*.npz"))) == 1
