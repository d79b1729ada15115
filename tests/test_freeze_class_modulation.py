"""``train --freeze-class-modulation``: G's per-class scale and shift stay as the prior gave them; the rest trains."""

from __future__ import annotations

import pytest
import torch

from synthvu_core.errors import SelectionError
from synthvu_core.models.registry import load_card
from synthvu_core.models.training import ArchOverrides, Trainer, config_from_options, train
from tests.test_source_conditioning import sourced
from tests.test_training import small, tiny_dataset

MODULATED = ArchOverrides(width=4, d_width=4, g_cond="modulate")


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    out = tmp_path_factory.mktemp("prior") / "pre"
    return train(tiny_dataset(), out, small(steps=2, overrides=MODULATED), progress=False)


def test_the_class_modulation_keeps_the_priors_rows_and_the_rest_of_g_trains(prior, tmp_path):
    ds = sourced(tiny_dataset(patients=6))
    config = small(steps=3, overrides=MODULATED, init_from=str(prior), condition_source=True,
                   freeze_class_modulation=True)
    trainer = Trainer(ds, tmp_path / "ft", config)
    before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    assert any(v.abs().sum() > 0 for k, v in before.items() if k.startswith("modulation."))  # the prior's rows
    for _ in range(3):
        trainer.step()
    moved = {k for k, v in trainer.G.state_dict().items() if not torch.equal(v, before[k])}
    assert not any(k.startswith("modulation.") for k in moved)
    assert any(k.startswith("source_modulation.") for k in moved) and any(k.startswith("net.") for k in moved)
    free = Trainer(ds, tmp_path / "free", small(steps=3, overrides=MODULATED, init_from=str(prior),
                                                   condition_source=True))
    free.step()
    assert any(not torch.equal(v, before[k]) for k, v in free.G.state_dict().items() if k.startswith("modulation."))
    assert trainer._identity()["freeze_class_modulation"] is True and "freeze_class_modulation" not in free._identity()
    ordinal = ArchOverrides(width=4, d_width=4, g_cond="modulate", projection=True, ordinal=True)
    with_trend = Trainer(ds, tmp_path / "ord", small(steps=3, overrides=ordinal, init_from=str(prior),
                                                     condition_source=True, freeze_class_modulation=True))
    kept = {k: v.clone() for k, v in with_trend.G.state_dict().items() if k.startswith(("modulation.", "ordinal_"))}
    assert any(k.startswith("ordinal_trend.") for k in kept)
    with_trend.step()  # the trend adds to each class's scale and shift: kept too
    assert all(torch.equal(with_trend.G.state_dict()[k], v) for k, v in kept.items())


def test_the_card_records_it_and_the_refusals(prior, tmp_path):
    ds = tiny_dataset()
    out = train(ds, tmp_path / "card", small(steps=1, overrides=MODULATED, init_from=str(prior),
                                            freeze_class_modulation=True), progress=False)
    assert load_card(out)["training"]["freeze_class_modulation"] is True
    with pytest.raises(SelectionError, match="needs a prior"):
        Trainer(ds, tmp_path / "x", small(steps=1, overrides=MODULATED, freeze_class_modulation=True))
    at_input = ArchOverrides(width=4, d_width=4, g_cond="input")  # G conditioned at its input only
    plain = train(ds, tmp_path / "plain", small(steps=1, overrides=at_input), progress=False)
    with pytest.raises(SelectionError, match="class modulation"):
        Trainer(ds, tmp_path / "y", small(steps=1, overrides=at_input, init_from=str(plain),
                                          freeze_class_modulation=True))


def test_the_option_reaches_the_config_the_command_line_and_the_audit():
    from synthvu_core.models.audit import recipe_config
    from synthvu_core.models.commands import _command_line

    assert config_from_options({"freeze_class_modulation": True, "dataset": "x", "out": "y"}).freeze_class_modulation
    assert config_from_options({"dataset": "x", "out": "y"}).freeze_class_modulation is False
    assert "--freeze-class-modulation" in _command_line({"dataset": "d", "freeze_class_modulation": True}).split()
    dp = {"unit": "patient", "target_epsilon": 2.0, "clip_norm": 1.0, "sample_rate": 0.5, "vus_per_patient": 1,
          "accountant": "rdp", "private_layers": "all", "steps": 2}
    card = {"name": "tiny", "scheme": "level", "classes": ["L1/L2", "L2/L3"], "dp": dp,
            "architecture": {"name": "default", "g_cond": "modulate"},
            "training": {"batch_size": 4, "lr": 1e-3, "seed": 0, "init_from": None, "freeze_class_modulation": True}}
    assert recipe_config(card, None, 10).freeze_class_modulation is True
    card["training"].pop("freeze_class_modulation")
    assert recipe_config(card, None, 10).freeze_class_modulation is False
