"""The shared training loop with a stand-in trainer: checkpoint and montage cadence, the extra checkpoint, Ctrl-C
saves a checkpoint and stops with KeyboardInterrupt."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from synthvu_core.models.loop import run_steps


class Fake:
    def __init__(self, total: int, interrupt_at: int | None = None) -> None:
        self.total_steps, self.step_count, self.seconds = total, 0, 0.0
        self.interrupt_at, self.events, self.checkpoint_dir = interrupt_at, [], Path("ckpt")

    def step(self) -> dict[str, float]:
        self.step_count += 1
        if self.step_count == self.interrupt_at:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C during a step
        return {"loss": 1.0 / self.step_count}

    def save_checkpoint(self) -> None:
        self.events.append(("checkpoint", self.step_count))

    def save_montage(self) -> None:
        self.events.append(("montage", self.step_count))

    def finish(self) -> Path:
        self.events.append(("finish", self.step_count))
        return Path("out")


def test_cadence_and_the_extra_checkpoint():
    t = Fake(7)
    seen = []
    assert run_steps(t, progress=False, checkpoint_every=3, montage_every=2, checkpoint_also=lambda s: s == 5,
                     on_step=lambda dt, losses: seen.append(dt >= 0) or {}) == Path("out")
    assert t.events == [("montage", 2), ("checkpoint", 3), ("montage", 4), ("checkpoint", 5), ("montage", 6),
                        ("checkpoint", 6), ("checkpoint", 7), ("montage", 7), ("finish", 7)]
    assert len(seen) == 7 and all(seen) and t.seconds > 0


def test_ctrl_c_saves_a_checkpoint_and_stops(capsys):
    t = Fake(10, interrupt_at=4)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        run_steps(t, progress=False, checkpoint_every=0, montage_every=0)
    assert t.events == [("checkpoint", 4)] and t.step_count == 4
    assert "stopped at step 4" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back
