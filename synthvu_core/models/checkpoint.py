"""Training checkpoints, shared by the AC-GAN and the diffusion trainers.

A checkpoint is one folder: ``state.safetensors`` (module weights as ``<prefix>.<name>``, optimizer states as
``<optimizer>.<param id>.<key>``, and whatever tensors the trainer adds, e.g. random generator states) and
``state.json`` (the run's identity, its counters and the optimizers' parameter groups). It is written
atomically and read without unpickling anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from synthvu_core.errors import CheckpointError

if TYPE_CHECKING:
    import torch

STATE_FILE = "state.safetensors"
META_FILE = "state.json"


class Checkpointed(Protocol):
    """What :func:`save` and :func:`restore` need of a trainer: where its checkpoint lives, the identity a resume
    must match, its modules and optimizers, and the counters every trainer keeps."""

    step_count: int
    seconds: float
    last: dict[str, Any]

    @property
    def checkpoint_dir(self) -> Path: ...

    def _identity(self) -> dict[str, Any]: ...

    def _checkpointed(self) -> tuple[dict[str, Any], dict[str, Any]]: ...


def save(trainer: Checkpointed, tensors: dict[str, torch.Tensor], **meta: Any) -> Path:
    """Write ``trainer``'s checkpoint: its modules and optimizers, the trainer's own ``tensors`` (random states,
    counters as tensors) and ``meta`` (its own counters) besides the identity, step, seconds and last losses."""
    packed, groups = pack(*trainer._checkpointed())
    packed.update(tensors)
    head = {"identity": trainer._identity(), "step": trainer.step_count}
    tail = {"seconds": trainer.seconds, "param_groups": groups, "last": trainer.last}
    return write(trainer.checkpoint_dir, packed, {**head, **meta, **tail})


def restore(trainer: Checkpointed) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """Load ``trainer``'s last checkpoint into its modules, optimizers and shared counters; returns ``(meta,
    tensors)`` for the trainer's own part, or None where there is no checkpoint."""
    found = read(trainer.checkpoint_dir, trainer._identity())
    if found is None:
        return None
    meta, tensors = found
    try:
        unpack(tensors, meta["param_groups"], *trainer._checkpointed())
        trainer.step_count, trainer.seconds = int(meta["step"]), float(meta["seconds"])
        trainer.last = dict(meta.get("last") or {})
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        if "out of memory" in str(e).lower():
            raise  # the device, not the checkpoint: keep the advice off a good checkpoint
        why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{trainer.checkpoint_dir}: the training checkpoint does not fit this run "
                              f"({type(e).__name__}: {why}); it was left as it is: train afresh without --resume"
                              ) from None
    return meta, tensors


def pack(
    modules: dict[str, torch.nn.Module | None], optimizers: dict[str, torch.optim.Optimizer]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, param_groups)`` of the modules (keyed by prefix, e.g. ``"G."``) and the optimizers (by name).

    Args:
        modules: prefix -> module; None entries (a module this run does not have) are skipped.
        optimizers: name -> optimizer.
    """
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        if module is not None:
            tensors.update({prefix + k: v for k, v in module.state_dict().items()})
    groups = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        for pid, st in sd["state"].items():
            tensors.update({f"{name}.{pid}.{k}": v for k, v in st.items()})
        groups[name] = sd["param_groups"]
    return tensors, groups


def write(folder: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write the checkpoint folder atomically (a reader sees the old one or the new one, never half)."""
    from safetensors.torch import save_file

    from synthvu_core.storage import atomic_path

    with atomic_path(folder) as tmp:
        tmp.mkdir()
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / STATE_FILE))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    return folder


def read(folder: Path, identity: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """``(meta, tensors)`` of the checkpoint in ``folder``; None where there is none.

    Raises :class:`CheckpointError` naming the folder when it cannot be read or was written by a run with
    another ``identity`` (the settings that must match for a resume to continue the same run).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not (folder / META_FILE).is_file():
        return None
    try:
        meta = json.loads((folder / META_FILE).read_text())
        tensors = load_file(str(folder / STATE_FILE))
    except (OSError, ValueError, SafetensorError) as e:
        raise CheckpointError(f"{folder}: cannot read the training checkpoint: {e}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{folder / META_FILE}: not a checkpoint record (a JSON object); train afresh without "
                              "--resume")
    mine = json.loads(json.dumps(identity))
    if meta.get("identity") != mine:
        theirs = meta.get("identity") or {}
        diff = [k for k in {**theirs, **mine} if theirs.get(k) != mine.get(k)]  # a setting either run left out too
        raise CheckpointError(
            f"{folder}: checkpoint was written with other settings ({', '.join(diff)}); train afresh without "
            "--resume"
        )
    return meta, tensors


def unpack(
    tensors: dict[str, torch.Tensor],
    groups: dict[str, Any],
    modules: dict[str, torch.nn.Module | None],
    optimizers: dict[str, torch.optim.Optimizer],
) -> None:
    """Load what :func:`pack` stored back into the modules and optimizers (the inverse of :func:`pack`)."""
    for prefix, module in modules.items():
        if module is not None:
            module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, opt in optimizers.items():
        state: dict[int, dict[str, Any]] = {}
        for k, v in tensors.items():
            if k.startswith(name + "."):
                _, pid, key = k.split(".", 2)
                state.setdefault(int(pid), {})[key] = v
        param_groups = groups[name]
        for g in param_groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        opt.load_state_dict({"state": state, "param_groups": param_groups})
