"""Per-patient clinical tables beside the VUs: the phantom's ground truth, or a user's CSV joined to a dataset.

A clinical table has one row per patient, keyed by ``patient_id``. Every other column is one of three kinds:

* ``numeric``: numbers only (age, a curvature angle);
* ``categorical``: text labels (sex);
* ``per_level``: ``<attribute>_<VU>``, e.g. ``grade_L4/L5``, a value for one disc of the patient
  (numeric or categorical, the same kind in every row).

The phantom writes its table from its ground truth (:func:`phantom_table`): age, sex, the balanced
curvature, a 1-5 degeneration grade per disc (``grade_<VU>``), the findings per level and a count per
finding kind. A user's table is read by :func:`read_clinical_csv`, which checks every row against the
dataset's patients and names each problem (row number, column, value) in one :class:`DataError`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core import levels
from synthvu_core.errors import DataError
from synthvu_core.names import CLINICAL_FILE

if TYPE_CHECKING:
    import pandas as pd

ID_COLUMN = "patient_id"
GRADE_ATTRIBUTE = "grade"  #: per-level columns ``grade_<VU>``: disc degeneration grade 1 (healthy) .. 5
GRADES: tuple[int, ...] = (1, 2, 3, 4, 5)
KINDS: tuple[str, ...] = ("numeric", "categorical", "per_level", "text")
#: problems named in one error at most (the rest are counted)
MAX_PROBLEMS = 20


def grade_of(degeneration: float) -> int:
    """Degeneration 0..1 -> grade 1..5 in five equal bands (1: below 0.2 ... 5: 0.8 and above)."""
    return int(min(5, max(1, math.floor(float(degeneration) * 5) + 1)))


def grade_column(vu: str) -> str:
    return f"{GRADE_ATTRIBUTE}_{vu}"


def split_level_column(column: str) -> tuple[str, str] | None:
    """``grade_L4/L5`` -> ``("grade", "L4/L5")``; None where the column is not per level."""
    if "_" not in column:
        return None
    attribute, _, vu = column.rpartition("_")
    if "/" not in vu or not attribute:
        return None
    return attribute, vu


def _is_vu(vu: str) -> bool:
    parts = vu.split("/")
    if len(parts) != 2:
        return False
    try:
        return levels.are_consecutive(levels.code(parts[0]), levels.code(parts[1]))
    except DataError:
        return False


# ---- the phantom's ground truth ----------------------------------------------------------------------


def phantom_row(index: int, seed: int = 0, contrast: str = "T2") -> dict[str, Any]:
    """Patient ``index``'s clinical row from the phantom's own parameters (no rendering)."""
    from synthvu_core.data import phantom

    params, _ = phantom._draw_patient(index, seed, contrast)
    params, _ = phantom._balanced_chain(params)
    names = phantom.BODY_NAMES
    row: dict[str, Any] = {ID_COLUMN: f"sub-{index:04d}", "age": params.age, "sex": params.sex}
    for key, value in vars(params.curvature).items():
        row[key] = round(float(value), 2)
    for i, degeneration in enumerate(params.degeneration):
        row[grade_column(f"{names[i]}/{names[i + 1]}")] = grade_of(degeneration)
    for kind in phantom.FINDING_KINDS:
        row[f"n_{kind}"] = sum(f.kind == kind for f in params.findings)
    row["findings"] = ";".join(f"{f.kind}@{f.level}" for f in params.findings) or "none"
    return row


def phantom_table(n_patients: int, seed: int = 0, contrast: str = "T2") -> pd.DataFrame:
    """The clinical table of a phantom cohort (patient ``i`` depends only on ``(seed, i)``)."""
    import pandas as pd

    return pd.DataFrame([phantom_row(i, seed, contrast) for i in range(n_patients)])


# ---- kinds and validation ------------------------------------------------------------------------------


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def column_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Kind of every column but the id (see the module docstring); ``findings`` lists are ``text``."""
    import pandas as pd

    kinds = {}
    for column in frame.columns:
        if column == ID_COLUMN:
            continue
        if column == "findings":
            kinds[column] = "text"
        elif split_level_column(column) is not None:
            kinds[column] = "per_level"
        else:
            kinds[column] = "numeric" if pd.api.types.is_numeric_dtype(frame[column]) else "categorical"
    return kinds


@dataclass
class _Problems:
    """Problems found in one file, each with its row number (the header is row 1)."""

    path: Path
    items: list[str]

    def add(self, text: str) -> None:
        self.items.append(text)

    def raise_any(self) -> None:
        if not self.items:
            return
        shown = "; ".join(self.items[:MAX_PROBLEMS])
        more = f"; and {len(self.items) - MAX_PROBLEMS} more" if len(self.items) > MAX_PROBLEMS else ""
        raise DataError(f"{self.path}: {len(self.items)} problem(s) in the clinical table: {shown}{more}")


def _read_rows(path: Path, problems: _Problems) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read the clinical table ({e})") from None
    rows = [(i, r) for i, r in enumerate(rows, start=1) if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{path}: the clinical table is empty")
    header = [h.strip() for h in rows[0][1]]
    if ID_COLUMN not in header:
        raise DataError(f"{path}: the clinical table has no {ID_COLUMN!r} column (columns: {', '.join(header)})")
    for name in {h for h in header if header.count(h) > 1 or not h}:
        problems.add(f"column {name!r} is empty or repeated in the header")
    body = []
    for number, cells in rows[1:]:
        if len(cells) != len(header):
            problems.add(f"row {number} has {len(cells)} fields, the header {len(header)}")
        else:
            body.append((number, [c.strip() for c in cells]))
    return header, body


def _check_ids(body: list[tuple[int, list[str]]], at: int, patients: set[str], problems: _Problems) -> None:
    seen: dict[str, int] = {}
    for number, cells in body:
        pid = cells[at]
        if not pid:
            problems.add(f"row {number} has no {ID_COLUMN}")
        elif pid in seen:
            problems.add(f"row {number} repeats patient {pid!r} of row {seen[pid]}")
        elif pid not in patients:
            problems.add(f"row {number}: patient {pid!r} is not in the dataset")
        seen.setdefault(pid, number)


def _check_column(name: str, values: list[tuple[int, str]], problems: _Problems) -> None:
    """One kind per column: all filled cells numbers, or none of them (mixed types are named by row)."""
    split = split_level_column(name)
    if split is not None and not _is_vu(split[1]):
        problems.add(f"column {name!r} names {split[1]!r}, which is not a VU of two consecutive bodies")
    filled = [(n, v) for n, v in values if v != ""]
    numbers = [(n, v) for n, v in filled if _number(v) is not None]
    if numbers and len(numbers) < len(filled):
        odd = next((n, v) for n, v in filled if _number(v) is None)
        problems.add(f"column {name!r} mixes numbers and text (row {odd[0]}: {odd[1]!r}, row {numbers[0][0]}: "
                     f"{numbers[0][1]!r})")
    if split is not None and split[0] == GRADE_ATTRIBUTE:  # every filled cell, text included, must be a grade
        for n, v in filled:
            if _number(v) not in GRADES:
                problems.add(f"row {n}: {name} = {v!r} is not a grade 1-5")


def read_clinical_csv(path: str | Path, patients: Iterable[str]) -> pd.DataFrame:
    """A per-patient CSV checked against a dataset's ``patients``; every problem is named in one :class:`DataError`.

    Refused: a missing ``patient_id`` column, a row with another number of fields than the header, an empty,
    repeated or unknown patient id, a column mixing numbers and text, a per-level column whose level is not a VU,
    a ``grade_<VU>`` outside 1-5. Empty cells are missing values. Patients of the dataset without a row are allowed.
    """
    import pandas as pd

    path = Path(path)
    problems = _Problems(path, [])
    header, body = _read_rows(path, problems)
    at = header.index(ID_COLUMN)
    _check_ids(body, at, set(patients), problems)
    for j, name in enumerate(header):
        if j != at and name:
            _check_column(name, [(n, cells[j]) for n, cells in body], problems)
    problems.raise_any()
    if not body:
        raise DataError(f"{path}: the clinical table has a header but no rows")
    frame = pd.DataFrame([cells for _, cells in body], columns=header).replace("", np.nan)
    for name in header:
        if name != ID_COLUMN and frame[name].notna().any() and all(
                _number(v) is not None for v in frame[name].dropna()):
            frame[name] = frame[name].astype(float)
            if (frame[name].dropna() % 1 == 0).all():
                frame[name] = frame[name].astype("Int64")
    return frame


def clinical_card(frame: pd.DataFrame, source: str) -> dict[str, Any]:
    """The dataset card's ``clinical`` entry: where the table came from, its columns' kinds, its patients."""
    return {"file": CLINICAL_FILE, "source": source, "patients": int(len(frame)), "columns": column_kinds(frame)}


def load_table(path: str | Path) -> pd.DataFrame:
    """A clinical table written by :func:`save_table` (ids as text)."""
    import pandas as pd

    try:
        return pd.read_csv(path, dtype={ID_COLUMN: str}, keep_default_na=True)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the clinical table ({e})") from None


def save_table(frame: pd.DataFrame, path: str | Path) -> None:
    frame.to_csv(path, index=False)


def dataset_table(dataset: Any) -> pd.DataFrame:
    """The clinical table of a dataset: the one saved with it, else (a phantom dataset built before tables were
    saved) its phantom cohort's ground truth; :class:`DataError` where it has none."""
    if getattr(dataset, "clinical", None) is not None:
        return dataset.clinical
    recipe = dataset.card.get("recipe")
    if isinstance(recipe, Mapping) and "n_patients" in recipe:
        return phantom_table(int(recipe["n_patients"]), int(recipe.get("seed", 0)), str(recipe.get("contrast", "T2")))
    where = dataset.root or "the dataset"
    raise DataError(f"{where}: no clinical table; rebuild it with `data build ... --clinical FILE.csv`")


def vu_grades(units: pd.DataFrame, table: pd.DataFrame, where: str | Path | None = None) -> np.ndarray:
    """The grade (1-5) of every VU from its patient's ``grade_<VU>`` column; 0 where the table has none.
    :class:`DataError` (naming ``where``, the table's file) for a filled cell that is not a grade 1-5 (a table
    joined before :func:`read_clinical_csv` refused them)."""
    import pandas as pd

    lookup: dict[tuple[str, str], int] = {}
    for column in table.columns:
        split = split_level_column(column)
        if split is None or split[0] != GRADE_ATTRIBUTE:
            continue
        for pid, value in zip(table[ID_COLUMN].astype(str), table[column]):
            if pd.isna(value):
                continue
            if _number(str(value)) not in GRADES:
                raise DataError(f"{where or 'the clinical table'}: patient {pid}: {column} = {str(value)!r} is not a "
                                "grade 1-5; correct the CSV and rebuild the dataset with `data build ... --clinical`")
            lookup[(pid, split[1])] = int(float(value))
    keys = zip(units["patient_id"].astype(str), units["level"].astype(str))
    return np.array([lookup.get(k, 0) for k in keys], dtype=np.int64)
