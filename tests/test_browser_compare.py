"""Compare in a real browser at 1280×720: a link naming two generators reopens that comparison, and no
table cell is clipped. Screenshots go where ``$SYNTHVU_SCREENSHOTS`` says (else a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import BROWSER_MARKS, ROOT, chromium, finished, no_exception
from test_browser import server, shots  # noqa: F401 - fixtures

PAIR = ("acgan-dp-e10", "acgan-phantom")

pytestmark = [
    *BROWSER_MARKS,
    pytest.mark.skipif(not all((ROOT / "models" / m / "report").is_dir() for m in PAIR), reason="shipped reports"),
]

CLIPPED = """() => [...document.querySelectorAll('[data-testid="stTable"] td, [data-testid="stTable"] th')]
  .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.innerText)"""


def _tstr_cell(name: str) -> str:
    """The TSTR cell the table shows for a shipped generator, read from its report (not a literal of one report)."""
    from synthvu_core.evaluation.report import load_report

    s = load_report(ROOT / "models" / name).scalars
    key = "utility.tstr.balanced_accuracy"
    return f"{s[key]:.3f} [{s[key + '_ci_low']:.3f}, {s[key + '_ci_high']:.3f}]"


def test_a_link_reopens_the_comparison_unclipped(server: dict, shots: Path) -> None:  # noqa: F811
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(f"{server['url']}/compare?compare={PAIR[0]}&compare={PAIR[1]}", timeout=60_000)
        finished(page)
        no_exception(page, "compare")
        tags = page.locator('[data-testid="stMultiSelect"] [data-tag]')
        chips = [tags.nth(i).get_attribute("aria-label") for i in range(tags.count())]
        assert chips == list(PAIR), chips
        assert page.locator('[data-testid="stTable"]').count() == 1
        assert page.evaluate(CLIPPED) == [], "clipped table cells"
        assert _tstr_cell(PAIR[0]) in page.locator('[data-testid="stTable"]').inner_text()  # DP generator's TSTR
        page.screenshot(path=str(shots / "compare-1280x720.png"))
