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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.errors import CheckpointError, ReportError
from synthvu_core.evaluation.definitions import definition
from synthvu_core.evaluation.integrity import check_digest, check_scalars, check_verdicts, sign
from synthvu_core.evaluation.stages import EvaluationConfig, EvaluationContext, run_evaluation
from synthvu_core.evaluation.verdicts import PRIVACY_METRICS
from synthvu_core.names import (
    ARRAYS_FILE,
    ATTACKS,
    CARD_FILE,
    CONTROLS_DIR,
    GENERATOR_FILE,
    REPORT_DIR,
    REPORT_FILE,
    SPACES,
)
from synthvu_core.records import REPORT_VERSION, Report
from synthvu_core.storage import (
    ARRAY_READ_ERRORS,
    array_read_problem,
    atomic_path,
    check_writable,
    json_default,
    safe_name,
)

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.acgan import Generator, SnapshotEnsemble
    from synthvu_core.models.diffusion import DiffusionGenerator

__all__ = [
    "REPORT_VERSION",
    "ARRAYS_FILE",
    "ATTACKS",
    "PRIVACY_METRICS",
    "REPORT_DIR",
    "REPORT_FILE",
    "SPACES",
    "EvaluationConfig",
    "EvaluationContext",
    "Report",
    "definition",
    "evaluate_generator",
    "load_report",
    "run_evaluation",
    "save_report",
]
# ---- persistence -----------------------------------------------------------------------------


def _write_report_files(report: Report, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "scalars": report.scalars,
        "definitions": report.definitions,
        "meta": report.meta,
        "controls": sorted(report.controls),
    }
    doc = sign(json.loads(json.dumps(doc, default=json_default, allow_nan=False)))  # the digest of what is stored
    (folder / REPORT_FILE).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    arrays = {k: np.asarray(v) for k, v in report.arrays.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise ValueError(f"report array {k} has object dtype")
    np.savez_compressed(folder / ARRAYS_FILE, **arrays)
    for name, sub in report.controls.items():
        _write_report_files(sub, folder / CONTROLS_DIR / name)


def _clean(scalars: dict[str, float | None]) -> dict[str, float | None]:
    out = {}
    for k, v in scalars.items():
        out[k] = None if v is None or not np.isfinite(v) else float(v)
    return out


#: What a VU report writes into its folder; anything else there (a sub-volume or clinical report) is kept.
VU_REPORT_ENTRIES: tuple[str, ...] = (REPORT_FILE, ARRAYS_FILE, CONTROLS_DIR)


def save_report(report: Report, folder: str | Path) -> Path:
    """Write ``folder`` (``report.json``, ``arrays.npz``, ``controls/<name>/``) atomically; the other reports that
    live beside a VU report (``clinical.json``, ``volume_report.json``) are carried over unchanged."""
    import shutil

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
        for entry in folder.iterdir() if folder.is_dir() else ():
            if entry.name not in VU_REPORT_ENTRIES and not entry.name.startswith("."):
                (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, tmp / entry.name)
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
    integrity = _check_content(scalars, meta, path)
    arrays_path = folder / ARRAYS_FILE
    if not arrays_path.is_file():
        raise ReportError(f"{arrays_path}: report arrays are missing")
    try:
        with np.load(arrays_path, allow_pickle=False) as z:
            _ = z.files
    except ARRAY_READ_ERRORS as e:
        raise ReportError(f"{arrays_path}: corrupt report arrays ({array_read_problem(e)})") from None
    fp = meta.get("dataset_fingerprint")
    rebuild_of = meta.get("generator_dataset_fingerprint")  # computed on a rebuild `evaluate` recognised as it
    if expected_fingerprint is not None and expected_fingerprint not in (fp, rebuild_of):
        raise ReportError(
            f"{path}: report was computed on dataset {fp}, not on the expected dataset {expected_fingerprint}; re-run "
            "evaluate"
        )
    report = Report(scalars, definitions, meta, integrity=integrity, _arrays_path=arrays_path)
    controls = doc.get("controls", [])
    if not isinstance(controls, list):
        raise ReportError(f"{path}: corrupt report (controls must be a list of names)")
    for name in controls:
        safe_name(name, path, "control", ReportError)  # a control's name is a sub-folder: never a path
        # a control was computed on the parent's dataset (its bytes: the rebuild's where the parent's was one)
        report.controls[name] = _read_report(folder / CONTROLS_DIR / name, None if expected_fingerprint is None else fp)
    return report


def _check_content(scalars: dict[str, Any], meta: dict[str, Any], path: Path) -> str:
    """Possible values, the content digest, the verdicts re-derived; the report's integrity text."""
    check_scalars(scalars, path)
    if not isinstance(meta.get("verdicts", {}), dict):
        raise ReportError(f"{path}: corrupt report (meta.verdicts must be an object)")
    for threat, v in (meta.get("verdicts") or {}).items():
        if not isinstance(v, dict) or not isinstance(v.get("level"), str) or not isinstance(v.get("text", ""), str):
            raise ReportError(f"{path}: corrupt report (verdict {threat!r} needs a level and a text)")
    signed = check_digest(scalars, meta, path)
    derived = check_verdicts(scalars, meta, path)
    return signed + ("; verdicts re-derived from the numbers" if derived else "")


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
    is_generator = any((model_dir / f).exists() for f in (GENERATOR_FILE, CARD_FILE))
    if check_weights and folder != model_dir and is_generator:
        from synthvu_core.models.registry import report_staleness

        stale = report_staleness(model_dir, report.meta)
        if stale:
            raise ReportError(stale)
    return report


# ---- from a generator folder -------------------------------------------------------------------

#: Seed offset of the VUs sampled, per class, beyond the synthetic set for the TSTR training set only.
TSTR_TOP_UP_SEED = 1_000_003


def composed_meta(card: dict[str, Any]) -> dict[str, Any]:
    """The report's record of the bound composed over every run on the card's training patients
    (:func:`~synthvu_core.models.ledger.composed_of`): ``dp_composed_bound`` "finite", "infinite" or "none recorded",
    and ``dp_composed_epsilon`` (None unless finite). Verdict (b) reads it, not this run's ε."""
    from synthvu_core.models.ledger import bound_record

    return bound_record(card)


def _tstr_top_up(
    generator: Generator | SnapshotEnsemble | DiffusionGenerator, labels: np.ndarray, utility_dataset: VUDataset,
    scheme: str, classes: list[str], seed: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """VUs of each class the synthetic set holds fewer of than the real train split (position-conditioned,
    seed ``seed + TSTR_TOP_UP_SEED + class``), so TSTR trains on as many VUs as TRTR; None where none is short."""
    from synthvu_core.models.sampling import sample_uint8

    real = utility_dataset.labels(scheme, classes)[utility_dataset.indices("train")]
    k = len(classes)
    need = np.bincount(real[(real >= 0) & (real < k)], minlength=k)
    have = np.bincount(np.asarray(labels)[(labels >= 0) & (labels < k)], minlength=k)
    parts = [
        sample_uint8(generator, int(need[c] - have[c]), position=classes[c], seed=seed + TSTR_TOP_UP_SEED + c)
        for c in range(k)
        if need[c] > have[c]
    ]
    if not parts:
        return None
    return np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts])



def evaluate_generator(
    model_dir: str | Path,
    dataset: VUDataset | str | Path | None = None,
    n_synthetic: int = 5000,
    controls: bool = False,
    seed: int = 0,
    progress: bool | Callable[[str, int, int], None] = True,
    config: EvaluationConfig | None = None,
) -> Report:
    """Sample ``n_synthetic`` VUs from a generator folder, evaluate them, write ``model_dir/report/``.

    ``dataset`` is a ``VUDataset``, a dataset folder, or None for the demo dataset named by the
    card. The dataset's fingerprint must match the card's. The folder is locked while it runs (one
    ``train`` or ``evaluate`` writes a folder at a time).
    """
    from synthvu_core.storage import folder_lock

    with folder_lock(model_dir, "evaluate"):
        return _evaluate_locked(model_dir, dataset, n_synthetic, controls, seed, progress, config)


def evaluation_datasets(
    model_dir: Path, card: dict[str, Any], dataset: VUDataset | str | Path | None = None
) -> tuple[VUDataset, VUDataset]:
    """``(dataset, utility_dataset)`` of a generator: ``dataset`` (a ``VUDataset``, a folder, or None for the card's)
    with the card's split (members are the patients the generator was trained on: the leaky control, for one, was
    trained on a smaller train part of the same VUs), and as built (its own split: one TRTR, holdout and TSTR size
    for all its generators; where the card's stratification is not the build's, the build's ratios and seed under
    the card's stratification). Refused where its fingerprint is not the card's, or where the generator's training
    patients would sit in the utility holdout."""
    from synthvu_core.data.dataset import SplitConfig, VUDataset

    fp, resolved = (card.get("dataset") or {}).get("fingerprint"), None
    if dataset is None:
        from synthvu_core.data.build import dataset_of_card

        dataset = resolved = dataset_of_card(card, model_dir)  # the card's path or phantom recipe, checked there
    elif not isinstance(dataset, VUDataset):
        dataset = VUDataset.load(dataset)
    from synthvu_core.data.sketch import same_dataset

    if resolved is None and not same_dataset(dataset, fp, (card.get("dataset") or {}).get("sketch"), notice=True):
        raise CheckpointError(
            f"{model_dir / CARD_FILE}: generator was trained on dataset {fp}, but the dataset given is "
            f"{dataset.fingerprint}"
        )
    split = SplitConfig.from_card((card.get("dataset") or {}).get("split") or {})
    if split is None:
        return dataset, dataset
    if split.stratify != dataset.split_config().stratify:  # e.g. trained before strata existed: split as it was then
        dataset = dataset.with_split(replace(dataset.split_config(), stratify=split.stratify))
    members = dataset.with_split(split)
    trained = set(members.units.loc[members.units["split"] == "train", "patient_id"].astype(str))
    tested = trained & set(dataset.units.loc[dataset.units["split"] == "holdout", "patient_id"].astype(str))
    if tested:
        raise ReportError(f"{model_dir / CARD_FILE}: the generator was trained on {len(tested)} patient(s) of the "
                          f"dataset's holdout (e.g. {sorted(tested)[0]}); its split {split} does not nest in the "
                          f"dataset's {dataset.split_config()}: evaluate it on a dataset built with its split")
    return members, dataset


def _evaluate_locked(  # ~80 lines: resolve the dataset, sample, record the weights, run, save (in order)
    model_dir: str | Path,
    dataset: VUDataset | str | Path | None,
    n_synthetic: int,
    controls: bool,
    seed: int,
    progress: bool | Callable[[str, int, int], None],
    config: EvaluationConfig | None,
) -> Report:
    from synthvu_core.evaluation.threads import fixed_threads
    from synthvu_core.models.registry import load_card, load_discriminator, load_generator, weights_sha256
    from synthvu_core.models.sampling import sample_uint8

    model_dir = Path(model_dir)
    card = load_card(model_dir)
    check_writable(model_dir / REPORT_DIR, "report")  # before any work
    dataset, utility_dataset = evaluation_datasets(model_dir, card, dataset)
    scheme = card.get("scheme", "region")
    classes = list(card.get("classes") or dataset.classes(scheme))
    cfg = config or EvaluationConfig(scheme=scheme)
    if cfg.scheme != scheme:
        from dataclasses import replace

        cfg = replace(cfg, scheme=scheme)
    weights_hash = weights_sha256(model_dir)  # the report belongs to exactly these weights
    generator = load_generator(model_dir)
    lanes = {"workers": 2 if cfg.concurrent else 1, "worker_context": fixed_threads}  # batches on two lanes
    with fixed_threads():  # the samples too: a 2-core and a 64-core machine must evaluate the same VUs (threads.py)
        samples = sample_uint8(generator, n_synthetic, seed=seed, **lanes)  # uint8: a quarter of float32's memory
        if list(samples.classes) != classes:
            raise CheckpointError(
                f"{model_dir / CARD_FILE}: sampled classes {list(samples.classes)} differ from the card's {classes}"
            )
        tstr_extra = _tstr_top_up(generator, samples.labels, utility_dataset, scheme, classes, seed)
    disc = load_discriminator(model_dir)
    dp = card.get("dp") or {}
    meta = {
        "model": card.get("name", model_dir.name),
        "model_folder": model_dir.name,
        "generator_sha256": weights_hash,
        "dp_epsilon": dp.get("epsilon"),
        **composed_meta(card),
        "dp_delta": dp.get("delta"),
        "dp_unit": (dp.get("unit") or "vu") if dp else None,  # cards before patient-level DP protected a VU
        "dp_n_patients": dp.get("n_patients"),
        "dp_private_runs": dp.get("private_runs"),
        "dp_private_module": dp.get("private_module", "discriminator") if dp else None,
        "discriminator_kept": disc is not None,
        "generator_dataset_fingerprint": (card.get("dataset") or {}).get("fingerprint"),  # differs on a rebuild
    }
    report = run_evaluation(
        dataset,
        np.asarray(samples.images),
        np.asarray(samples.labels),
        discriminator=disc,
        config=cfg,
        classes=classes,
        seed=seed,
        meta=meta,
        controls=controls,
        progress=progress,
        utility_dataset=utility_dataset,
        tstr_extra=tstr_extra,
    )
    save_report(report, model_dir / REPORT_DIR)
    return load_report(model_dir, expected_fingerprint=dataset.fingerprint) or report
