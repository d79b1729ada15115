"""Figure: phantom VUs per region beside real VUs, all cut by the same ingestion pipeline.

Usage: ``python -m benchmarks.figures.phantom_vs_real OUT.png [--patients 6] [--real DIR]``

Each row is one VU, its 9 parasagittal slices left to right (64×64 each, anterior left, superior up).
Top block: phantom T2 (C, T, L rows), phantom T1 (L rows); bottom block: real lumbar T2 (chu2015) and
real T1-like water-fat (MyoSegmenTUM) VUs from ``../shared/data/spine-mri`` when present.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from synthvu_core.data.nifti import load_pair
from synthvu_core.data.phantom import write_cohort
from synthvu_core.data.units import ExtractConfig, extract_units

ROOT = Path(__file__).resolve().parents[2]


def _units(pairs, config: ExtractConfig) -> list[tuple[str, np.ndarray]]:
    out = []
    for img, lbl in pairs:
        vol = load_pair(img, lbl)
        ims, rows = extract_units(vol, config)
        out += [(f"{r['patient_id']} {r['level']}", im) for r, im in zip(rows, ims)]
    return out


def _row(vu: np.ndarray) -> np.ndarray:
    """uint8 [C, H, W] -> [H, C*(W+1)] with a 1-pixel black gap."""
    c, h, w = vu.shape
    row = np.zeros((h, c * (w + 1)), np.uint8)
    for k in range(c):
        row[:, k * (w + 1) : k * (w + 1) + w] = vu[k]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "spine-mri")
    args = ap.parse_args()
    config = ExtractConfig()
    rng = np.random.default_rng(args.seed)
    blocks: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for contrast in ("T2", "T1"):
            pairs = write_cohort(Path(tmp) / contrast, args.patients, seed=args.seed, contrast=contrast)
            units = _units(pairs, config)
            regions = ("C", "T", "L") if contrast == "T2" else ("L",)
            for reg in regions:
                pick = [u for u in units if u[0].split()[1][0] == reg]
                sel = rng.choice(len(pick), size=3, replace=False)
                blocks.append((f"phantom {contrast} {reg}", [pick[i] for i in sel]))
    for sub, label in (("chu2015", "real T2 L (chu2015)"), ("myosegmentum", "real T1-FFE L (MyoSegmenTUM)")):
        folder = args.real / sub
        if not folder.is_dir():
            continue
        imgs = sorted(folder.glob("*_img.nii.gz"))[:4]
        units = _units([(i, i.with_name(i.name.replace("_img", "_vert"))) for i in imgs], config)
        sel = rng.choice(len(units), size=min(4, len(units)), replace=False)
        blocks.append((label, [units[i] for i in sel]))

    scale = 2
    rows, labels = [], []
    for name, vus in blocks:
        for tag, vu in vus:
            rows.append(_row(vu))
            labels.append(f"{name}: {tag}")
    h = rows[0].shape[0]
    canvas = np.full((len(rows) * (h + 2), rows[0].shape[1] + 170), 255, np.uint8)
    for i, r in enumerate(rows):
        canvas[i * (h + 2) : i * (h + 2) + h, 170:] = r
    im = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(im)
    for i, t in enumerate(labels):
        draw.text((6, (i * (h + 2) + h // 2) * scale - 6), t, fill=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    im.save(args.out)
    print(f"{args.out}: {len(rows)} VUs")


if __name__ == "__main__":
    main()
