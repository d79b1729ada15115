"""Few-step diffusion, whole process: ``sample --n N`` of each diffusion configuration and of the default AC-GAN,
each a fresh process at ``--threads`` threads (default 1; ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` set in its
environment) (imports, loading, sampling, writing), timed in rotation.

``python -m benchmarks.diffusion_steps --n 2000 --repeats 3 --out DIR``: the arms are the shipped teacher at its
card's steps and guidance (``models/diffusion-phantom``), the same teacher run with fewer steps (``--sampling-steps``)
and every distilled student folder given with ``--student`` (its card's steps, guidance 1), beside
``models/acgan-phantom``. Medians of VUs per wall second and per CPU second (user + system) and each arm's ratio
to the AC-GAN, in ``DIR/diffusion_steps.json`` with the machine (``benchmarks.run.machine_info``). CPU seconds
barely depend on other load on the machine; wall seconds do (the load average at start and end is recorded).
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


def arms(n: int, students: list[Path], short_steps: list[int], work: Path) -> dict[str, list[str]]:
    def sample(model: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "synthvu_core", "sample", str(model), "--n", str(n), *extra,
                "--out", str(work / f"{model.name}{'-'.join(extra)}.npz")]

    teacher = ROOT / "models" / "diffusion-phantom"
    out = {"acgan-phantom": sample(ROOT / "models" / "acgan-phantom"), "teacher": sample(teacher)}
    for k in short_steps:
        out[f"teacher, {k} steps"] = sample(teacher, "--sampling-steps", str(k))
    for s in students:
        out[s.name] = sample(s)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--student", type=Path, action="append", default=[], help="a distilled student folder")
    ap.add_argument("--short-steps", type=int, action="append", default=[], help="teacher step counts to add")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "diffusion-steps")
    ap.add_argument("--threads", type=int, default=1, help="threads of every child process")
    a = ap.parse_args(argv)
    if a.threads < 1 or a.repeats < 1:
        print("diffusion_steps: error: --threads and --repeats must be at least 1", file=sys.stderr)
        return 2
    from benchmarks.run import machine_info

    env = thread_env(a.threads)
    machine = {**machine_info(a.threads), "threads": a.threads}  # the children's threads, not this parent's
    runs: dict[str, list[dict[str, float]]] = {}
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="synthvu-steps-") as tmp:
        todo = arms(a.n, a.student, a.short_steps, Path(tmp))
        names = list(todo)
        for r in range(a.repeats):
            for name in names[r % len(names):] + names[: r % len(names)]:
                wall, rss, cpu = run_process(todo[name], ROOT, env)
                runs.setdefault(name, []).append({"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss})
                print(f"{name}: {a.n / wall:.0f} VUs/s wall, {a.n / cpu:.0f} VUs/CPU-s", flush=True)
    med = {k: {"vus_per_s": a.n / statistics.median(r["wall_s"] for r in v),
               "vus_per_cpu_s": a.n / statistics.median(r["cpu_s"] for r in v),
               "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in v)} for k, v in runs.items()}
    gan = med["acgan-phantom"]
    result = {
        "n": a.n, "repeats": a.repeats, "threads": a.threads, "machine": machine,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_start": load0, "load_average_end": os.getloadavg(), "runs": runs, "median": med,
        "ratio_to_acgan": {k: {"wall": m["vus_per_s"] / gan["vus_per_s"],
                               "cpu": m["vus_per_cpu_s"] / gan["vus_per_cpu_s"]} for k, m in med.items()},
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "diffusion_steps.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({"median": med, "ratio_to_acgan": result["ratio_to_acgan"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
