"""Several generators side by side: their names, headline numbers and whether their UMAPs share axes
(no streamlit; reads reports, computes no metric).

The Compare page, the slide deck and the sidebar picker use these, so a generator is named the same
way everywhere and two of one name (a shipped one and the user's) are told apart by their folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dashboard.summary import (
    ReportView,
    composed_short,
    dataset_label,
    epsilon_of,
    usefulness_of,
    verdict,
    with_ci,
    worst_attack,
)
from synthvu_core.records import WORST_TPR_KEY, attack_key, epsilon_value

if TYPE_CHECKING:
    from synthvu_core.evaluation.training_seeds import RecipeGroup
    from synthvu_core.models.registry import GeneratorInfo

MIN_COMPARED, MAX_COMPARED = 2, 4


@dataclass(frozen=True)
class Compared:
    """One generator on a comparison: its short id (unique among those listed), card and report."""

    ident: str
    path: Path
    card: dict[str, Any]
    view: ReportView | None
    source: str = "shipped"

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.card.get("classes", [])]


def distinct_ids(items: Sequence[tuple[str, str | Path]]) -> list[str]:
    """A short id per ``(name, folder)``: the name where it is unique, else the folder's parent and name
    (``runs/acgan-phantom`` beside ``models/acgan-phantom``), else the fewest trailing folder parts that tell it apart.

    One folder listed twice (``acgan-phantom`` and ``models/acgan-phantom``) is one generator and gets one id, never
    its path. Never an absolute path: at most the folder's parts below the file-system root.
    """
    keys = [_folder_key(p) for _, p in items]
    parts: dict[Path, tuple[str, ...]] = {}
    for (_, p), key in zip(items, keys):  # the first spelling of a folder names it
        parts.setdefault(key, Path(os.path.abspath(p)).parts)
    out = []
    for (name, _), key in zip(items, keys):
        others = {k for (n, _), k in zip(items, keys) if n == name and k != key}  # other folders of this name
        if not others:
            out.append(name)
            continue
        own, k = parts[key], 2
        while k < len(own) and any(parts[o][-k:] == own[-k:] for o in others):
            k += 1
        anchor = Path(own[0]).anchor if own else ""
        out.append("/".join(p for p in own[-k:] if p not in ("/", "\\", anchor)))
    return out


def _folder_key(folder: str | Path) -> Path:
    """What makes two spellings of a folder one generator: the folder it resolves to."""
    return Path(folder).resolve()


def unique_folders(folders: Sequence[str | Path]) -> list[str | Path]:
    """``folders`` without the ones that resolve to a folder already listed (a generator given twice is one)."""
    seen: set[Path] = set()
    out = []
    for f in folders:
        if _folder_key(f) not in seen:
            seen.add(_folder_key(f))
            out.append(f)
    return out


def generator_label(ident: str, source: str) -> str:
    """What a picker shows: the id, and whose generator it is."""
    return ident + ("" if source == "shipped" else " (yours)")


def entry_chance(e: Compared) -> float | None:
    """Chance of ``e``'s TSTR as its report measured it: balanced accuracy of guessing over the classes of its
    holdout (a 6-class generator whose holdout holds 4 levels: 0.25); None without a report or a stored chance."""
    return None if e.view is None else usefulness_of(e.view).chance


def entry_trtr(e: Compared) -> float | None:
    """TRTR balanced accuracy of ``e``'s report (the real classifier on its own holdout); None without one."""
    return None if e.view is None else e.view.scalar("utility.trtr.balanced_accuracy")


def shared_value(values: Sequence[float | None]) -> float | None:
    """The one value every generator has (chance, TRTR), or None where one is missing or two differ: then each
    generator's own is drawn beside it, never one generator's for all."""
    if not values or any(v is None for v in values):
        return None
    first = float(values[0])  # type: ignore[arg-type]
    return first if all(abs(float(v) - first) < 1e-9 for v in values) else None  # type: ignore[arg-type]


def worst_auc_key(view: ReportView) -> str:
    """The report key of the strongest counted attack's AUC (it carries the CI that ``privacy.worst.auc`` lacks)."""
    w = worst_attack(view)
    return "privacy.worst.auc" if w is None else attack_key(*w)


def worst_tpr_key(view: ReportView) -> str:
    """The report key of the TPR at 1 % FPR of the attack :func:`worst_auc_key` names (the same attack, with its CI).

    ``privacy.worst.tpr_at_1pct_fpr`` is the highest TPR of any counted attack, often another attack's than the
    highest AUC's: it is read only where no attack counts."""
    w = worst_attack(view)
    return WORST_TPR_KEY if w is None else attack_key(*w, "tpr_at_1pct_fpr")


def worst_attack_name(view: ReportView) -> str:
    """``attack/space`` of the strongest counted attack (``pairwise/embedding``); "—" where no attack counts."""
    w = worst_attack(view)
    return "—" if w is None else "/".join(w)


def usefulness_word(view: ReportView | None) -> str:
    """The usefulness label of a report in ``report table``'s words (``not useful for this task`` where TSTR's
    interval reaches chance, ``above chance``; "—" where not measured)."""
    from synthvu_core.evaluation.table import usefulness_cell

    if view is None:
        return "—"
    return usefulness_cell(view.scalars, view.meta, view.arrays)[1].replace("**", "")


def dataset_key(e: Compared) -> tuple[str | None, frozenset[str]]:
    """What a TSTR accuracy is measured against: the generator's dataset (fingerprint) and its class set."""
    return ((e.card.get("dataset") or {}).get("fingerprint"), frozenset(e.classes))


def mixed_datasets(entries: Sequence[Compared], brief: bool = False) -> str | None:
    """A note naming the datasets where the generators were trained on more than one dataset or class set (their
    TSTR accuracies have other holdouts, classes or chance levels); None where they share one. ``brief``: for a
    slide (dataset names without fingerprints or generators: its first slide says which generator had which)."""
    groups: dict[tuple[str | None, frozenset[str]], list[Compared]] = {}
    for e in entries:
        groups.setdefault(dataset_key(e), []).append(e)
    if len(groups) < 2:
        return None

    def name(card: Mapping[str, Any]) -> str:
        full = dataset_label(card)  # "name (fingerprint, K classes)"
        return f"{full.rsplit(' (', 1)[0]}, {len(card.get('classes') or [])} classes" if brief else full

    named = "; ".join(f"{name(g[0].card)}: {', '.join(generator_label(e.ident, e.source) for e in g)}"
                      for g in groups.values())
    chances = {round(c, 6) for c in map(entry_chance, entries) if c is not None}
    counts = {"holdout patients": {k[0] for k in groups}, "classes": {k[1] for k in groups}, "chance levels": chances}
    differ = [what for what, values in counts.items() if len(values) > 1]
    other = "other " + (", ".join(differ[:-1]) + " and " if len(differ) > 1 else "") + differ[-1]
    what = "datasets" if len(counts["holdout patients"]) > 1 else "class sets of one dataset"
    if brief:
        return (f"{len(groups)} {what} ({'; '.join(name(g[0].card) for g in groups.values())}), so TSTR has {other}: "
                "the figures show TSTR / TRTR, which compares across datasets.")
    return (f"These generators were trained on {len(groups)} different {what} ({named}). Their TSTR accuracies "
            f"are measured with {other}, so they are not read on one accuracy axis: utility is drawn as TSTR / TRTR "
            "(the synthetic-trained classifier against a real-trained one on the same holdout), which compares across "
            "datasets.")


def utility_measure(entries: Sequence[Compared]) -> str:
    """The utility several generators share an axis on: ``tstr`` (balanced accuracy) where they share a dataset and
    class set, else ``ratio`` (TSTR / TRTR, comparable across datasets: :func:`mixed_datasets`)."""
    return "ratio" if mixed_datasets(entries) else "tstr"


def headline_rows(entries: Sequence[Compared]) -> list[dict[str, Any]]:
    """One row per generator: ε, TSTR [CI] with chance and usefulness, TSTR/TRTR [CI], the strongest counted
    attack, its AUC [CI] (chance 0.5) and its TPR at 1 % FPR [CI] (chance 0.01), and the released-samples verdict."""
    rows = []
    for e in entries:
        v = e.view
        eps = epsilon_of(e.card, v)
        chance = entry_chance(e)
        row: dict[str, Any] = {
            "generator": generator_label(e.ident, e.source),
            "DP ε": epsilon_value(eps, none="no DP"),
            "composed ε (every run on its patients)": composed_short(e.card),
        }
        if v is None:
            row.update({"report": "none yet"})
        else:
            row.update(
                {
                    "dataset": dataset_label(e.card),
                    "TRTR (real)": with_ci(v, "utility.trtr.balanced_accuracy"),
                    "TSTR [95% CI]": with_ci(v, "utility.tstr.balanced_accuracy"),
                    "chance": "—" if chance is None else f"{chance:.3f}",
                    "usefulness (TSTR vs chance)": usefulness_word(v),
                    "TSTR / TRTR": with_ci(v, "utility.tstr_over_trtr"),
                    "strongest counted attack": worst_attack_name(v),
                    "worst attack AUC (chance 0.5)": with_ci(v, worst_auc_key(v)),
                    "TPR @ 1% FPR, same attack (chance 0.01)": with_ci(v, worst_tpr_key(v)),
                    "verdict": verdict(v, e.card).level,
                }
            )
        rows.append(row)
    return rows


def headline_columns(entries: Sequence[Compared]) -> list[dict[str, Any]]:
    """:func:`headline_rows` turned a quarter: one row per measure, one column per generator, so four
    generators fit a laptop screen without a clipped cell."""
    rows = headline_rows(entries)
    names = [r["generator"] for r in rows]
    measures = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "generator"]
    return [{"measure": m, **{n: str(r.get(m, "—")) for n, r in zip(names, rows)}} for m in measures]


def seed_groups(entries: Sequence[Compared]) -> list[RecipeGroup] | None:
    """The generators with a report grouped by recipe (``report seeds``), where two or more of them are runs of one
    recipe (every training setting but the seed, one dataset, one evaluation); None otherwise."""
    from synthvu_core.evaluation.training_seeds import group_runs

    read, weights = [], set()
    for e in entries:  # one generator listed twice (a shipped one and a copy): one run, not two
        sha = e.view.meta.get("generator_sha256") if e.view is not None else None
        if e.view is not None and (sha is None or sha not in weights):
            read.append((e.ident, e.card, e.view))
            weights.add(sha)
    if len(read) < 2:
        return None
    groups = group_runs(read)
    return groups if any(len(g.runs) >= 2 for g in groups) else None


def training_seed_text(entries: Sequence[Compared]) -> str | None:
    """Markdown of ``report seeds`` for :func:`seed_groups` of the compared generators; None where there are none."""
    from synthvu_core.evaluation.training_seeds import group_lines

    groups = seed_groups(entries)
    return None if groups is None else "\n".join(group_lines(groups))


def recipe_spread(
    selected: Path, card: Mapping[str, Any], gens: Sequence[GeneratorInfo],
    view_of: Callable[[GeneratorInfo], ReportView | None],
) -> str | None:
    """The selected generator's recipe over training seeds, in words, where ``gens`` hold two or more runs of it with
    a report (cards compared first; ``view_of`` reads only the reports of runs of that recipe); None otherwise."""
    from synthvu_core.evaluation.training_seeds import recipe_of, spread_line

    mine = recipe_of(card)
    runs = [g for g in gens if recipe_of(g.card) == mine]
    here = [i for i, g in enumerate(runs) if Path(g.path).resolve() == Path(selected).resolve()]
    if len(runs) < 2 or not here:
        return None
    ids = distinct_ids([(g.name, g.path) for g in runs])
    groups = seed_groups([Compared(i, Path(g.path), g.card, view_of(g), g.source) for i, g in zip(ids, runs)])
    own = next((g for g in groups or [] if any(r.name == ids[here[0]] for r in g.runs)), None)
    if own is None or len(own.runs) < 2:
        return None
    names = ", ".join(r.name for r in own.runs)
    return (f"This generator is one of {len(own.runs)} runs of one recipe here ({names}): the same settings, trained "
            f"separately. {spread_line(own)} The Compare page and `report seeds` compare recipes.")


def shared_umap_problem(entries: Sequence[Compared]) -> str | None:
    """Why the generators' UMAPs cannot be drawn on one set of axes (None where they can).

    Each report fits its UMAP on the real training VUs of its own evaluation; the coordinates are
    comparable only where every report placed the same real VUs at the same points.
    """
    with_umap = [e for e in entries if e.view is not None and e.view.array("umap/real") is not None]
    if len(with_umap) < len(entries):
        missing = ", ".join(e.ident for e in entries if e not in with_umap)
        return f"no UMAP in the report of {missing}"
    first = np.asarray(with_umap[0].view.array("umap/real"))  # type: ignore[union-attr]
    for e in with_umap[1:]:
        other = np.asarray(e.view.array("umap/real"))  # type: ignore[union-attr]
        if other.shape != first.shape or not np.allclose(other, first, atol=1e-5):
            return (
                f"the UMAPs of {with_umap[0].ident} and {e.ident} were fitted on different real VUs "
                "(another dataset, split or seed): their axes are not shared, so they are drawn apart"
            )
    return None
