"""Figures of several generators at once (no streamlit): one colour per generator, drawn from the
reports' own numbers and intervals, chance drawn beside every measure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from dashboard import style
from dashboard.compare import (
    Compared,
    entry_chance,
    entry_trtr,
    generator_label,
    shared_value,
    utility_measure,
    worst_auc_key,
)
from dashboard.figures import _layout, density_grid
from dashboard.summary import epsilon_of
from synthvu_core.records import epsilon_text

#: What the comparison bars can show: report key, axis title, chance (None: each report's own, its holdout's).
MEASURES = {
    "tstr": ("utility.tstr.balanced_accuracy", "TSTR balanced accuracy", None),
    "ratio": ("utility.tstr_over_trtr", "TSTR / TRTR", None),
    "auc": ("privacy.worst.auc", "worst attack AUC", 0.5),
    "tpr1": ("privacy.worst.tpr_at_1pct_fpr", "worst TPR at 1% FPR", 0.01),
}


def _name(e: Compared) -> str:
    eps = epsilon_of(e.card, e.view)
    return f"{generator_label(e.ident, e.source)} · " + epsilon_text(eps, 1, none="no DP")


def _value(e: Compared, key: str) -> tuple[float | None, float | None, float | None]:
    if e.view is None:
        return None, None, None
    s = e.view.scalar
    if key == "privacy.worst.auc":
        key = worst_auc_key(e.view)
    return s(key), s(key + "_ci_low"), s(key + "_ci_high")


def _errors(v: float, lo: float | None, hi: float | None) -> tuple[float, float]:
    return (v - lo if lo is not None else 0.0), (hi - v if hi is not None else 0.0)


def measure_figure(entries: Sequence[Compared], measure: str) -> go.Figure:
    """One bar per generator (its colour) with the 95 % CI, chance as a dotted line (and TRTR for TSTR; for TSTR /
    TRTR, TRTR at 1 and each bar's chance over its TRTR)."""
    key, title, chance = MEASURES[measure]
    fig = go.Figure()
    for i, e in enumerate(entries):
        v, lo, hi = _value(e, key)
        if v is None:
            continue
        minus, plus = _errors(v, lo, hi)
        fig.add_trace(
            go.Bar(
                x=[generator_label(e.ident, e.source)],
                y=[v],
                name=_name(e),
                showlegend=False,
                marker_color=style.generator_colour(i),
                error_y={"type": "data", "array": [plus], "arrayminus": [minus], "thickness": 2.5, "width": 10},
                text=[f"{v:.3f}"],
                textposition="inside",
                insidetextanchor="start",
                textfont={"size": style.FONT_SIZE, "color": style.text_colour_on(style.generator_colour(i))},
                hovertemplate=f"{e.ident}<br>{title} %{{y:.3f}}<extra></extra>",
            )
        )
    shown = [e for e in entries if _value(e, key)[0] is not None]
    marked = []
    if chance is not None:
        fig.add_hline(y=chance, line={"dash": "dot", "color": style.GREY, "width": 2},
                      annotation_text=f"chance {chance:.2f}", annotation_position="top right",
                      annotation_font_size=style.SMALL_FONT_SIZE)
    elif measure in UTILITY and shown:
        chances = [utility_chance(e, measure) for e in shown]
        label = "chance" if measure == "tstr" else "chance / TRTR"
        marked.append(_reference(fig, shown, chances, label, style.GREY, "top right"))
    if measure in UTILITY and shown:
        trtr = [entry_trtr(e) for e in shown] if measure == "tstr" else [1.0] * len(shown)
        marked.append(_reference(fig, shown, trtr, "TRTR (real data)", style.OKABE_ITO["black"], "bottom right"))
    note = " and ".join(m.split(" (")[0] for m in marked if m)  # "chance", "TRTR"
    title_text = title + " (95% CI)" + (f"<br>each bar's own {note}" if note else "")
    legend = {"orientation": "h", "y": -0.12, "font": {"size": style.SMALL_FONT_SIZE}}
    top = max([1.05, *(_value(e, key)[2] or 0.0 for e in shown)]) if measure == "ratio" else 1.05
    return _layout(fig, title_text, height=440, showlegend=bool(note), legend=legend,
                   yaxis={"title": title, "range": [0, top]})


#: The utility measures (the others are privacy risks): their chance is each report's own.
UTILITY = ("tstr", "ratio")


def utility_chance(e: Compared, measure: str) -> float | None:
    """Chance of ``e``'s utility ``measure``: its holdout's accuracy chance for TSTR, that over its TRTR for TSTR /
    TRTR (the ratio a classifier that guesses would score); None where the report lacks it."""
    c = entry_chance(e)
    if measure == "tstr" or c is None:
        return c
    t = entry_trtr(e)
    return c / t if t else None


def _reference(
    fig: go.Figure, entries: Sequence[Compared], values: Sequence[float | None], label: str, colour: str, where: str
) -> str | None:
    """A reference level of the bars (chance, TRTR): one line across where every generator's report has the same,
    else a short mark over each generator's own bar (none where its report lacks it). Returns ``label`` where marks
    were drawn, for the title, and None otherwise."""
    dash = "dot" if label.startswith("chance") else "dash"
    one = shared_value(values)
    if one is not None:
        fig.add_hline(y=one, line={"dash": dash, "color": colour, "width": 2}, annotation_text=f"{label} {one:.3f}",
                      annotation_position=where, annotation_font_size=style.SMALL_FONT_SIZE)
        return None
    have = [(generator_label(e.ident, e.source), v) for e, v in zip(entries, values) if v is not None]
    if not have:
        return None
    fig.add_trace(
        go.Scatter(
            x=[x for x, _ in have],
            y=[v for _, v in have],
            mode="markers",
            marker={"symbol": "line-ew", "size": 56, "line": {"width": 4, "color": colour}},
            hovertemplate=f"%{{x}}<br>{label} %{{y:.3f}}<extra></extra>",
            name=f"{label}: this bar's holdout",
        )
    )
    return label


def tradeoff_chance_note(fig: go.Figure, entries: Sequence[Compared]) -> str | None:
    """What ``fig`` (:func:`tradeoff_compare_figure` of ``entries``) marks in each generator's colour, in words: a deck
    drops the figure's title, so its slide says it. None where no such mark is drawn (one labelled line instead)."""
    if not any(t.type == "scatter" and t.marker.symbol == "line-ns" for t in fig.data):
        return None
    what = "accuracy chance (1 / classes in its holdout)" if utility_measure(entries) == "tstr" else (
        "chance over its TRTR (the TSTR / TRTR of a classifier that guesses)")
    return f"A short vertical mark in a generator's colour, on its point's row, is its own {what}."


def tradeoff_compare_figure(entries: Sequence[Compared]) -> go.Figure:
    """Utility (TSTR, or TSTR / TRTR where the generators' datasets differ) against privacy risk (worst attack AUC),
    both with 95 % CIs, chance on each axis."""
    measure = utility_measure(entries)
    ukey, utitle = MEASURES[measure][:2]
    fig = go.Figure()
    for i, e in enumerate(entries):
        (x, xlo, xhi), (y, ylo, yhi) = _value(e, ukey), _value(e, MEASURES["auc"][0])
        if x is None or y is None:
            continue
        xm, xp = _errors(x, xlo, xhi)
        ym, yp = _errors(y, ylo, yhi)
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[y],
                mode="markers",
                name=_name(e),
                marker={
                    "size": 20,
                    "color": style.generator_colour(i),
                    "line": {"width": 1.5, "color": "#000000"},
                    "symbol": "circle" if epsilon_of(e.card, e.view) is None else "diamond",
                },
                error_x={"type": "data", "array": [xp], "arrayminus": [xm], "thickness": 2.5},
                error_y={"type": "data", "array": [yp], "arrayminus": [ym], "thickness": 2.5},
                hovertemplate=f"{e.ident}<br>{utitle} %{{x:.3f}}<br>worst AUC %{{y:.3f}}<extra></extra>",
            )
        )
    chance_x = shared_value([utility_chance(e, measure) for e in entries])
    marked = chance_x is None and _chance_marks(fig, entries, measure)
    fig.add_hline(
        y=0.5,
        line={"dash": "dot", "color": style.GREY, "width": 2},
        annotation_text="AUC chance 0.5",
        annotation_position="bottom left",
        annotation_font_size=style.SMALL_FONT_SIZE,
    )
    for x, text, where in ((chance_x, "accuracy chance" if measure == "tstr" else "chance / TRTR", "top right"),
                           (1.0 if measure == "ratio" else None, "TRTR (real data)", "top left")):
        if x is not None:
            fig.add_vline(x=x, line={"dash": "dot", "color": style.GREY, "width": 2},
                          annotation_text=f"{text} {x:.2f}", annotation_position=where,
                          annotation_font_size=style.SMALL_FONT_SIZE)
    what = "accuracy chance" if measure == "tstr" else "chance / TRTR"
    note = f"<br>each generator's {what}: a mark in its colour" if marked else ""
    head = "Utility and privacy risk on shared axes" if measure == "tstr" else (
        "Utility as TSTR / TRTR (the datasets differ) and privacy risk")
    top = max([1.02, *(_value(e, ukey)[2] or 0.0 for e in entries)]) if measure == "ratio" else 1.02
    return _layout(
        fig,
        head + ": lower right is better" + note,
        height=520,
        xaxis={"title": "utility: " + utitle + (" (each on its own holdout)" if measure == "ratio" else ""),
               "range": [0, top]},
        yaxis={"title": "privacy risk: worst attack AUC", "range": [0.4, 1.02]},
        legend={"orientation": "h", "y": -0.2, "font": {"size": style.SMALL_FONT_SIZE}},
    )


def _chance_marks(fig: go.Figure, entries: Sequence[Compared], measure: str = "tstr") -> bool:
    """Where the generators' holdouts have different chance levels: a short vertical mark in each generator's
    colour at its own chance of the utility ``measure``, on the row of its point. Returns whether any was drawn."""
    drawn = False
    for i, e in enumerate(entries):
        chance, (y, _, _) = utility_chance(e, measure), _value(e, MEASURES["auc"][0])
        if chance is None or y is None or _value(e, MEASURES[measure][0])[0] is None:
            continue
        fig.add_trace(
            go.Scatter(
                x=[chance], y=[y], mode="markers", showlegend=False,
                marker={"symbol": "line-ns", "size": 30, "line": {"width": 3, "color": style.generator_colour(i)}},
                hovertemplate=f"{e.ident}<br>chance %{{x:.3f}}<extra></extra>",
            )
        )
        drawn = True
    return drawn


def umap_compare_figure(entries: Sequence[Compared], max_points: int = 1500) -> go.Figure:
    """One UMAP (the axes the reports share): real VUs as density contour lines (counts only), each
    generator's synthetic VUs as translucent dots in its colour, thinned evenly to ``max_points``."""
    fig = go.Figure()
    real = entries[0].view.array("umap/real") if entries and entries[0].view is not None else None
    for i, e in enumerate(entries):
        xy = None if e.view is None else e.view.array("umap/synthetic")
        if xy is None or len(xy) == 0:
            continue
        xy = np.asarray(xy)
        rows = np.linspace(0, len(xy) - 1, min(max_points, len(xy))).astype(int)
        fig.add_trace(
            go.Scatter(
                x=xy[rows, 0],
                y=xy[rows, 1],
                mode="markers",
                name=_name(e),
                marker={"size": 6, "color": style.generator_colour(i), "opacity": 0.45},
                hoverinfo="skip",
            )
        )
    if real is not None and len(real):
        gx, gy, z = density_grid(np.asarray(real))
        fig.add_trace(
            go.Contour(
                x=gx,
                y=gy,
                z=z,
                name="real VUs (density)",
                showscale=False,
                showlegend=True,
                hoverinfo="skip",
                colorscale=[[0, style.OKABE_ITO["black"]], [1, style.OKABE_ITO["black"]]],
                contours={
                    "coloring": "lines",
                    "start": 3,
                    "end": float(max(z.max(), 4)),
                    "size": max(1.0, float(z.max() - 3) / 5),
                },
                line={"width": 2},
            )
        )
    return _layout(
        fig,
        "UMAP: every generator's synthetic VUs over the real ones",
        height=560,
        xaxis={"title": "UMAP 1", "showticklabels": False},
        yaxis={"title": "UMAP 2", "showticklabels": False},
        legend={"orientation": "h", "y": -0.12, "font": {"size": style.SMALL_FONT_SIZE}},
    )
