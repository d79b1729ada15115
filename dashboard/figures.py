"""Plotly figures of a report (no streamlit): what the pages draw and what the HTML report embeds.

Each builder takes a :class:`~dashboard.summary.ReportView` (plus class names where labels are drawn)
and returns a ``plotly.graph_objects.Figure`` sized and lettered to be read on a projector. No
figure computes a reported metric; the few display aggregates (histograms, per-patient means of
attack scores) only re-draw arrays the evaluation wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard import style
from dashboard.summary import SETTING_NAMES, UTILITY_SETTINGS, ReportView, attacks_present, usefulness_of
from synthvu_core.records import NO_DP_TEXT, epsilon_text

FONT_SIZE = style.FONT_SIZE
SMALL = style.SMALL_FONT_SIZE
REGION_COLOURS = {k: (v, v) for k, v in style.REGION_COLOURS.items()}  # (real, synthetic): one hue per region
QUALITATIVE = style.GENERATOR_SEQUENCE
ATTACK_COLOURS = style.ATTACK_COLOURS
SETTING_COLOURS = style.SETTING_COLOURS
MEMBER_COLOURS = style.MEMBER_COLOURS


def _layout(fig: go.Figure, title: str, height: int = 480, **kw: Any) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": style.TITLE_FONT_SIZE}},
        font={"size": FONT_SIZE, "family": style.FONT_FAMILY},
        hoverlabel={"font": {"size": SMALL}},
        height=height,
        margin={"l": 60, "r": 20, "t": 95 if "<br>" in title else 60, "b": 55},  # a two-line title gets room
        template="plotly_white",
        colorway=style.GENERATOR_SEQUENCE,
        **{"legend": {"font": {"size": SMALL}}, **kw},
    )
    return fig


#: Density cells holding fewer VUs than this are blanked, so no single real VU can be located.
MIN_CELL_COUNT = 3


def density_grid(xy: np.ndarray, bins: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-D histogram of points ``[n, 2]``, computed here so only counts (never coordinates) leave the
    server: (x centres ``[bins]``, y centres ``[bins]``, counts ``[bins, bins]`` indexed [y, x]);
    cells below :data:`MIN_CELL_COUNT` are zero."""
    h, xe, ye = np.histogram2d(xy[:, 0], xy[:, 1], bins=bins)
    h[h < MIN_CELL_COUNT] = 0
    return (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2, h.T


def class_colours(classes: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(real, synthetic) colour per class: light / dark of one hue, as in the study's UMAP figure."""
    out = {}
    for i, c in enumerate(classes):
        if c in REGION_COLOURS:
            out[c] = REGION_COLOURS[c]
        else:
            dark = QUALITATIVE[i % len(QUALITATIVE)]
            out[c] = (dark, dark)
    return out


def _class_name(classes: Sequence[str], label: int) -> str:
    return classes[label] if 0 <= label < len(classes) else f"class {label}"


# ---- embeddings --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceSource:
    """Which VUs a scatter trace holds: ``kind`` ``"real"`` or ``"synthetic"`` and row numbers into
    the report's ``umap/<kind>`` array (one per point, in trace order)."""

    kind: str
    rows: np.ndarray


def umap_figure(
    view: ReportView,
    classes: Sequence[str],
    *,
    colour_by: str = "position",
    real_as_density: bool = False,
    max_points: int | None = None,
    real_on_top: bool = True,
) -> tuple[go.Figure, list[TraceSource | None]]:
    """UMAP overlay of real and synthetic VUs.

    ``colour_by``: ``"position"`` (one colour per class, light real / dark synthetic) or ``"source"``
    (real vs synthetic). ``real_as_density``: draw real VUs as a binned 2-D density only (public
    mode: counts, never a real VU's coordinates, leave the server), as dark contour lines over the
    synthetic points. ``max_points`` thins each kind evenly. ``real_on_top``: draw the real VUs (or
    their density) over the synthetic ones, which outnumber them. Returns the figure and, per trace
    (aligned with ``fig.data``), the rows it holds (``None`` for a density trace: not selectable).
    """
    fig = go.Figure()
    sources: list[TraceSource | None] = []
    order = ("synthetic", "real") if real_on_top else ("real", "synthetic")
    # Plotly draws WebGL traces above SVG ones: with a density (SVG) on top, points are drawn in SVG too
    scatter = go.Scatter if real_as_density and real_on_top else go.Scattergl
    for kind in order:
        xy = view.array(f"umap/{kind}")
        if xy is None or len(xy) == 0:
            continue
        labels = view.array(f"umap/{kind}_labels")
        labels = np.zeros(len(xy), dtype=int) if labels is None else np.asarray(labels).astype(int)
        rows = np.arange(len(xy))
        if max_points and len(rows) > max_points:
            rows = rows[np.linspace(0, len(rows) - 1, max_points).astype(int)]
        if kind == "real" and real_as_density:
            fig.add_trace(_density_trace(xy))
            sources.append(None)  # a density is not selectable
            continue
        for trace, r in _point_traces(scatter, kind, xy, labels, rows, classes, colour_by):
            fig.add_trace(trace)
            sources.append(TraceSource(kind, np.asarray(r)))
    _layout(
        fig,
        "UMAP of real and synthetic VUs (fitted on real training VUs)",
        height=620,
        dragmode="select",
        xaxis={"title": "UMAP 1", "showticklabels": False},
        yaxis={"title": "UMAP 2", "showticklabels": False},
    )
    return fig, sources


def _density_trace(xy: np.ndarray) -> go.Contour:
    """Real VUs as a density: counts per cell (small cells blanked), dark contour lines that stay visible."""
    gx, gy, z = density_grid(xy)
    return go.Contour(
        x=gx,
        y=gy,
        z=z,
        name="real VUs (density)",
        colorscale=[[0, style.GREY], [1, style.OKABE_ITO["black"]]],
        showscale=False,
        contours={
            "coloring": "lines",
            "start": MIN_CELL_COUNT,
            "end": float(max(z.max(), MIN_CELL_COUNT + 1)),
            "size": max(1.0, float(z.max() - MIN_CELL_COUNT) / 6),
        },
        line={"width": 2.5},
        hoverinfo="skip",
        showlegend=True,
    )


def _point_traces(
    scatter: type[go.Scatter] | type[go.Scattergl],
    kind: str,
    xy: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    classes: Sequence[str],
    colour_by: str,
) -> list[tuple[go.Scatter | go.Scattergl, np.ndarray]]:
    """One marker trace per class (or one per kind with ``colour_by="source"``); real VUs are larger open
    diamonds (outline only), so they read on top of the many translucent synthetic dots without hiding them."""
    colours = class_colours(classes)
    groups = (
        [(None, rows)] if colour_by == "source" else [(k, rows[labels[rows] == k]) for k in np.unique(labels[rows])]
    )
    out = []
    for k, r in groups:
        if len(r) == 0:
            continue
        if k is None:
            name, colour = kind, style.SOURCE_COLOURS[kind]
        else:
            cname = _class_name(classes, int(k))
            light, dark = colours.get(cname, (style.GREY, style.GREY))
            name, colour = f"{cname} {kind}", (light if kind == "real" else dark)
        real = kind == "real"
        # real: open diamonds (an outline only) so the synthetic cloud below shows through; synthetic:
        # small translucent dots, so dense regions read as darker and real VUs stay visible over them
        marker = {
            "size": 8 if real else 6,
            "color": colour,
            "opacity": 0.45 if real else 0.75,
            "symbol": "diamond-open" if real else "circle",
            "line": {"width": 1, "color": colour} if real else {"width": 0},
        }
        out.append(
            (
                scatter(
                    x=xy[r, 0],
                    y=xy[r, 1],
                    mode="markers",
                    name=name,
                    marker=marker,
                    customdata=np.stack([np.full(len(r), 0 if real else 1), r], axis=1),
                    hovertemplate=f"{name}<br>#%{{customdata[1]}}<extra></extra>",
                ),
                r,
            )
        )
    return out


def selected_rows(points: Sequence[dict[str, Any]], sources: Sequence[TraceSource | None]) -> dict[str, list[int]]:
    """Map a Plotly selection (``points`` with ``curve_number``/``point_index`` or ``customdata``)
    to report rows: ``{"real": [...], "synthetic": [...]}``, each sorted and unique."""
    out: dict[str, set[int]] = {"real": set(), "synthetic": set()}
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)) and len(cd) == 2:
            out["real" if int(cd[0]) == 0 else "synthetic"].add(int(cd[1]))
            continue
        curve = p.get("curve_number")
        idx = p.get("point_index", p.get("point_number"))
        if curve is None or idx is None:
            continue
        s = sources[int(curve)] if 0 <= int(curve) < len(sources) else None
        if s is not None and 0 <= int(idx) < len(s.rows):
            out[s.kind].add(int(s.rows[int(idx)]))
    return {k: sorted(v) for k, v in out.items()}


# ---- utility -----------------------------------------------------------------------------------
def utility_figure(view: ReportView) -> go.Figure:
    """Balanced accuracy of TRTR / TSTR / TRTS as bars, with the chance line (1 / classes present in the holdout)."""
    names, values, text = [], [], []
    for s in UTILITY_SETTINGS:
        v = view.scalar(f"utility.{s}.balanced_accuracy")
        names.append(SETTING_NAMES[s])
        values.append(np.nan if v is None else v)
        text.append("—" if v is None else f"{v:.3f}")
    fig = go.Figure(
        go.Bar(
            x=names,
            y=values,
            text=text,
            textposition="outside",
            marker_color=[SETTING_COLOURS[s] for s in UTILITY_SETTINGS],
        )
    )
    chance = usefulness_of(view).chance
    if chance is not None:
        fig.add_hline(y=chance, line={"dash": "dash", "color": "#999"}, annotation_text=f"chance {chance:.3f}",
                      annotation_position="top left", annotation_font_size=FONT_SIZE - 3,
                      annotation_bgcolor="rgba(255,255,255,0.85)")  # left, boxed: clear of the bars' own labels
    return _layout(
        fig,
        "Balanced accuracy of the VU-position classifier",
        height=420,
        yaxis={"title": "balanced accuracy", "range": [0, 1.08]},
    )


def confusion_figure(view: ReportView, setting: str, classes: Sequence[str]) -> go.Figure | None:
    """Row-normalised confusion matrix (rows = true position, columns = predicted), counts on hover."""
    cm = view.array(f"utility/{setting}/confusion")
    if cm is None:
        return None
    cm = np.asarray(cm, dtype=float)
    names = [_class_name(classes, i) for i in range(cm.shape[0])]
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig = go.Figure(
        go.Heatmap(
            z=norm,
            x=names,
            y=names,
            colorscale=style.SHARE_SCALE,
            zmin=0,
            zmax=1,
            customdata=cm,
            text=np.vectorize(lambda v: f"{v:.2f}")(norm),
            texttemplate="%{text}" if len(names) <= 12 else None,
            textfont={"size": SMALL},
            hovertemplate="true %{y}, predicted %{x}<br>share %{z:.3f}, count %{customdata:.0f}<extra></extra>",
            colorbar={"title": {"text": "share"}, "tickfont": {"size": SMALL}},
        )
    )
    return _layout(
        fig,
        SETTING_NAMES.get(setting, setting),
        height=420,
        xaxis={"title": "predicted"},
        yaxis={"title": "true", "autorange": "reversed"},
    )


def _recall_error_bars(view: ReportView, setting: str, n: int) -> tuple[dict[str, Any] | None, list[int | None]]:
    """The 95 % interval of each class's holdout recall as Plotly error bars (none for a class on one patient) and
    each class's holdout patients; (None, []) for a setting without per-class intervals (TRTS)."""
    from synthvu_core.evaluation.utility import class_recall

    per = class_recall(view.arrays, setting) if setting in ("trtr", "tstr") else None
    if per is None or len(per) != n:
        return None, []
    up = [c.high - c.recall if c.high is not None and c.recall is not None else np.nan for c in per]
    down = [c.recall - c.low if c.low is not None and c.recall is not None else np.nan for c in per]
    bars = {"type": "data", "symmetric": False, "array": up, "arrayminus": down, "color": "#444", "thickness": 1.5,
            "width": 0}  # no caps: plotly would draw one even where a class has no interval
    return bars, [c.n_patients for c in per]


def recall_figure(view: ReportView, classes: Sequence[str]) -> go.Figure | None:
    """Per-position recall, one bar group per setting, with each class's 95 % interval over holdout patients and
    seeds (TRTR, TSTR; none for a class on one holdout patient), its holdout patients under its name, and the chance
    line."""
    fig, patients, intervals = go.Figure(), [], False
    for s in UTILITY_SETTINGS:
        rec = view.array(f"utility/{s}/recall")
        if rec is None:
            continue
        rec = np.asarray(rec, dtype=float)
        bars, counts = _recall_error_bars(view, s, len(rec))
        patients = patients or counts
        intervals = intervals or (bars is not None and bool(np.isfinite(bars["array"]).any()))
        fig.add_trace(go.Bar(name=s.upper(), x=[_class_name(classes, i) for i in range(len(rec))], y=rec,
                             marker_color=SETTING_COLOURS[s], error_y=bars))
    if not fig.data:
        return None
    if any(p is not None for p in patients):  # what each class's recall rests on, under its name
        names = [_class_name(classes, i) for i in range(len(patients))]
        ticks = [f"{n}<br>{'—' if p is None else p} patient{'' if p == 1 else 's'}" for n, p in zip(names, patients)]
        fig.update_xaxes(tickmode="array", tickvals=names, ticktext=ticks)
    chance = usefulness_of(view).chance
    if chance is not None:
        fig.add_hline(y=chance, line={"dash": "dash", "color": "#999"}, annotation_text=f"chance {chance:.3f}",
                      annotation_position="top left", annotation_font_size=FONT_SIZE - 3,
                      annotation_bgcolor="rgba(255,255,255,0.85)")
    return _layout(
        fig, "Recall per position" + (", with 95% intervals" if intervals else ""), height=440,
        barmode="group", yaxis={"title": "recall", "range": [0, 1.05]},
    )


# ---- privacy -----------------------------------------------------------------------------------
def roc_figure(view: ReportView, space: str, log_fpr: bool = False) -> go.Figure | None:
    """ROC curve of every attack measured in one space, with its AUC in the legend."""
    fig = go.Figure()
    for a, sp in attacks_present(view):
        if sp != space:
            continue
        fpr, tpr = view.array(f"privacy/{a}/{sp}/roc_fpr"), view.array(f"privacy/{a}/{sp}/roc_tpr")
        if fpr is None or tpr is None:
            continue
        auc = view.scalar(f"privacy.{a}.{sp}.auc")
        name = f"{a} (AUC {auc:.3f})" if auc is not None else a
        fig.add_trace(
            go.Scatter(x=fpr, y=tpr, mode="lines", name=name, line={"color": ATTACK_COLOURS.get(a), "width": 3})
        )
    if not fig.data:
        return None
    lo = 1e-3 if log_fpr else 0.0
    chance = {"color": style.GREY, "dash": "dash"}
    fig.add_trace(go.Scatter(x=[lo, 1], y=[lo, 1], mode="lines", name="chance", line=chance))
    xaxis = (
        {"title": "false positive rate", "type": "log", "range": [-3, 0]}
        if log_fpr
        else {"title": "false positive rate", "range": [0, 1]}
    )
    yaxis = (
        {"title": "true positive rate", "type": "log", "range": [-3, 0]}
        if log_fpr
        else {"title": "true positive rate", "range": [0, 1]}
    )
    return _layout(
        fig,
        f"Membership attacks, {space} space",
        height=460,
        xaxis=xaxis,
        yaxis=yaxis,
        legend={"x": 0.98, "y": 0.02, "xanchor": "right", "yanchor": "bottom", "bgcolor": "rgba(255,255,255,0.8)"},
    )


def member_mask(view: ReportView) -> np.ndarray | None:
    m = view.array("candidates/is_member")
    return None if m is None else np.asarray(m).astype(bool)


def ratio_histogram(view: ReportView, space: str) -> go.Figure | None:
    """The study's figure: distance to the closest synthetic VU over the median distance, for
    training (member) and holdout (non-member) candidates."""
    ratio, member = view.array(f"privacy/pairwise/{space}/ratio"), member_mask(view)
    if ratio is None or member is None or len(ratio) != len(member):
        return None
    ratio = np.asarray(ratio, dtype=float)
    fig = go.Figure()
    bins = {
        "start": float(np.nanmin(ratio)),
        "end": float(np.nanmax(ratio)),
        "size": max(float(np.nanmax(ratio) - np.nanmin(ratio)) / 40, 1e-6),
    }
    for name, mask in (("train (members)", member), ("holdout (non-members)", ~member)):
        fig.add_trace(
            go.Histogram(
                x=ratio[mask],
                name=name,
                histnorm="probability density",
                xbins=bins,
                opacity=0.55,
                marker_color=MEMBER_COLOURS[name],
            )
        )
    return _layout(
        fig,
        f"Closest distance as ratio of the median<br>({space} space)",  # two lines fit a half-width column
        height=420,
        barmode="overlay",
        legend={"x": 0.98, "y": 0.98, "xanchor": "right", "yanchor": "top", "bgcolor": "rgba(255,255,255,0.8)"},
        xaxis={"title": "d_min / median distance to synthetic VUs"},
        yaxis={"title": "density"},
    )


def patient_figure(view: ReportView, attack: str, space: str, show_ids: bool = True) -> go.Figure | None:
    """Per patient: the mean attack score of its VUs, members vs non-members (a patient is what a
    regulator protects). ``show_ids=False`` hides patient identifiers."""
    per_patient = view.patient_means(attack, space)
    if per_patient is None:
        return None
    fig = go.Figure()
    for name, want in (("train (members)", True), ("holdout (non-members)", False)):
        ids, means = per_patient[want]
        fig.add_trace(
            go.Box(
                y=means,
                name=name,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker_color=MEMBER_COLOURS[name],
                text=ids if show_ids else None,
                hovertemplate=("patient %{text}<br>" if show_ids else "") + "mean score %{y:.4f}<extra></extra>",
            )
        )
    return _layout(
        fig,
        f"Patient level: mean {attack} score<br>per patient ({space} space)",
        height=420,
        yaxis={"title": "score (high = member-like)"},  # fits beside a two-line title
        showlegend=False,
    )


# ---- trade-offs --------------------------------------------------------------------------------
def tradeoff_figure(
    rows: Sequence[dict[str, Any]], privacy_key: str = "worst_auc", trtr: float | None = None,
    chance: float | None = None,
) -> go.Figure:
    """Every generator on one chart: utility (TSTR) against privacy risk, DP ε in the legend.

    Each generator is a marker with its own colour, named in the legend (``name · no DP`` or
    ``name · ε = 8.0``), so no text label can overprint another; the TRTR reference, the TSTR chance level
    (``chance``: the dataset's) and the privacy risk's chance level are legend entries too. ``rows``: dicts with
    ``name``, ``tstr``, ``worst_auc``, ``worst_tpr1``, ``epsilon`` (``control`` for the controls).
    """
    label = {"worst_auc": "worst attack AUC (0.5 = chance)", "worst_tpr1": "worst TPR at 1% FPR (0.01 = chance)"}[
        privacy_key
    ]
    fig = go.Figure()
    colour_of: dict[str, str] = {}
    for r in rows:  # one colour per generator; its controls (named "<generator>: <kind> control") share it
        if not r.get("control"):
            colour_of.setdefault(r["name"], QUALITATIVE[len(colour_of) % len(QUALITATIVE)])
    for r in rows:
        if r.get("tstr") is not None and r.get(privacy_key) is not None:
            fig.add_trace(_tradeoff_marker(r, privacy_key, label, colour_of.get(str(r["name"]).split(":")[0])))
    xs = [r["tstr"] for r in rows if r.get("tstr") is not None] + [v for v in (trtr, chance) if v is not None]
    x_range = [max(0.0, min(xs, default=0.0) - 0.1), 1.02]
    y_range = [0.4, 1.04] if privacy_key == "worst_auc" else [0.0, 1.04]
    risk_chance = 0.5 if privacy_key == "worst_auc" else 0.01
    lines = [(x_range, [risk_chance] * 2, f"chance ({risk_chance:g})", "dash", style.GREY)]
    if chance is not None:
        lines.append(([chance] * 2, y_range, f"TSTR chance: {chance:.3f}", "dashdot", style.GREY))
    if trtr is not None:
        lines.append(([trtr] * 2, y_range, f"TRTR (real data): {trtr:.3f}", "dot", style.OKABE_ITO["black"]))
    for x, y, name, dash, colour in lines:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line={"dash": dash, "color": colour},
                                 hoverinfo="skip"))
    return _layout(
        fig,
        "Privacy against utility: lower and further right is better",
        height=560,
        xaxis={"title": "utility: TSTR balanced accuracy", "range": x_range},
        yaxis={"title": "privacy risk: " + label, "range": y_range},
        showlegend=True,
        legend={
            "font": {"size": SMALL},
            "orientation": "v",
            "x": 1.02,
            "y": 1.0,
            "xanchor": "left",
            "title": {"text": "generator · privacy"},
        },
    )


def _tradeoff_marker(r: dict[str, Any], privacy_key: str, label: str, colour: str | None) -> go.Scatter:
    """One generator (or control) of :func:`tradeoff_figure`: its marker, legend name and hover text."""
    eps = r.get("epsilon")
    tag = "control" if r.get("control") else epsilon_text(eps, 1, none="no DP")
    symbol = ("x" if "copy" in r["name"] else "cross") if r.get("control") else ("circle" if eps is None else "diamond")
    return go.Scatter(
        x=[r["tstr"]],
        y=[r[privacy_key]],
        mode="markers",
        name=f"{r['name']} · {tag}",
        marker={
            "size": 14 if r.get("control") else 18,
            "color": colour or style.GREY,
            "symbol": symbol,
            "opacity": 0.7 if r.get("control") else 1.0,
            "line": {"width": 1, "color": "#333"},
        },
        hovertemplate=f"{r['name']} ({tag})<br>TSTR %{{x:.3f}}<br>{label} %{{y:.3f}}<extra></extra>",
    )


# ---- training record ---------------------------------------------------------------------------
THROUGHPUT_HINTS = ("per_s", "per_sec", "throughput", "vus_s", "it_s")


def loss_figure(log: dict[str, np.ndarray]) -> go.Figure | None:
    """Loss curves of a training log (every ``loss*`` column against ``step``); None where it has none."""
    losses = [k for k in log if k.startswith("loss")]
    if not losses:
        return None
    fig = go.Figure()
    for i, k in enumerate(losses):
        fig.add_trace(go.Scatter(x=log["step"], y=log[k], mode="lines", name=k, line={"color": QUALITATIVE[i % 10]}))
    return _layout(fig, "Training losses", height=420, xaxis={"title": "step"}, yaxis={"title": "loss"})


def throughput_column(log: dict[str, np.ndarray]) -> str | None:
    """The log's throughput column (by name), if any."""
    return next((k for k in log if any(h in k.lower() for h in THROUGHPUT_HINTS)), None)


# ---- privacy-utility frontier -----------------------------------------------------------------------
ROUTE_STYLE = {
    "pretrained": (style.OKABE_ITO["blue"], "public pretraining + fine-tuning"),
    "scratch": (style.OKABE_ITO["vermillion"], "from scratch"),
}


_ROUTE_NUDGE = {"pretrained": 1.0, "scratch": 1.25}  # the two routes' no-DP points side by side on the log axis


def no_dp_position(epsilons: Sequence[float]) -> float:
    """Where a generator trained without DP sits on the log ε axis: the first power of ten at least 3× the largest ε
    (ε up to 10: at 100)."""
    top = max((float(e) for e in epsilons if e is not None and e > 0), default=1.0)
    return float(10 ** np.ceil(np.log10(3 * top)))


def eps_key(eps: float) -> float:
    """The ε a run is drawn at: one significant digit where that is within 5 % (0.99 and 1.0 share the point 1,
    2.99 is drawn at 3), else two (1.5 stays 1.5)."""
    one = float(f"{float(eps):.1g}")
    return one if abs(one - eps) <= 0.05 * abs(eps) else float(f"{float(eps):.2g}")


def _eps_groups(pts: Sequence[dict[str, Any]], at: float | None = None) -> list[tuple[float, list[dict[str, Any]]]]:
    """Runs grouped by :func:`eps_key` (or all at ``at``) and by recipe (``row["recipe"]``: the training command
    but for seed, names and paths), sorted by ε: only runs of one recipe are replicates whose range is drawn."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in pts:
        x = at if at is not None else eps_key(r["epsilon"])
        groups.setdefault((x, str(r.get("recipe"))), []).append(r)
    return [(x, runs) for (x, _), runs in sorted(groups.items(), key=lambda kv: kv[0])]


def _frontier_traces(
    rows: Sequence[dict[str, Any]], key: str, route: str, no_dp: float, showlegend: bool
) -> list[go.Scatter]:
    """One route: the mean of ``key`` per ε (line), with the run-to-run range (min to max of the runs) where
    several runs share an ε, else the run's own interval; every run as a small marker; no-DP runs at ``no_dp``."""
    colour, label = ROUTE_STYLE.get(route, (style.GREY, route))
    mine = [r for r in rows if r.get("route") == route and r.get(key) is not None]
    out: list[go.Scatter] = []
    for private in (True, False):
        pts = [r for r in mine if (r.get("epsilon") is not None) == private]
        if not pts:
            continue
        groups = _eps_groups(pts, None if private else no_dp * _ROUTE_NUDGE.get(route, 1.0))
        xs, ys, lo, hi, text = [], [], [], [], []
        for x, runs in groups:
            vals = [float(r[key]) for r in runs]
            m = float(np.mean(vals))
            if len(runs) > 1:
                low, high, what = min(vals), max(vals), f"{len(runs)} runs: range {min(vals):.3f}–{max(vals):.3f}"
            else:
                low, high = runs[0].get(key + "_lo"), runs[0].get(key + "_hi")
                low, high, what = (m if low is None else low), (m if high is None else high), "1 run: its 95% interval"
            xs.append(x), ys.append(m), lo.append(m - low), hi.append(high - m)
            cohorts = sorted({str(r["cohort"]) for r in runs if r.get("cohort")})
            where = f"<br>{'cohorts' if len(cohorts) > 1 else 'cohort'}: {', '.join(cohorts)}" if cohorts else ""
            text.append(", ".join(str(r["name"]) for r in runs) + f"<br>{what}{where}")
        name = f"{label} with DP" if private else f"{label}, {NO_DP_TEXT}"
        out.append(go.Scatter(
            x=xs, y=ys, mode="lines+markers" if private else "markers", name=name, legendgroup=name,
            showlegend=showlegend, marker={"size": 12, "color": colour, "symbol": "circle" if private else "square"},
            line={"color": colour},
            error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "visible": True},
            customdata=[[t] for t in text], hovertemplate="%{customdata[0]}<br>%{y:.3f}<extra></extra>",
        ))
        many = [(x, r) for x, runs in groups if len(runs) > 1 for r in runs]
        if many:
            out.append(go.Scatter(
                x=[x for x, _ in many], y=[float(r[key]) for _, r in many], mode="markers",
                name=f"{name}: single runs", legendgroup=name, showlegend=showlegend,
                marker={"size": 7, "color": colour, "symbol": "circle-open"},
                customdata=[[r["name"]] for _, r in many], hovertemplate="%{customdata[0]}<br>%{y:.3f}<extra></extra>",
            ))
    return out


def frontier_figure(
    rows: Sequence[dict[str, Any]],
    *,
    fingerprint: str,
    dataset_label: str,
    trtr: float | None = None,
    chance: float | None = None,
    risk_label: str = "worst attack AUC (0.5 = chance)",
    risk_chance: float = 0.5,
    family: str | None = None,
) -> go.Figure:
    """TSTR and privacy risk against the patient-level ε of the generators of ONE dataset (``fingerprint``;
    rows of any other dataset are left out, so accuracies over different class sets never share an axis),
    and of the cohorts of its recipe ``family`` where one is given (rows whose ``family`` equals it and whose
    ``cohort`` differs: the same phantom recipe with another seed, i.e. replicate runs and twin baselines on other
    patients; another build of the selected cohort itself is left out).

    Both panels share one log ε axis; generators trained without DP sit at a labelled "no DP (ε = ∞)"
    position a decade beyond the largest ε. ``rows``: dicts with ``name``, ``dataset`` (fingerprint),
    ``epsilon`` (None = no DP), ``route`` (``pretrained`` | ``scratch``), ``tstr`` and ``risk``, each
    optionally with ``_lo``/``_hi`` interval ends. ``trtr`` and ``chance`` are the dataset's lines.
    """
    from plotly.subplots import make_subplots

    own = {r.get("cohort") for r in rows if r.get("dataset") == fingerprint}  # another build of it is no replicate
    rows = [r for r in rows if r.get("dataset") == fingerprint
            or (family is not None and r.get("family") == family and r.get("cohort") not in own)]
    n_cohorts = len({r.get("dataset") for r in rows})
    eps = sorted({eps_key(r["epsilon"]) for r in rows if r.get("epsilon") is not None})
    no_dp = no_dp_position(eps)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("utility: TSTR balanced accuracy", "privacy risk: " + risk_label))
    lines = {"tstr": [(trtr, "TRTR (real data)", style.GREY, "top right"),
                      (chance, "chance", style.GREY, "bottom right")],
             "risk": [(risk_chance, "chance", style.GREY, "bottom right")]}
    for i, key in enumerate(("tstr", "risk"), start=1):
        for route in ROUTE_STYLE:
            for trace in _frontier_traces(rows, key, route, no_dp, showlegend=i == 1):
                fig.add_trace(trace, row=i, col=1)
        for y, text, colour, where in lines[key]:
            if y is not None:
                fig.add_hline(y=y, row=i, col=1, line={"dash": "dot", "color": colour},
                              annotation_text=f"{text} {y:.3f}", annotation_position=where,
                              annotation_font_size=SMALL)
    ticks = [*eps, no_dp]
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{e:g}" for e in eps] + [NO_DP_TEXT])
    fig.update_xaxes(title_text="patient-level ε (log scale; δ on each card)", row=2, col=1)
    return _layout(
        fig,
        f"Frontier · {dataset_label}"  # the replicates on a line of their own: one line is cut at 1280 px
        + (f"<br>+ {n_cohorts - 1} replicate cohort(s) of its recipe" if n_cohorts > 1 else ""),
        height=720,
        legend={"orientation": "h", "y": -0.12, "font": {"size": SMALL}},
    )


def patients_figure(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Utility (TSTR/TRTR with its interval) against the number of private train patients, one line per ε.

    ``rows``: patient-level DP generators with ``n_patients``, ``epsilon``, ``ratio`` (and ``ratio_lo``/
    ``ratio_hi``); generators whose ε rounds to the same value share a line. Several runs of one size
    (replicate cohorts) are drawn as their mean with the run-to-run range; a single run with its own interval.
    Each point was evaluated on its own cohort, so the rows of different points share the recipe, not the holdout.
    """
    fig = go.Figure()
    by_eps: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("epsilon") is not None and r.get("n_patients") and r.get("ratio") is not None:
            by_eps.setdefault(round(float(r["epsilon"]), 1), []).append(r)
    for eps, pts in sorted(by_eps.items()):
        sizes: dict[int, list[dict[str, Any]]] = {}
        for r in pts:
            sizes.setdefault(int(r["n_patients"]), []).append(r)
        xs, ys, lo, hi, names = [], [], [], [], []
        for n, runs in sorted(sizes.items()):  # several runs of one size (replicate cohorts): mean and range
            vals = [float(r["ratio"]) for r in runs]
            m = float(np.mean(vals))
            low = min(vals) if len(runs) > 1 else runs[0].get("ratio_lo")
            high = max(vals) if len(runs) > 1 else runs[0].get("ratio_hi")
            xs.append(n), ys.append(m), names.append(", ".join(str(r["name"]) for r in runs))
            lo.append(0.0 if low is None else m - low), hi.append(0.0 if high is None else high - m)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=f"ε = {eps:g}",
                marker={"size": 12},
                error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
                customdata=[[t] for t in names],
                hovertemplate="%{customdata[0]}<br>%{x} train patients<br>TSTR/TRTR %{y:.3f}<extra></extra>",
            )
        )
    fig.add_hline(y=0.9, line={"dash": "dot", "color": style.GREY}, annotation_text="goal 0.90",
                  annotation_position="bottom right", annotation_font_size=SMALL)
    fig.update_xaxes(type="log", title_text="private train patients (log scale)")
    fig.update_yaxes(title_text="TSTR / TRTR")
    return _layout(fig, "How many patients? Utility at a fixed patient-level ε", height=420)


def power_figure(view: ReportView) -> go.Figure | None:
    """Power curves: rise of each black-box attack's AUC over the generator's own vs the fraction of member copies."""
    curves = {n: c for n, c in (view.meta.get("power") or {}).items() if c.get("rise")}
    if not curves:
        return None
    fig = go.Figure()
    for name, c in curves.items():
        keep = [i for i, r in enumerate(c["rise"]) if r is not None]
        x = [100 * c["fractions"][i] for i in keep]
        y = [c["rise"][i] for i in keep]
        lo = [c["rise"][i] - (c["rise_low"][i] if c["rise_low"][i] is not None else c["rise"][i]) for i in keep]
        hi = [(c["rise_high"][i] if c["rise_high"][i] is not None else c["rise"][i]) - c["rise"][i] for i in keep]
        fig.add_trace(
            go.Scatter(
                x=x, y=y, mode="lines+markers", name=name.replace("/", " · "),
                error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
            )
        )
    fig.add_hline(y=0, line_dash="dot", line_color="grey")
    ticks = sorted({100 * f for c in curves.values() for f in c["fractions"]})  # the graded fractions only
    return _layout(
        fig,
        "Power curves: AUC rise over the generator's own",
        height=420,
        xaxis={"title": "member copies in the released samples (%)", "type": "log", "tickmode": "array",
               "tickvals": ticks, "ticktext": [f"{t:g}%" for t in ticks]},
        yaxis={"title": "AUC rise (95% CI)"},
    )
