"""A damaged report archive in the dashboard: every page says which file and why, none crashes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from fixtures.dashboard_models import fabricate, point_dashboard_at, start_app  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    world = fabricate(tmp_path_factory.mktemp("damaged-world"))
    cut = Path(shutil.copytree(world["models"] / "fab-region", world["models"] / "fab-cut"))
    card = json.loads((cut / "card.json").read_text())
    (cut / "card.json").write_text(json.dumps(dict(card, name="fab-cut")))
    arrays = cut / "report" / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[: arrays.stat().st_size // 2])
    return world


@pytest.mark.parametrize("page", ["overview", "utility", "privacy"])
def test_a_cut_short_report_archive_is_named_on_every_page(world, monkeypatch, page):
    point_dashboard_at(world, monkeypatch)
    at = start_app("fab-cut")
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    said = " ".join(e.value for e in [*at.error, *at.warning, *at.info])
    assert "arrays.npz" in said and "cut short or damaged" in said
