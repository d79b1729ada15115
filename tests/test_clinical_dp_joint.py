"""The DP joint generator's VU half: `clinical train --target-epsilon` trains the grade-conditioned AC-GAN under
patient-level DP-SGD with the public grade vocabulary, and refuses what would read private data outside a
patient's clipped contribution or leave the pair without DP."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from synthvu_core.cli import main
from synthvu_core.clinical.commands import DP_LR, DP_PRIOR, DP_STEPS, PRIOR, _train_config, dp_config, register
from synthvu_core.data import clinical as data_clinical
from synthvu_core.errors import SelectionError
from synthvu_core.models.dp import DPConfig
from synthvu_core.models.joint import GRADE_NAMES, train_images
from synthvu_core.models.registry import load_card
from tests.test_training import small, tiny_dataset

torch.set_num_threads(1)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["clinical", "train", "--out", "x", *argv])


def test_dp_vu_half_is_refused_beside_a_table_without_dp(capsys):
    assert main(["clinical", "train", "--out", "x", "--target-epsilon", "3"]) == 2
    assert "the table (ordinal_copula) would not be" in capsys.readouterr().err
    with pytest.raises(SelectionError, match="--table-epsilon"):
        dp_config(parse("--target-epsilon", "3", "--table-method", "mst"))


def test_dp_recipe_starts_from_the_joint_prior_and_refuses_grade_balancing():
    args = parse("--target-epsilon", "3", "--table-method", "mst", "--table-epsilon", "2")
    config = _train_config(args, dp_config(args))
    assert config.private and config.source_names == GRADE_NAMES and config.steps == DP_STEPS
    assert config.overrides.lr == DP_LR and config.overrides.projection and not config.balance_sources
    assert config.dp.private_layers == "heads" and not config.keep_checkpoint and config.init_from == DP_PRIOR
    assert "--target-epsilon 3" in config.command and "--table-epsilon 2" in config.command
    public = _train_config(parse(), None)
    assert public.balance_sources and public.source_names is None and public.init_from == PRIOR
    asked = parse("--target-epsilon", "3", "--table-method", "mst", "--table-epsilon", "2", "--balance-grades")
    with pytest.raises(SelectionError, match="balancing sources"):
        _train_config(asked, dp_config(asked))


def test_private_vu_half_names_every_grade_and_draws_them_uniformly(tmp_path):
    ds = tiny_dataset(patients=6, prefix="sub-000")
    table = data_clinical.phantom_table(6, seed=0)
    for column in [c for c in table.columns if c.startswith("grade_")]:
        table[column] = np.where(table[column] > 2, 2, table[column])  # the private data hold grades 1-2 only
    ds.clinical = table
    folder = train_images(ds, tmp_path / "jdp", small(steps=2, dp=DPConfig(noise_multiplier=1.0)), progress=False)
    card = load_card(folder)
    assert card["sources"] == list(GRADE_NAMES) and card["clinical"]["conditions"] == list(GRADE_NAMES)
    assert np.allclose(card["architecture"]["source_prior"], 0.2) and card["dp"]["epsilon"] > 0
    public = train_images(ds, tmp_path / "j", small(steps=1), progress=False)
    assert load_card(public)["sources"] == ["grade 1", "grade 2"]  # without DP: the grades the train split holds


def test_the_clinical_page_states_both_parts_and_their_composition():
    from dashboard.clinical import privacy_budget

    card = {"dp": {"epsilon": 2.99, "delta": 1e-5},
            "clinical": {"table": {"dp": {"epsilon": 3.0, "delta": 1e-5}}},
            "privacy_ledger": {"composed_epsilon": 4.34, "runs": 2, "delta": 1e-5}}
    assert privacy_budget(card) == {"vus": 2.99, "table": 3.0, "composed": 4.34, "runs": 2, "delta": 1e-5}
    public = privacy_budget({"clinical": {"table": {"method": "gaussian_copula"}},
                             "privacy_ledger": {"composed_epsilon": None, "runs": 3, "delta": 1e-5}})
    assert public["vus"] is None and public["table"] is None and public["composed"] is None and public["runs"] == 3
