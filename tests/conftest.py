"""Shared fixtures. Real-data tests read ../shared/data/spine-mri in place and skip where absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPINE_DATA = Path(os.environ.get("SYNTHVU_SPINE_DATA", ROOT.parent / "shared" / "data" / "spine-mri"))


@pytest.fixture(scope="session")
def spine_data() -> Path:
    """Folder of the real lumbar MRI (myosegmentum/, chu2015/); skips the test where absent."""
    if not (SPINE_DATA / "myosegmentum").is_dir():
        pytest.skip(f"real spine MRI not present at {SPINE_DATA.name}/ beside the project")
    return SPINE_DATA


@pytest.fixture(autouse=True)
def _fresh_password_delays():
    """Every Streamlit AppTest shares one session id: forget wrong passwords counted by earlier tests."""
    import sys

    frame = sys.modules.get("dashboard.frame")
    if frame is not None and hasattr(frame, "_WRONG"):
        frame._WRONG.clear()
    yield


class FakeClock:
    """Stands in for the ``time`` module of ``dashboard.frame``: ``sleep`` is recorded and moves ``monotonic`` on
    instead of waiting."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def fake_clock(monkeypatch) -> FakeClock:
    """The dashboard's password delays on a :class:`FakeClock`."""
    from dashboard import frame

    clock = FakeClock()
    monkeypatch.setattr(frame, "time", clock)
    return clock
