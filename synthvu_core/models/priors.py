"""Public priors: what a generator must declare before it may seed a DP run (``train --init-from``).

A DP guarantee covers the private patients only if nothing else the run starts from depends on them. A
prior may seed a DP run only where its card declares **public training data** (``public_data``) and the
patients it was trained on are disjoint from the private dataset's, both by identity and by content:

* patient keys: the patient id, qualified by the phantom recipe's seed for phantom data (phantom cohorts
  of different seeds reuse the ids ``sub-0000`` ... for different synthetic people);
* VU content hashes: sha256 of each VU's uint8 bytes (a copied scan under another id is still caught).

A generator trained on a phantom cohort, from no prior or from a public one, declares itself public and lists both in
``public_patients.json`` (:func:`manifest`), written beside its card; real data are never declared public by this
code, nor is a generator fine-tuned from a prior that is not public (:func:`is_public`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.errors import SelectionError

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset

MANIFEST_FILE = "public_patients.json"
PUBLIC_STATEMENT = "the procedural spine phantom: synthetic patients, no real person"


def patient_keys(dataset: VUDataset, part: str | None = None) -> list[str]:
    """Patient keys of a dataset part (all parts where None), qualified by the phantom seed for phantom data."""
    recipe = dataset.card.get("recipe") or {}
    prefix = f"phantom-seed{recipe['seed']}/" if recipe.get("seed") is not None else ""
    return [prefix + p for p in dataset.patients(part)]


def vu_hashes(dataset: VUDataset, part: str | None = None) -> list[str]:
    """sha256 (16 hex digits) of every VU's uint8 bytes in a dataset part (all parts where None)."""
    idx = np.arange(len(dataset)) if part is None else dataset.indices(part)
    return sorted({hashlib.sha256(np.ascontiguousarray(dataset.images[i]).tobytes()).hexdigest()[:16] for i in idx})


def is_public(dataset: VUDataset, prior: Mapping[str, Any] | None = None, prior_folder: Path | None = None) -> bool:
    """Whether a generator trained on ``dataset`` may declare public training data: a phantom dataset (recipe
    recorded in its card: no real patient), and a run that started from no prior or from one that declares public
    data itself (``prior``: its card). A prior trained on private patients stays in every generator fine-tuned from
    it, so fine-tuning it on the phantom does not make it public; nor does one whose patient list
    (``prior_folder``'s manifest) is missing, since the new list must carry the prior's patients too."""
    if not dataset.card.get("recipe"):
        return False
    if prior is None:
        return True
    listed = prior_folder is None or (Path(prior_folder) / MANIFEST_FILE).is_file()
    return isinstance(prior.get("public_data"), Mapping) and listed


def manifest(dataset: VUDataset, prior: Path | None = None) -> dict[str, Any]:
    """``public_patients.json`` of a generator trained on ``dataset``'s train split (public data only), and, where
    it started from a public ``prior`` folder, every patient and VU that prior lists too: what the weights carry of
    both is checked against the private data of a later DP run."""
    patients, hashes = set(patient_keys(dataset, "train")), set(vu_hashes(dataset, "train"))
    if prior is not None:
        try:
            listed = json.loads((prior / MANIFEST_FILE).read_text())
            patients |= set(listed["patients"])
            hashes |= set(listed["vu_sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            raise SelectionError(f"{prior / MANIFEST_FILE}: the public prior's patient list is missing or unreadable; "
                                 "a generator fine-tuned from it cannot list what it carries") from None
    return {"fingerprint": dataset.fingerprint, "patients": sorted(patients), "vu_sha256": sorted(hashes)}


def card_block() -> dict[str, Any]:
    """The card's ``public_data`` block of a generator trained on public data."""
    return {"statement": PUBLIC_STATEMENT, "manifest": MANIFEST_FILE}


def check_public_prior(card: Mapping[str, Any], folder: Path, dataset: VUDataset) -> None:
    """Refuse (one line, :class:`SelectionError`) a prior that may not seed a DP run on ``dataset``.

    Args:
        card: the prior's card.
        folder: the prior's generator folder (holds its ``public_patients.json``).
        dataset: the private dataset of the DP run.
    """
    block = card.get("public_data")
    if not isinstance(block, Mapping):
        raise SelectionError(
            f"{folder}: a DP run may start only from a prior trained on public data, and this card declares none "
            "(public_data); train without --init-from or from a public prior"
        )
    path = folder / str(block.get("manifest") or MANIFEST_FILE)
    try:
        listed = json.loads(path.read_text())
        patients, hashes = set(listed["patients"]), set(listed["vu_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        raise SelectionError(f"{path}: the public prior's patient list is missing or unreadable; cannot check that "
                             "its patients are disjoint from the private ones") from None
    shared = patients & set(patient_keys(dataset))
    if shared:
        raise SelectionError(f"{folder}: the prior was trained on {len(shared)} patients of the private dataset "
                             f"(e.g. {sorted(shared)[0]}); a DP run cannot start from it")
    copied = hashes & set(vu_hashes(dataset))
    if copied:
        raise SelectionError(f"{folder}: {len(copied)} VUs the prior was trained on also lie in the private dataset "
                             "(same content); a DP run cannot start from it")
