"""Every figure reads from the back of a meeting room: no text in any figure builder is smaller than
:data:`dashboard.style.MIN_FONT_SIZE`, and every colour a builder names comes from the palette."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from dashboard import compare_figures, figures, style
from dashboard.compare import Compared
from dashboard.summary import ReportView, view_of

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["acgan-dp-e10", "acgan-phantom"]


@functools.cache
def _shipped(name: str) -> tuple[ReportView, dict[str, Any]]:
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.models.registry import load_card

    folder = ROOT / "models" / name
    if not (folder / "report" / "report.json").exists():
        pytest.skip(f"shipped report of {name} absent")
    return view_of(load_report(folder)), load_card(folder)


@functools.cache
def _builds() -> dict[str, list[go.Figure]]:
    """Every builder called on a shipped report (or its rows): name -> the figures it made."""
    view, card = _shipped(MODELS[0])
    classes = list(card["classes"])
    entries = [Compared(ident=m, path=ROOT / "models" / m, card=_shipped(m)[1], view=_shipped(m)[0]) for m in MODELS]
    rows = [
        {
            "name": "a",
            "tstr": 0.9,
            "worst_auc": 0.6,
            "worst_tpr1": 0.05,
            "epsilon": None,
            "route": "pretrained",
            "ratio": 0.9,
            "risk": 0.6,
            "n_patients": 100,
            "dataset": "fp",
        },
        {
            "name": "b",
            "tstr": 0.7,
            "worst_auc": 0.5,
            "worst_tpr1": 0.01,
            "epsilon": 3.0,
            "route": "scratch",
            "ratio": 0.7,
            "risk": 0.5,
            "ratio_lo": 0.6,
            "ratio_hi": 0.8,
            "dataset": "fp",
            "n_patients": 200,
        },
    ]
    log = {"step": np.arange(5), "loss_d": np.ones(5), "loss_g": np.ones(5)}
    return {
        "umap_figure": [
            figures.umap_figure(view, classes)[0],
            figures.umap_figure(view, classes, real_as_density=True)[0],
        ],
        "utility_figure": [figures.utility_figure(view)],
        "confusion_figure": [figures.confusion_figure(view, s, classes) for s in ("trtr", "tstr", "trts")],
        "recall_figure": [figures.recall_figure(view, classes)],
        "roc_figure": [figures.roc_figure(view, "pixel"), figures.roc_figure(view, "pixel", log_fpr=True)],
        "ratio_histogram": [figures.ratio_histogram(view, "pixel")],
        "patient_figure": [figures.patient_figure(view, "pairwise", "pixel")],
        "tradeoff_figure": [
            figures.tradeoff_figure(rows, "worst_auc", trtr=0.95),
            figures.tradeoff_figure(rows, "worst_tpr1"),
        ],
        "loss_figure": [figures.loss_figure(log)],
        "frontier_figure": [
            figures.frontier_figure(rows, fingerprint="fp", dataset_label="a dataset", trtr=0.95, chance=0.33)
        ],
        "patients_figure": [figures.patients_figure(rows)],
        "power_figure": [figures.power_figure(view)],
        "measure_figure": [compare_figures.measure_figure(entries, m) for m in compare_figures.MEASURES],
        "tradeoff_compare_figure": [compare_figures.tradeoff_compare_figure(entries)],
        "umap_compare_figure": [compare_figures.umap_compare_figure(entries)],
    }


def _builders() -> set[str]:
    """Public functions of the figure modules that return a figure (by their annotation)."""
    out = set()
    for mod in (figures, compare_figures):
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if (
                fn.__module__ == mod.__name__
                and not name.startswith("_")
                and "Figure" in str(inspect.signature(fn).return_annotation)
            ):
                out.add(name)
    return out


def font_sizes(obj: Any, path: str = "") -> list[tuple[str, float]]:
    """Every ``size`` set under a ``*font`` key of a figure's JSON, with where it sits."""
    found: list[tuple[str, float]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            here = f"{path}.{k}"
            if "font" in k.lower() and isinstance(v, dict) and isinstance(v.get("size"), (int, float)):
                found.append((here, float(v["size"])))
            if "font_size" in k.lower() and isinstance(v, (int, float)):
                found.append((here, float(v)))
            found += font_sizes(v, here)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += font_sizes(v, f"{path}[{i}]")
    return found


def test_every_figure_builder_is_checked() -> None:
    assert _builders() <= set(_builds()), f"builders without a text-size check: {_builders() - set(_builds())}"


def test_no_figure_text_is_below_the_minimum_size() -> None:
    for name, figs in _builds().items():
        for fig in figs:
            assert fig is not None, f"{name} drew nothing from a complete report"
            js = fig.to_plotly_json()
            base = js["layout"].get("font", {}).get("size")
            assert base is not None and base >= style.MIN_FONT_SIZE, f"{name}: base font {base}"
            small = [(where, size) for where, size in font_sizes(js) if size < style.MIN_FONT_SIZE]
            assert not small, f"{name}: text below {style.MIN_FONT_SIZE} px at {small}"


def test_heatmap_cell_numbers_have_an_explicit_size() -> None:
    """Plotly shrinks heatmap cell text to fit the cell unless a size is given (about 5 px on a laptop)."""
    view, card = _shipped(MODELS[0])
    fig = figures.confusion_figure(view, "tstr", card["classes"])
    assert fig.data[0].textfont.size >= style.MIN_FONT_SIZE


def test_colours_come_from_the_palette() -> None:
    allowed = {c.lower() for c in (*style.OKABE_ITO.values(), style.GREY, "#ffffff")}
    for name, figs in _builds().items():
        for fig in figs:
            for trace in fig.to_plotly_json()["data"]:
                colour = (trace.get("marker") or {}).get("color")
                if isinstance(colour, str) and colour.startswith("#"):
                    assert colour.lower() in allowed, f"{name}: {colour} is not in the palette"


def _config_source(node) -> str | None:
    """The shared-config function a ``config=`` value comes from (``style.plot_config(...)``, or a dict that
    unpacks it), else None."""
    import ast

    if isinstance(node, ast.Dict):
        found = [_config_source(v) for k, v in zip(node.keys, node.values) if k is None]
        return next((f for f in found if f), None)
    if isinstance(node, ast.Call):
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
        owner = getattr(fn.value, "id", "style") if isinstance(fn, ast.Attribute) else "style"
        return name if owner == "style" and name in ("plot_config", "svg_config") else None
    return None


def _chart_calls() -> list[tuple[str, object]]:
    """Every ``plotly_chart(...)`` and figure ``to_html(...)`` call in the app, its pages and the dashboard."""
    import ast

    files = [ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py")), *sorted((ROOT / "dashboard").glob("*.py"))]
    out = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("plotly_chart", "to_html"):
                out.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return out


def test_every_chart_downloads_at_print_resolution_in_the_projects_type() -> None:
    """Each ``plotly_chart`` call of a page (and each figure written into the HTML report and the slides) takes
    its config from the one shared place, :func:`dashboard.style.plot_config`: the modebar camera saves a PNG
    at 3 × the on-screen size, or SVG (kaleido is not installed: images are made by plotly.js in the browser,
    in the figure's own type, which every builder sets to the project's)."""
    calls = _chart_calls()
    assert sum("plotly_chart" in getattr(n.func, "attr", "") for _, n in calls) >= 15, "the scan finds the charts"
    bare = [where for where, node in calls
            if not any(k.arg == "config" and _config_source(k.value) for k in node.keywords)]
    assert bare == [], f"charts without the shared export config: {bare}"
    png, svg = style.plot_config()["toImageButtonOptions"], style.svg_config()["toImageButtonOptions"]
    assert png["format"] == "png" and png["scale"] >= 3 and png["filename"].startswith("synthvu")
    assert svg["format"] == "svg" and svg["filename"].startswith("synthvu")
    assert style.plot_config("synthvu-umap")["toImageButtonOptions"]["filename"] == "synthvu-umap"
    for name, figs in _builds().items():
        for fig in figs:
            assert fig.layout.font.family == style.FONT_FAMILY, f"{name}: not in the project's type"
