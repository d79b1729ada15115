"""3-D evaluation: the position classifier separates planted classes, TSTR of a useless generator reaches chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthvu_core.evaluation import volume

torch.set_num_threads(1)
FAST = volume.VolumeClassifierConfig(width=4, embed_dim=8, epochs=15, batch_size=16, lr=1e-2)


def planted(patients: int, per_class: int = 2, seed: int = 0, flip: bool = False):
    """Sub-volumes ``[N, 8, 16, 16]`` whose class is a bright block's place (top, middle or bottom rows)."""
    rng = np.random.default_rng(seed)
    x, y, pid = [], [], []
    for p in range(patients):
        for c in range(3):
            for _ in range(per_class):
                v = rng.normal(60, 10, (8, 16, 16))
                rows = slice(1 + 5 * c, 5 + 5 * c)
                v[:, rows, 4:12] += 120
                x.append(np.clip(v, 0, 255).astype(np.uint8))
                y.append(c if not flip else rng.integers(0, 3))
                pid.append(f"p{p}")
    return np.stack(x), np.asarray(y, dtype=np.int64), np.asarray(pid)


def split(pid: np.ndarray) -> np.ndarray:
    n = len(np.unique(pid))
    part = {f"p{i}": "train" if i < n // 2 else "holdout" for i in range(n)}
    return np.array([part[p] for p in pid])


def test_faithful_synthetic_set_is_useful_and_close():
    x, y, pid = planted(8)
    syn_x, syn_y, _ = planted(4, seed=1)
    ev = volume.evaluate_volumes(x, y, pid, split(pid), syn_x, syn_y, 3, seeds=(0, 1), config=FAST, n_boot=200)
    s = ev.scalars
    assert s["utility.chance"] == pytest.approx(1 / 3)
    assert s["utility.trtr.balanced_accuracy"] > 0.9 and s["utility.tstr.balanced_accuracy"] > 0.9
    assert s["utility.tstr.balanced_accuracy_ci_low"] > 1 / 3 and "above chance" in ev.usefulness
    assert s["utility.tstr_over_trtr_ci_low"] <= s["utility.tstr_over_trtr"] <= s["utility.tstr_over_trtr_ci_high"]
    assert s["fidelity.frechet_distance"] is not None and ev.counts["holdout_patients"] == 4


def test_generator_with_random_labels_is_not_useful():
    x, y, pid = planted(8)
    syn_x, syn_y, _ = planted(4, seed=1, flip=True)  # the right pictures, the wrong classes
    ev = volume.evaluate_volumes(x, y, pid, split(pid), syn_x, syn_y, 3, seeds=(0, 1), config=FAST, n_boot=200)
    s = ev.scalars
    assert s["utility.trtr.balanced_accuracy"] > 0.9
    assert s["utility.tstr.balanced_accuracy_ci_low"] <= 1 / 3 + 0.1
    assert s["utility.trts.balanced_accuracy"] < 0.7


def test_classifier_embedding_and_prediction_shapes():
    model = volume.build_volume_classifier(3, FAST)
    x = np.zeros((5, 8, 16, 16), np.uint8)
    assert volume.embed(model, x).shape == (5, FAST.embed_dim)
    assert volume.predict(model, x).shape == (5,)
    assert volume.is_volume_card({"architecture": {"spatial_dims": 3}})
    assert not volume.is_volume_card({"architecture": {"name": "diffusion"}})


def noisy_cohort(patients: int = 44, seed: int = 0):
    """A ``VUDataset`` of ``[8, 16, 16]`` sub-volumes, one per region and patient, each its own noise (so a copy is
    findable), split by patient 50 / 25 / 25 %."""
    import pandas as pd

    from synthvu_core.data.dataset import SplitConfig, VUDataset

    rng = np.random.default_rng(seed)
    rows, imgs = [], []
    for p in range(patients):
        for level, mean in (("C3/C4", 60), ("T5/T6", 120), ("L3/L4", 180)):
            rows.append(dict(patient_id=f"p{p:02d}", level=level, region=level[0], source=f"p{p}.nii.gz",
                             center_vox_0=0, center_vox_1=0, center_vox_2=0, center_world_x=0, center_world_y=0,
                             center_world_z=0, spacing_mm=2.0, slice_mm=2.0, crop_mm=32.0))
            imgs.append(np.clip(rng.normal(mean, 30, (8, 16, 16)), 0, 255).astype(np.uint8))
    return VUDataset.from_units(np.stack(imgs), pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0))


def _labels(ds):
    return ds.labels("region", ["C", "T", "L"])


def test_pairwise_pixel_attack_finds_copied_training_patients():
    ds = noisy_cohort()
    train = ds.indices("train")
    rng = np.random.default_rng(1)
    copies = np.clip(ds.images[np.resize(train, 400)].astype(float) + rng.normal(0, 3, (400, 8, 16, 16)), 0, 255)
    out = volume.volume_privacy(ds, _labels(ds), copies.astype(np.uint8), n_boot=200, n_perm=500)
    assert out["scalars"]["auc"] > 0.95 and out["scalars"]["p_value"] < 0.05
    assert out["level"] == "leak" and "separates training from holdout" in out["text"]
    assert out["design"]["n_member_patients"] == out["design"]["n_nonmember_patients"] == 11


def test_pairwise_pixel_attack_on_an_independent_generator_has_power_and_no_signal():
    ds = noisy_cohort()
    fresh = noisy_cohort(seed=7)  # new patients of the same distribution: no member is in it
    out = volume.volume_privacy(ds, _labels(ds), fresh.images[np.resize(np.arange(len(fresh.images)), 400)],
                                n_boot=200, n_perm=500)
    s, c = out["scalars"], out["controls"]
    assert s["auc_ci_low"] <= 0.5 <= s["auc_ci_high"]
    assert out["power"]["has_power"] and c["graded_5pct"]["auc"] > s["auc"] + 0.2  # the planted copies are found
    assert c["graded_1pct"]["auc"] <= c["graded_5pct"]["auc"] <= c["graded_20pct"]["auc"]
    assert c["independent"]["auc_ci_low"] <= 0.5 <= c["independent"]["auc_ci_high"]
    assert out["level"] == "ok" and volume.PRIVACY_SCOPE in out["text"]
    assert volume.privacy_line(out).startswith("ok: no membership signal")
