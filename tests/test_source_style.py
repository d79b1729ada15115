"""The source as style: a source-conditioned generator whose source modulates only its last stages
(``--source-stages``), and a discriminator whose projection embeds class and source apart (``--split-projection``)."""

from __future__ import annotations

import pytest
import torch

from synthvu_core.cli import main
from synthvu_core.errors import SelectionError
from synthvu_core.models.acgan import ACGANConfig, Discriminator, Generator, architecture
from synthvu_core.models.registry import load_card, load_discriminator, load_generator
from synthvu_core.models.training import ArchOverrides, Trainer, config_from_options, train
from tests.test_source_conditioning import sourced
from tests.test_training import small, tiny_dataset

torch.set_num_threads(1)


def _config(**kw) -> ACGANConfig:
    return architecture("default", (1, 32, 32), 3, width=4, d_width=4, n_sources=2,
                        source_prior=[[0.5, 0.5]] * 3, **kw)


def _randomise_sources(gen: Generator, stages: list[int]) -> None:
    with torch.no_grad():
        for s in stages:
            for p in gen.source_modulation[s].parameters():
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(s)))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_the_source_modulates_only_the_last_stages_asked_for(n):
    k = 3  # hidden stages of G at 32 x 32
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(0))
    y, s = torch.tensor([0, 1, 2, 0]), torch.tensor([0, 1, 1, 0])
    for stage in range(k):  # one stage's source modulation at a time: used exactly where it is among the last n
        gen = Generator(_config(source_stages=n)).eval()
        with torch.no_grad():
            before = gen(z, y, s)
            _randomise_sources(gen, [stage])
            used = n == 0 or stage >= k - n
            assert torch.equal(gen(z, y, s), before) != used, (n, stage)
        assert all(p.requires_grad == used for p in gen.source_modulation[stage].parameters())  # unused: frozen


def test_a_split_projection_adds_a_class_and_a_source_embedding():
    d = Discriminator(_config(projection=True, split_projection=True)).eval()
    joint = Discriminator(_config(projection=True)).eval()
    assert d.projection.weight.shape[0] == 3 and d.source_projection.weight.shape[0] == 2
    assert joint.projection.weight.shape[0] == 6 and not hasattr(joint, "source_projection")
    with torch.no_grad():
        for p in (d.projection.weight, d.source_projection.weight):
            p.normal_(generator=torch.Generator().manual_seed(1))
        x = torch.rand(2, 1, 32, 32) * 2 - 1
        logit = {(c, s): d(x, torch.full((2,), c + 3 * s))[0] for c in range(3) for s in range(2)}
    # additive in class and source: the source's effect is the same for every class
    gap = logit[(0, 1)] - logit[(0, 0)]
    assert not torch.allclose(gap, torch.zeros_like(gap))
    for c in (1, 2):
        assert torch.allclose(logit[(c, 1)] - logit[(c, 0)], gap, atol=1e-5)


def test_source_style_is_refused_where_it_means_nothing(tmp_path):
    with pytest.raises(ValueError, match="source stages must be a whole number from 0"):
        _config(source_stages=4)  # 32 x 32 VUs: G has 3 hidden stages
    with pytest.raises(ValueError, match="needs the projection"):
        _config(split_projection=True)
    with pytest.raises(SelectionError, match="--source-stages shapes the source conditioning: it needs"):
        small(steps=1, overrides=ArchOverrides(width=4, d_width=4, source_stages=1)).validate()
    with pytest.raises(SelectionError, match="--split-projection shapes the source conditioning: it needs"):
        config_from_options({"split_projection": True, "dataset": "x", "out": "y"})
    with pytest.raises(SelectionError, match="--source-stages must be 0"):
        small(steps=1, overrides=ArchOverrides(source_stages=-1)).validate()
    ds = sourced(tiny_dataset(patients=6))
    with pytest.raises(SelectionError, match="needs the projection"):  # one line naming the flag, no traceback
        Trainer(ds, tmp_path / "x", small(steps=1, condition_source=True,
                                          overrides=ArchOverrides(width=4, d_width=4, split_projection=True)))


@pytest.mark.parametrize("prior_split", [False, True])
def test_a_projection_laid_out_otherwise_is_not_a_starting_point(tmp_path, prior_split):
    """A source-conditioned prior's projection rows are taken as they are: a run that lays them out the other way
    (joint against split) is refused in one line, never started from one source's rows or a size mismatch."""
    ds = sourced(tiny_dataset(patients=6))
    over = ArchOverrides(width=4, d_width=4, projection=True, split_projection=prior_split)
    prior = train(ds, tmp_path / "prior", small(steps=1, condition_source=True, overrides=over), progress=False)
    with pytest.raises(SelectionError, match="cannot start a run"):
        Trainer(ds, tmp_path / "ft", small(steps=1, init_from=str(prior), condition_source=True,
                                           overrides=ArchOverrides(split_projection=not prior_split)))
    same = Trainer(ds, tmp_path / "ok", small(steps=1, init_from=str(prior), condition_source=True,
                                              overrides=ArchOverrides(split_projection=prior_split)))
    assert hasattr(same.D, "source_projection") == prior_split


def test_under_dp_a_vus_class_and_source_enter_only_their_own_rows(tmp_path):
    from synthvu_core.models.dp import DPConfig
    from synthvu_core.models.training import discriminator_loss
    from tests.test_training import public_dataset

    ds = sourced(tiny_dataset(patients=6))
    pre = train(public_dataset(), tmp_path / "pre", small(steps=1), progress=False)
    over = ArchOverrides(width=4, d_width=4, projection=True, split_projection=True)
    trainer = Trainer(ds, tmp_path / "dp", small(steps=1, init_from=str(pre), condition_source=True, overrides=over,
                                                 source_names=("A", "B"), classes=["T", "L"],
                                                 dp=DPConfig(noise_multiplier=1.0, private_layers="heads")))
    assert trainer.D.source_projection.weight.requires_grad  # a head: trained under private_layers heads
    a, k = trainer.arch.aux_weight, trainer.arch.n_classes

    def loss_of_one(adv, cls, y):
        return discriminator_loss(adv, cls, torch.ones_like(adv), y, a, trainer.arch.aux_fake, k).sum()

    x = torch.rand(4, *ds.shape) * 2 - 1
    joint = torch.tensor([0, 1, k, 1 + k])  # class + K * source
    grads = trainer.private.per_vu_gradients(loss_of_one, x, joint)
    for name, rows in (("projection.weight", joint % k), ("source_projection.weight", joint // k)):
        touched = grads[name].abs().sum(-1) > 0
        assert torch.equal(touched, torch.nn.functional.one_hot(rows, grads[name].shape[1]).bool()), name


def test_the_recorded_command_line_repeats_the_options():
    from synthvu_core.models.commands import _command_line

    line = _command_line({"dataset": "d", "source_stages": 2, "split_projection": False})
    assert "--source-stages 2" in line and "--no-split-projection" in line


def test_cards_without_the_options_read_as_before():
    d = _config().to_dict()
    assert "source_stages" not in d and "split_projection" not in d  # the default's cards are unchanged
    assert ACGANConfig.from_dict(d).source_stages == 0
    styled = _config(source_stages=2, projection=True, split_projection=True).to_dict()
    assert ACGANConfig.from_dict(styled).source_stages == 2 and ACGANConfig.from_dict(styled).split_projection


def test_a_fine_tune_with_source_style_trains_saves_and_loads(tmp_path, capsys):
    ds = sourced(tiny_dataset(patients=6))
    pre = train(ds, tmp_path / "pre", small(steps=1), progress=False)
    over = ArchOverrides(width=4, d_width=4, projection=True, source_stages=1, split_projection=True)
    folder = train(ds, tmp_path / "ft", small(steps=2, init_from=str(pre), condition_source=True, overrides=over),
                   progress=False)
    arch = load_card(folder)["architecture"]
    assert arch["source_stages"] == 1 and arch["split_projection"] is True
    gen, disc = load_generator(folder), load_discriminator(folder)
    assert gen.config.source_stages == 1 and hasattr(disc, "source_projection")
    assert gen._first_source_stage == len(gen.source_modulation) - 1
    trainer = Trainer(ds, tmp_path / "again", small(steps=1, init_from=str(pre), condition_source=True,
                                                     overrides=over))
    assert trainer.D.source_projection.weight.abs().sum() == 0  # a new, zero-initialised embedding
    out = tmp_path / "s.npz"
    assert main(["sample", str(folder), "--n", "4", "--source", "B", "--out", str(out)]) == 0
