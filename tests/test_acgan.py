"""Architectures: shapes for every supported size and class count, the study's layer structure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthvu_core.models.acgan import Discriminator, Generator, architecture, build, stages

torch.set_num_threads(1)


@pytest.mark.parametrize("name", ["default", "pgan"])
@pytest.mark.parametrize("shape", [(9, 64, 64), (1, 64, 64), (1, 32, 32), (1, 128, 128)])
@pytest.mark.parametrize("n_classes", [3, 7])
def test_shapes_for_every_size_and_scheme(name, shape, n_classes):
    cfg = architecture(name, shape, n_classes, width=4, d_width=4)  # narrow: shapes only
    gen, disc = build(cfg, seed=0)
    z = torch.randn(2, cfg.latent_dim)
    x = gen(z, torch.tensor([0, n_classes - 1]))
    assert x.shape == (2, *shape)
    assert x.abs().max() <= 1.0
    adv, cls = disc(x)
    assert adv.shape == (2,) and cls.shape == (2, n_classes)


def test_pgan_is_the_study_architecture():
    cfg = architecture("pgan", (9, 64, 64), 3)
    gen, disc = Generator(cfg), Discriminator(cfg)
    tconvs = [m for m in gen.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in tconvs] == [512, 256, 128, 64, 9]
    assert tconvs[0].in_channels == 100 + 3
    assert all(m.kernel_size == (4, 4) for m in tconvs)
    assert isinstance(list(gen.modules())[-1], nn.Tanh)
    assert not any(isinstance(m, nn.BatchNorm2d | nn.GroupNorm) for m in [*gen.modules(), *disc.modules()])
    convs = [m for m in disc.body.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 256, 512]
    assert all(
        isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in disc.body if isinstance(m, nn.LeakyReLU)
    )
    assert (cfg.lr, cfg.aux_weight) == (1e-4, 1.0)


def test_default_is_narrower_and_dp_ready():
    from opacus.validators import ModuleValidator

    d, p = architecture("default", (9, 64, 64), 3), architecture("pgan", (9, 64, 64), 3)
    g_default = sum(x.numel() for x in Generator(d).parameters())
    g_pgan = sum(x.numel() for x in Generator(p).parameters())
    assert g_default < g_pgan / 3
    assert ModuleValidator.validate(Discriminator(d), strict=False) == []


def test_stages_follow_image_size():
    assert [stages((1, s, s)) for s in (16, 32, 64, 128)] == [2, 3, 4, 5]
    for bad in [(1, 48, 48), (1, 64, 32), (1, 8, 8)]:
        with pytest.raises(ValueError):
            stages(bad)


def test_build_is_seeded():
    cfg = architecture("default", (1, 32, 32), 3, width=4, d_width=4)
    a, b, c = build(cfg, seed=1)[0], build(cfg, seed=1)[0], build(cfg, seed=2)[0]
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_default_modulates_every_generator_stage_by_class():
    cfg = architecture("default", (1, 32, 32), 3, width=4, d_width=4)
    assert (cfg.g_cond, cfg.aux_fake) == ("modulate", False)
    gen, _ = build(cfg, seed=0)
    assert len(gen.modulation) == stages(cfg.shape)
    z, y = torch.randn(4, cfg.latent_dim), torch.tensor([0, 1, 2, 1])
    onehot = torch.nn.functional.one_hot(y, 3).float()
    # zero-initialised: at the start it is exactly the one-hot-at-input generator
    assert torch.allclose(gen(z, y), gen.net(torch.cat([z, onehot], 1)[:, :, None, None]))
    gen(z, y).square().sum().backward()
    for m in gen.modulation:
        used = m.gamma.weight.grad.abs().sum(1)
        assert (used[[0, 1, 2]] > 0).all()  # every class present in the batch gets its own scale
    with torch.no_grad():  # a class's scale at the last hidden stage changes that class only
        gen.modulation[-1].gamma.weight[2] += 1.0
    out = gen(z, y)
    assert torch.allclose(out[[0, 1, 3]], gen.net(torch.cat([z, onehot], 1)[:, :, None, None])[[0, 1, 3]])
    assert not torch.allclose(out[2], gen.net(torch.cat([z, onehot], 1)[:, :, None, None])[2])


def test_cards_without_conditioning_keys_load_as_the_study_trained_them():
    from synthvu_core.models.acgan import ACGANConfig

    old = architecture("default", (1, 32, 32), 3, width=4, d_width=4).to_dict()
    del old["g_cond"], old["aux_fake"]
    cfg = ACGANConfig.from_dict(old)
    assert (cfg.g_cond, cfg.aux_fake) == ("input", True)
    assert not hasattr(Generator(cfg), "modulation")
    p = architecture("pgan", (1, 32, 32), 3)
    assert (p.g_cond, p.aux_fake) == ("input", True)
    with pytest.raises(ValueError, match="conditioning"):
        ACGANConfig(shape=(1, 32, 32), g_cond="bogus")


@pytest.mark.parametrize("aux_fake", [True, False])
def test_discriminator_class_term_on_fakes_only_when_asked(aux_fake):
    from synthvu_core.models.training import discriminator_loss

    adv = torch.zeros(4)
    cls = torch.randn(4, 3, requires_grad=True)
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    loss = discriminator_loss(adv, cls, target, torch.tensor([0, 1, 2, 0]), 1.0, aux_fake)
    loss.sum().backward()
    real_grad, fake_grad = cls.grad[:2].abs().sum(), cls.grad[2:].abs().sum()
    assert real_grad > 0
    assert (fake_grad > 0) == aux_fake
    log2 = torch.log(torch.tensor(2.0))  # BCE at logit 0
    assert torch.allclose(loss[2:], log2.expand(2)) != aux_fake


@pytest.mark.parametrize("g_cond", ["input", "modulate"])
def test_class_weights_equal_labels_at_one_hot(g_cond):
    cfg = architecture("default", (1, 32, 32), 4, width=4, d_width=4, g_cond=g_cond)
    gen, _ = build(cfg, seed=0)
    if g_cond == "modulate":
        with torch.no_grad():
            for m in gen.modulation:
                m.gamma.weight.normal_()
                m.beta.weight.normal_()
    z, y = torch.randn(3, cfg.latent_dim), torch.tensor([0, 3, 1])
    onehot = torch.nn.functional.one_hot(y, 4).float()
    assert torch.allclose(gen(z, y), gen(z, onehot), atol=1e-6)
    half = (onehot[0] + onehot[1]) / 2  # between two classes: neither end
    mid = gen(z[:1], half[None])
    assert not torch.allclose(mid, gen(z[:1], y[:1])) and not torch.allclose(mid, gen(z[:1], y[1:2]))


@pytest.mark.parametrize("g_norm", ["pixel", "batch", "none"])
def test_modulation_follows_each_hidden_norm(g_norm):
    cfg = architecture("default", (1, 32, 32), 3, width=4, d_width=4, g_norm=g_norm)
    gen = Generator(cfg)
    positions = sorted(gen._modulated)
    assert [gen._modulated[p] for p in positions] == list(range(stages(cfg.shape)))
    norm_type = {"pixel": "PixelNorm", "batch": "BatchNorm2d", "none": "Identity"}[g_norm]
    for stage, position in enumerate(positions):
        assert type(gen.net[position]).__name__ == norm_type
        assert isinstance(gen.net[position - 1], nn.ConvTranspose2d) and isinstance(gen.net[position + 1], nn.ReLU)
        assert gen.net[position - 1].out_channels == gen.modulation[stage].gamma.weight.shape[1]
    # parameter names are those of the saved generators: net.<position>.* and modulation.<stage>.*
    assert {k.split(".")[0] for k in gen.state_dict()} == {"net", "modulation"}
    assert "net.0.weight" in gen.state_dict() and f"net.{len(gen.net) - 2}.weight" in gen.state_dict()


def test_shipped_generators_load_and_sample():
    from pathlib import Path

    from synthvu_core.models import registry
    from synthvu_core.models.sampling import sample

    folders = sorted(p.parent for p in (Path(__file__).parents[1] / "models").glob("*/generator.safetensors"))
    assert folders, "no shipped generator"
    for folder in folders:
        gen = registry.load_generator(folder)  # strict: every saved tensor has its parameter
        a, b = sample(gen, 6, seed=3), sample(gen, 6, seed=3)
        assert a.images.shape[0] == 6 and (a.images == b.images).all()
        if getattr(gen.config, "g_cond", None) == "modulate":  # AC-GANs: trained modulation was loaded
            assert any(m.gamma.weight.abs().sum() > 0 for m in gen.modulation)
