"""Evaluation reports: run utility, fidelity, UMAP and privacy on arrays; save and load them.

A report is a folder (``<generator>/report/``), written atomically::

    report.json   {"scalars": {key: float | null}, "definitions": {key: text}, "meta": {...},
                   "controls": [names]}
    arrays.npz    named arrays (see docs/interfaces.md), loaded lazily with allow_pickle=False
    controls/<name>/report.json + arrays.npz   (with controls)

Every scalar has a definition; a scalar that cannot be computed honestly is ``null`` and
``meta["missing"][key]`` says why. Loading a report never runs a model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from synthvu_core.errors import CheckpointError, ReportError
from synthvu_core.evaluation.embedding import UMAPConfig
from synthvu_core.evaluation.encoder import EncoderConfig
from synthvu_core.evaluation.privacy import FPR_LEVELS, PrivacyConfig
from synthvu_core.names import ARRAYS_FILE, CARD_FILE, REPORT_DIR, REPORT_FILE, STUDY_RATIO, STUDY_TRTR, STUDY_TSTR
from synthvu_core.storage import atomic_path, check_writable, json_default

REPORT_VERSION = 1
ATTACKS: tuple[str, ...] = ("pairwise", "distribution", "domias", "discriminator")
SPACES: tuple[str, ...] = ("pixel", "embedding", "umap")
PRIVACY_METRICS: tuple[str, ...] = ("auc", "auc_ci_low", "auc_ci_high", *FPR_LEVELS, "topk_share", "patient_auc", "patient_tpr_at_1pct_fpr")


@dataclass
class Report:
    """Scalars (key -> float or None), their definitions, meta, arrays (lazy) and control reports."""

    scalars: dict[str, float | None]
    definitions: dict[str, str]
    meta: dict[str, Any]
    controls: dict[str, Report] = field(default_factory=dict)
    _arrays: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _arrays_path: Path | None = field(default=None, repr=False)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Named arrays; read from ``arrays.npz`` on first access when the report was loaded."""
        if self._arrays is None:
            if self._arrays_path is None:
                self._arrays = {}
            else:
                try:
                    with np.load(self._arrays_path, allow_pickle=False) as z:
                        self._arrays = {k: z[k] for k in z.files}
                except (OSError, ValueError) as e:
                    raise ReportError(f"{self._arrays_path}: cannot read report arrays: {e}") from None
        return self._arrays

    def missing(self) -> dict[str, str]:
        """Key -> reason for every scalar that is None."""
        return dict(self.meta.get("missing", {}))


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


# ---- definitions ----------------------------------------------------------------------------

_UTILITY_DEF = {
    "trtr": "Balanced accuracy (mean per-class recall) of the VU-position classifier trained on the real train split, tested on the real holdout split.",
    "tstr": "Balanced accuracy of the same classifier definition trained on synthetic VUs (the real train split's label distribution and size), tested on the real holdout split.",
    "trts": "Balanced accuracy of the classifier trained on the real train split, tested on the synthetic VUs (low TRTS with high TSTR hints at off-manifold samples).",
}
_FIDELITY_DEF = {
    "frechet_distance": "Fréchet distance between Gaussians fitted to real-holdout and synthetic embeddings (penultimate layer of the real-trained VU-position classifier); 0 = same mean and covariance.",
    "precision": "Share of synthetic embeddings inside the k-NN ball (k=5) of some real-holdout embedding (Naeem et al. 2020).",
    "recall": "Share of real-holdout embeddings inside the k-NN ball (k=5) of some synthetic embedding (Naeem et al. 2020).",
    "density": "Mean number of real-holdout k-NN balls (k=5) containing a synthetic embedding, divided by k (Naeem et al. 2020); about 1 when distributions match.",
    "coverage": "Share of real-holdout k-NN balls (k=5) that contain at least one synthetic embedding (Naeem et al. 2020).",
}
_ATTACK_DEF = {
    "pairwise": "pairwise attack (the published study; distance to closest record): score = -(d_min(x) / median_j d(x, s_j)) over all synthetic s_j",
    "distribution": "distribution attack (the published study; Monte-Carlo attack, Hilprecht et al. 2019): score = number of synthetic VUs within eps of x, eps = the 1% quantile (0.1% in UMAP space) of all candidate-synthetic distances",
    "domias": "DOMIAS (van Breugel et al. 2023): score = log p_synth(x) - log p_reference(x), Gaussian KDEs in PCA-reduced embedding space, reference = the dataset's reference split (disjoint from candidates)",
    "discriminator": "discriminator attack (LOGAN white-box, Hayes et al. 2019): score = the discriminator's real-probability; a released discriminator is itself a leak",
}
_SPACE_DEF = {
    "pixel": "in pixel space (flattened VUs, Euclidean)",
    "embedding": "in embedding space (classifier penultimate layer, Euclidean)",
    "umap": (
        "in the 2-D UMAP space fitted on real training VUs (the study's UMAP-space attack, labelled as such; members are part "
        "of the UMAP fit while non-members and synthetic VUs are projected in, which can bias this space either way: read it "
        "beside the pixel and embedding spaces)"
    ),
}
_METRIC_DEF = {
    "auc": "ROC AUC over candidate VUs (members = VUs of training patients, non-members = VUs of holdout patients); 0.5 = chance",
    "auc_ci_low": "lower end of the 95% bootstrap CI of the VU-level AUC (patients resampled within members and non-members, 1000 resamples)",
    "auc_ci_high": "upper end of the 95% bootstrap CI of the VU-level AUC (patients resampled within members and non-members, 1000 resamples)",
    "tpr_at_1pct_fpr": "true-positive rate at 1% false-positive rate on the linearly interpolated ROC (Carlini et al. 2022); chance = 0.01",
    "tpr_at_0.1pct_fpr": "true-positive rate at 0.1% false-positive rate on the linearly interpolated ROC (Carlini et al. 2022); chance = 0.001",
    "topk_share": "share of members among the k most suspicious candidates, k = number of members (the published study); chance = members / candidates",
    "patient_auc": "ROC AUC at patient level (a patient's score = mean of its VU scores)",
    "patient_tpr_at_1pct_fpr": "TPR at 1% FPR at patient level (interpolated ROC over patient mean scores)",
}


def definition(key: str) -> str:
    """Definition text of a scalar key."""
    parts = key.split(".")
    if parts[0] == "utility":
        if parts[1] == "tstr_over_trtr":
            return ("TSTR balanced accuracy divided by TRTR balanced accuracy "
                    f"(the published study: {STUDY_TSTR:.3f} / {STUDY_TRTR:.3f} = {STUDY_RATIO:.2f}).")
        return _UTILITY_DEF[parts[1]]
    if parts[0] == "fidelity":
        if parts[1] == "position":
            return f"{_FIDELITY_DEF[parts[-1]]} Restricted to position class {'.'.join(parts[2:-1])}."
        return _FIDELITY_DEF[parts[1]]
    if parts[0] == "privacy":
        if parts[1] == "worst":
            what = "AUC" if parts[2] == "auc" else "TPR at 1% FPR"
            return f"Highest VU-level {what} over all attacks and spaces computed (the strongest attack)."
        attack, space, metric = parts[1], parts[2], ".".join(parts[3:])
        return f"{_METRIC_DEF[metric]}; {_ATTACK_DEF[attack]}; {_SPACE_DEF[space]}."
    if key == "dp.epsilon":
        return ("Differential-privacy budget epsilon of the generator's training (DP-SGD on the discriminator) at the card's "
                "delta, per privacy unit (meta dp_unit: patient, or vu for older cards); None = trained without DP.")
    raise KeyError(key)


# ---- the context shared by a generator and its controls ------------------------------------


@dataclass
class EvaluationContext:
    """Everything computed from real data alone; reused by controls."""

    classes: list[str]
    labels: np.ndarray  # [N] dataset rows
    train: np.ndarray
    holdout: np.ndarray
    reference: np.ndarray
    classifier: Any
    emb_train: np.ndarray
    emb_holdout: np.ndarray
    emb_reference: np.ndarray
    projection: Any  # UMAPProjection | None
    umap_reason: str | None
    umap_rows: np.ndarray  # dataset rows with UMAP coordinates (train + holdout)
    umap_coords: np.ndarray | None
    candidates: np.ndarray  # dataset rows
    is_member: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def select_candidates(dataset: Any, per_group: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Balanced candidate rows: ``n = min(per_group, #train VUs, #holdout VUs)`` VUs from each group.

    Returns ``(rows [2n], is_member [2n])`` with members first.
    """
    rng = np.random.default_rng([seed, 7])
    tr, ho = dataset.indices("train"), dataset.indices("holdout")
    n = min(len(tr), len(ho)) if per_group is None else min(per_group, len(tr), len(ho))
    mem = np.sort(rng.choice(tr, size=n, replace=False)) if n else np.empty(0, dtype=np.int64)
    non = np.sort(rng.choice(ho, size=n, replace=False)) if n else np.empty(0, dtype=np.int64)
    return np.concatenate([mem, non]).astype(np.int64), np.r_[np.ones(n, bool), np.zeros(n, bool)]


def _stage(bar: Any, name: str) -> None:
    if bar is not None:
        bar.set_description(name)


def prepare_context(dataset: Any, config: EvaluationConfig, *, classes: list[str] | None = None, seed: int = 0, bar: Any = None) -> EvaluationContext:
    """Train (or load) the real classifier, embed the real splits, fit UMAP and pick candidates."""
    from synthvu_core.evaluation.embedding import fit_umap
    from synthvu_core.evaluation.encoder import embed, real_classifier

    t: dict[str, float] = {}
    classes = list(classes or dataset.classes(config.scheme))
    labels = dataset.labels(config.scheme, classes)
    train, holdout, reference = (dataset.indices(p) for p in ("train", "holdout", "reference"))
    _stage(bar, "classifier")
    t0 = time.perf_counter()
    clf = real_classifier(dataset, config.scheme, classes, seed=seed, config=config.encoder, cache=config.cache)
    t["classifier"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _stage(bar, "embedding")
    emb = {p: embed(clf, dataset.images[rows]) for p, rows in (("train", train), ("holdout", holdout), ("reference", reference))}
    t["embedding"] = time.perf_counter() - t0
    if bar is not None:
        bar.update(1)
    _stage(bar, "umap")
    t0 = time.perf_counter()
    feats = (lambda rows: dataset.images[rows]) if config.umap.features == "pixel" else None
    umap_rows = np.concatenate([train, holdout])
    proj, coords, reason = None, None, None
    if not config.umap.joint:
        fit_x = feats(train) if feats else emb["train"]
        proj, c_train, _, reason = fit_umap(fit_x, None, config=config.umap, seed=seed)
        if proj is not None:
            c_hold = proj.transform(feats(holdout) if feats else emb["holdout"])
            coords = np.concatenate([c_train, c_hold])
    t["umap_fit"] = time.perf_counter() - t0
    if bar is not None:
        bar.update(1)
    cand, member = select_candidates(dataset, config.candidates_per_group, seed)
    return EvaluationContext(
        classes, labels, train, holdout, reference, clf, emb["train"], emb["holdout"], emb["reference"],
        proj, reason, umap_rows, coords, cand, member, t,
    )


# ---- the evaluation itself ------------------------------------------------------------------


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
        if self.n < self.total:  # the stage counts are estimates: the bar ends full
            self.n = self.total
            self.callback("done", self.n, self.total)


def _progress(total: int, enabled: bool | Callable[[str, int, int], None], desc: str) -> Any:
    """A progress bar: tqdm for ``True``, nothing for ``False``, or a callable's adapter."""
    if callable(enabled):
        return _CallbackBar(enabled, total)
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="stage", leave=False)


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
    controls: tuple[str, ...] = (),
    progress: bool | Callable[[str, int, int], None] = True,
) -> Report:
    """Evaluate synthetic VUs ``[m, C, H, W]`` (float in [-1, 1] or uint8) with integer labels ``[m]``
    (indices into ``classes``, default ``dataset.classes(config.scheme)``) against a ``VUDataset``.

    ``controls`` names controls (``copy``, ``independent``) evaluated with the same code and context.
    ``progress``: a tqdm bar (True), none (False), or ``callback(stage, done, total)`` at every stage.
    """
    from synthvu_core.evaluation.encoder import embed
    from synthvu_core.evaluation.fidelity import fidelity_scores
    from synthvu_core.evaluation.privacy import run_attacks
    from synthvu_core.evaluation.utility import utility_scores

    synthetic_labels = np.asarray(synthetic_labels, dtype=np.int64)
    if len(synthetic_images) != len(synthetic_labels):
        raise ValueError(f"{len(synthetic_images)} synthetic VUs but {len(synthetic_labels)} labels")
    if tuple(np.shape(synthetic_images)[1:]) != tuple(dataset.images.shape[1:]):
        raise ReportError(f"synthetic VUs have shape {list(np.shape(synthetic_images)[1:])}, the dataset {list(dataset.images.shape[1:])}")
    bar = _progress(8, progress, "evaluation")
    try:
        own_context = context is None
        ctx = context or prepare_context(dataset, config, classes=classes, seed=seed, bar=bar)
        if not own_context and bar is not None:
            bar.update(2)
        timings = dict(ctx.timings) if own_context else {}
        K = len(ctx.classes)
        scalars: dict[str, float | None] = {}
        missing: dict[str, str] = {}
        arrays: dict[str, np.ndarray] = {}
        notes: dict[str, str] = {}

        # utility
        _stage(bar, "utility")
        t0 = time.perf_counter()
        util = utility_scores(
            real_classifier=ctx.classifier,
            train_images=dataset.images[ctx.train], train_labels=ctx.labels[ctx.train],
            holdout_images=dataset.images[ctx.holdout], holdout_labels=ctx.labels[ctx.holdout],
            synthetic_images=synthetic_images, synthetic_labels=synthetic_labels,
            n_classes=K, config=config.encoder, seed=seed,
        )
        s, r = util.scalars()
        scalars.update(s)
        missing.update(r)
        arrays.update(util.arrays())
        notes.update({f"utility.{k}": v for k, v in util.notes.items()})
        timings["utility"] = time.perf_counter() - t0
        if bar is not None:
            bar.update(1)

        # fidelity
        _stage(bar, "fidelity")
        t0 = time.perf_counter()
        emb_syn = embed(ctx.classifier, synthetic_images)
        if not getattr(ctx.classifier, "trained", True):
            notes["embedding"] = "fewer than two classes in the real train split: the embedding is an untrained (random) convolutional feature map"
        f, r = fidelity_scores(ctx.emb_holdout, emb_syn, k=config.prdc_k)
        scalars.update({f"fidelity.{k}": v for k, v in f.items()})
        missing.update({f"fidelity.{k}": v for k, v in r.items()})
        hold_lab = ctx.labels[ctx.holdout]
        for c, name in enumerate(ctx.classes):
            f, r = fidelity_scores(ctx.emb_holdout[hold_lab == c], emb_syn[synthetic_labels == c], k=config.prdc_k)
            scalars.update({f"fidelity.position.{name}.{k}": v for k, v in f.items()})
            missing.update({f"fidelity.position.{name}.{k}": v for k, v in r.items()})
        arrays["fidelity/position/classes"] = np.array(ctx.classes, dtype=str)
        arrays["embedding/real"] = np.concatenate([ctx.emb_train, ctx.emb_holdout])
        arrays["embedding/real_index"] = ctx.umap_rows
        arrays["embedding/synthetic"] = emb_syn
        timings["fidelity"] = time.perf_counter() - t0
        if bar is not None:
            bar.update(1)

        # UMAP
        _stage(bar, "umap")
        t0 = time.perf_counter()
        umap_syn = umap_real = None
        umap_reason = ctx.umap_reason
        syn_feats = synthetic_images if config.umap.features == "pixel" else emb_syn
        if config.umap.joint:
            from synthvu_core.evaluation.embedding import fit_umap

            real_feats = dataset.images[ctx.umap_rows] if config.umap.features == "pixel" else arrays["embedding/real"]
            _, umap_real, umap_syn, umap_reason = fit_umap(real_feats, syn_feats, config=config.umap, seed=seed)
        elif ctx.projection is not None:
            umap_real = ctx.umap_coords
            umap_syn = ctx.projection.transform(syn_feats)
        if umap_real is not None and umap_syn is not None:
            arrays["umap/real"] = umap_real
            arrays["umap/real_index"] = ctx.umap_rows
            arrays["umap/real_labels"] = ctx.labels[ctx.umap_rows]
            arrays["umap/real_split"] = dataset.units["split"].to_numpy()[ctx.umap_rows].astype(str)
            arrays["umap/synthetic"] = umap_syn
            arrays["umap/synthetic_labels"] = synthetic_labels
            arrays["umap/synthetic_index"] = np.arange(len(synthetic_labels))
        timings["umap_transform"] = time.perf_counter() - t0
        if bar is not None:
            bar.update(1)

        # privacy
        _stage(bar, "privacy")
        t0 = time.perf_counter()
        cand, member = ctx.candidates, ctx.is_member
        patient = dataset.units["patient_id"].astype(str).to_numpy()[cand]
        arrays["candidates/index"] = cand
        arrays["candidates/is_member"] = member
        arrays["candidates/patient"] = patient.astype(str)
        spaces: dict[str, tuple[np.ndarray, np.ndarray]] = {"pixel": (dataset.images[cand], synthetic_images)}
        pos = {int(r): i for i, r in enumerate(ctx.umap_rows)}
        emb_real_all = arrays["embedding/real"]
        spaces["embedding"] = (emb_real_all[[pos[int(r)] for r in cand]], emb_syn)
        umap_skip = None
        if umap_real is not None and umap_syn is not None:
            spaces["umap"] = (umap_real[[pos[int(r)] for r in cand]], umap_syn)
        else:
            umap_skip = umap_reason or "no UMAP projection"
        results, skipped, closest = run_attacks(
            is_member=member, patient=patient, spaces=spaces,
            reference_embedding=ctx.emb_reference if len(ctx.reference) else None,
            discriminator=discriminator, discriminator_images=dataset.images[cand] if discriminator is not None else None,
            config=config.privacy, seed=seed,
        )
        if umap_skip:
            skipped.update({"pairwise/umap": umap_skip, "distribution/umap": umap_skip})
        for name, res in results.items():
            attack, space = name.split("/")
            for metric in PRIVACY_METRICS:
                key = f"privacy.{attack}.{space}.{metric}"
                scalars[key] = res.scalars.get(metric)
                if key in scalars and scalars[key] is None:
                    missing[key] = res.reasons.get(metric, "not computed")
            for a, v in res.arrays.items():
                arrays[f"privacy/{name}/{a}"] = v
        for name, why in skipped.items():
            attack, space = name.split("/")
            for metric in PRIVACY_METRICS:
                scalars[f"privacy.{attack}.{space}.{metric}"] = None
                missing[f"privacy.{attack}.{space}.{metric}"] = why
        for k, v in closest.items():
            arrays[f"privacy/closest/{k}"] = v
        if "candidate_index" in closest:
            arrays["privacy/closest/dataset_index"] = cand[closest["candidate_index"]]
        for metric, label in (("auc", "auc"), ("tpr_at_1pct_fpr", "tpr_at_1pct_fpr")):
            vals = [res.scalars.get(metric) for res in results.values() if res.scalars.get(metric) is not None]
            scalars[f"privacy.worst.{label}"] = max(vals) if vals else None
            if not vals:
                missing[f"privacy.worst.{label}"] = "no attack could be computed"
        n_neg = int((~member).sum())
        if n_neg and 0.001 * n_neg < 1:
            notes["tpr_at_0.1pct_fpr"] = f"with {n_neg} non-member candidates, 0.1% FPR lies below one false positive: the value is read from the interpolated ROC between its first points"
        timings["privacy"] = time.perf_counter() - t0
        if bar is not None:
            bar.update(1)

        # dp
        eps = (meta or {}).get("dp_epsilon")
        scalars["dp.epsilon"] = None if eps is None else float(eps)
        if eps is None:
            missing["dp.epsilon"] = "trained without differential privacy (or not recorded)"

        definitions = {k: definition(k) for k in scalars}
        from synthvu_core import __version__

        full_meta: dict[str, Any] = {
            "report_version": REPORT_VERSION,
            "dataset_fingerprint": dataset.fingerprint,
            "n_synthetic": int(len(synthetic_labels)),
            "synthetic_seed": seed,
            "seed": seed,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "code_version": __version__,
            "scheme": config.scheme,
            "classes": ctx.classes,
            "synthetic_class_counts": np.bincount(synthetic_labels[synthetic_labels >= 0], minlength=K).tolist(),
            "n_candidates": int(len(cand)),
            "n_members": int(member.sum()),
            "n_nonmembers": int((~member).sum()),
            "n_member_patients": int(len(set(patient[member]))),
            "n_nonmember_patients": int(len(set(patient[~member]))),
            "n_reference": int(len(ctx.reference)),
            "tstr_train_size": util.tstr_train_size,
            "classifier_trained": bool(getattr(ctx.classifier, "trained", True)),
            "umap": {**asdict(config.umap), "fitted_on": "joint" if config.umap.joint else "real_train"},
            "config": {"candidates_per_group": config.candidates_per_group, "prdc_k": config.prdc_k, "encoder": asdict(config.encoder), "privacy": asdict(config.privacy)},
            "discriminator_attack": discriminator is not None,
            "missing": missing,
            "notes": notes,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            **(meta or {}),
        }
        report = Report(scalars, definitions, full_meta, _arrays=arrays)
    finally:
        if bar is not None:
            bar.close()
    if controls:
        from synthvu_core.evaluation.controls import DEFINITIONS, control_samples

        for name in controls:
            x, y, why = control_samples(dataset, name, len(synthetic_labels), scheme=config.scheme, classes=ctx.classes, seed=seed)
            if x is None:
                report.meta.setdefault("controls_skipped", {})[name] = why
                continue
            t0 = time.perf_counter()
            cmeta = {"model": f"control:{name}", "control": name, "control_definition": DEFINITIONS[name]}
            report.controls[name] = run_evaluation(dataset, x, y, config=config, seed=seed, meta=cmeta, context=ctx, progress=progress)
            report.meta["timings_s"][f"control_{name}"] = round(time.perf_counter() - t0, 3)
        report.meta["control_definitions"] = {k: DEFINITIONS[k] for k in report.controls}
    return report


# ---- persistence -----------------------------------------------------------------------------


def _write_report_files(report: Report, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "scalars": report.scalars,
        "definitions": report.definitions,
        "meta": report.meta,
        "controls": sorted(report.controls),
    }
    (folder / REPORT_FILE).write_text(json.dumps(doc, indent=2, default=json_default, allow_nan=False) + "\n")
    arrays = {k: np.asarray(v) for k, v in report.arrays.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise ValueError(f"report array {k} has object dtype")
    np.savez_compressed(folder / ARRAYS_FILE, **arrays)
    for name, sub in report.controls.items():
        _write_report_files(sub, folder / "controls" / name)


def _clean(scalars: dict[str, float | None]) -> dict[str, float | None]:
    out = {}
    for k, v in scalars.items():
        out[k] = None if v is None or not np.isfinite(v) else float(v)
    return out


def save_report(report: Report, folder: str | Path) -> Path:
    """Write ``folder`` (``report.json``, ``arrays.npz``, ``controls/<name>/``) atomically."""
    folder = Path(folder)

    def sanitise(r: Report) -> None:
        for k, v in list(r.scalars.items()):
            if v is not None and not np.isfinite(v):
                r.meta.setdefault("missing", {})[k] = "not a finite number"
        r.scalars = _clean(r.scalars)
        for sub in r.controls.values():
            sanitise(sub)

    sanitise(report)
    with atomic_path(folder) as tmp:
        _write_report_files(report, tmp)
    return folder


def _read_report(folder: Path, expected_fingerprint: str | None) -> Report:
    path = folder / REPORT_FILE
    try:
        doc = json.loads(path.read_text())
        scalars, definitions, meta = doc["scalars"], doc["definitions"], doc["meta"]
        if not isinstance(scalars, dict) or not isinstance(definitions, dict) or not isinstance(meta, dict):
            raise ValueError("scalars, definitions and meta must be objects")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReportError(f"{path}: corrupt report ({type(e).__name__}: {e})") from None
    arrays_path = folder / ARRAYS_FILE
    if not arrays_path.is_file():
        raise ReportError(f"{arrays_path}: report arrays are missing")
    try:
        with np.load(arrays_path, allow_pickle=False) as z:
            _ = z.files
    except (OSError, ValueError) as e:
        raise ReportError(f"{arrays_path}: corrupt report arrays ({e})") from None
    fp = meta.get("dataset_fingerprint")
    if expected_fingerprint is not None and fp != expected_fingerprint:
        raise ReportError(f"{path}: report was computed on dataset {fp}, not on the expected dataset {expected_fingerprint}; re-run evaluate")
    report = Report(scalars, definitions, meta, _arrays_path=arrays_path)
    for name in doc.get("controls", []):
        report.controls[name] = _read_report(folder / "controls" / name, expected_fingerprint)
    return report


def load_report(
    model_dir: str | Path, expected_fingerprint: str | None = None, *, check_weights: bool = True
) -> Report | None:
    """The saved report of a generator folder (or a report folder itself); None when there is none.

    Never runs a model. Raises :class:`ReportError` naming the file when it is corrupt, was
    computed on another dataset than ``expected_fingerprint``, or (for a generator folder, one with
    weights or a card, unless ``check_weights=False``) does not record the sha256 of the folder's
    current generator weights:
    a stale report is never shown as the model's numbers.
    """
    model_dir = Path(model_dir)
    folder = model_dir if (model_dir / REPORT_FILE).is_file() else model_dir / REPORT_DIR
    if not (folder / REPORT_FILE).is_file():
        return None
    report = _read_report(folder, expected_fingerprint)
    is_generator = any((model_dir / f).exists() for f in ("generator.safetensors", "card.json"))
    if check_weights and folder != model_dir and is_generator:
        from synthvu_core.models.registry import report_staleness

        stale = report_staleness(model_dir, report.meta)
        if stale:
            raise ReportError(stale)
    return report


# ---- from a generator folder -------------------------------------------------------------------


def evaluate_generator(
    model_dir: str | Path,
    dataset: Any = None,
    n_synthetic: int = 5000,
    controls: bool = False,
    seed: int = 0,
    progress: bool | Callable[[str, int, int], None] = True,
    config: EvaluationConfig | None = None,
) -> Report:
    """Sample ``n_synthetic`` VUs from a generator folder, evaluate them, write ``model_dir/report/``.

    ``dataset`` is a ``VUDataset``, a dataset folder, or None for the demo dataset named by the
    card. The dataset's fingerprint must match the card's.
    """
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.registry import load_card, load_discriminator, load_generator, weights_sha256
    from synthvu_core.models.sampling import sample_uint8

    model_dir = Path(model_dir)
    card = load_card(model_dir)
    check_writable(model_dir / REPORT_DIR, "report")  # before any work
    fp = (card.get("dataset") or {}).get("fingerprint")
    if dataset is None:
        from synthvu_core.data.build import dataset_of_card

        dataset = dataset_of_card(card, model_dir)  # the card's dataset path or phantom recipe, or says what to pass
    elif not isinstance(dataset, VUDataset):
        dataset = VUDataset.load(dataset)
    if fp is not None and dataset.fingerprint != fp:
        raise CheckpointError(
            f"{model_dir / CARD_FILE}: generator was trained on dataset {fp}, but the dataset given is {dataset.fingerprint}"
        )
    # Members are the patients the generator was trained on: apply the card's split (the leaky
    # control, for one, was trained on a smaller train part of the same VUs).
    from synthvu_core.data.dataset import SplitConfig

    split = SplitConfig.from_card((card.get("dataset") or {}).get("split") or {})
    if split is not None:
        dataset = dataset.with_split(split)
    scheme = card.get("scheme", "region")
    classes = list(card.get("classes") or dataset.classes(scheme))
    cfg = config or EvaluationConfig(scheme=scheme)
    if cfg.scheme != scheme:
        from dataclasses import replace

        cfg = replace(cfg, scheme=scheme)
    weights_hash = weights_sha256(model_dir)  # the report belongs to exactly these weights
    generator = load_generator(model_dir)
    samples = sample_uint8(generator, n_synthetic, seed=seed)  # uint8 as exported: a quarter of the float32 memory
    if list(samples.classes) != classes:
        raise CheckpointError(f"{model_dir / CARD_FILE}: sampled classes {list(samples.classes)} differ from the card's {classes}")
    disc = load_discriminator(model_dir)
    dp = card.get("dp") or {}
    meta = {
        "model": card.get("name", model_dir.name),
        "model_folder": model_dir.name,
        "generator_sha256": weights_hash,
        "dp_epsilon": dp.get("epsilon"),
        "dp_delta": dp.get("delta"),
        "dp_unit": (dp.get("unit") or "vu") if dp else None,  # cards before patient-level DP protected a VU
        "dp_n_patients": dp.get("n_patients"),
        "dp_private_runs": dp.get("private_runs"),
        "discriminator_kept": disc is not None,
    }
    report = run_evaluation(
        dataset, np.asarray(samples.images), np.asarray(samples.labels), discriminator=disc, config=cfg, classes=classes,
        seed=seed, meta=meta, controls=("copy", "independent") if controls else (), progress=progress,
    )
    save_report(report, model_dir / REPORT_DIR)
    return load_report(model_dir, expected_fingerprint=dataset.fingerprint) or report
