"""Verdict (a)'s false-alarm rate under no leak, simulated with the project's own functions.

A simulated cohort has ``n_pat`` member and ``n_pat`` non-member patients with ``per`` VUs each and seven
black-box attacks whose scores share a patient effect and a VU effect (correlated attacks, as the real ones
are) and carry no membership signal. The 5 % graded control is simulated the way the real one acts on a
distance attack: a share of the member VUs (their copies were planted) score higher by ``shift`` in the
attacks that can see copies, unchanged in the others. Each run then goes through the evaluation's own path:
:func:`~synthvu_core.evaluation.inference.auc_components` (the AUC interval ``attack_metrics`` reports), the
patient-permutation test,
:func:`~synthvu_core.evaluation.verdicts.power_curves` (which fixes the counted family by power alone) and
:func:`~synthvu_core.evaluation.verdicts.released_samples_verdict`. A false alarm is a "caution" or "leak"
verdict; "design imbalance" is counted apart. The primary attack is attack 0, as the pairwise pixel attack is.
With ``cohort`` the whole-cohort nearest-patient test joins the Holm family as it does in ``evaluate``: every patient
of a cohort 2.5 times the candidates (60 % of them training patients, drawn at random as ``assign_split`` draws
them) attracts an over-dispersed number of samples that does not depend on the draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthvu_core.names import BLACK_BOX_ATTACKS, POWER_FRACTION, SPACES, graded_control

#: Seven black-box attack names in the order the simulation gives them power (the primary first).
SIM_ATTACKS: tuple[str, ...] = tuple(f"{a}/{s}" for s in SPACES for a in BLACK_BOX_ATTACKS)[:7]
assert SIM_ATTACKS[0] == "pairwise/pixel"


@dataclass(frozen=True)
class Scenario:
    """One simulated design: patients per side, VUs per patient, attacks with power (``k``, 1..7)."""

    n_pat: int
    per: int
    k: int
    shift: float = 3.0  # the copies' score rise in the k attacks that see them (3 sd: power near 1)
    copied: float = 0.25  # share of member VUs with a planted copy (5 % of 5,000 samples over ~1,000 members)
    cohort: bool = True  # the whole-cohort nearest-patient test in the family, as in evaluate


def _cohort(rng: np.random.Generator, sc: Scenario) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    n = 2 * sc.n_pat
    patient = np.repeat([f"p{i:03d}" for i in range(n)], sc.per)
    member = np.repeat(np.arange(n) < sc.n_pat, sc.per)
    common = np.repeat(rng.normal(0, 0.5, n), sc.per) + rng.normal(size=len(patient))
    scores = {a: common + rng.normal(0, 1.0, len(patient)) for a in SIM_ATTACKS}
    return scores, member, patient


def _result(scores: np.ndarray, pidx: object, W: np.ndarray | None = None) -> object:
    """An :class:`AttackResult` with what verdict (a) reads: the AUC and its patient-clustered interval
    (:func:`~synthvu_core.evaluation.verdicts.attack_metrics` computes them the same way, with more besides)."""
    from synthvu_core.evaluation.inference import auc_components, win_matrix
    from synthvu_core.evaluation.privacy import AttackResult

    c = auc_components(win_matrix(scores, pidx) if W is None else W, pidx)
    lo, hi = c.interval()
    return AttackResult(
        scalars={"auc": c.estimate, "auc_ci_low": lo, "auc_ci_high": hi,
                 "tpr_at_1pct_fpr": None},
        arrays={"scores": scores},
    )


def one_run(sc: Scenario, seed: int, n_perm: int = 1000) -> dict:
    """Verdict (a) of one null cohort of ``sc`` (no membership signal; the controls as described above)."""
    from synthvu_core.evaluation.inference import PatientIndex, permutation_test
    from synthvu_core.evaluation.verdicts import power_curves, released_samples_verdict

    rng = np.random.default_rng([seed, 31])
    scores, member, patient = _cohort(rng, sc)
    pidx = PatientIndex.of(member, patient)
    test = permutation_test(scores, member, patient, n_perm=n_perm, seed=seed)
    own = {a: _result(s, pidx, test.wins[a]) for a, s in scores.items()}
    hit = member & (rng.random(len(member)) < sc.copied)
    mix = {a: _result(s + sc.shift * hit, pidx) if j < sc.k else own[a] for j, (a, s) in enumerate(scores.items())}
    power = power_curves({graded_control(POWER_FRACTION): mix}, own, member, patient)
    cohort = _null_cohort_test(rng, sc, n_perm, seed) if sc.cohort else None
    return released_samples_verdict(own, test, power, None, (sc.n_pat, sc.n_pat), cohort)


def _null_cohort_test(rng: np.random.Generator, sc: Scenario, n_perm: int, seed: int) -> object:
    """The whole-cohort test on a cohort whose sample counts do not depend on who was drawn for training."""
    from synthvu_core.evaluation.cohort import randomisation_test

    n_all = 5 * sc.n_pat
    n_train = int(round(0.6 * n_all))
    vus = np.full(n_all, float(sc.per))
    counts = rng.poisson(rng.gamma(2.0, 0.5, n_all) * 5000 / n_all).astype(np.float64)
    if counts.sum() == 0:
        counts[0] = 1.0
    is_train = rng.permutation(np.arange(n_all) < n_train)
    return randomisation_test(counts, vus, is_train, seed=seed, n_perm=n_perm)


def false_alarm_rates(sc: Scenario, n_runs: int, n_perm: int = 1000, seed: int = 0) -> dict[str, float]:
    """Share of ``n_runs`` null cohorts per verdict level, the false-alarm rate ("caution" or "leak"), its
    Monte Carlo standard error, and the mean size of the counted family."""
    levels: dict[str, int] = {}
    family = 0
    for r in range(n_runs):
        v = one_run(sc, seed * 100_003 + r, n_perm)
        levels[v["level"]] = levels.get(v["level"], 0) + 1
        family += len(v["counted"])
    rate = (levels.get("caution", 0) + levels.get("leak", 0)) / n_runs
    return {
        "false_alarm": rate,
        "mc_se": float(np.sqrt(max(rate * (1 - rate), 0.05 * 0.95) / n_runs)),
        "family": family / n_runs,
        **{f"share_{k}": v / n_runs for k, v in sorted(levels.items())},
    }


#: The shipped designs (patients per side, VUs per patient) the calibration table covers.
SHIPPED_DESIGNS: tuple[tuple[int, int], ...] = ((43, 23), (24, 23), (6, 23))


def calibration_table(n_runs: int = 150, n_perm: int = 1000, echo: bool = False) -> str:
    """A Markdown table of :func:`false_alarm_rates`: every family size 1..7 on the largest shipped design,
    sizes 1 and 7 on the others (each row printed as it is done with ``echo``)."""
    lines = [
        "| patients per side × VUs | attacks with power (k) | mean counted | false caution/leak [± 2 MC se] | "
        "design imbalance | inconclusive | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, (n_pat, per) in enumerate(SHIPPED_DESIGNS):
        for k in range(1, 8) if i == 0 else (1, 7):
            r = false_alarm_rates(Scenario(n_pat, per, k), n_runs, n_perm, seed=k)
            lines.append(
                f"| {n_pat} × {per} | {k} | {r['family']:.2f} | {r['false_alarm']:.3f} ± {2 * r['mc_se']:.3f} | "
                + " | ".join(f"{r.get(f'share_{s}', 0):.3f}" for s in ("imbalance", "inconclusive", "ok")) + " |"
            )
            if echo:
                print(lines[-1], flush=True)
    return "\n".join(lines) + f"\n\n{n_runs} null cohorts per row, {n_perm} permutations each.\n"


if __name__ == "__main__":
    import sys

    print(calibration_table(*(int(a) for a in sys.argv[1:3]), echo=True))
