"""The network-forward floor of whole-process sampling: the generator's forward passes alone, in-process.

``python -m benchmarks.forward_floor --n 5000 --out floor.json``: loads the shipped ``acgan-phantom`` as the
``sample`` command does (the same memory settings, channels-last weights, ``torch.inference_mode``, batch 256),
draws the labels and noise of ``--seed`` up front, runs one batch untimed (oneDNN builds its kernels) and then
times only ``gen(z, labels)`` over all N VUs: no finiteness check, no uint8 conversion, no writing, no imports.
Writes ``{"n" (VUs forwarded), "batch", "forward_cpu_s", "forward_wall_s", "threads"}`` to ``--out``. The forward
always runs on one torch thread (set here, whatever ``OMP_NUM_THREADS`` says), and its CPU seconds are the whole
process's (``time.process_time``: every thread's), so no thread's work goes uncounted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def forward_seconds(model: Path, n: int, batch: int, seed: int = 0) -> dict[str, float]:
    """CPU (process, all threads) and wall seconds of the forward passes that sample ``n`` VUs of ``model`` in
    batches of ``batch``, on one torch thread (the caller's thread count is restored afterwards)."""
    import torch

    from synthvu_core.models.registry import load_generator
    from synthvu_core.models.sampling import _draw_labels, keep_freed_memory

    keep_freed_memory()
    gen = load_generator(model)
    gen.eval()
    gen.to(memory_format=torch.channels_last)  # as sample_batches does on CPU
    g, labels = _draw_labels(gen.card, n, None, seed)
    z = torch.randn(n, int(gen.card["latent_dim"]), generator=g)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            gen(z[:batch], labels[:batch])  # untimed: oneDNN's first call builds its kernels
            done = 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for s in range(0, n, batch):
                done += len(gen(z[s : s + batch], labels[s : s + batch]))
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    return {"n": done, "batch": batch, "forward_cpu_s": cpu, "forward_wall_s": wall, "threads": threads}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "acgan-phantom")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    result = forward_seconds(a.model, a.n, a.batch)
    a.out.write_text(json.dumps(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
