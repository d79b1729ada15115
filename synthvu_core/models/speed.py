"""Opt-in speed settings of the AC-GAN trainer (``train --speed bf16,channels-last,fused-adam,compile``).

None is on by default: without them a step runs exactly as it always has (the same weights, bit for bit).

* ``bf16``: G's and D's forward passes under ``torch.autocast(..., dtype=torch.bfloat16)``; their outputs are cast
  back to float32 before any loss, so losses, gradients of the float32 weights and the optimizer stay float32.
  Under DP the autocast sits inside the per-VU functional call (the clipping and the noise stay float32).
* ``channels-last``: G's and D's weights and D's input batches in ``torch.channels_last`` memory format (faster
  convolutions on GPUs with tensor cores); the arithmetic is the same, only the kernels may round differently.
* ``fused-adam``: ``torch.optim.Adam(..., fused=True)`` (one kernel for all parameters) where the device has it.
* ``compile``: ``torch.compile`` of G and D in place (``Module.compile``: the same weight names). Not under DP
  (the per-VU gradients are a ``torch.func`` transform of D; a compiled D is not checked there). Where the
  compiler cannot run on this machine (no C++ compiler or Triton) it is skipped with a message.

What was asked and what ran are recorded in the card's ``training.speed`` (a skipped setting with its reason).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from synthvu_core.errors import SelectionError

if TYPE_CHECKING:
    import torch

#: The speed settings, in the order they are applied and recorded.
SPEED_NAMES: tuple[str, ...] = ("bf16", "channels-last", "fused-adam", "compile")
#: Those that a DP run refuses, with why.
NOT_UNDER_DP: dict[str, str] = {
    "compile": "the per-patient gradients are a torch.func transform of D, and a compiled D is not checked there",
}


def parse_speed(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"bf16,channels-last"`` (or a sequence of names) as a tuple in :data:`SPEED_NAMES` order; () for none.

    Raises :class:`SelectionError` naming an unknown setting and the known ones.
    """
    if value is None:
        return ()
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else [str(n).strip() for n in value]
    names = [n for n in names if n and n != "none"]
    unknown = [n for n in names if n not in SPEED_NAMES]
    if unknown:
        raise SelectionError(f"--speed {unknown[0]!r} is not a speed setting (choose from {', '.join(SPEED_NAMES)})")
    return tuple(n for n in SPEED_NAMES if n in names)


def check_speed(speed: Iterable[str], private: bool) -> None:
    """Refuse, in one line, a speed setting that a DP run cannot use."""
    if not private:
        return
    for name in speed:
        if name in NOT_UNDER_DP:
            raise SelectionError(f"--speed {name} is not available under DP: {NOT_UNDER_DP[name]}")


@dataclass
class Speed:
    """The speed settings a trainer applies on ``device``; ``skipped`` maps a setting to why it did not run."""

    asked: tuple[str, ...]
    device_type: str
    skipped: dict[str, str] = field(default_factory=dict)

    def on(self, name: str) -> bool:
        return name in self.asked and name not in self.skipped

    @property
    def used(self) -> list[str]:
        return [n for n in self.asked if n not in self.skipped]

    def card(self) -> dict[str, Any]:
        """The card's ``training.speed`` block."""
        return {"used": self.used, **({"skipped": dict(self.skipped)} if self.skipped else {})}

    def skip(self, name: str, why: str) -> None:
        self.skipped[name] = why
        print(f"--speed {name} skipped: {why}", file=sys.stderr)

    def autocast(self) -> Any:
        """The forward passes' context: bf16 autocast, or nothing."""
        import torch

        if not self.on("bf16"):
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16)

    def outputs(self, out: Any) -> Any:
        """A forward's output(s) back in float32 under bf16 (unchanged otherwise)."""
        if not self.on("bf16"):
            return out
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """A 4-D batch in channels-last format (unchanged without it)."""
        import torch

        return x.contiguous(memory_format=torch.channels_last) if self.on("channels-last") and x.dim() == 4 else x

    def prepare(self, *modules: Any) -> None:
        """Put ``modules`` (None entries skipped) in channels-last format where asked."""
        import torch

        if self.on("channels-last"):
            for m in modules:
                if m is not None:
                    m.to(memory_format=torch.channels_last)

    def match_layout(self, *optimizers: torch.optim.Optimizer) -> None:
        """Give each optimizer state tensor its parameter's memory layout (a checkpoint stores them contiguous; a
        fused Adam reads state and parameter storage alike). Only with channels-last; values unchanged."""
        import torch

        if not self.on("channels-last"):
            return
        for opt in optimizers:
            for p, state in opt.state.items():
                for k, v in state.items():
                    if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                        state[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)

    def adam(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        """Adam over ``params``: fused where asked (and the device has it), else exactly the default Adam."""
        import torch

        if self.on("fused-adam"):
            return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
        return torch.optim.Adam(params, lr=lr, betas=betas)

    def check_fused(self) -> None:
        """Skip ``fused-adam`` where this torch has no fused Adam for the device."""
        import torch

        if not self.on("fused-adam"):
            return
        try:
            p = torch.zeros(1, device=self.device_type, requires_grad=True)
            p.grad = torch.zeros_like(p)
            torch.optim.Adam([p], fused=True).step()
        except (RuntimeError, ValueError) as err:
            self.skip("fused-adam", f"no fused Adam on {self.device_type} in torch {torch.__version__} ({err})")

    def compile(self, *modules: torch.nn.Module) -> None:
        """``Module.compile()`` each of ``modules`` in place where asked and the compiler runs here."""
        if not self.on("compile"):
            return
        why = compiler_problem(self.device_type)
        if why:
            self.skip("compile", why)
            return
        for m in modules:
            m.compile()


def compiler_problem(device_type: str) -> str:
    """Why ``torch.compile`` cannot run on ``device_type`` here ("" where a tiny function compiles and runs)."""
    import torch

    try:
        fn = torch.compile(lambda x: torch.tanh(x) * 2 + 1)
        fn(torch.ones(4, device=device_type))
    except Exception as err:  # noqa: BLE001 - any compiler failure means: run without it
        return f"torch.compile does not run on {device_type} here ({type(err).__name__}: {str(err)[:200]})"
    return ""
