"""Small structured VU datasets for the evaluation tests (no generator, no real data)."""

from __future__ import annotations

import numpy as np

from synthvu_core.data.dataset import SplitConfig, VUDataset, to_uint8

LEVELS = ("C3/C4", "C5/C6", "T4/T5", "T8/T9", "L2/L3", "L4/L5")


def structured_dataset(
    n_patients: int = 30, *, shape: tuple[int, int, int] = (3, 16, 16), levels: tuple[str, ...] = LEVELS, seed: int = 0,
    split: SplitConfig = SplitConfig(0.4, 0.3, 0.3, seed=0),
) -> VUDataset:
    """Each patient has a distinct random pattern; each level adds a region pattern; VUs add small noise."""
    rng = np.random.default_rng(seed)
    region_pattern = {r: rng.normal(0, 0.25, shape) for r in "CTL"}
    images, rows = [], []
    for p in range(n_patients):
        base = rng.normal(0, 0.3, shape)
        for lev in levels:
            x = base + region_pattern[lev[0]] + rng.normal(0, 0.05, shape)
            images.append(to_uint8(np.tanh(x)))
            rows.append(
                {"patient_id": f"p{p:03d}", "level": lev, "region": lev[0], "source": f"p{p:03d}.nii.gz",
                 "center_vox_0": 0, "center_vox_1": 0, "center_vox_2": 0, "center_world_x": 0.0,
                 "center_world_y": 0.0, "center_world_z": 0.0, "spacing_mm": 1.0, "slice_mm": 2.0, "crop_mm": 64.0}
            )
    return VUDataset.from_units(np.stack(images), rows, split=split)
