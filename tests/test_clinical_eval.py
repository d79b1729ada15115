"""Joint evaluation of synthetic patients: table fidelity, distance to closest record, the leaky control, grade
recognition, and the grade-conditioned sampling of a joint generator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthvu_core.data import clinical as data_clinical
from synthvu_core.evaluation import clinical


@pytest.fixture(scope="module")
def table():
    return data_clinical.phantom_table(60, seed=0)


def test_a_copy_of_the_real_table_is_faithful_and_a_shuffled_one_is_not(table):
    same = clinical.table_fidelity(table, table)
    assert same["mean_tvd"] == 0 and same["mean_ks"] == 0
    assert same["age_grade"]["within_real_interval"] and same["association"]["mean_abs_difference"] == 0
    shuffled = table.copy()
    shuffled["age"] = np.random.default_rng(0).permutation(shuffled["age"].to_numpy())  # age no longer drives grades
    broken = clinical.table_fidelity(table, shuffled)
    assert not broken["age_grade"]["within_real_interval"]
    assert abs(broken["age_grade"]["synthetic"]["rho"]) < 0.35 < broken["age_grade"]["real"]["rho"]


def test_distance_to_closest_record_catches_copies(table):
    members, others = table.iloc[:30], table.iloc[30:]
    leak = clinical.leaky_table(members, 200)
    assert set(leak["patient_id"]).isdisjoint(members["patient_id"])
    copied = clinical.distance_to_closest_record(members, others, leak)
    assert copied["auc"] > 0.9 and copied["interval"][0] > 0.5 and copied["exact_copies"] > 20
    fresh = data_clinical.phantom_table(40, seed=5)  # patients of another cohort: no member copied
    honest = clinical.distance_to_closest_record(members, others, fresh)
    # the interval is over candidates only (the synthetic table held fixed), so an honest table's AUC may sit off
    # 0.5 by chance; it is far below the copied table's
    assert honest["auc"] < 0.7 < copied["interval"][0] and honest["exact_copies"] == 0


def test_caught_reads_the_intervals():
    zero = {"risk": 0.0, "interval": [0.0, 0.1]}
    base = {k: dict(zero) for k in ("singling_out", "linkability", "inference")}
    assert not clinical.caught({**base, "dcr": {"interval": [0.4, 0.6]}})
    assert clinical.caught({**base, "dcr": {"interval": [0.55, 0.7]}})
    assert clinical.caught({**base, "inference": {"risk": 0.3, "interval": [0.1, 0.5]}, "dcr": {"interval": None}})


def test_table_privacy_catches_the_leaky_control(table):
    pytest.importorskip("anonymeter")
    members, others = table.iloc[:30], table.iloc[30:]
    leak = clinical.table_privacy(members, others, clinical.leaky_table(members, 200), n_attacks=30)
    assert clinical.caught(leak)
    assert leak["inference"]["risk"] > 0.2


def test_grade_recognition_scores_the_requested_grade():
    class Oracle:  # predicts the grade written in the VU's first pixel (torch-free stand-in for a classifier)
        pass

    requested = np.repeat(np.arange(1, 6), 20)
    import synthvu_core.evaluation.encoder as encoder

    original = encoder.predict
    try:
        encoder.predict = lambda model, images: images[:, 0, 0, 0].astype(np.int64)
        right = clinical.grade_recognition(Oracle(), np.broadcast_to((requested - 1)[:, None, None, None],
                                                                     (100, 1, 2, 2)).copy(), requested)
        wrong = clinical.grade_recognition(Oracle(), np.zeros((100, 1, 2, 2), np.int64), requested)
    finally:
        encoder.predict = original
    assert right["balanced_accuracy"] == 1.0 and right["chance"] == 0.2
    assert wrong["balanced_accuracy"] == pytest.approx(0.2) and wrong["interval"][1] < 0.3


def test_grade_view_carries_each_vus_grade(table):
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.joint import grade_view
    from synthvu_core.names import SOURCE_COLUMN

    units = pd.DataFrame({"patient_id": ["sub-0000", "sub-0001"], "level": ["L4/L5", "C2/C3"]})
    ds = VUDataset(np.zeros((2, 1, 2, 2), np.uint8), units, {"fingerprint": "x"})
    ds.clinical = table
    view = grade_view(ds)
    expected = [f"grade {table.set_index('patient_id').at[p, f'grade_{v}']}" for p, v in zip(units.patient_id,
                                                                                            units.level)]
    assert list(view.units[SOURCE_COLUMN]) == expected and view.images is ds.images
    ds.clinical = table[table["patient_id"] != "sub-0001"]
    with pytest.raises(Exception, match="1 VUs have no grade"):
        grade_view(ds)


def test_conditioned_sampling_follows_the_grade_and_the_seed():
    import torch

    from synthvu_core.models.acgan import architecture, build
    from synthvu_core.models.joint import GRADE_NAMES, sample_conditioned

    torch.manual_seed(0)
    config = architecture("default", (3, 16, 16), 3, width=8, d_width=8)
    from dataclasses import replace

    config = replace(config, n_sources=5, source_prior=[[0.2] * 5] * 3)
    gen, _ = build(config, seed=0)
    for m in gen.source_modulation:  # an untrained modulation is the identity: give each grade its own shift
        torch.nn.init.normal_(m.beta.weight, std=1.0)
    gen.card = {"classes": ["C", "T", "L"], "scheme": "region", "latent_dim": config.latent_dim,
                "sources": list(GRADE_NAMES), "shape": [3, 16, 16]}
    gen.eval()
    a = sample_conditioned(gen, ["L4/L5", "C3/C4"], [1, 5], seed=3)
    assert a.shape == (2, 3, 16, 16)
    assert np.array_equal(a, sample_conditioned(gen, ["L4/L5", "C3/C4"], [1, 5], seed=3))
    b = sample_conditioned(gen, ["L4/L5", "C3/C4"], [5, 5], seed=3)
    assert not np.allclose(a[0], b[0]) and np.allclose(a[1], b[1])  # only the VU whose grade changed changes
    with pytest.raises(Exception, match="grade 7 is not a condition"):
        sample_conditioned(gen, ["L4/L5"], [7])
    with pytest.raises(Exception, match="positions S are not classes"):
        sample_conditioned(gen, ["S1/S2"], [1])


def test_table_synthesiser_is_seeded_and_keeps_the_schema():
    pytest.importorskip("sdv")
    from synthvu_core.models.tabular import fit_sample

    real = data_clinical.phantom_table(40, seed=0)
    rows, about = fit_sample(real, 50, seed=1)
    again, _ = fit_sample(real, 50, seed=1)
    assert rows.equals(again) and about["rows_fitted"] == 40 and "findings" not in rows.columns
    assert rows["patient_id"].str.startswith("syn-").all() and set(rows["sex"]) <= {"F", "M"}
    assert rows["grade_L4/L5"].between(1, 5).all() and pd.api.types.is_integer_dtype(rows["grade_L4/L5"])


def test_table_grades_as_ordered_categories_stay_grades():
    pytest.importorskip("sdv")
    from synthvu_core.errors import SynthVUError
    from synthvu_core.models.tabular import fit_sample

    real = data_clinical.phantom_table(40, seed=0)
    rows, about = fit_sample(real, 200, seed=1, grades="ordinal")
    assert about["grades"] == "ordinal" and pd.api.types.is_integer_dtype(rows["grade_L4/L5"])
    for column in ("grade_L4/L5", "grade_T6/T7"):  # only grades the real rows hold, in their order of frequency
        assert set(rows[column].dropna()) <= set(real[column])
    # ordered: a grade's interval follows its neighbours', so the age-grade association survives
    assert clinical.age_grade(rows)["rho"] > 0.5
    with pytest.raises(SynthVUError, match="unknown grade encoding"):
        fit_sample(real, 10, grades="ranks")


def _joint_case(table, leak_rows: bool, leak_vus: bool, seed: int = 0):
    """30 member and 30 non-member patients with 2 VUs each; a synthetic table and VUs that copy members' rows
    and/or (lightly perturbed) VUs where asked, else are drawn independently."""
    rng = np.random.default_rng(seed)
    rows = table.iloc[:60].reset_index(drop=True)
    is_member = np.arange(60) < 30
    vus = rng.uniform(-1, 1, size=(120, 2, 8, 8)).astype(np.float32)
    vu_patient = np.repeat(rows["patient_id"].to_numpy(), 2)
    synthetic_rows = (clinical.leaky_table(rows.iloc[:30], 200, seed) if leak_rows
                      else data_clinical.phantom_table(200, seed=seed + 7))
    synthetic_vus = rng.uniform(-1, 1, size=(200, 2, 8, 8)).astype(np.float32)
    if leak_vus:  # every member VU, with a little noise, among the synthetic ones
        synthetic_vus[:60] = vus[:60] + 0.05 * rng.standard_normal(vus[:60].shape).astype(np.float32)
    return rows, is_member, vus, vu_patient, synthetic_rows, synthetic_vus


def test_joint_membership_catches_a_leak_in_either_part(table):
    big = data_clinical.phantom_table(60, seed=0)
    honest = clinical.joint_membership(*_joint_case(big, False, False), n_boot=200)
    assert not honest["caught"] and 0.3 < honest["joint"]["auc"] < 0.7
    assert honest["n_member_patients"] == honest["n_nonmember_patients"] == 30 and honest["n_candidate_vus"] == 120
    both = clinical.joint_membership(*_joint_case(big, True, True), n_boot=200)
    assert both["caught"] and both["joint"]["auc"] > 0.95
    rows_only = clinical.joint_membership(*_joint_case(big, True, False), n_boot=200)
    vus_only = clinical.joint_membership(*_joint_case(big, False, True), n_boot=200)
    assert rows_only["row"]["auc"] > 0.95 and rows_only["caught"]
    assert vus_only["vus"]["auc"] > 0.95 and vus_only["caught"]
    assert 0.3 < rows_only["vus"]["auc"] < 0.7  # independent VUs: the VU part sees nothing


def test_joint_membership_needs_both_sides(table):
    rows, is_member, vus, vu_patient, srows, svus = _joint_case(table, False, False)
    with pytest.raises(Exception, match="member and non-member"):
        clinical.joint_membership(rows, np.ones(60, bool), vus, vu_patient, srows, svus)
    with pytest.raises(Exception, match="no VU"):
        clinical.joint_membership(rows, is_member, vus[:100], vu_patient[:100], srows, svus)


def test_joint_membership_names_the_parts_above_chance(table):
    big = data_clinical.phantom_table(60, seed=0)
    rows_only = clinical.joint_membership(*_joint_case(big, True, False), n_boot=200)
    assert "row" in rows_only["parts_above_chance"] and "vus" not in rows_only["parts_above_chance"]
    assert rows_only["caught"] == ("joint" in rows_only["parts_above_chance"])


def test_anonymeter_attacks_members_and_control_at_one_size(table, monkeypatch):
    """Singling out a row is likelier among more rows: unequal sets read a risk where there is none."""
    from types import SimpleNamespace

    members, control = table.iloc[:40], table.iloc[40:]
    a, b = clinical.equal_sizes(members, control, seed=1)
    assert len(a) == len(b) == 20 and set(a["patient_id"]) <= set(members["patient_id"])
    assert b["patient_id"].tolist() == control["patient_id"].tolist()
    assert clinical.equal_sizes(members, control, seed=1)[0].equals(a)
    assert not clinical.equal_sizes(members, control, seed=2)[0].equals(a)

    seen = []

    class Fake:
        def __init__(self, ori, syn, control, **kw):
            seen.append((len(ori), len(control)))

        def evaluate(self, **kw):
            pass

        def risk(self, confidence_level):
            return SimpleNamespace(value=0.0, ci=(0.0, 0.1))

        def results(self):
            rate = SimpleNamespace(value=0.1)
            return SimpleNamespace(attack_rate=rate, baseline_rate=rate, control_rate=rate, n_attacks_ori=20)

    fakes = SimpleNamespace(SinglingOutEvaluator=Fake, LinkabilityEvaluator=Fake, InferenceEvaluator=Fake)
    monkeypatch.setattr(clinical, "_anonymeter", lambda: fakes)
    out = clinical.table_privacy(members, control, table, seed=0)
    assert seen == [(20, 20)] * 3
    assert (out["n_members"], out["n_members_total"], out["dcr"]["n_members"]) == (20, 40, 40)
