"""Real-browser test of links that keep their view: the generator and each page's choices live in the
URL (``dashboard/frame.py: url_state, url_rows``). A choice made in the page is written back to the
address bar; that address opened in a fresh browser context shows the same generator and choices.

Also keeps screenshots of the Trade-offs and Embeddings figures (``$SYNTHVU_SCREENSHOTS`` to keep them).
Skips where /usr/bin/chromium or Playwright is absent.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest
from browser_support import BROWSER_MARKS, chromium, finished, no_exception, serve
from fixtures.dashboard_models import fabricate

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    world = fabricate(tmp_path_factory.mktemp("links-world"))
    with serve(world["models"], tmp_path_factory.mktemp("links-log") / "streamlit.log") as url:
        yield {"url": url, "world": world}


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _finished(page) -> None:
    """``finished`` with 400 ms between its two checks."""
    finished(page, pause_ms=400)


def _open(browser, url: str):
    page = browser.new_context(viewport={"width": 1500, "height": 1800}).new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.wait_for(timeout=120_000)
    _finished(page)
    no_exception(page, url)
    return page


def _query(page) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))


def _generator(page) -> str:
    return (
        page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]')
        .first.get_by_role("combobox")
        .input_value()
    )


def _radio(page, label: str) -> str:
    group = page.locator('[data-testid="stRadio"]', has_text=label).first
    return group.locator("label:has(input:checked)").inner_text().strip()


def _selectbox(page, label: str) -> str:
    return page.locator('[data-testid="stSelectbox"]', has_text=label).last.get_by_role("combobox").input_value()


def _open_list(page, combobox) -> None:
    """Open a selectbox's list (a click can land during a rerun; the arrow key then opens it)."""
    combobox.click()
    if page.get_by_role("option").count() == 0:
        page.keyboard.press("ArrowDown")


def _choose(page, box_label: str, option: str) -> None:
    _open_list(page, page.locator('[data-testid="stSelectbox"]', has_text=box_label).last.get_by_role("combobox"))
    page.get_by_role("option", name=option).first.click()
    _finished(page)


def test_privacy_link_reproduces_generator_space_attack_and_toggle(server: dict, browser) -> None:
    page = _open(browser, f"{server['url']}/privacy?model=fab-noreport")
    assert "fab-noreport" in _generator(page) and _query(page)["model"] == "fab-noreport"
    _open_list(
        page, page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.get_by_role("combobox")
    )
    page.get_by_role("option", name="fab-region").first.click()  # pick another generator
    _finished(page)
    assert _query(page)["model"] == "fab-region", "the generator is written back"
    page.locator('[data-testid="stRadio"]', has_text="Space").first.get_by_text(
        "embedding (encoder fitted on reference patients)"
    ).click()
    _finished(page)
    _choose(page, "Attack", "DOMIAS (density ratio)")
    page.get_by_text("Log-scale ROC").click()
    _finished(page)
    q = _query(page)
    assert (q.get("space"), q.get("attack"), q.get("log")) == ("embedding", "domias", "1"), q
    copied = page.url
    page.context.close()

    again = _open(browser, copied)  # a fresh browser context: a new session from the link alone
    assert "/privacy" in again.url and "fab-region" in _generator(again)
    assert _radio(again, "Space") == "embedding (encoder fitted on reference patients)"
    assert "DOMIAS (density ratio)" in _selectbox(again, "Attack")
    assert (
        again.get_by_role("switch", name="Log-scale ROC")
        .or_(again.get_by_role("checkbox", name="Log-scale ROC"))
        .first.is_checked()
    )
    again.context.close()


def test_generate_link_reproduces_position_count_and_seed(server: dict, browser) -> None:
    page = _open(browser, f"{server['url']}/generate?model=fab-region&position=L&n=5&seed=7")
    assert "fab-region" in _generator(page)
    assert "L (lumbar)" in _selectbox(page, "Position")
    caption = page.get_by_text("5 VUs at L (lumbar), seed 7").first
    caption.wait_for(timeout=30_000)
    page.context.close()


def test_embeddings_link_keeps_colouring_and_selection_and_screenshots(server: dict, browser, tmp_path: Path) -> None:
    shots = Path(os.environ.get("SYNTHVU_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = _open(browser, f"{server['url']}/embeddings?model=fab-region&colour=source&picked=s:1,2,3")
    assert _radio(page, "Colour by") == "real vs synthetic"
    page.get_by_text("Selected synthetic VUs (3)").first.wait_for(timeout=30_000)
    page.screenshot(path=str(shots / "embeddings-link.png"), full_page=True)
    page.context.close()
    page = _open(browser, f"{server['url']}/tradeoffs?model=fab-region&risk=worst_tpr1&controls=1")
    assert _radio(page, "Privacy risk") == "worst TPR at 1% FPR"
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "tradeoffs-link.png"), full_page=True)
    page.context.close()
