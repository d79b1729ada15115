"""One evaluation run: a context computed from real data, then a graph of tasks on two workers.

``run_evaluation`` prepares an :class:`EvaluationContext` -- the real classifiers of the utility
split, the study's UMAP overlay, the balanced membership design and the attack spaces fitted on the
reference ``fit`` half -- and runs the stages. Each stage returns a :class:`Part` (scalars, reasons
for None, arrays, notes, meta, control reports); the parts are merged in a fixed order and every task
is timed into its stage's entry of ``meta.timings_s`` / ``cpu_timings_s``.

The work is split into tasks (:func:`evaluation_tasks`): one real classifier per utility seed, one TSTR
training per seed, TRTR/TRTS per seed, the overlay, the attack encoder and the attack UMAP, privacy, each
control, ... each waiting only on what it reads. With ``EvaluationConfig.concurrent`` two workers (the
caller and one helper thread) run them, always the ready task with the longest chain still ahead of it
first (:mod:`synthvu_core.evaluation.schedule`), so both cores stay busy to the end; without it the
same tasks run one after another. Every task is seeded on its own and every library runs one thread
either way (:mod:`synthvu_core.evaluation.threads`), so the report is the same either way, in any order
and on any number of cores.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.errors import ReportError
from synthvu_core.evaluation.design import MembershipDesign
from synthvu_core.evaluation.embedding import UMAPConfig
from synthvu_core.evaluation.encoder import EncoderConfig
from synthvu_core.evaluation.privacy import AttackResult, PrivacyConfig
from synthvu_core.evaluation.schedule import Task, run_tasks
from synthvu_core.evaluation.threads import fixed_threads

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.evaluation.attacks import AttackSpaces, SyntheticSet
    from synthvu_core.evaluation.cohort import CohortTest
    from synthvu_core.evaluation.embedding import UMAPProjection
    from synthvu_core.evaluation.inference import PermutationTest
    from synthvu_core.models.acgan import Discriminator
    from synthvu_core.records import Report


@dataclass(frozen=True)
class EvaluationConfig:
    """Settings of one evaluation run."""

    scheme: str = "region"
    candidates_per_group: int | None = 1000  # member VUs at most
    nonmembers_per_group: int | None = 5000  # non-member VUs at most (for speed only; None: every holdout VU)
    encoder: EncoderConfig = EncoderConfig()
    umap: UMAPConfig = UMAPConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    prdc_k: int = 5
    cache: bool = True
    #: 5 classifier seeds: each adds about 18 s (wall, 2 cores) to a cached evaluation of the 2k x 5k benchmark, so
    #: 5 keeps it within 120 s where 10 would not; the patient bootstrap carries the holdout's share of the interval.
    utility_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    n_perm: int = 5000
    overlay_synthetic: int = 2000  # synthetic VUs projected into the study's UMAP overlay (a figure only)
    concurrent: bool = True  # two workers (the caller and a helper thread) share the tasks (same numbers)


_TIMER_LOCK = threading.Lock()


@contextmanager
def timer(timings: dict[str, float], name: str, cpu: dict[str, float] | None = None) -> Iterator[None]:
    """Add the wall-clock seconds spent in the block to ``timings[name]`` (and the CPU seconds of the calling
    thread to ``cpu[name]``: with two workers, process CPU would count the other worker too)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        wall, used = time.perf_counter() - t0, time.thread_time() - c0
        with _TIMER_LOCK:
            timings[name] = round(timings.get(name, 0.0) + wall, 3)
            if cpu is not None:
                cpu[name] = round(cpu.get(name, 0.0) + used, 3)


@dataclass
class Part:
    """What a stage adds to the report."""

    scalars: dict[str, float | None] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    controls: dict[str, tuple[Part, str]] = field(default_factory=dict)

    def merge(self, other: Part) -> None:
        for name in ("scalars", "missing", "arrays", "notes", "meta", "controls"):
            getattr(self, name).update(getattr(other, name))

    def add(self, key: str, value: float | None, why: str | None = None) -> None:
        self.scalars[key] = value
        if value is None:
            self.missing[key] = why or "not computed"


@dataclass
class EvaluationContext:
    """Everything computed from real data alone.

    The basis (classes, labels, utility rows) is set first; the tasks fill in the real classifiers (one per
    utility seed), the holdout embedding, the overlay, the design and the attack spaces. A task reads only
    what the tasks it waits on have made (:func:`evaluation_tasks`).
    """

    classes: list[str]
    labels: np.ndarray  # [N] dataset rows -> class (-1: not in classes)
    util_train: np.ndarray  # utility split rows (the dataset's own split)
    util_holdout: np.ndarray
    util_split: np.ndarray  # split name of every dataset row under the utility split
    real_classifiers: list[Any] = field(default_factory=list)  # one per utility seed (None until trained)
    emb_holdout: np.ndarray | None = None  # the seed-0 classifier's embedding of the utility holdout
    overlay: UMAPProjection | None = None  # study UMAP (fit on real train) or None
    overlay_reason: str | None = None
    overlay_rows: np.ndarray | None = None
    overlay_coords: np.ndarray | None = None
    design: MembershipDesign | None = None
    spaces: Any = None  # AttackSpaces
    space_parts: dict[str, AttackSpaces] = field(default_factory=dict)  # "embedding" / "umap", until joined
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)

    @property
    def classifiers(self) -> list[Any]:
        """The real classifiers, one per utility seed (every one trained: read after their tasks)."""
        if any(c is None for c in self.real_classifiers) or not self.real_classifiers:
            raise RuntimeError("the real classifiers are read before they are trained")
        return self.real_classifiers

    @property
    def first_classifier(self) -> Any:
        """The seed-0 real classifier (the embedding of fidelity and of an embedding overlay)."""
        if not self.real_classifiers or self.real_classifiers[0] is None:
            raise RuntimeError("the first real classifier is read before it is trained")
        return self.real_classifiers[0]


@dataclass
class Job:
    """One synthetic set under evaluation and what tasks hand to the tasks that wait on them (``state``)."""

    dataset: VUDataset
    images: np.ndarray
    labels: np.ndarray
    discriminator: Discriminator | None
    config: EvaluationConfig
    seed: int
    meta: dict[str, Any]
    controls: bool
    utility_dataset: VUDataset | None = None
    tstr_extra: tuple[np.ndarray, np.ndarray] | None = None  # more synthetic VUs, for the TSTR training set only
    state: dict[str, Any] = field(default_factory=dict)


def basis_context(
    dataset: VUDataset, config: EvaluationConfig, *, classes: list[str] | None = None,
    utility_dataset: VUDataset | None = None,
) -> EvaluationContext:
    """Classes, labels and the utility rows: what every task reads.

    ``dataset`` carries the generator's split (members = its train patients); ``utility_dataset``
    (default ``dataset``) the dataset's own split, which fixes TRTR, the holdout and the TSTR size
    for every generator of the dataset.
    """
    util = utility_dataset if utility_dataset is not None else dataset
    classes = list(classes or dataset.classes(config.scheme))
    return EvaluationContext(
        classes,
        dataset.labels(config.scheme, classes),
        util.indices("train"),
        _utility_holdout(util, dataset),
        util.units["split"].to_numpy().astype(str),
    )


def train_real_classifier(ctx: EvaluationContext, util: VUDataset, config: EvaluationConfig, i: int) -> None:
    """The real classifier of utility seed ``config.utility_seeds[i]`` (cached per dataset), into ``ctx``."""
    from synthvu_core.evaluation.encoder import real_classifier

    ctx.real_classifiers[i] = real_classifier(
        util, config.scheme, ctx.classes, seed=config.utility_seeds[i], config=config.encoder, cache=config.cache
    )


def embed_holdout(ctx: EvaluationContext, util: VUDataset) -> None:
    """The seed-0 real classifier's embedding of the utility holdout, into ``ctx`` (fidelity's real side)."""
    from synthvu_core.evaluation.encoder import embed

    ctx.emb_holdout = embed(ctx.first_classifier, util.images[ctx.util_holdout])


def fit_overlay(ctx: EvaluationContext, util: VUDataset, config: EvaluationConfig, seed: int) -> None:
    """The study's UMAP overlay (fit on the real utility train split, the holdout projected), into ``ctx``."""
    from synthvu_core.evaluation.embedding import fit_umap
    from synthvu_core.evaluation.encoder import embed

    train, holdout = ctx.util_train, ctx.util_holdout
    ctx.overlay_rows = np.concatenate([train, holdout])
    feats = (
        (lambda r: util.images[r])
        if config.umap.features == "pixel"
        else (lambda r: embed(ctx.first_classifier, util.images[r]))
    )
    if not config.umap.joint:
        ctx.overlay, c_train, _, ctx.overlay_reason = fit_umap(feats(train), None, config=config.umap, seed=seed)
        if ctx.overlay is not None:
            ctx.overlay_coords = np.concatenate([c_train, ctx.overlay.transform(feats(holdout))])


def fit_design(ctx: EvaluationContext, dataset: VUDataset, config: EvaluationConfig, seed: int) -> None:
    """The balanced membership design (candidates, reference fit and control halves), into ``ctx``."""
    from synthvu_core.evaluation.design import membership_design

    ctx.design = membership_design(
        dataset, ctx.labels, config.candidates_per_group, seed, nonmember_cap=config.nonmembers_per_group
    )


def fit_space(ctx: EvaluationContext, dataset: VUDataset, config: EvaluationConfig, seed: int, space: str) -> None:
    """One attack space fitted on the design's reference fit half (``"embedding"``: the attack encoder;
    ``"umap"``: PCA + UMAP), into ``ctx.space_parts`` until :func:`join_attack_spaces`."""
    from synthvu_core.evaluation.attacks import fit_embedding_space, fit_umap_space

    d = ctx.design
    if space == "embedding":
        ctx.space_parts[space] = fit_embedding_space(
            dataset, d.candidates, d.fit_rows, scheme=config.scheme, classes=ctx.classes, config=config, seed=seed
        )
    else:
        ctx.space_parts[space] = fit_umap_space(dataset, d.candidates, d.fit_rows, config=config, seed=seed)


def join_attack_spaces(ctx: EvaluationContext, dataset: VUDataset) -> None:
    """The attack spaces (pixel, embedding, UMAP, in that order), into ``ctx.spaces``."""
    from synthvu_core.evaluation.attacks import join_spaces

    ctx.spaces = join_spaces(dataset, ctx.design.candidates, ctx.space_parts["embedding"], ctx.space_parts["umap"])


def _utility_holdout(util: VUDataset, dataset: VUDataset) -> np.ndarray:
    """The utility holdout, without any patient the generator was trained on."""
    holdout = util.indices("holdout")
    if util is dataset:
        return holdout
    trained = set(dataset.patients("train"))
    pid = util.units["patient_id"].astype(str).to_numpy()
    return holdout[~np.isin(pid[holdout], sorted(trained))]


# ---- stages ------------------------------------------------------------------------------------


def _holdout_groups(ctx: EvaluationContext, util: VUDataset) -> np.ndarray:
    return util.units["patient_id"].astype(str).to_numpy()[ctx.util_holdout]


def _holdout_sources(ctx: EvaluationContext, util: VUDataset) -> np.ndarray | None:
    """The source of each holdout row the utility classifiers score (labels inside the scheme), or None where the
    dataset records no sources."""
    from synthvu_core.names import SOURCE_COLUMN

    if SOURCE_COLUMN not in util.units.columns:
        return None
    y = ctx.labels[ctx.util_holdout]
    keep = (y >= 0) & (y < len(ctx.classes))
    return util.units[SOURCE_COLUMN].astype(str).to_numpy()[ctx.util_holdout][keep]


def utility_real_seed(ctx: EvaluationContext, job: Job, i: int) -> None:
    """TRTR and TRTS of the real classifier of utility seed ``i``, into ``job.state["utility_real"]``."""
    from synthvu_core.evaluation.utility import real_seed

    util = job.utility_dataset or job.dataset
    job.state["utility_real"][i] = real_seed(
        ctx.real_classifiers[i], util.images[ctx.util_holdout], ctx.labels[ctx.util_holdout], job.images, job.labels,
        len(ctx.classes),
    )


def utility_tstr_seed(ctx: EvaluationContext, job: Job, i: int) -> None:
    """TSTR of utility seed ``i`` (its classifier trained on the matched synthetic subset), into
    ``job.state["utility_tstr"]``."""
    from synthvu_core.evaluation.utility import tstr_pool_labels, tstr_seed

    util = job.utility_dataset or job.dataset
    job.state["utility_tstr"][i] = tstr_seed(
        job.images, tstr_pool_labels(job.labels, job.tstr_extra), job.tstr_extra, ctx.labels[ctx.util_train],
        util.images[ctx.util_holdout], ctx.labels[ctx.util_holdout], len(ctx.classes), job.config.encoder,
        job.config.utility_seeds[i],
    )


def utility_release_seed(ctx: EvaluationContext, job: Job, i: int) -> None:
    """TSTR of utility seed ``i`` trained on the whole synthetic set (where it is read), into
    ``job.state["utility_release"]``."""
    from synthvu_core.evaluation.release_utility import release_size, release_subset
    from synthvu_core.evaluation.utility import tstr_pool_labels, tstr_seed

    util = job.utility_dataset or job.dataset
    pool = tstr_pool_labels(job.labels, job.tstr_extra)
    train = ctx.labels[ctx.util_train]
    if release_size(train, pool, len(ctx.classes))[1] is None:
        job.state["utility_release"][i] = tstr_seed(
            job.images, pool, job.tstr_extra, train, util.images[ctx.util_holdout], ctx.labels[ctx.util_holdout],
            len(ctx.classes), job.config.encoder, job.config.utility_seeds[i], subset_of=release_subset,
        )


def _release(ctx: EvaluationContext, job: Job, groups: np.ndarray | None
             ) -> tuple[dict[str, float | None], dict[str, str], dict[str, np.ndarray]]:
    """The whole-synthetic-set reading of the utility stage (or its reasons where it is not read)."""
    from synthvu_core.evaluation.release_utility import not_read, release_part, release_size
    from synthvu_core.evaluation.utility import tstr_pool_labels

    seeds = job.config.utility_seeds
    train = ctx.labels[ctx.util_train]
    why = release_size(train, tstr_pool_labels(job.labels, job.tstr_extra), len(ctx.classes))[1]
    if why is not None:
        return {}, not_read(why), {}
    return release_part([job.state["utility_real"][i] for i in range(len(seeds))],
                        [job.state["utility_release"][i] for i in range(len(seeds))],
                        train, ctx.labels[ctx.util_holdout], len(ctx.classes), seeds, groups)


def stage_utility(ctx: EvaluationContext, job: Job) -> Part:
    """TRTR, TSTR, TRTS over the utility seeds: mean and 95 % CI (from the per-seed tasks' results)."""
    from synthvu_core.evaluation.utility import PATIENT_SEED_INTERVAL, utility_result

    util = job.utility_dataset or job.dataset
    seeds = job.config.utility_seeds
    groups = _holdout_groups(ctx, util)
    u = utility_result(
        [job.state["utility_real"][i] for i in range(len(seeds))],
        [job.state["utility_tstr"][i] for i in range(len(seeds))],
        ctx.labels[ctx.util_train], ctx.labels[ctx.util_holdout], len(ctx.classes), seeds, groups,
    )
    s, r = u.scalars()
    by_source = _holdout_sources(ctx, util)
    if by_source is not None:
        from synthvu_core.evaluation.source_utility import source_scalars

        more, why = source_scalars(u, by_source)
        s, r = {**s, **more}, {**r, **why}
    more, why, release_arrays = _release(ctx, job, groups)
    s, r = {**s, **more}, {**r, **why}
    part = Part(s, r, {**u.arrays(len(ctx.classes)), **release_arrays},
                {f"utility.{k}": v for k, v in u.notes.items()})
    part.meta["utility"] = {
        "seeds": list(seeds),
        "tstr_train_size": u.tstr_train_size,
        "n_train": int(len(ctx.util_train)),
        "n_holdout": int(len(ctx.util_holdout)),
        "holdout_patients": int(len(set(groups))),
        "split": "the dataset's own split (shared by every generator of the dataset)",
        "interval": PATIENT_SEED_INTERVAL,
        "n_boot": u.n_boot,
        "tstr_extra_vus": 0 if job.tstr_extra is None else int(len(job.tstr_extra[1])),
    }
    part.meta["tstr_train_size"] = u.tstr_train_size
    return part


def stage_fidelity(ctx: EvaluationContext, job: Job) -> Part:
    """Fréchet distance and PRDC in the real classifier's embedding; PRDC on equal real and synthetic counts."""
    from synthvu_core.evaluation.encoder import embed
    from synthvu_core.evaluation.fidelity import fidelity_scores

    emb_syn = embed(ctx.first_classifier, job.images)
    part = Part()
    if not getattr(ctx.first_classifier, "trained", True):
        part.notes["embedding"] = (
            "fewer than two classes in the real train split: the embedding is an untrained (random) convolutional "
            "feature map"
        )
    hold_lab = ctx.labels[ctx.util_holdout]
    groups = [("fidelity", np.ones(len(hold_lab), bool), np.ones(len(job.labels), bool))]
    groups += [(f"fidelity.position.{name}", hold_lab == c, job.labels == c) for c, name in enumerate(ctx.classes)]
    for prefix, rmask, smask in groups:
        f, r = fidelity_scores(ctx.emb_holdout[rmask], emb_syn[smask], k=job.config.prdc_k, seed=job.seed)
        for k, v in f.items():
            part.add(f"{prefix}.{k}", v, r.get(k))
    part.arrays["fidelity/position/classes"] = np.array(ctx.classes, dtype=str)
    _source_part(ctx, job, part)
    part.arrays["embedding/real"] = ctx.emb_holdout
    part.arrays["embedding/real_index"] = ctx.util_holdout
    part.arrays["embedding/synthetic"] = emb_syn
    return part


def _source_part(ctx: EvaluationContext, job: Job, part: Part) -> None:
    """Each source's share of the generator's real train VUs and of the samples (datasets with two or more
    sources); a warning per source the samples under-represent (see ``fidelity.source_shares``)."""
    from synthvu_core.evaluation.fidelity import source_shares
    from synthvu_core.names import SOURCE_COLUMN

    ds, util = job.dataset, job.utility_dataset if job.utility_dataset is not None else job.dataset
    if SOURCE_COLUMN not in ds.units.columns or SOURCE_COLUMN not in util.units.columns:
        return
    train = ds.indices("train")
    sources = ds.units[SOURCE_COLUMN].astype(str).to_numpy()
    if len(set(sources[train].tolist())) < 2:
        return
    check = (util.images[ctx.util_holdout], util.units[SOURCE_COLUMN].astype(str).to_numpy()[ctx.util_holdout])
    res = source_shares(ds.images[train], sources[train], job.images, check)
    for name in res["real"]:
        part.add(f"fidelity.source.{name}.real_share", res["real"][name])
        part.add(f"fidelity.source.{name}.synthetic_share", res["synthetic"][name])
    part.meta["sources"] = res
    if res["warnings"]:
        part.notes["sources"] = "; ".join(res["warnings"])


def stage_embeddings(ctx: EvaluationContext, job: Job) -> Part:
    """The study's UMAP overlay (fit on real train; a figure only, no reported number)."""
    part = Part()
    cfg = job.config
    n = min(len(job.labels), cfg.overlay_synthetic)
    pick = np.sort(np.random.default_rng([job.seed, 31]).choice(len(job.labels), size=n, replace=False))
    real, syn, reason = None, None, ctx.overlay_reason
    from synthvu_core.evaluation.encoder import embed

    syn_feats = job.images[pick] if cfg.umap.features == "pixel" else embed(ctx.first_classifier, job.images[pick])
    if cfg.umap.joint:
        from synthvu_core.evaluation.embedding import fit_umap

        util = job.utility_dataset or job.dataset
        rf = (
            util.images[ctx.overlay_rows]
            if cfg.umap.features == "pixel"
            else embed(ctx.first_classifier, util.images[ctx.overlay_rows])
        )
        _, real, syn, reason = fit_umap(rf, syn_feats, config=cfg.umap, seed=job.seed)
    elif ctx.overlay is not None:
        real, syn = ctx.overlay_coords, ctx.overlay.transform(syn_feats)
    if real is None or syn is None:
        part.notes["umap"] = reason or "no UMAP overlay"
        return part
    part.arrays.update(
        {
            "umap/real": real,
            "umap/real_index": ctx.overlay_rows,
            "umap/real_labels": ctx.labels[ctx.overlay_rows],
            "umap/real_split": ctx.util_split[ctx.overlay_rows],
            "umap/synthetic": syn,
            "umap/synthetic_labels": job.labels[pick],
            "umap/synthetic_index": pick,
        }
    )
    part.meta["umap"] = {
        **asdict(cfg.umap),
        "fitted_on": "joint" if cfg.umap.joint else "real_train",
        "role": "overlay figure only (the study's UMAP); no attack or verdict uses it",
        "n_synthetic_projected": int(n),
    }
    return part


def _privacy_part(results: dict[str, AttackResult], skipped: dict[str, str], arrays: dict[str, np.ndarray]) -> Part:
    from synthvu_core.evaluation.verdicts import PRIVACY_METRICS

    part = Part()
    for name, res in results.items():
        attack, space = name.split("/")
        for metric in PRIVACY_METRICS:
            part.add(f"privacy.{attack}.{space}.{metric}", res.scalars.get(metric), res.reasons.get(metric))
        for a, v in res.arrays.items():
            part.arrays[f"privacy/{name}/{a}"] = v
    for name, why in skipped.items():
        attack, space = name.split("/")
        for metric in PRIVACY_METRICS:
            part.add(f"privacy.{attack}.{space}.{metric}", None, why)
    for k, v in arrays.items():
        part.arrays[f"privacy/{k}"] = v
    return part


def score_set(
    ctx: EvaluationContext, job: Job, synthetic: SyntheticSet, discriminator_scores: np.ndarray | None = None,
    permutation: bool = True,
) -> tuple[dict, dict, dict, PermutationTest | None]:
    """Every attack on one synthetic set: ``(results, skipped, arrays, permutation test)``.

    ``permutation=False`` (the controls, read by their AUC CI and rise, never by a p-value) skips the
    permutation test: ``p_value`` is then None.
    """
    scores, arrays, skipped = attack_scores(ctx, job, synthetic)
    if discriminator_scores is not None:
        scores["discriminator/pixel"] = discriminator_scores
    results, test = score_metrics(ctx, job, scores, permutation)
    return results, skipped, arrays, test


def attack_scores(
    ctx: EvaluationContext, job: Job, synthetic: SyntheticSet
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """Every black-box attack's scores on one synthetic set: ``(scores, arrays, skipped)``."""
    from synthvu_core.evaluation.attacks import black_box_scores

    cfg = job.config.privacy
    return black_box_scores(
        ctx.spaces, synthetic, domias_dims=cfg.domias_dims, domias_min_points=cfg.domias_min_points,
        chunk=cfg.chunk, seed=job.seed,
    )


def score_metrics(
    ctx: EvaluationContext, job: Job, scores: dict[str, np.ndarray], permutation: bool = True
) -> tuple[dict[str, AttackResult], PermutationTest | None]:
    """Every metric of every attack's scores (and the permutation test where asked): ``(results, test)``."""
    from synthvu_core.evaluation.inference import permutation_test
    from synthvu_core.evaluation.verdicts import attack_metrics

    cfg, d = job.config.privacy, ctx.design
    test = (
        permutation_test(scores, d.is_member, d.patient, n_perm=job.config.n_perm, seed=job.seed)
        if permutation and len(set(d.patient)) > 2
        else None
    )
    results = {
        n: attack_metrics(s, d.is_member, d.patient, test=test, name=n, n_boot=cfg.n_boot, seed=job.seed)
        for n, s in scores.items()
    }
    return results, test


def stage_privacy(ctx: EvaluationContext, job: Job) -> Part:
    """Every attack in every space on the synthetic set (and the white-box attack where D was kept)."""
    from synthvu_core.evaluation.attacks import SyntheticSet
    from synthvu_core.evaluation.privacy import discriminator_scores

    d = ctx.design
    synthetic = SyntheticSet.of(ctx.spaces, job.images)
    disc = None
    if job.discriminator is not None:
        disc = discriminator_scores(job.discriminator, job.dataset.images[d.candidates])
    results, skipped, arrays, test = score_set(ctx, job, synthetic, disc)
    if job.discriminator is None:
        skipped["discriminator/pixel"] = "no discriminator was kept with this generator"
    part = _privacy_part(results, skipped, arrays)
    job.state.update(synthetic=synthetic, results=results, test=test, cohort=_cohort_part(job, part))
    part.arrays.update(
        {
            "candidates/index": d.candidates,
            "candidates/is_member": d.is_member,
            "candidates/patient": d.patient.astype(str),
        }
    )
    closest = arrays.get("pairwise/pixel/d_min")
    if closest is not None:
        order = np.argsort(closest, kind="stable")[: job.config.privacy.n_closest]
        part.arrays.update(
            {
                "privacy/closest/candidate_index": order,
                "privacy/closest/distance": closest[order],
                "privacy/closest/synthetic_index": arrays["pairwise/pixel/nearest"][order],
                "privacy/closest/dataset_index": d.candidates[order],
            }
        )
    part.meta["membership"] = {**d.counts(), "notes": d.notes, "cohort_allows": _cohort_allows(d)}
    part.meta.update(d.counts())
    part.meta["attack_spaces"] = _space_meta(ctx)
    return part


def _cohort_part(job: Job, part: Part) -> CohortTest | None:
    """The whole-cohort nearest-patient test of the samples into ``part`` (``cohort.*``); the test, or None where the
    dataset has no training patient or no other patient."""
    from synthvu_core.evaluation.cohort import COHORT_FIELDS, cohort_test

    units = job.dataset.units
    try:
        cohort = cohort_test(job.images, job.dataset.images, units["patient_id"].to_numpy(), units["split"].to_numpy(),
                             seed=job.seed, strata=job.dataset.split_strata())
    except ValueError as err:
        for k in COHORT_FIELDS:
            part.add(f"cohort.{k}", None, str(err))
        return None
    part.scalars.update(cohort.scalars())
    return cohort


def _cohort_allows(d: MembershipDesign) -> str:
    """What this cohort's candidate set can estimate, in words."""
    from synthvu_core.evaluation.inference import MIN_FALSE_POSITIVES, estimable

    c = d.counts()
    n0, p0 = c["n_nonmembers"], c["n_nonmember_patients"]
    est = [
        name
        for name, alpha, n in (
            ("TPR at 1% FPR", 0.01, n0),
            ("TPR at 0.1% FPR", 0.001, n0),
            ("patient-level TPR at 1% FPR", 0.01, p0),
        )
        if estimable(alpha, n)
    ]
    return (
        f"{c['n_member_patients']} member and {p0} non-member patients, {c['vus_per_patient']} VUs each: AUCs with "
        f"patient-clustered CIs; {', '.join(est) if est else 'no TPR at a low FPR'} estimable (a TPR at FPR a needs "
        f"a x non-members >= {MIN_FALSE_POSITIVES}: 1,000 non-member VUs at 1%, 1,000 non-member patients at patient "
        "level)"
    )


def _space_meta(ctx: EvaluationContext) -> dict[str, str]:
    d = ctx.design
    out = {"pixel": "flattened VUs, Euclidean"}
    fit = f"{d.counts()['n_reference_fit']} VUs of the reference fit half (patients in neither candidate group)"
    out["embedding"] = (
        ctx.spaces.skipped.get("embedding") or f"penultimate layer of a VU-position classifier trained on {fit}"
    )
    out["umap"] = ctx.spaces.skipped.get("umap") or f"PCA + UMAP (the study's settings) fitted on the pixels of {fit}"
    out["domias_reference"] = fit
    out["independent_control"] = f"{d.counts()['n_reference_control']} VUs of the reference control half"
    return out


def stage_controls(ctx: EvaluationContext, job: Job) -> Part:
    """Graded positive controls and the independent control; power curves; the two verdicts."""
    from synthvu_core.evaluation.verdicts import (
        bound_is_composed,
        counted_family,
        independent_check,
        power_curves,
        private_discriminator_epsilon,
        released_discriminator_verdict,
        released_samples_verdict,
    )
    from synthvu_core.names import BLACK_BOX_ATTACKS, INDEPENDENT_CONTROL

    part = Part()
    control_results = score_controls(ctx, job, part) if job.controls else {}
    power = power_curves(control_results, job.state["results"], ctx.design.is_member, ctx.design.patient)
    part.meta["power"] = power
    results, test = job.state["results"], job.state["test"]
    black = [n for n in results if n.split("/")[0] in BLACK_BOX_ATTACKS and results[n].scalars.get("auc") is not None]
    counted = counted_family(power, black)
    independent = None
    if INDEPENDENT_CONTROL in control_results:
        independent = independent_check(
            control_results[INDEPENDENT_CONTROL], counted, ctx.design.is_member, ctx.design.patient
        )
        part.meta["independent_control"] = independent
    c = ctx.design.counts()
    part.meta["verdicts"] = {
        "released_samples": released_samples_verdict(
            results, test, power, independent, (c["n_member_patients"], c["n_nonmember_patients"]),
            job.state.get("cohort"),
        ),
        "released_discriminator": released_discriminator_verdict(
            results, test, private_discriminator_epsilon(job.meta), (c["n_member_patients"], c["n_nonmember_patients"]),
            composed=bound_is_composed(job.meta),
        ),
    }
    for metric in ("auc", "tpr_at_1pct_fpr"):
        vals = [results[n].scalars.get(metric) for n in counted if results[n].scalars.get(metric) is not None]
        why = (
            "no attack on the released samples has power on this data"
            if not counted
            else (results[counted[0]].reasons.get(metric) or "not computed")
        )
        part.add(f"privacy.worst.{metric}", max(vals) if vals else None, why)
    return part


def control_names() -> list[str]:
    """Every control, in the order they are scored, listed and reported: the graded ones, realistic, independent."""
    from synthvu_core.names import GRADED_FRACTIONS, INDEPENDENT_CONTROL, REALISTIC_CONTROL, graded_control

    return [*(graded_control(f) for f in GRADED_FRACTIONS), REALISTIC_CONTROL, INDEPENDENT_CONTROL]


def run_control(ctx: EvaluationContext, job: Job, name: str) -> None:
    """Every attack on one control (timed into ``job.state["control_timings"]``): its ``(results, skipped)`` -- or
    None where it cannot be built -- and a part with its meta, into ``job.state["controls"][name]``."""
    from synthvu_core.evaluation.controls import NO_CONTROL_HALF, graded_replacements
    from synthvu_core.names import GRADED_FRACTIONS, INDEPENDENT_CONTROL, REALISTIC_CONTROL, graded_control

    part, timings = Part(), job.state["control_timings"]
    outcome: tuple[dict[str, AttackResult], dict[str, str]] | None = None
    graded = {graded_control(f): f for f in GRADED_FRACTIONS}
    if name in graded:
        with timer(timings, name):
            members = ctx.design.candidates[ctx.design.is_member]
            pos, imgs = graded_replacements(job.dataset, len(job.labels), members, graded[name], seed=job.seed)
            scores, _, skipped = attack_scores(ctx, job, job.state["synthetic"].replaced(ctx.spaces, pos, imgs))
            outcome = (score_metrics(ctx, job, scores, permutation=False)[0], skipped)
    elif name == REALISTIC_CONTROL:
        with timer(timings, name):
            outcome = _realistic_control(ctx, job, part)
    elif name == INDEPENDENT_CONTROL and len(ctx.design.control_rows) == 0:
        part.meta.setdefault("controls_skipped", {})[INDEPENDENT_CONTROL] = NO_CONTROL_HALF
    elif name == INDEPENDENT_CONTROL:
        with timer(timings, name):
            scores, skipped = independent_scores(ctx, job)
            outcome = (score_metrics(ctx, job, scores, permutation=False)[0], skipped)
    else:
        raise ValueError(f"unknown control {name!r}")
    job.state["controls"][name] = (outcome, part)


def score_controls(ctx: EvaluationContext, job: Job, part: Part) -> dict[str, dict[str, AttackResult]]:
    """The controls' results (:func:`run_control`, run first) in :func:`control_names` order; their reports, timings
    and meta into ``part``.

    Returns control name -> attack name -> result.
    """
    from synthvu_core.evaluation.controls import DEFINITIONS

    done = job.state["controls"]
    names = [n for n in control_names() if n in done]
    spent = job.state["control_timings"]
    part.meta["control_timings_s"] = {n: spent[n] for n in names if n in spent}
    scored: dict[str, tuple[dict[str, AttackResult], dict[str, str]]] = {}
    for name in names:
        outcome, own = done[name]
        for k, v in own.meta.items():
            if k == "controls_skipped":
                part.meta.setdefault(k, {}).update(v)
            else:
                part.meta[k] = v
        if outcome is not None:
            scored[name] = outcome
    for name, (results, skipped) in scored.items():
        part.controls[name] = (_privacy_part(results, skipped, {}), DEFINITIONS[name])
    part.meta["control_definitions"] = {k: DEFINITIONS[k] for k in scored}
    return {name: results for name, (results, _) in scored.items()}


def _realistic_control(
    ctx: EvaluationContext, job: Job, part: Part
) -> tuple[dict[str, AttackResult], dict[str, str]] | None:
    """The realistic positive control's results (None, with the reason in meta, where it cannot be built)."""
    from synthvu_core.evaluation.controls import near_duplicate_scale, realistic_replacements
    from synthvu_core.names import REALISTIC_CONTROL

    d = ctx.design
    train = job.dataset.indices("train")
    train = train[ctx.labels[train] >= 0]
    source = np.setdiff1d(train, d.candidates)  # VUs of the training (member) patients that are not scored
    scale = near_duplicate_scale(job.dataset, np.concatenate([d.fit_rows, d.control_rows]), seed=job.seed)
    info = {"source_vus": int(len(source)), "near_duplicate_distance": scale}
    if len(source) == 0 or scale is None:
        why = "no VUs of the training patients outside the candidates" if len(source) == 0 else (
            "fewer than two reference patients to measure near-duplicates on")
        part.meta.setdefault("controls_skipped", {})[REALISTIC_CONTROL] = why
        part.meta["realistic_control"] = {**info, "skipped": why}
        return None
    info["text"] = (f"{len(source)} VUs of the training patients outside the candidates; noise of expected norm "
                    f"{scale:.3g} (median distance from a reference VU to its nearest VU of another patient)")
    part.meta["realistic_control"] = info
    pos, imgs = realistic_replacements(job.dataset, len(job.labels), source, scale, seed=job.seed)
    scores, _, skipped = attack_scores(ctx, job, job.state["synthetic"].replaced(ctx.spaces, pos, imgs))
    return score_metrics(ctx, job, scores, permutation=False)[0], skipped


def independent_scores(ctx: EvaluationContext, job: Job) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The independent control's black-box scores, cached per dataset, design, spaces and settings (see
    :mod:`~synthvu_core.evaluation.controls`): it does not depend on the generator."""
    from synthvu_core.evaluation.attacks import SyntheticSet
    from synthvu_core.evaluation.controls import array_digest, cached_scores, control_cache_key, independent_samples

    d, cfg = ctx.design, job.config

    def compute() -> tuple[dict[str, np.ndarray], dict[str, str]]:
        x, _ = independent_samples(job.dataset, d.control_rows, len(job.labels), seed=job.seed)
        scores, _, skipped = attack_scores(ctx, job, SyntheticSet.of(ctx.spaces, x))
        return scores, skipped

    sp = ctx.spaces
    key = control_cache_key(
        {
            "dataset": job.dataset.fingerprint,
            "design": array_digest(d.candidates, d.is_member, d.patient.astype(str), d.fit_rows, d.control_rows),
            "spaces": array_digest(
                *(np.asarray(sp.candidates[s]) for s in sorted(sp.candidates) if s != "pixel"),
                *([] if sp.reference_embedding is None else [np.asarray(sp.reference_embedding)]),
            ),
            "scheme": cfg.scheme,
            "classes": ctx.classes,
            "encoder": asdict(cfg.encoder),
            "umap": asdict(cfg.umap),
            "privacy": asdict(cfg.privacy),
            "n_synthetic": int(len(job.labels)),
            "seed": job.seed,
        }
    )
    return cached_scores(key, compute, n=len(d.candidates), enabled=cfg.cache)


def stage_dp(ctx: EvaluationContext, job: Job) -> Part:
    """The generator's differential-privacy budget, as its card records it."""
    eps = job.meta.get("dp_epsilon")
    part = Part()
    part.add(
        "dp.epsilon", None if eps is None else float(eps), "trained without differential privacy (or not recorded)"
    )
    return part


StageFn = Callable[[EvaluationContext, Job], Part]

#: The stages whose parts make the report, in the order they are merged (and drawn on the progress bar).
STAGES: tuple[tuple[str, StageFn], ...] = (
    ("embeddings", stage_embeddings),
    ("privacy", stage_privacy),
    ("controls", stage_controls),
    ("dp", stage_dp),
    ("utility", stage_utility),
    ("fidelity", stage_fidelity),
)

#: Expected CPU seconds of each kind of task on the 2,000 x 5,000 benchmark (cold): a scheduling hint only.
TASK_COSTS: dict[str, float] = {
    "classifier": 7.0, "holdout_embedding": 0.3, "tstr": 9.0, "trtr": 2.3, "utility": 0.5, "fidelity": 2.0,
    "release": 9.0,  # not read where the samples are under 5 times the real train split; more on small own data
    "overlay_fit": 11.0, "embeddings": 2.0, "design": 0.2, "attack_encoder": 6.0, "attack_umap": 4.0,
    "attack_join": 0.1, "privacy": 17.0, "graded": 4.0, "realistic": 3.5, "independent": 17.0, "controls": 0.5,
    "dp": 0.0,
}


#: The two UMAP fits (the overlay, the attack space) run one at a time: umap-learn's numba kernels hold the GIL.
UMAP_FIT = "umap_fit"


def evaluation_tasks(ctx: EvaluationContext, job: Job, util: VUDataset) -> list[Task]:
    """Every task of one evaluation, each waiting on what it reads; a stage task's value is its :class:`Part`.

    Each task is timed into its stage's entry of ``ctx.timings`` / ``ctx.cpu_timings`` (the design: nowhere).
    """
    cfg, seed, c = job.config, job.seed, TASK_COSTS
    n = len(cfg.utility_seeds)
    ctx.real_classifiers = [None] * n
    job.state.update(utility_real={}, utility_tstr={}, utility_release={}, controls={}, control_timings={})
    first = ("classifier:0",) if cfg.umap.features != "pixel" else ()

    def task(name: str, stage: str | None, fn: Callable[[], Any], after: tuple[str, ...] = (), cost: float = 1.0
             ) -> Task:
        def run() -> Any:
            if stage is None:
                return fn()
            with timer(ctx.timings, stage, ctx.cpu_timings):
                return fn()

        return Task(name, run, after, cost, stage, UMAP_FIT if name in ("overlay_fit", "attack_umap") else None)

    tasks = [
        *(task(f"classifier:{i}", "classifiers", lambda i=i: train_real_classifier(ctx, util, cfg, i),
               cost=c["classifier"]) for i in range(n)),
        task("holdout_embedding", "classifiers", lambda: embed_holdout(ctx, util), ("classifier:0",),
             c["holdout_embedding"]),
        *(task(f"tstr:{i}", "utility", lambda i=i: utility_tstr_seed(ctx, job, i), cost=c["tstr"]) for i in range(n)),
        *(task(f"release:{i}", "utility", lambda i=i: utility_release_seed(ctx, job, i), cost=c["release"])
          for i in range(n)),
        *(task(f"trtr:{i}", "utility", lambda i=i: utility_real_seed(ctx, job, i), (f"classifier:{i}",), c["trtr"])
          for i in range(n)),
        task("overlay_fit", "overlay_fit", lambda: fit_overlay(ctx, util, cfg, seed), first, c["overlay_fit"]),
        task("design", None, lambda: fit_design(ctx, job.dataset, cfg, seed), cost=c["design"]),
        task("attack_encoder", "attack_spaces", lambda: fit_space(ctx, job.dataset, cfg, seed, "embedding"),
             ("design",), c["attack_encoder"]),
        task("attack_umap", "attack_spaces", lambda: fit_space(ctx, job.dataset, cfg, seed, "umap"), ("design",),
             c["attack_umap"]),
        task("attack_join", "attack_spaces", lambda: join_attack_spaces(ctx, job.dataset),
             ("attack_encoder", "attack_umap"), c["attack_join"]),
    ]
    controls = control_names() if job.controls else []
    for name in controls:
        kind = name.split("_")[0]
        waits = ("attack_join",) if kind == "independent" else ("privacy",)
        tasks.append(task(f"control:{name}", "controls", lambda name=name: run_control(ctx, job, name), waits,
                          c.get(kind, c["graded"])))
    after = {
        "embeddings": ("overlay_fit", *first),
        "privacy": ("attack_join",),
        "controls": ("privacy", *(f"control:{name}" for name in controls)),
        "dp": (),
        "utility": (*(f"trtr:{i}" for i in range(n)), *(f"tstr:{i}" for i in range(n)),
                    *(f"release:{i}" for i in range(n))),
        "fidelity": ("holdout_embedding",),
    }
    tasks += [task(name, name, lambda fn=fn: fn(ctx, job), after[name], c[name]) for name, fn in STAGES]
    return tasks


class _Steps:
    """Stage starts of every worker on one progress bar, drawn from the calling thread only (a dashboard's bar
    cannot be drawn from a worker thread): a helper's starts wait in a queue until the caller's next draw. Each
    stage of :data:`STAGES` is drawn once, when its first task starts."""

    def __init__(self, bar: Any) -> None:
        self.bar, self.queue = bar, queue.SimpleQueue()
        self.caller = threading.get_ident()
        self.stages = {name for name, _ in STAGES}
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def started(self, task: Task) -> None:
        """Draw (or queue) the stage of ``task`` where it is the first of its stage."""
        name = task.stage
        with self.lock:
            if name not in self.stages or name in self.seen:
                name = None
            else:
                self.seen.add(name)
        if threading.get_ident() == self.caller:
            self.show(name)
        elif name is not None:
            self.queue.put(name)

    def show(self, name: str | None = None) -> None:
        names = []
        while not self.queue.empty():
            names.append(self.queue.get())
        for n in [*names, *([name] if name else [])]:
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_description(n)


def _in_fixed_threads(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with the thread counts fixed in the calling thread too (OpenMP keeps a count per thread, so
    a worker thread does not inherit the count its creator set)."""
    with fixed_threads():
        return fn(*args)


class _CallbackBar:
    """A tqdm-shaped adapter that reports each stage to ``callback(stage, done, total)`` (the dashboard's bar)."""

    def __init__(self, callback: Callable[[str, int, int], None], total: int) -> None:
        self.callback, self.total, self.n, self.stage = callback, total, 0, ""

    def set_description(self, name: str) -> None:
        self.stage = name
        self.callback(name, self.n, self.total)

    def update(self, k: int = 1) -> None:
        self.n = min(self.total, self.n + k)
        self.callback(self.stage, self.n, self.total)

    def close(self) -> None:
        if self.n < self.total:  # the bar ends full
            self.n = self.total
            self.callback("done", self.n, self.total)


def _progress(total: int, enabled: bool | Callable[[str, int, int], None]) -> Any:
    """A progress bar: tqdm for ``True``, nothing for ``False``, or a callable's adapter."""
    if callable(enabled):
        return _CallbackBar(enabled, total)
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="evaluation", unit="stage", leave=False)


def _run_tasks(job: Job, util: VUDataset, classes: list[str] | None, steps: _Steps) -> tuple[EvaluationContext, Part]:
    """Every task of :func:`evaluation_tasks` on two workers (the caller and a helper thread; one, the caller,
    without ``concurrent``); the stages' parts merged in :data:`STAGES` order."""
    config = job.config
    with fixed_threads():  # every worker: one thread per library, whatever the machine's cores (threads.py)
        ctx = basis_context(job.dataset, config, classes=classes, utility_dataset=job.utility_dataset)
        done = run_tasks(
            evaluation_tasks(ctx, job, util), workers=2 if config.concurrent else 1, started=steps.started,
            helper=_in_fixed_threads,
        )  # the helper is done before the thread counts are restored
    steps.show()
    out = Part()
    for name, _ in STAGES:
        out.merge(done[name])
    return ctx, out


def run_evaluation(
    dataset: VUDataset,
    synthetic_images: np.ndarray,
    synthetic_labels: np.ndarray,
    *,
    discriminator: Discriminator | None = None,
    config: EvaluationConfig = EvaluationConfig(),
    classes: list[str] | None = None,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    controls: bool = False,
    progress: bool | Callable[[str, int, int], None] = True,
    utility_dataset: VUDataset | None = None,
    tstr_extra: tuple[np.ndarray, np.ndarray] | None = None,
) -> Report:
    """Evaluate synthetic VUs ``[m, C, H, W]`` (float in [-1, 1] or uint8) with integer labels ``[m]``
    (indices into ``classes``, default ``dataset.classes(config.scheme)``) against a ``VUDataset``.

    ``dataset`` carries the generator's split (members = its train patients); ``utility_dataset``
    the dataset's own split for utility and fidelity (default: ``dataset``). ``controls`` adds the
    graded positive controls and the independent control. ``tstr_extra`` (images, labels): more
    synthetic VUs of the same generator, drawn on only to train TSTR on as many VUs per class as the
    real train split has. Returns a ``Report``.
    """
    from synthvu_core.evaluation.definitions import definition
    from synthvu_core.records import Report

    synthetic_labels = np.asarray(synthetic_labels, dtype=np.int64)
    if len(synthetic_images) != len(synthetic_labels):
        raise ValueError(f"{len(synthetic_images)} synthetic VUs but {len(synthetic_labels)} labels")
    if tuple(np.shape(synthetic_images)[1:]) != tuple(dataset.images.shape[1:]):
        raise ReportError(
            f"synthetic VUs have shape {list(np.shape(synthetic_images)[1:])}, the dataset "
            f"{list(dataset.images.shape[1:])}"
        )
    job = Job(
        dataset, synthetic_images, synthetic_labels, discriminator, config, seed, dict(meta or {}), controls,
        utility_dataset, tstr_extra,
    )
    util = utility_dataset if utility_dataset is not None else dataset
    bar = _progress(len(STAGES) + 1, progress)
    steps = _Steps(bar)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        if bar is not None:
            bar.set_description("context")
        ctx, out = _run_tasks(job, util, classes, steps)
    finally:
        if bar is not None:
            bar.close()
    timings.update(ctx.timings)
    cpu.update(ctx.cpu_timings)
    timings["total"] = round(time.perf_counter() - t0, 3)
    cpu["total"] = round(time.process_time() - c0, 3)  # the process: every worker and every library thread
    full_meta = _meta(ctx, job, out, timings)
    full_meta["cpu_timings_s"] = cpu
    report = Report(out.scalars, {k: definition(k) for k in out.scalars}, full_meta, _arrays=out.arrays)
    for name, (part, text) in out.controls.items():
        cmeta = {
            "model": f"control:{name}",
            "control": name,
            "control_definition": text,
            "dataset_fingerprint": dataset.fingerprint,
            "n_synthetic": int(len(synthetic_labels)),
            "missing": part.missing,
            **{k: full_meta[k] for k in _COUNT_KEYS},
        }
        report.controls[name] = Report(
            part.scalars, {k: definition(k) for k in part.scalars}, cmeta, _arrays=part.arrays
        )
    return report


_COUNT_KEYS = (
    "n_candidates",
    "n_members",
    "n_nonmembers",
    "n_member_patients",
    "n_nonmember_patients",
    "vus_per_patient",
)


def _meta(ctx: EvaluationContext, job: Job, out: Part, timings: dict[str, float]) -> dict[str, Any]:
    from synthvu_core import __version__
    from synthvu_core.evaluation.provenance import library_versions
    from synthvu_core.evaluation.threads import numeric_environment
    from synthvu_core.evaluation.tolerance_rules import default_tolerances
    from synthvu_core.records import REPORT_VERSION

    cfg, K = job.config, len(ctx.classes)
    from datetime import UTC, datetime

    return {
        "report_version": REPORT_VERSION,
        "dataset_fingerprint": job.dataset.fingerprint,
        "n_synthetic": int(len(job.labels)),
        "synthetic_seed": job.seed,
        "seed": job.seed,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": __version__,
        "libraries": library_versions(),
        "numerics": numeric_environment(),  # thread count, kernel level and BLAS architecture of this machine
        "tolerances": [list(r) for r in default_tolerances()],  # read by `report verify` (absolute, first match)
        "scheme": cfg.scheme,
        "classes": ctx.classes,
        "synthetic_class_counts": np.bincount(job.labels[job.labels >= 0], minlength=K).tolist(),
        "classifier_trained": bool(getattr(ctx.classifiers[0], "trained", True)),
        "config": {
            "candidates_per_group": cfg.candidates_per_group,
            "nonmembers_per_group": cfg.nonmembers_per_group,
            "prdc_k": cfg.prdc_k,
            "encoder": asdict(cfg.encoder),
            "privacy": asdict(cfg.privacy),
            "utility_seeds": list(cfg.utility_seeds),
            "n_perm": cfg.n_perm,
        },
        "discriminator_attack": job.discriminator is not None,
        **out.meta,
        "missing": out.missing,
        "notes": out.notes,
        "timings_s": timings,
        **job.meta,
    }
