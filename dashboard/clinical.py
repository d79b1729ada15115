"""The Clinical page's loaders and figures: a joint generator's ``report/clinical.json`` and grade-conditioned VUs.

Reads JSON only until a page asks for VUs (then the generator is loaded through :mod:`dashboard.loaders`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from dashboard import style
from dashboard.loaders import CACHE_TTL_S, png_bytes, weights_stamp
from synthvu_core.names import CLINICAL_REPORT_FILE, REPORT_DIR

if TYPE_CHECKING:
    import plotly.graph_objects as go

RISKS = (("singling_out", "singling out"), ("linkability", "linkability"), ("inference", "attribute inference"))


def is_joint(card: dict[str, Any]) -> bool:
    """A joint generator (clinical row + grade-conditioned VUs) carries a ``clinical`` block in its card."""
    return isinstance(card.get("clinical"), dict) and bool(card["clinical"].get("second_condition"))


def privacy_budget(card: dict[str, Any]) -> dict[str, Any]:
    """The DP budget of a joint generator's two parts and their composition over every run on the patients.

    ``vus`` and ``table``: epsilon (None where that part has no DP); ``composed``: epsilon of the dataset's ledger,
    recomposed with the runs recorded since the card (None where a run on these patients had no DP, i.e. infinite);
    ``runs`` and ``delta`` of that ledger (no runs where the card's run was recorded nowhere)."""
    from synthvu_core.models.ledger import recomposed_block

    table = ((card.get("clinical") or {}).get("table") or {}).get("dp") or {}
    ledger = recomposed_block(card) or {}
    return {"vus": (card.get("dp") or {}).get("epsilon"), "table": table.get("epsilon"),
            "composed": ledger.get("composed_epsilon"), "runs": ledger.get("runs"),
            "delta": ledger.get("delta") or (card.get("dp") or {}).get("delta") or table.get("delta")}


def report_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / REPORT_DIR / CLINICAL_REPORT_FILE


@st.cache_data(max_entries=8, ttl=CACHE_TTL_S, show_spinner=False)
def _report(path: str, stamp: float) -> dict[str, Any] | None:
    from synthvu_core.errors import ReportError

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: the clinical report cannot be read ({e})") from None


def report(model_dir: str | Path) -> dict[str, Any] | None:
    """The clinical report, or None where it was not computed."""
    path = report_path(model_dir)
    return _report(str(path), path.stat().st_mtime) if path.is_file() else None


@st.cache_data(max_entries=16, ttl=CACHE_TTL_S, show_spinner=False)
def _grade_strip(model_dir: str, stamp: float, level: str, n: int, seed: int) -> bytes:
    from dashboard.images import labelled_rows, strip
    from dashboard.loaders import generator
    from synthvu_core.data.dataset import to_uint8
    from synthvu_core.models.joint import GRADE_NAMES, sample_conditioned

    gen = generator(model_dir)
    names = list(gen.card.get("sources") or [])
    rows = []
    for name in [g for g in GRADE_NAMES if g in names]:
        grade = int(name.split()[-1])
        x = to_uint8(sample_conditioned(gen, [level] * n, [grade] * n, seed=seed))
        rows.append((f"{level}\n{name}", strip(x[:, x.shape[1] // 2])))
    return png_bytes(labelled_rows(rows))


def grade_strip(model_dir: str | Path, level: str, n: int, seed: int) -> bytes:
    """PNG: middle slices of ``n`` VUs at ``level`` for every grade, one row per grade (the same noise in every
    row, so only the grade changes down a column)."""
    return _grade_strip(str(model_dir), weights_stamp(model_dir), level, n, seed)


def _fig(title: str, x_title: str, y_title: str) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, template="plotly_white",
                      font=dict(size=style.SMALL_FONT_SIZE, family=style.FONT_FAMILY), height=380,
                      margin=dict(l=60, r=20, t=60, b=60), legend=dict(orientation="h", y=-0.25))
    return fig


def marginal_figure(report: dict[str, Any], column: str) -> go.Figure:
    """Real (train patients) and synthetic shares of one categorical or grade column."""
    m = report["fidelity"]["marginals"][column]
    fig = _fig(f"{column}: total variation {m['value']:.3f}", column, "share of patients")
    for who in ("real", "synthetic"):
        fig.add_bar(x=list(m[who]), y=list(m[who].values()), name=who, marker_color=style.SOURCE_COLOURS[who])
    return fig


def age_grade_figure(report: dict[str, Any]) -> go.Figure:
    """Mean lumbar grade per age band, real against synthetic, with both Spearman rhos in the legend."""
    ag = report["fidelity"]["age_grade"]
    fig = _fig("Age-grade curve (mean lumbar grade)", "age band (years)", "mean lumbar grade (1-5)")
    for who in ("real", "synthetic"):
        part = ag[who]
        ci = part.get("interval")
        label = f"{who}: rho {part['rho']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        fig.add_scatter(x=part["bands"], y=part["curve"], mode="lines+markers", name=label,
                        line=dict(color=style.SOURCE_COLOURS[who], width=3))
    return fig


def association_figure(report: dict[str, Any], who: str) -> go.Figure:
    import plotly.graph_objects as go

    a = report["fidelity"]["association"]
    fig = go.Figure(go.Heatmap(z=np.array(a[who]), x=a["columns"], y=a["columns"], zmin=-1, zmax=1,
                               colorscale="RdBu", reversescale=True))
    fig.update_layout(title=f"Spearman associations, {who}", height=520, template="plotly_white",
                      font=dict(size=style.MIN_FONT_SIZE, family=style.FONT_FAMILY),
                      margin=dict(l=140, r=20, t=60, b=140))
    return fig


def risk_figure(report: dict[str, Any]) -> go.Figure:
    """anonymeter risks with their 95 % intervals, released table beside the leaky control."""
    fig = _fig("Table privacy (anonymeter): risk with 95 % interval", "attack", "risk (0 = none, 1 = total)")
    colours = {"released": style.OKABE_ITO["blue"], "leaky_control": style.OKABE_ITO["vermillion"]}
    for name, colour in colours.items():
        p = report["privacy"][name]
        y = [p[k]["risk"] for k, _ in RISKS]
        lo = [p[k]["risk"] - p[k]["interval"][0] for k, _ in RISKS]
        hi = [p[k]["interval"][1] - p[k]["risk"] for k, _ in RISKS]
        fig.add_scatter(x=[t for _, t in RISKS], y=y, mode="markers", name=name.replace("_", " "),
                        marker=dict(size=14, color=colour),
                        error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo, thickness=2))
    fig.update_yaxes(range=[-0.05, 1.05])
    return fig


def utility_figure(report: dict[str, Any]) -> go.Figure:
    """Grade balanced accuracies with intervals: TRTR, TSTR and the requested grade recognised, against chance."""
    u, r = report["utility"], report["recognition"]
    rows = [("TRTR", u["trtr"]), ("TSTR", u["tstr"]), ("grade recognised in generated VUs", r)]
    fig = _fig("Disc grade from the VU: balanced accuracy (95 % interval)", "", "balanced accuracy")
    for label, part in rows:
        ci = part.get("interval") or [part["balanced_accuracy"]] * 2
        fig.add_scatter(x=[label], y=[part["balanced_accuracy"]], mode="markers", showlegend=False,
                        marker=dict(size=14, color=style.OKABE_ITO["blue"]),
                        error_y=dict(type="data", symmetric=False, array=[ci[1] - part["balanced_accuracy"]],
                                     arrayminus=[part["balanced_accuracy"] - ci[0]], thickness=2))
    chance = u.get("chance")
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dash", line_color=style.GREY, annotation_text=f"chance {chance:.2f}")
    fig.update_yaxes(range=[0, 1.02])
    return fig


JOINT_PARTS = (("row", "clinical row (DCR)"), ("vus", "VUs (pairwise)"), ("joint", "row and VUs together"))


def joint_attack_figure(report: dict[str, Any]) -> go.Figure:
    """The patient-level joint membership attack: ROC AUC with its 95 % interval per part, released beside the
    leaky control, against 0.5."""
    fig = _fig("Joint membership attack (patients): ROC AUC with 95 % interval", "scores used", "ROC AUC")
    colours = {"released": style.OKABE_ITO["blue"], "leaky_control": style.OKABE_ITO["vermillion"]}
    for name, colour in colours.items():
        j = report["joint_membership"][name]
        y = [j[k]["auc"] for k, _ in JOINT_PARTS]
        ci = [j[k]["interval"] or [j[k]["auc"]] * 2 for k, _ in JOINT_PARTS]
        fig.add_scatter(x=[t for _, t in JOINT_PARTS], y=y, mode="markers", name=name.replace("_", " "),
                        marker=dict(size=14, color=colour),
                        error_y=dict(type="data", symmetric=False, array=[c[1] - v for c, v in zip(ci, y)],
                                     arrayminus=[v - c[0] for c, v in zip(ci, y)], thickness=2))
    fig.add_hline(y=0.5, line_dash="dash", line_color=style.GREY, annotation_text="chance 0.5")
    fig.update_yaxes(range=[0, 1.02])
    return fig


def readings(released_caught: bool, control_caught: bool) -> tuple[str, str]:
    """What the page says of the released table (or pair) and of its leaky control: the released one read against
    the control (``inconclusive (no power)`` where the control is not caught either), the control caught or not."""
    from synthvu_core.evaluation.clinical import reading

    return reading(released_caught, control_caught), "caught" if control_caught else "not caught"
