"""The meeting-ready outputs (``report slides``, the Compare and Trade-offs pages) say what they compare:

A. generators of other datasets or class sets are not read on one accuracy axis (a note names the datasets, utility
   is drawn as TSTR / TRTR) and the deck keeps the words its figures' dropped titles held;
B. the deck labels a TSTR whose interval reaches chance "not useful for this task", as ``report table`` does;
C. the strongest attack's TPR at 1 % FPR is that attack's own, with its interval;
D. one generator given twice is one, and no machine path becomes an id;
E. the "How many patients?" chart draws only the selected dataset's recipe family, with the dataset on it.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from dashboard.compare import Compared
from dashboard.summary import ReportView

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
NUMBER = re.compile(r"<span class='num' data-model='([^']+)' data-key='([^']+)'>([^<]+)</span>")
WORD = re.compile(r"data-model='([^']+)' data-key='usefulness'>([^<]+)</span>")


def _shipped(*names: str) -> list[Path]:
    folders = [MODELS / n for n in names]
    if not all((f / "report" / "report.json").exists() for f in folders):
        pytest.skip("shipped reports absent")
    return folders


def _text(markup: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)))


def _section(deck: str, title: str) -> str:
    return next(s for s in re.findall(r"<section>(.*?)</section>", deck, re.S) if f"<h2>{title}</h2>" in s)


def _entry(name: str, fingerprint: str, classes: list[str], tstr: float, trtr: float, chance: float) -> Compared:
    scalars = {
        "utility.tstr.balanced_accuracy": tstr,
        "utility.tstr.balanced_accuracy_ci_low": tstr - 0.05,
        "utility.tstr.balanced_accuracy_ci_high": tstr + 0.05,
        "utility.trtr.balanced_accuracy": trtr,
        "utility.tstr_over_trtr": tstr / trtr,
        "utility.tstr_over_trtr_ci_low": (tstr - 0.05) / trtr,
        "utility.tstr_over_trtr_ci_high": (tstr + 0.05) / trtr,
        "utility.chance": chance,
        "privacy.worst.auc": 0.55,
    }
    card = {"classes": classes, "dp": None, "dataset": {"fingerprint": fingerprint, "recipe": {"name": f"ds-{name}"}}}
    return Compared(name, Path(name), card, ReportView(scalars=scalars))


# ---- A. other datasets: a note naming them, utility as TSTR / TRTR -----------------------------------------------
def test_generators_of_other_datasets_are_compared_on_tstr_over_trtr() -> None:
    from dashboard.compare import mixed_datasets, utility_measure
    from dashboard.compare_figures import measure_figure, tradeoff_chance_note, tradeoff_compare_figure

    phantom = _entry("p", "fp-phantom", ["C", "T", "L"], 0.9, 0.98, 1 / 3)
    spine = _entry("s", "fp-spine", list("ABCDEF"), 0.4, 0.6, 1 / 6)
    twin = _entry("q", "fp-phantom", ["C", "T", "L"], 0.8, 0.98, 1 / 3)
    assert mixed_datasets([phantom, twin]) is None and utility_measure([phantom, twin]) == "tstr"
    note = mixed_datasets([phantom, spine])
    assert "2 different datasets" in note and "ds-p" in note and "ds-s" in note and "6 classes" in note
    assert "TSTR / TRTR" in note and utility_measure([phantom, spine]) == "ratio"
    fig = tradeoff_compare_figure([phantom, spine])
    points = [t.x[0] for t in fig.data if t.mode == "markers" and t.marker.symbol != "line-ns"]
    assert points == pytest.approx([0.9 / 0.98, 0.4 / 0.6]), "utility drawn as TSTR / TRTR, not accuracy"
    assert "TSTR / TRTR" in fig.layout.xaxis.title.text and "shared axes" not in fig.layout.title.text
    marks = [t.x[0] for t in fig.data if t.marker.symbol == "line-ns"]
    assert marks == pytest.approx([(1 / 3) / 0.98, (1 / 6) / 0.6]), "each generator's chance, in the ratio's units"
    assert "chance over its TRTR" in tradeoff_chance_note(fig, [phantom, spine])
    bars = measure_figure([phantom, spine], utility_measure([phantom, spine]))
    assert bars.layout.yaxis.title.text == "TSTR / TRTR"
    # the same dataset, holdouts with other chance levels: accuracy axis, and the marks are explained in words
    same = tradeoff_compare_figure([phantom, _entry("r", "fp-phantom", ["C", "T", "L"], 0.5, 0.7, 0.25)])
    assert "accuracy chance" in tradeoff_chance_note(same, [phantom, twin])


def test_the_deck_names_the_datasets_and_keeps_the_chance_explanation() -> None:
    from dashboard.slides import deck_html, entries_from_folders

    deck = deck_html(entries_from_folders(_shipped("acgan-phantom", "acgan-spine-mri", "acgan-dp-e3")))
    useful = _text(_section(deck, "Is it useful?"))
    assert "3 datasets" in useful and "phantom-demo-120-s0" in useful and "phantom-400-s2-t2" in useful
    assert "6 classes" in useful and "TSTR / TRTR" in useful
    trade = _section(deck, "The trade-off")
    assert "A short vertical mark in a generator's colour" in _text(trade), "the figure's title is dropped: say it"
    assert "TSTR / TRTR" in _text(trade.split("<div")[0])
    start = re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*", trade).end()
    spec = json.JSONDecoder().raw_decode(trade, start)[0]  # the figure's traces
    xs = [t["x"][0] for t in spec if t.get("name", "").startswith(("acgan-phantom ", "acgan-spine-mri "))]
    ratios = [json.loads((MODELS / m / "report" / "report.json").read_text())["scalars"]["utility.tstr_over_trtr"]
              for m in ("acgan-phantom", "acgan-spine-mri")]
    assert xs == pytest.approx(ratios)


def test_compare_page_says_the_datasets_differ(shipped_only: None) -> None:
    at = _app()
    at.switch_page("app_pages/compare.py").run()
    at.multiselect(key="compare").set_value(["acgan-phantom", "acgan-spine-mri"]).run()
    assert not at.exception, [e.value for e in at.exception]
    warned = [w.value for w in at.warning if "different datasets" in w.value]
    assert warned and "phantom-demo-120-s0" in warned[0] and "spine-mri-real" in warned[0]
    titles = [json.loads(c.proto.spec)["layout"]["yaxis"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "TSTR / TRTR" in titles and "TSTR balanced accuracy" not in titles


# ---- B. the deck's usefulness label -------------------------------------------------------------------------------
def test_the_deck_says_not_useful_where_tstr_reaches_chance() -> None:
    from dashboard.slides import deck_html, entries_from_folders
    from synthvu_core.evaluation.table import usefulness_cell

    folders = _shipped("acgan-phantom-leaky", "acgan-dp-scratch-e10", "acgan-phantom")
    deck = deck_html(entries_from_folders(folders))
    words = dict(WORD.findall(deck))
    for f in folders:
        rep = json.loads((f / "report" / "report.json").read_text())
        cli = usefulness_cell(rep["scalars"], rep.get("meta") or {}, {})[1].replace("**", "")
        assert words[f.name] == cli, (f.name, words)
    assert words["acgan-dp-scratch-e10"] == "not useful for this task"  # 0.387 [0.333, 0.540], chance 0.333
    assert words["acgan-phantom"] == "above chance"
    assert "usefulness (TSTR vs chance)" in _text(_section(deck, "Is it useful?"))


def test_the_usefulness_label_of_a_made_up_report() -> None:
    from dashboard.slides import deck_html

    low = _entry("low", "fp", ["C", "T", "L"], 0.36, 0.98, 1 / 3)  # [0.31, 0.41] reaches 0.333
    high = _entry("high", "fp", ["C", "T", "L"], 0.9, 0.98, 1 / 3)
    words = dict(WORD.findall(deck_html([low, high])))
    assert words["low"].startswith("not useful for this task") and words["high"].startswith("above chance")


# ---- C. the strongest attack's own TPR, with its interval --------------------------------------------------------
def test_tpr_is_the_strongest_attacks_own_with_its_interval() -> None:
    from dashboard.compare import headline_columns, worst_tpr_key
    from dashboard.slides import deck_html, entries_from_folders

    (folder,) = _shipped("acgan-dp-e3")
    entries = entries_from_folders([folder])
    scalars = json.loads((folder / "report" / "report.json").read_text())["scalars"]
    attack = entries[0].view.worst_attack()
    key = "privacy.{}.{}.tpr_at_1pct_fpr".format(*attack)
    assert worst_tpr_key(entries[0].view) == key
    deck = _section(deck_html(entries), "Does it leak?")
    shown = {k: float(v) for _, k, v in NUMBER.findall(deck)}
    assert shown[key] == pytest.approx(scalars[key], abs=5e-4) and "privacy.worst.tpr_at_1pct_fpr" not in shown
    lo, hi = scalars[key + "_ci_low"], scalars[key + "_ci_high"]
    assert f"[{lo:.3f}, {hi:.3f}]" in deck and "/".join(attack) in _text(deck)
    rows = {r["measure"]: r for r in headline_columns(entries)}
    tpr = next(v for k, v in rows.items() if k.startswith("TPR @ 1% FPR"))[entries[0].ident]
    assert tpr.startswith(f"{scalars[key]:.3f}") and "[" in tpr
    assert rows["strongest counted attack"][entries[0].ident] == "/".join(attack)


def test_tpr_follows_the_attack_with_the_highest_auc() -> None:
    from dashboard.compare import headline_rows

    scalars = {
        "privacy.pairwise.pixel.auc": 0.46, "privacy.pairwise.pixel.tpr_at_1pct_fpr": 0.014,
        "privacy.pairwise.embedding.auc": 0.49, "privacy.pairwise.embedding.tpr_at_1pct_fpr": 0.005,
        "privacy.pairwise.embedding.tpr_at_1pct_fpr_ci_low": 0.0,
        "privacy.pairwise.embedding.tpr_at_1pct_fpr_ci_high": 0.012,
        "privacy.worst.auc": 0.49, "privacy.worst.tpr_at_1pct_fpr": 0.014,
    }
    meta = {"verdicts": {"released_samples": {"level": "ok", "counted": ["pairwise/pixel", "pairwise/embedding"]}}}
    e = Compared("g", Path("g"), {"classes": ["C", "T", "L"], "dp": None}, ReportView(scalars=scalars, meta=meta))
    (row,) = headline_rows([e])
    tpr = next(v for k, v in row.items() if k.startswith("TPR @ 1% FPR"))
    assert tpr.startswith("0.005") and "0.000" in tpr and "0.012" in tpr, tpr


# ---- D. one generator given twice; ids never a path ---------------------------------------------------------------
def test_one_generator_given_twice_is_one_and_no_path_is_an_id(tmp_path: Path, capsys) -> None:
    from dashboard.compare import distinct_ids
    from synthvu_core.cli import main

    (folder,) = _shipped("acgan-phantom")
    out = tmp_path / "dup.html"
    assert main(["report", "slides", "acgan-phantom", str(folder), "--out", str(out)]) == 0
    deck = out.read_text(encoding="utf-8")
    assert str(folder) not in deck and str(ROOT) not in deck, "a machine path in the deck"
    assert {m for m, _, _ in NUMBER.findall(deck)} == {"acgan-phantom"}
    assert "1 conditional generator " in _text(deck)
    same = distinct_ids([("g", "/a/models/g"), ("g", "/a/models/../models/g"), ("g", "/b/runs/g")])
    assert same == ["models/g", "models/g", "runs/g"]
    assert distinct_ids([("g", "/a/models/g"), ("g", "/a/models/g")]) == ["g", "g"]


# ---- E. the patient-count chart: the selected dataset's recipe family only ---------------------------------------
def _row(name: str, recipe: dict, n_patients: int, eps: float | None = 1.0, fp: str | None = None) -> dict:
    from dashboard.patient_counts import size_family

    card = {"dataset": {"recipe": recipe}}
    return {"name": name, "dataset": fp or f"{recipe['name']}", "size_family": size_family(card),
            "classes": ("C", "T", "L"), "unit": "patient" if eps is not None else None, "route": "pretrained",
            "epsilon": eps, "n_patients": n_patients, "ratio": 0.9}


def _recipe(name: str, n: int, seed: int, slices: int = 9) -> dict:
    return {"name": name, "n_patients": n, "seed": seed, "contrast": "T2", "extract": {"slices": slices}}


def test_patients_axis_keeps_to_the_selected_datasets_recipe_family() -> None:
    from dashboard.patient_counts import patients_axis

    big, small = _recipe("p-400-s2", 400, 2), _recipe("p-167-s3", 167, 3)
    other = _recipe("p-60-s0-sv", 60, 0, slices=16)  # another recipe (other extraction): never on this axis
    rows = [_row("e1", big, 240), _row("e3", big, 240, eps=3.0), _row("n100", small, 100),
            _row("sv", other, 36), _row("nodp", big, 240, eps=None)]
    axis = patients_axis(rows, rows[0], "p-400-s2")
    assert axis.why_not is None and {r["name"] for r in axis.rows} == {"e1", "n100"} and axis.sizes == [100, 240]
    assert patients_axis(rows, rows[-1], "p-400-s2").sizes == [100, 240], "a non-DP run's dataset: its DP runs' chart"
    lone = patients_axis(rows, rows[3], "p-60-s0-sv")
    assert not lone.rows and "Not drawn" in lone.why_not
    demo = _row("demo", _recipe("p-demo-120", 120, 0), 120, eps=None)  # same recipe family, no DP run of its own
    none = patients_axis([*rows, demo], demo, "p-demo-120")
    assert not none.rows and "no generator of dataset p-demo-120" in none.why_not
    own = patients_axis(rows, {**rows[0], "size_family": None}, "own scans")
    assert not own.rows and "phantom recipe" in own.why_not


def test_tradeoffs_page_draws_no_other_datasets_patient_chart(shipped_only: None) -> None:
    at = _app("acgan-phantom")
    at.switch_page("app_pages/tradeoffs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not _patient_charts(at), "the patient chart of other datasets drawn under acgan-phantom"
    assert any(i.value.startswith("Not drawn") and "phantom-demo-120-s0" in i.value for i in at.info)
    at = _app("acgan-dp-e3")
    at.switch_page("app_pages/tradeoffs.py").run()
    patients = _patient_charts(at)
    assert patients, "acgan-dp-e3's recipe has runs on cohorts of two sizes"
    names = {n for t in patients[0]["data"] for c in t.get("customdata") or [] for n in c[0].split(", ")}
    cards = {n: json.loads((MODELS / n / "card.json").read_text()) for n in names}
    assert all(c["dataset"]["recipe"]["name"].startswith(("phantom-400-", "phantom-167-")) for c in cards.values())


# ---- the app, shipped generators only ------------------------------------------------------------------------------
@pytest.fixture
def shipped_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("streamlit")
    _shipped("acgan-phantom", "acgan-spine-mri", "acgan-dp-e3")
    (tmp_path / "none").mkdir()
    monkeypatch.setenv("SYNTHVU_MODELS", str(tmp_path / "none"))
    monkeypatch.delenv("SYNTHVU_PUBLIC", raising=False)


def _patient_charts(at) -> list[dict]:  # noqa: ANN001 - AppTest
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [c for c in charts if c["layout"].get("xaxis", {}).get("title", {}).get("text", "").startswith(
        "private train patients")]


def _app(model: str | None = None):
    from fixtures.dashboard_models import start_app

    return start_app(model)


# ---- F. the ε shown is the run's, beside the bound composed over every run on its patients -------------------------
def test_tradeoffs_and_compare_show_the_composed_bound_beside_the_runs_own(shipped_only: None) -> None:
    """acgan-dp-e3 (ε 2.99 for its run) shares its 240 patients with runs without DP: the page never says its DP
    generators protect a patient, names the void bound, and every DP row carries the composed ε."""
    at = _app("acgan-dp-e3")
    at.switch_page("app_pages/tradeoffs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    assert "DP generators protect a patient" not in captions
    assert "bound is void" in captions and "acgan-dp-e3" in captions.split("bound is void")[1]
    shown = " ".join(t.value.to_string() for t in at.table)
    assert "composed ∞ over" in shown
    from dashboard.compare import headline_rows

    card = json.loads((MODELS / "acgan-dp-e3" / "card.json").read_text())
    (row,) = headline_rows([Compared("acgan-dp-e3", MODELS / "acgan-dp-e3", card, None)])
    assert row["DP ε"] == "2.99" and row["composed ε (every run on its patients)"].startswith("composed ∞ over")
    s6 = json.loads((MODELS / "acgan-dp-e1-s6" / "card.json").read_text())  # its own card: 0.99 over 1 run
    assert s6["privacy_ledger"]["runs"] == 1
    (row,) = headline_rows([Compared("acgan-dp-e1-s6", MODELS / "acgan-dp-e1-s6", s6, None)])
    assert row["composed ε (every run on its patients)"] == "composed 10.74 over 3 runs"  # the later runs' cards
