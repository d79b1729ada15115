"""One short GPU measurement: sampling VUs/s and training ms/step of default and ``pgan``.

``python benchmarks/gpu_check.py [--device cuda] [--out benchmarks/results/gpu.json]``: well under a
minute on one GPU. Random weights and random VUs at 9×64×64 (speed does not depend on them); sampling at
batch 256 under ``torch.inference_mode``, training steps (``Trainer.step``) at batch 32; each timed
after warm-up with ``torch.cuda.synchronize``. Writes the numbers with the device name, torch and CUDA
versions. ``--device cpu`` runs the same script on the CPU (a dry run).
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


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=256, help="sampling batch (training: 32)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu.json")
    args = p.parse_args(argv)
    dev = args.device
    out: dict = {
        "device": torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "shape": list(SHAPE),
        "sampling_batch": args.batch,
        "sampling_vus_per_s": {},
        "training_ms_per_step": {},
    }
    for arch in ("default", "pgan"):
        gen = acgan.build(acgan.architecture(arch, SHAPE, 3), seed=0)[0].to(dev).eval()
        b = args.batch
        z, y = torch.randn(b, gen.config.latent_dim, device=dev), torch.randint(0, 3, (b,), device=dev)
        with torch.inference_mode():
            out["sampling_vus_per_s"][arch] = b / timed(lambda g=gen, z=z, y=y: g(z, y), dev, args.repeats, args.warmup)
    ds = random_dataset(40, SHAPE)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("default", "pgan"):
            tr = Trainer(
                ds,
                Path(tmp) / arch,
                TrainConfig(
                    arch=arch, batch_size=32, seed=0, device=dev, steps=10**6, checkpoint_every=0, montage_every=0
                ),
            )
            out["training_ms_per_step"][arch] = 1000 * timed(tr.step, dev, args.repeats, args.warmup)
    out["date"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
