"""The slide deck of a sub-volume generator (``report slides MODEL`` where MODEL's card is 3-D): what was trained,
is it useful, does the one attack find its training patients, and a 3-D montage (three orthogonal mid-planes of
generated sub-volumes, one row per class). Numbers are the saved ``report/volume_report.json``'s; the montage is
sampled from the generator (synthetic sub-volumes only: no real image enters a deck). The deck is self-contained
(reveal.js inlined, the montage a data URI), like the VU deck of :mod:`dashboard.slides`.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dashboard.slides import _badge, _esc, _table, reveal_deck

#: Generated sub-volumes per class in the montage, and the seed they are drawn with.
PER_CLASS = 4
MONTAGE_SEED = 0


def volume_report_of(folder: Path, card: dict[str, Any]) -> dict[str, Any]:
    """The folder's sub-volume report; ``ReportError`` where there is none or it is not this generator's."""
    from synthvu_core.errors import ReportError
    from synthvu_core.names import REPORT_DIR, VOLUME_REPORT

    path = Path(folder) / REPORT_DIR / VOLUME_REPORT
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ReportError(f"{path}: no sub-volume report yet; run `python -m synthvu_core evaluate {folder}` "
                          "before making slides") from None
    from synthvu_core.evaluation.volume import report_of

    if not report_of(report, card):
        raise ReportError(f"{path}: written for another generator or dataset; re-run `python -m synthvu_core "
                          f"evaluate {folder}`")
    return report


def montage_png(folder: Path, per_class: int = PER_CLASS, seed: int = MONTAGE_SEED) -> bytes:
    """PNG bytes: one labelled row per class of ``per_class`` generated sub-volumes, each as its sagittal, coronal
    and axial mid-planes with square mm (:func:`dashboard.volumes.orthogonal_tile`)."""
    import io

    from dashboard.volumes import orthogonal_tile, unit_spacing
    from synthvu_core.models.registry import load_generator
    from synthvu_core.models.sampling import montage_image, sample_uint8

    gen = load_generator(folder)
    classes, spacing = list(gen.card["classes"]), unit_spacing(gen.card)
    rows = [[orthogonal_tile(u, spacing) for u in sample_uint8(gen, per_class, position=c, seed=seed + k,
                                                                batch_size=per_class).images]
            for k, c in enumerate(classes)]
    buf = io.BytesIO()
    montage_image(np.array(rows), classes).save(buf, format="PNG")
    return buf.getvalue()


def _ci(s: dict[str, Any], key: str) -> str:
    v, lo, hi = s.get(key), s.get(f"{key}_ci_low"), s.get(f"{key}_ci_high")
    if v is None:
        return "not estimable"
    ci = f" <span class='note'>[{lo:.2f}, {hi:.2f}]</span>" if lo is not None and hi is not None else ""
    return f"<span class='num' data-key='{_esc(key)}'>{v:.3f}</span>{ci}"


def _slides(card: dict[str, Any], report: dict[str, Any], png: bytes) -> list[str]:
    s, c, tr = report["scalars"], report["counts"], card.get("training") or {}
    shape = "×".join(str(n) for n in card["shape"])
    mm = ((card.get("dataset") or {}).get("spacing") or ["?"])[0]
    trained = _table(["", ""], [
        ["sub-volumes", f"{shape} voxels of {_esc(mm)} mm"], ["classes", _esc(", ".join(card["classes"]))],
        ["training sub-volumes", _esc((card.get("dataset") or {}).get("n_train"))],
        ["steps", _esc(f"{tr.get('autoencoder_steps', '?')} autoencoder + {tr.get('diffusion_steps', '?')} UNet")],
    ])
    useful = _table(["", "balanced accuracy"], [
        ["TRTR", _ci(s, "utility.trtr.balanced_accuracy")], ["TSTR", _ci(s, "utility.tstr.balanced_accuracy")],
        ["TRTS", _ci(s, "utility.trts.balanced_accuracy")], ["TSTR / TRTR", _ci(s, "utility.tstr_over_trtr")],
        ["chance", _ci(s, "utility.chance")],
    ])
    priv = report.get("privacy")
    if isinstance(priv, dict):
        leak = f"<p class='lead'>{_badge(priv['level'])}</p><p class='note'>{_esc(priv['text'])}</p>"
    else:
        leak = f"<p class='note'>{_esc(priv or 'not evaluated')}</p>"
    img = base64.b64encode(png).decode()
    return [
        f"<section><h2>What was trained</h2>{trained}</section>",
        f"<section><h2>Is it useful?</h2>{useful}<p class='note'>{_esc(report['usefulness'])}; "
        f"{c.get('real_holdout')} real holdout sub-volumes of {c.get('holdout_patients')} patients</p></section>",
        f"<section><h2>Does it find its training patients?</h2>{leak}</section>",
        "<section><h2>What it generates</h2><img alt='generated sub-volumes, three mid-planes per class' "
        f"style='max-width:100%;image-rendering:pixelated' src='data:image/png;base64,{img}'>"
        "<p class='note'>Generated sub-volumes only: sagittal, coronal and axial mid-planes, one row per class"
        "</p></section>",
    ]


def volume_deck_html(folder: str | Path, title: str = "synthvu: synthetic spine MRI") -> str:
    """The deck of one sub-volume generator folder as one self-contained HTML document."""
    from synthvu_core.models.registry import load_card

    folder = Path(folder)
    card = load_card(folder)
    report = volume_report_of(folder, card)
    made = datetime.now(UTC).strftime("%Y-%m-%d")
    cover = (f"<section><h1>{_esc(title)}</h1><p class='lead'>{_esc(card['name'])}</p><p class='note'>Numbers from "
             f"its saved sub-volume evaluation report · deck made {made}</p></section>")
    slides = [cover, *_slides(card, report, montage_png(folder))]
    return reveal_deck(title, slides)
