"""The differentially private clinical table (smartnoise-synth's MST): public bins, the schema, and its entry in the
privacy ledger."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from synthvu_core.data import clinical as data_clinical
from synthvu_core.models import dp_table


def test_bins_are_public_and_unknown_numbers_are_refused():
    assert dp_table.public_bins("grade_L4/L5") == (0.5, 5.5, 5)
    assert dp_table.public_bins("age") == (18.0, 90.0, 12)
    assert dp_table.public_bins("lumbar_lordosis_deg") == (0.0, 90.0, 18)
    assert dp_table.public_bins("n_modic") == (-0.5, 5.5, 6)
    assert dp_table.public_bins("bmi") is None
    table = data_clinical.phantom_table(10, seed=0).assign(bmi=25.0)
    with pytest.raises(Exception, match="public bounds for the numeric columns bmi"):
        dp_table.fit_sample_dp(table, 5, epsilon=1.0, delta=1e-5)
    with pytest.raises(Exception, match="epsilon > 0"):
        dp_table.fit_sample_dp(table, 5, epsilon=0.0, delta=1e-5)


def test_discretising_uses_the_public_edges_only():
    table = pd.DataFrame({"age": [10, 18, 53.9, 95], "grade_L4/L5": [1, 2, 5, 3], "sex": ["F", "M", "M", "F"]})
    bounds = {c: dp_table.public_bins(c) for c in ("age", "grade_L4/L5")}
    d = dp_table._discrete(table, list(table.columns), bounds)
    assert d["age"].tolist() == [0, 0, 5, 11]  # clamped into the edge bins; 6-year bins from 18
    assert d["grade_L4/L5"].tolist() == [0, 1, 4, 2] and d["sex"].tolist() == ["F", "M", "M", "F"]
    back = dp_table._continuous(d, table.astype({"grade_L4/L5": "int64"}), bounds, np.random.default_rng(0))
    assert back["grade_L4/L5"].tolist() == [1, 2, 5, 3]
    assert ((back["age"] >= 18) & (back["age"] <= 90)).all() and 48 <= back["age"][2] <= 54


@pytest.mark.slow  # MST's mirror descent: minutes of CPU
def test_mst_table_keeps_the_schema_and_composes_in_the_ledger():
    pytest.importorskip("snsynth")
    pytest.importorskip("mbi")
    from synthvu_core.models.ledger import composed_epsilon

    real = data_clinical.phantom_table(40, seed=0)
    rows, about = dp_table.fit_sample_dp(real, 60, epsilon=3.0, delta=1e-5, seed=1)
    assert len(rows) == 60 and rows["patient_id"].str.startswith("syn-").all() and "findings" not in rows.columns
    assert rows["grade_L4/L5"].between(1, 5).all() and pd.api.types.is_integer_dtype(rows["grade_L4/L5"])
    assert set(rows["sex"]) <= {"F", "M"} and rows["age"].between(18, 90).all()
    assert about["dp"]["epsilon"] == 3.0 and about["rows_fitted"] == 40
    entry = dp_table.ledger_entry(about, "t")
    # rho-zCDP read as one un-subsampled Gaussian: the RDP accountant gives back about the requested epsilon
    eps = composed_epsilon([entry], 1e-5)
    assert 2.5 < eps <= 3.3
    assert composed_epsilon([entry, entry], 1e-5) > eps and math.isinf(composed_epsilon([entry, {"dp": False}], 1e-5))


def test_a_table_run_is_composed_in_the_cards_ledger(tmp_path):
    import json
    import shutil
    from pathlib import Path

    from synthvu_core.models.joint import record_table_run, table_ledger_entry

    src = Path(__file__).resolve().parents[1] / "models" / "acgan-joint-phantom"
    if not src.is_dir():
        pytest.skip("the shipped joint generator is not installed")
    folder = tmp_path / "joint"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("*.safetensors", "report", "training"))
    before = json.loads((folder / "card.json").read_text())["privacy_ledger"]

    class InMemory:  # a dataset without a folder: the card composes its own runs
        root = None
        fingerprint = "x"

    about = {"library": "smartnoise-synth", "method": "mst", "rows_fitted": 72,
             "dp": {"epsilon": 3.0, "delta": 1e-5, "rho": 0.2242491682463453}}
    block = record_table_run(folder, InMemory(), about)["privacy_ledger"]
    assert block["runs"] == before["runs"] + 1 and block["entries"][-1]["mechanism"].startswith("mst")
    assert block["composed_epsilon"] is None  # the VU runs on these patients had no DP: infinite
    card = json.loads((folder / "card.json").read_text())
    card.pop("privacy_ledger")
    (folder / "card.json").write_text(json.dumps(card))
    alone = record_table_run(folder, InMemory(), about)["privacy_ledger"]
    assert alone["runs"] == 1 and alone["composed_epsilon"] == pytest.approx(3.0, abs=0.01)
    sdv = table_ledger_entry({"library": "sdv", "method": "gaussian_copula", "dp": None}, "t")
    assert sdv["dp"] is False and sdv["epsilon"] is None


def test_a_card_never_forgets_a_run_when_its_ledger_file_lost_it(tmp_path):
    """A ledger file rebuilt without the card's earlier runs (a new cache, another machine): the card keeps them."""
    import json
    from pathlib import Path

    from synthvu_core.models.joint import record_table_run
    from synthvu_core.models.registry import CARD_FILE

    src = Path(__file__).resolve().parents[1] / "models" / "acgan-joint-phantom" / CARD_FILE
    if not src.is_file():
        pytest.skip("the shipped joint generator is not installed")
    folder = tmp_path / "joint"
    folder.mkdir()
    earlier = [{"run": "vu-run", "created": "2026-01-01T00:00:00+00:00", "dp": False, "epsilon": None}]
    card = {**json.loads(src.read_text()), "name": "joint", "privacy_ledger": {"entries": earlier, "delta": 1e-5}}
    (folder / CARD_FILE).write_text(json.dumps(card))

    class WithFolder:  # a dataset folder whose ledger file does not list the card's earlier run
        root = tmp_path / "dataset"
        fingerprint = "x"
        card: dict = {}

        def patients(self, part):
            return ["p0", "p1"]

    WithFolder.root.mkdir()
    about = {"library": "scipy", "method": "ordinal_copula", "dp": None}
    block = record_table_run(folder, WithFolder(), about)["privacy_ledger"]
    assert [e["run"] for e in block["entries"]] == ["vu-run", "joint: clinical table"] and block["runs"] == 2
    again = record_table_run(folder, WithFolder(), about)["privacy_ledger"]  # a second table run is a new run
    assert again["runs"] == 3
