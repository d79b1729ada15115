import json

import numpy as np
import pytest
import torch
from evaluation_fixtures import structured_dataset

from synthvu_core.errors import ReportError
from synthvu_core.evaluation.controls import control_samples
from synthvu_core.evaluation.encoder import EncoderConfig
from synthvu_core.evaluation.privacy import PrivacyConfig
from synthvu_core.evaluation.report import EvaluationConfig, definition, load_report, run_evaluation, save_report

torch.set_num_threads(1)
CFG = EvaluationConfig(encoder=EncoderConfig(epochs=3, width=8, embed_dim=16, min_steps=60), privacy=PrivacyConfig(n_boot=300), cache=False)


@pytest.fixture(scope="module")
def evaluated():
    ds = structured_dataset(40)
    classes = ds.classes("region")
    # the "generator" under test: noisy reference VUs (independent of the candidates)
    x, y, _ = control_samples(ds, "independent", 240, scheme="region", classes=classes, seed=5)
    report = run_evaluation(ds, x, y, config=CFG, controls=("copy", "independent"), progress=False, seed=0)
    return ds, report


def test_controls_prove_the_attacks_work(evaluated):
    _, report = evaluated
    copy, indep = report.controls["copy"].scalars, report.controls["independent"].scalars
    assert copy["privacy.pairwise.pixel.auc"] >= 0.95
    assert copy["privacy.pairwise.pixel.topk_share"] > 0.9
    assert indep["privacy.pairwise.pixel.auc_ci_low"] <= 0.5 <= indep["privacy.pairwise.pixel.auc_ci_high"]
    assert "reference" in report.meta["control_definitions"]["independent"]


def test_every_scalar_has_a_definition_and_contract_keys_exist(evaluated):
    _, report = evaluated
    for key in report.scalars:
        assert report.definitions[key] == definition(key)
    for key in ("utility.trtr.balanced_accuracy", "utility.tstr_over_trtr", "fidelity.frechet_distance", "fidelity.coverage",
                "privacy.pairwise.pixel.auc", "privacy.distribution.umap.tpr_at_0.1pct_fpr", "privacy.domias.embedding.auc",
                "privacy.pairwise.embedding.patient_tpr_at_1pct_fpr", "privacy.worst.auc", "privacy.worst.tpr_at_1pct_fpr",
                "dp.epsilon", "privacy.discriminator.pixel.auc"):
        assert key in report.scalars
    assert report.scalars["privacy.discriminator.pixel.auc"] is None
    assert "discriminator" in report.meta["missing"]["privacy.discriminator.pixel.auc"]
    a = report.arrays
    n_syn = report.meta["n_synthetic"]
    assert a["umap/synthetic"].shape == (n_syn, 2) and len(a["umap/real"]) == len(a["umap/real_index"]) == len(a["umap/real_split"])
    assert set(a["umap/real_split"]) == {"train", "holdout"}
    assert len(a["candidates/index"]) == len(a["privacy/pairwise/pixel/scores"]) == len(a["candidates/patient"])
    assert a["candidates/is_member"].sum() == report.meta["n_members"]
    assert a["utility/trtr/confusion"].shape == (3, 3)
    assert np.all(np.diff(a["privacy/closest/distance"]) >= 0)


def test_members_are_training_patients(evaluated):
    ds, report = evaluated
    a = report.arrays
    splits = ds.units["split"].to_numpy()[a["candidates/index"]]
    assert (splits[a["candidates/is_member"]] == "train").all() and (splits[~a["candidates/is_member"]] == "holdout").all()


def test_save_load_roundtrip_is_lazy_and_checks_fingerprint(evaluated, tmp_path):
    ds, report = evaluated
    assert load_report(tmp_path) is None
    save_report(report, tmp_path / "report")
    loaded = load_report(tmp_path, expected_fingerprint=ds.fingerprint)
    assert loaded.scalars == report.scalars and loaded._arrays is None
    np.testing.assert_array_equal(loaded.arrays["privacy/pairwise/pixel/scores"], report.arrays["privacy/pairwise/pixel/scores"])
    assert loaded.controls["copy"].scalars == report.controls["copy"].scalars
    with pytest.raises(ReportError, match="report.json"):
        load_report(tmp_path, expected_fingerprint="0" * 16)


def test_corrupt_report_names_the_file(evaluated, tmp_path):
    _, report = evaluated
    save_report(report, tmp_path / "report")
    (tmp_path / "report" / "report.json").write_text("{ not json")
    with pytest.raises(ReportError, match="report.json"):
        load_report(tmp_path)
    save_report(report, tmp_path / "report")
    (tmp_path / "report" / "arrays.npz").write_bytes(b"garbage")
    with pytest.raises(ReportError, match="arrays.npz"):
        load_report(tmp_path)


def test_nan_scalar_is_saved_as_none_with_reason(evaluated, tmp_path):
    _, report = evaluated
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
    for key in ("utility.trtr.balanced_accuracy", "utility.tstr.balanced_accuracy", "utility.tstr_over_trtr",
                "privacy.domias.embedding.auc", "privacy.pairwise.pixel.auc_ci_low", "privacy.pairwise.umap.auc"):
        assert r.scalars[key] is None and r.meta["missing"][key]
    assert r.scalars["privacy.pairwise.pixel.auc"] is not None  # copies of members: still computable
    assert "untrained" in r.meta["notes"]["embedding"]
