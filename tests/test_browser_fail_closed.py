"""Real-browser tests of failing closed (issue 15): ``streamlit run app.py`` in a subprocess, driven by
Playwright and Debian's Chromium.

* a malformed ``secrets.toml`` (one bad line) closes the app: the visitor sees one message and no page,
  no generator picker and no password field, on the home page and on a deep link;
* public mode shows no "Add a generator folder" input, and no server path.

Skips where /usr/bin/chromium or Playwright is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import BROWSER_MARKS, DONE, finished, launch, serve
from fixtures.dashboard_models import fabricate

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fabricate(tmp_path_factory.mktemp("browser-fail-closed"))


def _open(pw, url: str):
    browser = launch(pw)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="synthvu").first.wait_for(timeout=120_000)
    finished(page)
    return browser, page


def test_malformed_secrets_close_the_app_in_a_real_browser(world: dict[str, Path], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('password = "s3cret\npublic = true\n')  # one bad line turns both off in Streamlit
    with serve(world["models"], tmp_path / "closed.log", secrets=secrets) as url, sync_api.sync_playwright() as pw:
        for link in ("/", "/privacy?model=fab-region"):
            browser, page = _open(pw, url + link)
            try:
                alert = page.locator('[data-testid="stAlertContentError"]').first
                alert.wait_for(timeout=60_000)
                assert "dashboard is closed" in alert.inner_text() and "cannot be parsed" in alert.inner_text()
                assert page.locator('[data-testid="stException"]').count() == 0
                picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]')
                assert picker.count() == 0, "no generator picker"
                assert page.locator('input[type="password"]').count() == 0, "not even a password field"
                assert page.locator('[data-testid="stImage"]').count() == 0
                assert page.locator(".js-plotly-plot").count() == 0
                body = page.locator("body").inner_text()
                assert str(tmp_path) not in body and "REAL patient" not in body
            finally:
                browser.close()


def test_public_mode_has_no_folder_input_in_a_real_browser(world: dict[str, Path], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("public = true\n")
    server = serve(world["models"], tmp_path / "public.log", secrets=secrets)  # public = true in the secrets
    with server as url, sync_api.sync_playwright() as pw:
        browser, page = _open(pw, url + "/?model=fab-region")
        try:
            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.locator('[data-testid="stSelectbox"]').first.wait_for(timeout=60_000)
            assert "Public mode" in sidebar.inner_text()
            assert "Add a generator folder" not in sidebar.inner_text()
            assert page.get_by_placeholder("path/to/model or a folder of models").count() == 0
            page.locator('[data-testid="stSidebarNav"] a', has_text="Models & data").first.click()
            page.get_by_role("heading", name="Models & data").first.wait_for(timeout=60_000)
            page.wait_for_selector(DONE, timeout=120_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert str(world["models"]) not in page.locator("body").inner_text(), "no server path"
        finally:
            browser.close()
