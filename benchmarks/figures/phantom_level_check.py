"""Check that phantom VUs carry anatomy, not trivial cues.

Usage: ``python -m benchmarks.figures.phantom_level_check [--patients 40] [--seed 0]``

Cuts VUs from a phantom cohort with the ingestion pipeline and reports balanced accuracies of
patient-grouped 4-fold cross-validated logistic regressions:
region (C/T/L) from PCA of the VUs (should be high), adjacent lumbar levels L3/L4 vs L4/L5 from PCA
(should be only partly separable), and the 23 levels from the VU mean intensity alone (should be
near chance, 1/23).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from synthvu_core import levels
    from synthvu_core.data.nifti import load_pair
    from synthvu_core.data.phantom import write_cohort
    from synthvu_core.data.units import ExtractConfig, extract_units

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--contrast", default="T2")
    args = ap.parse_args()
    images, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for img, lbl in write_cohort(Path(tmp), args.patients, seed=args.seed, contrast=args.contrast):
            ims, rs = extract_units(load_pair(img, lbl), ExtractConfig())
            images.append(ims)
            rows += rs
    x = np.concatenate(images).astype(np.float32) / 255.0
    y = np.array([r["level"] for r in rows])
    groups = np.array([r["patient_id"] for r in rows])
    cv = GroupKFold(n_splits=4)

    def score(feats: np.ndarray, labels: np.ndarray, grp: np.ndarray, pca: int | None) -> float:
        steps = (
            [StandardScaler()]
            + ([PCA(pca, random_state=0)] if pca else [])
            + [LogisticRegression(max_iter=3000, C=0.1)]
        )
        pred = cross_val_predict(make_pipeline(*steps), feats, labels, groups=grp, cv=cv)
        return float(balanced_accuracy_score(labels, pred))

    small = x[:, :, ::2, ::2].reshape(len(x), -1)
    region = np.array([levels.region(v) for v in y])
    lum = np.isin(y, ["L3/L4", "L4/L5"])
    out = {
        "n_patients": args.patients,
        "n_vus": int(len(x)),
        "region_from_pca": score(small, region, groups, 50),
        "L3L4_vs_L4L5_from_pca": score(small[lum], y[lum], groups[lum], 20),
        "level23_from_mean_intensity": score(x.mean(axis=(1, 2, 3))[:, None], y, groups, None),
        "level23_chance": 1 / 23,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
