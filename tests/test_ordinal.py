"""Ordinal classes (``--ordinal``): a trend shared by every class, weighted by the class's place along the spine,
added to G's class modulation and D's projection (zero-initialised)."""

from __future__ import annotations

import pytest
import torch

from synthvu_core.cli import main
from synthvu_core.errors import SelectionError
from synthvu_core.models.acgan import ACGANConfig, Discriminator, Generator, architecture, ordinal_positions
from synthvu_core.models.registry import load_card, load_discriminator, load_generator
from synthvu_core.models.training import ArchOverrides, Trainer, config_from_options, train
from tests.test_training import small, tiny_dataset

torch.set_num_threads(1)


def _config(**kw) -> ACGANConfig:
    return architecture("default", (1, 32, 32), 3, width=4, d_width=4, **kw)


def _fill(params, seed: int) -> None:
    with torch.no_grad():
        for i, p in enumerate(params):  # each parameter its own values (a gamma equal to its beta hides a swap)
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 100 * i)))


def test_the_trend_starts_at_zero_so_the_generator_draws_as_without_it():
    plain, ordinal = Generator(_config()).eval(), Generator(_config(ordinal=True)).eval()
    missing, unexpected = ordinal.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("ordinal_trend.") for k in missing)
    z, y = torch.randn(6, 100, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        assert torch.equal(plain(z, y), ordinal(z, y))
        _fill(ordinal.ordinal_trend.parameters(), 1)
        moved = ordinal(z, y)
    assert not torch.equal(moved[:3], plain(z, y)[:3])


def test_the_trend_weights_each_class_by_its_place_along_the_spine():
    gen = Generator(_config(ordinal=True)).eval()
    _fill(gen.modulation.parameters(), 2)
    _fill(gen.ordinal_trend.parameters(), 3)
    trend, mod = gen.ordinal_trend[0], gen.modulation[0]
    assert torch.equal(trend.positions, torch.tensor([-1.0, 0.0, 1.0]))
    h = torch.randn(3, mod.gamma.weight.shape[1], 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2])
    out = mod(h, y, trend)
    for k, t in enumerate((-1.0, 0.0, 1.0)):
        gamma, beta = mod.gamma.weight[k] + t * trend.gamma, mod.beta.weight[k] + t * trend.beta
        # addcmul rounds once where this sums twice: float32 rounding near zero, not a difference of formula
        assert torch.allclose(out[k], h[k] * (1 + gamma[:, None, None]) + beta[:, None, None], atol=1e-6)
    # class weights (interpolation) place a mixture between its classes
    half = torch.tensor([[0.5, 0.5, 0.0]])
    assert torch.allclose(trend.position(half), torch.tensor([-0.5]))
    assert torch.equal(ordinal_positions(5), torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))


def test_one_classs_loss_moves_every_other_class_through_the_trend():
    """What the trend is for: a gradient from class 0's VUs alone changes what G draws for class 2."""
    gen = Generator(_config(ordinal=True))
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(0))
    gen(z, torch.zeros(4, dtype=torch.long)).square().mean().backward()
    assert gen.ordinal_trend[0].gamma.grad.abs().sum() > 0
    assert gen.modulation[0].gamma.weight.grad[2].abs().sum() == 0  # class 2's own row: untouched
    plain = Generator(_config())
    plain(z, torch.zeros(4, dtype=torch.long)).square().mean().backward()
    assert not hasattr(plain, "ordinal_trend")


def test_the_projection_gains_a_shared_trend_along_the_classes():
    d = Discriminator(_config(projection=True, ordinal=True)).eval()
    assert d.ordinal_projection.abs().sum() == 0
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        d.ordinal_projection.normal_(generator=torch.Generator().manual_seed(4))
        logit = [d(x, torch.full((2,), k))[0] for k in range(3)]
    # the projection rows are zero: the logit is affine in t_k, so the middle class lies halfway
    assert not torch.allclose(logit[0], logit[2])
    assert torch.allclose(logit[1], (logit[0] + logit[2]) / 2, atol=1e-5)


def test_with_sources_the_projection_trend_follows_the_class_of_a_joint_label():
    d = Discriminator(_config(projection=True, ordinal=True, n_sources=2, source_prior=[[0.5, 0.5]] * 3)).eval()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        d.ordinal_projection.normal_(generator=torch.Generator().manual_seed(5))
        logit = {(c, s): d(x, torch.full((2,), c + 3 * s))[0] for c in range(3) for s in range(2)}
    for c in range(3):  # joint label class + K * source: the same place along the spine for either source
        assert torch.allclose(logit[(c, 0)], logit[(c, 1)], atol=1e-6)
    assert not torch.allclose(logit[(0, 1)], logit[(2, 1)])


def test_ordinal_is_refused_where_it_means_nothing(tmp_path):
    with pytest.raises(ValueError, match="need a generator conditioned by modulation"):
        ACGANConfig(g_cond="input", ordinal=True)
    ds = tiny_dataset(patients=6)
    with pytest.raises(SelectionError, match="give --classes in the region scheme's order"):
        small(steps=1, classes=["L", "T"], overrides=ArchOverrides(ordinal=True)).validate()
    small(steps=1, classes=["T", "L"], overrides=ArchOverrides(ordinal=True)).validate()
    prior = train(ds, tmp_path / "prior", small(steps=1, overrides=ArchOverrides(width=4, d_width=4, ordinal=True)),
                  progress=False)
    with pytest.raises(SelectionError, match="drop --no-ordinal"):
        Trainer(ds, tmp_path / "ft", small(steps=1, init_from=str(prior), overrides=ArchOverrides(ordinal=False)))
    assert not (tmp_path / "ft").exists()
    # the trend places the prior's classes by their index: other classes (or another order) would move them
    with pytest.raises(SelectionError, match="starts only a run of the same classes"):
        Trainer(ds, tmp_path / "ft", small(steps=1, init_from=str(prior), classes=["L"]))
    Trainer(ds, tmp_path / "same", small(steps=1, init_from=str(prior)))  # inherited, same classes: fine


def test_cards_without_the_option_read_as_before():
    assert "ordinal" not in _config().to_dict()
    assert ACGANConfig.from_dict(_config(ordinal=True).to_dict()).ordinal is True


def test_a_fine_tune_turns_it_on_trains_saves_and_loads(tmp_path):
    ds = tiny_dataset(patients=6)
    pre = train(ds, tmp_path / "pre", small(steps=1, overrides=ArchOverrides(width=4, d_width=4, projection=True)),
                progress=False)
    trainer = Trainer(ds, tmp_path / "zero", small(steps=1, init_from=str(pre), overrides=ArchOverrides(ordinal=True)))
    assert all(p.abs().sum() == 0 for p in trainer.G.ordinal_trend.parameters())  # new, zero-initialised
    folder = train(ds, tmp_path / "ft", small(steps=2, init_from=str(pre), overrides=ArchOverrides(ordinal=True)),
                   progress=False)
    assert load_card(folder)["architecture"]["ordinal"] is True
    gen, disc = load_generator(folder), load_discriminator(folder)
    assert gen.config.ordinal and any(p.abs().sum() > 0 for p in gen.ordinal_trend.parameters())
    assert disc.ordinal_projection.abs().sum() > 0
    assert main(["sample", str(folder), "--n", "4", "--out", str(tmp_path / "s.npz")]) == 0


def test_the_option_reaches_the_run_and_the_audit_replays_it():
    from synthvu_core.models.audit import recipe_config

    assert config_from_options({"ordinal": True, "dataset": "x", "out": "y"}).overrides.ordinal is True
    assert config_from_options({"dataset": "x", "out": "y"}).overrides.ordinal is None
    dp = {"unit": "patient", "target_epsilon": 2.0, "clip_norm": 1.0, "sample_rate": 0.5, "vus_per_patient": 1,
          "accountant": "rdp", "private_layers": "all", "steps": 2}
    card = {"name": "tiny", "scheme": "level", "classes": ["L1/L2", "L2/L3"], "dp": dp,
            "architecture": {"name": "default", "projection": True, "ordinal": True},
            "training": {"batch_size": 4, "lr": 1e-3, "seed": 0, "init_from": None}}
    assert recipe_config(card, None, 10).overrides.ordinal is True
    older = {**card, "architecture": {"name": "default"}}
    assert recipe_config(older, None, 10).overrides.ordinal is False


def test_the_recorded_command_line_repeats_the_option():
    from synthvu_core.models.commands import _command_line

    assert "--ordinal" in _command_line({"dataset": "d", "ordinal": True}).split()
    assert "--no-ordinal" in _command_line({"dataset": "d", "ordinal": False}).split()


def test_under_dp_the_projection_trend_is_one_of_ds_heads(tmp_path):
    from synthvu_core.models.dp import DPConfig
    from tests.test_training import public_dataset

    pre = train(public_dataset(), tmp_path / "pre", small(steps=1), progress=False)
    over = ArchOverrides(width=4, d_width=4, projection=True, ordinal=True)
    trainer = Trainer(tiny_dataset(patients=6), tmp_path / "dp", small(
        steps=1, init_from=str(pre), overrides=over, classes=["T", "L"],
        dp=DPConfig(noise_multiplier=1.0, private_layers="heads")))
    assert trainer.D.ordinal_projection.requires_grad  # trained with the heads, inside each patient's clip
    assert not any(p.requires_grad for p in trainer.D.body.parameters())
