"""The black-box attacks in spaces fitted away from the candidates, scored for any synthetic set.

Spaces: ``pixel`` (flattened VUs), ``embedding`` (penultimate layer of a VU-position classifier
trained on the reference ``fit`` half only) and ``umap`` (PCA + UMAP fitted on the reference ``fit``
half's pixels, the study's UMAP-space attack without its member bias). Candidates and synthetic VUs
are projected the same way. DOMIAS's reference density is the ``fit`` half in embedding space.

Distances between candidates and a synthetic set are held as one dense ``[n, m]`` float32 matrix
where it fits :data:`DENSE_BYTES` (built from :func:`~synthvu_core.evaluation.privacy.distance_blocks`),
so a graded control -- the same synthetic set with some samples replaced -- recomputes only the
replaced columns. Larger problems stream through ``summarise_distances`` for every set, and problems
beyond :data:`PRUNED_WORK` multiply-adds with many features (pixel space) go through
:func:`~synthvu_core.evaluation.pruned.pruned_summary` (exact nearest synthetic by certified pruning; the
median, ``eps`` and counts estimated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.evaluation.privacy import (
    DISTRIBUTION_QUANTILE,
    DistanceSummary,
    distance_blocks,
    domias_scores,
    pairwise_scores,
    summarise_distances,
)
from synthvu_core.evaluation.pruned import pruned_summary

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset

#: Largest candidate x synthetic distance matrix kept in memory per space (else streamed per set).
DENSE_BYTES = 768 * 2**20

#: Above this many multiply-adds (candidates x synthetic x features) attacks use the pruned search instead of
#: brute force (10k x 10k pixel VUs are 3.7e12: minutes on 2 cores; 100k x 100k would be hours).
PRUNED_WORK = 4e12

#: ... where VUs have at least this many features (the bounds project them on 64 axes).
PRUNED_MIN_DIM = 1024


@dataclass
class AttackSpaces:
    """Candidate features per space, the fitted encoder/projection, DOMIAS's reference embedding."""

    candidates: dict[str, np.ndarray]
    encoder: Any = None
    projection: Any = None
    reference_embedding: np.ndarray | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def features(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Synthetic ``images [m, C, H, W]`` in every space the candidates have."""
        from synthvu_core.evaluation.encoder import embed

        out = {"pixel": images}
        if "embedding" in self.candidates:
            out["embedding"] = embed(self.encoder, images)
        if "umap" in self.candidates:
            out["umap"] = self.projection.transform(images)
        return out


def fit_attack_spaces(
    dataset: VUDataset,
    candidates: np.ndarray,
    fit_rows: np.ndarray,
    *,
    scheme: str,
    classes: list[str],
    config: Any,
    seed: int = 0,
) -> AttackSpaces:
    """Fit the embedding encoder and the attack UMAP on ``fit_rows`` (reference patients) and project the candidates.

    ``config`` is an ``EvaluationConfig`` (encoder, UMAP, cache settings). The two spaces are fitted independently
    (:func:`fit_embedding_space`, :func:`fit_umap_space`; an evaluation runs them side by side) and joined by
    :func:`join_spaces`.
    """
    emb = fit_embedding_space(dataset, candidates, fit_rows, scheme=scheme, classes=classes, config=config, seed=seed)
    umap = fit_umap_space(dataset, candidates, fit_rows, config=config, seed=seed)
    return join_spaces(dataset, candidates, emb, umap)


def fit_embedding_space(
    dataset: VUDataset,
    candidates: np.ndarray,
    fit_rows: np.ndarray,
    *,
    scheme: str,
    classes: list[str],
    config: Any,
    seed: int = 0,
) -> AttackSpaces:
    """The embedding space alone: the attack encoder trained on ``fit_rows``, the candidates' and the reference's
    embeddings (or the reason it is skipped). No pixel or UMAP space: :func:`join_spaces` adds them."""
    from synthvu_core.evaluation.encoder import embed, real_classifier

    spaces = AttackSpaces({})
    labels = dataset.labels(scheme, classes)[fit_rows]
    if len(np.unique(labels[labels >= 0])) < 2:
        spaces.skipped["embedding"] = (
            f"the reference fit half ({len(fit_rows)} VUs) has fewer than two classes to train the attack encoder on"
        )
        return spaces
    spaces.encoder = real_classifier(
        dataset, scheme, classes, seed=seed, config=config.encoder, cache=config.cache, rows=fit_rows
    )
    spaces.candidates["embedding"] = embed(spaces.encoder, dataset.images[candidates])
    spaces.reference_embedding = embed(spaces.encoder, dataset.images[fit_rows])
    return spaces


def fit_umap_space(
    dataset: VUDataset, candidates: np.ndarray, fit_rows: np.ndarray, *, config: Any, seed: int = 0
) -> AttackSpaces:
    """The UMAP space alone: PCA + UMAP fitted on the pixels of ``fit_rows`` and the candidates projected (or the
    reason it is skipped)."""
    from dataclasses import replace

    from synthvu_core.evaluation.embedding import fit_umap

    spaces = AttackSpaces({})
    proj, _, _, why = fit_umap(
        dataset.images[fit_rows], None, config=replace(config.umap, joint=False, features="pixel"), seed=seed
    )
    if proj is None:
        spaces.skipped["umap"] = f"attack UMAP on the reference fit half: {why}"
    else:
        spaces.projection = proj
        spaces.candidates["umap"] = proj.transform(dataset.images[candidates])
    return spaces


def join_spaces(
    dataset: VUDataset, candidates: np.ndarray, embedding: AttackSpaces, umap: AttackSpaces
) -> AttackSpaces:
    """The pixel space and the spaces of :func:`fit_embedding_space` and :func:`fit_umap_space`, in that order (the
    order every attack and score is listed in)."""
    out = AttackSpaces({"pixel": dataset.images[candidates]}, embedding.encoder, umap.projection,
                       embedding.reference_embedding)
    for part in (embedding, umap):
        out.candidates.update(part.candidates)
        out.skipped.update(part.skipped)
    return out


# ---- distances ---------------------------------------------------------------------------------


def dense_distances(candidates: np.ndarray, synthetic: np.ndarray) -> np.ndarray | None:
    """The exact ``[n, m]`` float32 distance matrix, or None where it exceeds :data:`DENSE_BYTES`."""
    n, m = len(candidates), len(synthetic)
    if n * m * 4 > DENSE_BYTES or n == 0 or m == 0:
        return None
    out = np.empty((n, m), dtype=np.float32)
    for start, d in distance_blocks(candidates, synthetic):
        out[start : start + len(d)] = d
    return out


def summary_of_matrix(d: np.ndarray, quantile: float) -> DistanceSummary:
    """What ``summarise_distances`` returns, from a dense matrix (numpy's linear quantile, counts ``<= eps``)."""
    n, m = d.shape
    nearest = d.argmin(1)
    lo_k, hi_k = (m - 1) // 2, m // 2
    part = np.partition(d, (lo_k, hi_k), axis=1)
    median = 0.5 * (part[:, lo_k].astype(np.float64) + part[:, hi_k])
    flat = d.ravel()
    pos = quantile * (flat.size - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, flat.size - 1)
    vals = np.partition(flat, (lo, hi))
    eps = float(vals[lo]) * (1 - (pos - lo)) + float(vals[hi]) * (pos - lo)
    out = DistanceSummary(d_min=d[np.arange(n), nearest].astype(np.float64), nearest=nearest, median=median)
    out.eps[quantile] = eps
    out.counts[quantile] = (d <= eps).sum(1).astype(np.float64)
    return out


@dataclass
class SyntheticSet:
    """One synthetic set as the attacks see it: features per space and dense distances (where kept)."""

    features: dict[str, np.ndarray | None]
    distances: dict[str, np.ndarray | None]

    @classmethod
    def of(cls, spaces: AttackSpaces, images: np.ndarray) -> SyntheticSet:
        feats = spaces.features(images)
        return cls(feats, {s: dense_distances(spaces.candidates[s], feats[s]) for s in spaces.candidates})

    def replaced(self, spaces: AttackSpaces, idx: np.ndarray, images: np.ndarray) -> SyntheticSet:
        """This set with samples ``idx`` replaced by ``images`` (only the new columns are computed).

        Pixel features are not copied where the dense distances stand in for them.
        """
        new = spaces.features(images)
        feats: dict[str, np.ndarray | None] = {}
        dists: dict[str, np.ndarray | None] = {}
        for s, f in self.features.items():
            d = self.distances.get(s)
            if d is not None:
                d = d.copy()
                d[:, idx] = dense_distances(spaces.candidates[s], new[s])
            dists[s] = d
            if s == "pixel" and d is not None:
                feats[s] = None
                continue
            feats[s] = np.array(f, copy=True)
            feats[s][idx] = _to_dtype(new[s], feats[s])
        return SyntheticSet(feats, dists)

    def summary(self, spaces: AttackSpaces, space: str, quantile: float, chunk: int | None = None) -> DistanceSummary:
        d = self.distances.get(space)
        if d is not None:
            return summary_of_matrix(d, quantile)
        cand, syn = spaces.candidates[space], self.features[space]
        dim = int(np.prod(np.shape(syn)[1:]))
        if dim >= PRUNED_MIN_DIM and len(cand) * len(syn) * dim > PRUNED_WORK:
            return pruned_summary(cand, syn, quantile=quantile)[0]
        return summarise_distances(cand, syn, quantiles=(quantile,), chunk=chunk)


def _to_dtype(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    from synthvu_core.data.dataset import to_uint8

    if like.dtype == np.uint8 and x.dtype != np.uint8:
        return to_uint8(x)
    return x.astype(like.dtype, copy=False)


def black_box_scores(
    spaces: AttackSpaces,
    synthetic: SyntheticSet,
    *,
    domias_dims: int = 5,
    domias_min_points: int = 20,
    chunk: int | None = None,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """Scores ``[n]`` of every black-box attack in every space: ``({"attack/space": scores}, arrays, skipped)``."""
    scores: dict[str, np.ndarray] = {}
    arrays: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for space in spaces.candidates:
        q = DISTRIBUTION_QUANTILE.get(space, 0.01)
        summ = synthetic.summary(spaces, space, q, chunk)
        scores[f"pairwise/{space}"], ratio = pairwise_scores(summ)
        arrays.update(
            {
                f"pairwise/{space}/ratio": ratio,
                f"pairwise/{space}/d_min": summ.d_min,
                f"pairwise/{space}/nearest": summ.nearest,
            }
        )
        scores[f"distribution/{space}"] = summ.counts[q]
        arrays[f"distribution/{space}/eps"] = np.array([summ.eps[q]])
    for space, why in spaces.skipped.items():
        skipped[f"pairwise/{space}"] = skipped[f"distribution/{space}"] = why
    if "embedding" not in spaces.candidates:
        skipped["domias/embedding"] = spaces.skipped.get("embedding", "no embedding space")
    else:
        s, why = domias_scores(
            spaces.candidates["embedding"],
            synthetic.features["embedding"],
            spaces.reference_embedding,
            dims=domias_dims,
            min_points=domias_min_points,
            seed=seed,
        )
        if s is None:
            skipped["domias/embedding"] = why or "not computed"
        else:
            scores["domias/embedding"] = s
    return scores, arrays, skipped
