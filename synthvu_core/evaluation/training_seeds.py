"""How far utility moves when only a generator's training seed changes (``report seeds MODEL MODEL ...``).

A report's TSTR interval is over holdout patients and classifier seeds: it holds **one trained generator**. On a
small cohort the same recipe trained again with another seed can read quite differently, so one run per recipe
cannot say which of two recipes is better. This module reads saved reports only (it never runs a model):

* it groups generators by **recipe**: the dataset's fingerprint, every training setting but the seed (and what does
  not change the weights: timing, device, log), and how the report was evaluated (samples, seed, evaluation
  settings, report version);
* per recipe with two runs or more, the spread of TSTR/TRTR and TSTR over training seeds (mean, sd, range);
* per pair of recipes of one dataset and one evaluation, each with two runs or more, the difference of their mean
  TSTR/TRTR with a Welch 95 % interval over training seeds (the holdout held fixed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from synthvu_core.errors import SelectionError
from synthvu_core.names import ONE_GENERATOR
from synthvu_core.records import RATIO_KEY, number_text, utility_key


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

#: Training-card keys that do not change the trained weights (or that name the run): left out of a recipe.
RUN_ONLY_KEYS = frozenset({"seed", "command", "seconds", "device", "numerics", "final_losses", "log", "created"})
#: Card keys (besides ``training`` and ``dp``) that belong to a recipe.
RECIPE_CARD_KEYS = ("architecture", "scheme", "classes", "sources", "shape", "latent_dim")
#: Report ``meta`` keys that must agree for two reports' numbers to be compared.
EVALUATION_KEYS = ("report_version", "n_synthetic", "seed", "config")


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


@dataclass(frozen=True)
class Difference:
    """Recipe ``second`` minus recipe ``first`` (indices into the groups) in mean TSTR/TRTR."""

    first: int
    second: int
    difference: float
    low: float | None
    high: float | None
    reading: str


def recipe_of(card: Mapping[str, Any]) -> dict[str, Any]:
    """What decides a generator's weights besides its seed: its card's model, training and DP settings."""
    out: dict[str, Any] = {k: card.get(k) for k in RECIPE_CARD_KEYS}
    out["training"] = {k: v for k, v in (card.get("training") or {}).items() if k not in RUN_ONLY_KEYS}
    out["dp"] = card.get("dp") or None
    out["trained_on"] = (card.get("dataset") or {}).get("fingerprint")
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def _every_level_above(report: ReadReport, chance: float | None) -> bool | None:
    recall = report.arrays.get("utility/tstr/recall")
    if recall is None or chance is None:
        return None
    recall = np.asarray(recall, dtype=np.float64)
    present = np.isfinite(recall)
    return bool(present.any() and np.all(recall[present] > chance))


def run_of(name: str, card: Mapping[str, Any], report: ReadReport) -> SeedRun:
    """One generator's row: TSTR/TRTR with its interval, TSTR, TRTR, chance and the usefulness label."""
    from synthvu_core.evaluation.utility import report_usefulness

    label = report_usefulness(report.scalars, report.meta, report.arrays.get("utility/trtr/recall"))
    low, high = report.interval(RATIO_KEY)
    seed = (card.get("training") or {}).get("seed")
    return SeedRun(name, int(seed) if seed is not None else None, report.ratio, low, high,
                   report.scalar(utility_key("tstr")), report.scalar(utility_key("trtr")), label.chance, label.level,
                   _every_level_above(report, label.chance))


def group_runs(entries: Sequence[tuple[str, Mapping[str, Any], ReadReport]]) -> list[RecipeGroup]:
    """Groups of ``(name, card, report)`` by the evaluated dataset, recipe and evaluation, in the order first met."""
    if len(entries) < 2:
        raise SelectionError(f"report seeds needs two generators or more (got {len(entries)}): the runs of one "
                             "recipe trained with different seeds")
    keyed: dict[str, tuple[str | None, dict, dict, list[SeedRun]]] = {}
    for name, card, report in entries:
        dataset = report.meta.get("dataset_fingerprint") or (card.get("dataset") or {}).get("fingerprint")
        recipe = recipe_of(card)
        evaluation = json.loads(json.dumps({k: report.meta.get(k) for k in EVALUATION_KEYS}, default=str))
        key = json.dumps([dataset, recipe, evaluation], sort_keys=True)
        keyed.setdefault(key, (dataset, recipe, evaluation, []))[3].append(run_of(name, card, report))
    return [RecipeGroup(d, r, e, tuple(runs)) for d, r, e, runs in keyed.values()]


def compare(groups: Sequence[RecipeGroup], first: int, second: int) -> Difference | None:
    """Recipe ``second`` minus ``first`` in mean TSTR/TRTR with a Welch 95 % interval over training seeds; None
    where they do not share dataset and evaluation or either has fewer than two runs with a ratio."""
    from scipy import stats

    a, b = groups[first], groups[second]
    ra, rb = a.ratios(), b.ratios()
    if a.dataset != b.dataset or a.evaluation != b.evaluation or min(len(ra), len(rb)) < 2:
        return None
    diff = float(rb.mean() - ra.mean())
    if ra.std() == 0 and rb.std() == 0:
        return Difference(first, second, diff, None, None, "no interval: every run of each recipe reads the same")
    ci = stats.ttest_ind(rb, ra, equal_var=False).confidence_interval(0.95)
    low, high = float(ci.low), float(ci.high)
    if low <= 0 <= high:
        reading = "cannot be told apart with these runs"
    else:
        reading = f"recipe {second + 1} reads {'higher' if low > 0 else 'lower'}"
    return Difference(first, second, diff, low, high, reading)


def differences(groups: Sequence[RecipeGroup]) -> list[Difference]:
    """Every comparable pair of recipes (see :func:`compare`), each later recipe against each earlier one."""
    out = [compare(groups, i, j) for j in range(len(groups)) for i in range(j)]
    return [d for d in out if d is not None]


def setting_changes(reference: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """``key: reference value → other value`` for each recipe or evaluation setting that differs (nested keys
    joined by dots; ``—`` where one side lacks it)."""

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
    """Every group (its runs and spreads) and every comparable difference, as plain data."""
    return {
        "groups": [{"dataset": g.dataset, "recipe": g.recipe, "evaluation": g.evaluation,
                    "runs": [asdict(r) for r in g.runs],
                    "ratio": (s := g.spread("ratio")) and asdict(s), "tstr": (t := g.spread("tstr")) and asdict(t)}
                   for g in groups],
        "differences": [asdict(d) for d in differences(groups)],
        "interval_of_one_report": ONE_GENERATOR,
    }


def _run_row(r: SeedRun) -> str:
    ci = f" [{number_text(r.ratio_low, 2)}, {number_text(r.ratio_high, 2)}]" if r.ratio_low is not None else ""
    above = {True: "yes", False: "no", None: "—"}[r.every_level_above_chance]
    useful = {"not_useful": "**not useful for this task**", "above_chance": "above chance"}.get(r.useful, "—")
    return (f"| {r.name} | {'—' if r.seed is None else r.seed} | {number_text(r.ratio)}{ci} | {number_text(r.tstr)} | "
            f"{number_text(r.chance)} | {above} | {useful} |")


def _spread_line(g: RecipeGroup) -> str:
    s, t = g.spread("ratio"), g.spread("tstr")
    if s is None or s.sd is None:
        return "One run with a TSTR/TRTR: no spread over training seeds can be read (train the recipe again with " \
               "another --seed)."
    widths = [r.ratio_high - r.ratio_low for r in g.runs if r.ratio_low is not None and r.ratio_high is not None]
    width = f" (one run's own 95 % interval: {np.median(widths):.2f} wide, median)" if widths else ""
    tstr = f"; TSTR mean {t.mean:.3f}, sd {t.sd:.3f}" if t is not None and t.sd is not None else ""
    useful = sum(r.useful == "above_chance" for r in g.runs)
    levels = sum(r.every_level_above_chance is True for r in g.runs)
    return (f"Over {s.n} training runs: TSTR/TRTR mean {s.mean:.3f}, sd {s.sd:.3f}, range {s.low:.3f}–{s.high:.3f}"
            f"{tstr}{width}. TSTR's interval above chance in {useful} of {len(g.runs)} runs, every level's TSTR "
            f"recall above chance in {levels} of {len(g.runs)}.")


RUN_HEADER = ("| generator | training seed | TSTR/TRTR [95 % interval] | TSTR | chance | every level above chance | "
              "usefulness |\n|---|---|---|---|---|---|---|")


def group_lines(groups: Sequence[RecipeGroup]) -> list[str]:
    """The text of ``report seeds``: a table per recipe, its spread, then the comparable differences."""
    out: list[str] = []
    for i, g in enumerate(groups):
        changes = setting_changes(_settings(groups[0]), _settings(g))
        what = "the reference" if i == 0 else ("against recipe 1: " + "; ".join(changes) if changes else "")
        out += [f"Recipe {i + 1} (dataset {g.dataset or 'unknown'}, {len(g.runs)} run{'s' * (len(g.runs) > 1)})"
                + (f", {what}" if what else ""), "",
                RUN_HEADER, *(_run_row(r) for r in g.runs), "", _spread_line(g), ""]
    for d in differences(groups):
        ci = f", 95 % interval [{d.low:+.3f}, {d.high:+.3f}]" if d.low is not None else ""
        na, nb = len(groups[d.first].ratios()), len(groups[d.second].ratios())
        out.append(f"Recipe {d.second + 1} − recipe {d.first + 1}: mean TSTR/TRTR {d.difference:+.3f}{ci} (Welch over "
                   f"training seeds: {nb} runs of recipe {d.second + 1}, {na} of recipe {d.first + 1}; this one "
                   f"holdout): {d.reading}.")
    return out + ["", f"A report's utility intervals are over holdout patients and classifier seeds; {ONE_GENERATOR}."]


def _settings(g: RecipeGroup) -> dict[str, Any]:
    """A group's recipe, evaluation and dataset as one mapping (for :func:`setting_changes`)."""
    return {**g.recipe, "evaluation": g.evaluation, "dataset": g.dataset}
