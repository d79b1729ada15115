"""The Trade-offs page's "How many patients?" chart: which generators it may draw, or why it is not drawn (no
streamlit; reads the rows the page made of cards and reports).

Its points are patient-level DP generators fine-tuned on phantom cohorts of one recipe that differ only in their
patients and how many there are. A dataset's recipe is its card's ``dataset.recipe``; a family of sizes is that
recipe without its name, seed and patient count. The chart is drawn for the selected dataset only where the dataset
is on it: never a chart of other datasets' generators alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Recipe fields that name one cohort of a family of sizes (what may vary along the chart's axis).
COHORT_FIELDS = ("name", "seed", "n_patients")


def size_family(card: Mapping[str, Any] | None) -> str | None:
    """The phantom recipe of a generator's training cohort without its name, seed and patient count: cohorts of one
    size family differ only in their patients and how many there are. None for a dataset without a phantom recipe
    (the user's own scans)."""
    recipe = ((card or {}).get("dataset") or {}).get("recipe")
    if not isinstance(recipe, Mapping) or "n_patients" not in recipe:
        return None
    rest = {k: v for k, v in recipe.items() if k not in COHORT_FIELDS}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class PatientsAxis:
    """What the chart draws: ``rows`` (empty where it is not drawn, with ``why_not`` saying why) and the private
    train-patient counts on its axis."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    why_not: str | None = None

    @property
    def sizes(self) -> list[int]:
        return sorted({int(r["n_patients"]) for r in self.rows})


def _eps(r: Mapping[str, Any]) -> float:
    return round(float(r["epsilon"]), 1)


def patients_axis(rows: Sequence[Mapping[str, Any]], selected: Mapping[str, Any], label: str) -> PatientsAxis:
    """The rows of the "How many patients?" chart of the selected dataset (``selected``: one of its rows, ``label``
    its name): patient-level DP generators fine-tuned on a cohort of its size family (same recipe and classes, any
    patient count), at each ε where they hold at least two patient counts and one of them is the selected dataset's.

    ``rows`` carry ``dataset`` (fingerprint), ``size_family``, ``classes``, ``unit``, ``route``, ``epsilon`` and
    ``n_patients`` (private train patients)."""
    family = selected.get("size_family")
    if family is None:
        return PatientsAxis(why_not=f"Not drawn: dataset {label} was not built from a phantom recipe, so there are no "
                                    "cohorts of its recipe with other patient counts to set beside it.")
    private = [dict(r) for r in rows if r.get("unit") == "patient" and r.get("route") == "pretrained"
               and r.get("epsilon") is not None and r.get("n_patients") and r.get("size_family") == family
               and tuple(r.get("classes") or ()) == tuple(selected.get("classes") or ())]
    own = [r for r in private if r.get("dataset") == selected.get("dataset")]
    if not own:
        return PatientsAxis(why_not=f"Not drawn: no generator of dataset {label} was fine-tuned with patient-level DP "
                                    "and has a report, so this dataset has no point on a patient-count axis (runs on "
                                    "other datasets are not drawn without it).")
    sizes: dict[float, set[int]] = {}
    for r in private:
        sizes.setdefault(_eps(r), set()).add(int(r["n_patients"]))
    keep = {e for e, n in sizes.items() if len(n) >= 2} & {_eps(r) for r in own}
    if not keep:
        counts = sorted({int(r["n_patients"]) for r in private})
        return PatientsAxis(why_not=f"Not drawn: the chart needs patient-level DP runs at one ε on cohorts of "
                                    f"dataset {label}'s recipe of at least two sizes, this dataset's among them; its "
                                    f"recipe's runs ({', '.join(map(str, counts))} private train patients) share no "
                                    "such ε.")
    return PatientsAxis(rows=[r for r in private if _eps(r) in keep])
