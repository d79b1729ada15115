"""Three orthogonal planes of a sub-volume (or of a VU, whose slices are its depth) as pictures with square mm.

A unit ``[D, H, W]`` has the VU axes: ``D`` left -> right, ``H`` superior -> inferior, ``W`` anterior ->
posterior. The sagittal plane is ``[H, W]`` at a depth, the coronal plane ``[H, D]`` at a column (the patient's
left on the picture's left) and the axial plane ``[W, D]`` at a row (anterior up). Each picture is enlarged with
nearest neighbours so that one pixel is the same number of mm along both of its axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

PLANES: tuple[str, ...] = ("sagittal", "coronal", "axial")
#: Axis of ``[D, H, W]`` that each plane's slider moves along.
PLANE_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 2, "axial": 1}


def _stretch(img: np.ndarray, mm_rows: float, mm_cols: float, px_per_mm: float) -> np.ndarray:
    rows = max(1, int(round(mm_rows * px_per_mm)))
    cols = max(1, int(round(mm_cols * px_per_mm)))
    r = np.minimum((np.arange(img.shape[0] * rows) // rows), img.shape[0] - 1)
    c = np.minimum((np.arange(img.shape[1] * cols) // cols), img.shape[1] - 1)
    return img[r][:, c]


def plane(unit: np.ndarray, name: str, index: int, spacing: Sequence[float] = (1.0, 1.0, 1.0),
          px_per_mm: float = 2.0) -> np.ndarray:
    """One plane of ``unit`` (uint8 ``[D, H, W]``) at ``index`` along :data:`PLANE_AXIS`, as uint8 with square mm.

    ``spacing`` is the voxel size in mm along ``(D, H, W)``; ``px_per_mm`` the picture's pixels per mm.
    """
    if name not in PLANES:
        raise ValueError(f"unknown plane {name!r}; choose one of {', '.join(PLANES)}")
    axis = PLANE_AXIS[name]
    index = int(np.clip(index, 0, unit.shape[axis] - 1))
    sd, sh, sw = (float(s) for s in spacing)
    if name == "sagittal":
        img, mm = unit[index], (sh, sw)
    elif name == "coronal":
        img, mm = unit[:, :, index].T, (sh, sd)
    else:
        img, mm = unit[:, index, :].T, (sw, sd)
    return _stretch(np.ascontiguousarray(img, dtype=np.uint8), *mm, px_per_mm)


def unit_spacing(card: dict) -> tuple[float, float, float]:
    """Voxel size (mm) along ``(D, H, W)`` of a generator card (``dataset.spacing``) or a dataset card's extract."""
    spacing = (card.get("dataset") or {}).get("spacing")
    if spacing and len(spacing) == 3:
        return tuple(float(s) for s in spacing)  # type: ignore[return-value]
    extract = card.get("extract") or {}
    if extract.get("unit") == "subvolume":
        s = float(extract["slice_mm"])
        return (s, s, s)
    return (float(extract.get("slice_mm", 2.0)), 1.0, 1.0)


def spacing_text(card: dict, spacing: Sequence[float] | None = None) -> str:
    """The voxel size of :func:`unit_spacing` in words: exact for a sub-volume; for a VU the in-plane size is
    labelled as the dataset's median (a VU's pixel follows its disc, so it differs by class: the card records
    one median, :func:`synthvu_core.models.sampling.spacing_is_median`)."""
    from synthvu_core.models.sampling import spacing_is_median

    spacing = unit_spacing(card) if spacing is None else spacing
    mm = " × ".join(f"{float(s):g}" for s in spacing)
    if "spacing" in (card.get("dataset") or {}) and spacing_is_median(card):
        return (f"{mm} mm, approximate: the in-plane size is the median of the dataset; a VU's pixel follows its "
                "disc's size, so it differs from level to level")
    return f"{mm} mm"


def volume_report_lines(folder: str | Path, card: dict) -> list[str] | None:
    """The saved ``report/volume_report.json`` of a sub-volume generator as ``report show`` prints it; None where
    ``card`` is no sub-volume generator's or it has no report yet; ``ReportError`` where the report is stale or
    unreadable."""
    from synthvu_core.evaluation.volume import is_volume_card, load_volume_report, measured_line, summary_lines

    report = load_volume_report(folder, card) if is_volume_card(card) else None
    return None if report is None else [measured_line(report), *summary_lines(report)]


def no_vu_report_note(folder: str | Path, card: dict) -> str:
    """Why a generator is not on the Trade-offs page's VU axes: "no report yet", or, for a sub-volume generator,
    where its report is (or that it has none yet, or that its report is stale)."""
    from synthvu_core.errors import SynthVUError
    from synthvu_core.evaluation.volume import is_volume_card

    if not is_volume_card(card):
        return "no report yet"
    try:
        found = volume_report_lines(folder, card)
    except SynthVUError:
        return "a sub-volume generator whose sub-volume report is stale or unreadable: see the Volumes page"
    if found is None:
        return "a sub-volume generator without a sub-volume report yet (run `python -m synthvu_core evaluate MODEL`)"
    return ("a sub-volume generator: its report (3-D utility and one attack) is shown on the Volumes page, not on "
            "these VU axes")


def orthogonal_tile(unit: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0), px_per_mm: float = 1.0,
                    gap: int = 2) -> np.ndarray:
    """The three mid-planes of ``unit`` (uint8 ``[D, H, W]``) side by side with square mm: sagittal, coronal,
    axial, each centred in the tallest plane's height, ``gap`` black pixels between them (uint8 ``[rows, cols]``)."""
    mids = {name: unit.shape[PLANE_AXIS[name]] // 2 for name in PLANES}
    pics = [plane(unit, name, mids[name], spacing, px_per_mm) for name in PLANES]
    rows = max(p.shape[0] for p in pics)
    parts: list[np.ndarray] = []
    for i, p in enumerate(pics):
        top = (rows - p.shape[0]) // 2
        parts.append(np.pad(p, ((top, rows - p.shape[0] - top), (0, 0))))
        if i < len(pics) - 1:
            parts.append(np.zeros((rows, gap), np.uint8))
    return np.concatenate(parts, axis=1)


#: The browser-side viewer: the unit travels once (base64 uint8), each slider redraws its plane in the page itself.
_VIEWER_JS = """
const V = Uint8Array.from(atob(DATA.b64), c => c.charCodeAt(0));
const [D, H, W] = DATA.shape, [SD, SH, SW] = DATA.spacing, PX = DATA.px_per_mm;
const at = (d, h, w) => V[(d * H + h) * W + w];
// [rows, cols, mm per row, mm per col, voxel (r, c) at slice i]: the same planes as dashboard/volumes.plane
const PLANES = {
  sagittal: [H, W, SH, SW, D, (i, r, c) => at(i, r, c)],
  coronal: [H, D, SH, SD, W, (i, r, c) => at(c, r, i)],
  axial: [W, D, SW, SD, H, (i, r, c) => at(c, i, r)],
};
function values(name, i) {  // the plane's voxels, row by row (window.planeValues: what the tests compare)
  const [rows, cols, , , , get] = PLANES[name], out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = get(i, r, c);
  return out;
}
window.planeValues = (name, i) => Array.from(values(name, i));
function draw(name, i) {
  const [rows, cols, mr, mc, n] = PLANES[name], v = values(name, i);
  const small = document.createElement("canvas");
  small.width = cols; small.height = rows;
  const ctx = small.getContext("2d"), img = ctx.createImageData(cols, rows);
  for (let k = 0; k < v.length; k++) {
    img.data[4 * k] = img.data[4 * k + 1] = img.data[4 * k + 2] = v[k]; img.data[4 * k + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const big = document.getElementById("c-" + name);
  big.width = Math.round(cols * mc * PX); big.height = Math.round(rows * mr * PX);
  const g = big.getContext("2d");
  g.imageSmoothingEnabled = false;
  g.drawImage(small, 0, 0, big.width, big.height);
  big.dataset.slice = String(i + 1);
  document.getElementById("l-" + name).textContent = `${name} ${i + 1} of ${n}`;
}
for (const name of Object.keys(PLANES)) {
  const s = document.getElementById("s-" + name);
  s.addEventListener("input", () => draw(name, Number(s.value) - 1));
  draw(name, Number(s.value) - 1);
}
"""


#: Pixels of the viewer's largest plane side (the scale of :func:`viewer_px_per_mm`).
VIEWER_SIDE_PX = 256


def viewer_px_per_mm(shape: Sequence[int], spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """The viewer's scale: its longest side in mm drawn over :data:`VIEWER_SIDE_PX` pixels."""
    return VIEWER_SIDE_PX / max(float(n) * float(s) for n, s in zip(shape, spacing))


def viewer_html(unit: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0), px_per_mm: float | None = None) -> str:
    """A self-contained HTML viewer of ``unit`` (uint8 ``[D, H, W]``): the three planes of :func:`plane` with a
    slider each, drawn in the browser (no server round trip per slider move; nearest-neighbour, square mm;
    ``px_per_mm`` None: :func:`viewer_px_per_mm`)."""
    import base64
    import json

    vol = np.ascontiguousarray(unit, dtype=np.uint8)
    px = viewer_px_per_mm(vol.shape, spacing) if px_per_mm is None else float(px_per_mm)
    data = {"b64": base64.b64encode(vol.tobytes()).decode(), "shape": list(vol.shape),
            "spacing": [float(s) for s in spacing], "px_per_mm": px}
    panels = "".join(
        f'<div class="p"><label for="s-{name}">{name.capitalize()} slice</label>'
        f'<input type="range" id="s-{name}" min="1" max="{vol.shape[PLANE_AXIS[name]]}" '
        f'value="{(vol.shape[PLANE_AXIS[name]] + 1) // 2}"><canvas id="c-{name}"></canvas>'
        f'<div class="cap">synthetic · <span id="l-{name}"></span></div></div>'
        for name in PLANES
    )
    style = ("body{margin:0;font-family:sans-serif;font-size:14px;color:#31333f}.row{display:flex;gap:16px}"
             ".p{flex:1;display:flex;flex-direction:column;align-items:flex-start;gap:6px}"
             "canvas{max-width:100%;height:auto;image-rendering:pixelated}"
             "input{width:100%}.cap{color:#808495;font-size:13px}")
    return (f"<!doctype html><html><head><style>{style}</style></head><body><div class=\"row\">{panels}</div>"
            f"<script>const DATA = {json.dumps(data)};{_VIEWER_JS}</script></body></html>")


def viewer_height(shape: Sequence[int], spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> int:
    """Pixels the viewer of :func:`viewer_html` (default scale) needs: its tallest plane, the slider and captions."""
    d, h, w = (int(s) for s in shape)
    sd, sh, sw = (float(s) for s in spacing)
    return int(round(max(h * sh, w * sw) * viewer_px_per_mm(shape, spacing))) + 100
