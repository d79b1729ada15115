"""Diffusion sampling speed beside the AC-GANs: VUs/s of the latent diffusion generator, the default
AC-GAN generator and the study's ``pgan`` generator, timed in one run in rotation.

The diffusion generator is the shipped ``models/diffusion-phantom`` (its card's sampler, steps and
guidance) where present, else the default architecture with random weights (speed does not depend on
the weights). The AC-GANs have random weights (as in the ``sampling`` case). All run under
``torch.inference_mode`` on pre-drawn noise and labels at 9×64×64 with 3 region classes. The issue's
goal: 5,000 VUs in at most 5 minutes, i.e. at least 17 VUs/s. Rows also give the diffusion generator
without guidance (``guidance = 1``: one UNet evaluation per step instead of two). The 5,000-VU row is
extrapolated: 5,000 divided by the VUs/s of one timed batch, per repeat (no 5,000-VU run is timed).

Sizes (``Context.sizes`` keys): ``diffusion.batch`` (quick 16, full 256), ``diffusion.shape`` (default
[9, 64, 64]; random weights where it is not the shipped model's shape).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.cases import Context, Goal, Row, Stats, Unavailable, rate, seconds
from benchmarks.cases.sampling import N_CLASSES, SHAPE, build_generators, flops_per_call

#: The problem-size keys this case reads (``--size KEY=JSON``); the runner refuses others.
SIZE_KEYS: tuple[str, ...] = ("diffusion.batch", "diffusion.shape")

GOAL_VUS = 5000
GOAL_SECONDS = 300.0


def diffusion_generator(ctx: Context, shape: tuple[int, int, int]) -> tuple[Any, str]:
    """The shipped diffusion generator (or a random one of the default architecture) and a description."""
    try:
        from synthvu_core.models import diffusion
        from synthvu_core.models.registry import load_generator
    except ImportError as e:
        raise Unavailable(f"synthvu_core.models.diffusion not importable ({e})") from e
    folder = ctx.root / "models" / "diffusion-phantom"
    if (folder / "generator.safetensors").is_file() and tuple(shape) == SHAPE:
        return load_generator(folder), "diffusion-phantom"
    cfg = diffusion.DiffusionConfig(shape=tuple(shape), n_classes=N_CLASSES)
    return diffusion.DiffusionGenerator(cfg).eval(), "random weights"


def time_rotation(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each function, timed in rotation (the starting one moves every repeat)."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeats):
        for n in names[i % len(names) :] + names[: i % len(names)]:
            times[n].append(seconds(fns[n]))
    return times


def run(ctx: Context) -> list[Row]:
    import torch

    shape = tuple(ctx.size("diffusion.shape", SHAPE, SHAPE))
    batch = int(ctx.size("diffusion.batch", 16, 256))
    gans = {name: pair[0].eval() for name, pair in build_generators(shape, seed=ctx.seed).items()}
    diff, which = diffusion_generator(ctx, shape)
    steps, guidance = diff.sampling_steps, diff.guidance
    g = torch.Generator().manual_seed(ctx.seed)
    y = torch.randint(0, N_CLASSES, (batch,), generator=g)
    z_gan = torch.randn(batch, gans["default"].config.latent_dim, generator=g)
    z_diff = torch.randn(batch, diff.config.latent_dim, generator=g)

    def call(gen: Any, z: Any, w: float | None = None) -> Callable[[], Any]:
        def f() -> Any:
            if w is not None:
                gen.set_sampling(guidance=w)
            with torch.inference_mode():
                return gen(z, y)

        return f

    fns = {"diffusion": call(diff, z_diff, guidance), "diffusion-noguide": call(diff, z_diff, 1.0),
           "default": call(gans["default"], z_gan), "pgan": call(gans["pgan"], z_gan)}
    flops = {
        "diffusion": flops_per_call(fns["diffusion"]) / batch,
        "diffusion-noguide": flops_per_call(fns["diffusion-noguide"]) / batch,
    }
    diff.set_sampling(guidance=guidance)
    ctx.log(
        f"diffusion ({which}): {steps} steps, guidance {guidance}, {flops['diffusion'] / 1e6:.0f} MFLOP per VU; batch "
        f"{batch}"
    )
    vus = {k: rate(batch, v) for k, v in time_rotation(fns, ctx.repeats, ctx.warmup).items()}
    label = f"{'×'.join(str(s) for s in shape)}, batch {batch}"
    extra = {"batch": batch, "model": which, "sampling_steps": steps, "guidance": guidance, "flops_per_vu": flops}
    mflop = f"{flops['diffusion'] / 1e6:.0f} MFLOP per VU"
    return [
        Row(
            f"diffusion sampling {label} ({steps} steps, guidance {guidance:g}; {which})",
            "VUs/s",
            Stats.of(vus["diffusion"]),
            Stats.of(vus["pgan"]),
            "pgan",
            goal=Goal("≥ 17 VUs/s", ">=", 17.0),
            note=mflop,
            extra=extra,
        ),
        Row(
            "diffusion sampling vs the default AC-GAN",
            "VUs/s",
            Stats.of(vus["diffusion"]),
            Stats.of(vus["default"]),
            "default",
        ),
        Row(
            f"diffusion sampling without guidance (guidance 1, {steps} steps)",
            "VUs/s",
            Stats.of(vus["diffusion-noguide"]),
            Stats.of(vus["pgan"]),
            "pgan",
            note=f"{flops['diffusion-noguide'] / 1e6:.0f} MFLOP per VU",
        ),
        Row(
            f"{GOAL_VUS:,} diffusion VUs (one evaluation's sample), extrapolated from one batch's rate",
            "s",
            Stats.of([GOAL_VUS / v for v in vus["diffusion"]]),
            Stats.of([GOAL_VUS / v for v in vus["pgan"]]),
            "pgan",
            higher_is_better=False,
            goal=Goal("≤ 5 min", "<=", GOAL_SECONDS),
            note=f"{GOAL_VUS:,} / VUs/s of one batch of {batch}, per repeat; not a timed {GOAL_VUS:,}-VU run",
        ),
    ]
