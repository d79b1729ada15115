"""Class-conditional latent diffusion generator for vertebral units, built on MONAI's generative parts.

Design (chosen by measurement on a 2-core CPU, where a pixel-space ``DiffusionModelUNet`` on 9 x 64 x 64
runs about 15 image evaluations per second, i.e. under 1 VU/s at 25 steps):

* a small VU autoencoder (``monai.networks.nets.AutoencoderKL``, channels 8/16/32/64, no attention)
  maps a ``[9, 64, 64]`` VU to an ``[8, 8, 8]`` latent (72x fewer numbers); its decoder costs about
  0.12 GFLOP per VU;
* a small class-conditional ``DiffusionModelUNet`` on that latent (channels 64/64, no attention,
  ``num_class_embeds = K + 1``: the extra class is the "no class" used for classifier-free guidance),
  about 0.06 GFLOP per evaluation;
* rectified flow (as ``monai.networks.schedulers.RFlowScheduler`` defines it): the UNet predicts the velocity
  ``x0 - noise``; sampling integrates it with a few Euler steps from noise (t = 1000) to data (t = 0).

Training builds both networks with MONAI; a released generator is rebuilt for sampling by
:mod:`synthvu_core.models.latent_nets` (the same forward passes in plain torch, bit-identical outputs, without
MONAI's import cost).

Classifier-free guidance: the class is dropped (replaced by the null class) for a fraction of training
steps, and at sampling time the velocity is ``v_null + w (v_class - v_null)``. ``w`` (``guidance``) and
the number of steps are chosen at sampling time (:meth:`DiffusionGenerator.set_sampling`); the card's
``architecture`` holds the defaults. ``w = 1`` runs the conditional model alone (half the cost).

The generator presents the AC-GAN generator's call interface: ``gen(z [N, latent_dim], labels [N] |
class weights [N, K]) -> images [N, C, H, W]`` in [-1, 1], with ``latent_dim = C_lat x h x w``: ``z`` is the
starting noise of the flow, flattened. The flow is deterministic, so the same ``z`` and class give the
same VU. Each ``z`` is rescaled to the norm ``sqrt(latent_dim)`` that Gaussian noise of this size has (to
within 2 %), so that the linear interpolation between two noises (:func:`~synthvu_core.models.sampling.
interpolate`) stays on the noise shell instead of passing through low-norm noise, which the flow never saw.
Class weights (between two classes when interpolating) mix the class embeddings.

``spatial_dims=3`` (``train --arch diffusion3d``) builds the same generator on 3-D sub-volumes ``[D, H, W]``:
3-D ``AutoencoderKL`` and ``DiffusionModelUNet``, one image channel, a latent ``[c, D/f, H/f, W/f]``; sub-volumes
keep the ``[N, D, H, W]`` layout of VUs, so sampling, export and the registry treat them alike. Decoding can run
in slabs (:func:`decode_slabs`) so that peak memory is bounded by the slab, not the volume.

Only the decoder and the UNet are released (``generator.safetensors``): the encoder is not needed for
sampling, and an encoder fitted to the training VUs would allow reconstruction-error membership attacks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from synthvu_core.models import latent_nets
from synthvu_core.models.latent_nets import WeightedEmbedding, euler_step, flow_times

ARCH_NAME = "diffusion"
ARCH_NAME_3D = "diffusion3d"  #: the same generator on 3-D sub-volumes: 3-D convolutions, one channel
SAMPLERS: tuple[str, ...] = ("rflow-euler",)
TRAIN_TIMESTEPS = 1000
DECODE_CHUNK = 32  #: VUs per decoder call (2-D): a whole sampling batch's feature maps overflow a CPU's caches


@dataclass
class DiffusionConfig:
    """Architecture and sampling hyper-parameters (stored in the card under ``architecture``)."""

    name: str = ARCH_NAME
    shape: tuple[int, int, int] = (9, 64, 64)  # C, H, W
    n_classes: int = 3
    ae_channels: tuple[int, ...] = (8, 16, 32, 64)  # one down-sampling between consecutive levels
    latent_channels: int = 8
    ae_norm_groups: int = 8
    unet_channels: tuple[int, ...] = (64, 64)
    unet_res_blocks: int = 1
    unet_norm_groups: int = 32
    latent_scale: float = 1.0  # latents are multiplied by this before diffusion (1 / their std on the train split)
    sampler: str = "rflow-euler"
    sampling_steps: int = 8
    guidance: float = 1.5
    cond_drop: float = 0.1  # training: share of steps where the class is replaced by the null class
    lr: float = 5e-4  # the UNet's
    ae_lr: float = 1e-3
    kl_weight: float = 1e-6
    ema: float = 0.999  # moving average of the UNet weights (what is released)
    spatial_dims: int = 2  # 2: a VU's slices are channels; 3: a sub-volume [D, H, W] is one 3-D channel

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)  # type: ignore[assignment]
        self.ae_channels = tuple(int(c) for c in self.ae_channels)  # type: ignore[assignment]
        self.unet_channels = tuple(int(c) for c in self.unet_channels)  # type: ignore[assignment]
        c, h, w = self.shape
        down = 2 ** (len(self.ae_channels) - 1)
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims!r}")
        if self.spatial_dims == 3:
            if any(n % down or n < down for n in self.shape):
                raise ValueError(f"sub-volume sides must be divisible by {down}, got {c}x{h}x{w}")
        elif h != w or h % down or h < down:
            raise ValueError(f"VU images must be square with a side divisible by {down}, got {h}x{w}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        check_sampling(self.sampling_steps, self.guidance)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        down = 2 ** (len(self.ae_channels) - 1)
        if self.spatial_dims == 3:
            return (self.latent_channels, *(n // down for n in self.shape))
        side = self.shape[1] // down
        return (self.latent_channels, side, side)

    @property
    def image_channels(self) -> int:
        """Channels the autoencoder sees: a VU's slices (2-D) or one (3-D)."""
        return 1 if self.spatial_dims == 3 else self.shape[0]

    @property
    def latent_dim(self) -> int:
        return int(math.prod(self.latent_shape))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("shape", "ae_channels", "unet_channels"):
            d[key] = list(d[key])
        if d["spatial_dims"] == 2:
            d.pop("spatial_dims")  # VU cards and checkpoints stay as they were
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiffusionConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def check_sampling(steps: int, guidance: float) -> None:
    """Raise ValueError unless ``steps`` (1..1000) and ``guidance`` (>= 0) can be sampled with."""
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= TRAIN_TIMESTEPS:
        raise ValueError(f"sampling steps must be an integer from 1 to {TRAIN_TIMESTEPS}, got {steps!r}")
    if not isinstance(guidance, int | float) or not math.isfinite(guidance) or guidance < 0:
        raise ValueError(f"guidance must be a finite number >= 0, got {guidance!r}")


def build_autoencoder(config: DiffusionConfig) -> nn.Module:
    """MONAI ``AutoencoderKL`` for ``[C, H, W]`` VUs (2-D, the slices as channels) or ``[1, D, H, W]``
    sub-volumes (3-D), no attention."""
    from monai.networks.nets import AutoencoderKL

    levels = len(config.ae_channels)
    return AutoencoderKL(
        spatial_dims=config.spatial_dims, in_channels=config.image_channels, out_channels=config.image_channels,
        channels=config.ae_channels,
        latent_channels=config.latent_channels, num_res_blocks=1, attention_levels=(False,) * levels,
        norm_num_groups=config.ae_norm_groups, with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False,
    )


def build_unet(config: DiffusionConfig) -> nn.Module:
    """MONAI ``DiffusionModelUNet`` on the latent with ``K + 1`` class embeddings (the last: no class)."""
    from monai.networks.nets import DiffusionModelUNet

    lc = config.latent_channels
    unet = DiffusionModelUNet(
        spatial_dims=config.spatial_dims, in_channels=lc, out_channels=lc, channels=config.unet_channels,
        attention_levels=(False,) * len(config.unet_channels), num_res_blocks=config.unet_res_blocks,
        num_class_embeds=config.n_classes + 1, norm_num_groups=config.unet_norm_groups,
    )
    old = unet.class_embedding
    unet.class_embedding = WeightedEmbedding(old.num_embeddings, old.embedding_dim)
    unet.class_embedding.weight.data.copy_(old.weight.data)
    return unet


class DiffusionGenerator(nn.Module):
    """``(z [N, latent_dim], labels [N] int or class weights [N, K]) -> images [N, C, H, W]`` in [-1, 1]."""

    def __init__(self, config: DiffusionConfig, autoencoder: nn.Module | None = None, unet: nn.Module | None = None):
        super().__init__()
        self.config = config
        # without given networks (a released generator being loaded): the MONAI-free sampling build of both
        ae = autoencoder if autoencoder is not None else latent_nets.DecoderHalf(config)
        self.post_quant_conv = ae.post_quant_conv
        self.decoder = ae.decoder
        self.unet = unet if unet is not None else latent_nets.LatentUNet(config)
        self.guidance = float(config.guidance)
        self.sampling_steps = int(config.sampling_steps)
        self.slab: int | None = None  # latent rows per decoded slab (3-D only; None: the whole volume at once)
        self.halo: int = 2  # latent rows of context on each side of a slab, cropped after decoding

    def set_sampling(self, steps: int | None = None, guidance: float | None = None) -> None:
        """Choose the number of flow steps and the guidance scale used from now on (None: keep)."""
        steps = self.sampling_steps if steps is None else steps
        guidance = self.guidance if guidance is None else guidance
        check_sampling(steps, guidance)
        self.sampling_steps, self.guidance = int(steps), float(guidance)

    def class_code(self, labels: torch.Tensor) -> torch.Tensor:
        """Class weights ``[N, K + 1]`` (the last column: the null class) from indices or weights ``[N, K]``."""
        k = self.config.n_classes
        if labels.is_floating_point() and labels.dim() == 2:
            return torch.nn.functional.pad(labels.float(), (0, 1))
        return torch.nn.functional.one_hot(labels.long(), k + 1).float()

    def velocity(self, x: torch.Tensor, t: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """The guided velocity at latent ``x`` and time ``t`` (scalar) for class weights ``code``."""
        ts = t.float().expand(len(x))
        w = self.guidance
        if w == 1.0:
            return self.unet(x, ts, class_labels=code)
        null = torch.zeros_like(code)
        null[:, -1] = 1.0
        if w == 0.0:
            return self.unet(x, ts, class_labels=null)
        v = self.unet(torch.cat([x, x]), torch.cat([ts, ts]), class_labels=torch.cat([code, null]))
        v_c, v_u = v.chunk(2)
        return v_u + w * (v_c - v_u)

    def latents(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The flow from noise ``z`` (rescaled to norm ``sqrt(latent_dim)``) to a latent ``[N, *latent_shape]``."""
        z = z.float()
        z = z * (math.sqrt(z.shape[1]) / z.norm(dim=1, keepdim=True).clamp_min(1e-6))
        x = z.reshape(len(z), *self.config.latent_shape)
        code = self.class_code(labels.to(z.device)).to(z.device)
        times = flow_times(self.sampling_steps, TRAIN_TIMESTEPS)
        for t, t_next in zip(times[:-1], times[1:]):
            v = self.velocity(x, torch.tensor(t, dtype=torch.float32, device=x.device), code)
            x = euler_step(x, v, t, t_next, TRAIN_TIMESTEPS)
        return x

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (diffusion scale) -> VUs ``[N, C, H, W]`` (or sub-volumes ``[N, D, H, W]``) in [-1, 1].

        Sub-volumes are decoded in slabs along ``H`` (:func:`decode_slabs`) where :attr:`slab` is set, which
        bounds the decoder's peak memory by the slab instead of the whole volume."""
        z = self.post_quant_conv(latents / self.config.latent_scale)
        if self.config.spatial_dims == 3:
            return decode_slabs(self.decoder, z, self.slab, self.halo).squeeze(1).clamp(-1.0, 1.0)
        if len(z) <= DECODE_CHUNK:
            return self.decoder(z).clamp(-1.0, 1.0)
        # in chunks: the same numbers as one call on the whole batch (tested), about twice as fast on a CPU at
        # batch 256, where the 64 x 64 feature maps of a whole batch no longer fit the caches
        return torch.cat([self.decoder(c) for c in z.split(DECODE_CHUNK)]).clamp(-1.0, 1.0)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.decode(self.latents(z, labels))


def decode_slabs(decoder: nn.Module, z: torch.Tensor, slab: int | None, halo: int = 2) -> torch.Tensor:
    """Decode a 3-D latent ``[N, c, d, h, w]`` in slabs of ``slab`` latent rows along ``h`` (superior ->
    inferior), each with ``halo`` rows of context on both sides that are cropped after decoding.

    The decoder's receptive field reaches a few latent rows, so a halo of 2 gives slabs that join without a
    visible seam (the test compares with whole-volume decoding); peak memory follows ``slab + 2 halo`` rows
    instead of ``h``. ``slab=None`` (or one that covers ``h``) decodes at once.
    """
    h = z.shape[3]
    if slab is None or slab >= h:
        return decoder(z)
    if slab < 1 or halo < 0:
        raise ValueError(f"slab must be >= 1 and halo >= 0, got {slab}, {halo}")
    parts, up = [], None
    for start in range(0, h, slab):
        lo, hi = max(0, start - halo), min(h, start + slab + halo)
        out = decoder(z[:, :, :, lo:hi])
        up = out.shape[3] // (hi - lo) if up is None else up
        a = (start - lo) * up
        parts.append(out[:, :, :, a : a + (min(start + slab, h) - start) * up])
    return torch.cat(parts, dim=3)


def build(config: DiffusionConfig, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """Seeded construction of the autoencoder and the UNet (MONAI's default initialisation)."""
    state = torch.random.get_rng_state()
    torch.manual_seed(int(seed))
    try:
        return build_autoencoder(config), build_unet(config)
    finally:
        torch.random.set_rng_state(state)


def released_state(autoencoder: nn.Module, unet: nn.Module, config: DiffusionConfig) -> dict[str, torch.Tensor]:
    """The tensors of ``generator.safetensors``: the decoder side of the autoencoder and the UNet."""
    return DiffusionGenerator(config, autoencoder, unet).state_dict()


def set_sampling(generator: nn.Module, steps: int | None = None, guidance: float | None = None) -> None:
    """Set a loaded generator's flow steps and guidance scale; SelectionError for other generators or bad values."""
    from synthvu_core.errors import SelectionError

    if not isinstance(generator, DiffusionGenerator):
        name = (getattr(generator, "card", None) or {}).get("name", "this generator")
        raise SelectionError(f"{name}: guidance and sampling steps apply to diffusion generators only")
    try:
        generator.set_sampling(steps=steps, guidance=guidance)
    except ValueError as e:
        raise SelectionError(str(e)) from None
