"""Set-up shared by the real-browser tests: ``streamlit run app.py`` in a subprocess, and Debian's Chromium driven
by Playwright. The tests skip where /usr/bin/chromium (the marks below) or Playwright (``chromium()``) is absent."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
#: Streamlit has finished running the page's script.
DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
#: The ``pytestmark`` of every real-browser test module (add a module's own marks after them).
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]
#: Seconds between two health checks while the server starts.
POLL_S = 0.25


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(port: int, secrets: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    return cmd + ["--secrets.files", str(secrets)] if secrets is not None else cmd


def _environment(models: Path) -> dict[str, str]:
    """This process's environment with the test's generators and without public mode (secrets files set it)."""
    env = dict(os.environ, SYNTHVU_MODELS=str(models), PYTHONPATH=str(ROOT))
    env.pop("SYNTHVU_PUBLIC", None)
    return env


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path, attempts: int) -> None:
    """Poll ``/_stcore/health`` until it answers; fail with the log's tail if streamlit exits first."""
    for _ in range(attempts):
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(POLL_S)
    pytest.fail(f"streamlit did not answer its health check within {attempts * POLL_S:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def serve(models: Path, log: Path, *, secrets: Path | None = None, attempts: int = 240) -> Iterator[str]:
    """``streamlit run app.py`` on the generators in ``models`` (output to ``log``); yields its URL once healthy.

    ``secrets``: the only secrets file it reads (else Streamlit's usual places); ``attempts``: health checks before
    giving up."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(_command(port, secrets), cwd=ROOT, env=_environment(models),
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url, log, attempts)
        yield url
    finally:
        _stop(proc)


def launch(pw: Playwright) -> Browser:
    """Debian's Chromium, headless, started by a running Playwright."""
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium for the block, closed after it; skips the test where Playwright is absent."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch(pw)
        try:
            yield browser
        finally:
            browser.close()


def finished(page: Page, timeout_ms: int = 120_000, pause_ms: int = 300) -> None:
    """Wait until the script run is over (and stays over for a moment: reruns follow selections)."""
    page.wait_for_selector(DONE, timeout=timeout_ms)
    page.wait_for_timeout(pause_ms)
    page.wait_for_selector(DONE, timeout=timeout_ms)


def no_exception(page: Page, where: str) -> None:
    """No Streamlit exception element on the page."""
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, f"{where}: {errors.first.inner_text()[:1000]}"
