"""Figures that read at a glance: real VUs drawn over the synthetic ones on the UMAP (a visible density
in public mode), and every generator on Trade-offs named in the legend, none as overprinting text."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.figures import selected_rows, tradeoff_figure, umap_figure
from dashboard.summary import ReportView


def _view(n_real: int = 300, n_syn: int = 2000) -> ReportView:
    rng = np.random.default_rng(0)
    return ReportView(scalars={}, arrays={
        "umap/real": rng.normal(0, 1, (n_real, 2)), "umap/real_labels": rng.integers(0, 2, n_real),
        "umap/synthetic": rng.normal(0, 1, (n_syn, 2)), "umap/synthetic_labels": rng.integers(0, 2, n_syn),
    })


def test_real_vus_are_drawn_over_the_synthetic_ones() -> None:
    fig, sources = umap_figure(_view(), ["C", "T"])
    kinds = [s.kind for s in sources]
    assert kinds.index("real") > max(i for i, k in enumerate(kinds) if k == "synthetic"), kinds
    real = [t for t, s in zip(fig.data, sources, strict=True) if s.kind == "real"]
    syn = [t for t, s in zip(fig.data, sources, strict=True) if s.kind == "synthetic"]
    # both stay visible: real VUs as translucent outlines (open diamonds), the synthetic cloud as filled dots below
    assert all(t.marker.symbol.endswith("-open") and t.marker.opacity <= 0.5 for t in real)
    assert all(not s.marker.symbol.endswith("-open") and s.marker.opacity > t.marker.opacity for t in real for s in syn)
    under, _ = umap_figure(_view(), ["C", "T"], real_on_top=False)
    assert [t.name for t in under.data][0].endswith("real")


def test_public_density_is_on_top_and_drawn_as_lines() -> None:
    fig, sources = umap_figure(_view(), ["C", "T"], real_as_density=True)
    assert sources[-1] is None and fig.data[-1].type == "contour"
    assert fig.data[-1].contours.coloring == "lines" and fig.data[-1].line.width >= 2
    # WebGL points would hide an SVG density: the points are SVG scatter here
    assert {t.type for t in fig.data[:-1]} == {"scatter"}
    assert selected_rows([{"curve_number": len(fig.data) - 1, "point_index": 0}], sources) == {
        "real": [],
        "synthetic": [],
    }


def test_every_generator_is_named_in_the_legend_without_text_labels() -> None:
    rows = [
        {"name": "acgan-phantom", "tstr": 0.918, "worst_auc": 0.66, "epsilon": None},
        {"name": "acgan-phantom-dp", "tstr": 0.549, "worst_auc": 0.52, "epsilon": 10.0},
        {"name": "acgan-phantom-leaky", "tstr": 0.93, "worst_auc": 0.9, "epsilon": None},
        {"name": "acgan-phantom: copy control", "tstr": 0.99, "worst_auc": 1.0, "epsilon": None, "control": True},
    ]
    fig = tradeoff_figure(rows, trtr=0.99)
    names = [t.name for t in fig.data]
    assert "acgan-phantom · no DP" in names and "acgan-phantom-dp · ε = 10.0" in names
    assert "acgan-phantom-leaky · no DP" in names and "acgan-phantom: copy control · control" in names
    assert any(n.startswith("TRTR (real data)") for n in names) and fig.layout.showlegend
    assert not any("text" in (t.mode or "") for t in fig.data), "no text label can overprint another"
    assert not fig.layout.annotations
    colours = {t.name.split(" · ")[0]: t.marker.color for t in fig.data if t.mode == "markers"}
    assert len({colours[r["name"]] for r in rows[:3]}) == 3, "one colour per generator"
    assert colours["acgan-phantom: copy control"] == colours["acgan-phantom"], "a control shares its generator's colour"


def test_patients_figure_draws_one_line_per_epsilon_sorted_by_cohort_size():
    from dashboard.figures import patients_figure

    rows = [
        {"name": "b", "epsilon": 1.0, "n_patients": 600, "ratio": 0.9, "ratio_lo": 0.85, "ratio_hi": 0.95},
        {"name": "a", "epsilon": 0.998, "n_patients": 100, "ratio": 0.7, "ratio_lo": 0.6, "ratio_hi": 0.8},
        {"name": "c", "epsilon": 3.0, "n_patients": 240, "ratio": 0.8},
        {"name": "no-dp", "epsilon": None, "n_patients": None, "ratio": 0.95},
    ]
    fig = patients_figure(rows)
    lines = {t.name: t for t in fig.data}
    assert set(lines) == {"ε = 1", "ε = 3"}
    assert list(lines["ε = 1"].x) == [100, 600] and list(lines["ε = 1"].y) == [0.7, 0.9]
    assert list(lines["ε = 1"].error_y.arrayminus) == pytest.approx([0.1, 0.05])


def _frontier_rows():
    return [
        # dataset A (3 classes): two DP runs at ε = 1, one at ε = 3, and a non-DP baseline
        {"name": "a-e1-r1", "dataset": "A", "epsilon": 0.99, "route": "pretrained", "tstr": 0.80, "risk": 0.50},
        {"name": "a-e1-r2", "dataset": "A", "epsilon": 1.0, "route": "pretrained", "tstr": 0.90, "risk": 0.52},
        {"name": "a-e3", "dataset": "A", "epsilon": 3.0, "route": "pretrained", "tstr": 0.93, "tstr_lo": 0.9,
         "tstr_hi": 0.95, "risk": 0.51},
        {"name": "a-nodp", "dataset": "A", "epsilon": None, "route": "pretrained", "tstr": 0.97, "risk": 0.6},
        # dataset B (6 classes): never on A's axes
        {"name": "b-e1", "dataset": "B", "epsilon": 1.0, "route": "pretrained", "tstr": 0.17, "risk": 0.55},
        {"name": "b-nodp", "dataset": "B", "epsilon": None, "route": "scratch", "tstr": 0.27, "risk": 0.7},
    ]


def test_frontier_never_mixes_datasets_and_uses_one_log_axis_on_both_panels():
    from dashboard.figures import NO_DP_TEXT, frontier_figure

    fig = frontier_figure(_frontier_rows(), fingerprint="A", dataset_label="phantom A", trtr=0.99, chance=1 / 3)
    drawn = {n for t in fig.data for c in (t.customdata or []) for n in str(c[0]).split("<br>")[0].split(", ")}
    assert drawn == {"a-e1-r1", "a-e1-r2", "a-e3", "a-nodp"}
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "log"
    assert fig.layout.xaxis2.matches == "x" or fig.layout.xaxis.matches == "x2"  # one shared axis
    assert list(fig.layout.xaxis.ticktext)[-1] == NO_DP_TEXT and list(fig.layout.xaxis.tickvals) == [1.0, 3.0, 10.0]
    assert "phantom A" in fig.layout.title.text
    other = frontier_figure(_frontier_rows(), fingerprint="B", dataset_label="real B", trtr=0.5, chance=1 / 6)
    drawn_b = {n for t in other.data for c in (t.customdata or []) for n in str(c[0]).split("<br>")[0].split(", ")}
    assert drawn_b == {"b-e1", "b-nodp"}


def test_frontier_shows_the_run_to_run_spread_where_runs_share_an_epsilon():
    from dashboard.figures import frontier_figure

    fig = frontier_figure(_frontier_rows(), fingerprint="A", dataset_label="A")
    line = next(t for t in fig.data if t.name == "public pretraining + DP fine-tuning" and t.yaxis == "y")
    assert list(line.x) == [1.0, 3.0] and list(line.y) == pytest.approx([0.85, 0.93])
    # two runs at ε = 1: the range of the runs (0.80-0.90); one run at ε = 3: its own interval
    assert list(line.error_y.arrayminus) == pytest.approx([0.05, 0.03])
    assert list(line.error_y.array) == pytest.approx([0.05, 0.02])
    runs = next(t for t in fig.data if t.name.endswith("single runs") and t.yaxis == "y")
    assert sorted(runs.y) == pytest.approx([0.80, 0.90]) and list(runs.x) == [1.0, 1.0]
