"""VUDataset: vertebral units as arrays, one table row per VU, a card and a patient-wise split.

On disk a dataset is a folder, written atomically::

    images.npy   uint8 [N, C, H, W]   (memory-mapped on load; x = u8 / 127.5 - 1)
    units.csv    one row per VU (columns: UNIT_COLUMNS)
    card.json    sources, fingerprint, counts per level/region/patient/split, split settings

In memory, :meth:`VUDataset.tensors` gives float32 in [-1, 1].
The fingerprint covers the image bytes and the VU identities, not the split, so one dataset can be
split in several ways and a generator card names both.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core import __version__, levels
from synthvu_core.errors import DataError, SelectionError
from synthvu_core.names import (
    CARD_FILE,
    IMAGES_FILE,
    LEDGER_FILE,
    MIN_RECALL_PATIENTS,
    SOURCE_COLUMN,
    SPLIT_RATIOS,
    UNITS_FILE,
)
from synthvu_core.storage import ARRAY_READ_ERRORS, array_read_problem, atomic_path

if TYPE_CHECKING:
    import pandas as pd

UNIT_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "level",  # VU name, e.g. "L4/L5"
    "region",  # C/T/L
    "source",  # image file name
    "center_vox_0",
    "center_vox_1",
    "center_vox_2",
    "center_world_x",
    "center_world_y",
    "center_world_z",
    "spacing_mm",  # in-plane pixel size of the crop
    "slice_mm",  # distance between the C parasagittal slices
    "crop_mm",  # in-plane field of view
    "split",  # train / holdout / reference
)
PARTS: tuple[str, ...] = ("train", "holdout", "reference")
#: a card.json larger than this is not read when asking whether a folder is a VU dataset
MAX_DATASET_CARD_BYTES = 64 << 20
CARD_VERSION = 1


@dataclass(frozen=True)
class SplitConfig:
    """Patient-wise split ratios and seed. Ratios are normalised to sum to one.

    ``stratify``: each part gets its share of every stratum of patients (same source and same levels, see
    :func:`patient_strata`), so no source or level lands in one part alone by chance; a dataset whose patients
    form one stratum (the phantom) splits exactly as without. Cards written before strata existed read
    ``stratify=False`` and keep the split they were trained on.
    """

    train: float = SPLIT_RATIOS[0]
    holdout: float = SPLIT_RATIOS[1]
    reference: float = SPLIT_RATIOS[2]
    seed: int = 0
    stratify: bool = True

    def counts(self, n_patients: int) -> dict[str, int]:
        r = np.array([self.train, self.holdout, self.reference], dtype=float)
        if (r < 0).any() or r.sum() <= 0:
            raise DataError(f"split ratios must be non-negative and not all zero: {r.tolist()}")
        r = r / r.sum()
        n_train = int(round(r[0] * n_patients))
        n_hold = int(round(r[1] * n_patients))
        n_hold = min(n_hold, n_patients - n_train)
        return {"train": n_train, "holdout": n_hold, "reference": n_patients - n_train - n_hold}

    @classmethod
    def parse(cls, text: str, seed: int = 0, *, stratify: bool = True) -> SplitConfig:
        """The split of ``--split TRAIN,HOLDOUT,REFERENCE`` (``data build`` and ``train``); one line where it is not
        three numbers."""
        try:
            ratios = [float(x) for x in text.split(",")]
        except ValueError:
            ratios = []
        if len(ratios) != 3:
            raise DataError(f"--split {text!r}: give three ratios TRAIN,HOLDOUT,REFERENCE such as 0.6,0.2,0.2")
        if not all(math.isfinite(r) and r >= 0 for r in ratios) or sum(ratios) <= 0:
            raise DataError(f"--split {text!r}: the ratios must be finite, non-negative and not all zero")
        return cls(*ratios, seed=seed, stratify=stratify)

    @classmethod
    def from_card(cls, split: dict[str, Any]) -> SplitConfig | None:
        """The split recorded in a dataset or generator card (None where it names no full split; a card without
        ``stratify`` was split before strata existed)."""
        keys = ("train", "holdout", "reference", "seed")
        if not isinstance(split, dict) or not set(keys) <= split.keys():
            return None
        return cls(**{k: split[k] for k in keys}, stratify=bool(split.get("stratify", False)))


def check_card(card: Any, where: Path) -> None:
    """Refuse a dataset card of an unknown version or without a fingerprint (:class:`DataError`)."""
    if not isinstance(card, dict):
        raise DataError(f"{where}: a dataset card must be a JSON object")
    version = card.get("card_version")
    if version != CARD_VERSION:
        raise DataError(f"{where}: unknown dataset card_version {version!r} (this code reads version {CARD_VERSION})")
    fp = card.get("fingerprint")
    if not isinstance(fp, str) or not fp:
        raise DataError(f"{where}: the dataset card has no fingerprint; rebuild the dataset with `data build`")


def is_dataset_folder(folder: Path) -> bool:
    """True where ``folder`` holds a VU dataset we wrote (card with a fingerprint, images, units)."""
    if not ((folder / IMAGES_FILE).is_file() and (folder / UNITS_FILE).is_file()):
        return False
    try:
        if (folder / CARD_FILE).stat().st_size > MAX_DATASET_CARD_BYTES:
            return False
        card = json.loads((folder / CARD_FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(card, dict) and isinstance(card.get("fingerprint"), str) and "card_version" in card


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> uint8 (values outside are clipped); a uint8 array is returned as it is."""
    if isinstance(x, np.ndarray) and x.dtype == np.uint8:
        return x
    return np.clip(np.rint((np.asarray(x, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_float(u8: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1]."""
    return np.asarray(u8, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def tile_montage(
    tiles: np.ndarray, ncols: int, *, gap: int = 2, margin: int | None = None, fill: int = 0, zoom: int = 1
) -> np.ndarray:
    """Grey tiles side by side: the one montage layout of datasets, samples, training and the dashboard.

    Args:
        tiles: ``[n, H, W]``, uint8 or float in [-1, 1] (scaled with :func:`to_uint8`).
        ncols: tiles per row (at most ``n``); the last row may be short.
        gap: pixels between neighbouring tiles.
        margin: pixels around the grid (default ``gap``).
        fill: grey level of gaps, margin and empty places.
        zoom: each tile enlarged this many times (nearest neighbour); gaps are not.

    Returns uint8 ``[height, width]``.
    """
    tiles = np.asarray(tiles)
    tiles = tiles if tiles.dtype == np.uint8 else to_uint8(tiles)
    if zoom > 1:
        tiles = np.repeat(np.repeat(tiles, zoom, axis=1), zoom, axis=2)
    n, h, w = tiles.shape
    margin = gap if margin is None else margin
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    out = np.full((nrows * (h + gap) - gap + 2 * margin, ncols * (w + gap) - gap + 2 * margin), fill, np.uint8)
    for i in range(n):
        row, col = divmod(i, ncols)
        y, x = margin + row * (h + gap), margin + col * (w + gap)
        out[y : y + h, x : x + w] = tiles[i]
    return out


#: Smallest label height (px) a labelled montage row carries, however small its tiles.
MIN_LABEL_PX = 14


def label_rows(
    rows: list[tuple[str, np.ndarray]], *, fill: int = 0, ink: int = 255, label_share: float = 0.45
) -> np.ndarray:
    """Montage rows stacked, each with its label (a level or position such as ``L4/L5``) written left of it.

    ``rows``: ``(label, uint8 [h, w])`` pairs; a label may hold several lines. The type is ``label_share``
    of the tallest row's height (at least :data:`MIN_LABEL_PX`), so it stays readable however the picture
    is scaled. ``fill`` is the grey of the label column and of padding, ``ink`` the label's.
    Returns uint8 ``[height, width]``.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not rows:
        raise ValueError("label_rows needs at least one row")
    height = max(img.shape[0] for _, img in rows)
    lines = max(label.count("\n") + 1 for label, _ in rows)
    font = ImageFont.load_default(size=max(MIN_LABEL_PX, int(height * label_share / lines)))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    pad = max(4, height // 6)
    label_w = max(int(probe.multiline_textbbox((0, 0), label, font=font)[2]) for label, _ in rows) + 2 * pad
    width = label_w + max(img.shape[1] for _, img in rows)
    out = []
    for label, img in rows:  # each row keeps its own height; a narrower one is padded on the right
        canvas = Image.new("L", (width, img.shape[0]), fill)
        canvas.paste(Image.fromarray(np.asarray(img, dtype=np.uint8)), (label_w, 0))
        ImageDraw.Draw(canvas).multiline_text((pad, img.shape[0] // 2), label, fill=ink, font=font, anchor="lm")
        out.append(np.asarray(canvas))
    return np.concatenate(out, axis=0)


def patient_strata(units: pd.DataFrame) -> dict[str, str]:
    """Each patient's stratum: its source (the ``site`` column, where the table has one) and the set of its levels,
    e.g. ``"chu2015|L1/L2,L2/L3,T11/T12"``."""
    cols = ["patient_id", "level"] + ([SOURCE_COLUMN] if SOURCE_COLUMN in units.columns else [])
    out: dict[str, str] = {}
    for pid, rows in units[cols].astype(str).groupby("patient_id", sort=True):
        site = ",".join(sorted(set(rows[SOURCE_COLUMN]))) if SOURCE_COLUMN in rows else ""
        out[str(pid)] = f"{site}|{','.join(sorted(set(rows['level'])))}"
    return out


def assign_split(patients: list[str], config: SplitConfig, strata: dict[str, str] | None = None) -> dict[str, str]:
    """Seeded patient -> part assignment; never a patient in two parts.

    The patients are lined up and cut into train, holdout and reference (sizes from :meth:`SplitConfig.counts`).
    Plain: the line is a seeded permutation. Stratified (``config.stratify`` and ``strata`` naming several): the
    k-th of a stratum's n patients (in the same seeded order) stands at (k + 1/2) / n of the line, so each part gets
    its share of every stratum within one patient. Either way a split with a smaller train share (same seed) trains
    on a subset of this one's train patients, never on its holdout; one stratum lines up as the plain permutation.
    """
    uniq = sorted(set(patients))
    order = np.random.default_rng(config.seed).permutation(len(uniq)).tolist()
    if config.stratify and strata is not None and len({strata[p] for p in uniq}) > 1:
        of = [strata[uniq[i]] for i in order]
        size = {s: of.count(s) for s in set(of)}
        seen = dict.fromkeys(size, 0)
        place = []
        for i, s in zip(order, of, strict=True):
            place.append(((seen[s] + 0.5) / size[s], s, i))
            seen[s] += 1
        order = [i for _, _, i in sorted(place)]
    counts = config.counts(len(uniq))
    out: dict[str, str] = {}
    start = 0
    for part in PARTS:
        for i in order[start : start + counts[part]]:
            out[uniq[i]] = part
        start += counts[part]
    return out


#: fewer training patients than this for a level is named by ``data build`` and ``train``: on the two-source lumbar
#: cohort of docs/real-data.md, T11/T12 (3 training patients, all from one source) read 0 in TSTR in most default runs,
#: and with 4 (20 training patients) at or below chance in about half
FEW_LEVEL_PATIENTS = 5


def thin_levels(
    units: pd.DataFrame, part: str = "train", minimum: int = FEW_LEVEL_PATIENTS, classes: list[str] | None = None
) -> dict[str, tuple[int, list[str]]]:
    """Each level of ``part`` (of ``classes`` where given) with fewer than ``minimum`` patients: its patient count and
    their sources (sorted), in anatomical order."""
    rows = units[units["split"] == part]
    if classes is not None:
        rows = rows[rows["level"].astype(str).isin(classes)]
    out: dict[str, tuple[int, list[str]]] = {}
    for level in sorted(rows["level"].astype(str).unique(), key=levels.vu_rank):
        at = rows[rows["level"].astype(str) == level]
        n = int(at["patient_id"].nunique())
        if n < minimum:
            sources = sorted(at[SOURCE_COLUMN].astype(str).unique()) if SOURCE_COLUMN in at else []
            out[level] = (n, sources)
    return out


def thin_level_warning(units: pd.DataFrame, classes: list[str] | None = None) -> str | None:
    """One line naming the levels (of ``classes`` where given) with few training patients (:func:`thin_levels`), or
    None."""
    thin = thin_levels(units, classes=classes)
    if not thin:
        return None
    each = ", ".join(f"{lev} ({n}{', all ' + src[0] if len(src) == 1 else ''})" for lev, (n, src) in thin.items())
    return (f"warning: fewer than {FEW_LEVEL_PATIENTS} training patients for {each}: a classifier trained on the "
            "samples may read such a level no better than chance (docs/real-data.md, \"Where TSTR loses\")")


def holdout_levels_unread(
    units: pd.DataFrame, classes: list[str] | None = None, holdout: pd.DataFrame | None = None
) -> dict[str, int]:
    """Each level of the train part of ``units`` (of ``classes`` where given) whose holdout has fewer than
    :data:`~synthvu_core.names.MIN_RECALL_PATIENTS` patients, with that count (0 where the holdout lacks it), in
    anatomical order: its TSTR recall gets no interval, so whether it is above chance cannot be told.

    ``holdout``: the units whose holdout part the evaluation reads, where it is not ``units``' own (``train --split``
    re-splits the training run's dataset; ``evaluate`` still reads the holdout of the dataset as built)."""
    rows = units if holdout is None else holdout
    train, hold = units[units["split"] == "train"], rows[rows["split"] == "holdout"]
    wanted = sorted(train["level"].astype(str).unique(), key=levels.vu_rank)
    out = {}
    for level in wanted if classes is None else [c for c in wanted if c in classes]:
        n = int(hold.loc[hold["level"].astype(str) == level, "patient_id"].nunique())
        if n < MIN_RECALL_PATIENTS:
            out[level] = n
    return out


def holdout_level_warning(
    units: pd.DataFrame, classes: list[str] | None = None, holdout: pd.DataFrame | None = None
) -> str | None:
    """One line naming the levels whose TSTR recall the holdout cannot put an interval on
    (:func:`holdout_levels_unread`), or None."""
    unread = holdout_levels_unread(units, classes, holdout)
    if not unread:
        return None
    each = ", ".join(f"{lev} ({n})" for lev, n in unread.items())
    return (f"warning: fewer than {MIN_RECALL_PATIENTS} holdout patients for {each}: such a level's TSTR recall "
            "is read on one patient or none, with no interval, so whether it is above chance cannot be told; more "
            "patients of that level, or a dataset built with a larger holdout share (`data build --split`), would "
            "tell")


def resplit_units(units: pd.DataFrame, split: SplitConfig) -> pd.DataFrame:
    """A copy of a VU table with its ``split`` column drawn anew under ``split`` (same patients, same strata):
    what :meth:`VUDataset.with_split` does, on the table alone."""
    assignment = assign_split(units["patient_id"].astype(str).tolist(), split, patient_strata(units))
    out = units.copy()
    out["split"] = units["patient_id"].astype(str).map(assignment)
    return out


@dataclass(frozen=True)
class LevelDesign:
    """One level of a split dataset: its VUs, its patients in each part (:data:`PARTS`) and, where the dataset has
    several sources, its patients per source (empty with one)."""

    level: str
    vus: int
    patients: dict[str, int]
    by_source: dict[str, int]


def level_design(units: pd.DataFrame) -> list[LevelDesign]:
    """Each level of ``units``, in anatomical order (:class:`LevelDesign`)."""
    several = SOURCE_COLUMN in units and units[SOURCE_COLUMN].nunique() > 1
    out = []
    for level, at in units.groupby(units["level"].astype(str), sort=False):
        parts = {p: int(at.loc[at["split"] == p, "patient_id"].nunique()) for p in PARTS}
        by = at.groupby(at[SOURCE_COLUMN].astype(str))["patient_id"].nunique() if several else {}
        out.append(LevelDesign(str(level), len(at), parts, {str(s): int(n) for s, n in dict(by).items()}))
    return sorted(out, key=lambda d: levels.vu_rank(d.level))


def level_rows(units: pd.DataFrame) -> list[str]:
    """One line per level, in anatomical order: its VUs, its patients in each part and its patients per source."""
    rows = []
    for d in level_design(units):
        parts = " / ".join(f"{p} {n}" for p, n in d.patients.items())
        line = f"{d.level:>8}  {d.vus:>4} VUs  patients: {parts}"
        if d.by_source:
            line += "  (patients by source: " + ", ".join(f"{s} {n}" for s, n in d.by_source.items()) + ")"
        rows.append(line)
    return rows


def design_warnings(
    units: pd.DataFrame, classes: list[str] | None = None, holdout: pd.DataFrame | None = None
) -> list[str]:
    """What a split leaves thin for the level scheme, as ``data build``, ``data show`` and ``train`` print it:
    levels with few training patients (:func:`thin_level_warning`) and levels whose recall the holdout cannot read
    (:func:`holdout_level_warning`; ``holdout`` as there)."""
    lines = (thin_level_warning(units, classes), holdout_level_warning(units, classes, holdout))
    return [line for line in lines if line is not None]


class VUDataset:
    """Vertebral units with their table and card.

    ``images`` is uint8 ``[N, C, H, W]``; ``units`` a pandas DataFrame with :data:`UNIT_COLUMNS`.
    """

    def __init__(self, images: np.ndarray, units: pd.DataFrame, card: dict[str, Any], root: Path | None = None):
        if images.ndim != 4 or images.dtype != np.uint8:
            raise DataError(f"VU images must be uint8 [N, C, H, W], got {images.dtype} {images.shape}")
        if len(units) != len(images):
            raise DataError(f"{len(images)} VU images but {len(units)} table rows")
        self.images = images
        self.units = units.reset_index(drop=True)
        self.card = card
        self.root = root
        #: the per-patient clinical table (:mod:`synthvu_core.data.clinical`), or None
        self.clinical: pd.DataFrame | None = None

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_units(
        cls,
        images: np.ndarray,
        units: pd.DataFrame | list[dict[str, Any]],
        *,
        split: SplitConfig = SplitConfig(),
        sources: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> VUDataset:
        """Assemble a dataset: assign the patient-wise split, compute fingerprint and card."""
        import pandas as pd

        units = pd.DataFrame(units).reset_index(drop=True)
        missing = [c for c in UNIT_COLUMNS if c not in units.columns and c != "split"]
        if missing:
            raise DataError(f"VU table lacks columns: {', '.join(missing)}")
        if len(units) == 0:
            raise DataError("no vertebral units were extracted: nothing to build a dataset from")
        units["patient_id"] = units["patient_id"].astype(str)
        assignment = assign_split(units["patient_id"].tolist(), split, patient_strata(units))
        units["split"] = units["patient_id"].map(assignment)
        units = units[list(UNIT_COLUMNS) + [c for c in units.columns if c not in UNIT_COLUMNS]]
        images = np.ascontiguousarray(images, dtype=np.uint8)
        card = {
            "card_version": CARD_VERSION,
            "fingerprint": fingerprint(images, units),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "code_version": __version__,
            "shape": list(images.shape[1:]),
            "n_units": int(len(units)),
            "sources": sorted(set(sources or units["source"].astype(str).tolist())),
            "split": {**asdict(split),
                      "patients": {p: sorted(k for k, v in assignment.items() if v == p) for p in PARTS}},
            **(extra or {}),
        }
        ds = cls(images, units, card)
        ds.card["counts"] = ds.counts()
        return ds

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the dataset folder atomically (a crash never leaves a folder that loads). The privacy ledger of a
        folder it replaces is kept: a rebuild holds the same patients, whose earlier runs still compose."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.mkdir()
            if (path / LEDGER_FILE).is_file():
                shutil.copy2(path / LEDGER_FILE, tmp / LEDGER_FILE)
            np.save(tmp / IMAGES_FILE, np.ascontiguousarray(self.images))
            self.units.to_csv(tmp / UNITS_FILE, index=False)
            if self.clinical is not None:
                from synthvu_core.data.clinical import CLINICAL_FILE, save_table

                save_table(self.clinical, tmp / CLINICAL_FILE)
            (tmp / CARD_FILE).write_text(json.dumps(self.card, indent=2) + "\n")
        self.root = path
        return path

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> VUDataset:
        import pandas as pd

        path = Path(path)
        if not path.is_dir():
            raise DataError(f"{path}: no VU dataset folder here")
        for f in (IMAGES_FILE, UNITS_FILE, CARD_FILE):
            if not (path / f).is_file():
                raise DataError(f"{path}: not a VU dataset ({f} is missing)")
        try:
            card = json.loads((path / CARD_FILE).read_text())
            images = np.load(path / IMAGES_FILE, mmap_mode="r" if mmap else None, allow_pickle=False)
            units = pd.read_csv(path / UNITS_FILE, dtype={"patient_id": str})
        except ARRAY_READ_ERRORS as e:
            raise DataError(f"{path}: cannot read VU dataset: {array_read_problem(e)}") from None
        check_card(card, path / CARD_FILE)
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(units):
            raise DataError(f"{path}: {IMAGES_FILE} {images.dtype}{list(images.shape)} does not match {UNITS_FILE} "
                            f"({len(units)} rows)")
        ds = cls(images, units, card, root=path)
        from synthvu_core.data.clinical import CLINICAL_FILE, load_table

        if (path / CLINICAL_FILE).is_file():
            ds.clinical = load_table(path / CLINICAL_FILE)
        return ds

    def attach_clinical(self, table: pd.DataFrame, source: str) -> None:
        """Keep a per-patient clinical table with the dataset (saved as ``clinical.csv``; the card says whence)."""
        from synthvu_core.data.clinical import clinical_card

        self.clinical = table.reset_index(drop=True)
        self.card["clinical"] = clinical_card(self.clinical, source)

    def with_split(self, split: SplitConfig) -> VUDataset:
        """The same VUs (same fingerprint) under another seeded patient-wise split.

        Used where a generator was trained on a split other than the dataset's default one (for
        example the leaky positive control, trained on few patients): its members are the train
        patients of that split, which the evaluation must use.
        """
        if SplitConfig.from_card(self.card.get("split", {})) == split:
            return self
        units = resplit_units(self.units, split)
        ids = units["patient_id"].astype(str)
        card = {
            **self.card,
            "split": {**asdict(split), "patients": {p: sorted(ids[units["split"] == p].unique()) for p in PARTS}},
        }
        ds = VUDataset(self.images, units, card, root=self.root)
        ds.card["counts"] = ds.counts()
        return ds

    def split_config(self) -> SplitConfig:
        return SplitConfig.from_card(self.card.get("split", {})) or SplitConfig()

    def split_strata(self) -> dict[str, str] | None:
        """Each patient's stratum where the split was stratified over several (a randomisation test of the split must
        then relabel within strata); None where the split was a plain permutation."""
        strata = patient_strata(self.units)
        if not self.split_config().stratify or len(set(strata.values())) < 2:
            return None
        return strata

    # ---- views --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.images)

    @property
    def fingerprint(self) -> str:
        return self.card["fingerprint"]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def tensors(self, idx: np.ndarray | None = None) -> np.ndarray:
        """float32 [n, C, H, W] in [-1, 1]."""
        return to_float(self.images if idx is None else self.images[np.asarray(idx)])

    def indices(self, part: str) -> np.ndarray:
        """Row indices of a split part (``train``, ``holdout`` or ``reference``)."""
        if part not in PARTS:
            raise SelectionError(f"unknown split part {part!r}; choose one of {', '.join(PARTS)}")
        return np.flatnonzero(self.units["split"].to_numpy() == part)

    def classes(self, scheme: str) -> list[str]:
        return levels.classes(scheme, self.units["level"].unique())

    def labels(self, scheme: str, classes: list[str] | None = None) -> np.ndarray:
        """Integer class of every VU under a conditioning scheme (``-1`` where not in ``classes``)."""
        classes = classes or self.classes(scheme)
        lookup = {c: i for i, c in enumerate(classes)}
        key = self.units["region"] if scheme == "region" else self.units["level"]
        return np.array([lookup.get(k, -1) for k in key.astype(str)], dtype=np.int64)

    def patients(self, part: str | None = None) -> list[str]:
        rows = self.units if part is None else self.units[self.units["split"] == part]
        return sorted(rows["patient_id"].astype(str).unique())

    def counts(self) -> dict[str, Any]:
        u = self.units
        return {
            "units": int(len(u)),
            "patients": int(u["patient_id"].nunique()),
            "per_level": {k: int(v)
                          for k, v in sorted(u["level"].value_counts().items(), key=lambda kv: levels.vu_rank(kv[0]))},
            "per_region": {r: int((u["region"] == r).sum()) for r in levels.REGIONS if (u["region"] == r).any()},
            "per_split": {p: {"units": int((u["split"] == p).sum()),
                              "patients": int(u.loc[u["split"] == p, "patient_id"].nunique())} for p in PARTS},
            "per_patient": {str(k): int(v) for k, v in sorted(u["patient_id"].value_counts().items())},
        }


def fingerprint(images: np.ndarray, units: pd.DataFrame) -> str:
    """Content hash of a dataset: image bytes + VU identities (patient, level, source)."""
    h = hashlib.sha256()
    h.update(str(tuple(images.shape)).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    buf = io.StringIO()
    units[["patient_id", "level", "source"]].astype(str).to_csv(buf, index=False)
    h.update(buf.getvalue().encode())
    return h.hexdigest()[:16]


def montage(dataset: VUDataset, *, per_level: int = 2, seed: int = 0, scale: int = 2) -> np.ndarray:
    """A uint8 grey picture ``[rows, cols]`` of VUs per level: one VU per row, its C slices left to right.

    Levels run superior first; within a level ``per_level`` VUs of different patients where possible
    (seeded). A label column names each row's level and patient (:func:`label_rows`).
    """
    u = dataset.units
    rng = np.random.default_rng(seed)
    picks: list[int] = []
    for level in levels.sort_vus(u["level"].astype(str).unique()):
        rows = np.flatnonzero(u["level"].astype(str).to_numpy() == level)
        rows = rows[rng.permutation(len(rows))]
        seen: set[str] = set()
        chosen = [i for i in rows if not (u.at[i, "patient_id"] in seen or seen.add(u.at[i, "patient_id"]))]
        chosen += [i for i in rows if i not in chosen]
        picks.extend(sorted(chosen[:per_level], key=lambda i: str(u.at[i, "patient_id"])))
    if not picks:
        raise SelectionError("the dataset holds no VU to draw")
    c, h, _ = dataset.shape
    gap, tile_h = 2, h * scale
    slices = np.stack([np.asarray(dataset.images[i]) for i in picks]).reshape(len(picks) * c, *dataset.shape[1:])
    grid = tile_montage(slices, c, gap=gap, fill=255, zoom=scale)
    # one labelled strip per VU (its level and patient), cut from the grid so gaps stay as drawn
    strips = [
        (f"{u.at[i, 'level']}\n{u.at[i, 'patient_id']}", grid[r * (tile_h + gap) : (r + 1) * (tile_h + gap)])
        for r, i in enumerate(picks)
    ]
    strips[-1] = (strips[-1][0], grid[(len(picks) - 1) * (tile_h + gap) :])
    return label_rows(strips, fill=255, ink=0, label_share=0.5)


def write_montage(dataset: VUDataset, path: str | Path, **kwargs: int) -> Path:
    """Write :func:`montage` as a PNG (atomically)."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(montage(dataset, **kwargs)).save(tmp, format="PNG")
    return path
