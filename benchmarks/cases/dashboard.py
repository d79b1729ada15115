"""Dashboard page times in headless Chromium (Playwright), cold and warm, against a blank Streamlit app.

The app is served with ``streamlit run app.py`` on a free port. A page counts as drawn when Streamlit's
root element reports ``data-test-script-state="notRunning"`` after navigation. **Cold** = the first
visit of a page in a fresh browser context on a freshly started server (for pages other than the
first, the server has already drawn the first page); **warm** = a reload of the same page on that
server. The reference is a one-line Streamlit app served and measured the same way: the floor that
Streamlit and Chromium set. Both apps are served at once and measured in alternation: every round starts a fresh
server of each and takes their cold first visits in turn, then each page of the project is visited and its warm
reloads alternate with reloads of the blank app (the order flipped every repeat and every round), so a slow phase
of a busy machine falls on both alike. Servers run at the run's threads (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``).
Goals: warm ≤ 3 s, cold ≤ 15 s.

Skipped with a reason where Chromium (``/usr/bin/chromium``) or Playwright is absent.
Sizes: ``dashboard.pages`` (quick 1 = the first page only, full: every page in the sidebar),
``dashboard.cold_repeats`` (quick 1, full 3; each one restarts the server).
"""

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
from typing import Any

from benchmarks.cases import Context, Goal, Row, Stats, Unavailable, thread_env

#: The problem-size keys this case reads (``--size KEY=JSON``); the runner refuses others.
SIZE_KEYS: tuple[str, ...] = ("dashboard.pages", "dashboard.cold_repeats")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
DRAWN = '[data-testid="stApp"][data-test-script-state="notRunning"]'
WARM_GOAL = Goal("≤ 3 s", "<=", 3.0)
COLD_GOAL = Goal("≤ 15 s", "<=", 15.0)
BLANK_APP = 'import streamlit as st\n\nst.title("blank")\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(
    script: Path, cwd: Path, log: Path, timeout: float = 120.0, threads: int | None = None
) -> Iterator[tuple[str, int]]:
    """Serve ``script`` headless on a free port (the checkout's own config applies) at ``threads`` threads (None:
    as this process's environment says); yield its base URL and the server's pid; stop the server afterwards."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    with open(log, "ab") as out:
        env = dict(os.environ) if threads is None else thread_env(threads)
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {proc.returncode}; see {log}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer within {timeout:.0f} s")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def drawn_in(page: Any, url: str | None = None, timeout_ms: float = 180_000) -> float:
    """Seconds from navigating to ``url`` (None: reload) until Streamlit reports the script run finished."""
    t0 = time.perf_counter()
    if url is None:
        page.reload(wait_until="commit")
    else:
        page.goto(url, wait_until="commit")
    page.wait_for_selector(DRAWN, timeout=timeout_ms, state="attached")
    return time.perf_counter() - t0


def page_paths(page: Any, base: str) -> list[str]:
    hrefs = page.eval_on_selector_all('[data-testid="stSidebarNav"] a', "els => els.map(e => e.getAttribute('href'))")
    paths: list[str] = []
    for h in hrefs or []:
        p = "/" + h.split("://", 1)[-1].split("/", 1)[-1] if "://" in h else h
        if p not in paths:
            paths.append(p)
    return paths or ["/"]


Times = dict[str, list[float]]


def open_page(stack: contextlib.ExitStack, browser: Any, script: Path, cwd: Path, log: Path,
              threads: int | None) -> tuple[Any, str]:
    """A fresh server of ``script`` and a fresh browser page, both closed when ``stack`` closes."""
    base, _ = stack.enter_context(serve(script, cwd, log, threads=threads))
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    stack.callback(context.close)
    return context.new_page(), base


def alternately(first: tuple[Any, Times, str | None], second: tuple[Any, Times, str | None], kind: str,
                flip: bool) -> None:
    """One visit (``url``) or reload (None) of each ``(page, times, url)``, appended to ``times[kind]``; the
    second goes first where ``flip``."""
    for page, times, url in (second, first) if flip else (first, second):
        times[kind].append(drawn_in(page, url))


def measure_app(
    browser: Any, app: tuple[Path, Path], blank: tuple[Path, Path], log: Path, *, n_pages: int | None,
    cold_repeats: int, warm_repeats: int, threads: int | None = None,
) -> tuple[dict[str, Times], Times, dict[str, int]]:
    """``({path: {"cold": [s...], "warm": [s...]}}, blank {"cold", "warm"}, {path: exceptions shown})`` for the
    first ``n_pages`` sidebar pages of ``app`` (None = all) and the blank app, ``(script, cwd)`` each, measured in
    alternation: per round a fresh server of each, their cold first visits in turn; then per page its warm reloads
    alternating with the blank app's."""
    ours: dict[str, Times] = {}
    ref: Times = {"cold": [], "warm": []}
    errors: dict[str, int] = {}
    paths: list[str] | None = None
    for rnd in range(cold_repeats):
        with contextlib.ExitStack() as stack:
            page, base = open_page(stack, browser, *app, log, threads)
            blank_page, blank_base = open_page(stack, browser, *blank, log, threads)
            first: Times = {"cold": []}
            alternately((page, first, base + "/"), (blank_page, ref, blank_base + "/"), "cold", rnd % 2 == 1)
            if paths is None:
                paths = page_paths(page, base)[: n_pages or None]
            for i, path in enumerate(paths):
                t = ours.setdefault(path, {"cold": [], "warm": []})
                t["cold"].append(first["cold"][0] if i == 0 else drawn_in(page, base + path))
                for r in range(warm_repeats):
                    alternately((page, t, None), (blank_page, ref, None), "warm", (r + rnd) % 2 == 1)
                errors[path] = max(errors.get(path, 0), page.locator('[data-testid="stException"]').count())
    return ours, ref, errors


def run(ctx: Context) -> list[Row]:
    if not CHROMIUM.exists():
        raise Unavailable(f"Chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise Unavailable(f"Playwright not importable ({e})") from e
    app = ctx.root / "app.py"
    if not app.is_file():
        raise Unavailable("app.py not found")
    n_pages = ctx.size("dashboard.pages", 1, None)
    cold_repeats = int(ctx.size("dashboard.cold_repeats", 1, 3))
    warm_repeats = max(1, ctx.repeats if not ctx.quick else min(ctx.repeats, 2))
    blank = ctx.workdir / "blank_app.py"
    blank.write_text(BLANK_APP)
    log = ctx.workdir / "streamlit.log"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            ours, ref_t, errors = measure_app(
                browser, (app, ctx.root), (blank, ctx.workdir), log, n_pages=n_pages, cold_repeats=cold_repeats,
                warm_repeats=warm_repeats, threads=ctx.threads,
            )
        except Exception as e:
            tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
            raise RuntimeError(f"{type(e).__name__}: {e}; streamlit log tail: {tail}") from e
        finally:
            browser.close()
    rows: list[Row] = []
    for path, t in ours.items():
        name = path.strip("/") or "home (/)"
        note = f"{errors[path]} error box(es) shown" if errors.get(path) else ""
        for kind, label, goal in (("warm", "warm (reload)", WARM_GOAL), ("cold", "cold (fresh server)", COLD_GOAL)):
            rows.append(Row(f"page {name}, {label}", "s", Stats.of(t[kind]), Stats.of(ref_t[kind]),
                            "blank Streamlit app", higher_is_better=False, goal=goal, note=note))
    return rows
