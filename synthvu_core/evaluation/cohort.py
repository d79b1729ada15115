"""The whole-cohort nearest-patient test: are the released samples drawn to the patients the generator saw?

For every synthetic VU, its nearest real VU (pixel space, Euclidean: the pairwise attack's distance blocks, or for
large cohorts the exact certified-pruning search of :func:`~synthvu_core.evaluation.pruned.nearest_in`: 0.38x the
brute force's time on 2,760 real VUs x 5,000 samples, the same nearest VUs) among **every** patient of the dataset; each
patient attracts a number of samples. Two statistics:

* ``share_train``: the share of the samples whose nearest VU belongs to a training patient (the test's statistic;
  its one-sided p-value is the one verdict (a) reads);
* ``patient_auc``: the patient-level AUC of the attack "a patient's samples per VU" (training patients against all
  others; the effect size verdict (a) weighs against its leak threshold), with its own p-value.

The training patients were a random draw (``assign_split``: a seeded permutation of all patients, or, for a
stratified split, of the patients of each stratum), so under the null that the samples do not depend on which patients
were drawn every relabelling with as many "train" patients (in every stratum, for a stratified split) is equally
likely: the p-values are the shares of :data:`N_PERMUTATIONS` random relabellings whose statistic is at least the
observed one (counting the observed labelling). Unlike the
member/non-member attacks it needs no balanced sides and no fitted space, so it uses every patient (on a 25-patient
cohort: 15 training patients against 10 others instead of 5 against 5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from synthvu_core.evaluation.privacy import squared_distance_blocks

#: Above this many multiply-adds (samples x real VUs x features), with at least :data:`PRUNED_MIN_DIM` features, the
#: nearest real VUs come from the pruned search (below it the brute force is faster than fitting the bounds).
PRUNED_WORK = 1e11
PRUNED_MIN_DIM = 1024
N_PERMUTATIONS = 20_000
#: Relabellings held in memory at once (1,000 x patients float64: 8 MB per 1,000 patients).
PERMUTATION_BLOCK = 1_000
#: The test's name in verdict (a) and on every surface.
COHORT_TEST = "whole-cohort nearest patient"
#: Report scalar keys (``cohort.<field>``) of :class:`CohortTest`, in the order they are shown.
COHORT_FIELDS: tuple[str, ...] = (
    "share_train", "expected_share", "share_null_95", "p_value", "patient_auc", "patient_auc_p_value",
    "n_train_patients", "n_other_patients", "n_samples",
)


@dataclass(frozen=True)
class CohortTest:
    """The test's numbers (see the module text); ``expected_share`` and ``share_null_95`` are the mean and 95 %
    quantile of ``share_train`` over the random relabellings."""

    share_train: float
    expected_share: float
    share_null_95: float
    p_value: float
    patient_auc: float
    patient_auc_p_value: float
    n_train_patients: int
    n_other_patients: int
    n_samples: int

    def scalars(self) -> dict[str, float]:
        """``cohort.<field>`` -> value, as a report stores them."""
        return {f"cohort.{k}": float(v) for k, v in asdict(self).items()}

    def text(self) -> str:
        """One line for every surface (CLI, dashboard, card)."""
        return (f"{self.share_train:.0%} of {self.n_samples:,} samples are nearest a VU of one of the "
                f"{self.n_train_patients} training patients (expected {self.expected_share:.0%} among all "
                f"{self.n_train_patients + self.n_other_patients} patients, 95% of relabellings below "
                f"{self.share_null_95:.0%}), p {self.p_value:.3g}; patient AUC of samples per VU "
                f"{self.patient_auc:.3f} (p {self.patient_auc_p_value:.3g})")

    @classmethod
    def from_scalars(cls, scalars: dict[str, float | None]) -> CohortTest | None:
        """The test a report stored; None where it has none (older reports)."""
        vals = {k: scalars.get(f"cohort.{k}") for k in COHORT_FIELDS}
        if any(v is None for v in vals.values()):
            return None
        ints = ("n_train_patients", "n_other_patients", "n_samples")
        return cls(**{k: int(v) if k in ints else float(v) for k, v in vals.items()})


def cohort_line(scalars: dict[str, float | None], missing: dict[str, str] | None = None) -> str:
    """The test in one line for a report's scalars: its numbers, why it could not be computed, or that the report
    was made before it."""
    test = CohortTest.from_scalars(scalars)
    if test is not None:
        return test.text()
    why = (missing or {}).get("cohort.p_value")
    if why:
        return f"not computed: {why}"
    return "not run: the report was made before the test (`python -m synthvu_core report amend MODEL` adds it)"


def nearest_patient_counts(
    samples: np.ndarray, images: np.ndarray, patient_ids: np.ndarray, chunk: int = 512
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(patients, counts, vus)``: how many ``samples`` have each patient's VU nearest, and each patient's VUs.

    Args:
        samples: synthetic VUs ``[n, C, H, W]`` on the scale of ``images`` (both uint8, or both float).
        images: the dataset's real VUs ``[N, C, H, W]``.
        patient_ids: the patient of each real VU ``[N]``.
        chunk: samples per distance block.
    """
    nearest = nearest_real(samples, images, chunk=chunk)
    owner = np.asarray(patient_ids).astype(str)
    patients = sorted(set(owner.tolist()))
    index = {p: i for i, p in enumerate(patients)}
    counts = np.bincount([index[p] for p in owner[nearest]], minlength=len(patients)).astype(np.float64)
    vus = np.bincount([index[p] for p in owner], minlength=len(patients)).astype(np.float64)
    return patients, counts, vus


def nearest_real(samples: np.ndarray, images: np.ndarray, chunk: int = 512) -> np.ndarray:
    """The index of each sample's nearest real VU ``[n]`` (ties: the lowest index): brute force in blocks of ``chunk``
    samples, or the exact pruned search above :data:`PRUNED_WORK`."""
    from synthvu_core.evaluation.pruned import nearest_in

    dim = int(np.prod(np.shape(images)[1:]))
    if dim >= PRUNED_MIN_DIM and len(samples) * len(images) * dim > PRUNED_WORK:
        return nearest_in(samples, images)[1]
    return np.concatenate([d2.argmin(1) for _, d2 in squared_distance_blocks(samples, images, chunk=chunk)])


def p_value(null: np.ndarray, observed: float) -> float:
    """One-sided randomisation p-value, counting the observed labelling."""
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def randomisation_test(
    counts: np.ndarray, vus: np.ndarray, is_train: np.ndarray, seed: int = 0, n_perm: int = N_PERMUTATIONS,
    strata: np.ndarray | None = None,
) -> CohortTest:
    """Both statistics on the observed labelling ``is_train`` and on ``n_perm`` random relabellings: uniform, or
    within each stratum where ``strata`` (one label per patient) names the strata the split was drawn in."""
    from scipy.stats import rankdata

    is_train = np.asarray(is_train, dtype=bool)
    n, ranks = counts.sum(), rankdata(counts / vus)  # the AUC from rank sums (Mann-Whitney; ties count one half)
    n1, n0 = int(is_train.sum()), int((~is_train).sum())
    if n1 == 0 or n0 == 0 or n == 0:
        raise ValueError("the whole-cohort test needs samples, training patients and other patients")
    rng = np.random.default_rng(seed)
    shift, scale = n1 * (n1 + 1) / 2, n1 * n0
    null, null_auc = np.empty(n_perm), np.empty(n_perm)
    for start in range(0, n_perm, PERMUTATION_BLOCK):  # a block of relabellings at a time: memory bounded
        stop = min(start + PERMUTATION_BLOCK, n_perm)
        labels = np.stack([relabel(rng, is_train, strata) for _ in range(stop - start)]).astype(np.float64)
        null[start:stop], null_auc[start:stop] = labels @ counts / n, (labels @ ranks - shift) / scale
    share, auc = float(counts[is_train].sum() / n), float((ranks[is_train].sum() - shift) / scale)
    return CohortTest(
        share_train=share, expected_share=float(null.mean()), share_null_95=float(np.quantile(null, 0.95)),
        p_value=p_value(null, share), patient_auc=auc, patient_auc_p_value=p_value(null_auc, auc),
        n_train_patients=n1, n_other_patients=n0, n_samples=int(n),
    )


def relabel(rng: np.random.Generator, is_train: np.ndarray, strata: np.ndarray | None) -> np.ndarray:
    """One random relabelling of ``is_train``: a permutation, or one permutation within each stratum."""
    if strata is None:
        return rng.permutation(is_train)
    out = is_train.copy()
    for stratum in np.unique(strata):
        idx = np.flatnonzero(strata == stratum)
        out[idx] = rng.permutation(is_train[idx])
    return out


def cohort_test(
    samples: np.ndarray, images: np.ndarray, patient_ids: np.ndarray, split: np.ndarray, seed: int = 0,
    strata: dict[str, str] | None = None,
) -> CohortTest:
    """The test of ``samples`` against every real VU; ``split`` names each VU's part (members: ``"train"``);
    ``strata``: each patient's stratum where the split was stratified (``VUDataset.split_strata``)."""
    patients, counts, vus = nearest_patient_counts(samples, images, patient_ids)
    part = dict(zip(np.asarray(patient_ids).astype(str), np.asarray(split).astype(str), strict=True))
    groups = None if strata is None else np.array([strata[p] for p in patients])
    return randomisation_test(counts, vus, np.array([part[p] == "train" for p in patients]), seed=seed,
                              strata=groups)
