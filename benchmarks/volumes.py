"""Sampling speed, peak memory and training speed of the 3-D latent diffusion generator (``--arch diffusion3d``).

``python -m benchmarks.volumes [--device cpu|cuda] [--shape 32,128,128] [--out FILE.json]``

* **sampling**: one sub-volume of ``--shape`` (default 32 x 128 x 128) of one class, ``--steps`` flow steps with
  guidance ``--guidance`` (two UNet evaluations per step), timed per phase (flow, decode), decoded whole and in
  slabs of ``--slab`` latent rows (:func:`synthvu_core.models.diffusion.decode_slabs`);
* **peak memory**: on CPU each mode runs in a fresh child process and reports its peak resident set (``ru_maxrss``)
  and the rise over the process after loading the model; on CUDA ``torch.cuda.max_memory_allocated``;
* **training**: seconds per autoencoder step and per UNet step at ``--train-shape`` / ``--train-batch``.

The generator is ``models/diffusion3d-phantom`` where present (its weights; the networks are convolutional, so the
same weights sample a larger shape), else the ``diffusion3d`` architecture with random weights: speed and memory
do not depend on the weights. CPU times are process CPU seconds on ``--threads`` threads (wall time is distorted
on a shared machine); CUDA times are wall seconds after ``torch.cuda.synchronize``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "diffusion3d-phantom"


def _shape(text: str) -> tuple[int, int, int]:
    d, h, w = (int(x) for x in text.replace("x", ",").split(","))
    return d, h, w


def build_generator(shape: tuple[int, int, int], steps: int, guidance: float) -> tuple[Any, str]:
    """The shipped 3-D generator's weights at ``shape`` (or random weights of the default architecture)."""
    from synthvu_core.models import diffusion
    from synthvu_core.models.diffusion_training import three_d_defaults

    if (SHIPPED / "generator.safetensors").is_file():
        from synthvu_core.models.registry import load_card, read_weights

        card = load_card(SHIPPED)
        arch = {**card["architecture"], "shape": shape, "n_classes": len(card["classes"])}
        gen = diffusion.DiffusionGenerator(diffusion.DiffusionConfig.from_dict(arch))
        gen.load_state_dict(read_weights(SHIPPED / "generator.safetensors"))
        what = "diffusion3d-phantom weights"
    else:
        cfg = diffusion.DiffusionConfig(name="diffusion3d", shape=shape, n_classes=3,
                                        **three_d_defaults("diffusion3d"))
        gen, what = diffusion.DiffusionGenerator(cfg), "random weights"
    gen.set_sampling(steps=steps, guidance=guidance)
    return gen.eval(), what


class Clock:
    """CPU seconds of this process, or wall seconds after a CUDA synchronise."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def sample_once(args: argparse.Namespace, slab: int | None) -> dict[str, Any]:
    """One sub-volume: seconds of flow and decode, peak memory (this process)."""
    import torch

    torch.set_num_threads(args.threads)
    gen, what = build_generator(args.shape, args.steps, args.guidance)
    gen.to(args.device)
    gen.slab = slab
    clock = Clock(args.device)
    base = _rss_mib()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated() / 2**20
    z = torch.randn(1, gen.config.latent_dim, generator=torch.Generator().manual_seed(0)).to(args.device)
    y = torch.zeros(1, dtype=torch.long, device=args.device)
    with torch.inference_mode():
        t0 = clock.now()
        lat = gen.latents(z, y)
        t1 = clock.now()
        vol = gen.decode(lat)
        t2 = clock.now()
    out = {"weights": what, "shape": list(args.shape), "latent_shape": list(gen.config.latent_shape),
           "steps": args.steps, "guidance": args.guidance, "slab": slab, "flow_s": round(t1 - t0, 3),
           "decode_s": round(t2 - t1, 3), "total_s": round(t2 - t0, 3), "output": list(vol.shape)}
    if args.device.startswith("cuda"):
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["peak_gpu_over_weights_mib"] = round(out["peak_gpu_mib"] - base_gpu, 1)
    else:
        out["peak_rss_mib"] = round(_rss_mib(), 1)
        out["rss_after_load_mib"] = round(base, 1)
    return out


def train_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per autoencoder step and per UNet step (Adam) at the training shape and batch."""
    import torch

    from synthvu_core.models import diffusion
    from synthvu_core.models.diffusion_training import three_d_defaults

    torch.set_num_threads(args.threads)
    cfg = diffusion.DiffusionConfig(name="diffusion3d", shape=args.train_shape, n_classes=3,
                                    **three_d_defaults("diffusion3d"))
    ae, unet = diffusion.build(cfg)
    ae.to(args.device), unet.to(args.device)
    clock, b = Clock(args.device), args.train_batch
    x = torch.rand(b, 1, *args.train_shape, device=args.device) * 2 - 1
    z = torch.randn(b, *cfg.latent_shape, device=args.device)
    opts = torch.optim.Adam(ae.parameters()), torch.optim.Adam(unet.parameters())
    out: dict[str, Any] = {"train_shape": list(args.train_shape), "train_batch": b}

    def ae_step() -> None:
        mu, sigma = ae.encode(x)
        loss = (ae.decode(mu + sigma * torch.randn_like(sigma)) - x).abs().mean()
        opts[0].zero_grad(), loss.backward(), opts[0].step()

    def unet_step() -> None:
        t = torch.rand(b, device=args.device) * 1000
        loss = unet(z, t, class_labels=torch.zeros(b, dtype=torch.long, device=args.device)).pow(2).mean()
        opts[1].zero_grad(), loss.backward(), opts[1].step()

    for name, step in (("autoencoder", ae_step), ("unet", unet_step)):
        step()  # warm-up
        t0 = clock.now()
        for _ in range(args.train_steps):
            step()
        out[f"{name}_s_per_step"] = round((clock.now() - t0) / args.train_steps, 3)
    if args.device.startswith("cuda"):
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _child(args: argparse.Namespace, mode: str, slab: int | None) -> dict[str, Any]:
    """Run one measurement in a fresh process (so its peak memory is its own)."""
    cmd = [sys.executable, "-m", "benchmarks.volumes", "--child", mode, "--device", args.device,
           "--shape", ",".join(map(str, args.shape)), "--steps", str(args.steps), "--guidance", str(args.guidance),
           "--threads", str(args.threads), "--train-shape", ",".join(map(str, args.train_shape)),
           "--train-batch", str(args.train_batch), "--train-steps", str(args.train_steps)]
    cmd += ["--slab", str(slab or 0)]  # 0: decode the whole volume at once
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.volumes", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--shape", type=_shape, default=(32, 128, 128))
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--slab", type=int, default=4, help="latent rows per decoded slab (the slab run; 0: whole)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    p.add_argument("--train-shape", type=_shape, default=(16, 64, 64))
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--out", default=None, help="write the results as JSON here too")
    p.add_argument("--child", choices=("sample", "train"), default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child == "sample":
        print(json.dumps(sample_once(args, args.slab or None)))
        return 0
    if args.child == "train":
        print(json.dumps(train_speed(args)))
        return 0
    import torch

    results: dict[str, Any] = {"device": args.device, "threads": args.threads, "torch": torch.__version__,
                               "clock": "wall s after synchronize" if args.device.startswith("cuda") else "CPU s"}
    if args.device.startswith("cuda"):
        results["gpu"] = torch.cuda.get_device_name(0)
    runs = [("sample_whole", "sample", None), ("sample_slabs", "sample", args.slab)]
    runs += [] if args.skip_training else [("training", "train", None)]
    for key, mode, slab in runs:
        results[key] = _child(args, mode, slab)
        print(json.dumps({key: results[key]}), flush=True)  # each as it comes: a long run shows its progress
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
