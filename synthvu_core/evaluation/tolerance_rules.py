"""The per-scalar tolerance rules a new report records (read by ``report verify``).

The rules are measured (``benchmarks/experiments/reproducibility.py``) and kept in ``tolerances.json`` beside
this module; a report copies them into ``meta["tolerances"]``. This module sits below the evaluation's stages
and its verification, so both read the same rules without importing each other.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from synthvu_core.errors import ReportError

#: Scalar families whose spread is measured and stated together (glob over scalar keys, first match; control
#: scalars are ``controls.NAME.KEY``). p-values first: a permutation p-value moves in steps of
#: ``1 / (n_perm + 1)`` whatever its attack; those of the UMAP-space attacks apart (UMAP's layout moves between
#: machines far more than the pixel and embedding distances do).
FAMILIES: tuple[str, ...] = (
    "*.umap.p_value",
    "*.p_value",
    "utility.*",
    "fidelity.*",
    "*privacy.discriminator.*",
    "*privacy.*.pixel.*",
    "*privacy.*.embedding.*",
    "*privacy.*.umap.*",
    "*privacy.worst.*",
    "cohort.*",  # the whole-cohort test's share and patient AUC: computed from the samples, as fidelity is
    "*",
)


#: An across-machine tolerance this wide (or wider) leaves its family unchecked between machines: ``report verify``
#: names it instead, and an attack of such a space may enter or leave verdict (a)'s counted family there.
UNCHECKED_AT = 0.1


def family(key: str) -> str:
    """The first glob of :data:`FAMILIES` that matches scalar ``key``."""
    return next(g for g in FAMILIES if fnmatch.fnmatchcase(key, g))


#: The measured rules (``tolerances.json`` beside this module, written from the measurement in
#: ``benchmarks/experiments/reproducibility.py``); read when a report's meta is assembled.
TOLERANCES_FILE = Path(__file__).with_name("tolerances.json")


def default_tolerances() -> tuple[tuple[str, float], ...]:
    """``(glob over scalar keys, absolute tolerance)`` rules that a new report records (first match applies)."""
    import json

    try:
        doc = json.loads(TOLERANCES_FILE.read_text(encoding="utf-8"))
        rules = tuple((str(g), float(t)) for g, t in doc["rules"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReportError(f"{TOLERANCES_FILE}: cannot read the tolerance rules ({e})") from None
    if not rules or rules[-1][0] != "*":
        raise ReportError(f"{TOLERANCES_FILE}: the last tolerance rule must be the catch-all '*'")
    return rules


def across_machine_tolerances() -> tuple[tuple[str, float], ...] | None:
    """The rules measured between two machines (``across_machines`` in ``tolerances.json``): how far a report moves
    on another CPU, its kernels and its rebuild of a phantom; None where not measured."""
    import json

    try:
        block = json.loads(TOLERANCES_FILE.read_text(encoding="utf-8")).get("across_machines")
        rules = tuple((str(g), float(t)) for g, t in block["rules"]) if block else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ReportError(f"{TOLERANCES_FILE}: cannot read the across-machine tolerance rules ({e})") from None
    if rules is not None and (not rules or rules[-1][0] != "*"):
        raise ReportError(f"{TOLERANCES_FILE}: the last across-machine tolerance rule must be the catch-all '*'")
    return rules


def unchecked_attacks(attacks: set[str] | list[str], rules: tuple[tuple[str, float], ...]) -> set[str]:
    """The attacks (``pairwise/umap``) whose AUC the ``rules`` leave unchecked (tolerance at least
    :data:`UNCHECKED_AT`): across machines their power, and so their place in the counted family, moves with them."""
    from synthvu_core.records import tolerance

    return {a for a in attacks if tolerance(f"privacy.{a.replace('/', '.')}.auc", rules) >= UNCHECKED_AT}
