"""Real-browser test: ``streamlit run app.py`` in a subprocess, driven by Playwright and Debian's Chromium.

Visits every page through the sidebar navigation (one browser session, so the generator choice must
survive), waits until Streamlit reports the script finished, asserts no exception element, drags a
box on the UMAP chart and expects the selected VUs' images. Screenshots and timings go to a temporary
folder (``$SYNTHVU_SCREENSHOTS`` to keep them elsewhere); the timings are printed (``pytest -s``).
Skips where /usr/bin/chromium or Playwright is absent.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from browser_support import BROWSER_MARKS, chromium, finished, no_exception, serve
from fixtures.dashboard_models import fabricate

PAGES = ["Overview", "Generate", "Embeddings", "Utility", "Privacy", "Trade-offs", "Models & data"]

pytestmark = BROWSER_MARKS


def _demo_generator(models: Path) -> str:
    """``$SYNTHVU_BROWSER_MODEL``, else a shipped generator with a report where one exists, else the fabricated one."""
    from synthvu_core.models.registry import list_generators

    if os.environ.get("SYNTHVU_BROWSER_MODEL"):
        return os.environ["SYNTHVU_BROWSER_MODEL"]
    shipped = [g for g in list_generators() if g.source == "shipped" and g.has_report]
    return shipped[0].name if shipped else "fab-region"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The dashboard on a fabricated world; ``started_s``: seconds until it answered its health check."""
    world = fabricate(tmp_path_factory.mktemp("browser-world"))
    log = tmp_path_factory.mktemp("browser-log") / "streamlit.log"
    t0 = time.perf_counter()
    with serve(world["models"], log) as url:
        yield {"url": url, "started_s": time.perf_counter() - t0, "world": world, "log": log}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keep = os.environ.get("SYNTHVU_SCREENSHOTS")
    folder = Path(keep) if keep else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_every_page_in_a_real_browser(server: dict, shots: Path) -> None:
    model = _demo_generator(server["world"]["models"])
    timings: dict[str, float] = {"server_start_s": round(server["started_s"], 2)}
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1600, "height": 2000})
        t0 = time.perf_counter()
        page.goto(f"{server['url']}/?model={model}", wait_until="domcontentloaded")
        page.get_by_role("heading", name="synthvu").first.wait_for(timeout=120_000)
        finished(page)
        timings["cold_first_page_s"] = round(time.perf_counter() - t0, 2)
        no_exception(page, "Overview")
        page.screenshot(path=str(shots / "0-overview.png"), full_page=True)

        for i, name in enumerate(PAGES[1:] + PAGES[:1], start=1):
            t0 = time.perf_counter()
            page.locator('[data-testid="stSidebarNav"] a', has_text=name).first.click()
            page.get_by_role("heading", name="synthvu" if name == "Overview" else name).first.wait_for(
                timeout=60_000
            )
            finished(page)
            if name in ("Utility", "Privacy", "Trade-offs", "Embeddings"):
                page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            timings[f"warm_{name}_s"] = round(time.perf_counter() - t0, 2)
            page.screenshot(
                path=str(shots / f"{i}-{name.lower().replace(' & ', '-').replace(' ', '-')}.png"), full_page=True
            )
            no_exception(page, name)
            picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
            shown = picker.inner_html()
            assert model in shown, f"{name}: generator choice lost ({shown!r})"

        # box-select on the UMAP chart: the selected synthetic VUs appear below it
        page.locator('[data-testid="stSidebarNav"] a', has_text="Embeddings").first.click()
        page.get_by_role("heading", name="Embeddings").first.wait_for()
        finished(page)
        drag = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first
        drag.wait_for(timeout=60_000)
        box = drag.bounding_box()
        assert box, "UMAP plot area not found"
        t0 = time.perf_counter()
        page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=10)
        page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.8, steps=10)
        page.mouse.up()
        page.get_by_text("selected synthetic VUs", exact=False).first.wait_for(timeout=120_000)
        finished(page)
        timings["box_select_to_images_s"] = round(time.perf_counter() - t0, 2)
        no_exception(page, "Embeddings selection")
        images = page.locator('[data-testid="stImage"] img')
        assert images.count() >= 1, "selected VUs are drawn"
        page.locator('[data-testid="stImage"]').first.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "8-embeddings-selection.png"), full_page=True)
    (shots / "timings.json").write_text(json.dumps(timings, indent=2))
    print(f"\nscreenshots: {shots}")
    for k, v in timings.items():
        print(f"  {k:28s} {v:6.2f}")
