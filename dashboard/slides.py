"""A slide deck of one or more generators: one self-contained HTML file built on reveal.js (no streamlit).

One message per slide: what was trained, is it useful, does it leak, the trade-off. reveal.js
(``dashboard/vendor/revealjs``, MIT) and plotly.js are inlined, so the deck opens offline and makes no
network request. Every number is the report's, written with ``data-model``/``data-key`` attributes
naming the generator and the report scalar it shows (tests read them back).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dashboard import style
from dashboard.compare import (
    Compared,
    distinct_ids,
    entry_chance,
    generator_label,
    mixed_datasets,
    seed_groups,
    shared_value,
    unique_folders,
    usefulness_word,
    utility_measure,
    worst_attack_name,
    worst_auc_key,
    worst_tpr_key,
)
from dashboard.compare_figures import measure_figure, tradeoff_chance_note, tradeoff_compare_figure
from dashboard.summary import epsilon_text, verdict, with_ci
from synthvu_core.records import epochs_text

if TYPE_CHECKING:
    import plotly.graph_objects as go

VENDOR = Path(__file__).resolve().parent / "vendor" / "revealjs"
SLIDE_W, SLIDE_H = 1280, 720

DECK_STYLE = f"""
.reveal {{ font-family: {style.FONT_FAMILY}; font-size: 30px; color: #111; }}
.reveal h1, .reveal h2 {{ font-family: {style.FONT_FAMILY}; text-transform: none; color: #111; font-weight: 700; }}
.reveal h1 {{ font-size: 56px; }} .reveal h2 {{ font-size: 42px; margin-bottom: 16px; }}
.reveal table {{ border-collapse: collapse; font-size: 24px; margin: 8px auto; }}
.reveal th, .reveal td {{ border-bottom: 1px solid #999; padding: 6px 12px; text-align: right; white-space: nowrap; }}
.reveal th:first-child, .reveal td:first-child {{ text-align: left; }}
.reveal .lead {{ font-size: 28px; margin: 6px 0 12px; }}
.reveal .note {{ font-size: 20px; color: #333; }}
.reveal .badge {{ padding: 2px 10px; border-radius: 6px; font-weight: 700; }}
.reveal .slides section {{ text-align: left; }}
.reveal td .cell {{ white-space: normal; display: inline-block; max-width: 520px; text-align: left; }}
.reveal td.why {{ text-align: left; white-space: normal; font-size: 20px; color: #333; }}
.reveal td.useful {{ text-align: left; }}
.reveal td.useful span {{ display: inline-block; white-space: normal; max-width: 190px; }}
.reveal table.stack {{ font-size: 22px; }}
.reveal table.stack th {{ white-space: normal; }}
.reveal table.stack th, .reveal table.stack td {{ padding: 4px 10px; }}
.reveal table.stack .ci {{ display: block; }}
.reveal .not-useful {{ color: {style.VERDICT_COLOURS["leak"]}; font-weight: 700; }}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _num(e: Compared, key: str) -> str:
    """A report scalar with its 95 % CI, tagged with the generator and key it comes from."""
    if e.view is None:
        return "—"
    v = e.view.scalar(key)
    if v is None:
        return f"<span class='note'>{_esc(with_ci(e.view, key))}</span>"
    lo, hi = e.view.scalar(key + "_ci_low"), e.view.scalar(key + "_ci_high")
    ci = f" <span class='note ci'>[{lo:.3f}, {hi:.3f}]</span>" if lo is not None and hi is not None else ""
    return f"<span class='num' data-model='{_esc(e.ident)}' data-key='{_esc(key)}'>{v:.3f}</span>{ci}"


#: ``report table``'s usefulness column.
USEFULNESS = "usefulness (TSTR vs chance)"
#: Table columns whose cells wrap (words, not numbers), and their cell class.
_WRAPPED = {"why": "why", USEFULNESS: "useful"}


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], stack: bool = False) -> str:
    """An HTML table; ``stack``: each interval on a line below its number, headers wrapped (a wide table fits)."""
    h = "".join(f"<th>{_esc(c)}</th>" for c in head)
    b = "".join(
        "<tr>" + "".join(f"<td{f' class={_WRAPPED[h]}' if h in _WRAPPED else ''}>{c}</td>" for h, c in zip(head, r))
        + "</tr>"
        for r in rows
    )
    return f"<table{' class=stack' if stack else ''}><tr>{h}</tr>{b}</table>"


def _useful_cell(e: Compared) -> str:
    """``report table``'s usefulness label of ``e``'s report, tagged like a number (tests read it back)."""
    word = usefulness_word(e.view)
    cls = "not-useful" if word.startswith("not useful") else "word"
    return f"<span class='{cls}' data-model='{_esc(e.ident)}' data-key='usefulness'>{_esc(word)}</span>"


def _badge(level: str) -> str:
    bg = style.VERDICT_COLOURS.get(level, style.GREY)
    return (
        f"<span class='badge' style='background:{bg};color:{style.text_colour_on(bg)}'>"
        f"{_esc(level.replace('_', ' '))}</span>"
    )


class _Figures:
    """Figure HTML at slide size; plotly.js inlined with the first figure only."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig: go.Figure, height: int = 430) -> str:
        fig.update_layout(width=SLIDE_W - 120, height=height, autosize=False, title=None, margin={"t": 20})
        out = fig.to_html(
            full_html=False,
            include_plotlyjs=self.count == 0,
            config={**style.plot_config("synthvu-slide"), "responsive": False},
        )
        self.count += 1
        return out


def _trained(entries: Sequence[Compared]) -> str:
    """One row per property, one column per generator (four generators still fit the slide)."""
    cols = []
    for e in entries:
        c = e.card
        tr, ds = c.get("training") or {}, c.get("dataset") or {}
        recipe = ds.get("recipe") or {}
        epochs = tr.get("epochs")
        cols.append(
            {
                "model": (c.get("architecture") or {}).get("name", "—"),
                "positions": f"{c.get('scheme', '—')}: {', '.join(e.classes)}",
                "data": f"phantom ({recipe.get('name', '?')})" if recipe else "real NIfTI scans",
                "training": (f"{epochs_text(epochs)} epochs, " if epochs is not None else "")
                + f"{tr.get('steps', '?')} steps",
                "differential privacy": epsilon_text(c, e.view),
            }
        )
    rows = [[_esc(k), *(f"<span class='cell'>{_esc(col[k])}</span>" for col in cols)] for k in cols[0]]
    head = ["", *(generator_label(e.ident, e.source) for e in entries)]
    return (
        "<section><h2>What was trained</h2><p class='lead'>"
        f"{len(entries)} conditional generator{'s' if len(entries) != 1 else ''} of spine MRI vertebral units</p>"
        + _table(head, rows)
        + "</section>"
    )


def _useful(entries: Sequence[Compared], fig: _Figures) -> str:
    chances = [entry_chance(e) for e in entries]
    rows = [
        [
            _esc(generator_label(e.ident, e.source)),
            _num(e, "utility.tstr.balanced_accuracy"),
            "—" if c is None else f"{c:.3f}",
            _useful_cell(e),
            _num(e, "utility.trtr.balanced_accuracy"),
            _num(e, "utility.tstr_over_trtr"),
        ]
        for e, c in zip(entries, chances)
    ]
    one = shared_value(chances)
    guess = f"guessing scores {one:.2f}" if one is not None else "guessing scores each holdout's own chance (column)"
    lead = ("A position classifier trained on synthetic VUs, tested on real patients (TSTR), against one trained "
            f"on real VUs (TRTR); {guess}.")
    mixed = mixed_datasets(entries, brief=True)
    height = max(200, 330 - 25 * max(0, len(entries) - 2) - (60 if mixed else 0))  # the slide holds 720 px
    return (
        "<section><h2>Is it useful?</h2>"
        f"<p class='lead'>{_esc(lead)}</p>"
        + (f"<p class='note mixed'>{_esc(mixed)}</p>" if mixed else "")
        + _table(["generator", "TSTR [95% CI]", "chance", USEFULNESS, "TRTR [95% CI]", "TSTR / TRTR"], rows, stack=True)
        + fig(measure_figure(entries, utility_measure(entries)), height=height)
        + "</section>"
    )


def _seeds(entries: Sequence[Compared]) -> str:
    """Where two or more generators are runs of one recipe: each recipe's spread over training seeds and each later
    recipe against the first (``report seeds``); "" otherwise."""
    from synthvu_core.evaluation.training_seeds import differences

    groups = seed_groups(entries)
    if groups is None:
        return ""
    against = {d.recipe: d for d in differences(groups)}
    rows = []
    for i, g in enumerate(groups):
        s, d = g.spread("ratio"), against.get(i + 1)
        spread = "—" if s is None else f"{s.mean:.3f}" + (f", sd {s.sd:.3f}, {s.low:.3f}–{s.high:.3f}" if s.sd else "")
        diff = "reference" if i == 0 else "not compared" if d is None else f"{d.difference:+.3f}" + (
            f" [{d.low:+.3f}, {d.high:+.3f}]" if d.low is not None else "")
        rows.append([f"recipe {i + 1}", _esc(", ".join(r.name for r in g.runs)), _esc(spread), _esc(diff),
                     _esc("" if d is None else d.reading)])
    return (
        "<section><h2>Runs of one recipe</h2><p class='lead'>TSTR / TRTR over training seeds: one run's interval "
        "holds one trained generator. Differences: Welch 95% interval over training seeds, on this holdout only.</p>"
        + _table(["recipe", "runs", "TSTR / TRTR: mean, sd, range", "minus recipe 1", "why"], rows)
        + "</section>"
    )


def _leaks(entries: Sequence[Compared]) -> str:
    rows = []
    for e in entries:
        v = verdict(e.view, e.card)
        first = v.text.split(". ")[0].split(" (")[0].rstrip(".") + "."  # its first clause; details on Privacy
        rows.append(
            [
                _esc(generator_label(e.ident, e.source)),
                (_num(e, worst_auc_key(e.view)) + f"<span class='note ci'>{_esc(worst_attack_name(e.view))}</span>")
                if e.view is not None else "—",
                _num(e, worst_tpr_key(e.view)) if e.view is not None else "—",
                _badge(v.level),
                _esc(first),
            ]
        )
    return (
        "<section><h2>Does it leak?</h2>"
        "<p class='lead'>The strongest counted membership attack on the released samples, its AUC and its TPR at 1% "
        "FPR: AUC 0.5 and TPR 0.01 are chance.</p>"
        + _table(["generator", "strongest attack: AUC [95% CI]", "its TPR @ 1% FPR [95% CI]", "verdict", "why"], rows,
                 stack=True)
        + "</section>"
    )


def _tradeoff(entries: Sequence[Compared], fig: _Figures) -> str:
    """Utility against risk; the slide says what the figure's dropped title said (its chance marks, its axis)."""
    figure = tradeoff_compare_figure(entries)
    utility = "TSTR / TRTR (the datasets differ: each on its own holdout)" if mixed_datasets(entries) else "Utility"
    marks = tradeoff_chance_note(figure, entries)
    return (
        "<section><h2>The trade-off</h2>"
        f"<p class='lead'>{_esc(utility)} against privacy risk (the strongest counted attack's AUC), each with its "
        "95% CI: lower right is better.</p>"
        + (f"<p class='note chance'>{_esc(marks)}</p>" if marks else "")
        + fig(figure, height=470 if marks else 540)
        + "</section>"
    )


def deck_html(entries: Sequence[Compared], title: str = "synthvu: synthetic spine MRI") -> str:
    """The deck of ``entries`` (one or more generators) as one self-contained HTML document."""
    fig = _Figures()
    made = datetime.now(UTC).strftime("%Y-%m-%d")
    names = ", ".join(generator_label(e.ident, e.source) for e in entries)
    cover = (
        f"<section><h1>{_esc(title)}</h1><p class='lead'>{_esc(names)}</p>"
        f"<p class='note'>Numbers from each generator's saved evaluation report · deck made {made}</p></section>"
    )
    slides = [cover, _trained(entries), _useful(entries, fig), _seeds(entries), _leaks(entries),
              _tradeoff(entries, fig)]
    slides = [s for s in slides if s]
    return reveal_deck(title, slides)


def entries_from_folders(folders: Sequence[str | Path]) -> list[Compared]:
    """Generators (folders) with their cards and saved reports, ids told apart by their folders.

    Raises ``ReportError`` where a folder has no report yet (a deck shows measured numbers only).
    """
    from dashboard.summary import view_of
    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.models.registry import load_card

    folders = unique_folders(folders)  # one generator given twice is one entry
    cards = [load_card(f) for f in folders]
    ids = distinct_ids([(str(c.get("name") or Path(f).name), Path(f).resolve()) for c, f in zip(cards, folders)])
    out = []
    for ident, card, folder in zip(ids, cards, folders):
        rep = load_report(folder, expected_fingerprint=(card.get("dataset") or {}).get("fingerprint"))
        if rep is None:
            raise ReportError(
                f"{Path(folder) / 'report'}: no report yet; run `python -m synthvu_core evaluate "
                f"{folder}` before making slides"
            )
        out.append(Compared(ident=ident, path=Path(folder), card=card, view=view_of(rep)))
    return out


def reveal_deck(title: str, slides: list[str]) -> str:
    """One self-contained reveal.js deck (vendored script and style inlined) of ``slides`` (``<section>`` strings)."""
    js = (VENDOR / "reveal.js").read_text(encoding="utf-8")
    css = (VENDOR / "reveal.css").read_text(encoding="utf-8")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_esc(title)}</title><style>{css}</style><style>{DECK_STYLE}</style></head><body>"
        f"<div class='reveal'><div class='slides'>{''.join(slides)}</div></div>"
        f"<script>{js}</script>"
        f"<script>Reveal.initialize({{hash: true, width: {SLIDE_W}, height: {SLIDE_H}, margin: 0.03, "
        "center: false, transition: 'none'});</script></body></html>"
    )
