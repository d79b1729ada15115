"""Shared fixtures. Real-data tests read ../shared/data/spine-mri in place and skip where absent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPINE_DATA = Path(os.environ.get("SYNTHVU_SPINE_DATA", ROOT.parent / "shared" / "data" / "spine-mri"))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default, pyproject.toml): one worker a CPU this process may run on, at most 4 (each holds
    torch, about 1.5 GB); most test modules run torch on one thread, so a second CPU nearly halves the suite."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cpus or 1))


@pytest.fixture(scope="session")
def spine_data() -> Path:
    """Folder of the real lumbar MRI (myosegmentum/, chu2015/); skips the test where absent."""
    if not (SPINE_DATA / "myosegmentum").is_dir():
        pytest.skip(f"real spine MRI not present at {SPINE_DATA.name}/ beside the project")
    return SPINE_DATA


def _own_user_ledger(factory: pytest.TempPathFactory) -> Iterator[None]:
    """A fresh user-level privacy ledger while the fixture lasts: runs elsewhere in the suite on the same phantom
    patients never compose with these, and none lands in the ledger of the user running the tests."""
    from synthvu_core.models.ledger import USER_LEDGER_ENV

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(USER_LEDGER_ENV, str(factory.mktemp("user-ledger") / "privacy_ledger.json"))
        yield


@pytest.fixture(scope="session", autouse=True)
def _session_user_ledger(tmp_path_factory):
    """The user-level ledger of session-scoped fixtures."""
    yield from _own_user_ledger(tmp_path_factory)


@pytest.fixture(scope="module", autouse=True)
def _module_user_ledger(tmp_path_factory):
    """The user-level ledger of a test module's module-scoped fixtures."""
    yield from _own_user_ledger(tmp_path_factory)


@pytest.fixture(autouse=True)
def _test_user_ledger(tmp_path_factory):
    """Each test's own user-level ledger."""
    yield from _own_user_ledger(tmp_path_factory)


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
