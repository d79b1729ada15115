"""One short GPU measurement: sampling VUs/s and training ms/step of default and ``pgan``, with the speed settings.

``python benchmarks/gpu_check.py [--device cuda] [--out benchmarks/results/gpu.json]``: a few minutes on one GPU
(most of it ``torch.compile``). Random weights and random VUs at 9×64×64 (speed does not depend on them); sampling
at batch 256 under ``torch.inference_mode``, training steps (``Trainer.step``) at batch 32 (``training_ms_per_step``,
as before); each timed after warm-up with ``torch.cuda.synchronize``. Then ``training_speed``: per architecture and
training batch (``--train-batches``, default 32 and 128) the step with each ``--speed`` setting alone, with
bf16+channels-last+fused-adam, with those + compile, and with channels-last+fused-adam+compile (``first_step_s``:
the first call, compiling included); ``dp_ms_per_step``: the default architecture's patient-level DP step (D's
heads private, from a 1-step start on other, public, VUs; and all of D) with and without bf16. ``ratio_vs_pgan``:
pgan's plain step over each default step at the same batch, and each default step's VUs/s over pgan's plain
batch-32 VUs/s (> 1: faster than the study's). A setting that fails is recorded with its error; settings not
started within ``--budget-s`` (480 s) are recorded as not run, so the JSON is always written. Writes the numbers
with the device name, torch and CUDA versions. ``--device cpu`` runs the same script on the CPU (a dry run;
``--tiny``: 1×32×32 VUs, to keep it short).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases.training import random_dataset  # noqa: E402
from synthvu_core.models import acgan  # noqa: E402
from synthvu_core.models.training import TrainConfig, Trainer  # noqa: E402

SHAPE = (9, 64, 64)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int, warmup: int) -> float:
    """Median seconds of one call of ``fn``."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


#: The speed combinations timed per architecture and batch ("none": the default step).
COMBINATIONS: tuple[tuple[str, ...], ...] = (
    (), ("bf16",), ("channels-last",), ("fused-adam",), ("compile",), ("bf16", "channels-last", "fused-adam"),
    ("bf16", "channels-last", "fused-adam", "compile"), ("channels-last", "fused-adam", "compile"),
)
#: The DP combinations timed (compile is refused under DP).
DP_COMBINATIONS: tuple[tuple[str, ...], ...] = ((), ("bf16",), ("bf16", "channels-last", "fused-adam"))


def label(speed: tuple[str, ...]) -> str:
    return "+".join(speed) or "none"


def config(dev: str, arch: str, batch: int, speed: tuple[str, ...] = (), **kw) -> TrainConfig:
    return TrainConfig(arch=arch, batch_size=batch, seed=0, device=dev, steps=10**6, checkpoint_every=0,
                       montage_every=0, speed=speed, **kw)


def time_steps(tr: Trainer, dev: str, repeats: int, warmup: int) -> dict:
    """``ms_per_step`` (median after warm-up), ``first_step_s`` (compiling included) and what ran."""
    t0 = time.perf_counter()
    tr.step()
    _sync(dev)
    first = time.perf_counter() - t0
    ms = 1000 * timed(tr.step, dev, repeats, max(0, warmup - 1))
    out = {"ms_per_step": ms, "first_step_s": first, "vus_per_s": 2 * tr.batch_size / ms * 1000}
    if tr.speed.skipped:
        out["skipped"] = dict(tr.speed.skipped)
    return out


def guarded(make, args) -> dict:
    """:func:`time_steps` of the trainer ``make()`` builds; ``{"error": ...}`` where it fails (the rest still runs).
    Compiled modules start from a fresh compiler cache (no recompile limit reached across architectures)."""
    if time.monotonic() > args.deadline:
        return {"error": f"not run: the --budget-s {args.budget_s:g} s was spent"}
    torch._dynamo.reset()
    try:
        return time_steps(make(), args.device, args.repeats, args.warmup)
    except Exception as err:  # noqa: BLE001 - one failed setting must not cost the whole GPU run
        print(f"failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return {"error": f"{type(err).__name__}: {str(err)[:300]}"}


def training_speed(ds, tmp: Path, args) -> dict:
    """``{arch: {"batch N": {combination: times}}}`` of the non-private step."""
    out: dict = {}
    for arch in args.arches:
        for batch in args.train_batches:
            row = out.setdefault(arch, {}).setdefault(f"batch {batch}", {})
            for speed in COMBINATIONS:
                cfg = config(args.device, arch, batch, speed)
                row[label(speed)] = guarded(lambda cfg=cfg, arch=arch: Trainer(ds, tmp / arch, cfg), args)
                ms = row[label(speed)].get("ms_per_step", float("nan"))
                print(arch, batch, label(speed), f"{ms:.2f} ms", flush=True)
    return out


def dp_speed(ds, tmp: Path, args) -> dict:
    """The default architecture's DP step: D's heads private (from a 1-step start), and all of D."""
    from synthvu_core.models.dp import DPConfig

    public = random_dataset(40, tuple(ds.shape), seed=1, prefix="pub")  # a public prior: other patients
    public.card["recipe"] = {"name": "benchmark-random", "seed": 1}
    cfg = config(args.device, "default", 32, keep_checkpoint=False, weights_dtype="float32")
    start = Trainer(public, tmp / "start", cfg)
    start.step()
    start.finish()
    out: dict = {}
    for layers in ("heads", "all"):
        for speed in DP_COMBINATIONS:
            dp = DPConfig(noise_multiplier=1.0, private_layers=layers)
            init = str(tmp / "start") if layers == "heads" else None
            cfg = config(args.device, "default", 32, speed, dp=dp, init_from=init)
            row = out.setdefault(f"private {layers}", {})
            row[label(speed)] = guarded(lambda cfg=cfg: Trainer(ds, tmp / "dp", cfg), args)
    return out


def ratios(speed: dict, pgan_b32: dict) -> dict:
    """Per default step: ``same_batch``, pgan's plain step over it at the same batch (> 1: faster than the
    study's); ``vus_vs_pgan_b32``, its VUs/s over pgan's plain batch-32 VUs/s (what a larger batch buys)."""
    out: dict = {}
    for b, row in speed.get("default", {}).items():
        pgan = speed.get("pgan", {}).get(b, {}).get("none", {})
        out[b] = {k: {**({"same_batch": pgan["ms_per_step"] / v["ms_per_step"]} if "ms_per_step" in pgan else {}),
                      "vus_vs_pgan_b32": v["vus_per_s"] / pgan_b32["vus_per_s"]}
                  for k, v in row.items() if "ms_per_step" in v}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=256, help="sampling batch (training: 32)")
    p.add_argument("--train-batches", default="32,128", help="training batches of the speed table (default 32,128)")
    p.add_argument("--arches", default="default,pgan", help="architectures of the speed table (default both)")
    p.add_argument("--no-dp", action="store_true", help="leave out the DP steps")
    p.add_argument("--budget-s", type=float, default=480, help="settings not started by then are left out (480)")
    p.add_argument("--tiny", action="store_true", help="1x32x32 VUs (a short CPU dry run, not a measurement)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu.json")
    args = p.parse_args(argv)
    args.train_batches = [int(b) for b in args.train_batches.split(",")]
    args.arches = args.arches.split(",")
    args.deadline = time.monotonic() + args.budget_s
    dev = args.device
    shape = (1, 32, 32) if args.tiny else SHAPE
    out: dict = {
        "device": torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu",
        **({"note": "CPU dry run: checks the script end to end; not a GPU measurement"} if dev == "cpu" else {}),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "shape": list(shape),
        "sampling_batch": args.batch,
        "sampling_vus_per_s": {},
        "training_ms_per_step": {},
    }
    for arch in ("default", "pgan"):
        gen = acgan.build(acgan.architecture(arch, shape, 3), seed=0)[0].to(dev).eval()
        b = args.batch
        z, y = torch.randn(b, gen.config.latent_dim, device=dev), torch.randint(0, 3, (b,), device=dev)
        with torch.inference_mode():
            out["sampling_vus_per_s"][arch] = b / timed(lambda g=gen, z=z, y=y: g(z, y), dev, args.repeats, args.warmup)
    ds = random_dataset(40, shape)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("default", "pgan"):
            tr = Trainer(ds, Path(tmp) / arch, config(dev, arch, 32))
            out["training_ms_per_step"][arch] = 1000 * timed(tr.step, dev, args.repeats, args.warmup)
        if not args.no_dp:  # first: no compiling, so never left out by the time budget
            out["dp_ms_per_step"] = dp_speed(ds, Path(tmp), args)
        out["training_speed"] = training_speed(ds, Path(tmp), args)
        pgan_b32 = {"vus_per_s": 64 / out["training_ms_per_step"]["pgan"] * 1000}
        out["ratio_vs_pgan"] = ratios(out["training_speed"], pgan_b32)
    out["date"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
