"""Differentiable augmentation of VUs before the discriminator (DiffAugment, Zhao et al., NeurIPS 2020).

With little data D memorises the real VUs and stops teaching G. DiffAugment applies the same kind of
random, differentiable transform to real *and* generated VUs whenever D sees them (in D's step and in
G's step), so D never sees an un-augmented VU and G's gradient flows through the transform. Nothing
augmented is ever written: the generator learns the un-augmented distribution.

Operations on ``[N, C, H, W]`` tensors in [-1, 1], each drawn independently per VU (one VU's transform
never depends on another VU, so under patient-level DP an augmented VU stays inside its patient's
clipped contribution):

- ``color``: brightness ``+U(-0.5, 0.5)``, "saturation" (the slices' spread around their mean)
  ``x U(0, 2)``, contrast ``x U(0.5, 1.5)`` around the VU's mean (the published ranges);
- ``translation``: an integer shift of up to a fraction of the size (``translate``; DiffAugment's 1/8 unless
  given) in both in-plane axes, background (-1) filling what enters;
- ``cutout``: a square of half the size set to 0 at a random position.

Randomness comes from a seeded :class:`torch.Generator` on the CPU (checkpointed by the trainer), so a
run is reproducible and resumable. Under torchrun each process draws the transforms of the whole global batch
and keeps its rows' (``rows``), so N processes augment as one process would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from synthvu_core.errors import SelectionError

if TYPE_CHECKING:
    import torch

#: Policies in the order they are applied; ``none`` turns augmentation off.
OPERATIONS = ("color", "translation", "cutout")
NONE = "none"
#: The policy of the own-data recipe (``train`` on a user dataset without ``--augment``).
DEFAULT_POLICY = "color,translation,cutout"
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(text: str | None) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")`` in :data:`OPERATIONS` order; ``none`` -> ()."""
    if text is None or text.strip().lower() in (NONE, ""):
        return ()
    asked = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = [p for p in asked if p not in OPERATIONS]
    if unknown:
        raise SelectionError(
            f"--augment {text!r}: unknown operation(s) {', '.join(unknown)}; choose from {', '.join(OPERATIONS)} "
            f"or {NONE}"
        )
    return tuple(op for op in OPERATIONS if op in asked)


def mirror_draw(n: int, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Which of ``n`` real VUs to mirror (bool ``[n]``), each with probability ``p``, drawn from ``generator``.
    Drawn for a whole global batch before it is sharded, so N processes mirror what one process would."""
    import torch

    return torch.rand(n, generator=generator) < p


def mirror_slices(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """The VUs of ``x`` (``[N, C, H, W]``, C the parasagittal slices) with their slice order reversed where
    ``flip`` (bool ``[N]``, :func:`mirror_draw`): the same vertebral unit seen from the other side.

    Not a DiffAugment operation: it is applied to the *real* VUs only (the x-flip of a training set, as
    StyleGAN2-ADA's ``--mirror``, Karras et al. 2020). A mirrored VU is a VU of the same level (the spine is
    near symmetric about the midsagittal plane), so the generator may learn it; the train set doubles.
    """
    import torch

    if x.dim() != 4 or len(flip) != len(x):
        raise SelectionError(f"mirroring needs VUs of shape [N, slices, H, W] and N flags, got {list(x.shape)} "
                             f"and {len(flip)}")
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(1), x)


def affine_draw(n: int, generator: torch.Generator, rotate: float, rescale: float) -> torch.Tensor:
    """In-plane transforms of ``n`` real VUs (``[n, 2, 3]``, :func:`torch.nn.functional.affine_grid`'s ``theta``):
    each a rotation by ``U(-rotate, rotate)`` degrees and an isotropic scale by ``1 + U(-rescale, rescale)``, about
    the VU's centre, drawn from ``generator`` for a whole global batch before it is sharded (as :func:`mirror_draw`).
    """
    import math

    import torch

    angle = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.radians(rotate)
    scale = 1 + (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * rescale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    zero = torch.zeros_like(cos)
    return torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1).float()


def affine_slices(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The VUs of ``x`` (``[N, C, H, W]`` in [-1, 1]) each rotated and scaled in-plane by its ``theta``
    (:func:`affine_draw`), every slice alike, bilinear, with background (-1) filling what enters.

    Like :func:`mirror_slices`, not a DiffAugment operation: it is applied to the *real* VUs only, so the generator
    may learn it. A lumbar level seen a few degrees more or less lordotic, or in a slightly larger or smaller patient,
    is a VU of the same level: the small train set gains the within-level spread its samples lack.
    """
    import torch.nn.functional as F

    if x.dim() != 4 or theta.shape != (len(x), 2, 3):
        raise SelectionError(f"an in-plane transform needs VUs of shape [N, slices, H, W] and N transforms, got "
                             f"{list(x.shape)} and {list(theta.shape)}")
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


class Rows:
    """Which rows of a global batch of ``total`` VUs a tensor holds (``index``, None: all of them, in order):
    the transforms are drawn for all ``total`` and the tensor takes its rows'."""

    def __init__(self, total: int, index: torch.Tensor | None = None):
        self.total, self.index = total, index

    def take(self, drawn: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        drawn = drawn if self.index is None else drawn[self.index]
        return drawn.to(x.device)


def _rows(x: torch.Tensor, rows: Rows | None) -> Rows:
    return rows if rows is not None else Rows(x.shape[0])


def _uniform(rows: Rows, generator: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    import torch

    return rows.take(torch.rand(rows.total, 1, 1, 1, generator=generator), x).to(dtype=x.dtype)


def _randint(low: int, high: int, rows: Rows, generator: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    import torch

    return rows.take(torch.randint(low, high, (rows.total, 1, 1), generator=generator), x)


def color(x: torch.Tensor, generator: torch.Generator, rows: Rows | None = None) -> torch.Tensor:
    r = _rows(x, rows)
    x = x + (_uniform(r, generator, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(r, generator, x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(r, generator, x) + 0.5) + mean


def translation(
    x: torch.Tensor, generator: torch.Generator, rows: Rows | None = None, ratio: float = TRANSLATION_RATIO
) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = _randint(-sh, sh + 1, _rows(x, rows), generator, x)
    tx = _randint(-sw, sw + 1, _rows(x, rows), generator, x)
    gi, gj = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gi = torch.clamp(gi + ty + 1, 0, h + 1)
    gj = torch.clamp(gj + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1], value=-1.0).permute(0, 2, 3, 1)  # [N, H+2, W+2, C]
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, gi, gj].permute(0, 3, 1, 2).contiguous()


def cutout(
    x: torch.Tensor, generator: torch.Generator, rows: Rows | None = None, ratio: float = CUTOUT_RATIO
) -> torch.Tensor:
    import torch

    _, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = _randint(0, h + (1 - ch % 2), _rows(x, rows), generator, x)
    ox = _randint(0, w + (1 - cw % 2), _rows(x, rows), generator, x)
    gi = torch.arange(h, device=x.device).view(1, h, 1)
    gj = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (gi >= oy - ch // 2) & (gi < oy - ch // 2 + ch) & (gj >= ox - cw // 2) & (gj < ox - cw // 2 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def instance_noise(
    x: torch.Tensor, sigma: float, generator: torch.Generator, rows: Rows | None = None
) -> torch.Tensor:
    """``x`` plus Gaussian noise of standard deviation ``sigma`` per pixel (instance noise, Sønderby et al. 2017;
    Arjovsky & Bottou 2017): real and generated VUs blurred into each other, so that D cannot separate the few
    real VUs it has by detail that G can only copy. Drawn per VU, independent of every other VU."""
    import torch

    r = _rows(x, rows)
    noise = torch.randn(r.total, *x.shape[1:], generator=generator)
    return x + sigma * r.take(noise, x).to(dtype=x.dtype)


_OPS: dict[str, Callable[[torch.Tensor, torch.Generator, Rows | None], torch.Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def augment(
    x: torch.Tensor,
    policy: tuple[str, ...],
    generator: torch.Generator,
    rows: Rows | None = None,
    translate: float = TRANSLATION_RATIO,
) -> torch.Tensor:
    """``x`` with the policy's operations applied in turn (differentiable in ``x``; ``()`` returns ``x``);
    ``rows``: ``x`` is these rows of a larger global batch (under torchrun), whose transforms are all drawn;
    ``translate``: the largest shift of ``translation``, as a fraction of the size."""
    for op in policy:
        x = translation(x, generator, rows, translate) if op == "translation" else _OPS[op](x, generator, rows)
    return x
