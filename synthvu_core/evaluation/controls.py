"""Controls that prove the attacks work, evaluated with the same code as a real generator.

* ``copy`` (positive control, a leaky generator): returns training VUs with light Gaussian noise
  (sigma = 0.05 on the [-1, 1] scale, clipped): the training split is shuffled (seeded) and repeated
  until ``n`` samples are drawn, labels are the copied VUs' positions. Attacks must find it
  (pairwise AUC well above 0.9).
* ``independent`` (negative control): the same recipe applied to the dataset's ``reference`` split,
  patients in neither candidate group. Attacks must give AUC near 0.5 (bootstrap CI covering 0.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthvu_core.evaluation.encoder import as_float

CONTROL_NOISE = 0.05

DEFINITIONS: dict[str, str] = {
    "copy": (
        "Positive control (leaky generator): training-split VUs, shuffled and repeated to the synthetic sample size, "
        f"with Gaussian noise of sigma {CONTROL_NOISE} on the [-1, 1] scale (clipped). Attacks must detect it."
    ),
    "independent": (
        "Negative control (independent generator): reference-split VUs (patients in neither candidate group), "
        f"shuffled and repeated to the synthetic sample size, with Gaussian noise of sigma {CONTROL_NOISE} (clipped). "
        "Attacks must give AUC near 0.5."
    ),
}
CONTROL_SPLIT = {"copy": "train", "independent": "reference"}


def control_samples(
    dataset: Any, name: str, n: int, *, scheme: str, classes: list[str], seed: int = 0
) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """``(images float32 [n, C, H, W], labels [n], None)`` of a control, or ``(None, None, reason)``."""
    if name not in CONTROL_SPLIT:
        raise ValueError(f"unknown control {name!r}; choose one of {', '.join(CONTROL_SPLIT)}")
    rows = dataset.indices(CONTROL_SPLIT[name])
    labels = dataset.labels(scheme, classes)
    rows = rows[labels[rows] >= 0]
    if len(rows) == 0:
        return None, None, f"the dataset has no {CONTROL_SPLIT[name]} split VUs to build the {name} control from"
    rng = np.random.default_rng([seed, 1 + list(CONTROL_SPLIT).index(name)])
    order = np.concatenate([rows[rng.permutation(len(rows))] for _ in range(int(np.ceil(n / len(rows))))])[:n]
    pick = np.sort(order)  # memory-mapped reads in order; the sample order is irrelevant
    x = as_float(dataset.images[pick])
    x = np.clip(x + rng.normal(0.0, CONTROL_NOISE, size=x.shape).astype(np.float32), -1.0, 1.0)
    return x, labels[pick], None
