"""Joint generator of synthetic patients: a clinical row, then that patient's VUs conditioned on each disc's grade.

Two released parts in one generator folder:

* the **VU generator**: an AC-GAN conditioned on the VU's position (the card's scheme) *and* its disc's
  degeneration grade. The grade enters G through the second-condition path the AC-GAN already has (a
  per-condition scale and shift after every stage, and a second auxiliary head on D); its condition names are
  ``grade 1`` ... ``grade 5``. It is trained by the ordinary trainer on a view of the dataset whose second
  condition column holds each VU's grade from the clinical table (the fingerprint, which covers images, patients,
  levels and files, is unchanged, so the privacy ledger composes over the same dataset).
* the **synthetic table** (``clinical_synthetic.csv``): rows sampled once from a tabular synthesiser fitted on the
  train patients' rows (:mod:`synthvu_core.models.tabular`). The synthesiser itself is not kept: its saved form is
  a pickle, which this project never loads. A synthetic patient is a row of that table.

:func:`sample_patients` draws synthetic patients and, for each, one VU per requested level with the row's grade there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core import levels
from synthvu_core.data.clinical import GRADES, ID_COLUMN, dataset_table, grade_column, vu_grades
from synthvu_core.errors import DataError, SelectionError
from synthvu_core.names import SYNTHETIC_TABLE_FILE

if TYPE_CHECKING:
    import pandas as pd

    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.training import TrainConfig

GRADE_CONDITION = "disc degeneration grade"


def grade_name(grade: int) -> str:
    return f"grade {int(grade)}"


GRADE_NAMES: tuple[str, ...] = tuple(grade_name(g) for g in GRADES)


def table_file(dataset: VUDataset) -> str:
    """Where a dataset's clinical table is read from, for a message: its ``clinical.csv``, or what stands for it."""
    from synthvu_core.names import CLINICAL_FILE

    root = getattr(dataset, "root", None)
    if root is not None and getattr(dataset, "clinical", None) is not None:
        return str(Path(root) / CLINICAL_FILE)
    return f"the clinical table of {root or 'the dataset'}"


def grade_view(dataset: VUDataset, table: pd.DataFrame | None = None) -> VUDataset:
    """The dataset with each VU's grade (``grade 1`` ... ``grade 5``) as its second condition (same images,
    same fingerprint, same folder); :class:`DataError` where a VU's patient has no grade for its level."""
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.names import SOURCE_COLUMN

    table = dataset_table(dataset) if table is None else table
    grades = vu_grades(dataset.units, table, table_file(dataset))
    if (grades == 0).any():
        first = dataset.units.iloc[int(np.flatnonzero(grades == 0)[0])]
        raise DataError(f"{dataset.root or 'the dataset'}: {int((grades == 0).sum())} VUs have no grade in the "
                        f"clinical table (first: {first['patient_id']} {first['level']})")
    units = dataset.units.copy()
    units[SOURCE_COLUMN] = [grade_name(g) for g in grades]
    return VUDataset(dataset.images, units, dataset.card, root=dataset.root)


def train_images(dataset: VUDataset, out: str | Path, config: TrainConfig, progress: bool = True) -> Path:
    """Train the grade-conditioned VU generator (``config.condition_source`` is set here); returns its folder.

    Under DP the grade vocabulary is given (``grade 1`` ... ``grade 5``, public) and the generated VUs' grades are
    drawn uniformly, so the released generator counts no private VU; a VU's grade is its patient's data, inside
    that patient's clipped contribution."""
    from dataclasses import replace

    from synthvu_core.models.training import train

    names = GRADE_NAMES if config.private else None
    folder = train(grade_view(dataset), out, replace(config, condition_source=True, source_names=names),
                   progress=progress)
    _update_clinical(folder, {})  # the grade conditions only: the folder is joint once its table is written
    return folder


def _update_clinical(folder: str | Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Update the card's ``clinical`` block (``conditions``: the card's sources) with ``extra``, atomically."""
    from synthvu_core.models.registry import CARD_FILE, load_card
    from synthvu_core.storage import write_json

    folder = Path(folder)
    card = load_card(folder)
    block = dict(card.get("clinical") or {})
    block.update({"conditions": card.get("sources", []), **extra})
    card["clinical"] = block
    write_json(folder / CARD_FILE, card)
    return card


def mark_joint(folder: str | Path, **extra: Any) -> dict[str, Any]:
    """Mark the folder a joint generator: its card's ``clinical`` block names the grade condition (with ``extra``,
    e.g. the released table's description), atomically; returns the card. Call it once the table is written."""
    return _update_clinical(folder, {"second_condition": GRADE_CONDITION, **extra})


def table_ledger_entry(about: dict[str, Any], run: str) -> dict[str, Any]:
    """The privacy-ledger entry of a table run: a DP one's Renyi curve (:func:`dp_table.ledger_entry`), or a run
    without DP (epsilon infinite), which the ledger records all the same."""
    from synthvu_core.models import dp_table

    if about.get("dp"):
        return dp_table.ledger_entry(about, run)
    return {"run": run, "dp": False, "epsilon": None, "mechanism": f"{about['library']} {about['method']} (no DP)"}


def record_table_run(folder: str | Path, dataset: VUDataset, about: dict[str, Any]) -> dict[str, Any]:
    """Append the table run to the dataset's privacy ledger (every run on the patients composes, DP or not) and
    recompose the card's ``privacy_ledger`` block over the entries that share its patients; returns the card."""
    from synthvu_core.models import ledger
    from synthvu_core.models.registry import CARD_FILE, load_card
    from synthvu_core.storage import write_json

    folder = Path(folder)
    card = load_card(folder)
    entry = {**table_ledger_entry(about, f"{card.get('name') or folder.name}: clinical table"),
             "created": datetime.now(UTC).isoformat()}
    path = ledger.ledger_path(dataset)
    block = card.get("privacy_ledger") or {}
    known = list(block.get("entries") or [])
    recorded = ledger.record(dataset, entry)  # None: no folder to keep a ledger in, this generator's own runs
    entries = known + [entry] if recorded is None else ledger.with_known(known, recorded)
    from synthvu_core.models.dp import default_delta

    delta = (block.get("delta") or (about.get("dp") or {}).get("delta")
             or default_delta(max(1, len(dataset.patients("train")))))
    card["privacy_ledger"] = ledger.card_block(entries, float(delta), path)
    write_json(folder / CARD_FILE, card)
    return card


def is_joint(card: dict[str, Any]) -> bool:
    return isinstance(card.get("clinical"), dict) and card["clinical"].get("second_condition") == GRADE_CONDITION


def is_grade_conditioned(card: dict[str, Any]) -> bool:
    """A VU generator of a joint one: a ``clinical`` block (written by :func:`train_images`) and second conditions
    that are all grade names (every grade under DP; without DP, the grades its train split held)."""
    sources = card.get("sources")
    return (isinstance(card.get("clinical"), dict) and isinstance(sources, list) and bool(sources)
            and all(s in GRADE_NAMES for s in sources))


def check_joint(folder: str | Path, card: dict[str, Any], *, table: bool = True) -> None:
    """Refuse (:class:`CheckpointError`, naming the card) a generator that is not a joint one: grade-conditioned
    (:func:`is_grade_conditioned`) and, with ``table``, marked joint (:func:`is_joint`) with its released table
    present. Without ``table``, a grade-conditioned VU generator still waiting for its table passes."""
    from synthvu_core.errors import CheckpointError
    from synthvu_core.names import CARD_FILE

    where = Path(folder) / CARD_FILE
    make = "`python -m synthvu_core clinical train` makes one"
    if not is_grade_conditioned(card):
        sources = ", ".join(map(str, card.get("sources") or [])) or "none"
        raise CheckpointError(f"{where}: not a joint generator: its VUs are not conditioned on the disc grade "
                              f"(second conditions: {sources}); {make}")
    if not table:
        return
    if not is_joint(card):
        raise CheckpointError(f"{where}: a grade-conditioned VU generator without its released table, not yet a "
                              f"joint generator; write its table with `python -m synthvu_core clinical table "
                              f"{Path(folder)}`")
    if not (Path(folder) / SYNTHETIC_TABLE_FILE).is_file():
        raise CheckpointError(f"{Path(folder) / SYNTHETIC_TABLE_FILE}: the released table of this joint generator is "
                              f"missing; write it with `python -m synthvu_core clinical table {Path(folder)}`")


def synthetic_table(folder: str | Path) -> pd.DataFrame:
    """The joint generator's released synthetic table."""
    from synthvu_core.data.clinical import load_table

    path = Path(folder) / SYNTHETIC_TABLE_FILE
    if not path.is_file():
        raise DataError(f"{path}: no synthetic table here: not a joint generator (`clinical train` makes one), or "
                        "`clinical table` has not been run on it")
    return load_table(path)


def grade_index(card: dict[str, Any], grade: int) -> int:
    """Index of ``grade`` among the generator's second conditions; :class:`SelectionError` where it has none."""
    names = list(card.get("sources") or [])
    if grade_name(grade) not in names:
        raise SelectionError(f"grade {grade} is not a condition of this generator (conditions: {', '.join(names)})")
    return names.index(grade_name(grade))


def sample_conditioned(generator: Any, positions: list[str], grades: list[int], seed: int = 0) -> np.ndarray:
    """float32 ``[n, C, H, W]``: one VU per (position, grade) pair; the same seed gives the same VUs."""
    import torch

    card = generator.card
    if len(positions) != len(grades):
        raise SelectionError(f"{len(positions)} positions but {len(grades)} grades")
    classes = list(card["classes"])
    wanted = [levels.position_class(card["scheme"], p) for p in positions]
    unknown = sorted({w for w in wanted if w not in classes})
    if unknown:
        raise SelectionError(f"positions {', '.join(unknown)} are not classes of this generator ({', '.join(classes)})")
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(len(positions), int(card["latent_dim"]), generator=g)
    y = torch.tensor([classes.index(w) for w in wanted], dtype=torch.long)
    s = torch.tensor([grade_index(card, int(k)) for k in grades], dtype=torch.long)
    out = []
    with torch.inference_mode():
        for i in range(0, len(y), 256):
            out.append(generator(z[i:i + 256], y[i:i + 256], s[i:i + 256]).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, *card["shape"]), np.float32)


def sample_patients(folder: str | Path, n: int, vus: list[str], seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` synthetic patients: rows drawn (with replacement where ``n`` exceeds the table) from the released table,
    and for each row one VU per name in ``vus`` with the row's grade there. Returns the rows and float32
    ``[n, len(vus), C, H, W]``. ``folder``: a generator folder or registered name. An empty selection (``n`` < 1, no
    VU named) is refused (:class:`SelectionError`) before anything is read."""
    from synthvu_core.models.registry import load_generator, resolve

    if int(n) < 1:
        raise SelectionError(f"--patients {n}: nothing to sample; ask for at least 1 patient")
    if not vus:
        raise SelectionError("--levels names no VU: nothing to sample; name at least one, e.g. L4/L5")
    folder = resolve(folder)
    table = synthetic_table(folder)
    rng = np.random.default_rng(seed)
    rows = table.iloc[rng.choice(len(table), size=int(n), replace=int(n) > len(table))].reset_index(drop=True)
    missing = [v for v in vus if grade_column(v) not in rows.columns]
    if missing:
        raise SelectionError(f"the synthetic table has no grade for {', '.join(missing)}")
    grades = [int(rows.at[i, grade_column(v)]) for i in range(len(rows)) for v in vus]
    images = sample_conditioned(load_generator(folder), [v for _ in range(len(rows)) for v in vus], grades, seed)
    return rows, images.reshape(len(rows), len(vus), *images.shape[1:])


def table_members(dataset: VUDataset, table: pd.DataFrame, part: str) -> pd.DataFrame:
    """Rows of the patients of one split part (train = members)."""
    keep = set(dataset.patients(part))
    return table[table[ID_COLUMN].astype(str).isin(keep)].reset_index(drop=True)
