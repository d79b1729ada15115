"""Time-to-quality curve: TSTR/TRTR against CPU minutes of training, one line per variant, from a results JSON.

Usage: ``python -m benchmarks.figures.quality_curve RESULTS.json OUT.png``
(``RESULTS.json`` from ``python -m benchmarks --long``; the ``quality`` case's histories).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))
SIZE, MARGIN = (720, 420), (60, 30, 20, 50)  # left, top, right, bottom


def histories(results: dict) -> dict[str, list[dict]]:
    """Variant name -> its checks (steps, cpu_minutes, tstr_over_trtr, ...)."""
    rows = results["cases"]["quality"]["rows"]
    return {r["metric"].split(":")[0]: r["extra"]["history"] for r in rows if r.get("extra")}


def draw(curves: dict[str, list[dict]], target: float = 0.9) -> Image.Image:
    """The chart: x = CPU minutes (0 .. the longest run), y = TSTR/TRTR (0 .. 1), dotted goal line."""
    img = Image.new("RGB", SIZE, "white")
    d = ImageDraw.Draw(img)
    left, top, right, bottom = MARGIN
    w, h = SIZE[0] - left - right, SIZE[1] - top - bottom
    xmax = max((p["cpu_minutes"] for c in curves.values() for p in c), default=1.0)

    def xy(x: float, y: float) -> tuple[float, float]:
        return left + w * x / xmax, top + h * (1 - y)

    d.rectangle([left, top, left + w, top + h], outline=(120, 120, 120))
    for y in (0.0, 0.25, 0.5, 0.75, 1.0):
        d.text((8, xy(0, y)[1] - 6), f"{y:.2f}", fill="black")
    for x in range(0, int(xmax) + 1, 2):
        d.text((xy(x, 0)[0] - 4, top + h + 6), str(x), fill="black")
    d.text((left + w // 2 - 80, SIZE[1] - 20), "CPU minutes of training (1 thread)", fill="black")
    d.text((left + 4, top + 4), "TSTR / TRTR (one classifier seed per check)", fill="black")
    gx0, gy = xy(0, target)
    for x in range(int(gx0), left + w, 8):
        d.line([x, gy, x + 4, gy], fill=(150, 150, 150))
    d.text((left + w - 70, gy - 14), f"goal {target:.2f}", fill=(100, 100, 100))
    for i, (name, pts) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        line = [xy(p["cpu_minutes"], p["tstr_over_trtr"] or 0.0) for p in pts]
        if len(line) > 1:
            d.line(line, fill=colour, width=3)
        for x, y in line:
            d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
        d.text((left + w - 160, top + h - 60 + 16 * i), f"-- {name}", fill=colour)
    return img


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    p.add_argument("out", type=Path)
    a = p.parse_args()
    draw(histories(json.loads(a.results.read_text()))).save(a.out)


if __name__ == "__main__":
    main()
