"""Benchmark runner: ``python -m benchmarks`` (or ``python benchmarks/run.py``).

Runs the cases in :mod:`benchmarks.cases`, writes ``latest.json`` atomically (machine, mode, selected cases,
size overrides, seed, every repeat's value, median, IQR, min/max, ratio project/reference, goals) and
``latest.md``, and prints the markdown table. A full run (every default case at its full sizes) writes to
``benchmarks/results/``, which README.md's "Latest full run" quotes; a quick or partial run (``--quick``, ``--only``
or ``--size``) to ``benchmarks/results/quick/`` unless ``--out`` names a folder. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import CASE_NAMES, Context, Row, Unavailable, check_sizes  # noqa: E402
from synthvu_core.machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
QUICK_RESULTS = RESULTS / "quick"  # quick and partial runs: never over the full run's latest.json
SCHEMA_VERSION = 1
OPT_IN = ("quality",)  # run only with --long or when named in --only


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _cpu_model() -> str:
    return cpu_model() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_info(threads: int) -> dict[str, Any]:
    """CPU model, cores, load, torch version and threads, date and git commit of this run."""
    try:
        import torch

        torch_version: str | None = torch.__version__
        torch_threads: int | None = torch.get_num_threads()
    except ImportError:
        torch_version, torch_threads = None, None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch_version,
        "threads": torch_threads if torch_threads is not None else threads,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
    }


def select_cases(only: Sequence[str] | None, long: bool) -> list[str]:
    """Case names to run, in run order. Unknown names raise ``ValueError``."""
    if only:
        wanted = [n.strip() for item in only for n in item.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in CASE_NAMES]
        if unknown:
            raise ValueError(f"unknown case {', '.join(unknown)}; choose from {', '.join(CASE_NAMES)}")
        return [n for n in CASE_NAMES if n in wanted]
    return [n for n in CASE_NAMES if long or n not in OPT_IN]


def check_options(
    repeats: int | None, warmup: int | None, threads: int | None, sizes: dict[str, Any] | None
) -> None:
    """Raise ``ValueError`` (one line) for repeats < 1, warm-up < 0, threads < 1 or a size key no case declares."""
    if repeats is not None and repeats < 1:
        raise ValueError(f"--repeats must be at least 1, not {repeats}")
    if warmup is not None and warmup < 0:
        raise ValueError(f"--warmup must be 0 or more, not {warmup}")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, not {threads}")
    check_sizes(sizes)


def default_out(names: Sequence[str], *, quick: bool, long: bool, sizes: dict[str, Any] | None) -> Path:
    """``results/`` for a full run (every default case, full sizes), else ``results/quick/``."""
    full = not quick and list(names) == select_cases(None, long) and not sizes
    return RESULTS if full else QUICK_RESULTS


def run_case(name: str, ctx: Context) -> dict[str, Any]:
    """Run one case; never raises. Status is ``ok``, ``unavailable`` (with reason) or ``error``."""
    t0 = time.perf_counter()
    out: dict[str, Any] = {"status": "ok", "reason": None, "rows": []}
    try:
        module = importlib.import_module(f"benchmarks.cases.{name}")
        rows: list[Row] = module.run(ctx)
        out["rows"] = [r.to_json() for r in rows]
    except Unavailable as e:
        out.update(status="unavailable", reason=str(e))
    except Exception as e:  # a broken case must not hide the others' numbers
        out.update(status="error", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
    out["seconds"] = time.perf_counter() - t0
    return out


def run_benchmarks(
    only: Sequence[str] | None = None,
    *,
    quick: bool = False,
    long: bool = False,
    repeats: int | None = None,
    warmup: int | None = None,
    threads: int | None = None,
    out_dir: str | Path | None = None,
    sizes: dict[str, Any] | None = None,
    seed: int = 0,
    log: Callable[[str], None] = _log,
) -> dict[str, Any]:
    """Run the selected cases and write ``latest.json`` / ``latest.md`` into ``out_dir``.

    ``repeats``/``warmup`` default to 3/1 (quick) or 7/2 (full). ``threads`` sets torch's intra-op
    threads and the thread variables of child processes (default: all usable cores). ``sizes`` overrides
    problem sizes by key (see each case). ``out_dir`` defaults to :func:`default_out`. Bad options raise
    ``ValueError`` before anything runs. Returns the results dict that was written.
    """
    from synthvu_core.storage import atomic_path, write_json

    check_options(repeats, warmup, threads, sizes)
    names = select_cases(only, long)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    threads = usable if threads is None else threads
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    repeats = repeats if repeats is not None else (3 if quick else 7)
    warmup = warmup if warmup is not None else (1 if quick else 2)
    mode = ("quick" if quick else "full") + ("+long" if long else "")
    results: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "mode": mode,
        "repeats": repeats,
        "warmup": warmup,
        "only": list(names) if only else None,
        "sizes": dict(sizes or {}),
        "seed": seed,
        "machine": machine_info(threads),
        "cases": {},
    }
    t0 = time.perf_counter()
    for name in names:
        log(f"{name}: start ({mode}, {repeats} repeats after {warmup} warm-up, {threads} threads)")
        with tempfile.TemporaryDirectory(prefix=f"synthvu-bench-{name}-") as tmp:
            ctx = Context(
                quick=quick,
                long=long,
                repeats=repeats,
                warmup=warmup,
                threads=threads,
                workdir=Path(tmp),
                root=ROOT,
                seed=seed,
                sizes=dict(sizes or {}),
                log=lambda m, n=name: log(f"{n}: {m}"),
            )
            res = run_case(name, ctx)
        results["cases"][name] = res
        log(f"{name}: {res['status']} in {res['seconds']:.1f} s" + (f" ({res['reason']})" if res["reason"] else ""))
    results["seconds"] = time.perf_counter() - t0
    results["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    out = Path(out_dir) if out_dir is not None else default_out(names, quick=quick, long=long, sizes=sizes)
    write_json(out / "latest.json", results)
    with atomic_path(out / "latest.md") as tmp_md:
        tmp_md.write_text(render_markdown(results))
    log(f"results written to {out}")
    return results


def _num(x: float | None) -> str:
    if x is None:
        return "–"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _cell(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "–"
    if stats["n"] == 1:
        return f"{_num(stats['median'])} (n=1)"
    return f"{_num(stats['median'])} [{_num(stats['q1'])}–{_num(stats['q3'])}]"


def _goal_cell(goal: dict[str, Any] | None) -> str:
    if goal is None:
        return ""
    met = goal.get("met")
    verdict = "not measured" if met is None else ("met" if met else "**NOT met**")
    return f"{goal['text']}: {verdict}"


def _selection_line(results: dict[str, Any]) -> str | None:
    """Which cases ran, the size overrides and the seed (None for results written before they were recorded)."""
    if not {"only", "sizes", "seed"} & set(results):
        return None
    only = results.get("only")
    sizes = results.get("sizes") or {}
    over = ", ".join(f"{k}={json.dumps(v)}" for k, v in sizes.items()) if sizes else "none (each case's own sizes)"
    return (f"Cases: {', '.join(only) if only else 'the default set'}; size overrides: {over}; "
            f"seed {results.get('seed')}.")


def render_markdown(results: dict[str, Any]) -> str:
    """Markdown: one line on the machine, then one table row per measured quantity."""
    m = results["machine"]
    load = m.get("load_average")
    lines = [
        f"Mode **{results['mode']}** ({results['repeats']} repeats after {results['warmup']} warm-up; "
        f"median [IQR]), {results.get('seconds', 0):.0f} s in all.",
        f"Machine: {m['cpu']}, {m['cores_usable']}/{m['cores']} cores, torch {m['torch']} "
        f"({m['threads']} threads), Python {m['python']}, load {load[0]:.1f} at start"
        if load
        else "",
        f"Date {m['date']}, commit {str(m['git_commit'])[:10]}{' (dirty)' if m.get('git_dirty') else ''}.",
        _selection_line(results),
        "",
        "| case | metric | synthvu | reference | synthvu / ref. | goal |",
        "|---|---|---|---|---|---|",
    ]
    for name, case in results["cases"].items():
        if case["status"] != "ok":
            lines.append(f"| {name} | – | {case['status']}: {case['reason']} | | | |")
            continue
        for row in case["rows"]:
            metric = f"{row['metric']} ({row['unit']})"
            if row.get("note"):
                metric += f"; {row['note']}"
            if row.get("unavailable"):
                lines.append(
                    f"| {name} | {metric} | unavailable: {row['unavailable']} | | | {_goal_cell(row['goal'])} |"
                )
                continue
            ref = _cell(row["reference"])
            if row["reference"] is not None and row.get("reference_name"):
                ref = f"{row['reference_name']}: {ref}"
            ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}×"
            lines.append(
                f"| {name} | {metric} | {_cell(row['project'])} | {ref} | {ratio} | {_goal_cell(row['goal'])} |"
            )
    return "\n".join(line for line in lines if line is not None) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time synthvu against its references; write latest.{json,md} (benchmarks/results, or its quick/ "
        "folder for a quick or partial run).",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats: a sanity run under 2 minutes")
    p.add_argument("--long", action="store_true", help="also run the time-to-quality case (trains a generator)")
    p.add_argument("--only", action="append", metavar="NAME", help=f"run only these cases ({', '.join(CASE_NAMES)})")
    p.add_argument("--repeats", type=int, help="timed repeats per measurement (default 3 quick, 7 full)")
    p.add_argument("--warmup", type=int, help="untimed warm-up calls (default 1 quick, 2 full)")
    p.add_argument(
        "--threads", type=int, help="torch threads, and OMP/MKL threads of child processes (default: all usable cores)"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="results folder (default benchmarks/results for a full run, benchmarks/results/quick for a quick run "
        "or one with --only or --size)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="KEY=JSON",
        type=parse_size,
        help="override a case's problem size, e.g. evaluation.report=0 (repeatable; see each case's docstring)",
    )
    return p


def parse_size(text: str) -> tuple[str, Any]:
    """``KEY=JSON`` -> ``(KEY, value)``; a value that is not JSON stays a string (a path)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        select_cases(args.only, args.long)
        check_options(args.repeats, args.warmup, args.threads, dict(args.size))
    except ValueError as e:
        print(f"benchmarks: error: {e}", file=sys.stderr)
        return 2
    results = run_benchmarks(
        args.only,
        quick=args.quick,
        long=args.long,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        out_dir=args.out,
        sizes=dict(args.size) or None,
        seed=args.seed,
    )
    print(render_markdown(results))
    return 1 if any(c["status"] == "error" for c in results["cases"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
