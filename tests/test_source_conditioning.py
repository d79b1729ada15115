"""A generator conditioned on source as well as position: training (with and without DP), the card, drawing
sources from P(source | class), starting from an unconditioned prior, and `sample --source`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthvu_core.cli import main
from synthvu_core.data.dataset import VUDataset
from synthvu_core.errors import SelectionError
from synthvu_core.models.dp import DPConfig
from synthvu_core.models.registry import load_card, load_generator
from synthvu_core.models.training import ArchOverrides, Trainer, train
from synthvu_core.names import SOURCE_COLUMN
from tests.test_training import public_dataset, small, tiny_dataset

torch.set_num_threads(1)


def sourced(dataset: VUDataset) -> VUDataset:
    units = dataset.units.copy()
    units[SOURCE_COLUMN] = np.where(units["patient_id"].isin(["p0", "p1", "p2"]), "A", "B")
    return VUDataset.from_units(dataset.images, units.drop(columns=["split"]), split=dataset.split_config())


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    ds = sourced(tiny_dataset(patients=6))
    out = tmp_path_factory.mktemp("m") / "src"
    return train(ds, out, small(steps=3, condition_source=True), progress=False), ds


def test_card_records_the_sources_and_their_prior_per_class(model):
    folder, ds = model
    card = load_card(folder)
    train_sources = ds.units[SOURCE_COLUMN].to_numpy()[ds.indices("train")]
    assert card["sources"] == sorted(set(train_sources))
    arch = card["architecture"]
    assert arch["n_sources"] == len(card["sources"]) and len(arch["source_prior"]) == len(card["classes"])
    assert np.allclose(np.sum(arch["source_prior"], axis=1), 1.0)


def test_source_changes_the_sample_and_is_drawn_from_its_prior(model):
    folder, _ = model
    gen = load_generator(folder)
    z = torch.randn(8, gen.config.latent_dim, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(8, dtype=torch.long)
    with torch.no_grad():
        a, b = gen(z, y, torch.zeros(8, dtype=torch.long)), gen(z, y, torch.ones(8, dtype=torch.long))
    assert not torch.allclose(a, b)
    gen.config.source_prior = [[0.25, 0.75]] * len(gen.card["classes"])
    zz = torch.randn(4000, gen.config.latent_dim, generator=torch.Generator().manual_seed(1))
    drawn = gen.draw_sources(zz, torch.zeros(4000, dtype=torch.long))
    assert abs(float(drawn.float().mean()) - 0.75) < 0.03
    gen.fixed_source = 0
    assert int(gen.draw_sources(zz[:5], torch.zeros(5, dtype=torch.long)).sum()) == 0


def test_private_training_with_sources_and_refusals(tmp_path):
    ds = sourced(tiny_dataset(patients=6))
    with pytest.raises(SelectionError, match="vocabulary given in advance"):  # the private sources cannot be read
        Trainer(ds, tmp_path / "dp", small(steps=1, condition_source=True, dp=DPConfig(noise_multiplier=1.0)))
    with pytest.raises(SelectionError, match="not one of A, C"):
        Trainer(ds, tmp_path / "dp", small(steps=1, condition_source=True, source_names=("A", "C"),
                                           dp=DPConfig(noise_multiplier=1.0)))
    trainer = Trainer(ds, tmp_path / "np", small(steps=1, condition_source=True))
    trainer.step()
    assert trainer.arch.n_sources == 2
    with pytest.raises(SelectionError, match="records no sources"):
        Trainer(tiny_dataset(), tmp_path / "x", small(steps=1, condition_source=True))


def test_private_sources_are_the_given_vocabulary_drawn_uniformly(tmp_path):
    """Under DP the released generator names the given sources (one the train split lacks included) and draws
    them uniformly, whatever the private VUs' shares; without DP it keeps the train split's shares."""
    ds = sourced(tiny_dataset(patients=6))
    names = ("A", "B", "Z")
    folder = train(ds, tmp_path / "dp", small(steps=2, condition_source=True, source_names=names,
                                               dp=DPConfig(noise_multiplier=1.0)), progress=False)
    card = load_card(folder)
    assert card["sources"] == list(names) and card["dp"]["sources"].startswith("given in advance")
    assert np.allclose(card["architecture"]["source_prior"], 1 / 3) and np.allclose(card["class_prior"],
                                                                                    1 / len(card["classes"]))
    public = Trainer(ds, tmp_path / "np", small(steps=1, condition_source=True, source_names=names))
    assert public.sources == list(names) and not np.allclose(public.source_prior, 1 / 3)
    assert np.allclose(np.mean(public.source_prior, axis=0)[2], 0.0)  # Z: no train VU, never drawn


def test_an_unconditioned_prior_starts_a_conditioned_run_unchanged(tmp_path):
    ds = sourced(tiny_dataset(patients=6))
    pre = train(ds, tmp_path / "pre", small(steps=1), progress=False)
    trainer = Trainer(ds, tmp_path / "ft", small(steps=1, init_from=str(pre), condition_source=True))
    prior = load_generator(pre)
    z = torch.randn(4, prior.config.latent_dim, generator=torch.Generator().manual_seed(0))
    y = torch.arange(4) % len(prior.card["classes"])
    with torch.no_grad():
        assert torch.allclose(trainer.G(z, y, torch.ones(4, dtype=torch.long)), prior.float()(z, y), atol=1e-3)


def test_sample_source_flag(model, tmp_path, capsys):
    folder, _ = model
    assert main(["sample", str(folder), "--n", "4", "--source", "B", "--out", str(tmp_path / "b.npz")]) == 0
    assert main(["sample", str(folder), "--n", "4", "--source", "C", "--out", str(tmp_path / "c.npz")]) == 2
    assert "not a source of this generator" in capsys.readouterr().err


def test_a_projection_discriminator_starts_from_an_unconditioned_prior_and_learns_per_label(tmp_path):
    from synthvu_core.models.registry import load_discriminator
    from synthvu_core.models.training import ArchOverrides

    ds = sourced(tiny_dataset(patients=6))
    pre = train(ds, tmp_path / "pre", small(steps=1), progress=False)
    over = ArchOverrides(width=4, d_width=4, projection=True)
    trainer = Trainer(ds, tmp_path / "ft", small(steps=2, init_from=str(pre), condition_source=True, overrides=over))
    assert trainer.arch.projection
    x = torch.rand(4, *ds.shape) * 2 - 1
    joint = torch.tensor([0, 1, 2, 3])  # class + K * source
    prior = load_discriminator(pre).float()
    with torch.no_grad():  # zero-initialised: the prior's real logit, whatever the label
        assert torch.allclose(trainer.D(x, joint)[0], prior(x)[0], atol=1e-3)
    trainer.step()
    trainer.step()
    with torch.no_grad():
        a, b = trainer.D(x, joint)[0], trainer.D(x, (joint + len(trainer.classes)) % (2 * len(trainer.classes)))[0]
        assert not torch.allclose(a, b)  # the logit now depends on the label
        assert torch.allclose(trainer.D(x)[0], trainer.D(x, None)[0])  # without labels: the unconditional part


def test_under_dp_each_vus_label_enters_only_its_own_projection_gradient(tmp_path):
    from synthvu_core.models.training import ArchOverrides, discriminator_loss

    ds = sourced(tiny_dataset(patients=6))
    pre = train(public_dataset(), tmp_path / "pre", small(steps=1), progress=False)  # a DP run's prior is public
    over = ArchOverrides(width=4, d_width=4, projection=True)
    trainer = Trainer(ds, tmp_path / "dp", small(steps=1, init_from=str(pre), condition_source=True, overrides=over,
                                                 source_names=("A", "B"), classes=["T", "L"],
                                                 dp=DPConfig(noise_multiplier=1.0)))
    a, k = trainer.arch.aux_weight, trainer.arch.n_classes

    def loss_of_one(adv, cls, y):
        return discriminator_loss(adv, cls, torch.ones_like(adv), y, a, trainer.arch.aux_fake, k).sum()

    x = torch.rand(4, *ds.shape) * 2 - 1
    joint = torch.tensor([0, 1, k, 1 + k])  # class + K * source
    grads = trainer.private.per_vu_gradients(loss_of_one, x, joint)["projection.weight"]  # [VU, rows, dim]
    touched = grads.abs().sum(-1) > 0
    assert torch.equal(touched, torch.nn.functional.one_hot(joint, grads.shape[1]).bool())


def test_a_projection_prior_without_sources_starts_each_sources_rows_from_its_classes(tmp_path):
    """Fine-tuning a prior that has a projection but no sources into a source-conditioned run: the projection's
    joint rows (class + K x source) of every source start from the prior's row of the class."""
    from synthvu_core.models.registry import DISCRIMINATOR_FILE, read_weights
    from synthvu_core.models.training import Trainer

    plain = tiny_dataset(patients=6)
    arch = ArchOverrides(width=4, d_width=4, projection=True)
    prior = train(plain, tmp_path / "prior", small(steps=1, overrides=arch), progress=False)
    run = Trainer(sourced(plain), tmp_path / "ft", small(steps=1, init_from=str(prior), condition_source=True,
                                                      overrides=ArchOverrides()))
    old = read_weights(prior / DISCRIMINATOR_FILE)["projection.weight"].float()
    new = run.D.state_dict()["projection.weight"]
    k = len(run.classes)
    assert new.shape[0] == k * 2 and old.shape[0] == k
    source = torch.as_tensor(run.class_source)
    assert torch.equal(new[:k].float(), old[source]) and torch.equal(new[k:].float(), old[source])


def test_a_source_conditioned_projection_prior_keeps_its_joint_rows(tmp_path):
    """A prior with the run's classes and sources (and a projection): its joint rows are taken as they are, not
    rebuilt from the first source's block."""
    from synthvu_core.models.registry import DISCRIMINATOR_FILE, read_weights
    from synthvu_core.models.training import Trainer

    ds = sourced(tiny_dataset(patients=6))
    prior = train(ds, tmp_path / "prior", small(steps=1, condition_source=True,
                                                overrides=ArchOverrides(width=4, d_width=4, projection=True)),
                  progress=False)
    run = Trainer(ds, tmp_path / "ft", small(steps=1, init_from=str(prior), condition_source=True,
                                             overrides=ArchOverrides()))
    old = read_weights(prior / DISCRIMINATOR_FILE)["projection.weight"].float()
    assert not torch.equal(old[: len(run.classes)], old[len(run.classes):])  # the two sources' rows differ
    assert torch.equal(run.D.state_dict()["projection.weight"].float(), old)
