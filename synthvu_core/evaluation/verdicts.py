"""Metrics of every attack, their power on the graded controls, and one verdict per threat model.

* **Metrics** (:func:`attack_metrics`): ROC AUC with a patient-clustered 95 % CI, TPR at 1 % and
  0.1 % FPR with CI *where estimable* (at least 10 expected false positives), the study's top-k
  share, patient-level AUC (mean of a patient's VU scores) with CI, patient TPR at 1 % FPR where
  estimable, and a one-sided patient-permutation p-value of AUC > 0.5.
* **Power** (:func:`power_curves`): a black-box attack has power when it detects the 5 % graded control --
  its patient-clustered AUC CI on that mixture lies above 0.5 -- because of the copies (the paired rise over
  its own AUC lies above 0, or the mixture AUC is >= :data:`NO_ROOM_AUC`: no room to rise). The counted family
  of verdict (a) is fixed by power alone; an attack whose own AUC CI lies above 0.5 without power is
  reported ("detects"), never counted. The rise over the own AUC (paired CI) is reported beside it.
* **Verdict (a), released samples** (:func:`read_released_samples`, from stored scalars only): the
  pre-specified primary attack (the study's pairwise pixel attack, raw p) and the strongest of the other
  counted attacks (max-statistic permutation p over them) and, where it ran, the whole-cohort nearest-patient test
  (:mod:`~synthvu_core.evaluation.cohort`: its share p, its patient-level AUC as the effect), combined by Holm at
  :data:`ALPHA`. Significant with AUC >= :data:`LEAK_AUC` (or an estimable TPR at 1 % FPR >= :data:`LEAK_TPR`) is a
  leak. A significant test needs no power: it is read whatever the design's size.
  Otherwise a counted AUC significantly *below* 0.5 (max-statistic over the counted family) or an
  independent control off chance is a **design imbalance**; significant, caution; no counted attack, or
  fewer patients per side than the design needs to detect the 5 % control with probability :data:`POWER`
  (:func:`patients_needed`, floored at :data:`MIN_PATIENTS_PER_SIDE`), **inconclusive** with the number
  needed; else ok. The primary attack appears in the text with its interval, powered or not.
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

import math
from typing import Any

import numpy as np

from synthvu_core.evaluation.cohort import COHORT_TEST, CohortTest
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
#: A 5 % mixture AUC at or above this has no room to rise over the own AUC: detection alone is power.
NO_ROOM_AUC = 0.95
#: The probability with which the design must detect the 5 % control before "ok" can be read.
POWER = 0.8
#: "ok" is never read from fewer patients per side than this, whatever the power estimate says: below it one
#: patient is more than a tenth of a side and the clustered variance rests on fewer than 9 degrees of freedom.
MIN_PATIENTS_PER_SIDE = 10
#: Per-fraction lists of a power curve: the control's AUC and CI, and its rise over the own AUC with CI.
CURVE_KEYS: tuple[str, ...] = ("fractions", "auc", "ci_low", "ci_high", "rise", "rise_low", "rise_high")
PRIVACY_METRICS: tuple[str, ...] = (
    "auc", "auc_ci_low", "auc_ci_high", "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_ci_low", "tpr_at_1pct_fpr_ci_high",
    "tpr_at_0.1pct_fpr", "topk_share", "patient_auc", "patient_auc_ci_low", "patient_auc_ci_high",
    "patient_tpr_at_1pct_fpr", "p_value",
)
PRIMARY = "/".join(PRIMARY_ATTACK)
#: Verdict levels -> the words every surface shows ("unknown" is what older reports wrote for "inconclusive").
LEVEL_WORDS: dict[str, str] = {
    "leak": "leak", "caution": "caution", "ok": "ok", "inconclusive": "inconclusive", "unknown": "inconclusive",
    "imbalance": "design imbalance", "not_applicable": "not applicable",
}


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


def power_status(has_power: bool | None, own_ci_low: float | None) -> str:
    """One key of :data:`~synthvu_core.names.POWER_LABELS` for one attack.

    Args:
        has_power: the attack detects the 5 % control (its AUC CI on it lies above 0.5; None without it).
        own_ci_low: the lower end of the attack's AUC CI on the generator's own samples (reported only).
    """
    if has_power is None:
        return "not_checked"
    if has_power:
        return "power"
    return "detects" if own_ci_low is not None and own_ci_low > 0.5 else "no_power"


def detects_control(auc: float | None, ci_low: float | None, rise_low: float | None) -> bool:
    """Power: the attack detects the 5 % control (AUC CI on it above 0.5) *because of the copies*.

    An attack blind to the copies scores the mixture as it scores the generator's own samples, so its
    mixture AUC is its own; without the second condition its own result would pick the family. The copies
    must therefore raise the AUC (paired rise CI above 0), unless the mixture AUC is at or above
    :data:`NO_ROOM_AUC`, where there is no room to rise (a null generator does not get there).
    """
    if auc is None or ci_low is None or ci_low <= 0.5:
        return False
    return bool((rise_low is not None and rise_low > 0) or auc >= NO_ROOM_AUC)


def patients_needed(auc: float | None, se: float | None, per_side: int) -> int | None:
    """Patients per side at which the 5 % control's AUC interval would clear 0.5 with probability :data:`POWER`.

    The clustered variance of a VU-level AUC falls as 1 / patients (per side, balanced): at ``n`` patients
    its standard error is ``se * sqrt(per_side / n)``. Detection with probability POWER at a two-sided 95 %
    interval needs ``(auc - 0.5) >= (z_0.975 + z_POWER) * se_n``, so
    ``n = per_side * ((z_0.975 + z_POWER) * se / (auc - 0.5))^2``, rounded up. None where the control does
    not lift the AUC above 0.5 (no number of patients follows from this data).

    Args:
        auc: the attack's AUC on the 5 % graded control.
        se: its patient-clustered standard error (Obuchowski components).
        per_side: patients per side of the design it was measured on.
    """
    from scipy.stats import norm

    if auc is None or se is None or auc <= 0.5 or per_side < 1:
        return None
    z = float(norm.ppf(1 - ALPHA / 2) + norm.ppf(POWER))
    return int(np.ceil(per_side * (z * se / (auc - 0.5)) ** 2))


def power_curves(
    controls: dict[str, dict[str, AttackResult]], own: dict[str, AttackResult], is_member: np.ndarray,
    patient: np.ndarray,
) -> dict[str, dict[str, Any]]:
    """Per black-box ``attack/space``: its AUC on each graded control, and the rise over its own AUC.

    ``has_power``: the attack detects the 5 % control -- its patient-clustered AUC CI on that mixture lies
    above 0.5 -- because of the copies (:func:`detects_control`; None without the control). ``counts`` (in
    verdict (a)) is ``has_power`` alone: the family is fixed by power, never by the attack's result on the
    generator's own samples. The rise (mixture minus own AUC, paired patient-clustered CI) is reported.
    ``se_power`` is the 5 % control AUC's clustered standard error and ``patients_needed`` the patients per
    side at which it would be detected with probability
    :data:`POWER` (:func:`patients_needed`).

    Args:
        controls: control name -> attack name -> result on that control.
        own: attack name -> result on the generator's own samples.
        is_member: membership of each candidate ``[n]``.
        patient: patient id of each candidate ``[n]``.
    """
    pidx = PatientIndex.of(np.asarray(is_member, dtype=bool), patient)
    per_side = int(min(pidx.member.sum(), (~pidx.member).sum()))
    names = sorted({n for c in GRADED_CONTROLS if c in controls for n in controls[c] if n in own})
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        base = own[n].arrays.get("scores")
        ok = base is not None and np.isfinite(base).all() and per_side >= 2
        own_c = _components(base, pidx) if ok else None
        curve: dict[str, Any] = {k: [] for k in CURVE_KEYS}
        curve["own_auc"] = own[n].scalars.get("auc")
        curve["own_ci"] = [own[n].scalars.get("auc_ci_low"), own[n].scalars.get("auc_ci_high")]
        curve["se_power"] = None
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
            s = r.arrays.get("scores")
            if f == POWER_FRACTION and s is not None and np.isfinite(s).all() and per_side >= 2:
                curve["se_power"] = float(np.sqrt(_components(s, pidx).variance_and_df()[0]))
        if POWER_FRACTION in curve["fractions"]:
            i = curve["fractions"].index(POWER_FRACTION)
            curve["has_power"] = detects_control(curve["auc"][i], curve["ci_low"][i], curve["rise_low"][i])
            curve["patients_needed"] = patients_needed(curve["auc"][i], curve["se_power"], per_side)
        else:
            curve["has_power"], curve["patients_needed"] = None, None
        curve["status"] = power_status(curve["has_power"], curve["own_ci"][0])
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


def counted_family(power: dict[str, dict[str, Any]] | None, black: list[str]) -> list[str]:
    """The attacks counted in verdict (a): those with power on the 5 % control, and only those.

    Without the graded controls (``power`` empty) every black-box attack is counted, and the verdict says
    that power is unchecked.
    """
    if not power:
        return list(black)
    return [n for n in black if (power.get(n) or {}).get("status") in COUNTED_POWER]


def samples_inputs(
    results: dict[str, AttackResult], test: PermutationTest | None, power: dict[str, dict[str, Any]] | None,
    independent: dict[str, Any] | None, patients: tuple[int, int], cohort: CohortTest | None = None,
) -> dict[str, Any]:
    """Every scalar verdict (a) reads, as stored in the report (:func:`read_released_samples` reads only these).

    Args:
        results: attack name -> result on the generator's own samples.
        test: the permutation test of those results (raw and max-statistic p-values); None where the design has
            too few patients for one (then ``permutation_test`` is stored as false and the verdict is inconclusive;
            a report without the key had a test).
        power: :func:`power_curves`.
        independent: :func:`independent_check` over the counted attacks (None without the control).
        patients: ``(member, non-member)`` patients of the design.
        cohort: the whole-cohort nearest-patient test (:mod:`~synthvu_core.evaluation.cohort`); None where it was
            not run (a report without the key predates it).
    """
    black = [n for n in results if n.split("/")[0] in BLACK_BOX_ATTACKS and results[n].scalars.get("auc") is not None]
    counted = counted_family(power, black)
    others = [n for n in counted if n != PRIMARY]
    attacks = {}
    for n in black:
        s, c = results[n].scalars, (power or {}).get(n) or {}
        i = c["fractions"].index(POWER_FRACTION) if POWER_FRACTION in c.get("fractions", []) else None
        attacks[n] = {
            "auc": s.get("auc"), "auc_ci": [s.get("auc_ci_low"), s.get("auc_ci_high")],
            "tpr_at_1pct_fpr": s.get("tpr_at_1pct_fpr"), "p": None if test is None else test.p.get(n),
            "power": c.get("status", "not_checked"),
            "control_auc": None if i is None else c["auc"][i],
            "control_ci": [None, None] if i is None else [c["ci_low"][i], c["ci_high"][i]],
            "patients_needed": c.get("patients_needed"),
        }
    ind = independent or {}
    inputs = {
        "alpha": ALPHA, "primary": PRIMARY, "counted": counted, "attacks": attacks, "power_checked": bool(power),
        "adjusted_p": {} if test is None else test.adjusted(others),
        "below_p": {} if test is None else test.adjusted_below(counted),
        "independent": {"passes": ind.get("passes"), "rows": ind.get("rows") or {}},
        "patients": [int(patients[0]), int(patients[1])],
    }
    if test is None:
        inputs["permutation_test"] = False
    if cohort is not None:
        inputs["cohort"] = cohort_inputs(cohort)
    return inputs


def cohort_inputs(cohort: CohortTest) -> dict[str, Any]:
    """What verdict (a) reads of the whole-cohort test (stored in its ``inputs``)."""
    return {
        "p": cohort.p_value, "auc": cohort.patient_auc, "auc_p": cohort.patient_auc_p_value,
        "share": cohort.share_train, "expected": cohort.expected_share,
        "patients": [cohort.n_train_patients, cohort.n_other_patients],
    }


def released_samples_verdict(
    results: dict[str, AttackResult], test: PermutationTest | None, power: dict[str, dict[str, Any]] | None,
    independent: dict[str, Any] | None = None, patients: tuple[int, int] = (0, 0), cohort: CohortTest | None = None,
) -> dict[str, Any]:
    """Verdict (a) on the generator's results: :func:`samples_inputs` read by :func:`read_released_samples`.

    ``patients`` (member, non-member) of the design: "ok" needs as many per side as :func:`design_needs`.
    """
    inputs = samples_inputs(results, test, power, independent, patients, cohort)
    return {**read_released_samples(inputs), "inputs": inputs}


def legacy_samples_level(stored: dict[str, Any], scalars: dict[str, dict[str, Any]]) -> str:
    """Verdict (a)'s level by the rule of reports written before ``inputs`` were stored: the stored counted
    family, raw p of the primary and stored max-statistic p of the worst other, Holm; "unknown" without a
    counted attack. ``scalars`` maps ``attack/space`` to its scalars (``auc``, ``p_value``, ``tpr_at_1pct_fpr``)."""
    counted = list(stored.get("counted") or [])
    if not counted:
        return "unknown"
    tests: dict[str, float] = {}
    if PRIMARY in counted:
        tests[PRIMARY] = float(scalars[PRIMARY]["p_value"])
    adj = {k: float(v) for k, v in (stored.get("adjusted_p") or {}).items()}
    if adj:
        worst = max(adj, key=lambda n: (scalars[n]["auc"], -adj[n]))
        tests[worst] = adj[worst]
    final = holm(tests)
    return _level([
        {"auc": scalars[n].get("auc"), "tpr_at_1pct_fpr": scalars[n].get("tpr_at_1pct_fpr")}
        for n in final if final[n] < ALPHA
    ])


def design_needs(inputs: dict[str, Any]) -> tuple[int | None, str | None]:
    """``(patients per side, attack)``: the fewest patients at which some attack detects the 5 % control with
    probability :data:`POWER` (:func:`patients_needed`), floored at :data:`MIN_PATIENTS_PER_SIDE`."""
    need = [(a["patients_needed"], n) for n, a in inputs["attacks"].items() if a.get("patients_needed") is not None]
    if not need:
        return None, None
    n, name = min(need)
    return max(n, MIN_PATIENTS_PER_SIDE), name


def read_released_samples(inputs: dict[str, Any]) -> dict[str, Any]:
    """Verdict (a) from stored scalars alone (a loaded report re-derives it with this function).

    Order: a significant attack (or whole-cohort test) with a large effect is a leak; otherwise an AUC
    significantly below 0.5 (max-statistic over the counted attacks) or an independent control off chance is a
    design imbalance; a significant attack, caution; too few patients for a permutation test, no counted attack
    or fewer patients per side than the design needs, inconclusive; else ok.
    """
    alpha, counted, attacks = inputs["alpha"], inputs["counted"], inputs["attacks"]
    tested = inputs.get("permutation_test", True)
    described: dict[str, dict[str, Any]] = {}
    tests: dict[str, float] = {}
    if tested and inputs["primary"] in counted:
        described[inputs["primary"]] = {**attacks[inputs["primary"]], "attack": inputs["primary"], "p_kind": "raw"}
        tests[inputs["primary"]] = attacks[inputs["primary"]]["p"]
    adj = inputs["adjusted_p"]
    out: dict[str, Any] = {"counted": counted, "no_power": [n for n in attacks if n not in counted], "alpha": alpha}
    out["power_checked"] = inputs["power_checked"]
    if adj:
        worst = max(adj, key=lambda n: (attacks[n]["auc"], -adj[n]))
        described[worst] = {**attacks[worst], "attack": worst, "p": adj[worst],
                            "p_kind": f"max-statistic adjusted over {len(adj)} attacks"}
        tests[worst] = adj[worst]
        out["worst_other"] = described[worst]
    cohort = inputs.get("cohort")
    if cohort is not None:  # reports written before the whole-cohort test lack it and read as before
        described[COHORT_TEST] = {"attack": COHORT_TEST, "auc": cohort["auc"], "auc_ci": [None, None],
                                  "tpr_at_1pct_fpr": None, "p": cohort["p"], "p_kind": "randomisation"}
        tests[COHORT_TEST] = cohort["p"]
        out["cohort"] = described[COHORT_TEST]
    final = holm(tests) if tests else {}
    for n, d in described.items():
        d["p_holm"] = final[n]
    if inputs["primary"] in described:
        out["primary"] = described[inputs["primary"]]
    significant = [described[n] for n in final if final[n] < alpha]
    below = {n: p for n, p in inputs["below_p"].items() if p < alpha}
    off = [n for n, r in inputs["independent"]["rows"].items() if not r.get("covers", True)]
    needed, needed_from = design_needs(inputs)
    have = min(inputs["patients"])
    found = _level(significant) if significant else None
    if found == "leak":
        level = "leak"
    elif below or off:
        level = "imbalance"
    elif found:
        level = found
    elif not tested or not counted or needed is None or have < needed:
        level = "inconclusive"
    else:
        level = "ok"
    out.update(level=level, below_chance=below, control_off_chance=off, patients=inputs["patients"],
               patients_needed=needed, patients_needed_from=needed_from)
    out["text"] = _samples_text(inputs, out, described)
    return out


def _interval(a: dict[str, Any], key: str = "auc") -> str:
    """``a[key]`` with its interval: ``auc`` / ``auc_ci`` or ``control`` (``control_auc`` / ``control_ci``)."""
    ci = a.get(f"{key}_ci") or [None, None]
    return f"{_fmt(a.get('control_auc' if key == 'control' else key))} [{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _primary_text(inputs: dict[str, Any]) -> str:
    name = inputs["primary"]
    a = inputs["attacks"].get(name)
    if a is None:
        return "The primary attack (pairwise, pixel space) was not scored."
    role = "counted" if name in inputs["counted"] else (
        f"not counted: no power, its 5% control AUC {_interval(a, 'control')}" if inputs["power_checked"] else "")
    return f"Primary attack (pairwise, pixel space): AUC {_interval(a)}, raw p {_fmt(a['p'])}" + (
        f" ({role})." if role else ".")


def _samples_text(inputs: dict[str, Any], out: dict[str, Any], described: dict[str, dict[str, Any]]) -> str:
    parts = [
        f"{d['attack'].replace('/', ' attack, ')} space: AUC {_interval(d)}, p {d['p_holm']:.3g}"
        if d["attack"] != COHORT_TEST else f"{COHORT_TEST} test: patient AUC {_fmt(d['auc'])}, p {d['p_holm']:.3g}"
        for d in described.values()
    ]
    numbers = "; ".join(parts) + f" (Holm over {len(described)} test{'s' if len(described) > 1 else ''})"
    power_note = (
        "" if inputs["power_checked"] else " The graded controls were not run: the attacks' power is unchecked."
    )
    primary = " " + _primary_text(inputs) + _cohort_text(inputs)
    level, (i1, i0) = out["level"], out["patients"]
    imbalance = _imbalance_text(inputs, out)
    if level == "leak":
        return ("Leaks its training patients: a test of the released samples tells members from non-members "
                f"({numbers}). Do not share these samples." + primary + (f" {imbalance}" if imbalance else "")
                + power_note)
    if level == "imbalance":
        return "Design imbalance: " + imbalance + " The membership result cannot be read as safe or unsafe." + primary
    if level == "caution":
        return (f"Some membership signal in the released samples, significant after correction ({numbers}). "
                "Share with care, or prefer a differentially private generator." + primary + power_note)
    if level == "inconclusive":
        return "Inconclusive: " + _needs_text(inputs, out) + primary + power_note
    return (f"No attack with power tells members from non-members in the released samples ({numbers}); the design "
            f"has {i1} member and {i0} non-member patients, at least the {out['patients_needed']} per side needed to "
            f"detect 5% member copies with probability {POWER:.0%}." + primary + power_note)


def _cohort_text(inputs: dict[str, Any]) -> str:
    """The whole-cohort test in words (always shown where it ran, significant or not); empty for older reports."""
    c = inputs.get("cohort")
    if c is None:
        return ""
    n1, n0 = c["patients"]
    return (f" Whole-cohort test: {c['share']:.0%} of the samples are nearest a VU of one of the {n1} training "
            f"patients (expected {c['expected']:.0%} among all {n1 + n0} patients), raw p {c['p']:.3g}; patient AUC "
            f"of samples per VU {c['auc']:.3f} (p {c['auc_p']:.3g}).")


def _imbalance_text(inputs: dict[str, Any], out: dict[str, Any]) -> str:
    said = []
    for n, p in out["below_chance"].items():
        a = inputs["attacks"][n]
        said.append(f"{n} AUC {_interval(a)} is significantly below 0.5 (max-statistic p {p:.3g})")
    for n in out["control_off_chance"]:
        r = inputs["independent"]["rows"][n]
        lo, hi = r.get("ci_family") or [None, None]
        said.append(f"the independent control's {n} AUC {_fmt(r.get('auc'))} [{_fmt(lo)}, {_fmt(hi)}] "
                    "(family-wise) misses 0.5")
    return ("; ".join(said) + ": members and non-members differ in ways that are not the generator's doing.") if said \
        else ""


def _needs_text(inputs: dict[str, Any], out: dict[str, Any]) -> str:
    i1, i0 = out["patients"]
    need, src = out["patients_needed"], out["patients_needed_from"]
    how = (f"{need} patients per side would detect 5% member copies with probability {POWER:.0%} ({src}: its 5% "
           "control AUC and patient-clustered standard error, the variance scaled as 1 / patients; at least "
           f"{MIN_PATIENTS_PER_SIDE})") if need is not None else (
        "no attack's AUC rises above 0.5 on the 5% control, so no number of patients follows from this data"
        if inputs["power_checked"] else
        f"at least {MIN_PATIENTS_PER_SIDE} per side; the graded controls (evaluate --controls) would tell how many")
    if need is None and not inputs["power_checked"] and inputs.get("permutation_test", True):
        return (f"with {i1} member and {i0} non-member patients, how many patients per side the design needs is "
                f"not known: {how}.")
    if not inputs.get("permutation_test", True):
        return (f"too few patients for a permutation test ({i1} member and {i0} non-member patients), so nothing "
                f"can be read about leakage; {how}.")
    if not out["counted"]:
        return (f"no attack on the released samples detects 5% member copies with {i1} member and {i0} non-member "
                f"patients, so chance-level results say nothing about leakage; {how}.")
    return f"the design has {i1} member and {i0} non-member patients, fewer than it needs: {how}."


def private_discriminator_epsilon(meta: dict[str, Any]) -> float | None:
    """The ε covering a report's discriminator (``meta`` as :func:`~synthvu_core.evaluation.report.evaluate` writes
    it): None where DP-SGD did not train it; else the bound composed over every run on its patients (``inf`` where a
    run without DP voids it), or this run's own where the card recorded no ledger (reports before the composed one)."""
    eps = meta.get("dp_epsilon")
    if eps is None or meta.get("dp_private_module", "discriminator") != "discriminator":
        return None
    if meta.get("dp_composed_bound") == "infinite":
        return math.inf
    composed = meta.get("dp_composed_epsilon")
    return float(eps if composed is None else composed)


def bound_is_composed(meta: dict[str, Any]) -> bool:
    """Whether a report records the bound composed over every run on its patients (else only the run's own ε)."""
    return meta.get("dp_composed_bound") in ("finite", "infinite")


def _keep_discriminator(dp_epsilon: float | None, composed: bool = True) -> str:
    """Verdict (b)'s sentence on releasing the discriminator, from the ε composed over every run on its patients
    (``composed`` False: the run's own, where no composed bound was recorded)."""
    if dp_epsilon is not None and not composed:
        return (f"The discriminator was trained with differential privacy (ε = {dp_epsilon:.2f} for this run): other "
                "runs on these patients are not composed, so its release is covered by this run's bound only if no "
                "other run used them; these numbers are evidence beside that bound.")
    if dp_epsilon is None:
        return "Keep the discriminator private: a released non-private discriminator is itself a leak."
    if math.isinf(dp_epsilon):
        return ("Keep the discriminator private: it was trained with differential privacy, but a run without it on "
                "the same patients leaves them no bound (composed ε = ∞).")
    return (f"The discriminator was trained with differential privacy: releasing it is covered by the bound composed "
            f"over every run on these patients (ε = {dp_epsilon:.2f}); these numbers are evidence beside that bound.")


def released_discriminator_verdict(
    results: dict[str, AttackResult], test: PermutationTest | None, dp_epsilon: float | None = None,
    patients: tuple[int, int] | None = None, composed: bool = True,
) -> dict[str, Any]:
    """Verdict (b): the white-box discriminator attack alone. ``dp_epsilon``: the ε composed over every run on the
    training patients, for a discriminator trained with DP (None: trained without; ``inf``: trained with DP, but a
    run without it on the same patients leaves no bound); only a finite one covers its release, any other is "keep
    D private". ``composed`` False: ``dp_epsilon`` is the run's own, no composition recorded (said so).

    ``patients`` (member, non-member patients): where a side has fewer than :data:`MIN_PATIENTS_PER_SIDE`, or
    there is no permutation test, an attack that is not significant makes the verdict **inconclusive**, never
    ok (a wide interval around 0.5 on a handful of patients says nothing either way); a significant one is
    still a leak or caution.
    """
    keep = _keep_discriminator(dp_epsilon, composed)
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
    numbers = f"AUC {_fmt(d['auc'])} [{_fmt(d['auc_ci'][0])}, {_fmt(d['auc_ci'][1])}], p " + (
        "not computed" if p is None else f"{p:.3g}")
    what = {
        "leak": "The discriminator recognises its training patients",
        "caution": "The discriminator carries some membership signal",
        "ok": "The discriminator does not tell members from non-members",
    }[level]
    if patients is None:
        return {"level": level, "attack": d, "text": f"{what} ({numbers}). {keep}"}
    i1, i0 = patients
    if level == "ok" and p is None:
        level, what = "inconclusive", f"No permutation test could be run with {i1} member and {i0} non-member " \
            "patients: the white-box attack says nothing about leakage"
    elif level == "ok" and min(i1, i0) < MIN_PATIENTS_PER_SIDE:
        level, what = "inconclusive", f"The white-box attack is not significant, but with {i1} member and {i0} " \
            f"non-member patients (at least {MIN_PATIENTS_PER_SIDE} per side needed) that says nothing about leakage"
    return {"level": level, "attack": d, "text": f"{what} ({numbers}). {keep}", "patients": [i1, i0]}


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
