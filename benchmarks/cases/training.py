"""Training step time: default vs ``pgan`` at the same batch (32) and output size, and DP-SGD vs non-DP.

Steps are ``synthvu_core.models.training.Trainer.step`` (one D update on a real and a fake batch, one G
update) on a dataset of random VUs (speed does not depend on image content). The DP row trains the
default architecture with DP-SGD on D (Opacus, noise multiplier 1.0, Poisson sampling of expected
batch 32) against the same architecture without DP. The channels-last row trains the default architecture
with G, its moving average and D in channels-last memory layout (``Module.to(memory_format=...)``) against
the usual layout: a setting that needs no change to the training code.

Sizes: ``training.batch`` (32), ``training.steps`` per timed repeat (quick 1, full 5),
``training.shape`` (quick [9, 32, 32], full [9, 64, 64]), ``training.patients`` (quick 12, full 40; 8 VUs each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.cases import Context, Row, Stats, Unavailable, millis, time_pair

#: The problem-size keys this case reads (``--size KEY=JSON``); the runner refuses others.
SIZE_KEYS: tuple[str, ...] = ("training.batch", "training.steps", "training.shape", "training.patients")

LEVELS = ("C3/C4", "C5/C6", "T4/T5", "T8/T9", "T11/T12", "L1/L2", "L3/L4", "L4/L5")
REGIONS = ("C", "C", "T", "T", "T", "L", "L", "L")


def random_dataset(n_patients: int, shape: tuple[int, int, int], seed: int = 0, prefix: str = "sub") -> Any:
    """A VUDataset of uniform random uint8 VUs ``[n_patients * 8, C, H, W]`` with C/T/L levels (patients
    ``{prefix}-0000`` ...)."""
    import numpy as np

    from synthvu_core.data.dataset import VUDataset

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_patients * len(LEVELS), *shape), dtype=np.uint8)
    rows = []
    for p in range(n_patients):
        for level, region in zip(LEVELS, REGIONS):
            rows.append({
                "patient_id": f"{prefix}-{p:04d}", "level": level, "region": region,
                "source": f"{prefix}-{p:04d}_img.nii.gz",
                "center_vox_0": 0, "center_vox_1": 0, "center_vox_2": 0, "center_world_x": 0.0,
                "center_world_y": 0.0, "center_world_z": 0.0, "spacing_mm": 1.0, "slice_mm": 1.0, "crop_mm": 64.0,
            })
    return VUDataset.from_units(images, rows)


def trainer(dataset: Any, out: Path, *, arch: str, batch: int, seed: int, dp: bool = False) -> Any:
    from synthvu_core.models.dp import DPConfig
    from synthvu_core.models.training import TrainConfig, Trainer

    cfg = TrainConfig(arch=arch, batch_size=batch, seed=seed, device="cpu", steps=10**6, checkpoint_every=0,
                      montage_every=0, dp=DPConfig(noise_multiplier=1.0) if dp else None)
    return Trainer(dataset, out, cfg)


def run(ctx: Context) -> list[Row]:
    try:
        from synthvu_core.models import training  # noqa: F401
    except ImportError as e:
        raise Unavailable(f"synthvu_core.models.training not importable ({e})") from e
    batch = int(ctx.size("training.batch", 32, 32))
    k = int(ctx.size("training.steps", 1, 5))
    shape = tuple(ctx.size("training.shape", (9, 32, 32), (9, 64, 64)))
    ds = random_dataset(int(ctx.size("training.patients", 12, 40)), shape, seed=ctx.seed)
    t = {
        name: trainer(ds, ctx.workdir / name, arch=arch, batch=batch, seed=ctx.seed, dp=dp)
        for name, arch, dp in (("default", "default", False), ("pgan", "pgan", False), ("default-dp", "default", True),
                               ("default-cl", "default", False))
    }
    import torch

    for m in (t["default-cl"].G, t["default-cl"].G_ema, t["default-cl"].D):
        if m is not None:
            m.to(memory_format=torch.channels_last)

    def steps(name: str) -> Any:
        return lambda: [t[name].step() for _ in range(k)]

    t_def, t_pgan = time_pair(steps("default"), steps("pgan"), repeats=ctx.repeats, warmup=ctx.warmup)
    assert t_pgan is not None
    label = "×".join(str(s) for s in shape)
    extra = {"batch": batch, "steps_per_repeat": k, "n_train": t["default"].n_train}
    rows = [
        Row(
            f"training step, batch {batch}, {label}",
            "ms/step",
            Stats.of(per_step(t_def, k)),
            Stats.of(per_step(t_pgan, k)),
            "pgan",
            higher_is_better=False,
            note="D on real + fake, then G",
            extra=extra,
        ),
    ]
    t_cl, t_nchw = time_pair(steps("default-cl"), steps("default"), repeats=ctx.repeats, warmup=ctx.warmup)
    assert t_nchw is not None
    rows.append(
        Row(
            f"training step, channels-last (default), batch {batch}",
            "ms/step",
            Stats.of(per_step(t_cl, k)),
            Stats.of(per_step(t_nchw, k)),
            "default layout",
            higher_is_better=False,
            note="G, moving average and D in NHWC memory layout",
        )
    )
    dp_metric = f"DP-SGD training step (default), batch {batch}"
    try:
        t_dp, t_plain = time_pair(steps("default-dp"), steps("default"), repeats=ctx.repeats, warmup=ctx.warmup)
    except Exception as e:  # report the failure in its row; the non-DP numbers stand
        rows.append(
            Row.missing(dp_metric, "ms/step", f"DP step fails: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
        )
        return rows
    assert t_plain is not None
    rows.append(
        Row(
            dp_metric,
            "ms/step",
            Stats.of(per_step(t_dp, k)),
            Stats.of(per_step(t_plain, k)),
            "default without DP",
            higher_is_better=False,
            note="Opacus per-sample clipping + noise on D; ratio = DP overhead",
        )
    )
    return rows


def per_step(times: list[float], k: int) -> list[float]:
    return millis([x / k for x in times])
