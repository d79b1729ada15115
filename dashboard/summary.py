"""What a report says, in the words and tables the pages show (no streamlit, no computation of metrics).

A :class:`ReportView` is a plain, picklable copy of a ``synthvu_core`` ``Report``: the scalars,
definitions and meta as dicts, the arrays materialised as numpy arrays, controls as nested views.
Everything here reads numbers the evaluation already wrote; the only judgement made is the
plain-words privacy verdict, whose thresholds are named constants below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ATTACKS: tuple[str, ...] = ("pairwise", "distribution", "domias", "discriminator")
SPACES: tuple[str, ...] = ("pixel", "embedding", "umap")
UTILITY_SETTINGS: tuple[str, ...] = ("trtr", "tstr", "trts")
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

#: Verdict thresholds on the worst attack. Chance is AUC 0.5 and TPR 1% at 1% FPR.
LEAK_AUC = 0.8
LEAK_TPR = 0.20
CAUTION_AUC = 0.6
CAUTION_TPR = 0.05


@dataclass
class ReportView:
    """Picklable report contents: ``arrays`` maps array keys (``"umap/real"``) to numpy arrays."""

    scalars: dict[str, float | None]
    definitions: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    controls: dict[str, ReportView] = field(default_factory=dict)

    def scalar(self, key: str) -> float | None:
        v = self.scalars.get(key)
        if v is None:
            return None
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        return None if np.isnan(f) else f

    def array(self, key: str) -> np.ndarray | None:
        return self.arrays.get(key)

    def has(self, *keys: str) -> bool:
        return all(k in self.arrays for k in keys)


def view_of(report: Any) -> ReportView:
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
    )


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table or metric; ``"—"`` where not measured."""
    if value is None:
        return "—"
    return f"{value:.{digits}f}"


def epsilon_of(card: Mapping[str, Any] | None, view: ReportView | None = None) -> float | None:
    """DP ε of a generator (card first, report second); None for a non-private generator."""
    dp = (card or {}).get("dp") or {}
    eps = dp.get("epsilon") if isinstance(dp, Mapping) else None
    if eps is None and view is not None:
        eps = view.scalar("dp.epsilon")
    return None if eps is None else float(eps)


def epsilon_text(card: Mapping[str, Any] | None, view: ReportView | None = None) -> str:
    eps = epsilon_of(card, view)
    if eps is None:
        return "no DP (ε = ∞)"
    dp = (card or {}).get("dp") or {}
    delta = dp.get("delta") if isinstance(dp, Mapping) else None
    unit = dp.get("unit", "VU") if isinstance(dp, Mapping) and dp else None
    return f"ε = {eps:.2f}" + (f", δ = {delta:.1e}" if delta else "") + (f" per {unit}" if unit else "")


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
    s = view.scalar if view is not None else (lambda _k: None)
    return Headline(
        trtr=s("utility.trtr.balanced_accuracy"),
        tstr=s("utility.tstr.balanced_accuracy"),
        trts=s("utility.trts.balanced_accuracy"),
        ratio=s("utility.tstr_over_trtr"),
        worst_auc=s("privacy.worst.auc"),
        worst_tpr1=s("privacy.worst.tpr_at_1pct_fpr"),
        epsilon=epsilon_of(card, view),
    )


def attacks_present(view: ReportView) -> list[tuple[str, str]]:
    """(attack, space) pairs the report measured, in the canonical order."""
    return [
        (a, sp)
        for a in ATTACKS
        for sp in SPACES
        if view.scalar(f"privacy.{a}.{sp}.auc") is not None or f"privacy/{a}/{sp}/roc_fpr" in view.arrays
    ]


def attack_rows(view: ReportView) -> list[dict[str, Any]]:
    """One row per measured attack and space: AUC with CI, TPR at low FPR, top-k share, patient level."""
    rows = []
    for a, sp in attacks_present(view):
        p = f"privacy.{a}.{sp}."
        lo, hi = view.scalar(p + "auc_ci_low"), view.scalar(p + "auc_ci_high")
        rows.append(
            {
                "attack": a,
                "space": sp,
                "AUC": view.scalar(p + "auc"),
                "AUC 95% CI": f"[{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else "—",
                "TPR @ 1% FPR": view.scalar(p + "tpr_at_1pct_fpr"),
                "TPR @ 0.1% FPR": view.scalar(p + "tpr_at_0.1pct_fpr"),
                "top-k share": view.scalar(p + "topk_share"),
                "patient AUC": view.scalar(p + "patient_auc"),
                "patient TPR @ 1% FPR": view.scalar(p + "patient_tpr_at_1pct_fpr"),
            }
        )
    return rows


def worst_attack(view: ReportView) -> tuple[str, str] | None:
    """The (attack, space) with the highest AUC."""
    best, best_auc = None, -1.0
    for a, sp in attacks_present(view):
        auc = view.scalar(f"privacy.{a}.{sp}.auc")
        if auc is not None and auc > best_auc:
            best, best_auc = (a, sp), auc
    return best


@dataclass(frozen=True)
class Verdict:
    level: str  # "leak" | "caution" | "ok" | "unknown"
    text: str


def verdict(view: ReportView | None, card: Mapping[str, Any] | None = None) -> Verdict:
    """Plain-words reading of the worst membership attack (and the DP guarantee, where there is one)."""
    if view is None:
        return Verdict("unknown", "No privacy report yet: nothing has been measured.")
    h = headline(view, card)
    eps = h.epsilon
    unit = ((card or {}).get("dp") or {}).get("unit") if eps is not None else None
    if eps is not None and unit == "patient":
        dp_note = (f" Training was differentially private per patient with {epsilon_text(card, view)}: "
                   "that bound holds whatever the attacks find.")
    elif eps is not None:
        dp_note = (f" Training was differentially private per vertebral unit only ({epsilon_text(card, view)}): a patient "
                   "contributes many VUs, so the bound per patient is far weaker; these attacks are evidence, not a guarantee.")
    else:
        dp_note = " Training was not differentially private: these attacks are evidence, not a guarantee."
    if h.worst_auc is None and h.worst_tpr1 is None:
        return Verdict("unknown", "The report holds no membership attack results." + dp_note)
    auc = h.worst_auc if h.worst_auc is not None else 0.5
    tpr = h.worst_tpr1 if h.worst_tpr1 is not None else 0.0
    worst = worst_attack(view)
    which = f"; strongest: {worst[0]} attack in {worst[1]} space" if worst else ""
    numbers = f"worst AUC {fmt(h.worst_auc)}, worst TPR at 1% FPR {fmt(h.worst_tpr1)}{which}"
    if auc >= LEAK_AUC or tpr >= LEAK_TPR:
        return Verdict(
            "leak",
            f"Leaks its training patients: an attacker tells training VUs from unseen ones far better than chance "
            f"({numbers}). Do not share these samples." + dp_note,
        )
    if auc >= CAUTION_AUC or tpr >= CAUTION_TPR:
        return Verdict(
            "caution",
            f"Some membership signal: the best attack does better than chance ({numbers}). "
            "Share with care, or prefer a differentially private generator." + dp_note,
        )
    return Verdict(
        "ok",
        f"No attack tested tells training VUs from unseen ones much better than a coin flip ({numbers})." + dp_note,
    )


def control_rows(view: ReportView, name: str = "this generator") -> list[dict[str, Any]]:
    """The generator beside its controls: worst and pairwise AUC, TPR at 1% FPR, TSTR."""
    out = []
    for label, v in [(name, view), *view.controls.items()]:
        out.append(
            {
                "generator": label,
                "worst AUC": v.scalar("privacy.worst.auc"),
                "worst TPR @ 1% FPR": v.scalar("privacy.worst.tpr_at_1pct_fpr"),
                "pairwise AUC (pixel)": v.scalar("privacy.pairwise.pixel.auc"),
                "pairwise AUC CI": (
                    f"[{fmt(v.scalar('privacy.pairwise.pixel.auc_ci_low'))}, {fmt(v.scalar('privacy.pairwise.pixel.auc_ci_high'))}]"
                ),
                "TSTR": v.scalar("utility.tstr.balanced_accuracy"),
            }
        )
    return out


def dataset_mismatch(view: ReportView, card: Mapping[str, Any] | None) -> str | None:
    """A message when the report was computed on another dataset than the generator's card names."""
    rep = view.meta.get("dataset_fingerprint")
    ds = (card or {}).get("dataset") or {}
    own = ds.get("fingerprint") if isinstance(ds, Mapping) else None
    if rep and own and str(rep) != str(own):
        return (
            f"This report was computed on dataset {rep}, but the generator was trained on dataset {own}: "
            "its numbers do not describe this generator. Recompute the report."
        )
    return None


def shareable_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """A card fit for public mode: source file names (which often carry patient ids) become a count,
    and the training command line and dataset path (local paths) are dropped."""
    import copy

    out = copy.deepcopy(dict(card))
    ds = out.get("dataset")
    if isinstance(ds, dict) and isinstance(ds.get("sources"), list):
        ds["sources"] = f"{len(ds['sources'])} source files"
    if isinstance(ds, dict):
        ds.pop("path", None)  # a server path
    tr = out.get("training")
    if isinstance(tr, dict):
        tr.pop("command", None)
    return out


def split_text(split: Mapping[str, Any] | None) -> str:
    """``{"train": 0.6, "holdout": 0.2, "reference": 0.2, "seed": 0}`` -> ``"train 0.6 / holdout 0.2 / reference 0.2 (seed 0)"``."""
    if not split:
        return "—"
    parts = " / ".join(f"{k} {split[k]}" for k in ("train", "holdout", "reference") if k in split)
    return parts + (f" (seed {split['seed']})" if "seed" in split else "")
