"""Controls that prove the attacks work, scored with the same attacks as the generator.

* ``graded_<f>pct`` (graded positive controls, f = 1 %, 5 %, 20 %): the generator's own synthetic
  set with a fraction f of its samples replaced by lightly perturbed member VUs (member candidates,
  Gaussian noise of sigma :data:`CONTROL_NOISE` on the [-1, 1] scale, clipped). The mixtures are
  nested (the 1 % replacements are part of the 5 % ones, and so on), so a working attack's
  detection curve rises with f. An attack has power where it detects the 5 % mixture: its AUC CI on it
  lies above 0.5 (``verdicts.power_curves``).
* ``realistic_5pct`` (realistic positive control): 5 % of the generator's samples (the 5 % graded control's
  positions) replaced by VUs of the training (member) patients that are *not* among the scored candidates, with
  Gaussian noise whose expected norm equals the median distance between real near-duplicates (each
  reference VU's nearest VU of another patient, :func:`near_duplicate_scale`). It asks whether the attacks
  see a generator that memorised a member's other VUs about as closely as two real patients resemble each
  other. Reported beside the graded controls; it does not decide power.
* ``independent`` (negative control): VUs of the reference ``control`` half -- patients in neither
  candidate group, and not the half that fits the attack spaces or DOMIAS's reference -- shuffled
  and repeated to the synthetic sample size, with the same noise. Its AUC CI must cover 0.5. It
  depends on the dataset, the membership design and the attack spaces alone, not on the generator,
  so its attack scores are cached (:func:`cached_scores`) and every later generator of the dataset
  reuses them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.evaluation.encoder import as_float, cache_dir
from synthvu_core.names import (
    GRADED_FRACTIONS,
    INDEPENDENT_CONTROL,
    POWER_FRACTION,
    REALISTIC_CONTROL,
    graded_control,
)
from synthvu_core.storage import atomic_path

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset

CONTROL_NOISE = 0.05
#: Why a dataset has no independent control.
NO_CONTROL_HALF = "the dataset has no reference control half to build the independent control from"


def _definitions() -> dict[str, str]:
    out = {
        graded_control(f): (
            f"Graded positive control: the generator's synthetic set with {f:.0%} of its samples replaced by member "
            "VUs "
            f"with Gaussian noise of sigma {CONTROL_NOISE} on the [-1, 1] scale (clipped); mixtures nested across "
            "fractions. "
            + (
                "An attack has power where it detects this mixture (its patient-clustered AUC CI on it lies above "
                "0.5); only attacks with power count in verdict (a)."
                if f == POWER_FRACTION
                else "A point of the attacks' detection curves."
            )
        )
        for f in GRADED_FRACTIONS
    }
    out[REALISTIC_CONTROL] = (
        "Realistic positive control: the 5% graded control's positions filled instead with VUs of training patients "
        "that are not scored candidates, with Gaussian noise whose expected norm is the median distance from a "
        "reference VU to its nearest VU of another patient (the scale of real near-duplicates; "
        "meta.realistic_control states it). Reported beside the graded controls; it does not decide power."
    )
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
    noise = rng.standard_normal(size=x.shape, dtype=np.float32)
    noise *= CONTROL_NOISE
    noise += x
    return np.clip(noise, -1.0, 1.0, out=noise)


def graded_replacements(
    dataset: VUDataset, n_synthetic: int, member_rows: np.ndarray, fraction: float, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(positions [k], images [k, C, H, W])``: which synthetic samples the ``fraction`` control replaces, and by what.

    ``k = round(fraction * n_synthetic)``. Positions and copied members come from one seeded order
    per evaluation, so smaller fractions are nested in larger ones; members are copied once each
    before any is copied again.
    """
    k = int(round(fraction * n_synthetic))
    rng = np.random.default_rng([seed, 23])
    positions = rng.permutation(n_synthetic)[:k]  # the first draw of this generator: _positions repeats it
    members = np.asarray(member_rows)[rng.permutation(len(member_rows))]
    if k == 0 or len(members) == 0:
        return np.empty(0, dtype=np.int64), np.empty((0, *dataset.images.shape[1:]), dtype=np.float32)
    rows = np.resize(members, k)
    return positions.astype(np.int64), _perturb(dataset.images[rows], np.random.default_rng([seed, 29]))


def near_duplicate_scale(dataset: VUDataset, rows: np.ndarray, *, limit: int = 400, seed: int = 0) -> float | None:
    """The median pixel distance (on the [-1, 1] scale) from a VU of ``rows`` to its nearest VU of another patient
    among ``rows`` (at most ``limit`` VUs, drawn seeded); None with fewer than two patients."""
    rows = np.asarray(rows)
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng([seed, 37]).choice(rows, size=limit, replace=False))
    pid = dataset.units["patient_id"].astype(str).to_numpy()[rows]
    if len(set(pid)) < 2:
        return None
    x = as_float(dataset.images[rows]).reshape(len(rows), -1).astype(np.float64)
    sq = (x**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    d2[pid[:, None] == pid[None, :]] = np.inf
    return float(np.median(np.sqrt(d2.min(1))))


def realistic_replacements(
    dataset: VUDataset, n_synthetic: int, source_rows: np.ndarray, scale: float, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(positions [k], images [k, C, H, W])``: the 5 % control's positions filled with ``source_rows`` VUs plus
    Gaussian noise of expected norm ``scale`` (sigma = scale / sqrt(VU size)), clipped to [-1, 1]."""
    k = int(round(POWER_FRACTION * n_synthetic))
    positions = np.random.default_rng([seed, 23]).permutation(n_synthetic)[:k].astype(np.int64)
    rng = np.random.default_rng([seed, 41])
    src = np.asarray(source_rows)[rng.permutation(len(source_rows))]
    if len(positions) == 0 or len(src) == 0:
        return np.empty(0, dtype=np.int64), np.empty((0, *dataset.images.shape[1:]), dtype=np.float32)
    x = as_float(dataset.images[np.resize(src, len(positions))])
    sigma = scale / np.sqrt(x[0].size)
    noisy = x + sigma * rng.standard_normal(size=x.shape, dtype=np.float32)
    return positions, np.clip(noisy, -1.0, 1.0, out=noisy)


def independent_samples(
    dataset: VUDataset, rows: np.ndarray, n: int, *, seed: int = 0
) -> tuple[np.ndarray | None, str | None]:
    """``(images float32 [n, C, H, W], None)`` of the negative control from ``rows``, or ``(None, reason)``."""
    rows = np.asarray(rows)
    if len(rows) == 0:
        return None, NO_CONTROL_HALF
    rng = np.random.default_rng([seed, 2])
    order = np.concatenate([rows[rng.permutation(len(rows))] for _ in range(int(np.ceil(n / len(rows))))])[:n]
    return _perturb(dataset.images[np.sort(order)], rng), None


#: Modules whose code decides the independent control's scores: a change to any of them starts a new cache entry.
_SCORE_MODULES: tuple[str, ...] = ("attacks", "controls", "embedding", "encoder", "privacy", "pruned")

Scores = tuple[dict[str, np.ndarray], dict[str, str]]  # ({"attack/space": scores [n]}, {"attack/space": why skipped})


def _code_digest() -> str:
    """The scoring modules' source and the libraries' versions (:func:`.provenance.code_digest`)."""
    from synthvu_core.evaluation.provenance import code_digest

    return code_digest(_SCORE_MODULES)


def control_cache_key(parts: dict[str, Any]) -> str:
    """A cache key of ``parts`` (JSON-able settings and array digests), the scoring code and its libraries."""
    blob = json.dumps({**parts, "code": _code_digest()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def array_digest(*arrays: np.ndarray) -> str:
    """A short digest of arrays' dtypes, shapes and bytes (for cache keys)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes() if a.dtype.kind != "U" else "\n".join(a.tolist()).encode())
    return h.hexdigest()[:16]


def cached_scores(key: str, compute: Callable[[], Scores], *, n: int, enabled: bool = True) -> Scores:
    """``compute()``, kept under ``<cache>/controls/<key>.npz`` with a ``.json`` of the skipped attacks.

    Written atomically (JSON first, then the scores); read without pickle. An entry that cannot be read, or
    whose scores are not ``n`` finite values each, is recomputed, never trusted.

    Args:
        key: from :func:`control_cache_key`.
        compute: makes ``(scores, skipped)`` when the cache has no entry.
        n: candidates scored (the length of every score array).
        enabled: False computes and keeps nothing.
    """
    path = cache_dir() / "controls" / f"{key}.npz"
    if enabled and path.is_file():
        try:
            skipped = dict(json.loads(path.with_suffix(".json").read_text()))
            with np.load(path, allow_pickle=False) as z:
                scores = {k.replace("__", "/"): z[k] for k in z.files}
            if scores and all(v.shape == (n,) and np.isfinite(v).all() for v in scores.values()):
                return scores, skipped
        except Exception:  # noqa: BLE001 - a damaged entry is recomputed
            pass
    scores, skipped = compute()
    if enabled:
        with atomic_path(path.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(skipped))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **{k.replace("/", "__"): np.asarray(v) for k, v in scores.items()})
    return scores, skipped
