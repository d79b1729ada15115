"""Reference for whole-process sampling: a plain script with the study's generator.

``python benchmarks/reference_sampling.py N OUT.npz``: builds the published ``pgan`` generator at
9×64×64 with 3 classes (random weights: speed does not depend on training), draws N labels and
noise, runs it in batches of 256 under ``torch.no_grad`` into one float32 array, converts that to
uint8 with numpy and saves images and labels with ``numpy.savez`` (uncompressed). This is what a
user would write without the toolkit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthvu_core.models import acgan  # noqa: E402


def main(n: int, out: str) -> None:
    gen, _ = acgan.build(acgan.architecture("pgan", (9, 64, 64), 3), seed=0)
    gen.eval()
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (n,), generator=g)
    z = torch.randn(n, gen.config.latent_dim, generator=g)
    images = np.empty((n, 9, 64, 64), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, n, 256):
            images[s : s + 256] = gen(z[s : s + 256], labels[s : s + 256]).numpy()
    np.savez(out, images=np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8), labels=labels.numpy())


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
