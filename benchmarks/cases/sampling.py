"""Sampling throughput: VUs/s of the default generator against the published ``pgan`` generator.

Both are built with random weights (``synthvu_core.models.acgan``; speed does not depend on training)
at 9×64×64 and 3 region classes and run under ``torch.inference_mode`` on pre-drawn noise and labels.
Achieved GFLOP/s = FLOPs per VU (counted once with ``torch.utils.flop_counter.FlopCounterMode``) ×
VUs/s, shown as a share of this machine's fp32 matmul rate measured in the same run (best repeat of a
square ``torch.matmul``).

Whole process: ``python -m synthvu_core sample MODEL --n N --out x.npz`` against
``benchmarks/reference_sampling.py`` (the study's generator in a plain script: one float32 array,
numpy conversion, ``numpy.savez``), each a fresh process at the run's threads (``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` set in its environment), timed in alternation; wall time from start
to exit and the peak resident memory of that process (``os.wait4``). MODEL is the shipped
``acgan-phantom`` (the default architecture). The memory row is repeated at ``sampling.process_n_large``
VUs to show that the streamed export's memory does not grow with ``--n``.

Sizes (``Context.sizes`` keys): ``sampling.batch`` (quick 32, full 256), ``sampling.matmul_n``
(quick 1024, full 2048), ``sampling.shape`` (default [9, 64, 64]), ``sampling.process_n`` (quick 500,
full 5000; 0 = skip), ``sampling.process_repeats`` (alternating pairs: quick up to 3, full 5),
``sampling.process_n_large`` (quick 2000, full 25000; 0 = skip).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.cases import Context, Goal, Row, Stats, Unavailable, rate, thread_env, time_pair

#: The problem-size keys this case reads (``--size KEY=JSON``); the runner refuses others.
SIZE_KEYS: tuple[str, ...] = (
    "sampling.batch", "sampling.matmul_n", "sampling.shape", "sampling.process_n", "sampling.process_repeats",
    "sampling.process_n_large"
)

SHAPE = (9, 64, 64)
N_CLASSES = 3


def build_generators(shape: tuple[int, int, int], n_classes: int = N_CLASSES, seed: int = 0) -> dict[str, Any]:
    """``{"default": (G, D), "pgan": (G, D)}`` with random weights; raises Unavailable without acgan."""
    try:
        from synthvu_core.models import acgan
    except ImportError as e:
        raise Unavailable(f"synthvu_core.models.acgan not importable ({e})") from e
    if not hasattr(acgan, "architecture") or not hasattr(acgan, "build"):
        raise Unavailable("synthvu_core.models.acgan lacks architecture()/build()")
    return {name: acgan.build(acgan.architecture(name, shape, n_classes), seed=seed) for name in ("default", "pgan")}


def flops_per_call(fn: Any) -> int:
    """Total FLOPs of one call of ``fn`` as counted by FlopCounterMode (convolutions, matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(ctx: Context) -> Row:
    """fp32 GFLOP/s of an n×n ``torch.matmul`` (2n³ FLOPs per call)."""
    import torch

    n = int(ctx.size("sampling.matmul_n", 1024, 2048))
    g = torch.Generator().manual_seed(ctx.seed)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    times, _ = time_pair(lambda: torch.matmul(a, b), None, repeats=ctx.repeats, warmup=ctx.warmup)
    return Row(f"fp32 matmul {n}×{n}", "GFLOP/s", Stats.of(rate(2 * n**3 / 1e9, times)),
               note="machine peak: its best repeat is the 100% of the share row")


def run(ctx: Context) -> list[Row]:
    import torch

    shape = tuple(ctx.size("sampling.shape", SHAPE, SHAPE))
    batch = int(ctx.size("sampling.batch", 32, 256))
    nets = build_generators(shape, seed=ctx.seed)
    gens = {name: pair[0].eval() for name, pair in nets.items()}

    peak_row = matmul_peak(ctx)
    peak = peak_row.project.max  # type: ignore[union-attr]

    g = torch.Generator().manual_seed(ctx.seed)
    z = torch.randn(batch, gens["default"].config.latent_dim, generator=g)
    y = torch.randint(0, N_CLASSES, (batch,), generator=g)

    def forward(name: str) -> Any:
        with torch.inference_mode():
            return gens[name](z, y)

    flops = {name: flops_per_call(lambda n=name: forward(n)) / batch for name in gens}
    ctx.log(f"FLOPs per VU: default {flops['default'] / 1e6:.0f} M, pgan {flops['pgan'] / 1e6:.0f} M; batch {batch}")
    t_def, t_pgan = time_pair(
        lambda: forward("default"), lambda: forward("pgan"), repeats=ctx.repeats, warmup=ctx.warmup
    )
    assert t_pgan is not None
    vus = {"default": rate(batch, t_def), "pgan": rate(batch, t_pgan)}
    gflops = {k: [v * flops[k] / 1e9 for v in vals] for k, vals in vus.items()}
    share = {k: [100.0 * v / peak for v in vals] for k, vals in gflops.items()}
    label = "×".join(str(s) for s in shape)
    extra = {"batch": batch, "flops_per_vu": flops, "matmul_peak_gflops": peak}
    return [
        peak_row,
        Row(
            f"sampling {label}, batch {batch}",
            "VUs/s",
            Stats.of(vus["default"]),
            Stats.of(vus["pgan"]),
            "pgan",
            goal=Goal("≥ 1.5× pgan", ">=", 1.5, on="ratio"),
            extra=extra,
        ),
        Row(
            "achieved compute while sampling",
            "GFLOP/s",
            Stats.of(gflops["default"]),
            Stats.of(gflops["pgan"]),
            "pgan",
            note=f"{flops['default'] / 1e6:.0f} vs {flops['pgan'] / 1e6:.0f} MFLOP per VU",
        ),
        Row("share of fp32 matmul peak", "%", Stats.of(share["default"]), Stats.of(share["pgan"]), "pgan"),
    ] + (process_rows(ctx) if int(ctx.size("sampling.process_n", 500, 5000)) else [])


def run_process(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(wall seconds, peak resident MiB, CPU seconds) of one child process run to its end; raises on a failure.

    ``env`` is the child's environment (None: this process's; :func:`benchmarks.cases.thread_env` sets its threads).
    CPU seconds (user + system, all threads) barely depend on other load on the machine; wall seconds do.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {err.strip()[-300:]}")
    return wall, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime  # ru_maxrss: KiB on Linux


def process_rows(ctx: Context) -> list[Row]:
    """Whole-process sampling + export of N VUs: the sample command vs the reference script, each child at
    ``ctx.threads`` threads (``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``)."""
    model = ctx.root / "models" / "acgan-phantom"
    if not (model / "card.json").is_file():
        return [Row.missing("whole-process sampling", "VUs/s", f"{model.name} is not shipped here")]
    n = int(ctx.size("sampling.process_n", 500, 5000))
    ours = [
        sys.executable,
        "-m",
        "synthvu_core",
        "sample",
        str(model),
        "--n",
        str(n),
        "--out",
        str(ctx.workdir / "o.npz"),
    ]
    ref = [sys.executable, str(ctx.root / "benchmarks" / "reference_sampling.py"), str(n), str(ctx.workdir / "r.npz")]
    repeats = int(ctx.size("sampling.process_repeats", max(1, min(ctx.repeats, 3)), 5))
    env = thread_env(ctx.threads)
    res: dict[str, list[tuple[float, float, float]]] = {"ours": [], "ref": []}
    for i in range(repeats):  # alternate, order flipped every repeat
        for side in ("ours", "ref") if i % 2 == 0 else ("ref", "ours"):
            res[side].append(run_process(ours if side == "ours" else ref, ctx.root, env))
    wall = {k: [r[0] for r in v] for k, v in res.items()}
    rss = {k: [r[1] for r in v] for k, v in res.items()}
    cpu = {k: [r[2] for r in v] for k, v in res.items()}
    ctx.log(
        f"whole process, {n} VUs: ours {wall['ours']} s {rss['ours']} MiB; reference {wall['ref']} s {rss['ref']} MiB"
    )
    full = not ctx.quick
    rows = [
        Row(
            f"whole-process sample + save, {n} VUs to .npz",
            "VUs/s",
            Stats.of(rate(n, wall["ours"])),
            Stats.of(rate(n, wall["ref"])),
            "pgan script",
            goal=Goal("≥ 2× the study's generator", ">=", 2.0, on="ratio") if full else None,
            note="fresh process each: imports, loading, sampling, writing",
        ),
        Row(
            f"whole-process sample + save, {n} VUs, per CPU second",
            "VUs/CPU-s",
            Stats.of(rate(n, cpu["ours"])),
            Stats.of(rate(n, cpu["ref"])),
            "pgan script",
            note="user + system time of all threads: little affected by other load on the machine",
        ),
        Row(
            f"peak memory of that process, {n} VUs",
            "MiB",
            Stats.of(rss["ours"]),
            Stats.of(rss["ref"]),
            "pgan script",
            higher_is_better=False,
            goal=Goal("≤ 1 GB", "<=", 1000.0) if full else None,
        ),
    ]
    big = int(ctx.size("sampling.process_n_large", 2000, 25000))
    if big:
        cmd = [*ours[:6], str(big), "--out", str(ctx.workdir / "big.npz")]
        w, m, _ = run_process(cmd, ctx.root, env)
        (ctx.workdir / "big.npz").unlink(missing_ok=True)
        rows.append(
            Row(
                f"peak memory, {big} VUs streamed to .npz",
                "MiB",
                Stats.of([m]),
                higher_is_better=False,
                note=f"{big / w:.0f} VUs/s; memory bounded by the batch, not by --n",
                extra={"seconds": w},
            )
        )
    return rows
