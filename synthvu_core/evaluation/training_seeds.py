"""How far utility moves when only a generator's training seed changes (``report seeds MODEL MODEL ...``).

A report's TSTR interval is over holdout patients and classifier seeds: it holds **one trained generator**. On a
small cohort the same recipe trained again with another seed can read quite differently, so one run per recipe
cannot say which of two recipes is better. This module reads saved reports only (it never runs a model):

* it groups generators by **recipe**: the evaluated dataset, every training setting but the seed (and what only
  describes the run: timing, device, log, results such as ADA's final probability), the DP settings, and what the
  utility numbers depend on in the evaluation (samples, seed, classifier settings, report version);
* per recipe, the spread of TSTR/TRTR and TSTR over its runs (mean, sd, range);
* each later recipe of recipe 1's dataset and evaluation against recipe 1, where both have
  :data:`MIN_RUNS_COMPARED` runs or more: the difference of their mean TSTR/TRTR with a Welch 95 % interval over
  training seeds. The holdout is held fixed, so the interval says nothing of other patients.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from synthvu_core.errors import SelectionError
from synthvu_core.names import ONE_GENERATOR
from synthvu_core.records import RATIO_KEY, Card, number_text, utility_key


class ReadReport(Protocol):
    """What is read of a saved report: the core ``Report`` or the dashboard's copy of it."""

    scalars: Mapping[str, Any]
    meta: Mapping[str, Any]

    @property
    def arrays(self) -> Mapping[str, Any]: ...

    @property
    def ratio(self) -> float | None: ...

    def scalar(self, key: str) -> float | None: ...

    def interval(self, key: str) -> tuple[float | None, float | None]: ...


#: Training-card keys that describe a run rather than set it up: left out of a recipe.
RUN_ONLY_KEYS = frozenset({"seed", "command", "seconds", "device", "numerics", "final_losses", "log", "created",
                           "hardware", "held_out_latent_mse"})
#: Keys inside a training-card block that are the run's results or its machine's: left out of a recipe.
RUN_ONLY_NESTED = {"ada": frozenset({"p_final", "p_mean"}), "speed": frozenset({"skipped"})}
#: Card keys (besides ``training`` and ``dp``) that belong to a recipe.
RECIPE_CARD_KEYS = ("architecture", "scheme", "classes", "sources", "shape", "latent_dim")
#: Runs each recipe needs before two are compared: an sd from two runs rests on one degree of freedom.
MIN_RUNS_COMPARED = 3


@dataclass(frozen=True)
class SeedRun:
    """One generator's utility, as its report reads it."""

    name: str
    seed: int | None
    ratio: float | None
    ratio_low: float | None
    ratio_high: float | None
    tstr: float | None
    trtr: float | None
    chance: float | None
    useful: str
    every_level_above_chance: bool | None


@dataclass(frozen=True)
class Spread:
    """Mean, sample sd (None for one run) and range of one measure over a recipe's runs."""

    n: int
    mean: float
    sd: float | None
    low: float
    high: float


@dataclass(frozen=True)
class RecipeGroup:
    """The runs of one recipe on one dataset, evaluated alike."""

    dataset: str | None
    recipe: dict[str, Any]
    evaluation: dict[str, Any]
    runs: tuple[SeedRun, ...]

    def spread(self, measure: str = "ratio") -> Spread | None:
        """The spread of ``measure`` (a :class:`SeedRun` field) over the runs that have it; None where none does."""
        values = np.array([v for r in self.runs if (v := getattr(r, measure)) is not None], dtype=np.float64)
        if not len(values):
            return None
        sd = float(values.std(ddof=1)) if len(values) >= 2 else None
        return Spread(len(values), float(values.mean()), sd, float(values.min()), float(values.max()))

    def ratios(self) -> np.ndarray:
        return np.array([r.ratio for r in self.runs if r.ratio is not None], dtype=np.float64)

    def comparable(self, other: RecipeGroup) -> bool:
        """Same evaluated dataset and evaluation: the two recipes' numbers rest on one holdout, read alike."""
        return self.dataset == other.dataset and self.evaluation == other.evaluation


@dataclass(frozen=True)
class Difference:
    """Recipe number ``recipe`` minus recipe 1 in mean TSTR/TRTR (Welch over training seeds, this holdout)."""

    recipe: int
    n_runs: int
    n_reference_runs: int
    difference: float
    low: float | None
    high: float | None
    df: float | None
    reading: str


def recipe_of(card: Mapping[str, Any]) -> dict[str, Any]:
    """What decides a generator's weights besides its seed: its card's model, training and DP settings."""
    c = Card(card)
    training = {k: v for k, v in c.training.items() if k not in RUN_ONLY_KEYS}
    for block, drop in RUN_ONLY_NESTED.items():
        if isinstance(training.get(block), Mapping):
            training[block] = {k: v for k, v in training[block].items() if k not in drop}
    out = {**{k: card.get(k) for k in RECIPE_CARD_KEYS}, "training": training, "dp": c.dp,
           "trained_on": c.fingerprint}
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def evaluation_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a report's utility numbers depend on besides the generator and the dataset."""
    config = meta.get("config") or {}
    out = {k: meta.get(k) for k in ("report_version", "n_synthetic", "seed")}
    out |= {"utility_seeds": config.get("utility_seeds"), "encoder": config.get("encoder")}
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def run_of(name: str, card: Mapping[str, Any], report: ReadReport) -> SeedRun:
    """One generator's row: TSTR/TRTR with its interval, TSTR, TRTR, chance and the usefulness label."""
    from synthvu_core.evaluation.utility import classes_at_or_below, report_usefulness

    label = report_usefulness(report.scalars, report.meta, report.arrays.get("utility/trtr/recall"))
    recall = report.arrays.get("utility/tstr/recall")
    present = recall is not None and bool(np.isfinite(np.asarray(recall, dtype=np.float64)).any())
    above = None if not present or label.chance is None else not classes_at_or_below(recall, label.chance)
    low, high = report.interval(RATIO_KEY)
    seed = Card(card).training.get("seed")
    return SeedRun(name, int(seed) if seed is not None else None, report.ratio, low, high,
                   report.scalar(utility_key("tstr")), report.scalar(utility_key("trtr")), label.chance, label.level,
                   above)


def _check_distinct(entries: Sequence[tuple[str, Mapping[str, Any], ReadReport]]) -> None:
    """:class:`SelectionError` where one generator (the same weights) is given twice: it would count as two runs."""
    seen: dict[str, str] = {}
    for name, _, report in entries:
        sha = report.meta.get("generator_sha256")
        if isinstance(sha, str) and sha in seen:
            raise SelectionError(f"{seen[sha]} and {name} are one generator (the same weights): give each run once")
        if isinstance(sha, str):
            seen[sha] = name


def group_runs(entries: Sequence[tuple[str, Mapping[str, Any], ReadReport]]) -> list[RecipeGroup]:
    """Groups of ``(name, card, report)`` by the evaluated dataset, recipe and evaluation, in the order first met."""
    if len(entries) < 2:
        raise SelectionError(f"report seeds needs two generators or more (got {len(entries)}): the runs of one "
                             "recipe trained with different seeds")
    _check_distinct(entries)
    keyed: dict[str, tuple[str | None, dict, dict, list[SeedRun]]] = {}
    for name, card, report in entries:
        dataset = report.meta.get("dataset_fingerprint") or Card(card).fingerprint
        recipe, evaluation = recipe_of(card), evaluation_of(report.meta)
        key = json.dumps([dataset, recipe, evaluation], sort_keys=True)
        keyed.setdefault(key, (dataset, recipe, evaluation, []))[3].append(run_of(name, card, report))
    return [RecipeGroup(d, r, e, tuple(runs)) for d, r, e, runs in keyed.values()]


def compare(groups: Sequence[RecipeGroup], index: int) -> Difference | None:
    """Recipe ``index + 1`` minus recipe 1 in mean TSTR/TRTR, with a Welch 95 % interval over training seeds where
    each has :data:`MIN_RUNS_COMPARED` runs with a ratio; None where the two are not comparable or one has none."""
    from scipy import stats

    ref, other = groups[0], groups[index]
    ra, rb = ref.ratios(), other.ratios()
    if index == 0 or not ref.comparable(other) or not len(ra) or not len(rb):
        return None
    diff = float(rb.mean() - ra.mean())
    if min(len(ra), len(rb)) < MIN_RUNS_COMPARED:
        return Difference(index + 1, len(rb), len(ra), diff, None, None, None,
                          f"too few runs for an interval ({MIN_RUNS_COMPARED} or more of each recipe): no conclusion")
    if ra.std() == 0 and rb.std() == 0:
        return Difference(index + 1, len(rb), len(ra), diff, None, None, None,
                          "no interval: every run of each recipe reads the same")
    with warnings.catch_warnings():  # nearly equal runs: scipy warns of precision loss, the interval stands
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(rb, ra, equal_var=False)
        ci = res.confidence_interval(0.95)
    low, high = float(ci.low), float(ci.high)
    if low <= 0 <= high:
        reading = "no difference shown with these runs"
    else:
        reading = f"recipe {index + 1} reads {'higher' if low > 0 else 'lower'} on this holdout"
    return Difference(index + 1, len(rb), len(ra), diff, low, high, float(res.df), reading)


def differences(groups: Sequence[RecipeGroup]) -> list[Difference]:
    """Each later recipe comparable with recipe 1 against it (one comparison per recipe, none between the others)."""
    return [d for i in range(1, len(groups)) if (d := compare(groups, i)) is not None]


def setting_changes(reference: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """``key: reference value → other value`` for each setting that differs (nested keys joined by dots; ``—``
    where one side lacks it)."""

    def flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, Mapping):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(reference), flat(other)
    return [f"{k}: {a.get(k, '—')} → {b.get(k, '—')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def as_json(groups: Sequence[RecipeGroup]) -> dict[str, Any]:
    """Every group (numbered from 1, its runs and spreads) and each difference against recipe 1, as plain data."""
    return {
        "groups": [{"recipe_number": i + 1, "dataset": g.dataset, "recipe": g.recipe, "evaluation": g.evaluation,
                    "runs": [asdict(r) for r in g.runs],
                    "ratio": (s := g.spread("ratio")) and asdict(s), "tstr": (t := g.spread("tstr")) and asdict(t)}
                   for i, g in enumerate(groups)],
        "differences_against_recipe_1": [asdict(d) for d in differences(groups)],
        "interval_of_one_report": ONE_GENERATOR,
    }


RUN_HEADER = ("| generator | training seed | TSTR/TRTR [95 % interval] | TSTR | chance | every level above chance | "
              "usefulness |\n|---|---|---|---|---|---|---|")


def _run_row(r: SeedRun) -> str:
    ci = (f" [{number_text(r.ratio_low, 2)}, {number_text(r.ratio_high, 2)}]"
          if r.ratio is not None and r.ratio_low is not None and r.ratio_high is not None else "")
    above = {True: "yes", False: "no", None: "—"}[r.every_level_above_chance]
    useful = {"not_useful": "**not useful for this task**", "above_chance": "above chance"}.get(r.useful, "—")
    return (f"| {r.name} | {'—' if r.seed is None else r.seed} | {number_text(r.ratio)}{ci} | {number_text(r.tstr)} | "
            f"{number_text(r.chance)} | {above} | {useful} |")


def spread_line(g: RecipeGroup) -> str:
    """One recipe's spread over its runs, in words: mean, sd and range of TSTR/TRTR and TSTR, and how many runs are
    above chance."""
    s, t = g.spread("ratio"), g.spread("tstr")
    if s is None:
        return "No run of this recipe has a TSTR/TRTR."
    if s.sd is None:
        return "One run with a TSTR/TRTR: no spread over training seeds can be read (train the recipe again with " \
               "another --seed)."
    rough = " (from two runs: rough)" if s.n == 2 else ""
    widths = [r.ratio_high - r.ratio_low for r in g.runs if r.ratio_low is not None and r.ratio_high is not None]
    width = f" (one run's own 95 % interval: {np.median(widths):.2f} wide, median)" if widths else ""
    tstr = f"; TSTR mean {t.mean:.3f}, sd {t.sd:.3f}" if t is not None and t.sd is not None else ""
    useful = sum(r.useful == "above_chance" for r in g.runs)
    levels = sum(r.every_level_above_chance is True for r in g.runs)
    dp = (" Under DP the noise comes from the operating system, so a rerun with the same seed differs too."
          if g.recipe.get("dp") else "")
    seeds = [r.seed for r in g.runs if r.seed is not None]
    shared = sorted({s for s in seeds if seeds.count(s) > 1})
    if shared:
        dp += (f" Runs share training seed {', '.join(map(str, shared))}: they differ by the machine or thread count "
               "they were trained on, not by the seed.")
    return (f"Over {s.n} training runs: TSTR/TRTR mean {s.mean:.3f}, sd {s.sd:.3f}{rough}, range "
            f"{s.low:.3f}–{s.high:.3f}{tstr}{width}. TSTR's interval above chance in {useful} of {len(g.runs)} runs, "
            f"every level's TSTR recall above chance in {levels} of {len(g.runs)}.{dp}")


def _heading(groups: Sequence[RecipeGroup], i: int) -> str:
    g = groups[i]
    head = f"Recipe {i + 1} (dataset {g.dataset or 'unknown'}, {len(g.runs)} run{'s' * (len(g.runs) > 1)})"
    if i == 0:
        return head + ", the reference"
    if not groups[0].comparable(g):
        return head + ": another dataset or evaluation than recipe 1's, not compared"
    changes = setting_changes(groups[0].recipe, g.recipe)
    return head + (", against recipe 1: " + "; ".join(changes) if changes else "")


def _difference_line(groups: Sequence[RecipeGroup], d: Difference) -> str:
    runs = (f"{d.n_runs} run{'s' * (d.n_runs != 1)} of recipe {d.recipe}, {d.n_reference_runs} of recipe 1")
    if d.low is None or d.high is None:
        return f"Recipe {d.recipe} − recipe 1: mean TSTR/TRTR {d.difference:+.3f} ({runs}): {d.reading}."
    return (f"Recipe {d.recipe} − recipe 1: mean TSTR/TRTR {d.difference:+.3f}, 95 % interval [{d.low:+.3f}, "
            f"{d.high:+.3f}] over training seeds (Welch, df {d.df:.1f}; {runs}). On this holdout only: the holdout "
            f"patients' own uncertainty is not in it. {d.reading.capitalize()}.")


def group_lines(groups: Sequence[RecipeGroup]) -> list[str]:
    """The text of ``report seeds``: a table per recipe, its spread, then each recipe against recipe 1."""
    out: list[str] = []
    for i, g in enumerate(groups):
        out += [_heading(groups, i), "", RUN_HEADER, *(_run_row(r) for r in g.runs), "", spread_line(g), ""]
    diffs = differences(groups)
    out += [_difference_line(groups, d) for d in diffs]
    n_intervals = sum(d.low is not None for d in diffs)
    if n_intervals > 1:
        out.append(f"These {n_intervals} intervals are each at 95 %, not corrected for their number.")
    return out + ["", f"A report's utility intervals are over holdout patients and classifier seeds; {ONE_GENERATOR}."]
