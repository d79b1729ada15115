"""Figure: real demo VUs beside a generator's synthetic VUs, one row per class.

Usage: ``python -m benchmarks.figures.real_vs_synthetic OUT.png [--model acgan-phantom] [--n 6] [--slice mid|all]``

Left block: ``--n`` real VUs of the class from the demo dataset's holdout split (patients the generator
never saw); right block: ``--n`` synthetic VUs sampled for that class (seed 0). With ``--slice mid`` each
tile is the middle parasagittal slice; with ``--slice all`` each row is one VU's 9 slices, real then
synthetic, two VUs per class. Grey levels are the stored ones ([-1, 1] to 0-255, no rescaling).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from synthvu_core.data.build import demo_dataset
from synthvu_core.data.dataset import to_uint8
from synthvu_core.models.registry import load_generator, resolve
from synthvu_core.models.sampling import sample

GAP, LABEL_W, HEAD_H = 2, 28, 16


def _canvas(rows: list[tuple[str, list[np.ndarray], list[np.ndarray]]], headers: tuple[str, str]) -> Image.Image:
    h, w = rows[0][1][0].shape
    n_left, n_right = len(rows[0][1]), len(rows[0][2])
    width = LABEL_W + (n_left + n_right) * (w + GAP) + 3 * GAP
    height = HEAD_H + len(rows) * (h + GAP)
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    x_right = LABEL_W + n_left * (w + GAP) + 3 * GAP
    draw.text((LABEL_W, 2), headers[0], fill=0)
    draw.text((x_right, 2), headers[1], fill=0)
    for r, (name, left, right) in enumerate(rows):
        y = HEAD_H + r * (h + GAP)
        draw.text((2, y + h // 2 - 5), name, fill=0)
        for i, tile in enumerate(left):
            img.paste(Image.fromarray(to_uint8(tile)), (LABEL_W + i * (w + GAP), y))
        for i, tile in enumerate(right):
            img.paste(Image.fromarray(to_uint8(tile)), (x_right + i * (w + GAP), y))
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", default="acgan-phantom")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--slice", choices=["mid", "all"], default="mid")
    args = ap.parse_args()

    gen = load_generator(resolve(args.model))
    classes = list(gen.card["classes"])
    ds = demo_dataset(gen.card["dataset"]["fingerprint"])
    holdout = ds.indices("holdout")
    labels = ds.labels(gen.card["scheme"], classes)[holdout]
    rng = np.random.default_rng(0)
    per = args.n if args.slice == "mid" else 2
    rows = []
    for k, name in enumerate(classes[:12]):
        real = ds.images[rng.choice(holdout[labels == k], per, replace=False)].astype(np.float32) / 127.5 - 1.0
        syn = sample(gen, per, position=name, seed=0).images
        if args.slice == "mid":
            c = real.shape[1] // 2
            rows.append((name, list(real[:, c]), list(syn[:, c])))
        else:
            for j in range(per):
                rows.append((name, list(real[j]), list(syn[j])))
    headers = ("real (holdout patients)", f"synthetic ({args.model})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _canvas(rows, headers).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
