"""AC-GAN training: seeded, resumable, optionally differentially private (DP-SGD on D).

One step = one discriminator update on a real batch and a fake batch, then one generator update on the
same fake batch. Losses (non-saturating AC-GAN, as the study)::

    L_D = sum_i [BCE(D(x_i), 1) + a CE(c(x_i), y_i)] / B + sum_j [BCE(D(G(z_j)), 0) + f a CE(c(G(z_j)), y_j)] / B
    L_G = mean_j [BCE(D(G(z_j)), 1) + a CE(c(G(z_j)), y_j)]

with ``f = 1`` in the study (``pgan``) and ``f = 0`` in ``default`` (``aux_fake``: D's class head learns
real VUs only; see :func:`discriminator_loss`).

Randomness comes from three generators seeded from ``config.seed`` (data order / Poisson sampling,
generator noise and labels, DP noise). Their states, the data permutation and cursor, the step,
both modules, the generator's moving average, both optimizers and the DP accountant are checkpointed
(safetensors + JSON, atomically), so a resumed run reproduces an uninterrupted one exactly on CPU.

Differential privacy (Opacus): the discriminator is wrapped in a ``GradSampleModule``; each sample's
gradient (real or fake) is clipped to ``max_grad_norm``, Gaussian noise ``noise_multiplier x
max_grad_norm`` is added to the sum, and the sum is divided by the expected batch size. Real batches
are Poisson-sampled with rate ``B / N_train``; the fake batch has the fixed size ``B``, so one training
VU changes the clipped sum by at most ``max_grad_norm``. The generator step runs through D with the
per-sample hooks disabled and D's parameters frozen, so it neither reaches D's optimizer nor the
accountant; G only ever sees D's privatised weights, so G is private by post-processing (as long
as D itself is not released).
"""

from __future__ import annotations

import copy
import json
import math
import shlex
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from synthvu_core import __version__, levels
from synthvu_core.errors import CheckpointError, SelectionError
from synthvu_core.storage import atomic_path, write_json

TRAINING_DIR = "training"
CHECKPOINT_DIR = "checkpoint"
DEFAULT_EPOCHS = 25.0


@dataclass
class TrainConfig:
    """Training settings. ``steps`` wins over ``epochs``; neither given = 25 epochs (the study).

    DP is on when ``target_epsilon`` or ``noise_multiplier`` is set (``delta`` defaults to 1/N_train).
    """

    arch: str = "default"
    scheme: str = "region"
    epochs: float | None = None
    steps: int | None = None
    batch_size: int = 32
    lr: float | None = None  # None = the architecture's
    width: int | None = None  # None = the architecture's
    d_width: int | None = None
    g_cond: str | None = None  # None = the architecture's ("input" | "modulate")
    aux_fake: bool | None = None  # None = the architecture's
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    montage_every: int | None = None  # None = checkpoint_every; 0 = never
    resume: bool = False
    target_epsilon: float | None = None
    delta: float | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "rdp"  # rdp | prv
    keep_discriminator: bool = True
    keep_checkpoint: bool = True
    weights_dtype: str = "float16"
    name: str | None = None
    command: str | None = None

    @property
    def private(self) -> bool:
        return self.target_epsilon is not None or self.noise_multiplier is not None


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SelectionError(f"device {device!r} requested but no CUDA device is available")
    return device


def discriminator_loss(adv: Any, cls: Any, target: Any, labels: Any, aux_weight: float, aux_fake: bool) -> Any:
    """Per-sample AC-GAN discriminator loss ``[N]``: BCE on the real/fake logit plus ``aux_weight`` x CE.

    ``target`` is 1 for real and 0 for generated VUs. With ``aux_fake`` False the class term counts for
    real VUs only, so D's class head is a classifier of real VUs and G is rewarded only for VUs that
    such a classifier recognises; with it True (the study) D also learns the classes G was asked for,
    which lets D and G agree on cues real VUs do not have.
    """
    import torch.nn.functional as F

    aux = F.cross_entropy(cls, labels, reduction="none")
    if not aux_fake:
        aux = aux * target
    return F.binary_cross_entropy_with_logits(adv, target, reduction="none") + aux_weight * aux


class Trainer:
    """The training state and one :meth:`step`. Use :func:`train` for the whole run."""

    def __init__(self, dataset: Any, out_dir: str | Path, config: TrainConfig):
        import torch

        from synthvu_core.models import acgan

        self.dataset, self.config = dataset, config
        self.out_dir = Path(out_dir)
        self.device = torch.device(resolve_device(config.device))
        if config.scheme not in levels.SCHEMES:
            raise SelectionError(f"unknown conditioning scheme {config.scheme!r}; choose one of {', '.join(levels.SCHEMES)}")
        train_idx = dataset.indices("train")
        if len(train_idx) == 0:
            raise SelectionError("the dataset's train split is empty: nothing to train on")
        self.classes = levels.classes(config.scheme, dataset.units["level"].iloc[train_idx].astype(str).unique())
        labels = dataset.labels(config.scheme, self.classes)[train_idx]
        counts = np.bincount(labels, minlength=len(self.classes)).astype(np.float64)
        self.class_prior = (counts / counts.sum()).tolist()
        self.n_train = len(train_idx)
        self.images = torch.from_numpy(np.ascontiguousarray(dataset.images[train_idx])).to(self.device)  # uint8
        self.labels = torch.from_numpy(labels).to(self.device)
        self.arch = acgan.architecture(
            config.arch, dataset.shape, len(self.classes), lr=config.lr, width=config.width, d_width=config.d_width,
            g_cond=config.g_cond, aux_fake=config.aux_fake,
        )
        self.batch_size = int(config.batch_size)
        if self.batch_size < 1:
            raise SelectionError("batch size must be at least 1")

        self.G, D = acgan.build(self.arch, seed=config.seed)
        self.G_ema = copy.deepcopy(self.G).eval() if self.arch.ema > 0 else None
        self.D_module = D
        self.G.to(self.device)
        if self.G_ema is not None:
            self.G_ema.to(self.device)
        D.to(self.device)
        self.prior = torch.tensor(self.class_prior, dtype=torch.float64)

        self.gen_data = torch.Generator().manual_seed(config.seed * 1000 + 1)
        self.gen_noise = torch.Generator().manual_seed(config.seed * 1000 + 2)
        self.gen_dp = torch.Generator(device=self.device).manual_seed(config.seed * 1000 + 3)
        self.perm = torch.randperm(self.n_train, generator=self.gen_data)
        self.cursor = 0
        self.step_count = 0
        self.seconds = 0.0
        self.last: dict[str, float] = {}
        self.dist: Any = None  # torchrun: set by models/distributed.py attach()

        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=self.arch.lr, betas=self.arch.betas)
        adam_D = torch.optim.Adam(D.parameters(), lr=self.arch.lr, betas=self.arch.betas)
        self.sample_rate = min(1.0, self.batch_size / self.n_train)
        self.steps_per_epoch = max(1, self.n_train // self.batch_size) if not config.private else max(1, round(1 / self.sample_rate))
        self.total_steps = int(config.steps) if config.steps is not None else int(math.ceil((config.epochs or DEFAULT_EPOCHS) * self.steps_per_epoch))
        if self.total_steps < 1:
            raise SelectionError("training needs at least one step")

        self.accountant = None
        self.noise_multiplier = None
        self.delta = None
        if config.private:
            self._make_private(adam_D)
        else:
            self.D = D
            self.opt_D = adam_D

    # ---- differential privacy ----------------------------------------------------------
    def _make_private(self, adam_D: Any) -> None:
        from opacus import GradSampleModule
        from opacus.accountants import PRVAccountant, RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.optimizers import DPOptimizer
        from opacus.validators import ModuleValidator

        cfg = self.config
        errors = ModuleValidator.validate(self.D_module, strict=False)
        if errors:
            raise SelectionError(f"the {self.arch.name} discriminator cannot be trained with DP-SGD: {errors[0]}")
        if cfg.accountant not in ("rdp", "prv"):
            raise SelectionError(f"unknown privacy accountant {cfg.accountant!r}; choose rdp or prv")
        self.delta = float(cfg.delta) if cfg.delta is not None else 1.0 / self.n_train
        if cfg.noise_multiplier is not None:
            self.noise_multiplier = float(cfg.noise_multiplier)
        else:
            self.noise_multiplier = float(
                get_noise_multiplier(
                    target_epsilon=float(cfg.target_epsilon),
                    target_delta=self.delta,
                    sample_rate=self.sample_rate,
                    steps=self.total_steps,
                    accountant=cfg.accountant,
                )
            )
        self.accountant = RDPAccountant() if cfg.accountant == "rdp" else PRVAccountant()
        # per-sample gradients of the summed loss; the optimizer divides by the expected batch size
        self.D = GradSampleModule(self.D_module, loss_reduction="sum")
        self.opt_D = DPOptimizer(
            adam_D,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=float(cfg.max_grad_norm),
            expected_batch_size=self.batch_size,
            loss_reduction="mean",
            generator=self.gen_dp,
        )

    def epsilon(self) -> float | None:
        if self.accountant is None:
            return None
        if not self.accountant.history:
            return 0.0
        return float(self.accountant.get_epsilon(delta=self.delta))

    # ---- one step --------------------------------------------------------------------------
    def _real_batch(self) -> Any:
        import torch

        if self.config.private:  # Poisson sampling: each training VU enters with probability B / N
            mask = torch.rand(self.n_train, generator=self.gen_data) < self.sample_rate
            return torch.nonzero(mask).flatten()
        b = min(self.batch_size, self.n_train)
        if self.cursor + b > self.n_train:
            self.perm = torch.randperm(self.n_train, generator=self.gen_data)
            self.cursor = 0
        idx = self.perm[self.cursor : self.cursor + b]
        self.cursor += b
        return idx

    def step(self) -> dict[str, float]:
        """One D update and one G update; returns the losses."""
        import torch
        import torch.nn.functional as F

        dev = self.device
        idx = self._real_batch().to(dev)
        real = self.images[idx].float() / 127.5 - 1.0
        y_real = self.labels[idx]
        z = torch.randn(self.batch_size, self.arch.latent_dim, generator=self.gen_noise).to(dev)
        y_fake = torch.multinomial(self.prior, self.batch_size, replacement=True, generator=self.gen_noise).to(dev)
        if self.dist is not None:  # torchrun: this process's share of the global batch (models/distributed.py)
            idx, real, y_real, z, y_fake = self.dist.shard(idx, real, y_real, z, y_fake)
        a = self.arch.aux_weight
        fake = self.G(z, y_fake)

        # discriminator: per-sample losses, summed, divided by B (Opacus divides by B under DP)
        self.opt_D.zero_grad(set_to_none=True)
        x = torch.cat([real, fake.detach()])
        target = torch.cat([torch.ones(len(real), device=dev), torch.zeros(len(fake), device=dev)])
        y = torch.cat([y_real, y_fake])
        adv, cls = self.D(x)
        per_sample = discriminator_loss(adv, cls, target, y, a, self.arch.aux_fake)
        loss_d = per_sample.sum() if self.config.private else per_sample.sum() / len(z)
        with warnings.catch_warnings():  # Opacus' hooks on the first layer: the input needs no gradient
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss_d.backward()
        self.opt_D.step()
        if self.accountant is not None:
            self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)

        # generator: through D's current (privatised) weights; no per-sample hooks, no D gradients
        for p in self.D.parameters():
            p.requires_grad_(False)
        if self.config.private:
            self.D.disable_hooks()
        try:
            self.opt_G.zero_grad(set_to_none=True)
            adv_f, cls_f = self.D(fake)
            loss_g = F.binary_cross_entropy_with_logits(adv_f, torch.ones_like(adv_f)) + a * F.cross_entropy(cls_f, y_fake)
            loss_g.backward()
            self.opt_G.step()
        finally:
            for p in self.D.parameters():
                p.requires_grad_(True)
            if self.config.private:
                self.D.enable_hooks()
        self.step_count += 1
        if self.G_ema is not None:
            decay = min(self.arch.ema, (1 + self.step_count) / (10 + self.step_count))
            with torch.no_grad():
                torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1.0 - decay)
                for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
                    be.copy_(b)
        self.last = {"loss_d": loss_d.item() / (self.batch_size if self.config.private else 1), "loss_g": loss_g.item(), "real": len(idx)}
        return self.last

    @property
    def sampler(self) -> Any:
        """The generator that is saved and sampled (the moving average where there is one)."""
        return self.G_ema if self.G_ema is not None else self.G

    # ---- checkpoints -----------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / TRAINING_DIR / CHECKPOINT_DIR

    def _identity(self) -> dict[str, Any]:
        c = self.config
        return {
            "dataset": self.dataset.fingerprint,
            "arch": self.arch.to_dict(),
            "scheme": c.scheme,
            "classes": self.classes,
            "batch_size": self.batch_size,
            "seed": c.seed,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": c.max_grad_norm if c.private else None,
            "delta": self.delta,
        }

    def save_checkpoint(self) -> Path:
        from safetensors.torch import save_file

        tensors: dict[str, Any] = {}
        for prefix, module in (("G.", self.G), ("D.", self.D_module), ("G_ema.", self.G_ema)):
            if module is not None:
                tensors.update({prefix + k: v for k, v in module.state_dict().items()})
        groups = {}
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            sd = getattr(opt, "original_optimizer", opt).state_dict()
            for pid, st in sd["state"].items():
                for k, v in st.items():
                    tensors[f"{name}.{pid}.{k}"] = v
            groups[name] = sd["param_groups"]
        tensors["rng.data"] = self.gen_data.get_state()
        tensors["rng.noise"] = self.gen_noise.get_state()
        tensors["rng.dp"] = self.gen_dp.get_state()
        tensors["perm"] = self.perm
        meta = {
            "identity": self._identity(),
            "step": self.step_count,
            "cursor": self.cursor,
            "seconds": self.seconds,
            "param_groups": groups,
            "accountant": [list(h) for h in self.accountant.history] if self.accountant is not None else None,
            "last": self.last,
        }
        with atomic_path(self.checkpoint_dir) as tmp:
            tmp.mkdir()
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "state.safetensors"))
            (tmp / "state.json").write_text(json.dumps(meta, indent=1) + "\n")
        return self.checkpoint_dir

    def load_checkpoint(self) -> bool:
        """Restore the last checkpoint; False where there is none."""
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = self.checkpoint_dir
        if not (folder / "state.json").is_file():
            return False
        try:
            meta = json.loads((folder / "state.json").read_text())
            tensors = load_file(str(folder / "state.safetensors"))
        except (OSError, ValueError, SafetensorError) as e:
            raise CheckpointError(f"{folder}: cannot read the training checkpoint: {e}") from None
        mine = json.loads(json.dumps(self._identity()))
        if meta.get("identity") != mine:
            diff = [k for k in mine if meta.get("identity", {}).get(k) != mine[k]]
            raise CheckpointError(f"{folder}: checkpoint was written with other settings ({', '.join(diff)}); train afresh without --resume")
        for prefix, module in (("G.", self.G), ("D.", self.D_module), ("G_ema.", self.G_ema)):
            if module is not None:
                module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            state: dict[int, dict[str, Any]] = {}
            for k, v in tensors.items():
                if k.startswith(name + "."):
                    _, pid, key = k.split(".", 2)
                    state.setdefault(int(pid), {})[key] = v
            groups = meta["param_groups"][name]
            for g in groups:
                if "betas" in g:
                    g["betas"] = tuple(g["betas"])
            getattr(opt, "original_optimizer", opt).load_state_dict({"state": state, "param_groups": groups})
        self.gen_data.set_state(tensors["rng.data"])
        self.gen_noise.set_state(tensors["rng.noise"])
        self.gen_dp.set_state(tensors["rng.dp"].to(self.gen_dp.get_state().device))
        self.perm = tensors["perm"].to(torch.int64)
        self.cursor = int(meta["cursor"])
        self.step_count = int(meta["step"])
        self.seconds = float(meta["seconds"])
        self.last = meta.get("last") or {}
        if self.accountant is not None:
            self.accountant.history = [tuple(h) for h in meta["accountant"] or []]
        return True

    # ---- montages ---------------------------------------------------------------------------
    def save_montage(self) -> Path:
        """PNG: one row per class (at most 12), 8 samples each, middle slice; fixed noise."""
        import torch

        from synthvu_core.models.sampling import montage_image

        k = min(len(self.classes), 12)
        g = torch.Generator().manual_seed(self.config.seed + 12345)
        z = torch.randn(k * 8, self.arch.latent_dim, generator=g).to(self.device)
        y = torch.arange(k).repeat_interleave(8).to(self.device)
        gen = self.sampler
        was_training = gen.training
        gen.eval()
        with torch.no_grad():
            imgs = gen(z, y).float().cpu().numpy()
        gen.train(was_training)
        c = imgs.shape[1]
        mid = imgs[:, c // 2]  # [k*8, H, W]
        grid = mid.reshape(k, 8, *mid.shape[1:])
        path = self.out_dir / TRAINING_DIR / f"montage_step{self.step_count:07d}.png"
        with atomic_path(path) as tmp:
            montage_image(grid).save(tmp, format="PNG")
        return path

    # ---- outputs -----------------------------------------------------------------------------
    def card(self) -> dict[str, Any]:
        c, ds = self.config, self.dataset
        units = ds.units
        split = {k: v for k, v in ds.card.get("split", {}).items() if k != "patients"}  # never list patients
        dataset = {
            "fingerprint": ds.fingerprint,
            "split": split,
            "part": "train",
            "n_train": self.n_train,
            "spacing": [float(units["slice_mm"].median()), float(units["spacing_mm"].median()), float(units["spacing_mm"].median())],
        }
        if ds.card.get("recipe") is not None:
            dataset["recipe"] = ds.card["recipe"]
        else:
            dataset["sources"] = ds.card.get("sources", [])
        dp = None
        if c.private:
            dp = {
                "epsilon": self.epsilon(),
                "delta": self.delta,
                "noise_multiplier": self.noise_multiplier,
                "max_grad_norm": float(c.max_grad_norm),
                "accountant": c.accountant,
                "sample_rate": self.sample_rate,
                "target_epsilon": c.target_epsilon,
                "sampling": "poisson",
                "private_module": "discriminator",
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
            "training": {
                "epochs": self.step_count / self.steps_per_epoch,
                "steps": self.step_count,
                "batch_size": self.batch_size,
                "lr": self.arch.lr,
                "seed": c.seed,
                "command": c.command or " ".join(shlex.quote(a) for a in sys.argv),
                "seconds": round(self.seconds, 2),
                "device": str(self.device),
                "weights_dtype": c.weights_dtype,
                "final_losses": {k: v for k, v in self.last.items() if k.startswith("loss")},
                "generator_weights": "moving average" if self.G_ema is not None else "last",
            },
            "dp": dp,
            "discriminator": {"kept": bool(c.keep_discriminator), "private": True},
            "code_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def finish(self) -> Path:
        import shutil

        from synthvu_core.models.registry import CARD_FILE, DISCRIMINATOR_FILE, GENERATOR_FILE, check_card, save_weights

        c = self.config
        save_weights(self.sampler.state_dict(), self.out_dir / GENERATOR_FILE, c.weights_dtype)
        if c.keep_discriminator:
            save_weights(self.D_module.state_dict(), self.out_dir / DISCRIMINATOR_FILE, c.weights_dtype)
        else:
            (self.out_dir / DISCRIMINATOR_FILE).unlink(missing_ok=True)
        card = self.card()
        check_card(card)
        write_json(self.out_dir / CARD_FILE, card)
        if not c.keep_checkpoint or not c.keep_discriminator:  # the checkpoint holds D and its optimizer
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        return self.out_dir


def train(dataset: Any, out_dir: str | Path, config: TrainConfig | None = None, progress: bool = True) -> Path:
    """Train a generator on ``dataset``'s train split; write the generator folder ``out_dir``.

    Ctrl-C saves a checkpoint and re-raises ``KeyboardInterrupt``; ``config.resume`` continues from it.
    """
    from tqdm.auto import tqdm

    from synthvu_core.models.registry import CARD_FILE

    config = config or TrainConfig()
    out_dir = Path(out_dir)
    from synthvu_core.models import distributed

    dist_ctx = distributed.setup(config.device)  # torchrun: join the group first (None for one process)
    trainer = Trainer(dataset, out_dir, config)
    distributed.attach(trainer, dist_ctx)
    progress = progress and (dist_ctx is None or dist_ctx.is_main)
    resumed = config.resume and trainer.load_checkpoint()
    if not resumed:
        (out_dir / CARD_FILE).unlink(missing_ok=True)  # a folder being trained afresh is not a generator yet
    montage_every = config.checkpoint_every if config.montage_every is None else config.montage_every
    stop = {"flag": False}
    previous = None
    if threading.current_thread() is threading.main_thread():

        def _on_sigint(signum: int, frame: Any) -> None:
            stop["flag"] = True

        previous = signal.signal(signal.SIGINT, _on_sigint)
    bar = tqdm(total=trainer.total_steps, initial=trainer.step_count, disable=not progress, unit="step", dynamic_ncols=True)
    try:
        while trainer.step_count < trainer.total_steps:
            t0 = time.perf_counter()
            losses = trainer.step()
            dt = time.perf_counter() - t0
            trainer.seconds += dt
            s = trainer.step_count
            post = {"VU/s": f"{(losses['real'] + trainer.batch_size) / dt:.0f}", "D": f"{losses['loss_d']:.3f}", "G": f"{losses['loss_g']:.3f}"}
            bar.set_postfix(post, refresh=False)
            bar.update(1)
            if montage_every and s % montage_every == 0:
                trainer.save_montage()
            if config.checkpoint_every and s % config.checkpoint_every == 0 and s < trainer.total_steps:
                trainer.save_checkpoint()
                if trainer.accountant is not None:
                    bar.set_postfix({**post, "eps": f"{trainer.epsilon():.2f}"}, refresh=False)
            if stop["flag"]:
                trainer.save_checkpoint()
                bar.close()
                print(f"synthvu: stopped at step {s}; checkpoint saved in {trainer.checkpoint_dir} (continue with --resume)", file=sys.stderr)
                raise KeyboardInterrupt
        bar.close()
        trainer.save_checkpoint()
        if montage_every:
            trainer.save_montage()
        return trainer.finish()
    finally:
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def config_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)
