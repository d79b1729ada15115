"""Sampling throughput: VUs/s of the default generator against the published ``pgan`` generator.

Both are built with random weights (``synthvu_core.models.acgan``; speed does not depend on training)
at 9×64×64 and 3 region classes and run under ``torch.inference_mode`` on pre-drawn noise and labels.
Achieved GFLOP/s = FLOPs per VU (counted once with ``torch.utils.flop_counter.FlopCounterMode``) ×
VUs/s, shown as a share of this machine's fp32 matmul rate measured in the same run (best repeat of a
square ``torch.matmul``).

Sizes (``Context.sizes`` keys): ``sampling.batch`` (quick 32, full 256), ``sampling.matmul_n``
(quick 1024, full 2048), ``sampling.shape`` (default [9, 64, 64]).
"""

from __future__ import annotations

from typing import Any

from benchmarks.cases import Context, Goal, Row, Stats, Unavailable, rate, time_pair

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
    t_def, t_pgan = time_pair(lambda: forward("default"), lambda: forward("pgan"), repeats=ctx.repeats, warmup=ctx.warmup)
    assert t_pgan is not None
    vus = {"default": rate(batch, t_def), "pgan": rate(batch, t_pgan)}
    gflops = {k: [v * flops[k] / 1e9 for v in vals] for k, vals in vus.items()}
    share = {k: [100.0 * v / peak for v in vals] for k, vals in gflops.items()}
    label = "×".join(str(s) for s in shape)
    extra = {"batch": batch, "flops_per_vu": flops, "matmul_peak_gflops": peak}
    return [
        peak_row,
        Row(f"sampling {label}, batch {batch}", "VUs/s", Stats.of(vus["default"]), Stats.of(vus["pgan"]), "pgan",
            goal=Goal("≥ 1.5× pgan", ">=", 1.5, on="ratio"), extra=extra),
        Row("achieved compute while sampling", "GFLOP/s", Stats.of(gflops["default"]), Stats.of(gflops["pgan"]), "pgan",
            note=f"{flops['default'] / 1e6:.0f} vs {flops['pgan'] / 1e6:.0f} MFLOP per VU"),
        Row("share of fp32 matmul peak", "%", Stats.of(share["default"]), Stats.of(share["pgan"]), "pgan"),
    ]
