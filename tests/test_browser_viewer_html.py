"""The browser-side plane viewer (``dashboard.volumes.viewer_html``) shows the same planes as ``volumes.plane``.

Opens the viewer of a known asymmetric unit as a file in Debian's Chromium and compares each plane's voxels, as
the page draws them, with the numpy planes (native resolution), at several slices; then moves a slider and checks
that its plane and caption follow. Skips where /usr/bin/chromium or Playwright is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from browser_support import BROWSER_MARKS, chromium

from dashboard import volumes

pytestmark = BROWSER_MARKS


def test_the_browser_viewer_draws_the_planes_of_volumes_plane(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    unit = rng.integers(0, 256, size=(5, 7, 6), dtype=np.uint8)  # D, H, W all different: a swap cannot hide
    page_file = tmp_path / "viewer.html"
    page_file.write_text(volumes.viewer_html(unit, (2.0, 1.0, 1.5), px_per_mm=2.0))
    with chromium() as browser:
        page = browser.new_page()
        page.goto(page_file.as_uri())
        for name in volumes.PLANES:
            n = unit.shape[volumes.PLANE_AXIS[name]]
            for i in (0, n // 2, n - 1):
                want = volumes.plane(unit, name, i, (1.0, 1.0, 1.0), px_per_mm=1.0)
                got = np.array(page.evaluate("([n, i]) => window.planeValues(n, i)", [name, i]), np.uint8)
                assert np.array_equal(got.reshape(want.shape), want), (name, i)
        slider = page.locator("#s-axial")
        assert page.locator("#c-axial").get_attribute("data-slice") == "4"  # the middle of 7 rows
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.getElementById('c-axial').dataset.slice === '5'", timeout=10_000)
        assert page.locator("#l-axial").inner_text() == "axial 5 of 7"
        # square mm: the axial plane is W x D voxels of 1.5 x 2 mm, drawn at 2 px per mm
        assert page.evaluate("() => [document.getElementById('c-axial').width, "
                             "document.getElementById('c-axial').height]") == [20, 18]
        # the default scale draws the longest side (D: 5 x 2 mm) over VIEWER_SIDE_PX pixels
        page_file.write_text(volumes.viewer_html(unit, (2.0, 1.0, 1.5)))
        page.goto(page_file.as_uri())
        side = volumes.VIEWER_SIDE_PX
        assert page.evaluate("() => document.getElementById('c-sagittal').width") == round(6 * 1.5 * side / 10)
