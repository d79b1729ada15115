"""Build a VU dataset from folders of NIfTI pairs, or from the built-in spine phantom.

``find_pairs`` pairs ``*_img.nii.gz`` with ``*_vert.nii.gz`` (the parts matched by the wildcards must
agree); ``build_dataset`` loads every pair in worker processes (:func:`~synthvu_core.data.nifti.load_pair`
then :func:`~synthvu_core.data.units.extract_units`), assembles a :class:`VUDataset` with a seeded
patient-wise split and writes it atomically. A bad pair stops the build with an error naming the file,
or with ``skip_bad=True`` is left out and listed in the card under ``skipped``.

``build_phantom_dataset`` writes a phantom cohort as NIfTI into a temporary folder and runs the very
same ingestion. ``demo_dataset`` builds the shipped demo recipe (:data:`DEMO_PHANTOM`) once into the
cache folder and checks its fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.data.dataset import (
    LevelDesign,
    SplitConfig,
    VUDataset,
    design_warnings,
    is_dataset_folder,
    level_design,
    resplit_units,
)
from synthvu_core.data.units import ExtractConfig
from synthvu_core.errors import DataError
from synthvu_core.names import (
    CARD_FILE,
    DATASETS_DIR,
    IMAGE_DIGESTS,
    IMAGE_GLOB,
    LABEL_GLOB,
    PATIENT_REGEX,
    SOURCE_COLUMN,
    UNITS_FILE,
)

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Pair:
    """One image / label-map pair; ``patient_id`` from the image file name."""

    image: Path
    labels: Path
    patient_id: str


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A file-name glob as a regex whose groups capture what the wildcards matched."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("(.*)")
        elif ch == "?":
            out.append("(.)")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z")


def _keyed(folder: Path, pattern: str) -> dict[tuple[str, ...], Path]:
    name_rx = _glob_regex(Path(pattern).name)
    out: dict[tuple[str, ...], Path] = {}
    for p in sorted(folder.glob(pattern)):
        m = name_rx.match(p.name)
        if p.is_file() and m:
            out[(str(p.parent.relative_to(folder)), *m.groups())] = p
    return out


def patient_id(path: str | Path, regex: str = PATIENT_REGEX) -> str:
    """Patient id from a file name: the ``patient`` group of ``regex``, else its first group, else the match."""
    name = Path(path).name
    try:
        m = re.search(regex, name)
    except re.error as e:
        raise DataError(f"patient regex {regex!r} is invalid: {e}") from None
    if not m:
        raise DataError(f"{path}: file name does not match the patient regex {regex!r}")
    pid = m.groupdict().get("patient") or (m.group(1) if m.groups() else m.group(0))
    if not pid:
        raise DataError(f"{path}: the patient regex {regex!r} matched an empty patient id")
    return pid


def image_digests(pairs: list[Pair], rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each patient's source images by content (sha256, 16 hex digits, sorted), of the ``pairs`` VUs were extracted
    from (``rows``; a skipped volume is nobody's identity): the patient's identity in the privacy ledger however the
    files or folders are named or grouped into builds (:mod:`synthvu_core.models.ledger`)."""
    out: dict[str, set[str]] = {}
    extracted = {(r["patient_id"], r["source"]) for r in rows}
    for p in (p for p in pairs if (p.patient_id, p.image.name) in extracted):
        h = hashlib.sha256()
        with open(p.image, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out.setdefault(p.patient_id, set()).add(h.hexdigest()[:16])
    return {pid: sorted(d) for pid, d in sorted(out.items())}


def same_scans(card: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The groups of patient ids of a dataset card whose source images share a digest (one scan under several ids:
    the privacy ledger counts them as one person, but the patient split may put them in different parts)."""
    owners: dict[str, set[str]] = {}
    for pid, digests in (card.get(IMAGE_DIGESTS) or {}).items():
        for d in digests:
            owners.setdefault(d, set()).add(pid)
    return sorted({tuple(sorted(ids)) for ids in owners.values() if len(ids) > 1})


def find_pairs(
    folder: str | Path,
    image_glob: str = IMAGE_GLOB,
    label_glob: str = LABEL_GLOB,
    *,
    patient_regex: str = PATIENT_REGEX,
    missing: list[tuple[Path, str]] | None = None,
) -> list[Pair]:
    """Image / label pairs in ``folder`` (sorted by image path).

    A file without its partner raises :class:`DataError` naming it, unless a ``missing`` list is
    given: then ``(file, problem)`` is appended to it and the file is left out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of NIfTI volumes")
    images = _keyed(folder, image_glob)
    label_maps = _keyed(folder, label_glob)
    problems: list[tuple[Path, str]] = []
    for key in sorted(set(images) - set(label_maps)):
        problems.append((images[key], f"image has no label map matching {label_glob!r}"))
    for key in sorted(set(label_maps) - set(images)):
        problems.append((label_maps[key], f"label map has no image matching {image_glob!r}"))
    if problems and missing is None:
        path, what = problems[0]
        raise DataError(f"{path}: {what}")
    if missing is not None:
        missing.extend(problems)
    pairs = [Pair(images[k], label_maps[k], patient_id(images[k], patient_regex))
             for k in sorted(images) if k in label_maps]
    if not pairs and not problems:
        raise DataError(f"{folder}: no image files match {image_glob!r}")
    return pairs


def check_dataset_out(out: str | Path, *, force: bool = False) -> Path:
    """Refuse (:class:`~synthvu_core.errors.OutputError`) an ``out`` that exists and is not a VU dataset
    folder (unless ``force``) or cannot be written; called before any work."""
    from synthvu_core.storage import check_replaceable

    return check_replaceable(out, is_dataset_folder, "VU dataset", force=force)


def _extract_pair(args: tuple[Pair, ExtractConfig, dict[int, int] | None]) -> tuple[np.ndarray, list[dict]] | str:
    """Worker: one pair -> (uint8 VUs, rows), or the error message of a user error."""
    from synthvu_core.data.nifti import load_pair
    from synthvu_core.data.units import check_anatomy, extract_units

    pair, config, mapping = args
    try:
        volume = load_pair(pair.image, pair.labels, mapping)
        if not mapping:
            check_anatomy(volume)
        return extract_units(volume, config, patient_id=pair.patient_id)
    except DataError as e:
        return str(e)


def extract_pairs(
    pairs: Sequence[Pair],
    config: ExtractConfig = ExtractConfig(),
    *,
    mapping: Mapping[int, int] | None = None,
    workers: int | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> tuple[np.ndarray, list[dict[str, Any]], list[dict[str, str]]]:
    """Extract the VUs of many pairs in parallel: ``(uint8 [N, C, H, W], rows, skipped)``.

    Results keep the order of ``pairs`` whatever the number of workers, so the same inputs give the
    same dataset fingerprint. ``workers`` defaults to the CPU count; ``1`` runs in this process.
    """
    from tqdm.auto import tqdm

    mapping = dict(mapping) if mapping else None
    jobs = [(p, config, mapping) for p in pairs]
    n_workers = min(len(jobs), workers or os.cpu_count() or 1)
    results: list[tuple[np.ndarray, list[dict[str, Any]]] | str | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc="volumes", unit="vol", disable=None if progress else True)

    def take(i: int, res: tuple[np.ndarray, list[dict[str, Any]]] | str) -> None:
        bar.update(1)
        if isinstance(res, str) and not skip_bad:
            raise DataError(res)
        results[i] = res

    try:
        if n_workers <= 1:
            for i, job in enumerate(jobs):
                take(i, _extract_pair(job))
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                futures = {pool.submit(_extract_pair, job): i for i, job in enumerate(jobs)}
                try:
                    for fut in as_completed(futures):
                        take(futures[fut], fut.result())
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    finally:
        bar.close()

    shape = (0, *config.shape)
    arrays, rows, skipped = [], [], []
    for pair, res in zip(pairs, results):
        if isinstance(res, str):
            skipped.append({"file": pair.image.name, "error": res})
            continue
        arrays.append(res[0])
        rows.extend(res[1])
    images = np.concatenate(arrays) if arrays else np.zeros(shape, np.uint8)
    return images, rows, skipped


def _nothing_extracted(dirs: list[Path], missing: list[tuple[Path, str]], skipped: list[dict]) -> DataError:
    """The one-line error of a build where no VU could be extracted, naming the first skip."""
    every = [{"error": f"{p}: {what}"} for p, what in missing] + skipped
    detail = f"; {len(every)} skipped, first: {every[0]['error']}" if every else ""
    return DataError(f"{', '.join(str(d) for d in dirs)}: no vertebral units could be extracted{detail}")


def build_dataset(
    images_dir: str | Path | Sequence[str | Path],
    out: str | Path | None,
    *,
    config: ExtractConfig = ExtractConfig(),
    split: SplitConfig = SplitConfig(),
    image_glob: str = IMAGE_GLOB,
    label_glob: str = LABEL_GLOB,
    patient_regex: str = PATIENT_REGEX,
    mapping: Mapping[int, int] | str | None = None,
    workers: int | None = None,
    skip_bad: bool = False,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
    force: bool = False,
    sources: str | Path | None = None,
    harmonisation: str = "nyul",
    clinical: str | Path | None = None,
) -> VUDataset:
    """Folder(s) of NIfTI pairs -> a saved :class:`VUDataset` (``out=None``: not saved).

    Each VU's source (column ``site``) is its folder's name, or its image's row of the ``sources`` CSV
    (:func:`~synthvu_core.data.harmonise.read_sources`); intensities are then harmonised between sources
    (``harmonisation``: ``nyul`` or ``none``; :func:`~synthvu_core.data.harmonise.harmonise`), and the
    card records the per-source histograms before and after. ``clinical``: a per-patient CSV joined to the
    dataset (:func:`~synthvu_core.data.clinical.read_clinical_csv`; checked before anything is written).

    An existing ``out`` that is not a VU dataset folder is refused before any work unless ``force``
    (:func:`check_dataset_out`). With several folders, patient ids are prefixed with the folder name
    (``chu2015_sub-02``) so that equal file names in two studies never merge two people. Several volumes of one
    patient id in one folder stay one patient (the split keeps them together).
    """
    from synthvu_core import levels
    from synthvu_core.data import harmonise

    if harmonisation not in harmonise.METHODS:
        raise DataError(f"unknown harmonisation {harmonisation!r}; choose one of {', '.join(harmonise.METHODS)}")
    table = harmonise.read_sources(sources) if sources is not None else None
    if out is not None:
        check_dataset_out(out, force=force)
    dirs = [Path(images_dir)] if isinstance(images_dir, str | Path) else [Path(d) for d in images_dir]
    if not dirs:
        raise DataError("no folder of NIfTI volumes given")
    mapping = levels.parse_mapping(mapping) if not isinstance(mapping, Mapping) else dict(mapping)
    missing: list[tuple[Path, str]] = []
    pairs, folder_of = _pairs_of(dirs, image_glob, label_glob, patient_regex, missing if skip_bad else None)
    site = {(p.patient_id, p.image.name): harmonise.source_of(p.image, table, sources) for p in pairs}
    images, rows, skipped = extract_pairs(pairs, config, mapping=mapping, workers=workers, skip_bad=skip_bad,
                                          progress=progress)
    for row in rows:
        row[SOURCE_COLUMN] = site[(row["patient_id"], row["source"])]
    images, harmonised = harmonise.harmonise(images, [r[SOURCE_COLUMN] for r in rows], harmonisation)
    # the same file name in two folders is two sources: the card names each with its folder (the VU table keeps
    # the file name, so datasets built before keep their fingerprint; the patient id already carries the folder)
    files = {f"{folder_of[(r['patient_id'], r['source'])]}/{r['source']}" for r in rows} if folder_of else None
    if not rows:
        raise _nothing_extracted(dirs, missing, skipped)
    card_extra = {
        "extract": config.as_dict(),
        "ingest": {
            "folders": [d.name for d in dirs], "image_glob": image_glob, "label_glob": label_glob,
            "patient_regex": patient_regex,
            "mapping": {str(k): int(v) for k, v in mapping.items()} if mapping else None,
            "volumes": len(pairs) - len(skipped), "sources_csv": None if sources is None else Path(sources).name,
        },
        "harmonisation": harmonised,
        IMAGE_DIGESTS: image_digests(pairs, rows),
        "skipped": [{"file": p.name, "error": f"{p}: {what}"} for p, what in missing] + skipped,
        **(extra or {}),
    }
    ds = VUDataset.from_units(images, rows, split=split, sources=sorted(files) if files else None, extra=card_extra)
    if clinical is not None:
        from synthvu_core.data.clinical import read_clinical_csv

        ds.attach_clinical(read_clinical_csv(clinical, ds.patients()), Path(clinical).name)
    if out is not None:
        ds.save(out)
    return ds


def _pairs_of(
    dirs: list[Path], image_glob: str, label_glob: str, patient_regex: str, missing: list[tuple[Path, str]] | None
) -> tuple[list[Pair], dict[tuple[str, str], str]]:
    """Every folder's image/label pairs, and (with several folders) each pair's folder name by
    ``(patient id, image file name)``; with several folders a patient id is prefixed with its folder's name.
    ``missing``: where an unpaired image is listed instead of refused (``skip_bad``)."""
    pairs: list[Pair] = []
    folder_of: dict[tuple[str, str], str] = {}
    for d in dirs:
        found = find_pairs(d, image_glob, label_glob, patient_regex=patient_regex, missing=missing)
        if len(dirs) > 1:
            found = [Pair(p.image, p.labels, f"{d.name}_{p.patient_id}") for p in found]
            folder_of.update({(p.patient_id, p.image.name): d.name for p in found})
        pairs.extend(found)
    return pairs, folder_of


# ---- phantom --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhantomRecipe:
    """Everything that determines a phantom dataset; ``name`` is its cache folder."""

    name: str
    n_patients: int
    seed: int = 0
    contrast: str = "T2"
    config: ExtractConfig = field(default_factory=ExtractConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    lr_mm: float = 2.0  #: distance between the phantom's sagittal slices (:data:`~synthvu_core.data.phantom.LR_MM`)

    @classmethod
    def for_cohort(
        cls,
        n_patients: int,
        *,
        seed: int = 0,
        contrast: str = "T2",
        config: ExtractConfig = ExtractConfig(),
        split: SplitConfig = SplitConfig(),
    ) -> PhantomRecipe:
        """A recipe named after its cohort: ``phantom-<n>-s<seed>-<contrast>``, and for sub-volumes
        ``...-sv<D>x<H>x<W>-<mm>mm``. A sub-volume finer than the phantom's 2 mm between sagittal slices
        renders the phantom with slices that far apart (:func:`phantom_slice_mm`)."""
        name = f"phantom-{n_patients}-s{seed}-{contrast.lower()}"
        lr_mm = 2.0
        if config.unit == "subvolume":
            name += f"-sv{'x'.join(map(str, config.shape))}-{config.spacing_mm:g}mm"
            lr_mm = phantom_slice_mm(config.spacing_mm)
        return cls(name, n_patients, seed, contrast, config, split, lr_mm)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PhantomRecipe:
        """The recipe a card's ``recipe`` entry (:meth:`as_dict`) describes."""
        return cls(
            name=d["name"],
            n_patients=int(d["n_patients"]),
            seed=int(d.get("seed", 0)),
            contrast=d.get("contrast", "T2"),
            config=ExtractConfig(**d.get("extract", {})),
            split=SplitConfig(**d.get("split", {})),
            lr_mm=float(d.get("lr_mm", 2.0)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_patients": self.n_patients,
            "seed": self.seed,
            "contrast": self.contrast,
            "extract": self.config.as_dict(),
            "split": {
                "train": self.split.train,
                "holdout": self.split.holdout,
                "reference": self.split.reference,
                "seed": self.split.seed,
                **({} if self.split.stratify else {"stratify": False}),  # recipes without the key stay as they were
            },
            **({"lr_mm": self.lr_mm} if self.lr_mm != 2.0 else {}),  # VU recipes stay as they were
        }


def phantom_slice_mm(spacing_mm: float) -> float:
    """The phantom's distance between sagittal slices for sub-volumes of ``spacing_mm``: its default 2 mm, or
    the spacing itself where that is finer (so no sub-volume voxel is interpolated across a thicker slice)."""
    from synthvu_core.data.phantom import LR_MM

    return float(min(LR_MM, max(0.25, spacing_mm)))


#: The shipped demo dataset: 120 phantom patients (23 VUs each, C2/C3 ... L5/S1), seed 0.
DEMO_PHANTOM = PhantomRecipe(name="phantom-demo-120-s0", n_patients=120, seed=0, contrast="T2")


def build_phantom_dataset(
    recipe: PhantomRecipe,
    out: str | Path | None,
    *,
    workers: int | None = None,
    progress: bool = True,
    force: bool = False,
    clinical: str | Path | None = None,
) -> VUDataset:
    """Phantom cohort -> NIfTI in a temporary folder -> the same ingestion as real data -> dataset, with the
    cohort's clinical ground truth (:func:`~synthvu_core.data.clinical.phantom_table`) as its clinical table.

    Args:
        recipe: the cohort (patients, seed, contrast), the VU extraction and the split; stored in the card.
        out: folder the dataset is saved to; ``None``: not saved.
        workers: processes for rendering and extraction (default: the CPU count).
        progress: show a progress bar.
        force: replace ``out`` even where it exists and is not a VU dataset folder.
        clinical: a per-patient CSV to join instead of the phantom's own table.
    """
    from synthvu_core.data import clinical as clinical_table
    from synthvu_core.data import phantom

    if recipe.n_patients < 1:
        raise DataError(f"a phantom dataset needs at least one patient, got {recipe.n_patients}")
    if out is not None:
        check_dataset_out(out, force=force)
    with tempfile.TemporaryDirectory(prefix="synthvu-phantom-") as tmp:
        folder = Path(tmp) / "phantom"  # the card names the folder: keep it stable
        phantom.write_cohort(folder, recipe.n_patients, seed=recipe.seed, contrast=recipe.contrast, workers=workers,
                             lr_mm=recipe.lr_mm)
        ds = build_dataset(
            folder,
            None,
            config=recipe.config,
            split=recipe.split,
            workers=workers,
            progress=progress,
            extra={"recipe": recipe.as_dict()},
            clinical=clinical,
        )
    if clinical is None:
        table = clinical_table.phantom_table(recipe.n_patients, recipe.seed, recipe.contrast)
        ds.attach_clinical(table, "phantom ground truth")
    if out is not None:
        ds.save(out)
    return ds


def cache_root() -> Path:
    """``$SYNTHVU_CACHE`` or ``~/.cache/synthvu``."""
    env = os.environ.get("SYNTHVU_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "synthvu"


def cached_dataset_counts(card: dict[str, Any]) -> dict[str, Any] | None:
    """A generator card's phantom dataset counts, read from the cache's dataset card where that dataset is already
    built (builds nothing, reads no images); None otherwise.

    The build is the card's where it has the card's fingerprint, or, on a machine whose float kernels round the
    phantom differently, where it was built from the card's recipe (split included) and its VU table is the one of
    the card's content sketch (:mod:`synthvu_core.data.sketch`): the counts do not depend on pixel values."""
    from synthvu_core.storage import SAFE_NAME

    recipe = (card.get("dataset") or {}).get("recipe") or {}
    if not isinstance(recipe, dict) or not recipe.get("name"):
        return None
    name = recipe["name"]
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        return None  # not a plain folder name: never read as a path
    folder = cache_root() / DATASETS_DIR / name
    try:
        ds = json.loads((folder / CARD_FILE).read_text())
        if ds.get("fingerprint") == card["dataset"].get("fingerprint"):
            return ds.get("counts")
        sketch = card["dataset"].get("sketch")
        if not isinstance(sketch, dict) or not sketch.get("units") or ds.get("recipe") != recipe:
            return None
        import pandas as pd

        from synthvu_core.data.sketch import units_digest

        same = units_digest(pd.read_csv(folder / UNITS_FILE, dtype={"patient_id": str})) == sketch["units"]
    except (OSError, ValueError, KeyError):
        return None
    return ds.get("counts") if same else None


@dataclass(frozen=True)
class GeneratorDesign:
    """A generator's dataset level by level, as it was trained and is evaluated (:func:`generator_design`)."""

    folder: str
    levels: list[LevelDesign]
    #: patients in each part, every level together (training patients under the generator's split)
    patients: dict[str, int]
    train_vus: int
    #: what ``train`` printed of that split (level scheme only; :func:`~synthvu_core.data.dataset.design_warnings`)
    warnings: list[str]
    #: False where the generator's training patients include holdout patients of the dataset: ``evaluate`` refuses it
    nested: bool


def dataset_folders(card: Mapping[str, Any], public: bool = False) -> list[Path]:
    """Where the dataset a generator card names may lie: the folder as given to ``train`` (never in public mode: a
    shared dashboard opens no folder a card names), then the phantom's build in the cache (a plain name)."""
    from synthvu_core.storage import SAFE_NAME

    ds = card.get("dataset") or {}
    folders = [Path(ds["path"])] if not public and isinstance(ds.get("path"), str) and ds["path"] else []
    recipe = ds.get("recipe")
    name = recipe.get("name") if isinstance(recipe, Mapping) else None
    if isinstance(name, str) and SAFE_NAME.fullmatch(name) and ".." not in name:
        folders.append(cache_root() / DATASETS_DIR / name)
    return folders


def _table_on_disk(card: Mapping[str, Any], public: bool) -> tuple[Path, dict[str, Any], pd.DataFrame] | None:
    """(folder, dataset card, VU table) of the first of :func:`dataset_folders` holding the card's fingerprint; the
    images are never read."""
    import pandas as pd

    for folder in dataset_folders(card, public):
        if not is_dataset_folder(folder):
            continue
        meta = json.loads((folder / CARD_FILE).read_text())
        if meta.get("fingerprint") == (card.get("dataset") or {}).get("fingerprint"):
            return folder, meta, pd.read_csv(folder / UNITS_FILE, dtype={"patient_id": str})
    return None


def generator_design(card: Mapping[str, Any], public: bool = False) -> GeneratorDesign | None:
    """Each level's VUs and patients per part (and per source) as a generator was trained and is evaluated, read from
    the dataset's table where it is on disk (:func:`dataset_folders`): training patients under the generator's split
    (``train --split`` may re-split), holdout and reference patients as ``evaluate`` reads them
    (:func:`synthvu_core.evaluation.report.evaluation_datasets`: the dataset's split, drawn with the card's
    ``stratify``); with the warnings ``train`` printed. None where the table is not found or cannot be read: this
    feeds a page, which must draw whatever a folder holds."""
    try:
        found = _table_on_disk(card, public)
        if found is None:
            return None
        folder, meta, units = found
        return _design(card, folder, meta, units)
    except (DataError, OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None


def _design(card: Mapping[str, Any], folder: Path, meta: dict[str, Any], units: pd.DataFrame) -> GeneratorDesign:
    built_split = SplitConfig.from_card(meta.get("split") or {}) or SplitConfig()
    split = SplitConfig.from_card((card.get("dataset") or {}).get("split") or {})
    built = units
    if split is not None and split.stratify != built_split.stratify:  # as evaluate draws it
        built = resplit_units(units, replace(built_split, stratify=split.stratify))
    trained = built if split is None or split == replace(built_split, stratify=split.stratify) else resplit_units(
        built, split)
    level = card.get("scheme") == "level"
    classes = [str(c) for c in card.get("classes") or []] or None
    rows = level_design(built)
    if trained is not built:
        train = {d.level: d.patients["train"] for d in level_design(trained)}
        rows = [replace(d, patients={**d.patients, "train": train.get(d.level, 0)}) for d in rows]
    in_train = trained["split"] == "train"
    held = set(built.loc[built["split"] == "holdout", "patient_id"].astype(str))
    patients = {part: int(u.loc[u["split"] == part, "patient_id"].nunique())
                for part, u in (("train", trained), ("holdout", built), ("reference", built))}
    return GeneratorDesign(
        folder=str(folder), levels=rows, patients=patients, train_vus=int(in_train.sum()),
        warnings=design_warnings(trained, classes, holdout=built) if level else [],
        nested=held.isdisjoint(trained.loc[in_train, "patient_id"].astype(str)),
    )


def demo_dataset(
    expected_fingerprint: str | None = None,
    *,
    recipe: PhantomRecipe = DEMO_PHANTOM,
    progress: bool = False,
    expected_sketch: Mapping[str, Any] | None = None,
) -> VUDataset:
    """The demo dataset, built on first use into ``<cache>/datasets/<recipe.name>`` (atomically).

    A cached build that is not the dataset of ``expected_fingerprint`` (left by another code version) is rebuilt
    once; :class:`DataError` naming the folder is raised only when the fresh build is not it either (a generator
    trained on another build). A build with other bytes whose content matches ``expected_sketch`` (the dataset's
    content sketch, :mod:`synthvu_core.data.sketch`) is the same phantom rounded by another CPU's float kernels: it
    is used, with a notice on stderr.
    """
    from synthvu_core.data.sketch import same_dataset
    from synthvu_core.storage import inside, safe_name

    folder = cache_root() / DATASETS_DIR / safe_name(recipe.name, "phantom recipe", "name", DataError)
    inside(cache_root() / DATASETS_DIR, folder)  # a plain name cannot leave it; checked before anything is replaced

    def build() -> VUDataset:
        # never forced: an existing folder is replaced only where it is a VU dataset folder (or empty)
        build_phantom_dataset(recipe, folder, progress=progress)
        return VUDataset.load(folder)

    cached = (folder / CARD_FILE).is_file()
    ds = VUDataset.load(folder) if cached else build()
    if not same_dataset(ds, expected_fingerprint, expected_sketch) and cached:
        ds = build()
    if not same_dataset(ds, expected_fingerprint, expected_sketch, notice=True):
        raise DataError(
            f"{folder}: demo dataset fingerprint {ds.fingerprint} differs from the expected {expected_fingerprint} "
            "even after a fresh build: the generator was trained on another build of the phantom"
            + ("" if expected_sketch is None else " (its content differs beyond rounding)")
        )
    return ds


def recipe_from_dict(d: Mapping[str, Any]) -> PhantomRecipe:
    """The :class:`PhantomRecipe` a card records (``dataset.recipe``); :class:`DataError` where it cannot be read."""
    if d.get("name") == DEMO_PHANTOM.name:
        return DEMO_PHANTOM
    from synthvu_core.storage import safe_name

    safe_name(d.get("name"), "the card's dataset.recipe", "name", DataError)  # it names a cache folder
    try:
        return PhantomRecipe.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"the card's phantom recipe cannot be rebuilt ({type(e).__name__}: {e})") from None


def recipe_family(recipe: Mapping[str, Any] | None) -> str | None:
    """The family of a phantom cohort: its recipe without the name and the phantom seed, so cohorts drawn by the
    same recipe with other seeds (replicates, twins) share it; None for a dataset without a phantom recipe.

    Runs on cohorts of one family differ in their patients only, so their spread is the run-to-run spread of the
    recipe (each still evaluated on its own holdout)."""
    if not isinstance(recipe, Mapping) or "n_patients" not in recipe:
        return None
    rest = {k: v for k, v in recipe.items() if k not in ("name", "seed")}
    return f"phantom-{recipe['n_patients']}-{str(recipe.get('contrast', 'T2')).lower()} " + json.dumps(
        rest, sort_keys=True, separators=(",", ":"))


def card_dataset_origin(dataset: VUDataset) -> dict[str, Any]:
    """Where a generator card says its dataset came from: a phantom's recipe with its content sketch (to rebuild it
    and to recognise a rebuild on another machine, :mod:`synthvu_core.data.sketch`), or a user dataset's sources
    (no sketch: sums of private images do not go out with a generator)."""
    from synthvu_core.data.sketch import content_sketch

    if dataset.card.get("recipe") is not None:  # the sketch names the bytes it was taken from
        sketch = {"fingerprint": dataset.fingerprint, **content_sketch(dataset.images, dataset.units)}
        return {"recipe": dataset.card["recipe"], "sketch": sketch}
    return {"sources": dataset.card.get("sources", [])}


def card_dataset_path(dataset: VUDataset) -> str | None:
    """The dataset folder a generator card records: the path as given, None for an unsaved dataset or
    a phantom built into the cache (its recipe rebuilds it; no machine path goes into the card)."""
    root = getattr(dataset, "root", None)
    if root is None:
        return None
    try:
        if dataset.card.get("recipe") and Path(root).resolve().is_relative_to(cache_root().resolve()):
            return None
    except OSError:
        pass
    return str(root)


def card_dataset(dataset: VUDataset, n_train: int) -> dict[str, Any]:
    """The ``dataset`` block of a generator card, the same for every architecture: fingerprint, split (never its
    patient lists), the part trained on and its size, the median spacing (slice, in-plane, in-plane), the folder as
    given (:func:`card_dataset_path`, which :func:`dataset_of_card` reads back) and the origin
    (:func:`card_dataset_origin`)."""
    units = dataset.units
    in_plane = float(units["spacing_mm"].median())
    split = {k: v for k, v in dataset.card.get("split", {}).items() if k != "patients"}  # never list patients
    return {
        "fingerprint": dataset.fingerprint,
        "split": split,
        "part": "train",
        "n_train": n_train,
        "spacing": [float(units["slice_mm"].median()), in_plane, in_plane],
        "path": card_dataset_path(dataset),
        **card_dataset_origin(dataset),
    }


def dataset_of_card(card: Mapping[str, Any], model_dir: str | Path = "MODEL", command: str = "evaluate") -> VUDataset:
    """The dataset a generator card remembers: its ``dataset.path`` (as given to ``train``) where that
    folder holds the card's fingerprint, else its phantom ``recipe`` (rebuilt into the cache), else a
    :class:`DataError` saying exactly which ``--dataset`` to pass to ``command`` (the CLI command asking).
    Never falls back to the demo."""
    from synthvu_core.data.sketch import same_dataset

    ds = card.get("dataset") or {}
    fp, path, recipe, sketch = ds.get("fingerprint"), ds.get("path"), ds.get("recipe"), ds.get("sketch")
    found = None
    if isinstance(path, str) and path:
        try:
            found = VUDataset.load(path)
        except DataError:
            found = None
        if found is not None and same_dataset(found, fp, sketch, notice=True):
            return found
    if recipe:
        return demo_dataset(fp, recipe=recipe_from_dict(recipe), expected_sketch=sketch)
    where = f"{Path(model_dir) / CARD_FILE}"
    if isinstance(path, str) and path:
        why = (
            f"its dataset folder {path} holds another dataset ({found.fingerprint})"
            if found is not None
            else f"its dataset folder {path} is not there (relative paths are read from the current folder)"
        )
    else:
        why = "the card does not say where that dataset is"
    raise DataError(
        f"{where}: the generator was trained on your own VU dataset (fingerprint {fp}) and {why}; "
        f"pass it: `python -m synthvu_core {command} {model_dir} --dataset DATASET_FOLDER`"
    )
