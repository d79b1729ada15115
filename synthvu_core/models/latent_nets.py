"""The diffusion generator's two released networks for sampling, in plain torch: the latent UNet and the decoder.

Training builds them with MONAI (:func:`synthvu_core.models.diffusion.build_unet`, ``build_autoencoder``); a
released generator is rebuilt here for sampling instead. The modules below are the forward passes of MONAI's
``DiffusionModelUNet`` and ``AutoencoderKL`` decoder for the configurations :class:`~synthvu_core.models.
diffusion.DiffusionConfig` describes (no attention at any level, the UNet's attention middle block, nearest
up-sampling with a convolution after it), with the same parameter names, the same operations in the same order,
and therefore the same numbers: ``tests/test_latent_nets.py`` loads one state dict into both and compares the
outputs bit for bit, and the rectified-flow times and Euler steps with MONAI's ``RFlowScheduler``.

Why not MONAI here: importing any part of MONAI runs ``monai/__init__``, which imports every sub-package (about
2.7 CPU-seconds on a laptop core), more than one-step sampling of 2,000 VUs spends in the networks.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class NetConfig(Protocol):
    """What the networks read of a :class:`synthvu_core.models.diffusion.DiffusionConfig` (named here so that this
    module does not import the one that imports it)."""

    spatial_dims: int
    n_classes: int
    latent_channels: int
    ae_channels: tuple[int, ...]
    ae_norm_groups: int
    unet_channels: tuple[int, ...]
    unet_res_blocks: int
    unet_norm_groups: int

    @property
    def image_channels(self) -> int: ...

UNET_NORM_EPS = 1e-6  #: MONAI's default for the UNet's and the autoencoder's group norms
AE_NORM_EPS = 1e-6
UNET_HEAD_CHANNELS = 8  #: channels per attention head of the middle block (MONAI's default)


class Conv(nn.Module):
    """A convolution named like MONAI's ``Convolution(conv_only=True)`` (its weights under ``.conv``)."""

    def __init__(self, dims: int, c_in: int, c_out: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv = conv(c_in, c_out, kernel, stride=stride, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class WeightedEmbedding(nn.Embedding):
    """``nn.Embedding`` that also takes class weights ``[N, num_embeddings]`` (a mixture of embeddings)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            return x.to(self.weight.dtype) @ self.weight
        return super().forward(x)


class Upsample(nn.Module):
    """Nearest-neighbour up-sampling by 2, then a 3x3 convolution (``postconv``)."""

    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.postconv = Conv(dims, channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.postconv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TimeResBlock(nn.Module):
    """The UNet's residual block with the time (and class) embedding added after the first convolution."""

    def __init__(self, dims: int, c_in: int, c_out: int, emb: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=UNET_NORM_EPS)
        self.conv1 = Conv(dims, c_in, c_out)
        self.time_emb_proj = nn.Linear(emb, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=UNET_NORM_EPS)
        self.conv2 = Conv(dims, c_out, c_out)
        self.skip_connection = nn.Identity() if c_in == c_out else Conv(dims, c_in, c_out, kernel=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        temb = self.time_emb_proj(F.silu(emb))
        h = h + temb.reshape(*temb.shape, *(1,) * (h.dim() - 2))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip_connection(x) + h


class Downsample(nn.Module):
    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.op = Conv(dims, channels, channels, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DownBlock(nn.Module):
    def __init__(self, dims: int, c_in: int, c_out: int, emb: int, groups: int, blocks: int, down: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            TimeResBlock(dims, c_in if i == 0 else c_out, c_out, emb, groups) for i in range(blocks)
        )
        self.downsampler = Downsample(dims, c_out) if down else None

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        states = []
        for resnet in self.resnets:
            h = resnet(h, emb)
            states.append(h)
        if self.downsampler is not None:
            h = self.downsampler(h)
            states.append(h)
        return h, states


class UpBlock(nn.Module):
    def __init__(self, dims: int, c_prev: int, c_out: int, c_skips: list[int], emb: int, groups: int, up: bool):
        super().__init__()
        ins = [(c_prev if i == 0 else c_out) + c_skip for i, c_skip in enumerate(c_skips)]
        self.resnets = nn.ModuleList(TimeResBlock(dims, c, c_out, emb, groups) for c in ins)
        self.upsampler = Upsample(dims, c_out) if up else None

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor], emb: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            h = resnet(torch.cat([h, skips.pop()], dim=1), emb)
        return self.upsampler(h) if self.upsampler is not None else h


class Attention(nn.Module):
    """Multi-head self-attention over positions (MONAI's ``SABlock`` without flash attention)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (channels // heads) ** -0.5
        self.to_q, self.to_k, self.to_v = (nn.Linear(channels, channels) for _ in range(3))
        self.out_proj = nn.Linear(channels, channels)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape  # b n (l d) -> b l n d, a view as einops makes it
        return x.view(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(self.to_q(x)), self.split(self.to_k(x)), self.split(self.to_v(x))
        att = (torch.einsum("blxd,blyd->blxy", q, k) * self.scale).softmax(dim=-1)
        out = torch.einsum("bhxy,bhyd->bhxd", att, v)
        b, heads, n, d = out.shape
        return self.out_proj(out.permute(0, 2, 1, 3).reshape(b, n, heads * d))


class SpatialAttention(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=UNET_NORM_EPS)
        self.attn = Attention(channels, channels // UNET_HEAD_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        h = self.norm(x).reshape(*shape[:2], -1).transpose(1, 2)
        return self.attn(h).transpose(1, 2).reshape(shape) + x


class MidBlock(nn.Module):
    def __init__(self, dims: int, channels: int, emb: int, groups: int):
        super().__init__()
        self.resnet_1 = TimeResBlock(dims, channels, channels, emb, groups)
        self.attention = SpatialAttention(channels, groups)
        self.resnet_2 = TimeResBlock(dims, channels, channels, emb, groups)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.resnet_2(self.attention(self.resnet_1(h, emb)).contiguous(), emb)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding ``[N, dim]`` of times ``[N]`` (cosines, then sines)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=t.device)
    args = t[:, None].float() * torch.exp(exponent / half)[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1, 0, 0)) if dim % 2 else emb


class LatentUNet(nn.Module):
    """``(x [N, c, *latent], t [N], class_labels) -> velocity``: the class-conditional latent UNet."""

    def __init__(self, config: NetConfig):
        super().__init__()
        dims, ch, groups = config.spatial_dims, config.unet_channels, config.unet_norm_groups
        lc, blocks, emb = config.latent_channels, config.unet_res_blocks, config.unet_channels[0] * 4
        self.conv_in = Conv(dims, lc, ch[0])
        self.time_embed = nn.Sequential(nn.Linear(ch[0], emb), nn.SiLU(), nn.Linear(emb, emb))
        self.class_embedding = WeightedEmbedding(config.n_classes + 1, emb)
        skips, c_prev, self.down_blocks = [ch[0]], ch[0], nn.ModuleList()
        for i, c in enumerate(ch):
            last = i == len(ch) - 1
            self.down_blocks.append(DownBlock(dims, c_prev, c, emb, groups, blocks, down=not last))
            skips += [c] * (blocks + (0 if last else 1))
            c_prev = c
        self.middle_block = MidBlock(dims, ch[-1], emb, groups)
        self.up_blocks = nn.ModuleList()
        for i, c in enumerate(reversed(ch)):
            c_skips = [skips.pop() for _ in range(blocks + 1)]
            self.up_blocks.append(UpBlock(dims, c_prev, c, c_skips, emb, groups, up=i < len(ch) - 1))
            c_prev = c
        self.out = nn.Sequential(nn.GroupNorm(groups, ch[0], eps=UNET_NORM_EPS), nn.SiLU(), Conv(dims, ch[0], lc))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(timesteps, self.conv_in.conv.out_channels).to(dtype=x.dtype))
        emb = emb + self.class_embedding(class_labels).to(dtype=x.dtype)
        h = self.conv_in(x)
        states = [h]
        for block in self.down_blocks:
            h, more = block(h, emb)
            states += more
        h = self.middle_block(h, emb)
        for block in self.up_blocks:
            h = block(h, states[-len(block.resnets):], emb)
            del states[-len(block.resnets):]
        return self.out(h)


class AEResBlock(nn.Module):
    def __init__(self, dims: int, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=AE_NORM_EPS)
        self.conv1 = Conv(dims, c_in, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=AE_NORM_EPS)
        self.conv2 = Conv(dims, c_out, c_out)
        self.nin_shortcut = nn.Identity() if c_in == c_out else Conv(dims, c_in, c_out, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return self.nin_shortcut(x) + h


class Decoder(nn.Module):
    """``z [N, c, *latent] -> image``: the autoencoder's decoder, its layers in ``.blocks`` as MONAI names them."""

    def __init__(self, config: NetConfig):
        super().__init__()
        dims, groups, ch = config.spatial_dims, config.ae_norm_groups, list(reversed(config.ae_channels))
        blocks: list[nn.Module] = [Conv(dims, config.latent_channels, ch[0])]
        c_in = ch[0]
        for i, c in enumerate(ch):
            blocks.append(AEResBlock(dims, c_in, c, groups))
            c_in = c
            if i < len(ch) - 1:
                blocks.append(Upsample(dims, c))
        blocks += [nn.GroupNorm(groups, c_in, eps=AE_NORM_EPS), Conv(dims, c_in, config.image_channels)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class DecoderHalf(nn.Module):
    """The released half of the autoencoder: ``post_quant_conv`` and ``decoder`` (no encoder)."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.post_quant_conv = Conv(config.spatial_dims, config.latent_channels, config.latent_channels, kernel=1)
        self.decoder = Decoder(config)


def flow_times(steps: int, train_timesteps: int) -> list[float]:
    """The Euler grid from noise to data: ``steps`` times from ``train_timesteps`` down, then 0, each rounded to
    float16 as MONAI's ``RFlowScheduler(use_discrete_timesteps=False).set_timesteps`` stores them."""
    grid = [(1.0 - i / steps) * train_timesteps for i in range(steps)]
    return [float(t) for t in np.array(grid).astype(np.float16)] + [0.0]


def euler_step(x: torch.Tensor, velocity: torch.Tensor, t: float, t_next: float, train_timesteps: int) -> torch.Tensor:
    """One rectified-flow Euler step from ``t`` to ``t_next`` (the next time truncated to an integer, as MONAI's
    ``RFlowScheduler.step`` does)."""
    return x + velocity * (float(t - int(t_next)) / train_timesteps)
