"""Generators side by side: told apart by their folders, one table of headline numbers with chance,
one UMAP only where the reports share its axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dashboard.compare import (
    Compared,
    distinct_ids,
    generator_label,
    headline_columns,
    recipe_spread,
    shared_umap_problem,
    training_seed_text,
)
from dashboard.summary import ReportView

CARD = {"classes": ["C", "T", "L"], "dp": None}


def _view(real: np.ndarray, tstr: float = 0.8, chance: float = 1 / 3, trtr: float = 0.95) -> ReportView:
    return ReportView(
        scalars={
            "utility.tstr.balanced_accuracy": tstr,
            "utility.tstr.balanced_accuracy_ci_low": tstr - 0.05,
            "utility.tstr.balanced_accuracy_ci_high": tstr + 0.05,
            "utility.trtr.balanced_accuracy": trtr,
            "utility.chance": chance,
            "privacy.worst.auc": 0.55,
        },
        arrays={"umap/real": real},
    )


def test_two_generators_of_one_name_are_told_apart_by_their_folders() -> None:
    ids = distinct_ids(
        [
            ("acgan-phantom", Path("srv/app/models/acgan-phantom")),
            ("acgan-phantom", Path("me/runs/acgan-phantom")),
            ("acgan-dp-e3", Path("srv/app/models/acgan-dp-e3")),
        ]
    )
    assert ids == ["models/acgan-phantom", "runs/acgan-phantom", "acgan-dp-e3"]
    deeper = distinct_ids([("g", Path("/a/x/run/g")), ("g", Path("/b/y/run/g"))])
    assert deeper == ["x/run/g", "y/run/g"] and not any(i.startswith("/") for i in deeper)
    assert generator_label("runs/acgan-phantom", "user") == "runs/acgan-phantom (yours)"


def test_headline_table_has_one_column_per_generator_and_chance() -> None:
    real = np.zeros((10, 2))
    entries = [
        Compared("a", Path("a"), CARD, _view(real, 0.9)),
        Compared("b", Path("b"), {**CARD, "dp": {"epsilon": 3.0}}, _view(real, 0.7)),
    ]
    rows = {r["measure"]: r for r in headline_columns(entries)}
    assert rows["TSTR [95% CI]"]["a"] == "0.900 [0.850, 0.950]" and rows["TSTR [95% CI]"]["b"].startswith("0.700")
    assert rows["chance"]["a"] == "0.333" and rows["DP ε"]["a"] == "no DP" and rows["DP ε"]["b"] == "3.00"


def test_chance_is_each_reports_holdout_not_the_cards_class_count() -> None:
    """A 6-level generator whose holdout holds 4 levels has chance 0.25, as its Overview says (not 1/6)."""
    six = {"classes": ["T11/T12", "T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5"], "dp": None}
    entries = [Compared("a", Path("a"), CARD, _view(np.zeros((4, 2)))),
               Compared("s", Path("s"), six, _view(np.zeros((4, 2)), 0.4, chance=0.25))]
    rows = {r["measure"]: r for r in headline_columns(entries)}
    assert rows["chance"] == {"measure": "chance", "a": "0.333", "s": "0.250"}


def _lines(fig) -> dict[str, float]:
    return {a.text.rsplit(" ", 1)[0]: float(a.text.rsplit(" ", 1)[1]) for a in fig.layout.annotations}


def test_tstr_bars_draw_each_generators_own_chance_and_trtr_where_they_differ() -> None:
    from dashboard.compare_figures import measure_figure, tradeoff_compare_figure

    real = np.zeros((4, 2))
    phantom = Compared("p", Path("p"), CARD, _view(real, 0.9, chance=1 / 3, trtr=0.98))
    spine = Compared("s", Path("s"), CARD, _view(real, 0.4, chance=1 / 6, trtr=0.6))
    same = measure_figure([phantom, Compared("q", Path("q"), CARD, _view(real, 0.8, trtr=0.98))], "tstr")
    assert _lines(same) == {"chance": 0.333, "TRTR (real data)": 0.98}
    assert not [t for t in same.data if t.type == "scatter"]
    mixed = measure_figure([phantom, spine], "tstr")
    assert not mixed.layout.shapes, "one generator's chance or TRTR drawn across another's bar"
    marks = {t.name.split(":")[0]: list(t.y) for t in mixed.data if t.type == "scatter"}
    assert marks == {"chance": [1 / 3, 1 / 6], "TRTR (real data)": [0.98, 0.6]}
    assert "each bar's own chance and TRTR" in mixed.layout.title.text
    assert [s.x0 for s in tradeoff_compare_figure([phantom, spine]).layout.shapes if s.x0 == s.x1] == []
    drawn = [t.x[0] for t in tradeoff_compare_figure([phantom, spine]).data if t.marker.symbol == "line-ns"]
    assert drawn == [1 / 3, 1 / 6]
    assert [s.x0 for s in tradeoff_compare_figure([phantom, phantom]).layout.shapes if s.x0 == s.x1] == [1 / 3]


def test_one_umap_only_where_the_reports_share_its_axes() -> None:
    real = np.random.default_rng(0).normal(size=(50, 2))
    same = [Compared("a", Path("a"), CARD, _view(real)), Compared("b", Path("b"), CARD, _view(real.copy()))]
    assert shared_umap_problem(same) is None
    other = [same[0], Compared("c", Path("c"), CARD, _view(real + 1.0))]
    assert "fitted on different real VUs" in shared_umap_problem(other)
    assert "no UMAP" in shared_umap_problem([same[0], Compared("d", Path("d"), CARD, None)])


def _seed_view(ratio: float, weights: str | None = None) -> ReportView:
    scalars = {"utility.tstr_over_trtr": ratio, "utility.tstr.balanced_accuracy": ratio / 2, "utility.chance": 0.25}
    meta = {"dataset_fingerprint": "d", "n_synthetic": 5000, "seed": 0, "generator_sha256": weights or str(ratio)}
    return ReportView(scalars=scalars, meta=meta)


def test_runs_of_one_recipe_get_their_spread_over_training_seeds() -> None:
    def card(seed: int, **extra: object) -> dict:
        return {**CARD, "training": {"steps": 600, "seed": seed, "seconds": 90 + seed, **extra}}

    runs = [Compared(f"r{s}", Path(f"r{s}"), card(s), _seed_view(r)) for s, r in enumerate([0.6, 0.8])]
    text = training_seed_text(runs)
    assert "2 runs" in text and "TSTR/TRTR mean 0.700, sd 0.141 (from two runs: rough), range 0.600–0.800" in text
    other = [runs[0], Compared("x", Path("x"), card(1, steps=900), _seed_view(0.8))]
    assert training_seed_text(other) is None  # two recipes with one run each: nothing to read
    assert training_seed_text([runs[0], Compared("n", Path("n"), card(1), None)]) is None
    copy = Compared("copy", Path("copy"), card(1), _seed_view(0.9, weights="0.6"))  # runs[0]'s weights again
    assert training_seed_text([runs[0], copy]) is None, "one generator listed twice is one run"


def test_a_generators_page_names_its_recipes_other_runs() -> None:
    from types import SimpleNamespace

    def info(name: str, seed: int, **extra: object) -> SimpleNamespace:
        card = {**CARD, "training": {"steps": 600, "seed": seed, **extra}}
        return SimpleNamespace(name=name, path=Path("/runs") / name, card=card, source="user")

    gens = [info("a", 0), info("b", 1), info("c", 2, ordinal=True), info("d", 3)]
    views = {"a": _seed_view(0.6), "b": _seed_view(0.8), "c": _seed_view(0.9), "d": None}
    text = recipe_spread(Path("/runs/a"), gens[0].card, gens, lambda g: views[g.name])
    assert text.startswith("This generator is one of 2 runs of one recipe here (a, b)")
    assert "TSTR/TRTR mean 0.700" in text
    assert recipe_spread(Path("/runs/c"), gens[2].card, gens, lambda g: views[g.name]) is None  # alone in its recipe
    assert recipe_spread(Path("/runs/elsewhere"), gens[0].card, gens, lambda g: views[g.name]) is None
