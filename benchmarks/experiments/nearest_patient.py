"""Whose VU is each sample nearest? The whole-cohort membership test (:mod:`synthvu_core.evaluation.cohort`, part of
``evaluate`` and verdict (a)) on any split and sample count, with null checks under other splits.

    python -m benchmarks.experiments.nearest_patient MODEL [DATASET] [N_SAMPLES] [NULL_SPLITS]

For ``N_SAMPLES`` VUs drawn from the generator as released (seed 0; default 2,000) it finds each sample's nearest
real VU (pixel space, Euclidean, with the pairwise attack's distance blocks) among **every** patient of the dataset
and counts the samples each patient attracts. The statistic is the share of samples whose nearest VU belongs to a
train patient.
The train patients were a random draw (``assign_split``: a seeded permutation of all patients, or of each stratum's
for a stratified split), so under the null that the samples do not depend on which patients were drawn, every
relabelling of the same number of patients (per stratum) as "train" is as likely: the p-value is the share of
20,000 random relabellings whose share is at least the observed one. Unlike the report's attacks it needs no
balanced member/non-member sides and no fitted space, so it uses all patients (on a 25-patient cohort: 15 train
against 10 others instead of 5 against 5).

``evaluate`` runs the same test on its 5,000 samples and the card's split; this script adds the null checks. Null
checks at no extra cost: the same counts under ``NULL_SPLITS`` other seeded splits of the same ratios (split
seeds other than the model's; default 3) — labellings drawn independently of the training — must give p-values of a
uniform distribution. ``DATASET`` defaults to the dataset the model card remembers; the split is the card's.
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np

from synthvu_core.api import load_generator
from synthvu_core.data.build import dataset_of_card
from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.evaluation.cohort import nearest_patient_counts, randomisation_test
from synthvu_core.models.registry import load_card, resolve
from synthvu_core.models.sampling import sample


def summary(counts: np.ndarray, vus: np.ndarray, is_train: np.ndarray, strata: np.ndarray | None) -> dict[str, float]:
    """The test's numbers, rounded for printing (relabelled within ``strata`` where the split was stratified)."""
    t = randomisation_test(counts, vus, is_train, strata=strata)
    return {"share_train": round(t.share_train, 3), "expected": round(t.expected_share, 3),
            "null_95": round(t.share_null_95, 3), "p": round(t.p_value, 6), "patient_auc": round(t.patient_auc, 3),
            "auc_p": round(t.patient_auc_p_value, 6)}


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
    own = SplitConfig.from_card(card["dataset"]["split"]) or dataset.split_config()
    by_patient = dataset.with_split(own).split_strata()
    images = sample(load_generator(folder), n, seed=0).images
    real = np.asarray(dataset.images, np.float32) / 127.5 - 1.0  # the samples' [-1, 1] scale
    patients, counts, vus = nearest_patient_counts(images, real, dataset.units["patient_id"].to_numpy())
    is_train = train_mask(dataset, own, patients)
    strata = None if by_patient is None else np.array([by_patient[p] for p in patients])
    others = range(own.seed + 1, own.seed + 1 + n_null)  # split seeds other than the model's
    null_splits = {
        s: summary(counts, vus, train_mask(dataset, replace(own, seed=s), patients), strata)["p"]
        for s in others
    }
    top = np.argsort(-counts, kind="stable")[:3]
    print(json.dumps({
        "model": folder.name, "n_samples": n, "train_patients": int(is_train.sum()),
        "other_patients": int((~is_train).sum()), **summary(counts, vus, is_train, strata),
        "null_split_p": null_splits,
        "most_attracting": [[patients[i], "train" if is_train[i] else "other", int(counts[i])] for i in top],
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
