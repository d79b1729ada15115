"""In a real browser (Debian's chromium): a ``?model=`` link holding Markdown is shown as text, loads nothing and
links nowhere; the error page names no server path."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from browser_support import BROWSER_MARKS, DONE, chromium, serve
from fixtures.dashboard_models import fabricate

pytestmark = BROWSER_MARKS
EVIL_HOST = "127.0.0.1:9"  # nothing listens there: any request to it is the app rendering the link


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fabricate(tmp_path_factory.mktemp("browser-robustness"))


def test_markdown_in_the_model_link_is_plain_text_in_a_real_browser(world: dict[str, Path], tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("")
    evil = f"![x](http://{EVIL_HOST}/pixel.png) [click here](http://{EVIL_HOST}/) **bold**"
    with chromium() as browser, serve(world["models"], tmp_path / "link.log", secrets=secrets) as url:
        requested: list[str] = []
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{url}/?model={urllib.parse.quote(evil)}", wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="stSidebar"] [data-testid="stAlert"]', timeout=120_000)
        page.wait_for_selector(DONE, timeout=120_000)
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        shown = " ".join(sidebar.replace("\u2060", "").split())  # an invisible word joiner keeps addresses unlinked
        assert evil in shown, sidebar  # every character shown, literally
        assert page.locator(f'img[src*="{EVIL_HOST}"]').count() == 0
        links = page.locator(f'a[href*="{EVIL_HOST}"]')
        shown_links = [links.nth(i).evaluate("e => e.parentElement.outerHTML") for i in range(links.count())]
        assert not shown_links, shown_links
        assert page.locator("strong", has_text="bold").count() == 0
        assert not [r for r in requested if EVIL_HOST in r], requested
        assert str(tmp_path) not in page.content() and "Traceback" not in page.content()
