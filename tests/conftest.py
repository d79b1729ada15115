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
