"""What a report says, in the words and tables the pages show (no streamlit, no computation of metrics).

A :class:`ReportView` is a plain, picklable copy of a ``synthvu_core`` ``Report``: the scalars,
definitions and meta as dicts, the arrays materialised as numpy arrays, controls as nested views.
Everything here reads numbers and verdicts the evaluation already wrote (``meta["verdicts"]``,
``meta["power"]``): one verdict per threat model, made in ``synthvu_core.evaluation.verdicts``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core import records
from synthvu_core.names import (
    ATTACKS,
    BLACK_BOX_ATTACKS,
    GRADED_CONTROLS,
    INDEPENDENT_CONTROL,
    POWER_FRACTION,
    POWER_LABELS,
    SPACES,
    UTILITY_SETTINGS,
    graded_control,
)
from synthvu_core.records import ReportReading, card_epsilon, interval_text, number_text

if TYPE_CHECKING:
    from synthvu_core.data.dataset import LevelDesign
    from synthvu_core.evaluation.utility import ClassRecall, Usefulness
    from synthvu_core.records import Report

ATTACK_NAMES = {
    "pairwise": "Pairwise (distance to closest record)",
    "distribution": "Distribution (Monte-Carlo count)",
    "domias": "DOMIAS (density ratio)",
    "discriminator": "Discriminator (white-box LOGAN)",
}
SETTING_NAMES = {
    "trtr": "TRTR (train real, test real)",
    "tstr": "TSTR (train synthetic, test real)",
    "trts": "TRTS (train real, test synthetic)",
}

@dataclass
class ReportView(ReportReading):
    """Picklable report contents: ``arrays`` maps array keys (``"umap/real"``) to numpy arrays; typed reading of
    scalars and verdicts from :class:`~synthvu_core.records.ReportReading`."""

    scalars: dict[str, float | None]
    definitions: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    controls: dict[str, ReportView] = field(default_factory=dict)
    #: How far the loaded report is vouched for (``Report.integrity``: signed, or unsigned (older report)).
    integrity: str = ""

    def array(self, key: str) -> np.ndarray | None:
        return self.arrays.get(key)

    def has(self, *keys: str) -> bool:
        return all(k in self.arrays for k in keys)


def view_of(report: Report) -> ReportView:
    """Copy a core ``Report`` (or anything with its attributes) into a :class:`ReportView`."""
    arrays_src = getattr(report, "arrays", None) or {}
    arrays: dict[str, np.ndarray] = {}
    keys = list(arrays_src.keys()) if hasattr(arrays_src, "keys") else list(getattr(arrays_src, "files", []))
    for k in keys:
        arrays[str(k)] = np.asarray(arrays_src[k])
    controls_src = getattr(report, "controls", None) or {}
    return ReportView(
        scalars=dict(getattr(report, "scalars", {}) or {}),
        definitions=dict(getattr(report, "definitions", {}) or {}),
        meta=dict(getattr(report, "meta", {}) or {}),
        arrays=arrays,
        controls={str(name): view_of(c) for name, c in dict(controls_src).items()},
        integrity=str(getattr(report, "integrity", "") or ""),
    )


fmt = number_text  #: a number for a table or metric; "—" where not measured
epsilon_of = card_epsilon  #: DP ε of a generator (card first, report second); None for a non-private generator


def epsilon_text(card: Mapping[str, Any] | None, view: ReportView | None = None) -> str:
    eps = epsilon_of(card, view)
    if eps is None:
        return records.epsilon_text(None)
    dp = (card or {}).get("dp") or {}
    delta = dp.get("delta") if isinstance(dp, Mapping) else None
    unit = dp.get("unit", "VU") if isinstance(dp, Mapping) and dp else None
    text = records.epsilon_text(eps) + (f", δ = {delta:.1e}" if delta else "") + (f" per {unit}" if unit else "")
    composed = composed_text(card or {})
    runs = dp.get("private_runs") if isinstance(dp, Mapping) else None
    if composed:
        text += f" for this run; {composed}"
    elif runs:
        text += f" ({runs} private run{'s' if runs != 1 else ''} on these data; not composed)"
    return text


def composed_text(card: Mapping[str, Any]) -> str | None:
    """The dataset's composed bound as the card records it (its privacy ledger); None for a card without one."""
    from synthvu_core.models.ledger import composed_text as text

    return text(card)


def composed_short(card: Mapping[str, Any] | None) -> str:
    """The card's composed bound in a few words ("composed 10.74 over 3 runs"), "—" for a card without DP."""
    from synthvu_core.models.ledger import composed_short as short

    return short(card) if (card or {}).get("dp") else "—"


def composed_bound_holds(card: Mapping[str, Any] | None) -> bool | None:
    """True where the card's ledger composes to a finite ε, False where infinite, None without a ledger."""
    from synthvu_core.models.ledger import composed_of

    found = composed_of(card or {})
    return None if found is None else math.isfinite(found[0])


def audit_text(audit: Mapping[str, Any] | None, card: Mapping[str, Any] | None = None) -> str | None:
    """The empirical lower bound of an audit (``audit.json``) beside the ε it claims; None without an audit."""
    if not audit or audit.get("epsilon_lower_bound") is None:
        return None
    lb, claimed = float(audit["epsilon_lower_bound"]), float(audit.get("claimed_epsilon") or math.nan)
    conf = float(audit.get("confidence", 0.95))
    text = (
        f"audit: empirical ε ≥ {lb:.2f} at {conf:.0%} confidence against a claimed ε = {claimed:.2f} "
        f"({audit.get('correct')} of {audit.get('guesses')} guesses right on {audit.get('canaries')} canary patients, "
        f"the recipe replayed on {(audit.get('cohort') or {}).get('n_patients', '?')} patients)"
    )
    if lb > claimed:
        return text + ": the mechanism leaks more than it claims"
    return text + ": consistent with the claim (a lower bound cannot prove it)"


interval = interval_text  #: "[0.550, 0.670]"; "" where either end is missing


def with_ci(view: ReportView, key: str, missing: str = "—") -> str:
    """``"0.612 [0.55, 0.67]"`` for ``key`` with ``key_ci_low``/``key_ci_high``; the reason where not estimable."""
    v = view.scalar(key)
    if v is None:
        why = str(view.meta.get("missing", {}).get(key, ""))
        return (
            "not estimable" + why[len("not estimable") :].split(":")[0] if why.startswith("not estimable") else missing
        )
    ci = interval(view.scalar(key + "_ci_low"), view.scalar(key + "_ci_high"))
    return f"{fmt(v)} {ci}".strip()


@dataclass(frozen=True)
class Headline:
    """The headline numbers of one generator."""

    trtr: float | None
    tstr: float | None
    trts: float | None
    ratio: float | None
    worst_auc: float | None
    worst_tpr1: float | None
    epsilon: float | None


def headline(view: ReportView | None, card: Mapping[str, Any] | None = None) -> Headline:
    v = view if view is not None else ReportView({})
    return Headline(
        trtr=v.utility("trtr"),
        tstr=v.utility("tstr"),
        trts=v.utility("trts"),
        ratio=v.ratio,
        worst_auc=v.worst_auc,
        worst_tpr1=v.worst_tpr,
        epsilon=epsilon_of(card, view),
    )


def worst_attack(view: ReportView) -> tuple[str, str] | None:
    """``(attack, space)`` of the strongest counted attack (``ReportReading.worst_attack``)."""
    return view.worst_attack()


def attacks_present(view: ReportView) -> list[tuple[str, str]]:
    """(attack, space) pairs the report measured, in the canonical order."""
    return [
        (a, sp)
        for a in ATTACKS
        for sp in SPACES
        if view.scalar(f"privacy.{a}.{sp}.auc") is not None or f"privacy/{a}/{sp}/roc_fpr" in view.arrays
    ]


def power_of(view: ReportView, attack: str, space: str) -> str:
    """The power words of one attack/space (:data:`~synthvu_core.names.POWER_LABELS`), or ``"white-box"``.

    Power is the rise of the attack's AUC on the 5 % graded control over its AUC on the generator's own
    samples; an attack that already detects membership says so ("no room to rise" near AUC 1).
    """
    if attack not in BLACK_BOX_ATTACKS:
        return "white-box (own verdict)"
    p = (view.meta.get("power") or {}).get(f"{attack}/{space}")
    if not p or p.get("has_power") is None:
        return POWER_LABELS["not_checked"]
    status = p.get("status") or ("power" if p["has_power"] else "no_power")
    return POWER_LABELS.get(status, status)


def _role(view: ReportView, attack: str, space: str) -> str:
    a = (view.meta.get("verdicts") or {}).get("released_samples") or {}
    name = f"{attack}/{space}"
    if attack not in BLACK_BOX_ATTACKS:
        return "verdict (b): released discriminator"
    if name not in a.get("counted", []):
        return "not counted"
    return "primary" if (a.get("primary") or {}).get("attack") == name else "counted"


def attack_rows(view: ReportView) -> list[dict[str, Any]]:
    """One row per measured attack and space: AUC [CI], TPR @ 1% FPR [CI] or not estimable, patient AUC [CI], power."""
    rows = []
    for a, sp in attacks_present(view):
        p = f"privacy.{a}.{sp}."
        rows.append(
            {
                "attack": a,
                "space": sp,
                "AUC [95% CI]": with_ci(view, p + "auc"),
                "TPR @ 1% FPR [95% CI]": with_ci(view, p + "tpr_at_1pct_fpr"),
                "patient AUC [95% CI]": with_ci(view, p + "patient_auc"),
                "top-k share": view.scalar(p + "topk_share"),
                "p (permutation)": view.scalar(p + "p_value"),
                "power (5% graded control)": power_of(view, a, sp),
                "5% control AUC [95% CI]": _control_ci(view, graded_control(POWER_FRACTION), a, sp),
                "independent control AUC [95% CI]": _control_ci(view, INDEPENDENT_CONTROL, a, sp),
                "in verdict": _role(view, a, sp),
            }
        )
    return rows


#: The attack table in two parts that each fit a 1280-px screen: what each attack measured on the released
#: samples, and how it was checked (power, controls, its role in verdict (a)).
ATTACK_RESULT_COLUMNS = (
    "attack", "space", "AUC [95% CI]", "TPR @ 1% FPR [95% CI]", "patient AUC [95% CI]", "top-k share", "p (permutation)"
)
ATTACK_CHECK_COLUMNS = (
    "attack", "space", "power (5% graded control)", "5% control AUC [95% CI]", "independent control AUC [95% CI]",
    "in verdict",
)


def columns_of(rows: list[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """``rows`` cut to ``columns`` (in that order; a column a row lacks is left out)."""
    return [{c: r[c] for c in columns if c in r} for r in rows]


def _control_ci(view: ReportView, control: str, attack: str, space: str) -> str:
    ctl = view.controls.get(control)
    return "—" if ctl is None else with_ci(ctl, f"privacy.{attack}.{space}.auc")


def signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def power_rows(view: ReportView) -> list[dict[str, Any]]:
    """Power curve of every black-box attack/space: the rise of its AUC over the generator's own, per fraction.

    Reports of version 2 (no rise recorded) show the control's AUC [CI] instead.
    """
    rows = []
    for name, curve in (view.meta.get("power") or {}).items():
        row: dict[str, Any] = {"attack": name.split("/")[0], "space": name.split("/")[1]}
        if "rise" in curve:
            row["own AUC [95% CI]"] = f"{fmt(curve.get('own_auc'))} {interval(*(curve.get('own_ci') or [None, None]))}"
            for f, r, lo, hi in zip(curve["fractions"], curve["rise"], curve["rise_low"], curve["rise_high"]):
                ci = f"[{signed(lo)}, {signed(hi)}]" if lo is not None and hi is not None else ""
                row[f"rise at {f:.0%} member copies"] = f"{signed(r)} {ci}".strip()
        else:
            for f, auc, lo, hi in zip(
                curve.get("fractions", []), curve.get("auc", []), curve.get("ci_low", []), curve.get("ci_high", [])
            ):
                row[f"{f:.0%} member copies"] = f"{fmt(auc)} {interval(lo, hi)}".strip()
        row["power"] = power_of(view, *name.split("/"))
        rows.append(row)
    order = {f"{a}/{s}": i for i, (a, s) in enumerate((a, s) for a in ATTACKS for s in SPACES)}
    return sorted(rows, key=lambda r: order.get(f"{r['attack']}/{r['space']}", 99))


def independent_rows(view: ReportView) -> list[dict[str, Any]]:
    """The independent (negative) control per attack/space: AUC [95% CI] and, for the attacks counted in
    verdict (a), the family-wise interval the check reads (``meta.independent_control``) and whether it covers 0.5."""
    ctl = view.controls.get(INDEPENDENT_CONTROL)
    if ctl is None:
        return []
    family = ((view.meta.get("independent_control") or {}).get("rows")) or {}
    rows = []
    for a, sp in attacks_present(ctl):
        lo, hi = ctl.scalar(f"privacy.{a}.{sp}.auc_ci_low"), ctl.scalar(f"privacy.{a}.{sp}.auc_ci_high")
        f = family.get(f"{a}/{sp}")
        rows.append(
            {
                "attack": a,
                "space": sp,
                "AUC [95% CI]": with_ci(ctl, f"privacy.{a}.{sp}.auc"),
                "95% CI covers 0.5": "—" if lo is None or hi is None else ("yes" if lo <= 0.5 <= hi else "no"),
                "family-wise CI": "—" if f is None else f"[{f['ci_family'][0]:.3f}, {f['ci_family'][1]:.3f}]",
                "family-wise CI covers 0.5": "—" if f is None else ("yes" if f["covers"] else "NO"),
                "in verdict": _role(view, a, sp),
            }
        )
    return rows


def independent_text(view: ReportView) -> str:
    """What the independent control says about the attack spaces, in one sentence (empty without the check)."""
    return str((view.meta.get("independent_control") or {}).get("text") or "")


def membership_text(view: ReportView) -> str:
    """How many patients and VUs are on each side, and what the reference halves hold."""
    m = view.meta
    if "n_member_patients" not in m:
        return ""
    text = (
        f"{m.get('n_member_patients')} member patients ({m.get('n_members')} VUs) against "
        f"{m.get('n_nonmember_patients')} non-member patients ({m.get('n_nonmembers')} VUs)"
    )
    if m.get("vus_per_patient"):
        text += f", {m['vus_per_patient']} VUs per patient"
    if "n_reference_fit" in m:
        text += (
            f"; attack spaces and DOMIAS's reference fitted on {m['n_reference_fit']} reference VUs, the independent "
            f"control built from {m['n_reference_control']} other reference VUs"
        )
    allows = (m.get("membership") or {}).get("cohort_allows")
    return text + "." + (f" The cohort allows: {allows}." if allows else "")


@dataclass(frozen=True)
class Verdict:
    level: str  # "leak" | "caution" | "imbalance" | "ok" | "inconclusive" | "unknown" | "not_applicable"
    text: str


def cohort_text(report: ReportReading | None) -> str:
    """The whole-cohort nearest-patient test in one line, or why there is none."""
    from synthvu_core.evaluation.cohort import cohort_line

    return "no report." if report is None else cohort_line(report.scalars, report.meta.get("missing")) + "."


def level_word(level: str) -> str:
    """The words of a verdict level (:data:`~synthvu_core.evaluation.verdicts.LEVEL_WORDS`)."""
    from synthvu_core.evaluation.verdicts import LEVEL_WORDS

    return LEVEL_WORDS.get(level, level.replace("_", " "))


_OLD = "This report predates verdicts per threat model: re-run `python -m synthvu_core evaluate MODEL --controls`."


def verdict(
    view: ReportView | None, card: Mapping[str, Any] | None = None, threat: str = "released_samples"
) -> Verdict:
    """The evaluation's verdict for one threat model (``released_samples`` or ``released_discriminator``)."""
    if view is None:
        return Verdict("unknown", "No privacy report yet: nothing has been measured.")
    v = (view.meta.get("verdicts") or {}).get(threat)
    if not v:
        return Verdict("unknown", _OLD)
    text = str(v.get("text", ""))
    if threat == "released_samples":
        text += dp_note(card, view)
    elif card:
        from synthvu_core.models.ledger import bound_changed

        changed = bound_changed(card, view.meta)
        text += f" {changed}" if changed else ""
    return Verdict(str(v.get("level", "unknown")), text)


def utility_rows(view: ReportView) -> list[dict[str, Any]]:
    """Mean [95% CI] over seeds of TRTR, TSTR, TRTS and TSTR/TRTR."""
    seeds = (view.meta.get("utility") or {}).get("seeds") or []
    rows = []
    for key, label in [
        *((f"utility.{s}.balanced_accuracy", SETTING_NAMES[s]) for s in UTILITY_SETTINGS),
        ("utility.tstr_over_trtr", "TSTR / TRTR"),
    ]:
        rows.append({"setting": label, "mean [95% interval]": with_ci(view, key),
                     "seeds only [95% CI]": interval(view.scalar(key + "_seeds_ci_low"),
                                                     view.scalar(key + "_seeds_ci_high")) or "re-run evaluate",
                     "seeds": len(seeds) or "—"})
    return rows


def usefulness_of(view: ReportView) -> Usefulness:
    """The core's usefulness label of a report (``level``: ``not_useful`` | ``above_chance`` | ``unknown``,
    ``text``, ``chance``), read from its stored numbers."""
    from synthvu_core.evaluation.utility import report_usefulness

    return report_usefulness(view.scalars, view.meta, view.array("utility/trtr/recall"))


def holdout_counts(view: ReportView, n_classes: int) -> np.ndarray | None:
    """Holdout VUs per class (what each class's recall rests on), from the report's holdout labels."""
    labels = view.array("utility/holdout_labels")
    if labels is None:
        return None
    labels = np.asarray(labels, dtype=int)
    return np.bincount(labels[(labels >= 0) & (labels < n_classes)], minlength=n_classes)


def weak_classes(view: ReportView, classes: list[str]) -> list[tuple[str, float, int | None, bool, int | None]]:
    """Classes of the holdout whose TSTR recall (pooled over seeds) is at or below chance:
    ``[(class, recall, holdout VUs of the class or None, whether TRTR's recall is at or below chance too, holdout
    patients of the class or None)]``."""
    from synthvu_core.evaluation.utility import class_patients, classes_at_or_below

    chance = usefulness_of(view).chance
    rec, real = view.array("utility/tstr/recall"), view.array("utility/trtr/recall")
    weak = classes_at_or_below(rec, chance)
    if not weak:
        return []
    counts, patients = holdout_counts(view, len(rec)), class_patients(view.arrays, len(rec))
    real = np.full(len(rec), np.nan) if real is None or len(real) != len(rec) else np.asarray(real, dtype=float)
    return [(classes[i] if i < len(classes) else str(i), float(rec[i]), None if counts is None else int(counts[i]),
             bool(real[i] <= chance), None if patients is None else int(patients[i])) for i in weak]


def usefulness_box(view: ReportView, classes: list[str]) -> tuple[str, str]:
    """How the usefulness label is drawn: ``(kind, text)``, kind ``error`` (TSTR reaches chance), ``warning``
    (above chance, but some class's TSTR recall is at or below chance), ``success`` or ``info`` (not measured)."""
    u = usefulness_of(view)
    if u.level == "not_useful":
        return "error", u.text
    if u.level != "above_chance":
        return "info", u.text
    parts = _class_parts(u.text, weak_classes(view, classes))
    parts += _source_parts("" if parts else u.text, view)
    if not parts:
        return "success", u.text
    return "warning", ". ".join(p[0].upper() + p[1:] for p in parts)


def _class_parts(text: str, weak: list) -> list[str]:
    """The usefulness box's sentences on classes whose TSTR recall is at or below chance (``text``: the label)."""
    from synthvu_core.names import MIN_RECALL_PATIENTS

    def names(rows: list) -> str:
        return ", ".join(f"{c} ({r:.3f}" + ("" if n is None else f" on {n} holdout VU{'s' * (n != 1)}")
                         + ("; TRTR too" if real else "") + ")" for c, r, n, real, _ in rows)

    def that(rows: list) -> str:
        return "that class" if len(rows) == 1 else "those classes"

    own = [w for w in weak if not w[3]]
    firm = [w for w in own if w[4] is None or w[4] >= MIN_RECALL_PATIENTS]  # not known to rest on one patient
    thin, shared = [w for w in own if w not in firm], [w for w in weak if w[3]]
    parts = [f"{text}, but TSTR recall is at or below chance for {names(firm)}: not useful for telling "
             f"{that(firm)} apart on this holdout"] if firm else []
    if thin:  # one holdout patient: its VUs, right or wrong, and no interval
        parts.append(f"{'' if parts else text + ', but '}TSTR recall is at or below chance for {names(thin)}, read "
                     f"on one holdout patient with no interval: this holdout cannot tell whether the samples teach "
                     f"{that(thin)}")
    if shared:
        parts.append(f"{'' if own else text + ', but '}TSTR recall is at or below chance for {names(shared)}, as is "
                     "the real classifier's: it does not recognise those holdout VUs either, so this holdout cannot "
                     "show what the generator does for them")
    return parts


def _source_parts(text: str, view: ReportView) -> list[str]:
    """The usefulness box's sentence on sources whose TSTR is marked (:meth:`SourceRow.mark`); ``text``: the label,
    where no sentence comes before."""
    from synthvu_core.evaluation.source_utility import source_rows

    marked = [r for r in source_rows(view.scalars, view.meta.get("missing") or {}) if r.mark()]
    if not marked:
        return []
    each = "; ".join(f"{r.name} ({r.support}): TSTR {r.tstr.short()} against chance {r.chance:.3f}, {r.mark()}"
                     for r in marked)  # a marked row has a chance: usefulness() marks nothing without one
    return [f"{text + ', but ' if text else ''}read per source, {each}"]


def release_sentence(view: ReportView, classes: list[str]) -> str:
    """TSTR trained on the whole synthetic set (a large release, beside TSTR proper), or why it was not read; ""
    for a report made before the reading."""
    from synthvu_core.evaluation.release_utility import release_text

    return release_text(view.scalars, view.arrays, classes, view.meta.get("missing") or {}) or ""


def missing_lines(missing: Mapping[str, str]) -> list[str]:
    """One line per reason a report gives for numbers it does not hold: the numbers that share a reason named once,
    by their common prefix (``utility.release.*``, 11 numbers), so one reason is not repeated for each of them."""
    by_reason: dict[str, list[str]] = {}
    for key, why in missing.items():
        by_reason.setdefault(str(why), []).append(key)
    lines = []
    for why, keys in by_reason.items():
        prefix = os.path.commonprefix(keys).rsplit(".", 1)[0]
        label = f"`{keys[0]}`" if len(keys) == 1 else f"`{prefix}.*` ({len(keys)} numbers)"
        lines.append(f"{label} not measured: {why}")
    return lines


def chance_text(view: ReportView) -> str:
    """``"chance 0.333 (1 / 3 classes in the holdout)"``, or why it is not known."""
    c = usefulness_of(view).chance
    if c is None:
        return "chance not measured (re-run evaluate)"
    return f"chance {c:.3f} (1 / {round(1 / c)} classes in the holdout)"


#: More classes absent from the holdout than this fold into one "absent" column (a DP vocabulary of 28 levels on a
#: lumbar holdout would otherwise draw 24 columns of nothing).
MAX_ABSENT_COLUMNS = 4


def recall_rows(view: ReportView, classes: list[str]) -> list[dict[str, Any]]:
    """Per-class recall of TRTR and TSTR on the holdout (pooled over seeds); "absent" where the holdout lacks it,
    or, past :data:`MAX_ABSENT_COLUMNS` such classes, one column counting them."""
    recalls = {s: view.array(f"utility/{s}/recall") for s in ("trtr", "tstr")}
    found = [np.asarray(r, dtype=float) for r in recalls.values() if r is not None]
    names = [classes[i] if i < len(classes) else str(i) for i in range(max([len(classes), *map(len, found)]))]
    absent = {i for i in range(len(names)) if found and all(not np.isfinite(r[i]) for r in found if i < len(r))}
    fold = len(absent) > MAX_ABSENT_COLUMNS
    shown = [i for i in range(len(names)) if not (fold and i in absent)]
    folded = {"absent from the holdout": f"{len(absent)} classes"} if fold else {}
    rows = []
    for s, rec in recalls.items():
        if rec is None:
            continue
        r = np.asarray(rec, dtype=float)
        rows.append({"setting": s.upper(), **{names[i]: "absent" if i >= len(r) or not np.isfinite(r[i])
                                               else f"{r[i]:.3f}" for i in shown}, **folded})
    from synthvu_core.evaluation.utility import class_recall

    tstr = class_recall(view.arrays, "tstr")
    if rows and tstr is not None:  # a recall on one or two patients' VUs says little about the next patient
        rows.append({"setting": "TSTR 95% CI", **{names[i]: _interval_cell(tstr[i]) if i < len(tstr) else "—"
                                                   for i in shown}, **({k: "—" for k in folded})})
    counts = holdout_counts(view, len(classes))
    if rows and counts is not None:  # a recall on one or two VUs moves in steps of 1/2 or 1
        rows.append({"setting": "holdout VUs", **{names[i]: str(int(counts[i])) if i < len(counts) else "0"
                                                   for i in shown}, **({k: "0" for k in folded})})
    if rows and tstr is not None and any(c.n_patients is not None for c in tstr):
        rows.append({"setting": "holdout patients", **{names[i]: _count(tstr[i].n_patients) if i < len(tstr) else "0"
                                                        for i in shown}, **({k: "0" for k in folded})})
    return rows


def source_table(view: ReportView) -> list[dict[str, str]]:
    """TRTR, TSTR and TSTR/TRTR on each source's holdout VUs alone, against that source's chance; empty for a report
    of one source (or written before per-source readings were stored)."""
    from synthvu_core.evaluation.source_utility import source_rows

    rows = source_rows(view.scalars, view.meta.get("missing") or {})
    warn = any(r.mark() for r in rows)  # the column only where some source needs it
    return [
        {"source": r.name, "holdout": r.support, "chance": "—" if r.chance is None else f"{r.chance:.3f}",
         "TRTR": r.trtr.short(), "TSTR": r.tstr.short(), "TSTR / TRTR": r.ratio.short(),
         **({"warning": r.mark()} if warn else {})}
        for r in rows
    ]


def untested_sources(view: ReportView) -> str:
    """Which training sources the per-source reading cannot test (no holdout VUs of theirs); "" where none."""
    from synthvu_core.evaluation.source_utility import untested_text

    return untested_text(view.scalars, view.meta)


def source_caption(view: ReportView) -> str:
    """What :func:`source_table` shows and what it rests on, and which training sources it cannot test."""
    from synthvu_core.evaluation.source_utility import source_caption_text

    return source_caption_text(view.scalars, view.meta)


def _count(n: int | None) -> str:
    return "—" if n is None else str(n)


def _interval_cell(c: ClassRecall) -> str:
    """``"[0.20, 1.00]"``, or why a class's recall has no interval (absent; one patient; not stored)."""
    if c.recall is None:
        return "absent"
    return f"[{c.low:.2f}, {c.high:.2f}]" if c.low is not None and c.high is not None else (c.why or "—")


def dp_note(card: Mapping[str, Any] | None, view: ReportView | None) -> str:
    """What differential privacy adds to the released-samples verdict; the bound covers a patient only where
    the card says its unit is a patient."""
    eps = epsilon_of(card, view)
    unit = ((card or {}).get("dp") or {}).get("unit")
    holds = composed_bound_holds(card)
    if eps is not None and unit == "patient" and holds is False:
        return (
            f" Training was differentially private per patient with {epsilon_text(card, view)}; no bound holds for "
            "these patients: these attacks are evidence, not a guarantee."
        )
    if eps is not None and unit == "patient" and holds:
        return (
            f" Training was differentially private per patient with {epsilon_text(card, view)}: the composed bound "
            "holds whatever the attacks find."
        )
    if eps is not None and unit == "patient":
        return (
            f" Training was differentially private per patient with {epsilon_text(card, view)}; the card records no "
            "privacy ledger, so other runs on these patients are not composed and the bound is this run's alone."
        )
    if eps is not None:
        return (
            f" Training was differentially private per vertebral unit only ({epsilon_text(card, view)}): a patient "
            "contributes many VUs, so the bound per patient is far weaker; these attacks are evidence, not a guarantee."
        )
    return " Training was not differentially private: these attacks are evidence, not a guarantee."


def control_rows(view: ReportView, name: str = "this generator") -> list[dict[str, Any]]:
    """The generator beside its controls: pairwise pixel AUC [CI] and the strongest counted attack's AUC."""
    out = []
    for label, v in [
        (name, view),
        *((k, view.controls[k]) for k in (*GRADED_CONTROLS, INDEPENDENT_CONTROL) if k in view.controls),
    ]:
        out.append(
            {
                "generator": label,
                "pairwise pixel AUC [95% CI]": with_ci(v, "privacy.pairwise.pixel.auc"),
                "definition": str(v.meta.get("control_definition", "the generator's own samples")),
            }
        )
    return out


def dataset_mismatch(view: ReportView, card: Mapping[str, Any] | None) -> str | None:
    """A message when the report was computed on another dataset than the generator's card names (a rebuild that
    ``evaluate`` recognised as that dataset, recorded as ``generator_dataset_fingerprint``, is not another one)."""
    rep = view.meta.get("dataset_fingerprint")
    ds = (card or {}).get("dataset") or {}
    own = ds.get("fingerprint") if isinstance(ds, Mapping) else None
    if rep and own and str(rep) != str(own) and str(view.meta.get("generator_dataset_fingerprint")) != str(own):
        return (
            f"This report was computed on dataset {rep}, but the generator was trained on dataset {own}: "
            "its numbers do not describe this generator. Recompute the report."
        )
    return None


def shareable_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """A card fit for public mode (``synthvu_core.share.public_card``): source file names (which often
    carry patient ids) become a count, and the training command line and dataset path are dropped."""
    from synthvu_core.share import public_card

    return public_card(dict(card), with_discriminator=None)


def public_view(view: ReportView) -> ReportView:
    """The report as public mode holds it: the arrays that ``share`` lets leave, and the real UMAP
    coordinates that are drawn as a density only (``synthvu_core.share``); controls alike."""
    from synthvu_core.share import PUBLIC_MODE_DENSITY, public_array

    return ReportView(
        scalars=view.scalars,
        definitions=view.definitions,
        meta=view.meta,
        arrays={k: v for k, v in view.arrays.items() if public_array(k) or k in PUBLIC_MODE_DENSITY},
        controls={name: public_view(c) for name, c in view.controls.items()},
    )


def dataset_label(card: Mapping[str, Any] | None) -> str:
    """A dataset's name for a figure: the phantom recipe's name or the dataset folder's, and its fingerprint."""
    ds = (card or {}).get("dataset") or {}
    name = (ds.get("recipe") or {}).get("name") or (str(ds["path"]).replace("\\", "/").rstrip("/").split("/")[-1]
                                                    if ds.get("path") else "own data")
    return f"{name} ({ds.get('fingerprint') or 'no fingerprint'}, {len((card or {}).get('classes') or [])} classes)"


def cohort_family(card: Mapping[str, Any] | None) -> str | None:
    """The phantom recipe family of a generator's training cohort (same recipe, any seed); None for own data."""
    from synthvu_core.data.build import recipe_family

    return recipe_family(((card or {}).get("dataset") or {}).get("recipe"))


#: ``train`` options that name a run rather than its recipe: runs differing only in these are replicates.
_RUN_OPTIONS = ("--out", "--name", "--seed", "--dataset", "--checkpoint-every", "--device")


def recipe_key(card: Mapping[str, Any] | None) -> str | None:
    """A generator's training recipe: its card's ``train`` command without the options that name the run (seed,
    output, dataset path, device); None where the card records no command."""
    import shlex

    command = ((card or {}).get("training") or {}).get("command")
    if not command:
        return None
    words, keep, skip = shlex.split(str(command)), [], False
    for w in words:
        if skip:
            skip = False
            continue
        if w in _RUN_OPTIONS:
            skip = True
            continue
        keep.append(w)
    return " ".join(keep)


def design_rows(levels: Sequence[LevelDesign]) -> list[dict[str, Any]]:
    """The Models & data page's table of a dataset's levels: VUs, patients per part and, with several sources,
    patients per source (``"chu2015 3, myosegmentum 0"``)."""
    rows = []
    for d in levels:
        row: dict[str, Any] = {"level": d.level, "VUs": d.vus}
        row.update({f"{part} patients": n for part, n in d.patients.items()})
        if d.by_source:
            row["patients by source"] = ", ".join(f"{s} {n}" for s, n in d.by_source.items())
        rows.append(row)
    return rows


def split_text(split: Mapping[str, Any] | None) -> str:
    """``{"train": 0.6, "holdout": 0.2, "reference": 0.2, "seed": 0}`` ->
    ``"train 0.6 / holdout 0.2 / reference 0.2 (seed 0)"``."""
    if not split:
        return "—"
    parts = " / ".join(f"{k} {split[k]}" for k in ("train", "holdout", "reference") if k in split)
    return parts + (f" (seed {split['seed']})" if "seed" in split else "")
