"""AC-GAN generators and discriminators for vertebral units.

Two architectures share one interface:

* ``pgan``: the published study's DCGAN-style AC-GAN, faithfully. G: 100-d Gaussian noise concatenated
  with a one-hot class code, a 4x4 transposed convolution to a 4x4 map, then 4x4 stride-2 transposed
  convolutions (widths 8n -> 4n -> 2n -> n -> C with n = 64 at 64x64: five in all), ReLU, Tanh out.
  D: 4x4 stride-2 convolutions (n -> 2n -> 4n -> 8n), LeakyReLU 0.2, then two 4x4 heads (real/fake logit,
  class logits). Batch norm off by default. Adam lr 1e-4 (both), batch 32, auxiliary weight 1.0.
* ``default``: the same skeleton made lighter and DP-ready: width n = 32 (about 4x fewer generator FLOPs),
  pixel norm in G (per-sample, so samples never depend on the batch), GroupNorm in D (works with
  per-sample gradients, hence DP-SGD), Adam(0.5, 0.999) lr 2e-4, and an exponential moving average of
  the generator weights (what is saved and sampled). Conditioning made strong, chosen by measurement
  (with the study's scheme, a classifier trained on real VUs recognises the requested class of
  generated ones poorly, TRTS, for a long time): the class also scales and shifts G's features after
  every hidden stage (``g_cond="modulate"``), and D's class head is trained on real VUs only
  (``aux_fake=False``), so G is rewarded for VUs that a classifier of *real* VUs recognises, not for
  cues D and G agree on. ``python -m benchmarks.experiments.conditioning`` measures the four variants.

The number of up/down-sampling stages follows from the image size: ``log2(H) - 2`` stride-2 stages
(H = 32 -> 3, 64 -> 4, 128 -> 5), widths capped at 8n. Images must be square with a power-of-two
side >= 16.

Shapes: ``Generator(z [N, latent_dim], labels [N] | class weights [N, K]) -> images [N, C, H, W]`` in [-1, 1];
``Discriminator(images [N, C, H, W], labels [N] | None) -> (real_logit [N], class_logits [N, K])`` (the labels
enter the real logit only with ``projection``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

ARCHITECTURES: tuple[str, ...] = ("default", "pgan")


#: D's output heads (module names, and the projection's bare trend parameter): real/fake logit, class logits and the
#: projection; the rest of D is its body.
D_HEADS = (
    "adv_head", "class_head", "source_head", "projection", "source_projection", "ordinal_projection", "twin_head",
)


@dataclass
class ACGANConfig:
    """Architecture hyper-parameters (stored in the card under ``architecture``)."""

    name: str = "default"
    shape: tuple[int, int, int] = (9, 64, 64)  # C, H, W
    n_classes: int = 3
    latent_dim: int = 100
    width: int = 32  # n: the generator's narrowest width
    d_width: int = 32  # the discriminator's first width
    g_norm: str = "pixel"  # none | batch | pixel
    d_norm: str = "group"  # none | batch | group
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    aux_weight: float = 1.0
    ema: float = 0.999  # 0 = no moving average of G
    # Conditioning. The defaults here are the study's (and what cards without these keys were trained
    # with); ``architecture("default")`` chooses the measured improvements.
    # input: one-hot at G's input only | modulate: also a class-wise scale and shift after every hidden G norm
    g_cond: str = "input"
    # True: D's class head also learns the requested class of generated VUs (the study); False: real VUs only
    aux_fake: bool = True
    # Source conditioning (0 = none): G gets a source-wise scale and shift beside the class's at every stage,
    # D a source head; ``source_prior[k]`` is P(source | class k) in the train split, used when no source is asked.
    n_sources: int = 0
    source_prior: list[list[float]] | None = None
    # Projection (Miyato & Koyama 2018): D's real/fake logit also gets <embedding of the VU's joint label
    # (class, source), D's last features>, so D judges whether a VU is real *for its label*, not only whether it
    # is real and recognisable (the auxiliary head alone rewards caricatures of a label; see ``Discriminator``).
    projection: bool = False
    # Output low-pass (0 = none): G's last layer is a fixed in-plane Gaussian blur of standard deviation ``smooth``
    # pixels per slice (:func:`gaussian_blur`; not learned), and the real VUs D sees pass the same filter, so that D
    # compares VUs at the detail G can draw (a small-data G otherwise answers D with pixel noise).
    smooth: float = 0.0
    # Twin auxiliary classifier (TAC-GAN, Gong et al. 2019): D gets a second class head that learns the class G was
    # asked for from generated VUs only, and G's class loss subtracts its cross-entropy. The class head alone rewards
    # VUs its classifier of real VUs is surest of, which narrows each class and pushes the classes apart; with the
    # twin G is rewarded for matching the real VUs' class posterior instead. Needs ``aux_fake`` False.
    twin: bool = False
    # Snapshot ensemble (1 = none): the released generator holds the moving-average G of ``snapshots`` steps evenly
    # spaced over the second half of training (the last one included) and draws each VU from one of them, chosen by
    # its noise (:class:`SnapshotEnsemble`); training itself is unchanged.
    snapshots: int = 1
    # The source as style (a source-conditioned G and D only): ``source_stages`` N > 0 gives the source's scale and
    # shift to G's last N hidden stages only (0: every stage), so the coarse anatomy of a level is learnt from the VUs
    # of every source and the source sets contrast and texture; ``split_projection`` gives D's projection a class
    # embedding plus a source embedding instead of one per (class, source) pair, so D judges a VU's level from every
    # source's VUs of that level. Both are meant to let a source with few patients borrow a level's anatomy from the
    # others; on the real lumbar MRI they moved TSTR between the sources without raising it (docs/real-data.md).
    source_stages: int = 0
    split_projection: bool = False
    # Ordinal classes (the modulated G only): the classes are taken as ordered along the spine, class k at
    # t_k = linspace(-1, 1, K)[k] (evenly spaced in the run's class order, whatever the anatomical gaps). Each of G's
    # class modulations gets a shared per-channel trend added to every class's scale and shift (t_k a, t_k b), and
    # D's projection (where D has one) a shared t_k w, all zero-initialised: what one level's VUs teach about the
    # trend reaches every level, meant for levels with few VUs. On the real lumbar MRI it raised the minority
    # source's holdout patient in 10 of 12 paired runs and lowered the other source's in 9, TSTR/TRTR unchanged on
    # average (0.641 against 0.639; docs/real-data.md, "Ordinal levels").
    ordinal: bool = False

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)  # type: ignore[assignment]
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        stages(self.shape)  # validates
        if self.g_cond not in ("input", "modulate"):
            raise ValueError(f"unknown generator conditioning {self.g_cond!r}; choose input or modulate")
        self.aux_fake = bool(self.aux_fake)
        if self.n_sources and self.g_cond != "modulate":
            raise ValueError("source conditioning needs the modulated generator (g_cond modulate)")
        self.projection = bool(self.projection)
        self.twin = bool(self.twin)
        if self.twin and self.aux_fake:
            raise ValueError("the twin classifier needs D's class head to learn real VUs only (aux_fake False)")
        self.smooth = float(self.smooth)
        if not (math.isfinite(self.smooth) and 0 <= self.smooth <= 8):
            raise ValueError(f"output smoothing must be 0 (none) to 8 pixels, got {self.smooth:g}")
        if self.smooth and math.ceil(3 * self.smooth) >= min(self.shape[1:]):
            raise ValueError(f"output smoothing of {self.smooth:g} pixels reaches across a {self.shape[1]}x"
                             f"{self.shape[2]} slice (3 sigma must stay below its side)")
        if isinstance(self.snapshots, bool) or int(self.snapshots) != self.snapshots or not 1 <= self.snapshots <= 8:
            raise ValueError(f"snapshots must be a whole number from 1 (none) to 8, got {self.snapshots}")
        self.snapshots = int(self.snapshots)
        if self.snapshots > 1 and self.latent_dim < 2:
            raise ValueError("a snapshot ensemble needs a noise of at least 2 coordinates (one picks the member)")
        if isinstance(self.source_stages, bool) or int(self.source_stages) != self.source_stages or not (
            0 <= self.source_stages <= stages(self.shape)
        ):
            raise ValueError(f"source stages must be a whole number from 0 (every stage) to G's {stages(self.shape)} "
                             f"hidden stages, got {self.source_stages}")
        self.source_stages = int(self.source_stages)
        self.split_projection = bool(self.split_projection)
        if self.split_projection and not self.projection:
            raise ValueError("a split projection splits D's projection: it needs the projection (--projection)")
        self.ordinal = bool(self.ordinal)
        if self.ordinal and self.g_cond != "modulate":
            raise ValueError("ordinal classes add a trend to G's class modulation: they need a generator "
                             "conditioned by modulation (--conditioning modulate, or a prior trained so)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["betas"] = list(self.betas)
        if not self.smooth:  # cards and checkpoints from before the option read the same
            del d["smooth"]
        if self.snapshots == 1:  # likewise
            del d["snapshots"]
        if not self.twin:  # likewise
            del d["twin"]
        for key in ("source_stages", "split_projection", "ordinal"):  # likewise
            if not d[key]:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ACGANConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def architecture(name: str, shape: tuple[int, int, int], n_classes: int, **overrides: Any) -> ACGANConfig:
    """The named architecture's configuration for a dataset shape and class count."""
    if name == "pgan":
        base = dict(width=64, d_width=64, g_norm="none", d_norm="none", lr=1e-4, betas=(0.5, 0.999), ema=0.0)
    elif name == "default":
        base = dict(g_cond="modulate", aux_fake=False)
    else:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    base.update({k: v for k, v in overrides.items() if v is not None})
    return ACGANConfig(name=name, shape=tuple(shape), n_classes=int(n_classes), **base)


def stages(shape: tuple[int, int, int]) -> int:
    """Number of stride-2 stages for a ``[C, H, W]`` shape (H = W = 2^k, k >= 4)."""
    _, h, w = shape
    k = int(round(math.log2(h))) if h > 0 else 0
    if h != w or 2**k != h or h < 16:
        raise ValueError(f"VU images must be square with a power-of-two side >= 16, got {h}x{w}")
    return k - 2


def _widths(n: int, k: int) -> list[int]:
    """Feature widths from the 4x4 map outwards: [8n, 4n, 2n, n] for k = 4 (capped at 8n)."""
    return [n * min(8, 2 ** (k - 1 - i)) for i in range(k)]


class PixelNorm(nn.Module):
    """Per-pixel feature normalisation (ProGAN); per sample, so batch-independent.

    Under ``torch.inference_mode`` (sampling) the input is scaled in place: the same values, one feature map
    fewer to allocate and write.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        return x.mul_(scale) if torch.is_inference_mode_enabled() else x * scale


def _g_norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "pixel":
        return PixelNorm()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown generator norm {kind!r}")


def _d_norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "group":
        return nn.GroupNorm(min(32, max(1, c // 4)), c)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown discriminator norm {kind!r}")


class ClassModulation(nn.Module):
    """Class-wise scale and shift of a feature map: ``h * (1 + gamma[y]) + beta[y]`` (zero-initialised).

    Conditional normalisation as in conditional batch norm / AdaIN, applied after the (per-sample) pixel
    norm, so the requested class reaches every resolution instead of the input code alone.
    """

    def __init__(self, n_classes: int, channels: int):
        super().__init__()
        self.gamma = nn.Embedding(n_classes, channels)
        self.beta = nn.Embedding(n_classes, channels)
        nn.init.zeros_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, h: torch.Tensor, code: torch.Tensor, trend: OrdinalTrend | None = None) -> torch.Tensor:
        """``code``: class indices ``[N]``, or class weights ``[N, K]`` (a mixture of the class embeddings).
        ``trend``: the shared ordinal trend added to each class's scale and shift (``ACGANConfig.ordinal``)."""
        if code.is_floating_point():
            gamma, beta = code @ self.gamma.weight, code @ self.beta.weight
        else:
            gamma, beta = self.gamma(code), self.beta(code)
        if trend is not None:
            t = trend.position(code)[:, None]
            gamma, beta = gamma + t * trend.gamma, beta + t * trend.beta
        return torch.addcmul(beta[:, :, None, None], h, 1.0 + gamma[:, :, None, None])


def ordinal_positions(n_classes: int) -> torch.Tensor:
    """Each class's place along the spine, ``linspace(-1, 1, K)`` in the run's class order (``ACGANConfig.ordinal``)."""
    return torch.linspace(-1, 1, n_classes)


class OrdinalTrend(nn.Module):
    """A per-channel scale and shift shared by every class, weighted by the class's place ``t_k`` along the spine
    (zero-initialised; :class:`ClassModulation` adds ``t_k gamma`` and ``t_k beta`` to the class's own)."""

    def __init__(self, n_classes: int, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("positions", ordinal_positions(n_classes), persistent=False)

    def position(self, code: torch.Tensor) -> torch.Tensor:
        """``[N]``: the place of class indices ``[N]``, or the weighted place of class weights ``[N, K]``."""
        return code @ self.positions if code.is_floating_point() else self.positions[code]


@functools.lru_cache(maxsize=16)
def _blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """``[n, n]`` float64: row ``i`` holds the Gaussian weights (radius ``ceil(3 sigma)``, normalised) that a
    reflect-padded 1-D convolution gives pixel ``i`` (the border pixel not repeated)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    m = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j, w in zip(range(i - radius, i + radius + 1), k.tolist()):
            m[i, -j if j < 0 else (2 * (n - 1) - j if j >= n else j)] += w
    return m


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` ``[N, C, H, W]`` blurred in-plane (each slice on its own) by a Gaussian of ``sigma`` pixels, borders
    reflected; differentiable; ``sigma`` 0 returns ``x``. Two small matrix products (``B_H x B_W^T``): about 20
    times faster on the CPU than the same separable filter as convolutions."""
    if not sigma:
        return x
    h, w = x.shape[-2:]
    bh = _blur_matrix(h, float(sigma)).to(device=x.device, dtype=x.dtype)
    bw = bh if w == h else _blur_matrix(w, float(sigma)).to(device=x.device, dtype=x.dtype)
    return bh @ x @ bw.T


class Generator(nn.Module):
    """``(z [N, latent_dim], labels [N] int or class weights [N, K]) -> images [N, C, H, W]`` in [-1, 1]."""

    def __init__(self, config: ACGANConfig):
        super().__init__()
        self.config = config
        c, _, _ = config.shape
        k = stages(config.shape)
        widths = _widths(config.width, k)
        bias = config.g_norm != "batch"
        layers: list[nn.Module] = []
        #: position in ``net`` of each hidden stage's norm -> index of the modulation applied after it
        self._modulated: dict[int, int] = {}
        inputs = [config.latent_dim + config.n_classes, *widths[:-1]]
        for stage, (width_in, width_out) in enumerate(zip(inputs, widths)):
            first = stage == 0  # 1x1 -> 4x4 map, then stride-2 upsampling
            layers.append(nn.ConvTranspose2d(width_in, width_out, 4, 1 if first else 2, 0 if first else 1, bias=bias))
            layers.append(_g_norm(config.g_norm, width_out))
            self._modulated[len(layers) - 1] = stage
            layers.append(nn.ReLU(inplace=True))
        layers += [nn.ConvTranspose2d(widths[-1], c, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)  # parameter names net.<position>.* are those of saved weights
        if config.g_cond == "modulate":
            self.modulation = nn.ModuleList(ClassModulation(config.n_classes, w) for w in widths)
        if config.ordinal:
            self.ordinal_trend = nn.ModuleList(OrdinalTrend(config.n_classes, w) for w in widths)
        if config.n_sources:
            self.source_modulation = nn.ModuleList(ClassModulation(config.n_sources, w) for w in widths)
        #: the first hidden stage the source modulates (``config.source_stages``; 0 = every stage); the stages before
        #: keep their (unused) modulation so that weights keep their names, frozen: no gradient ever reaches them
        self._first_source_stage = k - config.source_stages if config.source_stages else 0
        if config.n_sources:
            for unused in self.source_modulation[: self._first_source_stage]:
                unused.requires_grad_(False)
        #: the source every sample gets when none is passed (``sample --source``); None = drawn from the prior
        self.fixed_source: int | None = None

    def draw_sources(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """A source per VU: :attr:`fixed_source`, else drawn from P(source | class) by the normal CDF of the
        last noise coordinate (so a seed fixes it, and no extra random stream is needed)."""
        n = z.shape[0]
        if self.fixed_source is not None:
            return torch.full((n,), int(self.fixed_source), dtype=torch.long, device=z.device)
        prior = torch.as_tensor(self.config.source_prior, dtype=torch.float64, device=z.device)
        k = labels.argmax(1) if labels.is_floating_point() and labels.dim() == 2 else labels.long()
        cdf = prior[k].cumsum(1)
        u = 0.5 * (1 + torch.erf(z[:, -1].double() / 2**0.5))
        return torch.clamp((u[:, None] > cdf).sum(1), max=self.config.n_sources - 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor | None = None) -> torch.Tensor:
        """``labels``: class indices ``[N]``, or class weights ``[N, K]`` (e.g. between two classes when
        interpolating), used in place of the one-hot code everywhere the class enters. ``sources``: source
        indices ``[N]`` of a source-conditioned generator (None: :meth:`draw_sources`)."""
        if self.config.n_sources and sources is None:
            sources = self.draw_sources(z, labels)
        if labels.is_floating_point() and labels.dim() == 2:
            code = labels.to(z.dtype)
        else:
            labels = labels.long()
            code = torch.nn.functional.one_hot(labels, self.config.n_classes).to(z.dtype)
        h = torch.cat([z, code], dim=1)[:, :, None, None]
        if self.config.g_cond == "input":
            return gaussian_blur(self.net(h), self.config.smooth)
        cond = code if labels.is_floating_point() else labels
        sampling = torch.is_inference_mode_enabled()
        for position, layer in enumerate(self.net):
            # the final tanh in place while sampling (the same values, no second image batch)
            h = h.tanh_() if sampling and isinstance(layer, nn.Tanh) else layer(h)
            stage = self._modulated.get(position)
            if stage is not None:
                h = self.modulation[stage](h, cond, self.ordinal_trend[stage] if self.config.ordinal else None)
                if sources is not None and stage >= self._first_source_stage:
                    h = self.source_modulation[stage](h, sources)
        return gaussian_blur(h, self.config.smooth)


def snapshot_of(z: torch.Tensor, k: int) -> torch.Tensor:
    """The snapshot ``[N]`` (0 … k-1) a VU of noise ``z`` is drawn from: the fine digits of the normal CDF of its
    second-to-last noise coordinate (the last one picks the source), so a seed fixes it, no extra random stream is
    needed, and the choice is independent of the coordinate's coarse value (which the generator reads)."""
    u = 0.5 * (1 + torch.erf(z[:, -2].double() / 2**0.5))
    return (torch.floor(u * k * SNAPSHOT_FOLDS) % k).long()


#: How many times :func:`snapshot_of` folds the unit interval onto the snapshots.
SNAPSHOT_FOLDS = 1009


class SnapshotEnsemble(nn.Module):
    """A generator of ``config.snapshots`` members (weights ``members.<i>.*``, oldest first), called like
    :class:`Generator`: each VU comes from the member :func:`snapshot_of` picks, with the source drawn once."""

    def __init__(self, config: ACGANConfig):
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(Generator(config) for _ in range(config.snapshots))

    @property
    def fixed_source(self) -> int | None:
        return self.members[0].fixed_source

    @fixed_source.setter
    def fixed_source(self, value: int | None) -> None:
        for member in self.members:
            member.fixed_source = value

    def forward(
        self, z: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor | None = None, member: int | None = None
    ) -> torch.Tensor:
        """As :meth:`Generator.forward`; ``member`` sends every VU to that member (an interpolation path stays on
        one generator) instead of each to its own (:func:`snapshot_of`)."""
        if self.config.n_sources and sources is None:
            sources = self.members[0].draw_sources(z, labels)
        if member is not None:
            return self.members[member](z, labels, sources)
        which = snapshot_of(z, len(self.members))
        out = None
        for i, member in enumerate(self.members):
            rows = (which == i).nonzero().flatten()
            if len(rows) == 0:
                continue
            part = member(z[rows], labels[rows], None if sources is None else sources[rows])
            if out is None:
                out = part.new_empty((z.shape[0], *part.shape[1:]))
            out[rows] = part
        return out


def build_generator(config: ACGANConfig) -> Generator | SnapshotEnsemble:
    """The (untrained) released generator a configuration describes: one G, or a snapshot ensemble."""
    return SnapshotEnsemble(config) if config.snapshots > 1 else Generator(config)


class Discriminator(nn.Module):
    """``images [N, C, H, W] -> (real_logit [N], class_logits [N, K])``.

    With ``config.projection`` the real logit of a VU whose label is given (``D(x, labels)``; the joint label
    ``class + K * source`` of a source-conditioned D) adds the inner product of a per-label embedding with D's last
    features (zero-initialised, so a fine-tune starts from the unconditional logit). Without labels (the
    attacks, which do not know them) the logit is the unconditional part.
    """

    def __init__(self, config: ACGANConfig):
        super().__init__()
        self.config = config
        #: the filter every input passes first (pixels): 0 in training, where the trainer filters the real VUs and
        #: G's output is filtered already; a *released* D (``registry.load_discriminator``) scores each VU as the
        #: real VUs reached it in training, through ``config.smooth``
        self.input_smooth = 0.0
        c, h, _ = config.shape
        k = stages(config.shape)
        widths = _widths(config.d_width, k)[::-1]  # n, 2n, 4n, 8n
        layers: list[nn.Module] = []
        prev = c
        for i, w in enumerate(widths):
            norm = nn.Identity() if i == 0 else _d_norm(config.d_norm, w)
            layers += [nn.Conv2d(prev, w, 4, 2, 1, bias=not isinstance(norm, nn.BatchNorm2d)), norm, nn.LeakyReLU(0.2)]
            prev = w
        self.body = nn.Sequential(*layers)
        self.adv_head = nn.Conv2d(prev, 1, 4, 1, 0)
        self.class_head = nn.Conv2d(prev, config.n_classes, 4, 1, 0)
        if config.n_sources:
            self.source_head = nn.Conv2d(prev, config.n_sources, 4, 1, 0)
        if config.projection:
            side = h // 2 ** len(widths)
            split = config.split_projection and config.n_sources
            rows = config.n_classes * (1 if split else max(config.n_sources, 1))
            self.projection = nn.Embedding(rows, prev * side * side)
            nn.init.zeros_(self.projection.weight)
            if split:
                self.source_projection = nn.Embedding(config.n_sources, prev * side * side)
                nn.init.zeros_(self.source_projection.weight)
            if config.ordinal:  # the shared trend of the label embedding along the classes' order
                self.ordinal_projection = nn.Parameter(torch.zeros(prev * side * side))
                self.register_buffer("ordinal_positions", ordinal_positions(config.n_classes), persistent=False)
        if config.twin:
            self.twin_head = nn.Conv2d(prev, config.n_classes, 4, 1, 0)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, twin: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """``(real logit [N], class logits [N, K])``; a source-conditioned D appends its source logits
        (``[N, K + S]``, see :func:`synthvu_core.models.training.aux_loss`). ``labels`` (joint labels ``[N]``) add
        the projection term where D has one. ``twin``: also the twin head's class logits ``[N, K]`` (a third
        output; ``config.twin`` only)."""
        h = self.body(gaussian_blur(x, self.input_smooth))
        cls = self.class_head(h).flatten(1)
        if self.config.n_sources:
            cls = torch.cat([cls, self.source_head(h).flatten(1)], dim=1)
        adv = self.adv_head(h).flatten(1)[:, 0]
        if self.config.projection and labels is not None:
            adv = adv + (self._label_embedding(labels.long()) * h.flatten(1)).sum(1)
        if twin:
            return adv, cls, self.twin_head(h).flatten(1)
        return adv, cls

    def _label_embedding(self, labels: torch.Tensor) -> torch.Tensor:
        """The projection's embedding of joint labels ``class + K * source``: one row per pair, or with
        ``split_projection`` the class's row plus the source's; with ``ordinal`` plus the class's place times the
        shared trend."""
        k = self.config.n_classes
        if not hasattr(self, "source_projection"):
            e = self.projection(labels)
        else:
            e = self.projection(labels % k) + self.source_projection(labels // k)
        if self.config.ordinal:
            e = e + self.ordinal_positions[labels % k][:, None] * self.ordinal_projection
        return e


def build(config: ACGANConfig, seed: int = 0) -> tuple[Generator, Discriminator]:
    """Seeded construction of a generator and a discriminator (DCGAN init: N(0, 0.02) convolutions)."""
    g = torch.Generator().manual_seed(int(seed))
    gen, disc = Generator(config), Discriminator(config)
    for module in (*gen.modules(), *disc.modules()):
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            with torch.no_grad():
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) * 0.02)
                if module.bias is not None:
                    module.bias.zero_()
        elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm) and module.weight is not None:
            with torch.no_grad():
                module.weight.copy_(1.0 + torch.randn(module.weight.shape, generator=g) * 0.02)
                module.bias.zero_()
    return gen, disc
