"""Meeting-ready at 1280×720 in a real browser: every page of a DP, a non-DP and the real-MRI generator
draws with no exception and no clipped table cell or metric, Compare of a DP and a non-DP generator, and
the slide deck (no network request; three slides screenshotted). Screenshots go where
``$SYNTHVU_SCREENSHOTS`` says (else a temporary folder): look at them."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import BROWSER_MARKS, ROOT, chromium, finished, no_exception
from test_browser import server, shots  # noqa: F401 - fixtures

DP, NON_DP, REAL = "acgan-dp-e10", "acgan-phantom", "acgan-spine-mri"
PAGES = ["", "generate", "embeddings", "utility", "privacy", "tradeoffs", "models_data"]
VIEWPORT = {"width": 1280, "height": 720}

pytestmark = BROWSER_MARKS

#: Text a reader cannot see whole: table cells and metrics whose content is wider than their box.
CLIPPED = """() => [...document.querySelectorAll(
    '[data-testid="stTable"] td, [data-testid="stTable"] th, [data-testid="stMetricLabel"] p, '
    + '[data-testid="stMetricValue"] div')]
  .filter(c => c.offsetParent !== null && c.scrollWidth > c.clientWidth + 1).map(c => c.innerText)"""
#: Figure text (titles, axis titles, legend entries, annotations) that runs outside its figure.
FIGURE_CLIPPED = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.offsetParent !== null)
  .flatMap(p => {
    const box = p.querySelector('.main-svg').getBoundingClientRect();
    return [...p.querySelectorAll('.gtitle, .xtitle, .ytitle, .legendtext, .annotation-text')].filter(t => {
      const r = t.getBoundingClientRect();
      return r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1
                             || r.bottom > box.bottom + 1);
    }).map(t => t.textContent);
  })"""
#: Tables wider than the main column (a table that scrolls sideways hides its last columns).
OVERFLOWING = """() => [...document.querySelectorAll('[data-testid="stTable"]')]
  .filter(t => t.offsetParent !== null && t.scrollWidth > t.clientWidth + 1).map(t => t.innerText.slice(0, 80))"""


def _shipped(*names: str) -> None:
    missing = [n for n in names if not (ROOT / "models" / n / "report" / "report.json").exists()]
    if missing:
        pytest.skip(f"shipped reports absent: {missing}")


#: The run is over and drawn: no placeholder left, more than a title on the page.
SETTLED = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app && app.dataset.testScriptState === 'notRunning' && !document.querySelector('[data-testid="stSkeleton"]')
    && document.querySelectorAll('[data-testid="stMain"] [data-testid="stElementContainer"]').length > 3;
}"""


def _visit(page, url: str, where: str) -> None:
    page.goto(url, timeout=120_000)
    for _ in range(2):  # settled twice, a moment apart: a run that follows the first (URL state) is waited for too
        page.wait_for_function(SETTLED, timeout=180_000)
        finished(page)
    no_exception(page, where)


def _full_shot(page, path: Path) -> None:
    """The whole page at 1280 px wide: Streamlit scrolls inside its main block, so the window is made as tall
    as that block for the picture (widths, hence the layout, stay those of 1280×720)."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height), 12_000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.mark.parametrize("model", [DP, NON_DP, REAL])
def test_every_page_is_readable_at_1280x720(server: dict, shots: Path, browser, model: str) -> None:  # noqa: F811
    _shipped(model)
    page = browser.new_page(viewport=VIEWPORT)
    problems = []
    try:
        for name in PAGES:
            where = f"{model}/{name or 'overview'}"
            _visit(page, f"{server['url']}/{name}?model={model}", where)
            page.screenshot(path=str(shots / f"{where.replace('/', '-')}-1280x720.png"))
            _full_shot(page, shots / f"{where.replace('/', '-')}-full.png")
            problems += [f"{where}: clipped {t!r}" for t in page.evaluate(CLIPPED)]
            problems += [f"{where}: table wider than the page {t!r}" for t in page.evaluate(OVERFLOWING)]
            problems += [f"{where}: figure text cut {t!r}" for t in page.evaluate(FIGURE_CLIPPED)]
            if name == "privacy":
                assert page.locator('[data-testid="stTable"]').count() >= 2, "attack results and checks"
                assert page.locator('[data-testid="stDataFrame"]').count() == 0
    finally:
        page.close()
    assert problems == []


def test_compare_a_dp_and_a_non_dp_generator(server: dict, shots: Path, browser) -> None:  # noqa: F811
    _shipped(DP, NON_DP)
    page = browser.new_page(viewport=VIEWPORT)
    try:
        _visit(page, f"{server['url']}/compare?compare={DP}&compare={NON_DP}", "compare")
        assert page.evaluate(CLIPPED) == [] and page.evaluate(OVERFLOWING) == []
        assert page.evaluate(FIGURE_CLIPPED) == []
        assert page.get_by_text(f"{DP}: synthetic VUs per position").count() == 1
        page.screenshot(path=str(shots / "compare-dp-nodp-1280x720.png"))
        _full_shot(page, shots / "compare-dp-nodp-full.png")
    finally:
        page.close()


def test_slides_open_offline_and_fit_1280x720(shots: Path, browser, tmp_path: Path) -> None:  # noqa: F811
    from synthvu_core.cli import main

    _shipped(DP, NON_DP)
    deck = tmp_path / "deck.html"
    assert main(["report", "slides", *(str(ROOT / "models" / m) for m in (DP, NON_DP)), "--out", str(deck)]) == 0
    outside: list[str] = []

    def route(r) -> None:  # noqa: ANN001 - playwright Route
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.route("**/*", route)
        page.goto(deck.as_uri())
        page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=30_000)
        for i, name in ((2, "useful"), (3, "leaks"), (4, "tradeoff")):
            page.evaluate(f"Reveal.slide({i})")
            page.wait_for_timeout(300)
            section = ".slides section.present"
            w, h = page.evaluate(f"[document.querySelector('{section}').scrollWidth, "
                                 f"document.querySelector('{section}').scrollHeight]")
            assert w <= 1280 and h <= 720, f"slide {i} is {w}×{h} px"
            page.screenshot(path=str(shots / f"slide{i}-{name}-1280x720.png"))
    finally:
        page.close()
    assert outside == [], f"the deck asked the network for {outside}"
