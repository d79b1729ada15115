"""Few-step students of a latent diffusion generator: distillation from the teacher's own samples.

A shipped diffusion generator samples with 8 guided Euler steps of its rectified flow, i.e. 16 UNet evaluations
per VU (the conditional and the null class at each step). A *student* is the same network trained to reach, in
``K`` unguided steps (K UNet evaluations), the latent the teacher reaches from the same starting noise and class:

1. ``pairs`` noises ``z`` and classes ``y`` (drawn from the teacher's class prior) are run through the teacher
   at its card's steps and guidance, giving target latents ``x(z, y)``; these pairs are the whole training set;
2. the student starts as a copy of the teacher's UNet (decoder frozen and shared), and its K-step Euler flow
   ``S_K(z, y)`` is trained end to end (back-propagation through the K steps) on ``|S_K(z, y) - x(z, y)|^2``
   with Adam; a moving average of its weights is what is released.

Guidance is folded into the student (its targets are guided latents), so it samples at guidance 1 (the
conditional model alone). The flow is deterministic, so a student and its teacher map the same ``z`` and class
to nearly the same VU; :func:`held_out_error` measures how nearly on noises the student never saw, against the
teacher itself run with K steps.

Privacy: the student never reads the dataset, only the teacher's outputs, so it is a post-processing of the
released teacher: it inherits the teacher's privacy guarantee (and its ledger) and adds no run on the data.
"""

from __future__ import annotations

import copy
import shlex
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthvu_core import __version__
from synthvu_core.errors import SelectionError

if TYPE_CHECKING:
    import torch

    from synthvu_core.models.diffusion import DiffusionGenerator

TRAINING_DIR = "training"
CHECKPOINT_DIR = "checkpoint"
METHOD = "K-step distillation of the guided teacher flow (end-to-end latent MSE on teacher samples)"


@dataclass
class DistillConfig:
    """Distillation settings (recorded in the student's card under ``training``)."""

    student_steps: int = 2
    pairs: int = 8192  # teacher samples the student learns from
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-4
    ema: float = 0.998
    seed: int = 0
    held_out: int = 1024  # fresh noises for the held-out error
    checkpoint_every: int = 250
    resume: bool = False
    weights_dtype: str = "float16"
    name: str | None = None
    command: str | None = None

    def check(self) -> None:
        if not 1 <= int(self.student_steps) <= 16:
            raise SelectionError(f"student steps must be 1..16, got {self.student_steps}")
        for what in ("pairs", "steps", "batch_size", "held_out"):
            if int(getattr(self, what)) < 1:
                raise SelectionError(f"distillation {what.replace('_', ' ')} must be at least 1")
        if not 0.0 < float(self.lr) < 1.0 or not 0.0 <= float(self.ema) < 1.0:
            raise SelectionError("distillation lr must be in (0, 1) and ema in [0, 1)")


def load_teacher(folder: str | Path) -> DiffusionGenerator:
    """The teacher: a 2-D latent diffusion generator (SelectionError naming the folder for anything else)."""
    from synthvu_core.models.diffusion import DiffusionGenerator
    from synthvu_core.models.registry import load_generator

    teacher = load_generator(folder)
    if not isinstance(teacher, DiffusionGenerator) or teacher.config.spatial_dims != 2:
        raise SelectionError(f"{folder}: only a 2-D diffusion generator (architecture 'diffusion') can be distilled")
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def teacher_pairs(
    teacher: DiffusionGenerator, n: int, seed: int, batch: int = 512
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(z [n, latent_dim], y [n], latents [n, *latent_shape])``: seeded noises and classes (drawn from the
    teacher's class prior) and the latents the teacher's own sampler reaches from them."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, teacher.config.latent_dim, generator=g)
    prior = torch.tensor(teacher.card["class_prior"], dtype=torch.float64)
    y = torch.multinomial(prior, n, replacement=True, generator=g)
    with torch.no_grad():
        x = torch.cat([teacher.latents(z[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)])
    return z, y, x


def pairs_key(teacher_folder: Path, teacher: DiffusionGenerator, n: int, seed: int) -> str:
    """What the pairs depend on: the teacher's weights and sampling, ``n``, ``seed``, the flow's code and torch."""
    import hashlib

    import torch

    from synthvu_core.models import diffusion
    from synthvu_core.models.registry import GENERATOR_FILE

    h = hashlib.sha256((teacher_folder / GENERATOR_FILE).read_bytes())
    h.update(Path(diffusion.__file__).read_bytes())
    h.update(f"{teacher.sampling_steps};{teacher.guidance};{n};{seed};{torch.__version__}".encode())
    return h.hexdigest()[:24]


def cached_pairs(
    teacher_folder: Path, teacher: DiffusionGenerator, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`teacher_pairs`, kept in the cache (``<cache>/distill/``; synthetic, so nothing private is stored)
    so that students of several step counts pay for the teacher's samples once."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    from synthvu_core.data.build import cache_root
    from synthvu_core.storage import atomic_path

    path = cache_root() / "distill" / f"{pairs_key(teacher_folder, teacher, n, seed)}.safetensors"
    if path.is_file():
        try:
            t = load_file(str(path))
            return t["z"], t["y"], t["x"]
        except (OSError, KeyError, SafetensorError):
            pass  # an unreadable entry is recomputed and replaced
    z, y, x = teacher_pairs(teacher, n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"z": z.contiguous(), "y": y.contiguous(), "x": x.contiguous()}, str(tmp))
    return z, y, x


def held_out_error(
    student: DiffusionGenerator, teacher: DiffusionGenerator, n: int, seed: int
) -> dict[str, float]:
    """Mean squared latent error against the teacher's own sampler, on ``n`` noises the student never saw:
    the student's (``student``) and the teacher's when it is simply run with the student's step count
    (``teacher_at_k_steps``, the baseline a student must beat), and the targets' variance (``target_var``)."""
    import torch

    z, y, target = teacher_pairs(teacher, n, seed + 7919)
    short = copy.deepcopy(teacher)
    short.set_sampling(steps=student.sampling_steps)
    with torch.no_grad():
        mine, naive = student.latents(z, y), short.latents(z, y)
    return {
        "student": float(((mine - target) ** 2).mean()),
        "teacher_at_k_steps": float(((naive - target) ** 2).mean()),
        "target_var": float(target.var()),
    }


class DistillTrainer:
    """The distillation state and one :meth:`step` (the interface of :func:`synthvu_core.models.loop.run_steps`)."""

    def __init__(self, teacher_folder: str | Path, out_dir: str | Path, config: DistillConfig):
        import torch

        config.check()
        self.config, self.out_dir, self.teacher_folder = config, Path(out_dir), Path(teacher_folder)
        self.teacher = load_teacher(teacher_folder)
        self.student = copy.deepcopy(self.teacher)
        self.student.set_sampling(steps=int(config.student_steps), guidance=1.0)
        self.student.unet.requires_grad_(True)
        self.ema = copy.deepcopy(self.student.unet).eval()
        self.ema.requires_grad_(False)
        self.opt = torch.optim.Adam(self.student.unet.parameters(), lr=float(config.lr))
        self.gen = torch.Generator().manual_seed(int(config.seed) * 1000 + 3)
        self.total_steps, self.step_count, self.seconds = int(config.steps), 0, 0.0
        self.last: dict[str, float] = {}
        self.pairs: tuple[Any, Any, Any] | None = None

    def _pairs(self) -> tuple[Any, Any, Any]:
        if self.pairs is None:
            self.pairs = cached_pairs(self.teacher_folder, self.teacher, int(self.config.pairs), int(self.config.seed))
        return self.pairs

    def step(self) -> dict[str, float]:
        import torch

        z, y, x = self._pairs()
        idx = torch.randint(0, len(z), (int(self.config.batch_size),), generator=self.gen)
        loss = torch.nn.functional.mse_loss(self.student.latents(z[idx], y[idx]), x[idx])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step_count += 1
        # a short warm-up of the average, then the configured decay
        decay = min(float(self.config.ema), (1 + self.step_count) / (10 + self.step_count))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.student.unet.parameters()), 1.0 - decay)
        self.last = {"loss_distill": float(loss.item())}
        return self.last

    # ---- checkpoints (a resumed run continues the same one) ---------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / TRAINING_DIR / CHECKPOINT_DIR

    def _identity(self) -> dict[str, Any]:
        c = self.config
        return {"teacher": self.teacher.card["name"], "teacher_created": self.teacher.card.get("created"),
                "student_steps": c.student_steps, "pairs": c.pairs, "batch_size": c.batch_size, "seed": c.seed}

    def _checkpointed(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The modules (by prefix) and optimizers (by name) a checkpoint holds."""
        return {"unet.": self.student.unet, "ema.": self.ema}, {"opt": self.opt}

    def save_checkpoint(self) -> Path:
        from synthvu_core.models import checkpoint

        return checkpoint.save(self, {"rng": self.gen.get_state()})

    def load_checkpoint(self) -> bool:
        from synthvu_core.models import checkpoint

        found = checkpoint.restore(self)
        if found is None:
            return False
        self.gen.set_state(found[1]["rng"])
        return True

    def save_montage(self) -> None:  # the student's samples are judged by the evaluation, not a montage
        return None

    # ---- the released student ----------------------------------------------------------------
    def released(self) -> DiffusionGenerator:
        student = copy.deepcopy(self.student)
        student.unet = copy.deepcopy(self.ema)
        return student.eval()

    def card(self, error: dict[str, float]) -> dict[str, Any]:
        c, t = self.config, self.teacher.card
        card = copy.deepcopy(t)
        card["architecture"].update(sampling_steps=int(c.student_steps), guidance=1.0)
        card["name"] = c.name or self.out_dir.name
        card["training"] = {
            "method": METHOD,
            "distilled_from": {"name": t["name"], "created": t.get("created"),
                               "sampling_steps": int(t["architecture"]["sampling_steps"]),
                               "guidance": float(t["architecture"]["guidance"])},
            "steps": self.step_count, "batch_size": int(c.batch_size), "lr": float(c.lr), "seed": int(c.seed),
            "pairs": int(c.pairs), "ema": float(c.ema),
            "command": c.command or " ".join(shlex.quote(a) for a in sys.argv),
            "seconds": round(self.seconds, 2), "device": "cpu", "weights_dtype": c.weights_dtype,
            "final_losses": dict(self.last), "generator_weights": "moving average",
            "held_out_latent_mse": error, "sampler": card["architecture"]["sampler"],
            "sampling_steps": int(c.student_steps), "guidance": 1.0, "teacher_training": t.get("training"),
        }
        card["code_version"] = __version__
        card["created"] = datetime.now(UTC).isoformat(timespec="seconds")
        return card  # dp and privacy_ledger stay the teacher's: the student never read the data

    def finish(self) -> Path:
        from synthvu_core.models.registry import CARD_FILE, GENERATOR_FILE, check_card, save_weights
        from synthvu_core.storage import write_json

        student = self.released()
        error = held_out_error(student, self.teacher, int(self.config.held_out), int(self.config.seed))
        state = student.state_dict()  # the decoder (the teacher's, unchanged) and the student's averaged UNet
        card = self.card(error)
        check_card(card)
        save_weights(state, self.out_dir / GENERATOR_FILE, self.config.weights_dtype)
        write_json(self.out_dir / CARD_FILE, card)
        return self.out_dir


def distill(teacher: str | Path, out_dir: str | Path, config: DistillConfig | None = None,
            progress: bool = True) -> Path:
    """Distil the diffusion generator in folder ``teacher`` into a ``config.student_steps``-step student written
    to ``out_dir`` (weights and card; the card last, so a stopped run leaves no generator folder)."""
    from synthvu_core.models.loop import run_steps
    from synthvu_core.models.registry import CARD_FILE

    config = config or DistillConfig()
    out = Path(out_dir)
    if out.resolve() == Path(teacher).resolve():
        raise SelectionError(f"{out}: the student needs a folder of its own, not the teacher's")
    trainer = DistillTrainer(teacher, out, config)
    if not (config.resume and trainer.load_checkpoint()):
        (out / CARD_FILE).unlink(missing_ok=True)
    return run_steps(trainer, progress=progress, checkpoint_every=int(config.checkpoint_every), montage_every=None)
