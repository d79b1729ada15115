"""Joint evaluation of synthetic patients (a clinical row and its VUs): utility, fidelity, privacy.

Five parts, each a pure function of arrays and tables (the command in :mod:`synthvu_core.evaluation.clinical_run`
loads the generator and the dataset and writes ``report/clinical.json``):

* :func:`grade_recognition`: a grade classifier trained on real train VUs, applied to VUs generated for a
  requested grade; balanced accuracy over the requested grades with a 95 % bootstrap interval, against chance
  (1 / the grades requested).
* :func:`grade_utility`: disc grade from the VU, TRTR (real train -> real holdout) and TSTR (synthetic patients'
  VUs labelled with their rows' grades -> real holdout), with the patient bootstrap of the VU evaluation.
* :func:`table_fidelity`: marginals (Kolmogorov-Smirnov for numbers, total variation for categories and grades),
  pairwise associations (Spearman matrices), and the age-grade association (Spearman rho of age and the mean
  lumbar grade) of the synthetic table against the real one's bootstrap interval.
* :func:`table_privacy`: anonymeter's singling-out, linkability and attribute-inference risks (with their
  intervals) with the train patients' rows as the attacked set and the other patients' rows as the control, and
  distance to closest record (members against non-members, ROC AUC with a bootstrap interval).
  :func:`leaky_table` is the positive control: a "synthetic" table copied from member rows.
* :func:`joint_membership`: the patient-level membership attack on the pair, a patient's row (distance to the
  closest synthetic row) and VUs (the pairwise attack) together.

anonymeter (``requirements-clinical.txt``) pins numpy below 2 and is imported only by :func:`table_privacy`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.data.clinical import GRADES, ID_COLUMN, column_kinds, split_level_column
from synthvu_core.errors import SynthVUError

if TYPE_CHECKING:
    import pandas as pd

N_BOOT = 1000
#: age bands of the age-grade curve (years, left-closed)
AGE_BANDS: tuple[int, ...] = (20, 40, 50, 60, 70, 90)
INSTALL_HINT = "pip install -r requirements-clinical.txt"


def _interval(values: np.ndarray) -> list[float] | None:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 10:
        return None
    return [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))]


# ---- the table ------------------------------------------------------------------------------------------


def numeric_frame(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The columns as numbers: categories become their code in sorted order (sex F=0, M=1)."""
    import pandas as pd

    out = {}
    for c in columns:
        if pd.api.types.is_numeric_dtype(table[c]):
            out[c] = table[c].astype(float)
        else:
            cats = sorted(table[c].dropna().astype(str).unique())
            out[c] = table[c].astype(str).map({v: i for i, v in enumerate(cats)}).astype(float)
    return pd.DataFrame(out)


def lumbar_grade(table: pd.DataFrame) -> np.ndarray:
    """Mean grade over the lumbar discs (``grade_L*``) of every row."""
    columns = [c for c in table.columns if (s := split_level_column(c)) and s[0] == "grade" and s[1].startswith("L")]
    if not columns:
        raise SynthVUError("the clinical table has no lumbar grade column (grade_L1/L2 ...)")
    return table[columns].astype(float).mean(axis=1).to_numpy()


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def age_grade(table: pd.DataFrame, seed: int = 0, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Spearman rho of age and mean lumbar grade, with a 95 % bootstrap interval over rows, and the age-grade
    curve (mean lumbar grade per age band)."""
    age = table["age"].astype(float).to_numpy()
    grade = lumbar_grade(table)
    rng = np.random.default_rng(seed)
    boot = [_spearman(age[i], grade[i]) for i in (rng.integers(0, len(age), len(age)) for _ in range(n_boot))]
    bands = np.digitize(age, AGE_BANDS[1:-1])
    curve = [float(grade[bands == b].mean()) if (bands == b).any() else None for b in range(len(AGE_BANDS) - 1)]
    return {"rho": _spearman(age, grade), "interval": _interval(np.array(boot)), "n": int(len(age)),
            "curve": curve, "bands": [f"{a}-{b - 1}" for a, b in zip(AGE_BANDS, AGE_BANDS[1:])]}


def marginal_distance(real: pd.Series, synthetic: pd.Series, kind: str) -> dict[str, Any]:
    """Kolmogorov-Smirnov statistic for numbers, total variation distance for categories and per-level grades."""
    import pandas as pd
    from scipy.stats import ks_2samp

    r, s = real.dropna(), synthetic.dropna()
    if kind == "numeric" and pd.api.types.is_numeric_dtype(r) and r.nunique() > 10:
        return {"metric": "ks", "value": float(ks_2samp(r.astype(float), s.astype(float)).statistic)}
    p = r.astype(str).value_counts(normalize=True)
    q = s.astype(str).value_counts(normalize=True)
    keys = sorted(set(p.index) | set(q.index))
    tvd = 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)
    return {"metric": "tvd", "value": float(tvd),
            "real": {k: float(p.get(k, 0.0)) for k in keys}, "synthetic": {k: float(q.get(k, 0.0)) for k in keys}}


def table_fidelity(real: pd.DataFrame, synthetic: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Marginals, pairwise associations and the age-grade association of ``synthetic`` against ``real``."""
    kinds = {c: k for c, k in column_kinds(real).items() if k != "text" and c in synthetic.columns}
    columns = list(kinds)
    marginals = {c: marginal_distance(real[c], synthetic[c], kinds[c]) for c in columns}
    r, s = numeric_frame(real, columns), numeric_frame(synthetic, columns)
    keep = [c for c in columns if r[c].std() > 0 and s[c].std() > 0]
    corr_r = r[keep].corr(method="spearman").to_numpy()
    corr_s = s[keep].corr(method="spearman").to_numpy()
    upper = np.triu_indices(len(keep), 1)
    real_ag, syn_ag = age_grade(real, seed), age_grade(synthetic, seed + 1)
    within = real_ag["interval"] is not None and real_ag["interval"][0] <= syn_ag["rho"] <= real_ag["interval"][1]
    return {
        "columns": kinds,
        "marginals": marginals,
        "mean_ks": _mean([m["value"] for m in marginals.values() if m["metric"] == "ks"]),
        "mean_tvd": _mean([m["value"] for m in marginals.values() if m["metric"] == "tvd"]),
        "association": {"columns": keep, "real": corr_r.round(4).tolist(), "synthetic": corr_s.round(4).tolist(),
                        "mean_abs_difference": float(np.nanmean(np.abs(corr_r - corr_s)[upper]))},
        "age_grade": {"real": real_ag, "synthetic": syn_ag, "within_real_interval": bool(within)},
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


# ---- privacy of the table -------------------------------------------------------------------------------


def _anonymeter() -> Any:
    try:
        from anonymeter import evaluators
    except ImportError as e:
        raise SynthVUError(f"the table's privacy needs anonymeter ({e}); install it with `{INSTALL_HINT}`") from None
    return evaluators


def check_installed() -> None:
    """Refuse (before any work) where the table's privacy cannot be measured: anonymeter is not installed."""
    _anonymeter()


def _risk(evaluator: Any) -> dict[str, Any]:
    risk = evaluator.risk(confidence_level=0.95)
    results = evaluator.results()
    attack, baseline = float(results.attack_rate.value), float(results.baseline_rate.value)
    return {"risk": float(risk.value), "interval": [float(risk.ci[0]), float(risk.ci[1])], "attack_rate": attack,
            "control_rate": float(results.control_rate.value), "baseline_rate": baseline,
            "n_attacks": int(results.n_attacks_ori),
            # anonymeter: an attack no better than its random baseline cannot be trusted
            "trusted": attack > baseline}


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float64 and labels as text (anonymeter's compiled neighbour search takes no nullable integers)."""
    import pandas as pd

    out = frame.reset_index(drop=True).copy()
    for c in out.columns:
        out[c] = out[c].astype(float) if pd.api.types.is_numeric_dtype(out[c]) else out[c].astype(str)
    return out


def _attack_columns(table: pd.DataFrame) -> list[str]:
    return [c for c, k in column_kinds(table).items() if k != "text"]


def row_distances(rows: pd.DataFrame, synthetic: pd.DataFrame) -> np.ndarray:
    """Each row's Euclidean distance ``[n]`` to its closest synthetic row, over the columns both share (categories
    as codes), every column scaled by the synthetic table's mean and spread; a missing value counts as the mean."""
    columns = [c for c in _attack_columns(rows) if c in synthetic.columns]
    syn = numeric_frame(synthetic, columns)
    centre, scale = syn.mean(), syn.std().replace(0, 1.0)
    x = ((numeric_frame(rows, columns) - centre) / scale).fillna(0).to_numpy()
    y = ((syn - centre) / scale).fillna(0).to_numpy()
    return np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)).min(1)


def distance_to_closest_record(members: pd.DataFrame, non_members: pd.DataFrame, synthetic: pd.DataFrame,
                               seed: int = 0, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Each candidate's distance to its closest synthetic row (columns scaled by the synthetic table's spread);
    score = minus that distance; ROC AUC of members against non-members with a bootstrap interval over candidates."""
    from sklearn.metrics import roc_auc_score

    d_in, d_out = row_distances(members, synthetic), row_distances(non_members, synthetic)
    labels = np.r_[np.ones(len(d_in)), np.zeros(len(d_out))]
    scores = -np.r_[d_in, d_out]
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        i = np.r_[rng.integers(0, len(d_in), len(d_in)), len(d_in) + rng.integers(0, len(d_out), len(d_out))]
        boot.append(roc_auc_score(labels[i], scores[i]))
    return {"auc": float(roc_auc_score(labels, scores)), "interval": _interval(np.array(boot)),
            "median_dcr_members": float(np.median(d_in)), "median_dcr_non_members": float(np.median(d_out)),
            "exact_copies": int((d_in < 1e-9).sum()), "n_members": int(len(d_in)), "n_non_members": int(len(d_out))}


def table_privacy(members: pd.DataFrame, non_members: pd.DataFrame, synthetic: pd.DataFrame, *, seed: int = 0,
                  secret: str = "grade_L4/L5", n_attacks: int = 500) -> dict[str, Any]:
    """anonymeter's three risks (attacked: ``members``; control: ``non_members``) and distance to closest record.

    Linkability links the demographic and curvature columns to the grade columns; inference guesses ``secret``
    from every other column. A risk's interval is anonymeter's 95 % interval (Wilson score). The larger of the
    attacked and control sets is subsampled (seeded) to the smaller one's size for anonymeter
    (:func:`equal_sizes`); the distance to closest record is an AUC and uses every row.
    """
    evaluators = _anonymeter()
    columns = [c for c in _attack_columns(members) if c in synthetic.columns]
    attacked, control = equal_sizes(members, non_members, seed)
    ori, ctl, syn = (_plain(t[columns]) for t in (attacked, control, synthetic))
    grades = [c for c in columns if (s := split_level_column(c)) and s[0] == "grade"]
    others = [c for c in columns if c not in grades]
    n = min(n_attacks, len(ori), len(ctl))
    np.random.seed(seed)
    singling = evaluators.SinglingOutEvaluator(ori=ori, syn=syn, control=ctl, n_attacks=n, seed=seed)
    singling.evaluate(mode="univariate")
    linking = evaluators.LinkabilityEvaluator(ori=ori, syn=syn, control=ctl, n_attacks=n,
                                              aux_cols=(others, grades), n_neighbors=1)
    linking.evaluate(n_jobs=1)
    aux = [c for c in columns if c != secret]
    inference = evaluators.InferenceEvaluator(ori=ori, syn=syn, control=ctl, aux_cols=aux, secret=secret,
                                              regression=False, n_attacks=n)
    inference.evaluate(n_jobs=1)
    return {
        "singling_out": _risk(singling),
        "linkability": _risk(linking),
        "inference": {**_risk(inference), "secret": secret},
        "dcr": distance_to_closest_record(members, non_members, synthetic, seed),
        "n_members": int(len(ori)), "n_control": int(len(ctl)), "n_synthetic": int(len(syn)),
        "n_members_total": int(len(members)), "n_control_total": int(len(non_members)),
    }


def equal_sizes(members: pd.DataFrame, non_members: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The attacked and control rows at one size: the larger set subsampled without replacement (seeded).

    anonymeter's risks compare the attack's success on the attacked rows with that on the control rows, and a
    predicate's chance of singling out one row grows with the number of rows it is tried on: with 240 members
    against 160 controls, a table fitted on *other* patients was caught by singling out in 5 of 10 runs (0 of
    10 at equal sizes; docs/clinical.md, "Calibration of the table's privacy")."""
    rng = np.random.default_rng(seed)
    n = min(len(members), len(non_members))

    def draw(rows: pd.DataFrame) -> pd.DataFrame:
        if len(rows) == n:
            return rows.reset_index(drop=True)
        return rows.iloc[np.sort(rng.choice(len(rows), n, replace=False))].reset_index(drop=True)

    return draw(members), draw(non_members)


def leaky_table(members: pd.DataFrame, n_rows: int, seed: int = 0) -> pd.DataFrame:
    """Positive control: ``n_rows`` rows copied from member rows (drawn with replacement), renamed as synthetic."""
    rng = np.random.default_rng(seed)
    rows = members.iloc[rng.integers(0, len(members), int(n_rows))].reset_index(drop=True)
    rows[ID_COLUMN] = [f"leak-{i:04d}" for i in range(len(rows))]
    return rows


def caught(privacy: dict[str, Any]) -> bool:
    """A table leaks by this evaluation where a risk's interval lies above 0 or the DCR AUC's above 0.5."""
    risks = [privacy[k]["interval"][0] > 0 for k in ("singling_out", "linkability", "inference")]
    dcr = privacy["dcr"]["interval"]
    return any(risks) or (dcr is not None and dcr[0] > 0.5)


#: what a released table's (or pair's) test result says beside its leaky positive control's
READINGS: tuple[str, ...] = ("caught", "not caught", "inconclusive (no power)")


def reading(caught_released: bool, caught_control: bool) -> str:
    """The released table's (or pair's) reading, as the VU evaluation reads its attacks: ``caught`` where its test
    is significant (a leak needs no power), ``not caught`` only where the same test catches the leaky control, else
    ``inconclusive (no power)``: an attack that misses copied member rows cannot clear anything."""
    if caught_released:
        return READINGS[0]
    return READINGS[1] if caught_control else READINGS[2]


# ---- the joint membership attack ---------------------------------------------------------------------------

#: the row part and the VU part of the joint attack, and their combination
JOINT_PARTS: tuple[str, ...] = ("row", "vus", "joint")


def percentile_ranks(scores: np.ndarray) -> np.ndarray:
    """Each score's mid-rank among ``scores``, scaled to (0, 1] (ties share their mean rank)."""
    from scipy.stats import rankdata

    return rankdata(np.asarray(scores, dtype=float)) / len(scores)


def vu_pairwise_scores(vus: np.ndarray, vu_patient: np.ndarray, patients: np.ndarray,
                       synthetic_vus: np.ndarray) -> np.ndarray:
    """The VU evaluation's pairwise attack in pixel space (``-d_min / median`` over the synthetic VUs), averaged
    over each patient's VUs: ``[len(patients)]`` in the order of ``patients``."""
    from synthvu_core.evaluation.privacy import pairwise_scores, summarise_distances

    score, _ = pairwise_scores(summarise_distances(vus, synthetic_vus, quantiles=()))
    vu_patient = np.asarray(vu_patient).astype(str)
    out = np.array([score[vu_patient == p].mean() if (vu_patient == p).any() else np.nan for p in patients])
    if np.isnan(out).any():
        raise SynthVUError(f"{int(np.isnan(out).sum())} candidate patients have no VU for the joint attack")
    return out


def _auc_with_interval(scores: np.ndarray, is_member: np.ndarray, seed: int, n_boot: int) -> dict[str, Any]:
    """ROC AUC (Mann-Whitney: ties count one half) with a 95 % interval over patients resampled within members and
    within non-members (multinomial counts, so every replicate reuses one win matrix)."""
    s1, s0 = scores[is_member], scores[~is_member]
    wins = (s1[:, None] > s0[None, :]) + 0.5 * (s1[:, None] == s0[None, :])
    rng = np.random.default_rng([seed, 41])
    c1 = rng.multinomial(len(s1), np.full(len(s1), 1 / len(s1)), size=n_boot)
    c0 = rng.multinomial(len(s0), np.full(len(s0), 1 / len(s0)), size=n_boot)
    boot = np.einsum("bi,ij,bj->b", c1, wins, c0) / (len(s1) * len(s0))
    return {"auc": float(wins.mean()), "interval": _interval(boot)}


def joint_membership(rows: pd.DataFrame, is_member: np.ndarray, vus: np.ndarray, vu_patient: np.ndarray,
                     synthetic_rows: pd.DataFrame, synthetic_vus: np.ndarray, *, seed: int = 0,
                     n_boot: int = N_BOOT) -> dict[str, Any]:
    """Patient-level membership attack that uses a patient's clinical row and VUs together.

    ``rows`` holds one row per candidate patient (``is_member`` ``[n]``: a training patient), ``vus`` ``[m, C, H, W]``
    their VUs (``vu_patient`` ``[m]`` names each VU's patient). Two scores per patient, higher = more likely a
    member: the row's distance to its closest synthetic row (minus it) and the patient's mean pairwise VU score
    against ``synthetic_vus``. The joint score is the mean of the two scores' percentile ranks among the candidates,
    so neither part's scale dominates. Each part and the joint score get a ROC AUC with a patient-bootstrap 95 %
    interval; a TPR at a low false-positive rate needs about 10 expected false positives and is not estimated.
    Per-patient scores are not returned (the report stays aggregate, as a shared report must). ``caught``: the
    joint score's interval lies above 0.5 (the pre-specified attack); ``parts_above_chance`` names every score whose
    interval does, the parts on their own included.
    """
    is_member = np.asarray(is_member, dtype=bool)
    patients = rows[ID_COLUMN].astype(str).to_numpy()
    if len(rows) != len(is_member) or is_member.all() or not is_member.any():
        raise SynthVUError("the joint attack needs member and non-member patients, one row each")
    scores = {"row": -row_distances(rows, synthetic_rows),
              "vus": vu_pairwise_scores(vus, vu_patient, patients, synthetic_vus)}
    scores["joint"] = 0.5 * (percentile_ranks(scores["row"]) + percentile_ranks(scores["vus"]))
    n0 = int((~is_member).sum())
    out: dict[str, Any] = {name: _auc_with_interval(scores[name], is_member, seed, n_boot) for name in JOINT_PARTS}
    out.update({"n_member_patients": int(is_member.sum()), "n_nonmember_patients": n0,
                "n_candidate_vus": int(len(vus)), "n_synthetic_rows": int(len(synthetic_rows)),
                "n_synthetic_vus": int(len(synthetic_vus)),
                "tpr_at_low_fpr": f"not estimable with {n0} non-member patients (needs about 10 / FPR)"})
    above = [name for name in JOINT_PARTS if out[name]["interval"] is not None and out[name]["interval"][0] > 0.5]
    out["parts_above_chance"] = above  # each part on its own, beside the pre-specified joint score
    out["caught"] = "joint" in above
    return out


# ---- VUs and grades ----------------------------------------------------------------------------------------


def grade_labels(grades: np.ndarray) -> np.ndarray:
    """Grades 1..5 -> classes 0..4 (-1 where ungraded)."""
    grades = np.asarray(grades, dtype=np.int64)
    return np.where(np.isin(grades, GRADES), grades - GRADES[0], -1)


def grade_recognition(model: Any, images: np.ndarray, requested: np.ndarray, seed: int = 0,
                      n_boot: int = N_BOOT) -> dict[str, Any]:
    """Balanced accuracy of ``model`` (trained on real VUs) recovering the grade each generated VU was asked for,
    with a 95 % bootstrap interval over the generated VUs; chance is 1 / the grades requested."""
    from synthvu_core.evaluation.encoder import predict
    from synthvu_core.evaluation.utility import classification_result

    y = grade_labels(requested)
    pred = predict(model, images)
    k = len(GRADES)
    result = classification_result(y, pred, k)
    rng = np.random.default_rng(seed)
    boot = [classification_result(y[i], pred[i], k).balanced_accuracy
            for i in (rng.integers(0, len(y), len(y)) for _ in range(n_boot))]
    present = len(np.unique(y[y >= 0]))
    return {"balanced_accuracy": result.balanced_accuracy, "interval": _interval(np.array(boot, dtype=float)),
            "chance": 1.0 / present if present else None, "recall": result.recall.tolist(),
            "confusion": result.confusion.tolist(), "n": int(len(y))}


def grade_utility(train_x: np.ndarray, train_y: np.ndarray, synth_x: np.ndarray, synth_y: np.ndarray,
                  test_x: np.ndarray, test_y: np.ndarray, test_patients: np.ndarray, seeds: tuple[int, ...] = (0, 1),
                  ) -> tuple[dict[str, Any], list[Any]]:
    """TRTR and TSTR of disc grade from the VU; returns the numbers and the real classifiers (one per seed)."""
    from synthvu_core.evaluation.encoder import predict, train_classifier
    from synthvu_core.evaluation.utility import classification_result, patient_bootstrap

    k = len(GRADES)
    ytr, ysy, yte = grade_labels(train_y), grade_labels(synth_y), grade_labels(test_y)
    real_models = [train_classifier(train_x, ytr, k, seed=s) for s in seeds]
    synth_models = [train_classifier(synth_x, ysy, k, seed=s) for s in seeds]
    preds = {"trtr": np.stack([predict(m, test_x) for m in real_models]),
             "tstr": np.stack([predict(m, test_x) for m in synth_models])}
    keep = yte >= 0
    boot = patient_bootstrap(yte[keep], {n: p[:, keep] for n, p in preds.items()}, test_patients[keep], k)
    out: dict[str, Any] = {"seeds": list(seeds), "n_train": int((ytr >= 0).sum()), "n_synthetic": int((ysy >= 0).sum()),
                           "n_test": int(keep.sum()), "n_test_patients": int(len(np.unique(test_patients[keep])))}
    for name, p in preds.items():
        scores = [classification_result(yte, row, k).balanced_accuracy for row in p]
        out[name] = {"balanced_accuracy": float(np.mean(scores)), "per_seed": scores,
                     "interval": _interval(boot[name]),
                     "recall": classification_result(yte, p[0], k).recall.tolist()}
    ratio = boot["tstr"] / boot["trtr"]
    out["ratio"] = {"value": out["tstr"]["balanced_accuracy"] / out["trtr"]["balanced_accuracy"],
                    "interval": _interval(ratio)}
    present = len(np.unique(yte[keep]))
    out["chance"] = 1.0 / present if present else None
    return out, real_models
