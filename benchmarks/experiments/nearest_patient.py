"""Whose VU is each sample nearest? A whole-cohort membership test by randomisation (an experiment, not yet part of
``evaluate``).

    python -m benchmarks.experiments.nearest_patient MODEL [DATASET] [N_SAMPLES] [NULL_SPLITS]

For ``N_SAMPLES`` VUs drawn from the generator as released (seed 0; default 2,000) it finds each sample's nearest
real VU (pixel space, Euclidean, with the pairwise attack's distance blocks) among **every** patient of the dataset
and counts the samples each patient attracts. The statistic is the share of samples whose nearest VU belongs to a
train patient.
The train patients were a uniform random draw (``assign_split``: a seeded permutation of all patients, no strata), so
under the null that the samples do not depend on which patients were drawn, every relabelling of the same number of
patients as "train" is as likely: the p-value is the share of 20,000 random relabellings whose share is at least the
observed one. Unlike the report's attacks it needs no balanced member/non-member sides and no fitted space, so it
uses all patients (on a 25-patient cohort: 15 train against 10 others instead of 5 against 5).

Null checks at no extra cost: the same counts under ``NULL_SPLITS`` other seeded splits of the same ratios (split
seeds other than the model's; default 3) — labellings drawn independently of the training — must give p-values of a
uniform distribution. ``DATASET`` defaults to the dataset the model card remembers; the split is the card's.
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import numpy as np

from synthvu_core.api import load_generator
from synthvu_core.data.build import dataset_of_card
from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.evaluation.privacy import squared_distance_blocks
from synthvu_core.models.registry import load_card, resolve
from synthvu_core.models.sampling import sample

N_PERMUTATIONS = 20_000


def nearest_patient_counts(
    samples: np.ndarray, dataset: VUDataset, chunk: int = 512
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(patients, counts, vus)``: how many ``samples`` ``[n, C, H, W]`` in [-1, 1] have each patient's VU nearest,
    and how many VUs each patient has."""
    real = np.asarray(dataset.images, np.float32) / 127.5 - 1.0
    nearest = np.concatenate([d2.argmin(1) for _, d2 in squared_distance_blocks(samples, real, chunk=chunk)])
    owner = dataset.units["patient_id"].astype(str).to_numpy()
    patients = sorted(set(owner.tolist()))
    index = {p: i for i, p in enumerate(patients)}
    counts = np.bincount([index[p] for p in owner[nearest]], minlength=len(patients)).astype(np.float64)
    vus = np.bincount([index[p] for p in owner], minlength=len(patients)).astype(np.float64)
    return patients, counts, vus


def randomisation_test(counts: np.ndarray, vus: np.ndarray, is_train: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Share of the samples nearest a train patient (its mean and 95 % quantile over random relabellings, p-value),
    and the patient-level AUC of the attack "a patient's samples per VU" (train against other patients; its p-value
    over the same relabellings)."""
    from scipy.stats import rankdata

    n, ranks = counts.sum(), rankdata(counts / vus)  # the AUC from rank sums (Mann-Whitney; ties count one half)
    n1 = int(is_train.sum())

    def auc(mask: np.ndarray) -> float:
        return float((ranks[mask].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(mask) - n1)))

    observed, observed_auc = counts[is_train].sum() / n, auc(is_train)
    rng = np.random.default_rng(seed)
    labels = [rng.permutation(is_train) for _ in range(N_PERMUTATIONS)]
    null = np.array([counts[m].sum() / n for m in labels])
    null_auc = np.array([auc(m) for m in labels])
    return {"share_train": round(float(observed), 3), "expected": round(float(null.mean()), 3),
            "null_95": round(float(np.quantile(null, 0.95)), 3), "p": round(float(p_value(null, observed)), 6),
            "patient_auc": round(observed_auc, 3), "auc_p": round(float(p_value(null_auc, observed_auc)), 6)}


def p_value(null: np.ndarray, observed: float) -> float:
    """One-sided randomisation p-value, counting the observed labelling."""
    return (1 + np.sum(null >= observed - 1e-12)) / (1 + len(null))


def train_mask(dataset: VUDataset, split: SplitConfig, patients: list[str]) -> np.ndarray:
    """Which of ``patients`` are train patients under ``split``."""
    units = dataset.with_split(split).units
    part = dict(zip(units["patient_id"].astype(str), units["split"]))
    return np.array([part[p] == "train" for p in patients])


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    folder = resolve(argv[0])
    card = load_card(folder)
    dataset = VUDataset.load(argv[1]) if len(argv) > 1 and argv[1] != "-" else dataset_of_card(card, folder)
    n = int(argv[2]) if len(argv) > 2 else 2000
    n_null = int(argv[3]) if len(argv) > 3 else 3
    own = SplitConfig(**card["dataset"]["split"])
    images = sample(load_generator(folder), n, seed=0).images
    patients, counts, vus = nearest_patient_counts(images, dataset)
    is_train = train_mask(dataset, own, patients)
    others = range(own.seed + 1, own.seed + 1 + n_null)  # split seeds other than the model's
    null_splits = {s: randomisation_test(counts, vus, train_mask(dataset, SplitConfig(**{**asdict(own), "seed": s}),
                                                                 patients))["p"] for s in others}
    top = np.argsort(-counts, kind="stable")[:3]
    print(json.dumps({
        "model": folder.name, "n_samples": n, "train_patients": int(is_train.sum()),
        "other_patients": int((~is_train).sum()), **randomisation_test(counts, vus, is_train),
        "null_split_p": null_splits,
        "most_attracting": [[patients[i], "train" if is_train[i] else "other", int(counts[i])] for i in top],
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
