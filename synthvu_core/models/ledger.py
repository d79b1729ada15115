"""The privacy ledger of a dataset: every training run made on it, and the epsilon they compose to.

A DP bound is about the data, not about one run: every run on a dataset spends privacy of its patients,
DP or not. ``privacy_ledger.json`` is kept in the dataset folder (beside its ``card.json``, so it travels
with the dataset) and keyed by the dataset's fingerprint. Every finished training run appends one entry
(under a file lock, written atomically):

* a DP-SGD run: its noise multiplier ``sigma``, sample rate ``q``, steps, accountant, own epsilon, delta;
* a run without DP: epsilon = infinity (stored as ``null`` with ``dp: false``).

The composed epsilon is Opacus's RDP accountant over the history of every DP entry (heterogeneous
``(sigma, q, steps)`` compose by adding their Renyi divergences; valid for runs accounted with PRV too, whose
mechanism is the same subsampled Gaussian), at the delta of the run asking; one entry without DP makes it
infinite: a model trained without DP on these patients protects none of them. The card of every run
records the entries it composed over and the composed epsilon (:func:`card_block`), so a shipped generator
shows it without the dataset at hand.

Where the dataset has no folder (an in-memory dataset), nothing is kept: the card's block says so and
composes this run alone.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthvu_core.errors import DataError
from synthvu_core.records import epsilon_text

LEDGER_FILE = "privacy_ledger.json"
LOCK_SUFFIX = ".lock"
COMPOSITION = "RDP (Opacus) over every run on this dataset; one run without DP makes it infinite"


def ledger_path(dataset: Any) -> Path | None:
    """``privacy_ledger.json`` in the dataset's folder; None for a dataset without a folder."""
    root = getattr(dataset, "root", None)
    return None if root is None else Path(root) / LEDGER_FILE


def run_entry(card: Mapping[str, Any]) -> dict[str, Any]:
    """The ledger entry of a finished run, from its card (``dp`` block or none)."""
    dp = card.get("dp") or {}
    entry: dict[str, Any] = {
        "run": card.get("name"),
        "created": card.get("created") or datetime.now(UTC).isoformat(timespec="seconds"),
        "dp": bool(dp),
        "epsilon": dp.get("epsilon") if dp else None,
    }
    if dp:
        entry.update(
            mechanism="dp-sgd (poisson-subsampled gaussian)",
            noise_multiplier=dp["noise_multiplier"],
            sample_rate=dp["sample_rate"],
            steps=dp["steps"],
            accountant=dp["accountant"],
            delta=dp["delta"],
            n_patients=dp["n_patients"],
        )
    return entry


def read_entries(path: Path, fingerprint: str) -> list[dict[str, Any]]:
    """The entries of a ledger file ([] where there is none); :class:`DataError` for another dataset's."""
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
        entries = list(data["entries"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: unreadable privacy ledger ({e}); it must not be edited by hand") from None
    if data.get("fingerprint") != fingerprint:
        raise DataError(
            f"{path}: privacy ledger of dataset {data.get('fingerprint')}, not of this dataset ({fingerprint})"
        )
    return entries


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with open(path.with_name(path.name + LOCK_SUFFIX), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append(path: Path, fingerprint: str, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Append ``entry`` to the ledger at ``path`` (locked, atomic); returns every entry, this one last."""
    from synthvu_core.storage import write_json

    with _locked(path):
        entries = read_entries(path, fingerprint) + [dict(entry)]
        write_json(path, {"fingerprint": fingerprint, "composition": COMPOSITION, "entries": entries})
    return entries


def composed_epsilon(entries: list[Mapping[str, Any]], delta: float) -> float:
    """RDP composition of every entry at ``delta``; ``inf`` where any entry has no DP."""
    from opacus.accountants import RDPAccountant

    if any(not e.get("dp") for e in entries):
        return math.inf
    if not entries:
        return 0.0
    acc = RDPAccountant()
    acc.history = [(float(e["noise_multiplier"]), float(e["sample_rate"]), int(e["steps"])) for e in entries]
    return float(acc.get_epsilon(delta=delta))


def card_block(entries: list[dict[str, Any]], delta: float, kept: Path | None) -> dict[str, Any]:
    """The card's ``privacy_ledger`` block: the entries composed over and the composed epsilon (None = inf)."""
    eps = composed_epsilon(entries, delta)
    return {
        "file": LEDGER_FILE if kept is not None else None,
        "kept": "with the dataset" if kept is not None else "not kept: the dataset has no folder",
        "composition": COMPOSITION,
        "delta": delta,
        "runs": len(entries),
        "composed_epsilon": None if math.isinf(eps) else eps,
        "entries": entries,
    }


def composed_of(card: Mapping[str, Any]) -> tuple[float, int] | None:
    """``(composed epsilon, runs)`` a card records (``inf`` for no bound); None for a card without a ledger."""
    block = card.get("privacy_ledger")
    if not isinstance(block, Mapping):
        return None
    eps = block.get("composed_epsilon")
    return (math.inf if eps is None else float(eps)), int(block.get("runs") or len(block.get("entries") or []))


def composed_text(card: Mapping[str, Any]) -> str | None:
    """One plain sentence on the dataset's composed bound, or None for a card without a ledger."""
    found = composed_of(card)
    if found is None:
        return None
    eps, runs = found
    over = f"over the {runs} run{'s' if runs != 1 else ''} recorded on its training data"
    if math.isinf(eps):
        return (f"composed ε = ∞ {over}: a run without differential privacy was trained on these patients, "
                "so together they bound nothing")
    return f"composed {epsilon_text(eps)} {over} (RDP composition)"
