"""Cached loaders: the only place the dashboard touches generators, reports and datasets.

* models: ``st.cache_resource`` (bounded ``max_entries``), keyed by the weight file's mtime;
* reports, samples, exports and real VU crops: ``st.cache_data`` (bounded, expiring
  :data:`CACHE_TTL_S` after they were computed), keyed by file mtimes; freed memory is handed back after each page run;
* the VU dataset handle (memory-mapped) is a resource; what leaves it (a few VUs) is data.

torch, umap and the evaluation code are imported inside these functions only, so the first paint
of a page that shows a report never imports them. Nothing here trains, fits UMAP or builds a
dataset unless a page calls the button-triggered functions (``compute_report``, ``real_dataset``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from dashboard.images import as_uint8
from dashboard.summary import ReportView, view_of
from synthvu_core.names import ARRAYS_FILE, CARD_FILE, GENERATOR_FILE, REPORT_DIR, REPORT_FILE

if TYPE_CHECKING:
    from synthvu_core.data.build import GeneratorDesign
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.acgan import Generator
    from synthvu_core.models.registry import BrokenGenerator, GeneratorInfo

MAX_SAMPLES = 512  # largest batch a page may request (uint8: 19 MB at 9 x 64 x 64)
SAMPLING_THREADS = 2
#: Cached reports, samples and VU crops expire this long after they were computed, so that a server's
#: memory after a burst of visits returns towards its idle figure (docs/deploy.md gives the measured numbers).
CACHE_TTL_S = 600


def release_freed_memory() -> None:
    """Return freed heap pages to the system (glibc keeps them otherwise, and a server whose caches were
    emptied stays at its peak resident size). Called after every page run; a no-op off glibc."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


_FROZEN_AT_MODULES = 0  # len(sys.modules) at the last freeze_long_lived_objects()


def freeze_long_lived_objects() -> bool:
    """Once new modules were imported since the last call, move every live object to the collector's
    permanent generation (``gc.freeze``); returns whether it froze.

    Streamlit runs a full garbage collection after every script run (``runner.postScriptGC``), which holds
    the interpreter lock while it walks every tracked object: with torch imported that is ~200,000
    objects of modules and classes that never die, 0.3-0.7 s per page run on the shared 2-core machine,
    during which the server sends nothing. Frozen, they are no longer walked; objects created later are
    collected as before. Objects alive at a freeze are still freed by reference counting, only reference
    cycles among them are kept, and a freeze happens only when the set of imported modules grew (a few
    times in a server's life)."""
    import gc
    import sys

    global _FROZEN_AT_MODULES
    if len(sys.modules) == _FROZEN_AT_MODULES:
        return False
    _FROZEN_AT_MODULES = len(sys.modules)
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()
    return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def report_stamp(model_dir: str | Path) -> float:
    d = Path(model_dir) / REPORT_DIR
    return _mtime(d / REPORT_FILE) + _mtime(d / ARRAYS_FILE)


def weights_stamp(model_dir: str | Path) -> float:
    return _mtime(Path(model_dir) / GENERATOR_FILE) + _mtime(Path(model_dir) / CARD_FILE)


# ---- registry --------------------------------------------------------------------------------
def generators(extra_dirs: tuple[str, ...] = ()) -> list[GeneratorInfo]:
    """``GeneratorInfo`` of every shipped and user generator (``$SYNTHVU_MODELS`` included; re-read every 20 s)."""
    return _generators(tuple(extra_dirs), os.environ.get("SYNTHVU_MODELS", ""))


@st.cache_data(ttl=20, max_entries=16, show_spinner=False)
def _generators(extra_dirs: tuple[str, ...], env: str) -> list[GeneratorInfo]:
    from synthvu_core.models.registry import list_generators

    return list_generators(list(extra_dirs))


def broken_generators(extra_dirs: tuple[str, ...] = ()) -> list[BrokenGenerator]:
    """Folders with a card that cannot be used, and why (each shown as "broken: why"; nothing else breaks)."""
    return _broken(tuple(extra_dirs), os.environ.get("SYNTHVU_MODELS", ""))


@st.cache_data(ttl=20, max_entries=16, show_spinner=False)
def _broken(extra_dirs: tuple[str, ...], env: str) -> list[BrokenGenerator]:
    from synthvu_core.models.registry import scan_generators

    return scan_generators(list(extra_dirs))[1]


def audit_of(folder: str | Path) -> dict[str, Any] | None:
    """The audit result (``audit.json``) beside a generator's card, or None."""
    from synthvu_core.models.audit import load_audit

    return load_audit(folder)


def card_of(folder: str | Path) -> dict[str, Any]:
    """A folder's card (raises ``CheckpointError`` naming the folder where it is not a generator)."""
    from synthvu_core.models.registry import load_card

    return load_card(folder)


# ---- reports ---------------------------------------------------------------------------------
@st.cache_data(max_entries=16, ttl=CACHE_TTL_S, show_spinner="Reading the report…")
def _report(model_dir: str, stamp: float, fingerprint: str | None, weights_mtime: float = 0.0) -> ReportView | None:
    from synthvu_core.evaluation.report import load_report

    rep = load_report(model_dir, expected_fingerprint=fingerprint)
    return None if rep is None else view_of(rep)


def report(model_dir: str | Path, fingerprint: str | None = None) -> ReportView | None:
    """The generator's report as a :class:`ReportView`, or None where it has none yet.

    Raises ``ReportError`` where it is corrupt, was computed on another dataset than ``fingerprint``,
    or is stale (it does not record the sha256 of the folder's current generator weights).
    """
    stamp = report_stamp(model_dir)
    if stamp == 0.0:
        return None
    # new weights make the cached report stale: the weights' mtime is part of the key
    return _report(str(model_dir), stamp, fingerprint, _mtime(Path(model_dir) / GENERATOR_FILE))


def compute_report(
    model_dir: str | Path, dataset: str | None = None, progress: Callable[[str, int, int], object] | None = None
) -> None:
    """Run the full evaluation of a generator (minutes) on ``dataset`` (a VU dataset folder; None:
    the phantom demo dataset its card names, rebuilt if missing).

    Args:
        model_dir: the generator folder.
        dataset: the VU dataset folder, or None for the phantom demo dataset.
        progress: ``callback(stage, done, total)`` at every evaluation stage (None: silent).
    """
    import torch

    from synthvu_core.evaluation.report import evaluate_generator

    torch.set_num_threads(SAMPLING_THREADS)
    evaluate_generator(Path(model_dir), dataset=dataset, progress=progress or False)
    _report.clear()
    _generators.clear()


# ---- training record ---------------------------------------------------------------------------
def training_stamp(model_dir: str | Path) -> float:
    return _mtime(Path(model_dir) / "training" / "log.csv") + _mtime(Path(model_dir) / "training")


@st.cache_data(max_entries=16, ttl=CACHE_TTL_S, show_spinner=False)
def _training_record(model_dir: str, stamp: float) -> tuple[dict[str, np.ndarray] | None, list[tuple[int, str]]]:
    from synthvu_core.models.trainlog import montages, read_log

    return read_log(model_dir), [(step, str(p)) for step, p in montages(model_dir)]


def training_record(model_dir: str | Path) -> tuple[dict[str, np.ndarray] | None, list[tuple[int, str]]]:
    """(log columns or None where the generator has no training log, [(step, montage path)])."""
    return _training_record(str(model_dir), training_stamp(model_dir))


def training_montage(path: str, classes: list[str], shape: list[int]) -> np.ndarray:
    """A training montage (:func:`training_record`'s path) with each row labelled with its class."""
    from synthvu_core.models.trainlog import montage_picture

    return montage_picture(path, list(classes), (int(shape[-2]), int(shape[-1])))


# ---- generators and samples --------------------------------------------------------------------
@st.cache_resource(max_entries=3, show_spinner="Loading the generator…")
def _generator(model_dir: str, stamp: float) -> Generator:
    import torch

    from synthvu_core.models.registry import load_generator

    torch.set_num_threads(SAMPLING_THREADS)
    return load_generator(model_dir)


def generator(model_dir: str | Path) -> Generator:
    return _generator(str(model_dir), weights_stamp(model_dir))


def _check_count(n: int) -> None:
    from synthvu_core.errors import SelectionError

    if n < 1:
        raise SelectionError(f"asked for {n} samples: choose at least one VU")
    if n > MAX_SAMPLES:
        raise SelectionError(
            f"asked for {n} samples: the dashboard draws at most {MAX_SAMPLES} at a time (use the CLI for more)"
        )


@st.cache_data(max_entries=8, ttl=CACHE_TTL_S, show_spinner=False)  # the Generate page shows its own spinner
def samples(
    model_dir: str, stamp: float, n: int, position: str | None, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n`` VUs at ``position`` (None: the training prior): (uint8 ``[n, C, H, W]``, labels ``[n]``, classes)."""
    from synthvu_core.models.sampling import sample_uint8

    _check_count(n)
    s = sample_uint8(_generator(model_dir, stamp), n, position=position, seed=seed)  # uint8 batch by batch
    return s.images, np.asarray(s.labels), list(s.classes)


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 ``[h, w]`` grey image -> PNG file bytes (what ``st.image`` would encode on every page run)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@st.cache_data(max_entries=32, ttl=CACHE_TTL_S, show_spinner=False)  # the Generate page shows its own spinner
def sample_montage(
    model_dir: str, stamp: float, n: int, position: str | None, seed: int, slice_index: int | None
) -> tuple[bytes, dict[str, int]]:
    """(PNG of the montage of ``samples(...)``, VUs drawn per position): one slice of every VU with
    ``slice_index`` (rows by position), else every slice of the first 16 VUs, one VU per row; each row labelled.
    Cached, so a rerun of the Generate page (a reload, a new visitor, a change of layout back and forth)
    neither copies the samples out of their cache nor lays out, labels and encodes the picture again."""
    from dashboard.images import rows_by_position, rows_per_vu

    images, labels, classes = samples(model_dir, stamp, n, position, seed)
    if slice_index is not None:
        grid = rows_by_position(images, labels, classes, slice_index=slice_index, ncols=8)
    else:
        grid = rows_per_vu(images[:16], labels[:16], classes)
    counts = {classes[i]: int((labels == i).sum()) for i in sorted(set(labels.tolist()))}
    return png_bytes(grid), counts


@st.cache_data(max_entries=8, ttl=CACHE_TTL_S, show_spinner=False)  # interpolation() shows its spinner
def interpolation_strip(model_dir: str, stamp: float, start: str, end: str, steps: int, seed: int) -> bytes:
    """PNG of the middle slice of :func:`interpolation` (its steps left to right), labelled with its ends."""
    from dashboard.images import labelled_rows, strip

    walk = interpolation(model_dir, stamp, start, end, steps, seed)
    return png_bytes(labelled_rows([(f"from {start}\nto {end}", strip(walk[:, walk.shape[1] // 2]))]))


@st.cache_data(max_entries=8, ttl=CACHE_TTL_S, show_spinner="Interpolating…")
def interpolation(model_dir: str, stamp: float, start: str, end: str, steps: int, seed: int) -> np.ndarray:
    """uint8 ``[steps, C, H, W]``: a walk in latent and class space from ``start`` to ``end``."""
    from synthvu_core.models.sampling import interpolate

    return as_uint8(interpolate(_generator(model_dir, stamp), start, end, steps=steps, seed=seed).images)


@st.cache_data(max_entries=4, ttl=CACHE_TTL_S, show_spinner="Writing the file…")
def export_bytes(model_dir: str, stamp: float, n: int, position: str | None, seed: int, suffix: str) -> bytes:
    """The file ``synthvu_core.models.sampling.export`` writes for these samples, as bytes (``.zip``: the
    NIfTI and its positions CSV together)."""
    from synthvu_core.models.sampling import sample_to_file

    _check_count(n)
    gen = _generator(model_dir, stamp)
    with tempfile.TemporaryDirectory(prefix="synthvu-export-") as tmp:
        path = Path(tmp) / ("vus.nii.gz" if suffix == ".zip" else f"vus{suffix}")
        written = Path(sample_to_file(gen, n, path, position=position, seed=seed).path)
        # NIfTI goes out zipped with its positions CSV beside it, as the CLI writes them
        return _nifti_zip(written) if suffix == ".zip" else written.read_bytes()


def _nifti_zip(nifti: Path) -> bytes:
    """A zip of ``vus.nii.gz`` and ``vus.csv`` (each VU's position) written by ``sample_to_file``."""
    import io
    import zipfile

    from synthvu_core.models.sampling import positions_path

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.write(nifti, nifti.name)
        z.write(positions_path(nifti), positions_path(nifti).name)
    return buf.getvalue()


def prior_rows(generator: Generator, n: int, rows: np.ndarray, seed: int) -> np.ndarray:
    """Rows ``rows`` of the report's sample of ``n`` VUs (:func:`synthvu_core.models.sampling.sample_rows`)."""
    from synthvu_core.models.sampling import sample_rows

    return sample_rows(generator, n, rows, seed)


@st.cache_data(max_entries=8, ttl=CACHE_TTL_S, show_spinner="Regenerating the selected synthetic VUs…")
def synthetic_by_index(model_dir: str, stamp: float, n_synthetic: int, seed: int, rows: tuple[int, ...]) -> np.ndarray:
    """uint8 ``[len(rows), C, H, W]``: VUs ``rows`` of the report's deterministic synthetic sample
    (``n_synthetic`` VUs drawn from the prior with ``seed``)."""
    return as_uint8(prior_rows(_generator(model_dir, stamp), n_synthetic, np.asarray(rows), seed))


# ---- real data (never in public mode; button-triggered) -----------------------------------------
def dataset_key(card: Mapping[str, Any]) -> str:
    ds = card.get("dataset") or {}
    return json.dumps({"fingerprint": ds.get("fingerprint"), "recipe": ds.get("recipe"), "sketch": ds.get("sketch")},
                      sort_keys=True)


def cached_dataset_counts(card: dict[str, Any]) -> dict[str, Any] | None:
    """The counts of a generator's phantom dataset where it is already built in the cache (reads JSON only)."""
    from synthvu_core.data.build import cached_dataset_counts

    return cached_dataset_counts(card)


@st.cache_data(max_entries=16, ttl=CACHE_TTL_S, show_spinner=False)
def _design(key: str, public: bool, stamps: tuple[tuple[str, float, float], ...]) -> GeneratorDesign | None:
    from synthvu_core.data.build import generator_design

    return generator_design(json.loads(key), public=public)


def dataset_design(card: Mapping[str, Any], public: bool) -> GeneratorDesign | None:
    """A generator's dataset level by level where its table is on disk (no image read, nothing built; public mode
    looks in the phantom cache only): :func:`synthvu_core.data.build.generator_design`. Keyed by the candidate
    folders' card and table mtimes, so a rebuilt or newly placed dataset is read again."""
    from synthvu_core.data.build import dataset_folders
    from synthvu_core.names import UNITS_FILE

    keep = {k: card.get(k) for k in ("dataset", "scheme", "classes")}
    stamps = tuple((str(f), _mtime(f / CARD_FILE), _mtime(f / UNITS_FILE)) for f in dataset_folders(card, public))
    return _design(json.dumps(keep, sort_keys=True, default=str), public, stamps)


def is_phantom(card: Mapping[str, Any]) -> bool:
    return bool((card.get("dataset") or {}).get("recipe"))


@st.cache_resource(
    max_entries=2, show_spinner="Loading the VU dataset (the phantom is rebuilt if missing: a minute or two)…"
)
def _dataset(key: str, folder: str | None) -> VUDataset:
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.data.sketch import same_dataset
    from synthvu_core.errors import DataError

    spec = json.loads(key)
    fp, sketch = spec["fingerprint"], spec.get("sketch")
    if folder:
        ds = VUDataset.load(folder)
        if fp and not same_dataset(ds, fp, sketch, notice=True):
            beyond = " and its content differs beyond rounding" if sketch else ""
            raise DataError(
                f"{folder}: dataset fingerprint {ds.fingerprint} differs from the generator's {fp}{beyond}: another "
                "dataset"
            )
        return ds
    if not spec.get("recipe"):
        raise DataError("the generator was trained on your own NIfTI data: give its VU dataset folder")
    from synthvu_core.data.build import demo_dataset, recipe_from_dict

    return demo_dataset(fp, recipe=recipe_from_dict(spec["recipe"]), expected_sketch=sketch)


def real_dataset(card: Mapping[str, Any], folder: str | None = None) -> VUDataset:
    """The VU dataset the generator was trained on (checked against the card's fingerprint)."""
    return _dataset(dataset_key(card), folder or None)


def _loaded_key(card: Mapping[str, Any], folder: str | None) -> str:
    return f"{dataset_key(card)}|{folder or ''}"


def dataset_ready(card: Mapping[str, Any], folder: str | None = None) -> bool:
    """True once this session has loaded the dataset (a button did), so real VUs can be shown."""
    return bool(st.session_state.get("loaded_datasets", {}).get(_loaded_key(card, folder)))


def mark_dataset_loaded(card: Mapping[str, Any], folder: str | None = None) -> None:
    st.session_state.setdefault("loaded_datasets", {})[_loaded_key(card, folder)] = True


@st.cache_data(max_entries=16, ttl=CACHE_TTL_S, show_spinner=False)
def real_vus(key: str, folder: str | None, rows: tuple[int, ...]) -> np.ndarray:
    """uint8 ``[len(rows), C, H, W]``: dataset rows ``rows`` (real patients' VUs)."""
    ds = _dataset(key, folder)
    return np.asarray(ds.images[np.asarray(rows, dtype=int)])
