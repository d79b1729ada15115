"""The snapshot ensemble (`train --snapshots K`): which steps it keeps, how a VU picks its member, what is saved,
how a resume and a fine-tune treat it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from synthvu_core.errors import SelectionError
from synthvu_core.models import acgan
from synthvu_core.models.registry import GENERATOR_FILE, load_card, load_generator
from synthvu_core.models.sampling import sample_uint8
from synthvu_core.models.training import ArchOverrides, snapshot_steps, train
from tests.test_training import checkpoint_tensors, small, tiny_dataset

torch.set_num_threads(1)


def test_snapshot_steps_are_evenly_spaced_over_the_second_half():
    assert snapshot_steps(600, 4) == [300, 400, 500, 600]
    assert snapshot_steps(600, 1) == [600]
    assert snapshot_steps(10, 2) == [5, 10]


def test_the_member_is_fixed_by_the_noise_and_independent_of_its_coarse_value():
    z = torch.randn(8000, 100, generator=torch.Generator().manual_seed(0))
    which = acgan.snapshot_of(z, 4)
    assert torch.equal(which, acgan.snapshot_of(z.clone(), 4))
    for half in (z[:, -2] > 0, z[:, -2] <= 0):  # each member draws from the whole noise distribution
        share = torch.bincount(which[half], minlength=4).double() / int(half.sum())
        assert torch.all((share - 0.25).abs() < 0.03), share


def ensemble(n_sources=0):
    prior = [[0.3, 0.7], [0.6, 0.4], [0.5, 0.5]] if n_sources else None
    config = acgan.ACGANConfig(shape=(1, 16, 16), n_classes=3, width=4, d_width=4, g_cond="modulate",
                               n_sources=n_sources, source_prior=prior, snapshots=3)
    ens = acgan.build_generator(config).eval()
    for i, member in enumerate(ens.members):  # distinct members
        member.load_state_dict(acgan.build(config, seed=i)[0].state_dict())
    return ens


@pytest.mark.parametrize("n_sources", [0, 2])
def test_each_vu_comes_from_its_member(n_sources):
    ens = ensemble(n_sources)
    z = torch.randn(64, 100, generator=torch.Generator().manual_seed(1))
    y = torch.arange(64) % 3
    with torch.no_grad():
        out = ens(z, y)
        sources = ens.members[0].draw_sources(z, y) if n_sources else None
        which = acgan.snapshot_of(z, 3)
        assert len(set(which.tolist())) == 3
        for i, member in enumerate(ens.members):
            rows = which == i
            expected = member(z[rows], y[rows], None if sources is None else sources[rows])
            assert torch.allclose(out[rows], expected, atol=1e-6)
            assert not torch.allclose(out[rows], ens.members[(i + 1) % 3](z[rows], y[rows], None if sources is None
                                                                       else sources[rows]), atol=1e-3)
    if n_sources:
        ens.fixed_source = 1
        assert all(m.fixed_source == 1 for m in ens.members)


def test_a_run_releases_its_snapshots_and_a_shorter_run_is_the_first_member(tmp_path):
    ds = tiny_dataset()
    four = train(ds, tmp_path / "four", small(steps=4, overrides=ArchOverrides(width=4, d_width=4, snapshots=2)),
                 progress=False)
    two = train(ds, tmp_path / "two", small(steps=2), progress=False)
    saved = load_file(str(four / GENERATOR_FILE))
    last = checkpoint_tensors(four)
    first = load_file(str(two / GENERATOR_FILE))
    assert {k.split(".")[1] for k in saved} == {"0", "1"}
    for k, v in first.items():
        assert torch.equal(saved[f"members.0.{k}"], v), k  # the G of step 2 ...
        assert torch.equal(saved[f"members.1.{k}"], last[f"G_ema.{k}"]), k  # ... and the last one
    card = load_card(four)
    assert card["architecture"]["snapshots"] == 2 and card["training"]["snapshot_steps"] == [2, 4]
    assert "snapshot ensemble" in card["training"]["generator_weights"] and "2, 4" in card["training"][
        "generator_weights"]
    assert "snapshots" not in load_card(two)["architecture"]
    gen = load_generator(four)
    assert isinstance(gen, acgan.SnapshotEnsemble)
    assert sample_uint8(gen, 20, seed=0).images.shape == (20, 1, 32, 32)


def test_a_resume_keeps_the_snapshots_and_refuses_a_checkpoint_without_them(tmp_path):
    ds = tiny_dataset()
    over = ArchOverrides(width=4, d_width=4, snapshots=3)  # 8 steps: snapshots of steps 4, 6 and 8
    one = train(ds, tmp_path / "one", small(steps=8, checkpoint_every=0, overrides=over), progress=False)
    train(ds, tmp_path / "two", small(steps=5, overrides=over), progress=False)  # kept steps 3 and 4
    two = train(ds, tmp_path / "two", small(steps=8, resume=True, overrides=over), progress=False)
    a, b = load_file(str(one / GENERATOR_FILE)), load_file(str(two / GENERATOR_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # step 4 came from the checkpoint
    train(ds, tmp_path / "three", small(steps=6, overrides=over), progress=False)  # kept steps 3 and 5, not 4
    with pytest.raises(SelectionError, match="steps 4,? "):
        train(ds, tmp_path / "three", small(steps=8, resume=True, overrides=over), progress=False)
    with pytest.raises(SelectionError, match="past this run"):  # a shorter run cannot end on its last snapshot
        train(ds, tmp_path / "two", small(steps=7, resume=True, overrides=over), progress=False)
    train(ds, tmp_path / "four", small(steps=4, overrides=over), progress=False)  # resumed on step 4, a snapshot
    four = train(ds, tmp_path / "four", small(steps=8, resume=True, overrides=over), progress=False)
    c = load_file(str(four / GENERATOR_FILE))
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_a_fine_tune_from_an_ensemble_starts_from_its_last_member(tmp_path):
    ds = tiny_dataset()
    prior = train(ds, tmp_path / "prior", small(steps=4, overrides=ArchOverrides(width=4, d_width=4, snapshots=2)),
                  progress=False)
    from synthvu_core.models.training import Trainer

    trainer = Trainer(ds, tmp_path / "tune", small(steps=1, init_from=str(prior), overrides=ArchOverrides()))
    saved = load_file(str(prior / GENERATOR_FILE))
    assert trainer.arch.snapshots == 2  # the prior's, unless the run sets it
    for k, v in trainer.G.state_dict().items():
        assert torch.equal(v, saved[f"members.1.{k}"]), k


def test_the_option_reaches_the_run_and_its_command_line_and_bad_values_are_refused():
    from synthvu_core.models.commands import _command_line
    from synthvu_core.models.training import TrainConfig, config_from_options

    options = {"dataset": "d", "arch": "default", "scheme": "level", "snapshots": 4}
    assert config_from_options(dict(options)).overrides.snapshots == 4
    assert "--snapshots 4" in _command_line(options)
    for bad, flag in (({"snapshots": 9}, "--snapshots"), ({"snapshots": 0}, "--snapshots"), ({"smooth": 99.0},
                                                                                             "--smooth")):
        with pytest.raises(SelectionError, match=flag):
            TrainConfig(overrides=ArchOverrides(**bad)).validate()


def test_an_interpolation_stays_on_one_member(tmp_path):
    from synthvu_core.models.sampling import interpolate

    ds = tiny_dataset()
    folder = train(ds, tmp_path / "e", small(steps=4, overrides=ArchOverrides(width=4, d_width=4, snapshots=4)),
                   progress=False)
    gen = load_generator(folder)
    path = interpolate(gen, gen.card["classes"][0], gen.card["classes"][-1], steps=8, seed=3)
    z = torch.randn(2, gen.card["latent_dim"], generator=torch.Generator().manual_seed(3))
    t = torch.linspace(0, 1, 8)[:, None]
    zs = (1 - t) * z[0] + t * z[1]
    assert len(set(acgan.snapshot_of(zs, 4).tolist())) > 1  # left to the noise, the path would change member
    member = gen.members[int(acgan.snapshot_of(z[:1], 4)[0])]
    wa, wb = torch.eye(len(gen.card["classes"]))[[0, -1]]
    with torch.no_grad():
        expected = member(zs, (1 - t) * wa + t * wb).numpy()
    assert np.allclose(path.images, expected, atol=1e-5)


def test_an_ensemble_needs_two_noise_coordinates():
    with pytest.raises(ValueError, match="2 coordinates"):
        acgan.ACGANConfig(shape=(1, 16, 16), latent_dim=1, snapshots=2)
