"""The README's generator tables, written from saved reports (never from numbers typed by hand).

``python -m synthvu_core report table [MODEL ...]`` prints one Markdown table of utility and one of
privacy, one row per generator; without MODEL, every shipped generator with a report. A sub-volume generator's row
holds the fields its ``volume_report.json`` has (:func:`volume_rows`: a 3-D classifier's utility, one attack).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthvu_core.names import INDEPENDENT_CONTROL, PRIMARY_ATTACK
from synthvu_core.records import epsilon_value

if TYPE_CHECKING:
    from synthvu_core.records import Report

UTILITY_KEYS: tuple[tuple[str, str], ...] = (
    ("TRTR", "utility.trtr.balanced_accuracy"),
    ("TSTR", "utility.tstr.balanced_accuracy"),
    ("TRTS", "utility.trts.balanced_accuracy"),
    ("TSTR/TRTR", "utility.tstr_over_trtr"),
)


def _num(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _with_ci(scalars: dict[str, Any], key: str) -> str:
    lo, hi = scalars.get(key + "_ci_low"), scalars.get(key + "_ci_high")
    ci = f" [{_num(lo, 2)}, {_num(hi, 2)}]" if lo is not None and hi is not None else ""
    return _num(scalars.get(key)) + ci


def _dp_cell(card: dict[str, Any]) -> str:
    dp = card.get("dp") or {}
    if not dp:
        return "—"
    from synthvu_core.models.ledger import composed_short

    unit = dp.get("unit") or "VU"
    return f"ε {epsilon_value(dp['epsilon'])} this run, {composed_short(card)}; δ {dp['delta']:.0e} per {unit}"


def _trained_on(card: dict[str, Any]) -> str:
    ds, tr = card.get("dataset") or {}, card.get("training") or {}
    recipe = (ds.get("recipe") or {}).get("name") or "own data"
    units = "sub-volumes" if (card.get("architecture") or {}).get("spatial_dims") == 3 else "VUs"
    init = " (from " + tr["init_from"]["name"] + ")" if isinstance(tr.get("init_from"), dict) else ""
    if isinstance(tr.get("distilled_from"), dict):
        init = f" (distilled from {tr['distilled_from']['name']})"
    return f"{recipe}, {ds.get('n_train', '?')} {units}, {tr.get('steps', '?')} steps{init}"


def lowest_recall(arrays: dict[str, Any], classes: list[str]) -> str:
    """The lowest per-class TRTS recall (pooled over seeds) and its class: is every class recognised?"""
    import numpy as np

    rec = arrays.get("utility/trts/recall")
    if rec is None or not np.isfinite(rec).any():
        return "—"
    i = int(np.nanargmin(rec))
    return f"{float(rec[i]):.3f} ({classes[i] if i < len(classes) else i})"


def usefulness_cell(scalars: dict[str, Any], meta: dict[str, Any], arrays: dict[str, Any]) -> tuple[str, str]:
    """(chance, usefulness) cells: chance = 1 / classes present in the holdout; **not useful** where TSTR's
    interval reaches it."""
    from synthvu_core.evaluation.utility import report_usefulness

    u = report_usefulness(scalars, meta, arrays.get("utility/trtr/recall"))
    word = {"not_useful": "**not useful for this task**", "above_chance": "above chance"}.get(u.level, "—")
    if u.level != "unknown" and "re-run" in u.text:
        word += " (seeds-only interval)"
    return _num(u.chance), word


def utility_row(
    name: str, card: dict[str, Any], scalars: dict[str, Any], recall: str = "—", chance: tuple[str, str] = ("—", "—")
) -> str:
    cells = [f"`{name}`", _trained_on(card), _dp_cell(card), *(_with_ci(scalars, k) for _, k in UTILITY_KEYS),
             *chance, recall, _num(scalars.get("fidelity.frechet_distance"))]
    return "| " + " | ".join(cells) + " |"


def privacy_row(name: str, report: Report) -> str:
    verdicts = report.meta.get("verdicts") or {}
    a = verdicts.get("released_samples") or {}
    b = verdicts.get("released_discriminator") or {}
    primary = "privacy." + ".".join(PRIMARY_ATTACK) + ".auc"
    worst = a.get("worst_other") or {}
    worst_cell = "—"
    if worst.get("auc") is not None:
        lo, hi = (worst.get("auc_ci") or [None, None])[:2]
        worst_cell = f"{worst['attack']} {_num(worst['auc'])} [{_num(lo, 2)}, {_num(hi, 2)}]"
    ind = report.controls.get(INDEPENDENT_CONTROL)
    cohort = _cohort_cell(report.scalars, report.meta.get("missing"))
    cells = [f"`{name}`", _level_cell(a), _with_ci(report.scalars, primary), worst_cell, cohort,
             f"{len(a.get('counted') or [])} of {len(a.get('counted') or []) + len(a.get('no_power') or [])}",
             _with_ci(ind.scalars, primary) if ind is not None else "—", _independent_cell(report),
             str(b.get("level", "—"))]
    return "| " + " | ".join(cells) + " |"


def _cohort_cell(scalars: dict[str, Any], missing: dict[str, str] | None) -> str:
    """The whole-cohort test: share of samples nearest a training patient (expected), p, patient AUC."""
    from synthvu_core.evaluation.cohort import CohortTest

    c = CohortTest.from_scalars(scalars)
    if c is None:
        return "not computed" if (missing or {}).get("cohort.p_value") else "not run (older report)"
    return (f"{c.share_train:.0%} ({c.expected_share:.0%} expected), p {c.p_value:.2g}; "
            f"patient AUC {c.patient_auc:.2f}")


def _level_cell(verdict: dict[str, Any]) -> str:
    """Verdict (a)'s words; an inconclusive one with the patients per side it would need."""
    from synthvu_core.evaluation.verdicts import LEVEL_WORDS

    level = str(verdict.get("level", "—"))
    word = LEVEL_WORDS.get(level, level)
    need = verdict.get("patients_needed")
    return f"{word} (needs {need} patients per side)" if word == "inconclusive" and need else word


def _independent_cell(report: Report) -> str:
    """Whether the independent control covers 0.5 in every counted attack (family-wise), with the count."""
    check = report.meta.get("independent_control") or {}
    rows = check.get("rows") or {}
    if not rows:
        return "—"
    ok = sum(bool(r["covers"]) for r in rows.values())
    return f"{'yes' if ok == len(rows) else 'NO'} ({ok} of {len(rows)})"


UTILITY_HEADER = ("| generator | trained on | DP | TRTR | TSTR | TRTS | TSTR/TRTR | chance | usefulness (TSTR "
                  "vs chance) | lowest TRTS recall (class) | Fréchet distance |\n"
                  "|---|---|---|---|---|---|---|---|---|---|---|")
PRIVACY_HEADER = ("| generator | verdict (a) released samples | pairwise pixel AUC (primary) | strongest other counted "
                  "attack | whole-cohort test: samples nearest a training patient, raw p | attacks with power | "
                  "independent control, pairwise pixel AUC | independent control at "
                  "chance in the counted attacks (family-wise) | verdict (b) released discriminator |\n"
                  "|---|---|---|---|---|---|---|---|---|")


#: A cell of the privacy table that a sub-volume evaluation does not fill: it runs one attack (see
#: :data:`synthvu_core.evaluation.volume.PRIVACY_SCOPE`).
NOT_ON_SUBVOLUMES = "not run on sub-volumes"


def volume_rows(name: str, card: dict[str, Any], report: dict[str, Any]) -> tuple[str, str]:
    """(utility row, privacy row) of a sub-volume generator's ``report/volume_report.json``: the fields it has.

    Its utility is a 3-D position classifier's (no per-class recall is stored: "—"); its privacy is one attack, the
    pairwise pixel attack read alone with its controls (not verdict (a) over a family of attacks)."""
    from synthvu_core.evaluation.utility import usefulness
    from synthvu_core.evaluation.verdicts import LEVEL_WORDS

    s = report.get("scalars") or {}
    k = "utility.tstr.balanced_accuracy"
    u = usefulness(s.get(k), s.get(k + "_ci_low"), s.get(k + "_ci_high"), s.get("utility.chance"))
    word = {"not_useful": "**not useful for this task**", "above_chance": "above chance"}.get(u.level, "—")
    util = utility_row(name, card, s, "—", (_num(u.chance), word))
    p = report.get("privacy")
    if not isinstance(p, dict):  # not evaluated (or an older report's sentence)
        return util, "| " + " | ".join([f"`{name}`", "not evaluated", *["—"] * 7]) + " |"
    level = str(p.get("level", "—"))
    power = bool((p.get("power") or {}).get("has_power"))
    ind = (p.get("controls") or {}).get(INDEPENDENT_CONTROL)
    covers = "—"
    if power and ind and ind.get("auc_ci_low") is not None and ind.get("auc_ci_high") is not None:
        covers = "yes (1 of 1)" if ind["auc_ci_low"] <= 0.5 <= ind["auc_ci_high"] else "NO (0 of 1)"
    cells = [f"`{name}`", f"{LEVEL_WORDS.get(level, level)} (sub-volume: one attack read alone)",
             _with_ci(p.get("scalars") or {}, "auc"), NOT_ON_SUBVOLUMES, NOT_ON_SUBVOLUMES, f"{int(power)} of 1",
             _with_ci(ind, "auc") if ind else "—", covers, NOT_ON_SUBVOLUMES]
    return util, "| " + " | ".join(cells) + " |"


def _rows(folder: Path) -> tuple[str, str] | None:
    """(utility row, privacy row) of the generator in ``folder``; None where it has no report; a
    :class:`SynthVUError` where its report is stale or unreadable."""
    from synthvu_core.errors import SynthVUError
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.evaluation.volume import is_volume_card, load_volume_report
    from synthvu_core.models.registry import load_card

    report = load_report(folder)
    if report is not None:
        card = load_card(folder)
        name = card.get("name", folder.name)
        return (utility_row(name, card, report.scalars, lowest_recall(report.arrays, list(card["classes"])),
                            usefulness_cell(report.scalars, report.meta, report.arrays)), privacy_row(name, report))
    try:
        card = load_card(folder)
    except SynthVUError:  # no report and no readable card: "no report yet"
        return None
    volume = load_volume_report(folder, card) if is_volume_card(card) else None
    return None if volume is None else volume_rows(card.get("name", folder.name), card, volume)


def tables(folders: list[Path], skipped: list[str] | None = None) -> str:
    """The utility table and the privacy table of the generators in ``folders`` that have a fresh report (a VU
    report, or a sub-volume generator's ``volume_report.json``: :func:`volume_rows`); why each other folder was left
    out is appended to ``skipped`` where given."""
    from synthvu_core.errors import SynthVUError

    util, priv = [UTILITY_HEADER], [PRIVACY_HEADER]
    for folder in folders:
        try:
            rows = _rows(folder)
        except SynthVUError as err:  # a stale or unreadable report is never shown as the model's numbers
            rows, why = None, str(err)
        else:
            why = f"{folder}: no report yet; run `python -m synthvu_core evaluate {folder}`"
        if rows is None:
            if skipped is not None:
                skipped.append(why)
            continue
        util.append(rows[0])
        priv.append(rows[1])
    return "\n".join(util) + "\n\n" + "\n".join(priv) + "\n"
