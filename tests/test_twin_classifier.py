"""The twin auxiliary classifier (``--twin-classifier``, TAC-GAN): what D's twin head learns and what G's loss takes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from synthvu_core.errors import SelectionError
from synthvu_core.models import training
from synthvu_core.models.acgan import ACGANConfig
from synthvu_core.models.dp import DPConfig
from synthvu_core.models.registry import load_card, load_discriminator
from synthvu_core.models.training import ArchOverrides, Trainer, train
from tests.test_real_recipe import args
from tests.test_training import small, tiny_dataset

torch.set_num_threads(1)


def pair(tmp_path):
    """Two trainers of one seed, with and without the twin head (every other weight the same), class-loss weight 0.5."""
    ds = tiny_dataset()
    plain = Trainer(ds, tmp_path / "plain", small(steps=2, overrides=ArchOverrides(width=4, d_width=4, aux_weight=0.5)))
    twin = Trainer(ds, tmp_path / "twin", small(steps=2, overrides=ArchOverrides(width=4, d_width=4, aux_weight=0.5,
                                                                                  twin=True)))
    assert twin.arch.aux_weight == 0.5
    return ds, plain, twin


def test_the_twin_head_adds_its_loss_on_generated_vus_only_and_leaves_every_other_weight_alone(tmp_path):
    _, plain, twin = pair(tmp_path)
    assert hasattr(twin.D, "twin_head") and not hasattr(plain.D, "twin_head")
    same = {k: v for k, v in twin.D.state_dict().items() if not k.startswith("twin_head.")}
    assert all(torch.equal(v, plain.D.state_dict()[k]) for k, v in same.items())
    k = twin.arch.n_classes
    real, y_real = torch.rand(4, 1, 32, 32) * 2 - 1, torch.arange(4) % k
    fake, y_fake = torch.rand(4, 1, 32, 32) * 2 - 1, torch.arange(3, -1, -1) % k
    with torch.no_grad():
        logits = twin.D(fake, y_fake, twin=True)[2]
    expected = twin.arch.aux_weight * F.cross_entropy(logits, y_fake).item()
    got = twin._discriminator_step(real, y_real, fake, y_fake)["loss_d"]
    base = plain._discriminator_step(real, y_real, fake, y_fake)["loss_d"]
    assert got - base == pytest.approx(expected, rel=1e-5)
    assert twin.D.twin_head.weight.grad is not None and twin.D.twin_head.weight.grad.abs().sum() > 0


def test_g_subtracts_the_twin_heads_cross_entropy_from_its_class_loss(tmp_path):
    _, plain, twin = pair(tmp_path)
    fake, y_fake = torch.rand(4, 1, 32, 32) * 2 - 1, torch.arange(4) % twin.arch.n_classes
    with torch.no_grad():
        logits = twin.D(fake, y_fake, twin=True)[2]
    expected = -twin.arch.aux_weight * F.cross_entropy(logits, y_fake).item()
    x_twin, x_plain = fake.clone().requires_grad_(True), fake.clone().requires_grad_(True)
    out, base = twin._generator_step(x_twin, y_fake), plain._generator_step(x_plain, y_fake)
    assert out["loss_g"] - base["loss_g"] == pytest.approx(expected, rel=1e-5)
    assert out["aux_g"] == pytest.approx(base["aux_g"])  # the logged class loss stays the real head's
    x = fake.clone().requires_grad_(True)  # the twin term reaches G: its gradient is the difference of the two
    (-twin.arch.aux_weight * F.cross_entropy(twin.D(x, y_fake, twin=True)[2], y_fake)).backward()
    torch.testing.assert_close(x_twin.grad - x_plain.grad, x.grad, rtol=1e-4, atol=1e-7)
    assert x.grad.abs().sum() > 0


def test_the_twin_head_learns_the_class_of_a_joint_class_and_source_label(tmp_path):
    _, _, twin = pair(tmp_path)
    k = twin.arch.n_classes
    logits, joint = torch.randn(6, k), torch.tensor([0, 1, 2, 0, 1, 2]) % k + k * torch.tensor([0, 0, 0, 1, 1, 2])
    assert twin._twin_loss(logits, joint).item() == pytest.approx(F.cross_entropy(logits, joint % k).item())


def test_a_fine_tune_may_add_the_twin_head_and_the_released_discriminator_keeps_it(tmp_path):
    ds = tiny_dataset()
    pre = train(ds, tmp_path / "pre", small(steps=1), progress=False)
    assert "twin" not in load_card(pre)["architecture"]  # cards without the option read as before
    over = ArchOverrides(width=4, d_width=4, twin=True)
    out = train(ds, tmp_path / "ft", small(steps=1, init_from=str(pre), overrides=over, keep_discriminator=True),
                progress=False)
    assert load_card(out)["architecture"]["twin"] is True
    assert load_discriminator(out).twin_head.weight.shape[0] == len(load_card(out)["classes"])
    with pytest.raises(SelectionError, match="--no-twin-classifier"):  # the prior's head, where it cannot train
        Trainer(ds, tmp_path / "c", small(steps=1, init_from=str(out), augment="translation", clean_class_head=True))
    off = Trainer(ds, tmp_path / "off", small(steps=1, init_from=str(out), overrides=ArchOverrides(twin=False)))
    assert not off.arch.twin and not hasattr(off.D, "twin_head")  # --no-twin-classifier drops the prior's head


def test_the_twin_head_is_refused_under_dp_with_a_clean_class_head_and_with_the_studys_class_loss(tmp_path):
    ds = tiny_dataset()
    dp = DPConfig(noise_multiplier=1.0, patients_per_step=2)
    with pytest.raises(SelectionError, match="--twin-classifier cannot be private"):
        Trainer(ds, tmp_path / "dp", small(dp=dp, overrides=ArchOverrides(width=4, d_width=4, twin=True)))
    with pytest.raises(SelectionError, match="--twin-classifier"):
        Trainer(ds, tmp_path / "clean", small(augment="translation", clean_class_head=True,
                                              overrides=ArchOverrides(width=4, d_width=4, twin=True)))
    with pytest.raises(SelectionError, match="aux_fake False"):  # --class-loss all: a message, not a traceback
        Trainer(ds, tmp_path / "all", small(overrides=ArchOverrides(width=4, d_width=4, twin=True, aux_fake=True)))
    with pytest.raises(ValueError, match="aux_fake False"):
        ACGANConfig(shape=(1, 32, 32), n_classes=4, twin=True, aux_fake=True)
    assert "twin" not in ACGANConfig(shape=(1, 32, 32), n_classes=4).to_dict()


def test_the_flag_reaches_the_overrides_and_the_card_command():
    from synthvu_core.models.commands import _command_line

    assert training.config_from_options(args(twin_classifier=True, steps=1)).overrides.twin is True
    assert training.config_from_options(args(steps=1)).overrides.twin is None
    assert training.config_from_options(args(twin_classifier=False, steps=1)).overrides.twin is False
    assert "--twin-classifier" in _command_line({"twin_classifier": True, "dataset": "d"})
    assert "--no-twin-classifier" in _command_line({"twin_classifier": False, "dataset": "d"})
