"""Data-parallel training under ``torchrun`` (PyTorch DistributedDataParallel).

``torchrun --nproc_per_node N -m synthvu_core train ...`` starts N copies of the ordinary ``train``
command; :func:`setup` sees torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), joins the process group (NCCL on GPUs, gloo on CPU) and pins each
process to its GPU; :func:`attach` then makes the trainer data-parallel:

* every process draws the same *global* batch (same seeds) and keeps its share (rows ``rank::N``), so
  N processes see exactly the VUs, noise and labels one process with the same global batch sees;
* G and D are wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which averages the
  gradients: the mean of the N per-process means over equal shares is the global-batch mean;
* only rank 0 writes checkpoints, montages, weights and the card (the same card as a one-process run);
  the others wait for it at the end.

Without torchrun's environment (or with ``WORLD_SIZE=1``) nothing changes. Differential privacy is
refused with more than one process: the accountant here counts one process's Poisson-sampled batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synthvu_core.errors import SelectionError

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistContext:
    """This process's place in the group."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, *tensors: torch.Tensor, group: int = 1) -> tuple[torch.Tensor, ...]:
        """This process's rows of each global-batch tensor: ``rank::world_size``, or with ``group`` > 1 whole
        groups of consecutive rows (``--mode-seeking`` pairs) taken the same way."""
        if group == 1:
            return tuple(t[self.rank :: self.world_size] for t in tensors)
        import torch

        rows = torch.arange(len(tensors[0])).view(-1, group)[self.rank :: self.world_size].flatten()
        return tuple(t[rows.to(t.device)] for t in tensors)

    def all_mean(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` averaged over the processes (in place; every process then holds the same values)."""
        import torch.distributed as dist

        dist.all_reduce(x)
        return x.div_(self.world_size)


def setup(device: str = "auto") -> DistContext | None:
    """Join torchrun's process group when its environment says there are several processes; else None.

    Args:
        device: the training device setting (``auto``, ``cpu``, ``cuda``...); GPUs use NCCL, CPU gloo.
    """
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    gpu = device != "cpu" and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(local)  # "cuda" in this process now means its own GPU
    backend = "nccl" if gpu else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank, world, local, backend)


def _ddp_class() -> type[DistributedDataParallel]:
    """The wrapper class, built on first use so that importing this module needs no torch."""
    from torch.nn.parallel import DistributedDataParallel

    class DDP(DistributedDataParallel):
        """DDP that saves and loads like the module it wraps (no ``module.`` prefix in checkpoints), and
        runs the bare module when no parameter needs a gradient (the discriminator in the generator's
        step), so that no gradient reduction waits for a backward that never comes."""

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            if not any(p.requires_grad for p in self.module.parameters()):
                return self.module(*args, **kwargs)
            return super().forward(*args, **kwargs)

        def state_dict(self, *args: Any, **kwargs: Any) -> Any:
            return self.module.state_dict(*args, **kwargs)

        def load_state_dict(self, state: Any, strict: bool = True, assign: bool = False) -> Any:
            return self.module.load_state_dict(state, strict=strict, assign=assign)

    return DDP


def attach(trainer: Any, ctx: DistContext | None) -> None:
    """Make ``trainer`` (a :class:`~synthvu_core.models.training.Trainer`) data-parallel over ``ctx``'s group.

    Raises :class:`SelectionError` (before any step) for differential privacy with several processes or a
    global batch that does not split evenly.
    """
    if ctx is None:
        return
    import torch.distributed as dist

    if trainer.config.private:
        raise SelectionError(f"differential privacy with {ctx.world_size} processes is not supported: the privacy "
                             "accountant counts one process's batch; train a private generator without torchrun")
    if trainer.config.ada_target:
        raise SelectionError(f"--ada-target with {ctx.world_size} processes is not supported: each process would move "
                             "its augmentation probability on its own share of the real VUs; train without torchrun")
    if trainer.batch_size % ctx.world_size:
        raise SelectionError(f"batch size {trainer.batch_size} does not split evenly over {ctx.world_size} processes")
    if trainer.config.mode_seeking and (trainer.batch_size // 2) % ctx.world_size:
        raise SelectionError(f"--mode-seeking pairs the generated VUs: the {trainer.batch_size // 2} pairs of a batch "
                             f"do not split evenly over {ctx.world_size} processes")
    if min(trainer.batch_size, trainer.n_train) % ctx.world_size:
        raise SelectionError(f"the train split ({trainer.n_train} VUs) is smaller than the batch and does not split "
                             f"evenly over {ctx.world_size} processes")
    ddp = _ddp_class()
    ids = [trainer.device.index or 0] if trainer.device.type == "cuda" else None
    trainer.G = ddp(trainer.G, device_ids=ids)
    trainer.D = ddp(trainer.D, device_ids=ids)
    trainer.dist = ctx
    finish = trainer.finish
    if ctx.is_main:
        def finish_then_release() -> Path:
            out = finish()
            dist.barrier()
            return out

        trainer.finish = finish_then_release
    else:  # only rank 0 writes; the others wait for its card
        trainer.save_checkpoint = lambda: trainer.checkpoint_dir
        trainer.save_montage = lambda: trainer.out_dir
        trainer.finish = lambda: (dist.barrier(), trainer.out_dir)[1]
