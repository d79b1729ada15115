"""Whole-process sampling, three arms timed in alternation in one run: the ``sample`` command of this tree,
the same command of another checkout (``--before``, e.g. the main branch: the code before a change) and
``benchmarks/reference_sampling.py`` (the study's generator in a plain script), and the floor: the generator's
forward passes alone (``benchmarks/forward_floor.py``, in-process CPU seconds of the same N VUs at batch 256).

``python -m benchmarks.whole_process --n 5000 --pairs 2 --before PATH --out DIR``: each arm a fresh process
(imports, loading, sampling, writing), order rotated every repeat; wall and CPU seconds (user + system, all
threads) and peak RSS per run (``os.wait4``); medians and ratios to the reference written to
``DIR/whole_process.json`` with the machine (``benchmarks.run.machine_info``; CPU seconds barely depend on other
load on the machine; wall seconds do), with each ``sample`` arm's CPU seconds over the floor's forward CPU seconds
(``over_forward_floor``: 1 would be a process that costs nothing but the network).

Threads: every arm runs at ``--threads`` (default 1: ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` set in its
environment), the floor always at one thread (its forward is timed in process CPU seconds, every thread counted).
``over_forward_floor`` is computed only at ``--threads 1``: at more threads it would set a multi-threaded process
against a one-thread forward.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cases import thread_env
from benchmarks.cases.sampling import run_process

ROOT = Path(__file__).resolve().parents[1]


#: What the floor arm writes in the run's temporary folder (its in-process forward seconds).
FLOOR_FILE = "floor.json"


def arms(
    n: int, before: Path | None, work: Path, floor: bool = True, threads: int = 1
) -> dict[str, tuple[list[str], Path, dict[str, str]]]:
    """``{arm: (command, working folder, environment)}``: every arm at ``threads`` threads, the floor at one."""
    env = thread_env(threads)
    sample = [sys.executable, "-m", "synthvu_core", "sample", str(ROOT / "models" / "acgan-phantom"), "--n", str(n)]
    out = {"ours": ([*sample, "--out", str(work / "o.npz")], ROOT, env)}
    if before is not None:
        out["before"] = ([*sample, "--out", str(work / "b.npz")], before, env)
    out["reference"] = ([sys.executable, str(ROOT / "benchmarks" / "reference_sampling.py"), str(n),
                         str(work / "r.npz")], ROOT, env)
    if floor:
        out["floor"] = ([sys.executable, "-m", "benchmarks.forward_floor", "--n", str(n), "--out",
                         str(work / FLOOR_FILE)], ROOT, thread_env(1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--pairs", type=int, default=3, help="repeats of every arm")
    ap.add_argument("--before", type=Path, default=None, help="another checkout whose sample command to time too")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "whole-process")
    ap.add_argument("--no-floor", action="store_true", help="skip the forward-floor arm")
    ap.add_argument("--threads", type=int, default=1, help="threads of every arm but the floor (always 1)")
    a = ap.parse_args(argv)
    if a.threads < 1 or a.pairs < 1:
        print("whole_process: error: --threads and --pairs must be at least 1", file=sys.stderr)
        return 2
    from benchmarks.run import machine_info

    machine = {**machine_info(a.threads), "threads": a.threads}  # the arms' threads, not this parent's
    runs: dict[str, list[dict[str, float]]] = {}
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="synthvu-whole-") as tmp:
        todo = arms(a.n, a.before, Path(tmp), floor=not a.no_floor, threads=a.threads)
        names = list(todo)
        for r in range(a.pairs):
            for name in names[r % len(names):] + names[: r % len(names)]:
                cmd, cwd, env = todo[name]
                wall, rss, cpu = run_process(cmd, cwd, env)
                run = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss}
                if name == "floor":
                    run.update(json.loads((Path(tmp) / FLOOR_FILE).read_text()))
                runs.setdefault(name, []).append(run)
                print(f"{name}: {wall:.1f} s wall, {cpu:.1f} CPU-s, {rss:.0f} MiB", flush=True)
    metrics = ("wall_s", "cpu_s", "peak_rss_mib", "forward_cpu_s", "forward_wall_s")
    med = {k: {m: statistics.median(r[m] for r in v) for m in metrics if m in v[0]} for k, v in runs.items()}
    ref = med["reference"]
    floor = med.get("floor", {}).get("forward_cpu_s") if a.threads == 1 else None
    result = {
        "n": a.n, "pairs": a.pairs, "threads": a.threads, "floor_threads": 1, "machine": machine,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_start": load0, "load_average_end": os.getloadavg(), "runs": runs, "median": med,
        "rate_ratio_to_reference": {k: {"wall": ref["wall_s"] / m["wall_s"], "cpu": ref["cpu_s"] / m["cpu_s"]}
                                    for k, m in med.items() if k != "floor"},
        "over_forward_floor": ({k: m["cpu_s"] / floor for k, m in med.items() if k in ("ours", "before")}
                               if floor else None),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "whole_process.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({"median": med, "ratio": result["rate_ratio_to_reference"],
                      "over_forward_floor": result["over_forward_floor"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
