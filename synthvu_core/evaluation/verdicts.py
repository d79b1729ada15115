"""Metrics of every attack, their power on the graded controls, and one verdict per threat model.

* **Metrics** (:func:`attack_metrics`): ROC AUC with a patient-clustered 95 % CI, TPR at 1 % and
  0.1 % FPR with CI *where estimable* (at least 10 expected false positives), the study's top-k
  share, patient-level AUC (mean of a patient's VU scores) with CI, patient TPR at 1 % FPR where
  estimable, and a one-sided patient-permutation p-value of AUC > 0.5.
* **Power** (:func:`power_curves`): the rise of a black-box attack's AUC on a graded control over its
  AUC on the generator's own samples (same candidates; paired patient-clustered CI). It has power
  where the 5 % control's rise CI lies above 0. It counts in the released-samples verdict with power,
  or where it already detects membership on the generator's own samples (own AUC CI above 0.5: a
  finding whatever the power; "no room to rise" when the own AUC is near 1); otherwise "no power on
  this data". Measuring the rise keeps a leaky generator's own leak from passing as power.
* **Verdict (a), released samples**: the pre-specified primary attack (the study's pairwise pixel
  attack, raw p) and the strongest of the other counted attacks (max-statistic permutation p over
  them), the two combined by Holm at :data:`ALPHA`. Significant with AUC >= :data:`LEAK_AUC` (or an
  estimable TPR at 1 % FPR >= :data:`LEAK_TPR`) is a leak; significant below that, caution; not
  significant with an attack that has power, no evidence; no attack with power, unknown.
* **Verdict (b), released discriminator** (white-box LOGAN): the same reading of the discriminator
  attack alone, always with "keep the discriminator private".
* **Independent control** (:func:`independent_check`): the spaces pass where the negative control's
  AUC interval covers 0.5 for every attack counted in verdict (a), at a family-wise error rate of ALPHA
  like the verdict's (Bonferroni over the k counted attacks: level 1 - ALPHA/k, which is Holm's first step
  over them; the verdict itself corrects over its two tests, this check over all k counted attacks). With k
  pointwise 95 % intervals about 5 % of k miss 0.5 by chance alone; the family-wise reading fails a
  biased space, not chance. The pointwise 95 % intervals are kept beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthvu_core.evaluation.inference import (
    AUCComponents,
    PatientIndex,
    PermutationTest,
    auc_components,
    estimable,
    holm,
    not_estimable_reason,
    patient_intervals,
    win_matrix,
)
from synthvu_core.evaluation.privacy import FPR_LEVELS, AttackResult, patient_scores, topk_share, tpr_at_fpr
from synthvu_core.names import (
    BLACK_BOX_ATTACKS,
    COUNTED_POWER,
    GRADED_CONTROLS,
    GRADED_FRACTIONS,
    POWER_FRACTION,
    POWER_LABELS,
    PRIMARY_ATTACK,
    graded_control,
)

ALPHA = 0.05
LEAK_AUC = 0.8
LEAK_TPR = 0.20
#: An own AUC at or above this leaves no room for a graded control to rise: "no room", not "no power".
NO_ROOM_AUC = 0.95
#: Per-fraction lists of a power curve: the control's AUC and CI, and its rise over the own AUC with CI.
CURVE_KEYS: tuple[str, ...] = ("fractions", "auc", "ci_low", "ci_high", "rise", "rise_low", "rise_high")
PRIVACY_METRICS: tuple[str, ...] = (
    "auc", "auc_ci_low", "auc_ci_high", "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_ci_low", "tpr_at_1pct_fpr_ci_high",
    "tpr_at_0.1pct_fpr", "topk_share", "patient_auc", "patient_auc_ci_low", "patient_auc_ci_high",
    "patient_tpr_at_1pct_fpr", "p_value",
)
PRIMARY = "/".join(PRIMARY_ATTACK)


def attack_metrics(
    scores: np.ndarray, is_member: np.ndarray, patient: np.ndarray, *, test: PermutationTest | None = None,
    name: str = "", n_boot: int = 1000, seed: int = 0,
) -> AttackResult:
    """Every metric of one attack in one space; None with a reason where not estimable."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = np.asarray(scores, dtype=np.float64)
    member = np.asarray(is_member, dtype=bool)
    res = AttackResult(scalars=dict.fromkeys(PRIVACY_METRICS), arrays={"scores": scores})
    if member.all() or not member.any() or not np.isfinite(scores).all():
        why = "scores are not all finite" if not np.isfinite(scores).all() else "needs both members and non-members"
        res.reasons = dict.fromkeys(PRIVACY_METRICS, why)
        return res
    n0 = int((~member).sum())
    fpr, tpr, _ = roc_curve(member, scores, drop_intermediate=False)
    res.scalars["auc"] = float(roc_auc_score(member, scores))
    res.scalars["topk_share"] = topk_share(scores, member)
    alphas = tuple(a for a in FPR_LEVELS.values() if estimable(a, n0))
    for key, level in FPR_LEVELS.items():
        if level in alphas:
            res.scalars[key] = tpr_at_fpr(fpr, tpr, level)
        else:
            res.reasons[key] = not_estimable_reason(level, n0)
    W = test.wins.get(name) if test is not None else None
    iv = patient_intervals(
        scores, member, patient, alphas=(0.01,) if 0.01 in alphas else (), n_boot=n_boot, seed=seed, W=W
    )
    for key, ci in (("auc", iv.auc), ("tpr_at_1pct_fpr", iv.tpr.get(0.01)), ("patient_auc", iv.patient_auc)):
        if ci is not None:
            res.scalars[f"{key}_ci_low"], res.scalars[f"{key}_ci_high"] = ci
        else:
            why = res.reasons.get(key) or iv.reason or "not computed"
            res.reasons[f"{key}_ci_low"] = res.reasons[f"{key}_ci_high"] = why
    fpr_s, tpr_s, _ = roc_curve(member, scores)
    res.arrays["roc_fpr"], res.arrays["roc_tpr"] = fpr_s, tpr_s
    _, pscores, pmember = patient_scores(scores, member, patient)
    res.arrays["patient_scores"] = pscores
    if pmember.all() or not pmember.any():
        res.reasons["patient_auc"] = res.reasons["patient_tpr_at_1pct_fpr"] = "needs member and non-member patients"
    else:
        res.scalars["patient_auc"] = float(roc_auc_score(pmember, pscores))
        p0 = int((~pmember).sum())
        if estimable(0.01, p0):
            pf, pt, _ = roc_curve(pmember, pscores, drop_intermediate=False)
            res.scalars["patient_tpr_at_1pct_fpr"] = tpr_at_fpr(pf, pt, 0.01)
        else:
            res.reasons["patient_tpr_at_1pct_fpr"] = not_estimable_reason(0.01, p0, "non-member patients")
    if test is not None and name in test.p:
        res.scalars["p_value"] = test.p[name]
    else:
        res.reasons["p_value"] = "no permutation test"
    return res


# ---- power -------------------------------------------------------------------------------------


def _components(scores: np.ndarray, pidx: PatientIndex) -> AUCComponents:
    return auc_components(win_matrix(scores, pidx), pidx)


def power_status(has_power: bool | None, own_auc: float | None, own_ci_low: float | None) -> str:
    """One key of :data:`~synthvu_core.names.POWER_LABELS` for one attack.

    Args:
        has_power: the 5 % control's rise CI lies above 0 (None without the control).
        own_auc: the attack's AUC on the generator's own samples.
        own_ci_low: the lower end of that AUC's CI.
    """
    if has_power is None:
        return "not_checked"
    if has_power:
        return "power"
    if own_ci_low is not None and own_ci_low > 0.5:
        return "no_room" if own_auc is not None and own_auc >= NO_ROOM_AUC else "detects"
    return "no_power"


def power_curves(
    controls: dict[str, dict[str, AttackResult]], own: dict[str, AttackResult], is_member: np.ndarray,
    patient: np.ndarray,
) -> dict[str, dict[str, Any]]:
    """Per black-box ``attack/space``: the rise of its AUC over the generator's own at each graded fraction.

    The rise is the mixture's VU-level AUC minus the generator's own AUC on the same candidates, with a
    paired patient-clustered 95 % CI (the two AUCs' per-patient components differenced). ``has_power``:
    the 5 % rise CI lies above 0 (None without that control). ``counts`` (in verdict (a)): power, or the
    attack already detects membership on the generator's own samples (own AUC CI above 0.5).

    Args:
        controls: control name -> attack name -> result on that control.
        own: attack name -> result on the generator's own samples.
        is_member: membership of each candidate ``[n]``.
        patient: patient id of each candidate ``[n]``.
    """
    pidx = PatientIndex.of(np.asarray(is_member, dtype=bool), patient)
    names = sorted({n for c in GRADED_CONTROLS if c in controls for n in controls[c] if n in own})
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        base = own[n].arrays.get("scores")
        ok = base is not None and np.isfinite(base).all() and min(pidx.member.sum(), (~pidx.member).sum()) >= 2
        own_c = _components(base, pidx) if ok else None
        curve: dict[str, Any] = {k: [] for k in CURVE_KEYS}
        curve["own_auc"] = own[n].scalars.get("auc")
        curve["own_ci"] = [own[n].scalars.get("auc_ci_low"), own[n].scalars.get("auc_ci_high")]
        for f in GRADED_FRACTIONS:
            r = controls.get(graded_control(f), {}).get(n)
            if r is None:
                continue
            curve["fractions"].append(f)
            for k, m in (("auc", "auc"), ("ci_low", "auc_ci_low"), ("ci_high", "auc_ci_high")):
                curve[k].append(r.scalars.get(m))
            rise, lo, hi = _rise(r, own_c, pidx)
            curve["rise"].append(rise)
            curve["rise_low"].append(lo)
            curve["rise_high"].append(hi)
        if POWER_FRACTION in curve["fractions"]:
            low = curve["rise_low"][curve["fractions"].index(POWER_FRACTION)]
            curve["has_power"] = bool(low is not None and low > 0)
        else:
            curve["has_power"] = None
        curve["status"] = power_status(curve["has_power"], curve["own_auc"], curve["own_ci"][0])
        curve["power_text"] = POWER_LABELS[curve["status"]]
        curve["counts"] = curve["status"] in COUNTED_POWER
        out[n] = curve
    return out


def _rise(
    r: AttackResult, own_c: AUCComponents | None, pidx: PatientIndex
) -> tuple[float | None, float | None, float | None]:
    s = r.arrays.get("scores")
    if own_c is None or s is None or not np.isfinite(s).all():
        return None, None, None
    d = _components(s, pidx) - own_c
    lo, hi = d.interval(difference=True)
    return float(d.estimate), lo, hi


# ---- verdicts ----------------------------------------------------------------------------------


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _describe(name: str, r: AttackResult, p: float | None, p_label: str) -> dict[str, Any]:
    s = r.scalars
    return {
        "attack": name,
        "auc": s.get("auc"),
        "auc_ci": [s.get("auc_ci_low"), s.get("auc_ci_high")],
        "tpr_at_1pct_fpr": s.get("tpr_at_1pct_fpr"),
        "p": p,
        "p_kind": p_label,
    }


def _level(significant: list[dict[str, Any]]) -> str:
    if not significant:
        return "ok"
    strong = any((d["auc"] or 0) >= LEAK_AUC or (d["tpr_at_1pct_fpr"] or 0) >= LEAK_TPR for d in significant)
    return "leak" if strong else "caution"


def released_samples_verdict(
    results: dict[str, AttackResult], test: PermutationTest, power: dict[str, dict[str, Any]] | None
) -> dict[str, Any]:
    """Verdict (a): black-box attacks with power on the released samples, primary + corrected worst other."""
    black = [n for n in results if n.split("/")[0] in BLACK_BOX_ATTACKS and results[n].scalars.get("auc") is not None]
    if power:
        counted = [n for n in black if power.get(n, {}).get("counts", power.get(n, {}).get("has_power"))]
        no_power = [n for n in black if n not in counted]
    else:
        counted, no_power = black, []
    out: dict[str, Any] = {"counted": counted, "no_power": no_power, "power_checked": bool(power), "alpha": ALPHA}
    if not counted:
        out.update(
            level="unknown",
            text="No attack on the released samples has power on this data (mixing 5% member copies into the "
            "samples does not raise any attack's AUC above the generator's own, and none detects membership on its "
            "own), so their chance-level results say nothing about leakage.",
        )
        return out
    tests: dict[str, float] = {}
    described: dict[str, dict[str, Any]] = {}
    if PRIMARY in counted:
        tests[PRIMARY] = test.p[PRIMARY]
        described[PRIMARY] = _describe(PRIMARY, results[PRIMARY], test.p[PRIMARY], "raw (pre-specified primary)")
    others = [n for n in counted if n != PRIMARY]
    if others:
        adj = test.adjusted(others)
        worst = max(others, key=lambda n: (results[n].scalars["auc"], -adj[n]))
        tests[worst] = adj[worst]
        described[worst] = _describe(
            worst, results[worst], adj[worst], f"max-statistic adjusted over {len(others)} attacks"
        )
        out["worst_other"] = described[worst]
        out["adjusted_p"] = adj
    if PRIMARY in described:
        out["primary"] = described[PRIMARY]
    final = holm(tests)
    for n, d in described.items():
        d["p_holm"] = final[n]
    significant = [described[n] for n in final if final[n] < ALPHA]
    out["level"] = _level(significant)
    out["text"] = _samples_text(out, significant, described)
    return out


def _samples_text(out: dict[str, Any], significant: list[dict[str, Any]], described: dict[str, dict[str, Any]]) -> str:
    parts = [
        f"{d['attack'].replace('/', ' attack, ')} space: AUC {_fmt(d['auc'])} [{_fmt(d['auc_ci'][0])}, "
        f"{_fmt(d['auc_ci'][1])}], p {d['p_holm']:.3g}"
        for d in described.values()
    ]
    numbers = "; ".join(parts) + f" (Holm over {len(described)} test{'s' if len(described) > 1 else ''})"
    power_note = "" if out["power_checked"] else " The graded controls were not run: the attacks' power is unchecked."
    if out["level"] == "leak":
        return (
            "Leaks its training patients: an attack on the released samples tells members from non-members "
            f"({numbers}). "
            "Do not share these samples." + power_note
        )
    if out["level"] == "caution":
        return (
            f"Some membership signal in the released samples, significant after correction ({numbers}). "
            "Share with care, or prefer a differentially private generator." + power_note
        )
    return f"No attack with power tells members from non-members in the released samples ({numbers})." + power_note


def released_discriminator_verdict(
    results: dict[str, AttackResult], test: PermutationTest | None, dp_epsilon: float | None = None
) -> dict[str, Any]:
    """Verdict (b): the white-box discriminator attack alone. ``dp_epsilon``: the ε of a discriminator trained
    with DP (None: trained without), whose release the generator's bound covers; any other is "keep D private"."""
    keep = (
        "Keep the discriminator private: a released non-private discriminator is itself a leak."
        if dp_epsilon is None
        else f"The discriminator was trained with differential privacy (ε = {dp_epsilon:.2f}): releasing it is "
        "covered by the same bound as the generator; these numbers are evidence beside that bound."
    )
    r = results.get("discriminator/pixel")
    if r is None or r.scalars.get("auc") is None:
        return {
            "level": "not_applicable",
            "text": "No discriminator was kept with this generator: nothing to release. " + keep,
        }
    p = None if test is None else test.p.get("discriminator/pixel")
    d = _describe("discriminator/pixel", r, p, "raw (one white-box attack)")
    d["p_holm"] = p if p is not None else 1.0
    level = _level([d] if p is not None and p < ALPHA else [])
    numbers = f"AUC {_fmt(d['auc'])} [{_fmt(d['auc_ci'][0])}, {_fmt(d['auc_ci'][1])}], p {d['p_holm']:.3g}"
    what = {
        "leak": "The discriminator recognises its training patients",
        "caution": "The discriminator carries some membership signal",
        "ok": "The discriminator does not tell members from non-members",
    }[level]
    return {"level": level, "attack": d, "text": f"{what} ({numbers}). {keep}"}


# ---- independent control -----------------------------------------------------------------------


def independent_check(
    control: dict[str, AttackResult], counted: list[str], is_member: np.ndarray, patient: np.ndarray
) -> dict[str, Any]:
    """Does the independent control sit at chance in every attack counted in verdict (a)?

    Each counted attack's AUC on the negative control gets a patient-clustered interval at level
    ``1 - ALPHA / k`` (k counted attacks): a family-wise error rate of ALPHA over them, as the verdict's;
    the check passes where every such interval covers 0.5.

    Args:
        control: attack name -> result on the independent control.
        counted: the attacks counted in verdict (a).
        is_member: membership of each candidate ``[n]``.
        patient: patient id of each candidate ``[n]``.
    """
    pidx = PatientIndex.of(np.asarray(is_member, dtype=bool), patient)
    family = [n for n in counted if n in control and control[n].scalars.get("auc") is not None]
    level = 1 - ALPHA / max(len(family), 1)
    rows: dict[str, dict[str, Any]] = {}
    for n in family:
        r = control[n]
        lo, hi = _components(r.arrays["scores"], pidx).interval(level)
        rows[n] = {
            "auc": r.scalars.get("auc"),
            "ci_95": [r.scalars.get("auc_ci_low"), r.scalars.get("auc_ci_high")],
            "ci_family": [lo, hi],
            "covers": bool(lo <= 0.5 <= hi),
        }
    return {
        "family": family,
        "level": level,
        "rows": rows,
        "passes": all(r["covers"] for r in rows.values()) if rows else None,
        "text": _independent_text(rows, level),
    }


def _independent_text(rows: dict[str, dict[str, Any]], level: float) -> str:
    if not rows:
        return "No attack counts in verdict (a): the independent control checks nothing."
    missed = [n for n, r in rows.items() if not r["covers"]]
    how = f"{level:.2%} intervals (Bonferroni over the {len(rows)} counted attacks: 5% family-wise, as the verdict)"
    if missed:
        return f"The attack spaces separate members from non-members on their own in {', '.join(missed)}: {how} " \
            "miss 0.5. Read those attacks' results with suspicion."
    return f"The independent control sits at chance in every counted attack: its {how} cover 0.5."
