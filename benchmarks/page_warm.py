"""Warm reloads of one dashboard page in headless Chromium, several checkouts and a blank app in alternation.

``python -m benchmarks.page_warm --page /generate --repeats 9 --arm after=. --arm before=OLD_CHECKOUT``: every arm
(and a one-line Streamlit app, the floor that Streamlit and Chromium set) is served by its own ``streamlit run``
at once; after a cold visit and two untimed reloads per arm, the arms are reloaded in rotating order. Per reload:
wall seconds until Streamlit reports the script run done (as :mod:`benchmarks.cases.dashboard` measures it),
CPU seconds of that arm's server, and CPU seconds of the whole tree this process started (servers, Playwright,
Chromium: the work a reload costs, which barely depends on other load on the machine; wall seconds do).
Every server runs at ``--threads`` threads (default: all usable cores; ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``
set in its environment). Medians, quartiles and ratios to the blank app go to ``OUT/page_warm.json``, written
atomically, with the machine (``benchmarks.run.machine_info``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.cases.dashboard import BLANK_APP, CHROMIUM, CHROMIUM_ARGS, drawn_in, serve

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
METRICS = ("wall_s", "server_cpu_s", "browser_cpu_s", "tree_cpu_s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), 0 where it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15 of stat)


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and every live descendant (a process that ended meanwhile is not counted)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(cpu_seconds(pid) for pid in tree)


def summary(values: list[float]) -> dict[str, float]:
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else (values[0],) * 3
    return {"median": statistics.median(values), "q1": q1, "q3": q3}


def measure(arms: dict[str, tuple[Path, Path, str]], repeats: int, log: Path, threads: int) -> dict[str, Any]:
    """``{arm: {"wall_s": [...], "server_cpu_s": [...], "browser_cpu_s": [...], "tree_cpu_s": [...], "cold_s": s,
    "exceptions": n}}`` (browser: the tree less every server, i.e. Playwright and Chromium)."""
    from playwright.sync_api import sync_playwright

    runs: dict[str, dict[str, Any]] = {k: {m: [] for m in METRICS} for k in arms}
    me = os.getpid()
    with sync_playwright() as pw, contextlib.ExitStack() as stack:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        stack.callback(browser.close)
        pages: dict[str, tuple[Any, int]] = {}
        for name, (script, cwd, path) in arms.items():
            base, pid = stack.enter_context(serve(script, cwd, log, timeout=180.0, threads=threads))
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            runs[name]["cold_s"] = drawn_in(page, base + path)
            for _ in range(2):
                drawn_in(page)
            pages[name] = (page, pid)

        def servers_cpu() -> float:
            return sum(cpu_seconds(pid) for _, pid in pages.values())

        names = list(arms)
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                page, pid = pages[name]
                s0, all0, t0 = cpu_seconds(pid), servers_cpu(), tree_cpu_seconds(me)
                runs[name]["wall_s"].append(drawn_in(page))
                time.sleep(0.5)  # what the reload set off after the script run (collection, images) is counted
                tree, servers = tree_cpu_seconds(me) - t0, servers_cpu() - all0
                runs[name]["server_cpu_s"].append(cpu_seconds(pid) - s0)
                runs[name]["tree_cpu_s"].append(tree)
                runs[name]["browser_cpu_s"].append(tree - servers)
            print(r, {k: round(v["wall_s"][-1], 2) for k, v in runs.items()}, flush=True)
        for name, (page, _) in pages.items():
            runs[name]["exceptions"] = page.locator('[data-testid="stException"]').count()
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--page", default="/generate", help="URL path of the page, e.g. /generate")
    ap.add_argument(
        "--arm",
        action="append",
        default=[],
        metavar="NAME=CHECKOUT[@PATH]",
        help="a checkout whose app.py to serve, at --page or PATH (repeatable; default: this tree)",
    )
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "page-warm")
    ap.add_argument("--threads", type=int, default=None, help="threads of every server (default all usable cores)")
    a = ap.parse_args(argv)
    threads = a.threads if a.threads is not None else len(os.sched_getaffinity(0))
    if threads < 1 or a.repeats < 1:
        print("page_warm: error: --threads and --repeats must be at least 1", file=sys.stderr)
        return 2
    if not CHROMIUM.exists():
        print(f"Chromium not found at {CHROMIUM}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="synthvu-page-warm-") as tmp:
        work = Path(tmp)
        (work / "blank_app.py").write_text(BLANK_APP)
        arms = {}
        for spec in a.arm or [f"this code={ROOT}"]:
            name, root = spec.split("=", 1)
            root, _, path = root.partition("@")
            arms[name] = (Path(root).resolve() / "app.py", Path(root).resolve(), path or a.page)
        arms["blank"] = (work / "blank_app.py", work, "/")
        from benchmarks.run import machine_info

        machine = {**machine_info(threads), "threads": threads}  # the servers' threads, not this parent's
        load0 = os.getloadavg()
        runs = measure(arms, a.repeats, work / "streamlit.log", threads)
    med = {k: {m: summary(v[m]) for m in METRICS} for k, v in runs.items()}
    result = {
        "what": f"warm reload of {a.page} until Streamlit reports the script run done, headless Chromium, "
        "arms in rotating order; CPU seconds of the arm's server and of the whole process tree",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeats": a.repeats,
        "threads": threads,
        "machine": machine,
        "cores": os.cpu_count(),
        "load_average_start": load0,
        "load_average_end": os.getloadavg(),
        "runs": runs,
        "summary": med,
        "ratio_to_blank": {k: {m: med[k][m]["median"] / med["blank"][m]["median"] for m in METRICS} for k in med},
    }
    a.out.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out / ".page_warm.json.tmp"
    tmp_out.write_text(json.dumps(result, indent=1))
    tmp_out.replace(a.out / "page_warm.json")
    print(json.dumps({"summary": med, "ratio_to_blank": result["ratio_to_blank"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
