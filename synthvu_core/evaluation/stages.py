"""One evaluation run: a context computed from real data, then a loop over stages.

``run_evaluation`` prepares (or reuses) an :class:`EvaluationContext` -- the real classifiers of
the utility split, the study's UMAP overlay, the balanced membership design and the attack spaces
fitted on the reference ``fit`` half -- and runs the stages in :data:`STAGES` in order. Each stage
returns a :class:`Part` (scalars, reasons for None, arrays, notes, meta, control reports); the loop
merges them and times each with one helper.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from synthvu_core.errors import ReportError
from synthvu_core.evaluation.design import MembershipDesign
from synthvu_core.evaluation.embedding import UMAPConfig
from synthvu_core.evaluation.encoder import EncoderConfig
from synthvu_core.evaluation.privacy import AttackResult, PrivacyConfig


@dataclass(frozen=True)
class EvaluationConfig:
    """Settings of one evaluation run."""

    scheme: str = "region"
    candidates_per_group: int | None = 1000
    encoder: EncoderConfig = EncoderConfig()
    umap: UMAPConfig = UMAPConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    prdc_k: int = 5
    cache: bool = True
    utility_seeds: tuple[int, ...] = (0, 1, 2)
    n_perm: int = 5000
    overlay_synthetic: int = 2000  # synthetic VUs projected into the study's UMAP overlay (a figure only)


@contextmanager
def timer(timings: dict[str, float], name: str, cpu: dict[str, float] | None = None) -> Iterator[None]:
    """Add the wall-clock seconds spent in the block to ``timings[name]`` (and the process CPU seconds to
    ``cpu[name]``)."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 3)
        if cpu is not None:
            cpu[name] = round(cpu.get(name, 0.0) + time.process_time() - c0, 3)


@dataclass
class Part:
    """What a stage adds to the report."""

    scalars: dict[str, float | None] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    controls: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: Part) -> None:
        for name in ("scalars", "missing", "arrays", "notes", "meta", "controls"):
            getattr(self, name).update(getattr(other, name))

    def add(self, key: str, value: float | None, why: str | None = None) -> None:
        self.scalars[key] = value
        if value is None:
            self.missing[key] = why or "not computed"


@dataclass
class EvaluationContext:
    """Everything computed from real data alone; reused for every synthetic set of one dataset."""

    classes: list[str]
    labels: np.ndarray  # [N] dataset rows -> class (-1: not in classes)
    util_train: np.ndarray  # utility split rows (the dataset's own split)
    util_holdout: np.ndarray
    classifiers: list[Any]  # real classifiers, one per utility seed
    emb_holdout: np.ndarray  # seed-0 classifier embedding of the utility holdout
    overlay: Any  # study UMAP (fit on real train) or None
    overlay_reason: str | None
    overlay_rows: np.ndarray
    overlay_coords: np.ndarray | None
    design: MembershipDesign
    spaces: Any  # AttackSpaces
    util_split: np.ndarray  # split name of every dataset row under the utility split
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Job:
    """One synthetic set under evaluation and what stages hand to later ones."""

    dataset: Any
    images: np.ndarray
    labels: np.ndarray
    discriminator: Any
    config: EvaluationConfig
    seed: int
    meta: dict[str, Any]
    controls: bool
    utility_dataset: Any = None
    progress: Any = None
    state: dict[str, Any] = field(default_factory=dict)


def prepare_context(
    dataset: Any,
    config: EvaluationConfig,
    *,
    classes: list[str] | None = None,
    seed: int = 0,
    utility_dataset: Any = None,
) -> EvaluationContext:
    """Real classifiers (cached per dataset), study UMAP overlay, membership design, attack spaces.

    ``dataset`` carries the generator's split (members = its train patients); ``utility_dataset``
    (default ``dataset``) the dataset's own split, which fixes TRTR, the holdout and the TSTR size
    for every generator of the dataset.
    """
    from synthvu_core.evaluation.attacks import fit_attack_spaces
    from synthvu_core.evaluation.design import membership_design
    from synthvu_core.evaluation.embedding import fit_umap
    from synthvu_core.evaluation.encoder import embed, real_classifier

    t: dict[str, float] = {}
    c: dict[str, float] = {}
    util = utility_dataset if utility_dataset is not None else dataset
    classes = list(classes or dataset.classes(config.scheme))
    labels = dataset.labels(config.scheme, classes)
    train, holdout = util.indices("train"), _utility_holdout(util, dataset)
    with timer(t, "classifiers", c):
        clfs = [
            real_classifier(util, config.scheme, classes, seed=s, config=config.encoder, cache=config.cache)
            for s in config.utility_seeds
        ]
        emb_holdout = embed(clfs[0], util.images[holdout])
    with timer(t, "overlay_fit", c):
        rows = np.concatenate([train, holdout])
        feats = (
            (lambda r: util.images[r])
            if config.umap.features == "pixel"
            else (lambda r: embed(clfs[0], util.images[r]))
        )
        proj, coords, reason = None, None, None
        if not config.umap.joint:
            proj, c_train, _, reason = fit_umap(feats(train), None, config=config.umap, seed=seed)
            if proj is not None:
                coords = np.concatenate([c_train, proj.transform(feats(holdout))])
    design = membership_design(dataset, labels, config.candidates_per_group, seed)
    with timer(t, "attack_spaces", c):
        spaces = fit_attack_spaces(
            dataset, design.candidates, design.fit_rows, scheme=config.scheme, classes=classes, config=config, seed=seed
        )
    return EvaluationContext(
        classes,
        labels,
        train,
        holdout,
        clfs,
        emb_holdout,
        proj,
        reason,
        rows,
        coords,
        design,
        spaces,
        util.units["split"].to_numpy().astype(str),
        t,
        c,
    )


def _utility_holdout(util: Any, dataset: Any) -> np.ndarray:
    """The utility holdout, without any patient the generator was trained on."""
    holdout = util.indices("holdout")
    if util is dataset:
        return holdout
    trained = set(dataset.patients("train"))
    pid = util.units["patient_id"].astype(str).to_numpy()
    return holdout[~np.isin(pid[holdout], sorted(trained))]


# ---- stages ------------------------------------------------------------------------------------


def stage_utility(ctx: EvaluationContext, job: Job) -> Part:
    """TRTR, TSTR, TRTS over the utility seeds: mean and 95 % CI."""
    from synthvu_core.evaluation.utility import utility_scores

    util = job.utility_dataset or job.dataset
    u = utility_scores(
        real_classifiers=ctx.classifiers,
        train_labels=ctx.labels[ctx.util_train],
        holdout_images=util.images[ctx.util_holdout],
        holdout_labels=ctx.labels[ctx.util_holdout],
        synthetic_images=job.images,
        synthetic_labels=job.labels,
        n_classes=len(ctx.classes),
        config=job.config.encoder,
        seeds=job.config.utility_seeds,
    )
    s, r = u.scalars()
    part = Part(s, r, u.arrays(len(ctx.classes)), {f"utility.{k}": v for k, v in u.notes.items()})
    part.meta["utility"] = {
        "seeds": list(job.config.utility_seeds),
        "tstr_train_size": u.tstr_train_size,
        "n_train": int(len(ctx.util_train)),
        "n_holdout": int(len(ctx.util_holdout)),
        "holdout_patients": int(len(set(util.units["patient_id"].astype(str).to_numpy()[ctx.util_holdout]))),
        "split": "the dataset's own split (shared by every generator of the dataset)",
    }
    part.meta["tstr_train_size"] = u.tstr_train_size
    return part


def stage_fidelity(ctx: EvaluationContext, job: Job) -> Part:
    """Fréchet distance and PRDC in the real classifier's embedding; PRDC on equal real and synthetic counts."""
    from synthvu_core.evaluation.encoder import embed
    from synthvu_core.evaluation.fidelity import fidelity_scores

    emb_syn = embed(ctx.classifiers[0], job.images)
    job.state["emb_syn"] = emb_syn
    part = Part()
    if not getattr(ctx.classifiers[0], "trained", True):
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
    part.arrays["embedding/real"] = ctx.emb_holdout
    part.arrays["embedding/real_index"] = ctx.util_holdout
    part.arrays["embedding/synthetic"] = emb_syn
    return part


def stage_embeddings(ctx: EvaluationContext, job: Job) -> Part:
    """The study's UMAP overlay (fit on real train; a figure only, no reported number)."""
    part = Part()
    cfg = job.config
    n = min(len(job.labels), cfg.overlay_synthetic)
    pick = np.sort(np.random.default_rng([job.seed, 31]).choice(len(job.labels), size=n, replace=False))
    real, syn, reason = None, None, ctx.overlay_reason
    syn_feats = job.images[pick] if cfg.umap.features == "pixel" else job.state["emb_syn"][pick]
    if cfg.umap.joint:
        from synthvu_core.evaluation.embedding import fit_umap
        from synthvu_core.evaluation.encoder import embed

        util = job.utility_dataset or job.dataset
        rf = (
            util.images[ctx.overlay_rows]
            if cfg.umap.features == "pixel"
            else embed(ctx.classifiers[0], util.images[ctx.overlay_rows])
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
    ctx: EvaluationContext, job: Job, synthetic: Any, discriminator_scores: np.ndarray | None = None,
    permutation: bool = True,
) -> tuple[dict, dict, dict, Any]:
    """Every attack on one synthetic set: ``(results, skipped, arrays, permutation test)``.

    ``permutation=False`` (the controls, read by their AUC CI and rise, never by a p-value) skips the
    permutation test: ``p_value`` is then None.
    """
    from synthvu_core.evaluation.attacks import black_box_scores
    from synthvu_core.evaluation.inference import permutation_test
    from synthvu_core.evaluation.verdicts import attack_metrics

    cfg, d = job.config.privacy, ctx.design
    scores, arrays, skipped = black_box_scores(
        ctx.spaces,
        synthetic,
        domias_dims=cfg.domias_dims,
        domias_min_points=cfg.domias_min_points,
        chunk=cfg.chunk,
        seed=job.seed,
    )
    if discriminator_scores is not None:
        scores["discriminator/pixel"] = discriminator_scores
    test = (
        permutation_test(scores, d.is_member, d.patient, n_perm=job.config.n_perm, seed=job.seed)
        if permutation and len(set(d.patient)) > 2
        else None
    )
    results = {
        n: attack_metrics(s, d.is_member, d.patient, test=test, name=n, n_boot=cfg.n_boot, seed=job.seed)
        for n, s in scores.items()
    }
    return results, skipped, arrays, test


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
    job.state.update(synthetic=synthetic, results=results, test=test)
    part = _privacy_part(results, skipped, arrays)
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
    from synthvu_core.evaluation.attacks import SyntheticSet
    from synthvu_core.evaluation.controls import DEFINITIONS, graded_replacements, independent_samples
    from synthvu_core.evaluation.verdicts import power_curves, released_discriminator_verdict, released_samples_verdict
    from synthvu_core.names import GRADED_FRACTIONS, INDEPENDENT_CONTROL, graded_control

    part, control_results = Part(), {}
    if job.controls:
        base = job.state["synthetic"]
        members = ctx.design.candidates[ctx.design.is_member]
        sets: dict[str, Any] = {}
        for f in GRADED_FRACTIONS:
            pos, imgs = graded_replacements(job.dataset, len(job.labels), members, f, seed=job.seed)
            sets[graded_control(f)] = base.replaced(ctx.spaces, pos, imgs)
        x, why = independent_samples(job.dataset, ctx.design.control_rows, len(job.labels), seed=job.seed)
        if x is None:
            part.meta.setdefault("controls_skipped", {})[INDEPENDENT_CONTROL] = why
        else:
            sets[INDEPENDENT_CONTROL] = SyntheticSet.of(ctx.spaces, x)
        for name, synthetic in sets.items():
            with timer(part.meta.setdefault("control_timings_s", {}), name):
                results, skipped, arrays, _ = score_set(ctx, job, synthetic, permutation=False)
            control_results[name] = results
            part.controls[name] = (_privacy_part(results, skipped, {}), DEFINITIONS[name])
        part.meta["control_definitions"] = {k: DEFINITIONS[k] for k in sets}
    power = power_curves(control_results, job.state["results"], ctx.design.is_member, ctx.design.patient)
    part.meta["power"] = power
    results, test = job.state["results"], job.state["test"]
    part.meta["verdicts"] = {
        "released_samples": released_samples_verdict(results, test, power)
        if test is not None
        else {"level": "unknown", "text": "Too few patients for a permutation test: no verdict."},
        "released_discriminator": released_discriminator_verdict(results, test),
    }
    counted = part.meta["verdicts"]["released_samples"].get("counted", [])
    for metric in ("auc", "tpr_at_1pct_fpr"):
        vals = [results[n].scalars.get(metric) for n in counted if results[n].scalars.get(metric) is not None]
        why = (
            "no attack on the released samples has power on this data"
            if not counted
            else (results[counted[0]].reasons.get(metric) or "not computed")
        )
        part.add(f"privacy.worst.{metric}", max(vals) if vals else None, why)
    return part


def stage_dp(ctx: EvaluationContext, job: Job) -> Part:
    """The generator's differential-privacy budget, as its card records it."""
    eps = job.meta.get("dp_epsilon")
    part = Part()
    part.add(
        "dp.epsilon", None if eps is None else float(eps), "trained without differential privacy (or not recorded)"
    )
    return part


STAGES: tuple[tuple[str, Callable[[EvaluationContext, Job], Part]], ...] = (
    ("utility", stage_utility),
    ("fidelity", stage_fidelity),
    ("embeddings", stage_embeddings),
    ("privacy", stage_privacy),
    ("controls", stage_controls),
    ("dp", stage_dp),
)


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


def run_evaluation(
    dataset: Any,
    synthetic_images: np.ndarray,
    synthetic_labels: np.ndarray,
    *,
    discriminator: Any = None,
    config: EvaluationConfig = EvaluationConfig(),
    classes: list[str] | None = None,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    context: EvaluationContext | None = None,
    controls: bool = False,
    progress: bool | Callable[[str, int, int], None] = True,
    utility_dataset: Any = None,
) -> Any:
    """Evaluate synthetic VUs ``[m, C, H, W]`` (float in [-1, 1] or uint8) with integer labels ``[m]``
    (indices into ``classes``, default ``dataset.classes(config.scheme)``) against a ``VUDataset``.

    ``dataset`` carries the generator's split (members = its train patients); ``utility_dataset``
    the dataset's own split for utility and fidelity (default: ``dataset``). ``controls`` adds the
    graded positive controls and the independent control. Returns a ``Report``.
    """
    from synthvu_core.evaluation.report import Report, definition

    synthetic_labels = np.asarray(synthetic_labels, dtype=np.int64)
    if len(synthetic_images) != len(synthetic_labels):
        raise ValueError(f"{len(synthetic_images)} synthetic VUs but {len(synthetic_labels)} labels")
    if tuple(np.shape(synthetic_images)[1:]) != tuple(dataset.images.shape[1:]):
        raise ReportError(
            f"synthetic VUs have shape {list(np.shape(synthetic_images)[1:])}, the dataset "
            f"{list(dataset.images.shape[1:])}"
        )
    job = Job(
        dataset,
        synthetic_images,
        synthetic_labels,
        discriminator,
        config,
        seed,
        dict(meta or {}),
        controls,
        utility_dataset,
    )
    bar = _progress(len(STAGES) + 1, progress)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    try:
        if bar is not None:
            bar.set_description("context")
        ctx = context or prepare_context(dataset, config, classes=classes, seed=seed, utility_dataset=utility_dataset)
        if context is None:
            timings.update(ctx.timings)
            cpu.update(ctx.cpu_timings)
        out = Part()
        for name, stage in STAGES:
            if bar is not None:
                bar.update(1)
                bar.set_description(name)
            with timer(timings, name, cpu):
                out.merge(stage(ctx, job))
    finally:
        if bar is not None:
            bar.close()
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
    from synthvu_core.evaluation.report import REPORT_VERSION

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
        "scheme": cfg.scheme,
        "classes": ctx.classes,
        "synthetic_class_counts": np.bincount(job.labels[job.labels >= 0], minlength=K).tolist(),
        "classifier_trained": bool(getattr(ctx.classifiers[0], "trained", True)),
        "config": {
            "candidates_per_group": cfg.candidates_per_group,
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
