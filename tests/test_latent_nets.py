"""The MONAI-free sampling build of the diffusion generator equals MONAI's networks bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synthvu_core.models import diffusion, latent_nets

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "default VU": dict(),
    "three levels, two blocks": dict(shape=(3, 32, 32), ae_channels=(8, 16, 16), latent_channels=4, ae_norm_groups=4,
                                     unet_channels=(16, 32, 32), unet_res_blocks=2, unet_norm_groups=8),
    "3-D sub-volume": dict(name="diffusion3d", shape=(8, 16, 16), spatial_dims=3, ae_channels=(4, 8),
                           latent_channels=2, ae_norm_groups=4, unet_channels=(8, 8), unet_norm_groups=4),
}


def monai_generator(config: diffusion.DiffusionConfig) -> diffusion.DiffusionGenerator:
    """MONAI's networks with every parameter random (MONAI zero-initialises some convolutions)."""
    ae, unet = diffusion.build(config, seed=0)
    gen = diffusion.DiffusionGenerator(config, ae, unet)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in gen.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return gen.eval()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_same_parameters_and_same_outputs_as_monai(name):
    config = diffusion.DiffusionConfig(n_classes=3, **CONFIGS[name])
    reference = monai_generator(config)
    lite = diffusion.DiffusionGenerator(config).eval()  # no networks given: the sampling build
    assert isinstance(lite.unet, latent_nets.LatentUNet) and isinstance(lite.decoder, latent_nets.Decoder)
    lite.load_state_dict(reference.state_dict(), strict=True)  # the same names and shapes, nothing left over

    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, *config.latent_shape, generator=g)
    t = torch.rand(6, generator=g) * 1000
    code = torch.softmax(torch.randn(6, config.n_classes + 1, generator=g), dim=1)  # class weights, mixed
    z = torch.randn(6, config.latent_dim, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        assert torch.equal(lite.unet(x, t, class_labels=code), reference.unet(x, t, class_labels=code))
        assert torch.equal(lite.decode(x), reference.decode(x))
        assert torch.equal(lite(z, labels), reference(z, labels))


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 8, 25, 1000])
def test_flow_times_and_euler_steps_equal_monais_scheduler(steps):
    from monai.networks.schedulers import RFlowScheduler

    sched = RFlowScheduler(num_train_timesteps=1000, use_discrete_timesteps=False)
    sched.set_timesteps(steps)
    times = latent_nets.flow_times(steps, 1000)
    assert times == [float(t) for t in sched.timesteps.float()] + [0.0]
    g = torch.Generator().manual_seed(3)
    x, v = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    for t, t_next in zip(times[:-1], times[1:]):
        expected, _ = sched.step(v, t, x, t_next)
        assert torch.equal(latent_nets.euler_step(x, v, t, t_next, 1000), expected)


def test_loading_and_sampling_a_released_generator_imports_no_monai():
    code = (
        "import json, sys, torch\n"
        "from synthvu_core.models.registry import load_generator\n"
        "from synthvu_core.models.sampling import sample\n"
        f"g = load_generator({str(ROOT / 'models' / 'diffusion-phantom-1step')!r})\n"
        "sample(g, n=4, seed=0)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'monai', 'scipy', 'sklearn'})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
