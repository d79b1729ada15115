"""Resident memory of a dashboard server: idle, its peak while a browser visits every page for every
shipped generator, just after, and a minute later (``docs/deploy.md`` quotes the numbers).

    python -m benchmarks.server_memory [--public] [--models N] [--settle 60]

Starts ``streamlit run app.py`` on a free local port, reads ``VmRSS`` and ``VmHWM`` (the peak) of the
server process from ``/proc``, and drives Debian's Chromium with Playwright (``/usr/bin/chromium``).
Prints one JSON object (MB).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["Generate", "Embeddings", "Utility", "Privacy", "Trade-offs", "Models & data", "Overview"]
DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise KeyError(field)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit("the server exited")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no answer from {url}")


def _finished(page) -> None:
    page.wait_for_selector(DONE, timeout=180_000)
    page.wait_for_timeout(300)
    page.wait_for_selector(DONE, timeout=180_000)


def visit_everything(url: str, models: list[str]) -> int:
    """Every page for every generator in one browser session; returns the number of page runs."""
    from playwright.sync_api import sync_playwright

    runs = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 2000})
            for model in models:
                page.goto(f"{url}/?model={model}", wait_until="domcontentloaded")
                page.get_by_role("heading", name="synthvu").first.wait_for(timeout=180_000)
                _finished(page)
                runs += 1
                for name in PAGES:
                    page.locator('[data-testid="stSidebarNav"] a', has_text=name).first.click()
                    page.wait_for_timeout(500)
                    _finished(page)
                    runs += 1
        finally:
            browser.close()
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--public", action="store_true", help="public mode (SYNTHVU_PUBLIC=1)")
    ap.add_argument("--models", type=int, default=0, help="visit only the first N shipped generators (0: all)")
    ap.add_argument("--settle", type=float, default=60.0, help="seconds to wait after the visits")
    args = ap.parse_args(argv)
    models = sorted(p.parent.name for p in (ROOT / "models").glob("*/card.json"))
    models = models[: args.models] if args.models else models
    port, env = _port(), dict(os.environ)
    env.pop("SYNTHVU_MODELS", None)
    env["SYNTHVU_PUBLIC"] = "1" if args.public else "0"
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        _wait_healthy(url, proc)
        time.sleep(5)
        out = {"public": args.public, "generators": len(models), "idle_mb": _mb(proc.pid, "VmRSS")}
        t0 = time.perf_counter()
        out["page_runs"] = visit_everything(url, models)
        out["visit_s"] = round(time.perf_counter() - t0, 1)
        out["after_load_mb"] = _mb(proc.pid, "VmRSS")
        time.sleep(args.settle)
        out[f"after_{args.settle:.0f}s_mb"] = _mb(proc.pid, "VmRSS")
        out["peak_mb"] = _mb(proc.pid, "VmHWM")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
