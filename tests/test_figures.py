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


def test_every_generator_chart_draws_the_datasets_tstr_chance_where_given() -> None:
    rows = [{"name": "own-data", "tstr": 0.5, "worst_auc": 0.6, "epsilon": None}]
    fig = tradeoff_figure(rows, trtr=0.73, chance=1 / 6)
    line = next(t for t in fig.data if t.name == "TSTR chance: 0.167")
    assert list(line.x) == [1 / 6, 1 / 6], "a vertical line at the chance level"
    assert list(line.y) == list(fig.layout.yaxis.range), "across the whole privacy axis"
    assert fig.layout.xaxis.range[0] <= 1 / 6, "the chance line is inside the axis"
    assert not any("TSTR chance" in t.name for t in tradeoff_figure(rows, trtr=0.73).data), "none without a chance"


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
    line = next(t for t in fig.data if t.name == "public pretraining + fine-tuning with DP" and t.yaxis == "y")
    assert list(line.x) == [1.0, 3.0] and list(line.y) == pytest.approx([0.85, 0.93])
    # two runs at ε = 1: the range of the runs (0.80-0.90); one run at ε = 3: its own interval
    assert list(line.error_y.arrayminus) == pytest.approx([0.05, 0.03])
    assert list(line.error_y.array) == pytest.approx([0.05, 0.02])
    runs = next(t for t in fig.data if t.name.endswith("single runs") and t.yaxis == "y")
    assert sorted(runs.y) == pytest.approx([0.80, 0.90]) and list(runs.x) == [1.0, 1.0]


def test_frontier_pools_only_runs_of_one_recipe():
    """The leaky control and a 300-step run are not replicates of the shipped generator: separate points."""
    from dashboard.figures import frontier_figure

    rows = [
        {"name": "good", "dataset": "A", "epsilon": None, "route": "pretrained", "tstr": 0.45, "risk": 0.58,
         "recipe": "train --steps 600"},
        {"name": "good-s1", "dataset": "A", "epsilon": None, "route": "pretrained", "tstr": 0.33, "risk": 0.6,
         "recipe": "train --steps 600"},
        {"name": "old", "dataset": "A", "epsilon": None, "route": "pretrained", "tstr": 0.23, "tstr_lo": 0.05,
         "tstr_hi": 0.45, "risk": 0.7, "recipe": "train --steps 300"},
    ]
    fig = frontier_figure(rows, fingerprint="A", dataset_label="A")
    nodp = next(t for t in fig.data if t.name.endswith("(ε = ∞)") and t.yaxis == "y")
    assert sorted(nodp.y) == pytest.approx([0.23, 0.39])  # the 300-step run alone; the two 600-step runs pooled
    i = list(nodp.y).index(pytest.approx(0.23))
    assert (nodp.error_y.arrayminus[i], nodp.error_y.array[i]) == pytest.approx((0.18, 0.22))  # its own interval


def test_recipe_key_drops_what_names_a_run_only():
    from dashboard.summary import recipe_key

    def card(cmd):
        return {"training": {"command": cmd}}

    a = recipe_key(card("python -m synthvu_core train --dataset d1 --out m1 --seed 0 --steps 600 --aux-weight 5.0"))
    b = recipe_key(card("python -m synthvu_core train --dataset d2 --out m2 --seed 1 --steps 600 --aux-weight 5.0"))
    c = recipe_key(card("python -m synthvu_core train --dataset d1 --out m1 --seed 0 --steps 300"))
    assert a == b != c and "--steps 600" in a and recipe_key({}) is None


def test_patients_figure_draws_replicate_runs_of_one_size_as_their_mean_and_range():
    from dashboard.figures import patients_figure

    rows = [
        {"name": "n100", "epsilon": 1.0, "n_patients": 100, "ratio": 0.9, "ratio_lo": 0.85, "ratio_hi": 0.95},
        {"name": "r1", "epsilon": 0.99, "n_patients": 240, "ratio": 0.80, "ratio_lo": 0.6, "ratio_hi": 1.0},
        {"name": "r2", "epsilon": 1.0, "n_patients": 240, "ratio": 0.90},
        {"name": "r3", "epsilon": 1.0, "n_patients": 240, "ratio": 0.94},
    ]
    line = patients_figure(rows).data[0]
    assert list(line.x) == [100, 240] and list(line.y) == pytest.approx([0.9, 0.88])
    assert list(line.error_y.arrayminus) == pytest.approx([0.05, 0.08]) and list(line.error_y.array) == pytest.approx(
        [0.05, 0.06])
    assert line.customdata[1][0] == "r1, r2, r3"


def test_frontier_draws_the_cohorts_of_its_recipe_family_and_no_other_dataset():
    from dashboard.figures import NO_DP_TEXT, frontier_figure

    fam = "phantom-400-t2 {...}"
    rows = [
        {"name": "e1", "dataset": "S2", "family": fam, "cohort": "c-s2", "epsilon": 0.99, "route": "pretrained",
         "tstr": 0.80, "risk": 0.5},
        {"name": "e1-r2", "dataset": "S6", "family": fam, "cohort": "c-s6", "epsilon": 1.0, "route": "pretrained",
         "tstr": 0.90, "risk": 0.5},
        {"name": "e1-r3", "dataset": "S7", "family": fam, "cohort": "c-s7", "epsilon": 1.0, "route": "pretrained",
         "tstr": 0.94, "risk": 0.5},
        {"name": "nodp-twin", "dataset": "S5", "family": fam, "cohort": "c-s5", "epsilon": None,
         "route": "pretrained", "tstr": 0.97, "risk": 0.6},
        {"name": "other", "dataset": "X", "family": "phantom-167-t2 {...}", "epsilon": 1.0, "route": "pretrained",
         "tstr": 0.1, "risk": 0.5},
        {"name": "old-build", "dataset": "S2-old", "family": fam, "cohort": "c-s2", "epsilon": 3.0,
         "route": "pretrained", "tstr": 0.1, "risk": 0.5},  # another build of the selected cohort: no replicate
    ]
    fig = frontier_figure(rows, fingerprint="S2", dataset_label="c-s2", family=fam)
    line = next(t for t in fig.data if t.name == "public pretraining + fine-tuning with DP" and t.yaxis == "y")
    assert list(line.x) == [1.0] and list(line.y) == pytest.approx([0.88])
    assert list(line.error_y.arrayminus) == pytest.approx([0.08]) and list(line.error_y.array) == pytest.approx([0.06])
    assert "cohorts: c-s2, c-s6, c-s7" in line.customdata[0][0]
    nodp = next(t for t in fig.data if t.name.endswith(NO_DP_TEXT) and t.yaxis == "y")
    assert list(nodp.y) == [0.97]
    drawn = {n for t in fig.data for c in (t.customdata or []) for n in str(c[0]).split("<br>")[0].split(", ")}
    assert drawn == {"e1", "e1-r2", "e1-r3", "nodp-twin"}
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.matches == "x2"
    alone = frontier_figure(rows, fingerprint="S2", dataset_label="c-s2")  # no family: the one dataset only
    assert {n for t in alone.data for c in (t.customdata or []) for n in str(c[0]).split("<br>")[0].split(", ")} == {
        "e1"}


def test_recipe_family_ignores_the_name_and_seed_only():
    from synthvu_core.data.build import PhantomRecipe, recipe_family

    a = PhantomRecipe.for_cohort(400, seed=2).as_dict()
    assert recipe_family(a) == recipe_family(PhantomRecipe.for_cohort(400, seed=6).as_dict())
    assert recipe_family(a) != recipe_family(PhantomRecipe.for_cohort(167, seed=2).as_dict())
    assert recipe_family(a) != recipe_family(PhantomRecipe.for_cohort(400, seed=2, contrast="T1").as_dict())
    assert recipe_family(None) is None and recipe_family({"name": "own"}) is None


SPINE_CLASSES = ["T11/T12", "T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5"]


def _spine_view() -> ReportView:
    """The shipped real-data generator's report (T11/T12 and T12/L1 on one holdout patient each)."""
    from pathlib import Path

    from dashboard.summary import view_of
    from synthvu_core.evaluation.report import load_report

    folder = Path(__file__).resolve().parents[1] / "models" / "acgan-spine-mri"
    if not (folder / "report" / "report.json").exists():
        pytest.skip("shipped report of acgan-spine-mri absent")
    return view_of(load_report(folder))


def test_recall_figure_draws_each_class_interval_its_patients_and_chance() -> None:
    from dashboard.figures import recall_figure
    from dashboard.summary import usefulness_of
    from synthvu_core.evaluation.utility import class_recall

    view, classes = _spine_view(), SPINE_CLASSES
    fig = recall_figure(view, classes)
    tstr = next(t for t in fig.data if t.name == "TSTR")
    per = class_recall(view.arrays, "tstr")
    up, down = np.asarray(tstr.error_y.array, dtype=float), np.asarray(tstr.error_y.arrayminus, dtype=float)
    for i, c in enumerate(per):
        if c.n_patients is not None and c.n_patients < 2:  # one holdout patient: no interval drawn
            assert np.isnan(up[i]) and np.isnan(down[i])
        else:
            assert up[i] == pytest.approx(c.high - c.recall) and down[i] == pytest.approx(c.recall - c.low)
    assert any(c.n_patients == 1 for c in per) and any((c.n_patients or 0) >= 2 for c in per)
    ticks = list(fig.layout.xaxis.ticktext)
    assert [t.split("<br>")[0] for t in ticks] == classes
    assert all(t.endswith(f"<br>{c.n_patients} patient{'' if c.n_patients == 1 else 's'}") for t, c in zip(ticks, per))
    trts = next(t for t in fig.data if t.name == "TRTS")
    assert trts.error_y.array is None  # TRTS reads samples, not holdout patients: no patient interval
    chance = usefulness_of(view).chance
    assert [s.y0 for s in fig.layout.shapes] == [pytest.approx(chance)]


def test_recall_figure_claims_no_interval_or_patients_that_a_report_does_not_store() -> None:
    import dataclasses

    from dashboard.figures import recall_figure

    view, classes = _spine_view(), SPINE_CLASSES
    assert "with 95% intervals" in recall_figure(view, classes).layout.title.text
    older = dataclasses.replace(view, arrays={k: v for k, v in view.arrays.items() if k != "utility/holdout_patient"})
    fig = recall_figure(older, classes)  # a report without per-patient holdout data
    assert "interval" not in fig.layout.title.text and fig.layout.xaxis.ticktext is None
    assert all(not np.isfinite(np.asarray(t.error_y.array, dtype=float)).any() for t in fig.data
               if t.error_y.array is not None)
