"""Definition text of every report scalar key (``report.json``'s ``definitions``), and the key grammar."""

from __future__ import annotations

from synthvu_core.names import STUDY_RATIO, STUDY_TRTR, STUDY_TSTR

_UTILITY_DEF = {
    "trtr": "Balanced accuracy (mean per-class recall) of the VU-position classifier trained on the dataset's real "
            "train split, tested on its real holdout split (the same for every generator of the dataset)",
    "tstr": "Balanced accuracy of the same classifier definition trained on synthetic VUs (the real train split's "
            "label distribution and size, a fixed TSTR size per dataset), tested on the real holdout split",
    "trts": "Balanced accuracy of the classifier trained on the real train split, tested on the synthetic VUs (low "
            "TRTS with high TSTR hints at off-manifold samples)",
    "tstr_over_trtr": (
        "TSTR balanced accuracy divided by TRTR balanced accuracy, per seed (the published study: "
        f"{STUDY_TSTR:.3f} / {STUDY_TRTR:.3f} = {STUDY_RATIO:.2f} on T1 trial data; a ratio on other data, the phantom "
        "included, is not the study's ratio)"
    ),
}
_SEEDS = "; mean over the classifier seeds (the TSTR subset drawn with the same seed)"
_CI = {"ci_low": "lower", "ci_high": "upper"}
_BOOT = ("(percentile bootstrap: holdout patients resampled with replacement and one classifier seed drawn per "
         "replicate, balanced accuracy recomputed from the stored holdout predictions)")
_CHANCE_DEF = ("Chance level of the balanced accuracies on the real holdout: 1 / number of classes present in the "
               "holdout (a class absent from the holdout does not count). A generator whose TSTR interval reaches it "
               "is not useful for this task.")
_FIDELITY_DEF = {
    "frechet_distance": "Fréchet distance between Gaussians fitted to real-holdout and synthetic embeddings "
                        "(penultimate layer of the real-trained VU-position classifier); 0 = same mean and covariance.",
    "precision": "Share of synthetic embeddings inside the k-NN ball (k=5) of some real-holdout embedding (Naeem et "
                 "al. 2020), on equal real and synthetic counts.",
    "recall": "Share of real-holdout embeddings inside the k-NN ball (k=5) of some synthetic embedding (Naeem et al. "
              "2020), on equal real and synthetic counts.",
    "density": "Mean number of real-holdout k-NN balls (k=5) containing a synthetic embedding, divided by k (Naeem et "
               "al. 2020), on equal real and synthetic counts; about 1 when distributions match.",
    "coverage": "Share of real-holdout k-NN balls (k=5) that contain at least one synthetic embedding (Naeem et al. "
                "2020), on equal real and synthetic counts.",
}
_ATTACK_DEF = {
    "pairwise": "pairwise attack (the published study; distance to closest record): score = -(d_min(x) / median_j d(x, "
                "s_j)) over all synthetic s_j",
    "distribution": "distribution attack (the published study; Monte-Carlo attack, Hilprecht et al. 2019): score = "
                    "number of synthetic VUs within eps of x, eps = the 1% quantile (0.1% in UMAP space) of all "
                    "candidate-synthetic distances",
    "domias": "DOMIAS (van Breugel et al. 2023): score = log p_synth(x) - log p_reference(x), Gaussian KDEs in "
              "PCA-reduced embedding space, reference = the reference fit half (disjoint from the candidates and from "
              "the independent control)",
    "discriminator": "discriminator attack (LOGAN white-box, Hayes et al. 2019): score = the discriminator's "
                     "real-probability; it answers the released-discriminator threat model, and a released non-private "
                     "discriminator is itself a leak",
}
_SPACE_DEF = {
    "pixel": "in pixel space (flattened VUs, Euclidean)",
    "embedding": "in embedding space (penultimate layer of a VU-position classifier trained on the reference fit half "
                 "only, Euclidean)",
    "umap": "in a 2-D UMAP space fitted on the reference fit half only (the study's UMAP-space attack, with PCA + UMAP "
            "fitted away from the candidates)",
}
_METRIC_DEF = {
    "auc": "ROC AUC over candidate VUs (members = VUs of training patients, non-members = VUs of holdout patients; "
           "equal patients and VUs per patient on both sides); 0.5 = chance",
    "auc_ci_low": "lower end of the 95% patient-clustered CI of the VU-level AUC (Obuchowski's clustered-ROC "
                  "variance over patients, Student-t on Satterthwaite degrees of freedom)",
    "auc_ci_high": "upper end of the 95% patient-clustered CI of the VU-level AUC (Obuchowski's clustered-ROC "
                   "variance over patients, Student-t on Satterthwaite degrees of freedom)",
    "tpr_at_1pct_fpr": "true-positive rate at 1% false-positive rate on the linearly interpolated ROC (Carlini et al. "
                       "2022), reported only with at least 10 expected false positives (100 non-member VUs); chance = "
                       "0.01",
    "tpr_at_1pct_fpr_ci_low": "lower end of the 95% bootstrap-t CI of the TPR at 1% FPR (patient-bootstrap standard "
                              "error, small-sample inflated, Student-t; where estimable)",
    "tpr_at_1pct_fpr_ci_high": "upper end of the 95% bootstrap-t CI of the TPR at 1% FPR (patient-bootstrap standard "
                               "error, small-sample inflated, Student-t; where estimable)",
    "tpr_at_0.1pct_fpr": "true-positive rate at 0.1% false-positive rate (Carlini et al. 2022), reported only with at "
                         "least 10 expected false positives (10,000 non-member VUs); chance = 0.001",
    "topk_share": "share of members among the k most suspicious candidates, k = number of members (the published "
                  "study); chance = 0.5",
    "patient_auc": "ROC AUC at patient level (a patient's score = mean of its VU scores)",
    "patient_auc_ci_low": "lower end of the 95% DeLong CI of the patient-level AUC (Student-t)",
    "patient_auc_ci_high": "upper end of the 95% DeLong CI of the patient-level AUC (Student-t)",
    "patient_tpr_at_1pct_fpr": "TPR at 1% FPR at patient level, reported only with at least 10 expected false-positive "
                               "patients (1,000 non-member patients)",
    "p_value": "one-sided p-value of AUC > 0.5 by a patient-permutation test (membership labels permuted between "
               "patients)",
}


_COHORT_TEST = (
    "(Whole-cohort nearest-patient test: each synthetic VU's nearest real VU in pixel space among every patient of the "
    "dataset; p-values by random relabellings of as many patients as 'train', exact because the split is a uniform "
    "random draw of patients.)"
)
_COHORT_DEF = {
    "share_train": "Share of the synthetic VUs whose nearest real VU belongs to a training patient.",
    "expected_share": "Mean of that share over the random relabellings (what a generator blind to the training "
                      "patients gets in expectation).",
    "share_null_95": "95% quantile of that share over the random relabellings.",
    "p_value": "One-sided randomisation p-value of the share (the test verdict (a) reads).",
    "patient_auc": "Patient-level ROC AUC of 'synthetic VUs nearest the patient, per VU of the patient': training "
                   "patients against every other patient (the test's effect in verdict (a)).",
    "patient_auc_p_value": "One-sided randomisation p-value of that patient-level AUC.",
    "n_train_patients": "Training patients of the dataset.",
    "n_other_patients": "Holdout and reference patients of the dataset.",
    "n_samples": "Synthetic VUs tested.",
}


def _source_definition(parts: list[str]) -> str:
    """Definition of ``utility.source.NAME.REST``: REST's definition restricted to source NAME's holdout VUs."""
    at = next(i for i in range(3, len(parts)) if parts[i] in ("n_vus", "n_patients", "chance", "trtr", "tstr")
              or parts[i].startswith("tstr_over_trtr"))
    name, rest = ".".join(parts[2:at]), parts[at:]
    if rest[0] in ("n_vus", "n_patients"):
        return f"Holdout {'VUs' if rest[0] == 'n_vus' else 'patients'} of source {name} the utility classifiers score."
    where = (f" Restricted to the holdout VUs of source {name}: the same classifiers' stored predictions, balanced "
             "accuracy over the classes present in them, chance 1 / those classes; intervals over that source's "
             "holdout patients and the seeds, none below two patients.")
    return definition(".".join(["utility", *rest])) + where


def _release_definition(parts: list[str]) -> str:
    """Definition of ``utility.release.REST``: REST's TSTR definition with the classifier trained on the whole
    synthetic set (:mod:`synthvu_core.evaluation.release_utility`)."""
    if parts[2] == "n_synthetic":
        return ("Synthetic VUs the whole-set TSTR classifier of each seed trains on: the largest subset of the "
                "evaluation's synthetic set with the real train split's label distribution.")
    where = (" Here the TSTR classifier of each seed trains on the whole synthetic set (the largest subset with the "
             "real train split's label distribution; read where it holds at least twice the real train split), not on "
             "the real train split's size: how useful a large release is, beside TSTR proper. A ratio of it is not "
             "comparable with the study's, which is of equal sizes.")
    return definition(".".join(["utility", *parts[2:]])) + where


def definition(key: str) -> str:
    """Definition text of a scalar key."""
    parts = key.split(".")
    if parts[0] == "utility" and parts[1] == "source":
        return _source_definition(parts)
    if parts[0] == "utility" and parts[1] == "release":
        return _release_definition(parts)
    if parts[0] == "utility":
        if parts[1] == "chance":
            return _CHANCE_DEF
        setting = "tstr_over_trtr" if parts[1].startswith("tstr_over_trtr") else parts[1]
        base = _UTILITY_DEF[setting] + _SEEDS
        ci = next((c for c in _CI if parts[-1].endswith(c)), None)
        if ci is not None and (parts[-1].endswith("seeds_" + ci) or setting == "trts"):
            return f"{_CI[ci].capitalize()} end of the Student-t 95% CI over classifier seeds of: {base}."
        if ci is not None:
            return f"{_CI[ci].capitalize()} end of the 95% interval over holdout patients and seeds {_BOOT} of: {base}."
        return base + "."
    if parts[0] == "fidelity":
        if parts[1] == "position":
            return f"{_FIDELITY_DEF[parts[-1]]} Restricted to position class {'.'.join(parts[2:-1])}."
        if parts[1] == "source" and parts[-1] in ("real_share", "synthetic_share"):
            whose = (
                "of the generator's real train VUs"
                if parts[-1] == "real_share"
                else "of the synthetic VUs, as a classifier of the real VUs' sources attributes them"
            )
            return f"Share {whose} that come from source {'.'.join(parts[2:-1])}."
        return _FIDELITY_DEF[parts[1]]
    if parts[0] == "privacy":
        if parts[1] == "worst":
            what = "AUC" if parts[2] == "auc" else "TPR at 1% FPR (where estimable)"
            return (
                f"Highest VU-level {what} over the attacks on the released samples that count in the released-samples "
                "verdict (black-box attacks with power on the 5% graded control)."
            )
        attack, space, metric = parts[1], parts[2], ".".join(parts[3:])
        return f"{_METRIC_DEF[metric]}; {_ATTACK_DEF[attack]}; {_SPACE_DEF[space]}."
    if parts[0] == "cohort":
        return f"{_COHORT_DEF[parts[1]]} {_COHORT_TEST}"
    if key == "dp.epsilon":
        return (
            "Differential-privacy budget epsilon of the generator's training (DP-SGD on the discriminator) at the "
            "card's "
            "delta, per privacy unit (meta dp_unit: patient, or vu for older cards); None = trained without DP."
        )
    raise KeyError(key)
