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
    assert all(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in disc.body if isinstance(m, nn.LeakyReLU))
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
