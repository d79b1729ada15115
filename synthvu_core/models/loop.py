"""The training loop both generator families share: steps, the progress bar, montages, checkpoints and Ctrl-C.

A trainer is a :class:`SteppedTrainer`: ``step() -> losses``, ``step_count``, ``total_steps``, ``seconds``,
``checkpoint_dir``, ``save_checkpoint()``, ``save_montage()`` and ``finish() -> Path`` (the generator folder).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class SteppedTrainer(Protocol):
    """What :func:`run_steps` needs of a generator family's trainer (the GAN's and the diffusion model's)."""

    step_count: int
    seconds: float

    @property
    def total_steps(self) -> int: ...

    @property
    def checkpoint_dir(self) -> Path: ...

    def step(self) -> dict[str, float]: ...

    def save_checkpoint(self) -> Path: ...

    def save_montage(self) -> Path: ...

    def finish(self) -> Path: ...


#: What a family adds after each step: ``(seconds of the step, losses) -> progress-bar postfix``.
OnStep = Callable[[float, dict[str, float]], dict[str, str]]


def run_steps(
    trainer: SteppedTrainer,
    *,
    progress: bool,
    checkpoint_every: int,
    montage_every: int | None,
    on_step: OnStep | None = None,
    checkpoint_also: Callable[[int], bool] | None = None,
    after_checkpoint: Callable[[Any, dict[str, str]], None] | None = None,
) -> Path:
    """Run ``trainer`` to its last step and finish it; returns the generator folder.

    Args:
        trainer: the family's trainer (see the module docstring).
        progress: show a tqdm bar.
        checkpoint_every: steps between checkpoints (0: only at the end); ``montage_every`` likewise for montages.
        on_step: per-step bookkeeping returning the bar's postfix (default: the losses to four decimals).
        checkpoint_also: steps that checkpoint besides every ``checkpoint_every`` (the diffusion phase change).
        after_checkpoint: called with the bar and the postfix after each periodic checkpoint.

    Ctrl-C saves a checkpoint and re-raises ``KeyboardInterrupt`` (``--resume`` continues from it).
    """
    from tqdm.auto import tqdm

    stop = {"flag": False}
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.update(flag=True))
    bar = tqdm(
        total=trainer.total_steps, initial=trainer.step_count, disable=not progress, unit="step", dynamic_ncols=True
    )
    try:
        while trainer.step_count < trainer.total_steps:
            t0 = time.perf_counter()
            losses = trainer.step()
            dt = time.perf_counter() - t0
            trainer.seconds += dt
            s = trainer.step_count
            post = on_step(dt, losses) if on_step else {k: f"{v:.4f}" for k, v in losses.items()}
            bar.set_postfix(post, refresh=False)
            bar.update(1)
            if montage_every and s % montage_every == 0:
                trainer.save_montage()
            if (checkpoint_every and s % checkpoint_every == 0 and s < trainer.total_steps) or (
                checkpoint_also is not None and checkpoint_also(s)
            ):
                trainer.save_checkpoint()
                if after_checkpoint is not None:
                    after_checkpoint(bar, post)
            if stop["flag"]:
                trainer.save_checkpoint()
                bar.close()
                print(f"synthvu: stopped at step {s}; checkpoint saved in {trainer.checkpoint_dir} (continue with "
                      "--resume)", file=sys.stderr)
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
