"""Controls that prove the attacks work, scored with the same attacks as the generator.

* ``graded_<f>pct`` (graded positive controls, f = 1 %, 5 %, 20 %): the generator's own synthetic
  set with a fraction f of its samples replaced by lightly perturbed member VUs (member candidates,
  Gaussian noise of sigma :data:`CONTROL_NOISE` on the [-1, 1] scale, clipped). The mixtures are
  nested (the 1 % replacements are part of the 5 % ones, and so on), so a working attack's
  detection curve rises with f. Power is the rise of an attack's AUC on a mixture over its AUC on the
  generator's own samples (``verdicts.power_curves``): it has power where the 5 % rise's CI lies above 0.
* ``independent`` (negative control): VUs of the reference ``control`` half -- patients in neither
  candidate group, and not the half that fits the attack spaces or DOMIAS's reference -- shuffled
  and repeated to the synthetic sample size, with the same noise. Its AUC CI must cover 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthvu_core.evaluation.encoder import as_float
from synthvu_core.names import GRADED_FRACTIONS, INDEPENDENT_CONTROL, POWER_FRACTION, graded_control

CONTROL_NOISE = 0.05


def _definitions() -> dict[str, str]:
    out = {
        graded_control(f): (
            f"Graded positive control: the generator's synthetic set with {f:.0%} of its samples replaced by member "
            "VUs "
            f"with Gaussian noise of sigma {CONTROL_NOISE} on the [-1, 1] scale (clipped); mixtures nested across "
            "fractions. "
            + (
                "An attack has power where this mixture raises its AUC above its AUC on the generator's own samples "
                "(paired rise CI above 0)."
                if f == POWER_FRACTION
                else "A point of the attacks' detection curves."
            )
        )
        for f in GRADED_FRACTIONS
    }
    out[INDEPENDENT_CONTROL] = (
        "Negative control (independent generator): VUs of the reference control half (patients in neither candidate "
        "group, "
        "disjoint from the half that fits the attack spaces and DOMIAS's reference), shuffled and repeated to the "
        "synthetic "
        f"sample size, with Gaussian noise of sigma {CONTROL_NOISE} (clipped). Its AUC CI must cover 0.5."
    )
    return out


DEFINITIONS: dict[str, str] = _definitions()


def _perturb(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = as_float(images)
    return np.clip(x + rng.normal(0.0, CONTROL_NOISE, size=x.shape).astype(np.float32), -1.0, 1.0)


def graded_replacements(
    dataset: Any, n_synthetic: int, member_rows: np.ndarray, fraction: float, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(positions [k], images [k, C, H, W])``: which synthetic samples the ``fraction`` control replaces, and by what.

    ``k = round(fraction * n_synthetic)``. Positions and copied members come from one seeded order
    per evaluation, so smaller fractions are nested in larger ones; members are copied once each
    before any is copied again.
    """
    k = int(round(fraction * n_synthetic))
    rng = np.random.default_rng([seed, 23])
    positions = rng.permutation(n_synthetic)[:k]
    members = np.asarray(member_rows)[rng.permutation(len(member_rows))]
    if k == 0 or len(members) == 0:
        return np.empty(0, dtype=np.int64), np.empty((0, *dataset.images.shape[1:]), dtype=np.float32)
    rows = np.resize(members, k)
    return positions.astype(np.int64), _perturb(dataset.images[rows], np.random.default_rng([seed, 29]))


def independent_samples(
    dataset: Any, rows: np.ndarray, n: int, *, seed: int = 0
) -> tuple[np.ndarray | None, str | None]:
    """``(images float32 [n, C, H, W], None)`` of the negative control from ``rows``, or ``(None, reason)``."""
    rows = np.asarray(rows)
    if len(rows) == 0:
        return None, "the dataset has no reference control half to build the independent control from"
    rng = np.random.default_rng([seed, 2])
    order = np.concatenate([rows[rng.permutation(len(rows))] for _ in range(int(np.ceil(n / len(rows))))])[:n]
    return _perturb(dataset.images[np.sort(order)], rng), None
