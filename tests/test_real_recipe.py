"""Options of `train` for small real datasets: class-balanced real sampling (refused under DP), source conditioning
switched with --[no-]condition-source, a class-loss weight a fine-tune may set; the own-data defaults leave them off."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from synthvu_core.data.dataset import VUDataset
from synthvu_core.errors import SelectionError
from synthvu_core.models import training
from synthvu_core.models.augment import DEFAULT_POLICY
from synthvu_core.models.dp import DPConfig
from synthvu_core.models.training import ArchOverrides, Trainer, train
from tests.test_source_conditioning import sourced
from tests.test_training import small, tiny_dataset

torch.set_num_threads(1)


def args(**kw):
    base = dict(arch="default", scheme="level", init_from=None, from_scratch=False, augment=None, steps=None,
                epochs=None, lr=None, balance_classes=None, condition_source=None, target_epsilon=None,
                noise_multiplier=None)
    return {**base, **kw}


def skewed(patients: int = 6) -> VUDataset:
    """A tiny dataset whose first class holds four times as many train VUs as each other class."""
    ds = tiny_dataset(patients=patients)
    units = ds.units.drop(columns=["split"])
    first = units["level"].iloc[0]
    extra = units[units["level"] == first]
    images = np.concatenate([ds.images] + [ds.images[extra.index.to_numpy()]] * 3)
    units = pd.concat([units] + [extra] * 3, ignore_index=True)
    return VUDataset.from_units(images, units, split=ds.split_config())


def test_balanced_sampling_draws_each_class_about_equally(tmp_path):
    ds = skewed()
    for balance, lo, hi in ((False, 0.3, 1.0), (True, 0.0, 0.3)):
        config = small(steps=1, batch_size=64, balance_classes=balance, scheme="level")
        trainer = Trainer(ds, tmp_path / str(balance), config)
        k = len(trainer.classes)
        counts = np.bincount(trainer.labels.numpy() % k, minlength=k)
        assert counts.max() >= 2 * counts.min()  # the train split is skewed
        drawn = np.concatenate([trainer.labels[trainer._real_batch()[0]].numpy() % k for _ in range(20)])
        share = np.bincount(drawn, minlength=k) / len(drawn)
        excess = share.max() - share.min()
        assert lo <= excess <= hi, (balance, share)
        assert np.allclose(trainer.prior.numpy(), 1 / k) == balance  # generated classes: uniform when balanced


def test_balanced_sources_keep_their_proportion_within_each_class(tmp_path):
    ds = sourced(skewed())
    trainer = Trainer(ds, tmp_path / "b", small(steps=1, balance_classes=True, condition_source=True, scheme="level"))
    k = len(trainer.classes)
    prior = trainer.prior.numpy().reshape(-1, k)
    assert np.allclose(prior.sum(0), 1 / k)
    assert np.allclose(prior.T / prior.sum(0)[:, None], np.asarray(trainer.arch.source_prior))
    trainer.step()


def test_balancing_is_refused_under_dp(tmp_path):
    with pytest.raises(SelectionError, match="balance-classes cannot be private"):
        Trainer(tiny_dataset(), tmp_path / "dp", small(steps=1, balance_classes=True,
                                                         dp=DPConfig(noise_multiplier=1.0)))


def test_the_class_loss_weight_may_be_set_on_a_fine_tune(tmp_path):
    ds = tiny_dataset()
    pre = train(ds, tmp_path / "pre", small(steps=1), progress=False)
    over = ArchOverrides(width=4, d_width=4, aux_weight=3.0)
    trainer = Trainer(ds, tmp_path / "ft", small(steps=1, init_from=str(pre), overrides=over))
    assert trainer.arch.aux_weight == 3.0
    with pytest.raises(SelectionError, match="aux-weight"):
        small(overrides=ArchOverrides(aux_weight=-1.0)).validate()


def test_a_fine_tune_may_choose_which_vus_train_the_class_head_and_names_the_flag_it_may_not_change(tmp_path):
    ds = tiny_dataset()
    pre = train(ds, tmp_path / "pre", small(steps=1), progress=False)
    prior = json.loads((pre / "card.json").read_text())["architecture"]["aux_fake"]
    trainer = Trainer(ds, tmp_path / "ft", small(steps=1, init_from=str(pre),
                                                 overrides=ArchOverrides(width=4, d_width=4, aux_fake=not prior)))
    assert trainer.arch.aux_fake is (not prior)  # --class-loss: which VUs D's class loss counts, not what D is
    trainer.step()
    for over, flag in ((ArchOverrides(width=8, d_width=4), "--width"), (ArchOverrides(width=4, d_width=8), "--d-width"),
                       (ArchOverrides(width=4, d_width=4, g_cond="input"), "--conditioning")):
        with pytest.raises(SelectionError, match=f"fixes the architecture; drop {flag} \\(the prior's: "):
            Trainer(ds, tmp_path / flag, small(steps=1, init_from=str(pre), overrides=over))


def test_own_data_defaults_condition_on_sources_and_weight_the_class_loss_without_dp():
    """Without DP: a projection discriminator, class-loss weight 0.75 and source conditioning where the train split
    holds two or more sources (on the real lumbar MRI they made the VUs recognisable by level and gave each source
    its share, docs/real-data.md), and real VUs drawn with equal weight per class."""
    a = args(init_from="acgan-phantom")
    filled = training.own_data_defaults(a, sourced(tiny_dataset(patients=6)))
    assert a["condition_source"] is True and "--condition-source" in filled
    assert a["aux_weight"] == training.FINE_TUNE_AUX_WEIGHT == 0.75
    assert a["projection"] is True and "--projection" in filled
    assert (a["steps"], a["lr"]) == (training.FINE_TUNE_STEPS, training.FINE_TUNE_LR)
    assert a["balance_classes"] is True and "--balance-classes" in filled


def test_own_data_defaults_leave_sources_off_with_one_source_under_dp_or_when_asked():
    one = args(init_from="acgan-phantom")
    training.own_data_defaults(one, tiny_dataset(patients=6))  # no site column
    assert not one["condition_source"]
    asked = args(init_from="acgan-phantom", condition_source=False)
    training.own_data_defaults(asked, sourced(tiny_dataset(patients=6)))
    assert asked["condition_source"] is False
    private = args(init_from="acgan-phantom", target_epsilon=8.0)
    filled = training.own_data_defaults(private, sourced(tiny_dataset(patients=6)))
    assert not private["condition_source"] and private.get("aux_weight") is None and private.get("projection") is None
    assert (private["steps"], private["lr"]) == (training.PRIVATE_FINE_TUNE_STEPS, training.PRIVATE_FINE_TUNE_LR)
    assert not any("aux-weight" in f or "condition-source" in f for f in filled)


def test_an_opted_out_source_conditioning_is_repeated_by_the_card_command():
    from synthvu_core.models.commands import _command_line

    assert "--no-condition-source" in _command_line({"condition_source": False, "dataset": "d"})
    assert "condition-source" not in _command_line({"condition_source": None, "dataset": "d"})


def test_balanced_sources_draw_each_source_of_a_class_about_equally(tmp_path):
    ds = sourced(skewed())
    trainer = Trainer(ds, tmp_path / "s", small(steps=1, batch_size=64, balance_sources=True, condition_source=True,
                                                scheme="level"))
    k, n_src = len(trainer.classes), len(trainer.sources)
    cells = trainer.prior_counts.reshape(n_src, k)
    prior = trainer.prior.numpy().reshape(n_src, k)
    class_share = cells.sum(0) / cells.sum()
    assert np.allclose(prior.sum(0), class_share)  # classes keep their train proportions
    held = cells > 0
    assert np.allclose(prior[held], (class_share / held.sum(0))[None, :].repeat(n_src, 0)[held])
    drawn = np.concatenate([trainer.labels[trainer._real_batch()[0]].numpy() for _ in range(40)])
    got = np.bincount(drawn, minlength=n_src * k).reshape(n_src, k) / len(drawn)
    assert np.abs(got - prior).max() < 0.06
    with pytest.raises(SelectionError, match="balancing sources needs"):
        Trainer(ds, tmp_path / "x", small(steps=1, balance_sources=True, scheme="level"))


def test_train_projection_option_reaches_the_discriminator_and_its_card_command():
    from synthvu_core.models.commands import _command_line

    on = training.config_from_options(args(projection=True, width=4, d_width=4, steps=1))
    off = training.config_from_options(args(projection=False, width=4, d_width=4, steps=1))
    left_out = training.config_from_options(args(width=4, d_width=4, steps=1))
    assert (on.overrides.projection, off.overrides.projection, left_out.overrides.projection) == (True, False, None)
    assert "--projection" in _command_line({"projection": True, "dataset": "d"})
    assert "--no-projection" in _command_line({"projection": False, "dataset": "d"})
    assert "projection" not in _command_line({"projection": None, "dataset": "d"})
    under_dp = training.config_from_options(args(projection=True, target_epsilon=8.0, steps=1))
    assert under_dp.overrides.projection is True and under_dp.dp.target_epsilon == 8.0


def test_freeze_d_keeps_the_priors_first_stages_and_trains_the_rest(tmp_path):
    ds = tiny_dataset()
    pre = train(ds, tmp_path / "pre", small(steps=1), progress=False)
    trainer = Trainer(ds, tmp_path / "ft", small(steps=3, init_from=str(pre), freeze_d=1))
    before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    for _ in range(3):
        trainer.step()
    moved = {k for k, v in trainer.D.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and not any(k.startswith("body.0.") for k in moved)  # stage 1 kept, the rest trained
    assert any(k.startswith("body.3.") for k in moved) and any(k.startswith("adv_head") for k in moved)
    assert trainer._identity()["freeze_d"] == 1
    from tests.test_training import public_dataset

    public = train(public_dataset(), tmp_path / "public", small(steps=1), progress=False)
    private = Trainer(ds, tmp_path / "dp", small(steps=2, init_from=str(public), freeze_d=1, classes=["T", "L"],
                                                 dp=DPConfig(noise_multiplier=1.0)))
    kept = private.D.body[0].weight.detach().clone()
    private.step()
    assert torch.equal(private.D.body[0].weight, kept) and private.D.body[3].weight.requires_grad
    from synthvu_core.models.registry import load_card

    out = train(ds, tmp_path / "card", small(steps=1, init_from=str(pre), freeze_d=1), progress=False)
    assert load_card(out)["training"]["freeze_d"] == 1
    assert training.config_from_options(args(freeze_d=None, steps=1)).freeze_d == 0
    with pytest.raises(SelectionError, match="needs a prior"):
        Trainer(ds, tmp_path / "x", small(steps=1, freeze_d=1))
    with pytest.raises(SelectionError, match="stages"):
        Trainer(ds, tmp_path / "y", small(steps=1, init_from=str(pre), freeze_d=3))


def test_lecam_pulls_the_logits_towards_the_other_sides_average_and_is_kept_by_a_resume(tmp_path):
    ds = tiny_dataset()
    trainer = Trainer(ds, tmp_path / "t", small(steps=4, lecam=0.5))
    trainer.lecam_avg = torch.tensor([1.0, -1.0])  # moving averages of the real and the fake logits
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-3.0, 3.0])
    term = trainer._lecam(real, fake)
    # relu(real - avg_fake)^2 = (1^2 + 3^2) / 2; relu(avg_real - fake)^2 = (4^2 + 0) / 2
    assert term.item() == pytest.approx(5.0 + 8.0)
    assert trainer.lecam_avg.tolist() == pytest.approx([0.99 * 1.0 + 0.01 * 1.0, 0.99 * -1.0 + 0.01 * 0.0])
    kept = trainer.lecam_avg[0].item()
    assert torch.isfinite(trainer._lecam(torch.empty(0), fake))  # a shard without real VUs: the real average stays
    assert trainer.lecam_avg[0].item() == pytest.approx(kept)
    off = Trainer(ds, tmp_path / "off", small(steps=4))
    on = Trainer(ds, tmp_path / "on", small(steps=4, lecam=0.5))
    off.step(), on.step()
    differs = [k for k, v in on.D.state_dict().items() if not torch.equal(v, off.D.state_dict()[k])]
    assert differs and on.lecam_avg.abs().sum() > 0 and off.lecam_avg.abs().sum() == 0
    on.step()
    on.save_checkpoint()
    again = Trainer(ds, tmp_path / "on", small(steps=4, lecam=0.5, resume=True))
    assert again.load_checkpoint() and torch.equal(again.lecam_avg, on.lecam_avg)
    assert on._identity()["lecam"] == 0.5 and "lecam" not in off._identity()
    from synthvu_core.models.registry import load_card

    out = train(ds, tmp_path / "card", small(steps=1, lecam=0.25), progress=False)
    assert load_card(out)["training"]["lecam"] == 0.25
    assert training.config_from_options(args(lecam=None, steps=1)).lecam == 0.0
    with pytest.raises(SelectionError, match="cannot be private"):
        training.config_from_options(args(lecam=0.5, noise_multiplier=1.0, steps=1))
    with pytest.raises(SelectionError, match="--lecam"):
        training.config_from_options(args(lecam=-1.0, steps=1))


def test_mode_seeking_pairs_labels_and_penalises_a_generator_that_ignores_its_noise(tmp_path):
    z = torch.randn(8, 4)
    same = torch.ones(8, 1, 2, 2)  # G ignored z: every pair identical
    varied = torch.randn(8, 1, 2, 2)
    assert training.mode_seeking_term(same, z).item() == pytest.approx(1e5)
    assert training.mode_seeking_term(varied, z).item() < 10
    ds = tiny_dataset()
    on = Trainer(ds, tmp_path / "on", small(steps=2, mode_seeking=1.0))
    fake, y = on._fake_batch()
    assert torch.equal(y[0::2], y[1::2]) and len(fake) == len(y)
    from synthvu_core.models.distributed import DistContext

    shard = Trainer(ds, tmp_path / "shard", small(steps=2, batch_size=8, mode_seeking=1.0))
    shard.dist = DistContext(rank=1, world_size=2, local_rank=1, backend="gloo")  # the second of two processes
    _, y_shard = shard._fake_batch()
    assert len(y_shard) == 4 and torch.equal(y_shard[0::2], y_shard[1::2])  # whole pairs, not every other VU
    off = Trainer(ds, tmp_path / "off", small(steps=2))
    _, y_off = off._fake_batch()
    assert not torch.equal(y_off[0::2], y_off[1::2])  # the default draws every label on its own
    loss = Trainer(ds, tmp_path / "a", small(steps=2, mode_seeking=1.0)).step()["loss_g"]
    plain = Trainer(ds, tmp_path / "b", small(steps=2, mode_seeking=1e-9)).step()["loss_g"]  # the same pairs
    assert loss > plain + 0.05  # the term is in G's loss
    assert on._identity()["mode_seeking"] == 1.0
    with pytest.raises(SelectionError, match="even"):
        training.config_from_options(args(mode_seeking=1.0, batch_size=7, steps=1))
    under_dp = training.config_from_options(args(mode_seeking=1.0, noise_multiplier=1.0, steps=1))
    assert under_dp.mode_seeking == 1.0 and under_dp.dp is not None


def test_mirror_reverses_the_slice_order_of_about_half_the_vus():
    from synthvu_core.models.augment import mirror_draw, mirror_slices

    x = torch.arange(400 * 3 * 2 * 2, dtype=torch.float32).reshape(400, 3, 2, 2)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(mirror_slices(x, mirror_draw(400, g, p=1.0)), x.flip(1))
    assert torch.equal(mirror_slices(x, mirror_draw(400, g, p=0.0)), x)
    out = mirror_slices(x, mirror_draw(400, g))
    flipped = (out == x.flip(1)).flatten(1).all(1)
    assert ((out == x).flatten(1).all(1) | flipped).all()  # each VU whole, either way round
    assert 150 < int(flipped.sum()) < 250
    with pytest.raises(SelectionError, match="slices"):
        mirror_slices(x[:, None], mirror_draw(400, g))


def test_affine_slices_rotate_and_scale_every_slice_with_background_entering():
    from synthvu_core.models.augment import affine_draw, affine_slices

    x = torch.rand(2, 3, 8, 8) * 2 - 1
    quarter = torch.tensor([[[0.0, -1, 0], [1, 0, 0]]]).repeat(2, 1, 1)
    assert torch.allclose(affine_slices(x, quarter), torch.rot90(x, 1, dims=(2, 3)), atol=1e-6)
    half = affine_slices(x, torch.tensor([[[2.0, 0, 0], [0, 2, 0]]]).repeat(2, 1, 1))  # half the size
    assert torch.equal(half[:, :, :2], torch.full_like(half[:, :, :2], -1.0))  # background where nothing was
    assert torch.allclose(affine_slices(x, affine_draw(2, torch.Generator(), 0.0, 0.0)), x, atol=1e-5)
    drawn = affine_draw(4000, torch.Generator().manual_seed(0), 7.0, 0.05)
    angle = torch.rad2deg(torch.atan2(drawn[:, 1, 0], drawn[:, 0, 0]))
    scale = 1 / drawn[:, 0, :2].norm(dim=1)
    assert 6.9 < float(angle.abs().max()) <= 7.0 and 0.0495 < float((scale - 1).abs().max()) <= 0.05
    with pytest.raises(SelectionError, match="transform"):
        affine_slices(x[:, None], quarter)


def test_rotate_and_rescale_reach_the_real_vus_d_sees_only_and_are_recorded(tmp_path, monkeypatch):
    import json

    ds = tiny_dataset(shape=(3, 32, 32), patients=6)

    def seen(**extra):
        trainer = Trainer(ds, tmp_path / f"s{len(extra)}", small(steps=1, batch_size=8, seed=3, **extra))
        got = []
        monkeypatch.setattr(trainer, "_discriminator_step", lambda real, *a: got.append(real) or {})
        monkeypatch.setattr(trainer, "_generator_step", lambda *a: {})
        trainer.step()
        return trainer, got[0]

    plain_trainer, plain = seen()
    moved_trainer, moved = seen(rotate=10.0, rescale=0.1)
    assert plain.shape == moved.shape and not torch.allclose(plain, moved, atol=1e-3)
    from synthvu_core.models.augment import affine_draw, affine_slices

    fresh = Trainer(ds, tmp_path / "replay", small(steps=1, batch_size=8, seed=3, rotate=10.0, rescale=0.1))
    theta = affine_draw(len(plain), fresh.gen_augment, 10.0, 0.1)  # the step's first draw from that generator
    assert torch.allclose(moved, affine_slices(plain, theta), atol=1e-6)  # the plain batch, moved by that draw
    assert "rotate" not in plain_trainer._identity()
    assert moved_trainer._identity()["rotate"] == 10.0 and moved_trainer._identity()["rescale"] == 0.1
    out = train(ds, tmp_path / "card", small(steps=1, rotate=5.0), progress=False)
    card = json.loads((out / "card.json").read_text())["training"]
    assert card["rotate"] == 5.0 and "rescale" not in card
    for bad in ({"rotate": -1.0}, {"rotate": 46.0}, {"rescale": 0.6}, {"rescale": float("nan")}):
        with pytest.raises(SelectionError, match="--rotate|--rescale"):
            Trainer(ds, tmp_path / "bad", small(steps=1, **bad))
    with pytest.raises(SelectionError, match="not offered under DP"):
        training.config_from_options(args(rotate=5.0, noise_multiplier=1.0, steps=1))


def test_mirror_under_torchrun_flips_what_one_process_would(tmp_path, monkeypatch):
    """Two processes' shares of a step's real VUs, joined, are the VUs one process mirrors (flips drawn for the
    global batch before it is sharded, not per shard from the same seed)."""
    from synthvu_core.models.distributed import DistContext

    ds = tiny_dataset(shape=(3, 32, 32), patients=6)

    def seen_real(rank, world):
        trainer = Trainer(ds, tmp_path / f"r{rank}{world}", small(steps=1, batch_size=8, mirror=True, rotate=9.0))
        if world > 1:
            trainer.dist = DistContext(rank=rank, world_size=world, local_rank=rank, backend="gloo")
        seen = []
        monkeypatch.setattr(trainer, "_discriminator_step", lambda real, *a: seen.append(real) or {})
        monkeypatch.setattr(trainer, "_generator_step", lambda *a: {})
        monkeypatch.setattr(trainer, "_fake_batch", lambda: (None, None))
        trainer.step()
        return seen[0]

    one = seen_real(0, 1)
    joined = torch.empty_like(one)
    joined[0::2], joined[1::2] = seen_real(0, 2), seen_real(1, 2)
    assert torch.equal(joined, one)


@pytest.mark.parametrize("settings", [{"augment": DEFAULT_POLICY}, {"instance_noise": 0.3},
                                      {"augment": "translation", "instance_noise": 0.1}])
def test_diffaugment_under_torchrun_augments_what_one_process_would(tmp_path, monkeypatch, settings):
    """Two processes' shares of what D sees in a step (real and generated VUs in D's step, generated VUs in G's),
    joined, are what one process sees: the transforms of the global batch are drawn, not per shard."""
    from synthvu_core.models.distributed import DistContext

    ds = tiny_dataset(shape=(3, 32, 32), patients=6)

    def seen(rank, world):
        trainer = Trainer(ds, tmp_path / f"a{rank}{world}", small(steps=1, batch_size=8, **settings))
        if world > 1:
            trainer.dist = DistContext(rank=rank, world_size=world, local_rank=rank, backend="gloo")
        inputs = []
        forward = trainer._forward_d
        monkeypatch.setattr(
            trainer, "_forward_d", lambda x, y, **kw: inputs.append(x.detach().clone()) or forward(x, y, **kw)
        )
        trainer.step()
        return inputs

    one, shares = seen(0, 1), [seen(0, 2), seen(1, 2)]
    n_real = len(one[0]) - 8
    for k, whole in enumerate(one):  # D's step: real rows then generated rows; G's step: generated rows
        joined = torch.empty_like(whole)
        for rank, share in enumerate(shares):
            own = share[k]
            if k == 0:
                r = len(own) - 4
                joined[rank:n_real:2], joined[n_real + rank :: 2] = own[:r], own[r:]
            else:
                joined[rank::2] = own
        torch.testing.assert_close(joined, whole)


@pytest.mark.parametrize("private", [False, True])
def test_mirror_reaches_the_real_vus_d_sees_and_is_recorded(tmp_path, monkeypatch, private):
    """D's step (and, under DP, the clipped per-patient step) gets real VUs of which some are mirrored."""
    ds = tiny_dataset(shape=(3, 32, 32), patients=6)
    dp = DPConfig(noise_multiplier=1.0, patients_per_step=2) if private else None
    trainer = Trainer(ds, tmp_path / "m", small(steps=4, batch_size=8, mirror=True, dp=dp))
    seen = []
    name = "_private_discriminator_step" if private else "_discriminator_step"
    original = getattr(trainer, name)
    monkeypatch.setattr(trainer, name, lambda real, *a: seen.append(real.clone()) or original(real, *a))
    for _ in range(4):
        trainer.step()
    images = trainer.images.float() / 127.5 - 1.0
    kinds = []
    for real in seen:
        for vu in real:
            same = (images == vu).flatten(1).all(1).any()
            mirrored = (images.flip(1) == vu).flatten(1).all(1).any()
            assert same or mirrored
            kinds.append(bool(mirrored and not same))
    assert any(kinds) and not all(kinds)
    assert trainer._identity()["mirror"] is True and "mirror" not in Trainer(
        ds, tmp_path / "n", small(steps=1, dp=dp))._identity()


def test_own_data_defaults_mirror_a_fine_tune_without_dp_only():
    from synthvu_core.models.commands import _command_line

    plain = args(init_from="acgan-phantom")
    assert "--mirror" in training.own_data_defaults(plain, tiny_dataset(patients=6)) and plain["mirror"] is True
    assert training.config_from_options({**plain, "width": 4, "d_width": 4}).mirror is True
    asked = args(init_from="acgan-phantom", mirror=False)
    training.own_data_defaults(asked, tiny_dataset(patients=6))
    assert asked["mirror"] is False and "--no-mirror" in _command_line({"mirror": False, "dataset": "d"})
    private = args(init_from="acgan-phantom", target_epsilon=8.0)
    training.own_data_defaults(private, tiny_dataset(patients=6))
    assert private.get("mirror") is None and training.config_from_options(
        {**private, "width": 4, "d_width": 4}).mirror is False


def test_own_data_defaults_balance_the_classes_of_a_fine_tune_without_dp_only():
    from synthvu_core.models.commands import _command_line

    plain = args(init_from="acgan-phantom")
    assert "--balance-classes" in training.own_data_defaults(plain, tiny_dataset(patients=6))
    assert training.config_from_options({**plain, "width": 4, "d_width": 4}).balance_classes is True
    asked = args(init_from="acgan-phantom", balance_classes=False)
    training.own_data_defaults(asked, tiny_dataset(patients=6))
    assert asked["balance_classes"] is False
    assert "--no-balance-classes" in _command_line({"balance_classes": False, "dataset": "d"})
    private = args(init_from="acgan-phantom", target_epsilon=8.0)
    training.own_data_defaults(private, tiny_dataset(patients=6))  # balancing counts private VUs per class
    assert private.get("balance_classes") is None and training.config_from_options(
        {**private, "width": 4, "d_width": 4}).balance_classes is False
    scratch = args(from_scratch=True)
    training.own_data_defaults(scratch, tiny_dataset(patients=6))
    assert scratch.get("balance_classes") is None


def test_own_data_defaults_keep_the_published_translation_and_the_command_spells_out_another():
    from synthvu_core.models.augment import TRANSLATION_RATIO
    from synthvu_core.models.commands import _command_line

    plain = args(init_from="acgan-phantom")
    filled = training.own_data_defaults(plain, tiny_dataset(patients=6))
    assert "--augment translation" in filled and not any("--translate" in f for f in filled)
    assert training.config_from_options({**plain, "width": 4, "d_width": 4}).translate == TRANSLATION_RATIO == 0.125
    asked = args(init_from="acgan-phantom", translate=0.0625)
    training.own_data_defaults(asked, tiny_dataset(patients=6))
    assert training.config_from_options({**asked, "width": 4, "d_width": 4}).translate == 0.0625
    assert "--translate 0.0625" in _command_line({"dataset": "d", "augment": "translation", "translate": 0.0625})


def test_own_data_defaults_freeze_the_priors_first_discriminator_stages_without_dp_only():
    from synthvu_core.models.commands import _command_line

    plain = args(init_from="acgan-phantom")
    assert "--freeze-d 2" in training.own_data_defaults(plain, tiny_dataset(patients=6)) and plain["freeze_d"] == 2
    assert training.config_from_options({**plain, "width": 4, "d_width": 4}).freeze_d == 2
    asked = args(init_from="acgan-phantom", freeze_d=0)
    training.own_data_defaults(asked, tiny_dataset(patients=6))
    assert asked["freeze_d"] == 0 and "--freeze-d 0" in _command_line({"freeze_d": 0, "dataset": "d"})
    private = args(init_from="acgan-phantom", target_epsilon=8.0)
    training.own_data_defaults(private, tiny_dataset(patients=6))
    assert private.get("freeze_d") is None and training.config_from_options(
        {**private, "width": 4, "d_width": 4}).freeze_d == 0
    scratch = args(from_scratch=True)
    training.own_data_defaults(scratch, tiny_dataset(patients=6))
    assert scratch.get("freeze_d") is None
    shipped_prior = args()  # the default prior, filled because the VU shape is its own
    training.own_data_defaults(shipped_prior, tiny_dataset(shape=(9, 64, 64), patients=6))
    assert shipped_prior["init_from"] == "acgan-phantom" and shipped_prior["freeze_d"] == 2
    explicit = args(init_from="acgan-phantom", freeze_d=3)
    training.own_data_defaults(explicit, tiny_dataset(patients=6))
    assert explicit["freeze_d"] == 3
    two_stages = args(init_from="acgan-phantom")  # 16 x 16 VUs: D has 2 stages, freezing 2 would leave none
    training.own_data_defaults(two_stages, tiny_dataset(shape=(1, 16, 16), patients=6))
    assert two_stages.get("freeze_d") is None


def test_own_data_defaults_smooth_a_fine_tune_without_dp_only():
    from synthvu_core.models.commands import _command_line

    plain = args(init_from="acgan-phantom")
    assert "--smooth 1" in training.own_data_defaults(plain, tiny_dataset(patients=6)) and plain["smooth"] == 1.0
    assert training.config_from_options({**plain, "width": 4, "d_width": 4}).overrides.smooth == 1.0
    asked = args(init_from="acgan-phantom", smooth=0.0)
    training.own_data_defaults(asked, tiny_dataset(patients=6))
    assert asked["smooth"] == 0.0 and "--smooth 0.0" in _command_line({"smooth": 0.0, "dataset": "d"})
    private = args(init_from="acgan-phantom", target_epsilon=8.0)
    training.own_data_defaults(private, tiny_dataset(patients=6))
    assert private.get("smooth") is None and training.config_from_options(
        {**private, "width": 4, "d_width": 4}).overrides.smooth is None


def test_r1_penalty_is_the_squared_input_gradient_of_the_real_logit():
    w = torch.randn(2, 4, 4)
    x = torch.randn(5, 2, 4, 4, requires_grad=True)
    adv = (x * w).flatten(1).sum(1) + (x**2).flatten(1).sum(1)  # gradient by x_i: w + 2 x_i
    got = training.r1_penalty(adv[:3], x)
    want = (w + 2 * x[:3].detach()).pow(2).flatten(1).sum(1)
    torch.testing.assert_close(got, want)
    got.sum().backward()  # differentiable: D's step can descend it
    assert x.grad is not None


def test_r1_enters_d_loss_is_recorded_and_refused_under_dp(tmp_path):
    ds = tiny_dataset(shape=(3, 32, 32), patients=6)
    losses = {}
    for gamma in (0.0, 10.0):
        trainer = Trainer(ds, tmp_path / f"r{gamma}", small(steps=1, batch_size=8, r1=gamma))
        losses[gamma] = trainer.step()["loss_d"]
        assert trainer._identity().get("r1") == (gamma or None)
    assert losses[10.0] > losses[0.0]
    with pytest.raises(SelectionError, match="--r1"):
        small(steps=1, r1=1.0, dp=DPConfig(noise_multiplier=1.0)).validate()


def test_instance_noise_adds_independent_noise_of_its_sigma_to_what_d_sees(tmp_path, monkeypatch):
    from synthvu_core.models.augment import instance_noise

    x = torch.zeros(400, 3, 16, 16)
    out = instance_noise(x, 0.3, torch.Generator().manual_seed(0))
    assert abs(float(out.std()) - 0.3) < 0.01 and abs(float(out.mean())) < 0.01
    per_vu = out.flatten(1)
    assert abs(float(torch.corrcoef(per_vu[:2])[0, 1])) < 0.1  # VUs do not share their noise
    ds = tiny_dataset(shape=(3, 32, 32), patients=6)
    trainer = Trainer(ds, tmp_path / "n", small(steps=1, batch_size=8, instance_noise=0.5))
    inputs = []
    forward = trainer._forward_d
    monkeypatch.setattr(
        trainer, "_forward_d", lambda x, y, **kw: inputs.append(x.detach().clone()) or forward(x, y, **kw)
    )
    trainer.step()
    real = inputs[0][: len(inputs[0]) - 8]
    images = trainer.images.float() / 127.5 - 1.0
    nearest = torch.cdist(real.flatten(1), images.flatten(1)).min(1).values / real[0].numel() ** 0.5
    assert ((nearest > 0.4) & (nearest < 0.6)).all()  # each real VU D sees is a train VU plus noise of sd 0.5
    assert trainer._identity()["instance_noise"] == 0.5


def test_d_lr_moves_the_discriminator_alone_at_its_own_rate_and_is_recorded(tmp_path):
    from synthvu_core.models.architectures import ACGAN_OPTIONS
    from synthvu_core.models.training import config_from_options

    ds = tiny_dataset(shape=(3, 32, 32), patients=6)
    moved = {}
    for name, d_lr in (("same", None), ("ttur", 1e-5)):
        trainer = Trainer(ds, tmp_path / name, small(steps=1, batch_size=8, d_lr=d_lr))
        before = [p.detach().clone() for p in trainer.D.parameters()]
        trainer.step()
        moved[name] = max(float((p.detach() - b).abs().max()) for p, b in zip(trainer.D.parameters(), before))
        assert trainer.opt_G.param_groups[0]["lr"] == trainer.arch.lr  # G keeps --lr
        assert trainer._identity().get("d_lr") == d_lr  # a resume with another D rate is another run
        assert trainer.card()["training"].get("d_lr") == d_lr
    lr = Trainer(ds, tmp_path / "x", small(steps=1)).arch.lr
    # Adam's first step moves each weight by about lr (float32 rounding of the weights: a few per cent)
    assert 0.5 * lr < moved["same"] <= 1.05 * lr
    assert 0.5e-5 < moved["ttur"] <= 1.05e-5
    assert "d_lr" in ACGAN_OPTIONS and config_from_options({"d_lr": 1e-4, "scheme": "level"}).d_lr == 1e-4
    with pytest.raises(SelectionError, match="--d-lr"):
        small(steps=1, d_lr=0.0).validate()


def test_gaussian_blur_is_scipys_in_plane_filter_and_off_at_zero():
    from scipy.ndimage import gaussian_filter

    from synthvu_core.models.acgan import gaussian_blur

    x = torch.rand(2, 3, 20, 24)
    assert gaussian_blur(x, 0.0) is x
    got = gaussian_blur(x, 1.0).numpy()
    want = gaussian_filter(x.numpy(), sigma=(0, 0, 1.0, 1.0), mode="mirror", truncate=3.0)
    np.testing.assert_allclose(got, want, atol=1e-5)
    flat = torch.full((1, 2, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 2.0), flat)


def test_smooth_filters_g_output_and_the_real_vus_d_sees(tmp_path, monkeypatch):
    from synthvu_core.models.acgan import ACGANConfig, gaussian_blur

    ds = tiny_dataset(shape=(3, 32, 32), patients=6)
    over = ArchOverrides(width=4, d_width=4, smooth=1.5)
    trainer = Trainer(ds, tmp_path / "s", small(steps=1, batch_size=8, overrides=over))
    seen = []
    monkeypatch.setattr(trainer, "_discriminator_step", lambda real, *a: seen.append(real) or {})
    monkeypatch.setattr(trainer, "_generator_step", lambda *a: {})
    trainer.step()
    images = gaussian_blur(trainer.images.float() / 127.5 - 1.0, 1.5)
    assert all((images - vu).flatten(1).abs().amax(1).min() < 1e-5 for vu in seen[0])  # each a filtered train VU
    z = torch.randn(64, trainer.arch.latent_dim)
    y = torch.zeros(64, dtype=torch.long)
    sharp = trainer.G.__class__(ACGANConfig.from_dict({**trainer.arch.to_dict(), "smooth": 0.0}))
    sharp.load_state_dict(trainer.G.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(trainer.G(z, y), gaussian_blur(sharp(z, y), 1.5))
    assert trainer.arch.to_dict()["smooth"] == 1.5 and "smooth" not in sharp.config.to_dict()


def test_a_released_smooth_discriminator_scores_vus_through_the_real_vus_filter(tmp_path):
    """The evaluation's white-box attack feeds D raw real VUs: a released D must filter them as training did."""
    from synthvu_core.models.acgan import gaussian_blur
    from synthvu_core.models.registry import load_discriminator

    ds = tiny_dataset(shape=(3, 32, 32), patients=6)
    over = ArchOverrides(width=4, d_width=4, smooth=1.0)
    out = train(ds, tmp_path / "s", small(steps=1, batch_size=8, overrides=over), progress=False)
    released = load_discriminator(out)
    assert released.input_smooth == 1.0
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    raw = released.__class__(released.config)
    raw.load_state_dict(released.state_dict())
    raw.eval()
    with torch.no_grad():
        torch.testing.assert_close(released(x)[0], raw(gaussian_blur(x, 1.0))[0])
        assert not torch.allclose(released(x)[0], raw(x)[0])


def test_audit_canaries_take_the_source_column_the_trainer_conditions_on():
    from synthvu_core.models.audit import audit_dataset
    from synthvu_core.names import SOURCE_COLUMN

    base = sourced(tiny_dataset(shape=(3, 32, 32), patients=6))
    images = np.zeros((2, 3, 32, 32), np.uint8)
    data = audit_dataset(base, images, ["L", "T"], np.array([True, True]), "region", source="B")
    canaries = data.units[data.units["patient_id"].str.startswith("canary-")]
    assert list(canaries[SOURCE_COLUMN]) == ["B", "B"]


@pytest.mark.parametrize("arch", ["default", "pgan"])
@pytest.mark.parametrize("clean", [False, True])
def test_clean_class_head_reads_the_vus_as_they_are(tmp_path, monkeypatch, clean, arch):
    """With --clean-class-head, D's class loss (on real VUs; with pgan's aux_fake on generated ones too) and G's class
    loss read the VUs un-augmented, while the real/fake logit still reads them augmented; without it, all augmented.
    Augmentation here blanks every VU, so an augmented logit cannot pass for a clean one."""
    ds = tiny_dataset(shape=(3, 32, 32), patients=6)
    config = small(arch=arch, steps=1, batch_size=8, augment="translation", clean_class_head=clean)
    trainer = Trainer(ds, tmp_path / "c", config)
    monkeypatch.setattr(trainer, "_augment", lambda x, real=None: x * 0)
    seen, checks = {}, []
    d_step, g_step, d_loss = trainer._discriminator_step, trainer._generator_step, training.discriminator_loss
    monkeypatch.setattr(trainer, "_discriminator_step",
                        lambda real, y, fake, y_fake: seen.update(x=torch.cat([real, fake.detach()]).clone(),
                                                                  y=torch.cat([y, y_fake]).clone(), n=len(real))
                        or d_step(real, y, fake, y_fake))
    monkeypatch.setattr(trainer, "_generator_step",
                        lambda fake, y: seen.update(fake=fake.detach().clone(), y_fake=y.clone()) or g_step(fake, y))
    aux, g_cls = training.aux_loss, []  # the class logits G's loss reads (the only call with grad inside G's step)
    monkeypatch.setattr(training, "aux_loss", lambda cls, *a: (g_cls.append(cls.detach().clone())
                                                                if "fake" in seen and cls.requires_grad else None)
                        or aux(cls, *a))

    def loss_spy(adv, cls, target, labels, *a):
        with torch.no_grad():  # D as the loss sees it (before its update)
            clean_cls = trainer._forward_d(seen["x"], seen["y"])[1]
            blank_adv = trainer._forward_d(seen["x"] * 0, seen["y"])[0]
        rows = len(cls) if trainer.arch.aux_fake else seen["n"]  # the rows D's class loss counts
        checks.append((torch.allclose(cls[:rows], clean_cls[:rows], atol=1e-5), torch.allclose(adv, blank_adv)))
        return d_loss(adv, cls, target, labels, *a)

    monkeypatch.setattr(training, "discriminator_loss", loss_spy)
    trainer.step()
    with torch.no_grad():  # G's step leaves D as it is: its outputs on the clean and the blanked generated VUs
        fake, y = seen["fake"], seen["y_fake"]
        clean_cls = trainer._forward_d(fake, y)[1]
        adv = trainer._forward_d(fake * 0, y)[0]
        blank_adv = torch.nn.functional.binary_cross_entropy_with_logits(adv, torch.ones_like(adv)).item()
    assert checks == [(clean, True)]
    assert len(g_cls) == 1 and torch.equal(g_cls[0], clean_cls) == clean
    adv_part = trainer.last["loss_g"] - trainer.arch.aux_weight * trainer.last["aux_g"]
    assert adv_part == pytest.approx(blank_adv, abs=1e-5)
    assert trainer._identity().get("clean_class_head", False) is clean


def test_clean_class_head_goes_into_the_card_and_command(tmp_path):
    from synthvu_core.models.commands import _command_line

    ds = tiny_dataset(shape=(3, 32, 32), patients=6)
    folder = train(ds, tmp_path / "c", small(steps=1, augment="color", clean_class_head=True), progress=False)
    card = json.loads((folder / "card.json").read_text())
    assert card["training"]["clean_class_head"] is True
    assert "--clean-class-head" in _command_line({"dataset": "d", "augment": "color", "clean_class_head": True})
    assert training.config_from_options(args(augment="color", clean_class_head=True, width=4, d_width=4,
                                             init_from=None)).clean_class_head is True


def test_a_resume_names_a_setting_only_the_checkpoint_has(tmp_path):
    from synthvu_core.errors import CheckpointError
    from synthvu_core.models import checkpoint

    checkpoint.write(tmp_path / "ck", {"w": torch.zeros(1)}, {"identity": {"steps": 4, "mirror": True}})
    with pytest.raises(CheckpointError, match=r"other settings \(mirror\)"):
        checkpoint.read(tmp_path / "ck", {"steps": 4})


def test_clean_class_head_needs_augmentation_and_no_dp(tmp_path):
    ds = tiny_dataset(shape=(3, 32, 32), patients=6)
    with pytest.raises(SelectionError, match="needs --augment"):
        train(ds, tmp_path / "a", small(steps=1, clean_class_head=True))
    with pytest.raises(SelectionError, match="cannot be private"):
        train(ds, tmp_path / "b", small(steps=1, augment="color", clean_class_head=True,
                                       dp=DPConfig(noise_multiplier=1.0, patients_per_step=2)))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_ada_moves_the_augmentation_probability_by_the_sign_of_ds_real_logits_and_is_kept_by_a_resume(tmp_path):
    ds = tiny_dataset()
    cfg = dict(steps=4, augment=DEFAULT_POLICY, ada_target=0.6)
    trainer = Trainer(ds, tmp_path / "t", small(**cfg))
    sure, unsure = torch.tensor([3.0, 2.0, 1.0, 4.0, 0.5]), torch.tensor([3.0, -2.0, 1.0, -4.0, 0.5])  # r 1.0, 0.2
    step = training.ADA_INTERVAL / training.ADA_RAMP_STEPS
    for i in range(training.ADA_INTERVAL):  # p moves once per interval, up while D is surer than the target
        trainer.step_count = i
        trainer._ada_update(sure)
        assert trainer.ada[0].item() == pytest.approx(step if i == training.ADA_INTERVAL - 1 else 0.0)
    for i in range(training.ADA_INTERVAL, 3 * training.ADA_INTERVAL):
        trainer.step_count = i
        trainer._ada_update(unsure)
    assert trainer.ada[0].item() == 0.0  # down once to 0, then held at 0
    x = torch.rand(6, *ds.images.shape[1:]) * 2 - 1
    assert torch.equal(trainer._augment(x.clone()), x)  # p = 0: every VU as it is
    trainer.ada[0] = 1.0
    state = trainer.gen_augment.get_state()
    both = trainer._augment(x.clone())
    from synthvu_core.models.augment import augment

    g = torch.Generator()
    g.set_state(state)
    torch.rand(len(x), generator=g)  # the draw that picks the VUs to augment comes first
    assert torch.equal(both, augment(x.clone(), trainer.augment_policy, g))  # p = 1: every VU augmented
    on = Trainer(ds, tmp_path / "on", small(**cfg))
    for _ in range(training.ADA_INTERVAL):
        on.step()
    assert on.ada[0].item() in (0.0, pytest.approx(step)) and on.ada[3].item() == 0.0 and on.ada[2].item() == 0
    on.save_checkpoint()
    again = Trainer(ds, tmp_path / "on", small(**cfg, resume=True))
    assert again.load_checkpoint() and torch.equal(again.ada, on.ada)
    assert on._identity()["ada_target"] == 0.6 and "ada_target" not in Trainer(ds, tmp_path / "o", small())._identity()
    from synthvu_core.models.registry import load_card

    out = train(ds, tmp_path / "card", small(steps=1, **{k: v for k, v in cfg.items() if k != "steps"}), progress=False)
    assert load_card(out)["training"]["ada"] == {"target": 0.6, "p_final": 0.0, "p_mean": 0.0}
    assert training.config_from_options(args(ada_target=0.6, steps=1, augment=DEFAULT_POLICY)).ada_target == 0.6
    with pytest.raises(SelectionError, match="give a policy"):
        training.config_from_options(args(ada_target=0.6, steps=1, augment="none"))
    filled = args(ada_target=0.6)
    training.own_data_defaults(filled, None)
    assert filled["augment"] == DEFAULT_POLICY  # a fine-tune that asks for ADA gets the policy it adapts
    with pytest.raises(SelectionError, match="cannot be private"):
        training.config_from_options(args(ada_target=0.6, augment=DEFAULT_POLICY, noise_multiplier=1.0, steps=1))
    with pytest.raises(SelectionError, match="--ada-target"):
        training.config_from_options(args(ada_target=1.5, augment=DEFAULT_POLICY, steps=1))
