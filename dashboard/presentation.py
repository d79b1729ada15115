"""The downloadable report: one self-contained HTML file (no streamlit, opens offline).

plotly.js is inlined once, in the first figure; later figures reuse it. Tables are plain HTML.
In public mode the file holds what the public dashboard shows: aggregate numbers, the UMAP with
real VUs as a density, no patient identifiers.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dashboard import figures, style
from dashboard.summary import (
    ATTACK_NAMES,
    SPACES,
    UTILITY_SETTINGS,
    ReportView,
    attack_rows,
    attacks_present,
    composed_short,
    control_rows,
    epsilon_text,
    fmt,
    headline,
    power_rows,
    recall_rows,
    release_sentence,
    source_caption,
    source_table,
    untested_sources,
    usefulness_box,
    usefulness_of,
    verdict,
)
from synthvu_core.records import epsilon_value

if TYPE_CHECKING:
    import plotly.graph_objects as go

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; font-size: 18px; margin: 2rem auto; \
max-width: 1200px; color: #1a202c; }
h1 { font-size: 2.2rem; } h2 { font-size: 1.6rem; margin-top: 2.5rem; border-bottom: 2px solid #2b6cb0; }
table { border-collapse: collapse; margin: 1rem 0; } \
td, th { border: 1px solid #cbd5e0; padding: .35rem .7rem; text-align: right; }
th { background: #edf2f7; } td:first-child, th:first-child { text-align: left; }
.verdict { padding: 1rem; border-radius: .5rem; } .leak { background: #fed7d7; } .caution { background: #feebc8; }
.ok { background: #c6f6d5; } .unknown, .inconclusive, .not_applicable { background: #e2e8f0; }
.imbalance { background: #feebc8; } .note { color: #4a5568; font-size: .9rem; }
"""


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='note'>—</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(fmt(r[c]) if isinstance(r[c], float) or r[c] is None else str(r[c]))}</td>" for c in cols
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


class _Figures:
    """Collects figure HTML; plotly.js goes inline with the first one only."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig: go.Figure | None) -> str:
        if fig is None:
            return ""
        out = fig.to_html(full_html=False, include_plotlyjs=self.count == 0, config=style.plot_config("synthvu-report"))
        self.count += 1
        return out


def training_html(sel: Any, fig: _Figures) -> list[str]:
    """The training record: loss curves from ``training/log.csv`` and the training montages (embedded PNGs)."""
    import base64
    import io

    from PIL import Image

    from synthvu_core.models.trainlog import montage_picture, montages, read_log

    path = getattr(sel, "path", None)
    if path is None:
        return []
    parts = ["<h2>Training</h2>"]
    log = read_log(path)
    curves = None if log is None else figures.loss_figure(log)
    parts.append(
        fig(curves)
        if curves is not None
        else "<p class='note'>No training log (generator trained before "
        "per-step logs were kept); final losses are in the card.</p>"
    )
    shape = sel.card.get("shape") or [0, 0, 0]
    for step, png in montages(path):
        buf = io.BytesIO()
        Image.fromarray(montage_picture(png, list(sel.card.get("classes") or []), tuple(shape[-2:]))).save(buf, "PNG")
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        parts.append(
            f"<figure><img alt='training montage, step {step}' style='max-width:100%' "
            f"src='data:image/png;base64,{data}'><figcaption class='note'>synthetic VUs at training step {step} "
            "(one row per class, labelled)</figcaption></figure>"
        )
    return parts


def _usefulness_html(view: ReportView, classes: list[str]) -> str:
    """The usefulness label (red where TSTR's interval reaches chance, amber where a class is at or below chance),
    as the verdicts are drawn."""
    kind, text = usefulness_box(view, classes)
    level = {"error": "leak", "warning": "caution", "success": "ok"}.get(kind, "unknown")
    release = release_sentence(view, classes)
    return f"<p class='verdict {level}'>Utility: {html.escape(text)}</p>" + (
        f"<p>{html.escape(release)}</p>" if release else "")


def report_html(sel: Any) -> str:
    """HTML of the selected generator's report: card summary, verdict, utility, UMAP, privacy, controls.

    ``sel`` has ``name``, ``card``, ``report`` (a ReportView), ``classes`` and ``public``.
    """
    view, card, classes, public = sel.report, sel.card, sel.classes, bool(sel.public)
    fig = _Figures()
    h = headline(view, card)
    v = verdict(view, card)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>synthvu report: "
        f"{html.escape(sel.name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>synthvu report: {html.escape(sel.name)}</h1>",
        f"<p class='note'>Generated {datetime.now(UTC).isoformat(timespec='seconds')} · report created "
        f"{html.escape(str(view.meta.get('created', '—')))} · dataset "
        f"{html.escape(str(view.meta.get('dataset_fingerprint', '—')))} · "
        f"{html.escape(epsilon_text(card, view))}{' · public version' if public else ''}</p>",
        _table(
            [
                {
                    "TRTR": h.trtr,
                    "TSTR": h.tstr,
                    "TSTR / TRTR": h.ratio,
                    "chance": usefulness_of(view).chance,
                    "worst attack AUC": h.worst_auc,
                    "worst TPR @ 1% FPR": h.worst_tpr1,
                    "DP ε": epsilon_value(h.epsilon),
                    "composed ε": composed_short(card),
                }
            ]
        ),
        _usefulness_html(view, classes),
        f"<p class='verdict {v.level}'>Verdict (a), released samples: {html.escape(v.text)}</p>",
        f"<p class='verdict {verdict(view, card, 'released_discriminator').level}'>Verdict (b), released "
        "discriminator: "
        f"{html.escape(verdict(view, card, 'released_discriminator').text)}</p>",
        "<h2>Generator</h2>",
        _table(
            [
                {
                    "architecture": card.get("architecture", {}).get("name"),
                    "scheme": card.get("scheme"),
                    "classes": ", ".join(classes),
                    "shape": " × ".join(map(str, card.get("shape", []))),
                    "steps": str(card.get("training", {}).get("steps")),
                    "created": card.get("created"),
                }
            ]
        ),
    ]
    parts += _utility_fidelity_html(view, classes, public, fig)
    parts += _privacy_html(view, sel.name, public, fig)
    parts += training_html(sel, fig)
    parts += _definitions_html(view)
    parts.append("</body></html>")
    return "".join(parts)


def _utility_fidelity_html(view: ReportView, classes: list[str], public: bool, fig: _Figures) -> list[str]:
    """The report's utility (accuracies, confusions, per-class recall), fidelity and UMAP overlay."""
    parts = ["<h2>Utility</h2>", fig(figures.utility_figure(view))]
    for s in UTILITY_SETTINGS:
        parts.append(fig(figures.confusion_figure(view, s, classes)))
    parts.append(fig(figures.recall_figure(view, classes)))
    parts.append(_table(recall_rows(view, classes)))
    by_source = source_table(view)
    if by_source:
        parts += ["<h3>Utility per source</h3>", f"<p>{html.escape(source_caption(view))}</p>", _table(by_source)]
    elif untested := untested_sources(view):
        parts.append(f"<p>Utility per source: {html.escape(untested)}.</p>")
    parts.append("<h2>Fidelity</h2>")
    parts.append(
        _table(
            [
                {
                    k: view.scalar(f"fidelity.{k}")
                    for k in ("frechet_distance", "precision", "recall", "density", "coverage")
                }
            ]
        )
    )
    if view.has("umap/synthetic"):
        umap, _ = figures.umap_figure(view, classes, real_as_density=public)
        parts.append(fig(umap))
    return parts


def _privacy_html(view: ReportView, name: str, public: bool, fig: _Figures) -> list[str]:
    """The controls, attacks and power tables, ROC curves and (not in public mode) per-candidate figures."""
    parts = ["<h2>Privacy</h2>"]
    parts.append(_table(control_rows(view, name)))
    parts.append(_table(attack_rows(view)))
    parts.append(_table(power_rows(view)))
    present = attacks_present(view)
    if any(a == "discriminator" for a, _ in present):
        parts.append(
            "<p><b>A released discriminator is itself a leak</b>: keep it private, share only the generator.</p>"
        )
    for space in SPACES:
        parts.append(fig(figures.roc_figure(view, space)))
        if not public:  # per-candidate ratios and per-patient scores: aggregates only in public mode
            parts.append(fig(figures.ratio_histogram(view, space)))
    for a, sp in present:
        if a == "pairwise" and sp == "pixel" and not public:  # per-patient scores never leave in public mode
            parts.append(fig(figures.patient_figure(view, a, sp)))
    return parts


def _definitions_html(view: ReportView) -> list[str]:
    """The definitions of the headline metrics, and the attacks' names."""
    parts = ["<h2>Definitions</h2><table>"]
    for k in sorted(view.definitions):
        if k.startswith(("utility.", "fidelity.", "dp.")) or k.endswith(".auc") or k.startswith("privacy.worst"):
            parts.append(
                f"<tr><td>{html.escape(k)}</td><td style='text-align:left'>{html.escape(view.definitions[k])}</td></tr>"
            )
    parts.append("</table>")
    parts.append(
        f"<p class='note'>Attacks: {html.escape('; '.join(f'{k}: {v}' for k, v in ATTACK_NAMES.items()))}.</p>"
    )
    return parts
