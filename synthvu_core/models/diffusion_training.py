"""Training of the latent diffusion generator (:mod:`synthvu_core.models.diffusion`): seeded, resumable.

Two phases in one run, counted as one sequence of steps:

1. ``autoencoder_steps`` steps of the VU autoencoder: L1 reconstruction + ``kl_weight`` x KL, Adam;
2. the latents of the train split are encoded once (the encoder's mean), scaled to unit standard
   deviation (``latent_scale``, recorded in the card), and the UNet is trained for ``steps`` steps on
   rectified flow: ``x_t = (1 - t/T) x0 + (t/T) noise`` with logit-normal ``t``, velocity target
   ``x0 - noise``, MSE; the class is replaced by the null class with probability ``cond_drop`` (for
   classifier-free guidance). A moving average of the UNet weights is what is released.

Randomness comes from two generators seeded from ``seed`` (data order; noise, times and class drops).
Checkpoints (``training/checkpoint/``: safetensors + JSON, written atomically) hold both modules, the
moving average, both optimizers, the generator states, the data permutation and cursor, and the step,
so a resumed run reproduces an uninterrupted one on CPU. Ctrl-C saves a checkpoint and stops.
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core import __version__, levels
from synthvu_core.errors import SelectionError
from synthvu_core.storage import atomic_path, write_json

if TYPE_CHECKING:
    import torch

    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.diffusion import DiffusionGenerator

TRAINING_DIR = "training"
CHECKPOINT_DIR = "checkpoint"


@dataclass
class DiffusionTrainConfig:
    """Training settings. ``steps`` wins over ``epochs`` (diffusion phase); likewise for the autoencoder."""

    scheme: str = "region"
    arch: str = "diffusion"  # or "diffusion3d": 3-D sub-volumes
    epochs: float | None = None
    steps: int | None = None
    autoencoder_epochs: float | None = None
    autoencoder_steps: int | None = None
    batch_size: int = 32
    lr: float | None = None  # the UNet's (None = the architecture's)
    width: int | None = None  # the UNet's channel width (None = the architecture's)
    sampling_steps: int | None = None
    guidance: float | None = None
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    montage_every: int | None = None
    resume: bool = False
    keep_checkpoint: bool = True
    weights_dtype: str = "float16"
    name: str | None = None
    command: str | None = None

    default_epochs: float = 60.0
    default_autoencoder_epochs: float = 10.0


def _steps(steps: int | None, epochs: float | None, default_epochs: float, per_epoch: int, what: str) -> int:
    n = int(steps) if steps is not None else int(math.ceil((default_epochs if epochs is None else epochs) * per_epoch))
    if n < 1:
        raise SelectionError(f"the {what} needs at least one training step")
    return n


class DiffusionTrainer:
    """The training state and one :meth:`step`. Use :func:`train_diffusion` for the whole run."""

    def __init__(self, dataset: VUDataset, out_dir: str | Path, config: DiffusionTrainConfig):
        import torch

        from synthvu_core.models import diffusion
        from synthvu_core.models.training import resolve_device

        self.dataset, self.config, self.out_dir = dataset, config, Path(out_dir)
        self.device = torch.device(resolve_device(config.device))
        if config.scheme not in levels.SCHEMES:
            raise SelectionError(
                f"unknown conditioning scheme {config.scheme!r}; choose one of {', '.join(levels.SCHEMES)}"
            )
        train_idx = dataset.indices("train")
        if len(train_idx) == 0:
            raise SelectionError("the dataset's train split is empty: nothing to train on")
        self.classes = levels.classes(config.scheme, dataset.units["level"].iloc[train_idx].astype(str).unique())
        labels = dataset.labels(config.scheme, self.classes)[train_idx]
        counts = np.bincount(labels, minlength=len(self.classes)).astype(np.float64)
        self.class_prior = (counts / counts.sum()).tolist()
        self.n_train = len(train_idx)
        self.images = torch.from_numpy(np.ascontiguousarray(dataset.images[train_idx])).to(self.device)
        self.labels = torch.from_numpy(labels).to(self.device)
        overrides = {"lr": config.lr, "sampling_steps": config.sampling_steps, "guidance": config.guidance}
        if config.width is not None:
            overrides["unet_channels"] = (int(config.width), int(config.width))
        try:
            self.arch = diffusion.DiffusionConfig(
                name=config.arch,
                shape=tuple(dataset.shape),
                n_classes=len(self.classes),
                **{**three_d_defaults(config.arch), **{k: v for k, v in overrides.items() if v is not None}},
            )
        except ValueError as e:
            raise SelectionError(f"diffusion architecture: {e}") from None
        self.batch_size = int(config.batch_size)
        if self.batch_size < 1:
            raise SelectionError("batch size must be at least 1")
        self.steps_per_epoch = max(1, self.n_train // self.batch_size)
        self.ae_steps = _steps(
            config.autoencoder_steps,
            config.autoencoder_epochs,
            config.default_autoencoder_epochs,
            self.steps_per_epoch,
            "autoencoder",
        )
        self.diffusion_steps = _steps(
            config.steps, config.epochs, config.default_epochs, self.steps_per_epoch, "diffusion model"
        )
        self.total_steps = self.ae_steps + self.diffusion_steps

        self.ae, self.unet = diffusion.build(self.arch, seed=config.seed)
        self.unet_ema = diffusion.build_unet(self.arch)
        self.unet_ema.load_state_dict(self.unet.state_dict())
        for m in (self.ae, self.unet, self.unet_ema):
            m.to(self.device)
        self.unet_ema.eval()
        self.opt_ae = torch.optim.Adam(self.ae.parameters(), lr=self.arch.ae_lr)
        self.opt_unet = torch.optim.Adam(self.unet.parameters(), lr=self.arch.lr)
        self.gen_data = torch.Generator().manual_seed(config.seed * 1000 + 1)
        self.gen_noise = torch.Generator().manual_seed(config.seed * 1000 + 2)
        self.perm = torch.randperm(self.n_train, generator=self.gen_data)
        self.cursor = 0
        self.step_count = 0
        self.seconds = 0.0
        self.last: dict[str, float] = {}
        self._latents: torch.Tensor | None = None

    # ---- data ---------------------------------------------------------------------------------
    def _as_input(self, u8: torch.Tensor) -> torch.Tensor:
        """uint8 VUs / sub-volumes -> the autoencoder's float input in [-1, 1] (a channel axis for 3-D)."""
        x = u8.float() / 127.5 - 1.0
        return x.unsqueeze(1) if self.arch.spatial_dims == 3 else x

    def _batch(self) -> torch.Tensor:
        import torch

        b = min(self.batch_size, self.n_train)
        if self.cursor + b > self.n_train:
            self.perm = torch.randperm(self.n_train, generator=self.gen_data)
            self.cursor = 0
        idx = self.perm[self.cursor : self.cursor + b]
        self.cursor += b
        return idx.to(self.device)

    def latents(self) -> torch.Tensor:
        """Scaled latents ``[n_train, *latent_shape]`` of the train split (encoded once, after phase 1)."""
        import torch

        if self._latents is None:
            chunk = 256 if self.arch.spatial_dims == 2 else 16  # a sub-volume's feature maps are far larger
            self.ae.eval()
            with torch.no_grad():
                mus = [
                    self.ae.encode(self._as_input(self.images[s : s + chunk]))[0]
                    for s in range(0, self.n_train, chunk)
                ]
            mu = torch.cat(mus)
            if self.arch.latent_scale == 1.0 and self.step_count == self.ae_steps:
                self.arch.latent_scale = float(1.0 / mu.std().clamp_min(1e-6))
            self._latents = mu * self.arch.latent_scale
        return self._latents

    # ---- one step -----------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One autoencoder step (phase 1) or one UNet step (phase 2); returns the losses."""
        if self.step_count < self.ae_steps:
            self.last = self._autoencoder_step()
        else:
            self.last = self._diffusion_step()
        self.step_count += 1
        return self.last

    def _autoencoder_step(self) -> dict[str, float]:
        import torch

        self.ae.train()
        x = self._as_input(self.images[self._batch()])
        mu, sigma = self.ae.encode(x)
        eps = torch.randn(mu.shape, generator=self.gen_noise).to(self.device)
        recon = self.ae.decode(mu + eps * sigma)
        l1 = (recon - x).abs().mean()
        per_voxel = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-12) - 1)
        kl = per_voxel.sum(dim=tuple(range(1, mu.dim()))).mean()
        loss = l1 + self.arch.kl_weight * kl
        self.opt_ae.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_ae.step()
        return {"loss_ae_l1": float(l1.item()), "loss_ae_kl": float(kl.item())}

    def _diffusion_step(self) -> dict[str, float]:
        import torch

        from synthvu_core.models.diffusion import TRAIN_TIMESTEPS

        x0 = self.latents()
        idx = self._batch()
        x0, y = x0[idx], self.labels[idx].clone()
        g = self.gen_noise
        noise = torch.randn(x0.shape, generator=g).to(self.device)
        t = (torch.sigmoid(torch.randn(len(x0), generator=g)) * TRAIN_TIMESTEPS).to(self.device)
        drop = (torch.rand(len(x0), generator=g) < self.arch.cond_drop).to(self.device)
        y[drop] = self.arch.n_classes
        frac = (t / TRAIN_TIMESTEPS).view(-1, *[1] * (x0.dim() - 1))
        xt = (1 - frac) * x0 + frac * noise  # RFlowScheduler.add_noise, with float times
        self.unet.train()
        v = self.unet(xt, t, class_labels=y)
        loss = torch.nn.functional.mse_loss(v, x0 - noise)
        self.opt_unet.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_unet.step()
        k = self.step_count - self.ae_steps + 1
        decay = min(self.arch.ema, (1 + k) / (10 + k))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.unet_ema.parameters()), list(self.unet.parameters()), 1.0 - decay)
        return {"loss_flow": float(loss.item())}

    # ---- the generator ------------------------------------------------------------------------
    def generator(self) -> DiffusionGenerator:
        """The released generator (decoder + moving-average UNet) at the current state."""
        from synthvu_core.models.diffusion import DiffusionGenerator

        gen = DiffusionGenerator(self.arch, self.ae, self.unet_ema)
        gen.card = {"classes": self.classes}
        return gen.eval()

    # ---- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / TRAINING_DIR / CHECKPOINT_DIR

    def _identity(self) -> dict[str, Any]:
        arch = self.arch.to_dict()
        arch.pop("latent_scale")
        return {
            "dataset": self.dataset.fingerprint,
            "arch": arch,
            "scheme": self.config.scheme,
            "classes": self.classes,
            "batch_size": self.batch_size,
            "seed": self.config.seed,
            "autoencoder_steps": self.ae_steps,
        }

    def _checkpointed(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The modules (by prefix) and optimizers (by name) a checkpoint holds."""
        modules = {"ae.": self.ae, "unet.": self.unet, "unet_ema.": self.unet_ema}
        return modules, {"opt_ae": self.opt_ae, "opt_unet": self.opt_unet}

    def save_checkpoint(self) -> Path:
        from synthvu_core.models import checkpoint

        tensors = {"rng.data": self.gen_data.get_state(), "rng.noise": self.gen_noise.get_state(), "perm": self.perm}
        return checkpoint.save(self, tensors, cursor=self.cursor, latent_scale=self.arch.latent_scale)

    def load_checkpoint(self) -> bool:
        """Restore the last checkpoint; False where there is none."""
        import torch

        from synthvu_core.models import checkpoint

        found = checkpoint.restore(self)
        if found is None:
            return False
        meta, tensors = found
        self.gen_data.set_state(tensors["rng.data"])
        self.gen_noise.set_state(tensors["rng.noise"])
        self.perm = tensors["perm"].to(torch.int64)
        self.cursor = int(meta["cursor"])
        self.arch.latent_scale = float(meta["latent_scale"])
        self._latents = None
        return True

    # ---- montages and outputs -----------------------------------------------------------------
    def save_montage(self) -> Path | None:
        """PNG of generated VUs only, middle slice: one row per class (at most 12, labelled), 8 samples each;
        fixed noise.

        During the autoencoder phase nothing is generated yet, so no montage is written (None): a
        training montage is shown and shared as synthetic, and a reconstruction is a real VU's copy.
        """
        import torch

        from synthvu_core.models.sampling import montage_image

        if self.step_count <= self.ae_steps:
            return None
        g = torch.Generator().manual_seed(self.config.seed + 12345)
        rows = min(len(self.classes), 12)
        with torch.no_grad():
            z = torch.randn(rows * 8, self.arch.latent_dim, generator=g).to(self.device)
            imgs = self.generator()(z, torch.arange(rows).repeat_interleave(8).to(self.device)).cpu().numpy()
        mid = imgs[:, imgs.shape[1] // 2]
        path = self.out_dir / TRAINING_DIR / f"montage_step{self.step_count:07d}.png"
        with atomic_path(path) as tmp:
            montage_image(mid.reshape(rows, 8, *mid.shape[1:]), self.classes[:rows]).save(tmp, format="PNG")
        return path

    def card(self) -> dict[str, Any]:
        from synthvu_core.data.build import card_dataset

        c, ds = self.config, self.dataset
        dataset = card_dataset(ds, self.n_train)  # with the folder as given: `evaluate MODEL` finds it
        training = {
            "epochs": self.diffusion_steps / self.steps_per_epoch,
            "steps": self.step_count,
            "batch_size": self.batch_size,
            "lr": self.arch.lr,
            "seed": c.seed,
            "command": c.command or " ".join(shlex.quote(a) for a in sys.argv),
            "seconds": round(self.seconds, 2),
            "device": str(self.device),
            "weights_dtype": c.weights_dtype,
            "final_losses": {k: v for k, v in self.last.items() if k.startswith("loss")},
            "generator_weights": "moving average",
            "autoencoder_steps": self.ae_steps,
            "autoencoder_epochs": self.ae_steps / self.steps_per_epoch,
            "diffusion_steps": self.diffusion_steps,
            "sampler": self.arch.sampler,
            "sampling_steps": self.arch.sampling_steps,
            "guidance": self.arch.guidance,
        }
        return {
            "name": c.name or self.out_dir.name,
            "architecture": self.arch.to_dict(),
            "scheme": c.scheme,
            "classes": self.classes,
            "class_prior": self.class_prior,
            "shape": list(ds.shape),
            "latent_dim": self.arch.latent_dim,
            "dataset": dataset,
            "training": training,
            "dp": None,
            "discriminator": {"kept": False, "private": True},
            "code_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def finish(self) -> Path:
        import shutil

        from synthvu_core.models.diffusion import released_state
        from synthvu_core.models.registry import CARD_FILE, DISCRIMINATOR_FILE, GENERATOR_FILE, check_card, save_weights

        c = self.config
        save_weights(released_state(self.ae, self.unet_ema, self.arch), self.out_dir / GENERATOR_FILE, c.weights_dtype)
        (self.out_dir / DISCRIMINATOR_FILE).unlink(missing_ok=True)
        card = self.card()
        from synthvu_core.models.training import record_run

        card["privacy_ledger"] = record_run(self.dataset, card)
        check_card(card)
        write_json(self.out_dir / CARD_FILE, card)
        if not c.keep_checkpoint:
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        return self.out_dir


def three_d_defaults(arch: str) -> dict[str, Any]:
    """Architecture defaults of ``--arch diffusion3d`` (none for ``diffusion``): a 3-D autoencoder with two
    down-samplings (channels 8/16/32, a latent of 4 channels at a quarter of each side) and a UNet of 32/64
    channels, sized to train on a CPU at 16 x 64 x 64; ``--width`` widens the UNet."""
    from synthvu_core.models.diffusion import ARCH_NAME_3D

    if arch != ARCH_NAME_3D:
        return {}
    return {"spatial_dims": 3, "ae_channels": (8, 16, 32), "latent_channels": 4, "unet_channels": (32, 64),
            "unet_norm_groups": 16}


def train_diffusion(
    dataset: VUDataset, out_dir: str | Path, config: DiffusionTrainConfig | None = None, progress: bool = True
) -> Path:
    """Train the latent diffusion generator on ``dataset``'s train split; write the generator folder ``out_dir``.

    Ctrl-C saves a checkpoint and re-raises ``KeyboardInterrupt``; ``config.resume`` continues from it.
    """
    from synthvu_core.models import ledger
    from synthvu_core.models.loop import run_steps
    from synthvu_core.models.registry import CARD_FILE

    config = config or DiffusionTrainConfig()
    ledger.check_readable(dataset)  # before any work: the run is recorded there at its end
    trainer = DiffusionTrainer(dataset, out_dir, config)
    if not (config.resume and trainer.load_checkpoint()):
        (Path(out_dir) / CARD_FILE).unlink(missing_ok=True)  # a folder being trained afresh is not a generator yet
    every = config.checkpoint_every
    montage_every = every if config.montage_every is None else config.montage_every
    return run_steps(trainer, progress=progress, checkpoint_every=every, montage_every=montage_every,
                     checkpoint_also=lambda s: s == trainer.ae_steps)


def config_from_options(options: Mapping[str, Any], command: str | None = None) -> DiffusionTrainConfig:
    """The :class:`DiffusionTrainConfig` of ``train`` options (argument names; built through
    :func:`synthvu_core.models.architectures.build_config`, which refuses the AC-GAN's options)."""
    o = dict(options)
    return DiffusionTrainConfig(
        scheme=o.get("scheme", "region"),
        arch=o.get("arch") or "diffusion",
        epochs=o.get("epochs"),
        steps=o.get("steps"),
        autoencoder_epochs=o.get("autoencoder_epochs"),
        autoencoder_steps=o.get("autoencoder_steps"),
        batch_size=o.get("batch_size", 32),
        lr=o.get("lr"),
        width=o.get("width"),
        sampling_steps=o.get("sampling_steps"),
        guidance=o.get("guidance"),
        seed=o.get("seed", 0),
        device=o.get("device", "auto"),
        checkpoint_every=o.get("checkpoint_every", 500),
        resume=bool(o.get("resume")),
        keep_checkpoint=not o.get("drop_checkpoint"),
        weights_dtype="float32" if o.get("fp32") else "float16",
        name=o.get("name"),
        # a resumed run reproduces the uninterrupted one exactly, so the card gives the command without --resume
        command=None if command is None else " ".join(shlex.quote(p) for p in shlex.split(command) if p != "--resume"),
    )
