"""Vertebral level vocabulary.

VerSe numbering: C1-C7 = 1-7, T1-T12 = 8-19, L1-L5 = 20-24, L6 = 25, S1 = 26, T13 = 28.
A vertebral unit (VU) between consecutive bodies ``a`` and ``b`` is named ``"a/b"``, upper body
first (``"L4/L5"``); its region is the region of its upper body.

Two conditioning schemes:

* ``region``: one class per region present (C, T, L; S never occurs as an upper body in practice);
* ``level``: one class per VU name present in the dataset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from synthvu_core.errors import DataError

CODE_TO_NAME: dict[int, str] = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{7 + i: f"T{i}" for i in range(1, 13)},
    **{19 + i: f"L{i}" for i in range(1, 6)},
    25: "L6",
    26: "S1",
    28: "T13",
}
NAME_TO_CODE: dict[str, int] = {v: k for k, v in CODE_TO_NAME.items()}

#: Codes in superior -> inferior order (T13 after T12, L6 after L5).
ANATOMICAL_ORDER: tuple[int, ...] = (*range(1, 20), 28, *range(20, 26), 26)
_RANK = {code: i for i, code in enumerate(ANATOMICAL_ORDER)}

REGIONS: tuple[str, ...] = ("C", "T", "L", "S")
REGION_NAMES = {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}
SCHEMES: tuple[str, ...] = ("region", "level")


def is_known(code: int) -> bool:
    return int(code) in CODE_TO_NAME


def name(code: int) -> str:
    """VerSe code -> body name (``23`` -> ``"L4"``)."""
    try:
        return CODE_TO_NAME[int(code)]
    except KeyError:
        raise DataError(f"unknown vertebral label code {code}") from None


def code(body: str) -> int:
    """Body name -> VerSe code (``"L4"`` -> ``23``)."""
    try:
        return NAME_TO_CODE[body.strip().upper()]
    except KeyError:
        raise DataError(f"unknown vertebral body name {body!r}") from None


def region(code_or_name: int | str) -> str:
    """Region letter of a body code, body name or VU name (region of the upper body)."""
    if isinstance(code_or_name, str):
        return code_or_name.strip().upper()[0]
    return name(code_or_name)[0]


def rank(code: int) -> int:
    """Position of a body in superior -> inferior order."""
    return _RANK[int(code)]


def sort_codes(codes: Iterable[int]) -> list[int]:
    return sorted({int(c) for c in codes}, key=rank)


#: Transitional vertebrae most spines lack: T12 -> L1 and L5 -> S1 are consecutive without them.
OPTIONAL_CODES: frozenset[int] = frozenset({25, 28})


def are_consecutive(upper: int, lower: int) -> bool:
    """True when ``lower`` directly follows ``upper`` in anatomical order.

    Only the optional transitional vertebrae (T13, L6) may lie between them: ``T12 -> L1`` and
    ``L5 -> S1`` are consecutive, and so are ``T12 -> T13`` and ``T13 -> L1``. :func:`vu_pairs` pairs
    neighbours among the codes present, so a labelled T13 is never skipped.
    """
    ru, rl = rank(upper), rank(lower)
    if rl <= ru:
        return False
    return all(ANATOMICAL_ORDER[r] in OPTIONAL_CODES for r in range(ru + 1, rl))


def vu_name(upper: int, lower: int) -> str:
    return f"{name(upper)}/{name(lower)}"


def vu_pairs(codes: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive (upper, lower) body pairs among ``codes``, superior first."""
    ordered = sort_codes(codes)
    return [(a, b) for a, b in zip(ordered, ordered[1:]) if are_consecutive(a, b)]


def vu_rank(vu: str) -> int:
    """Sort key of a VU name (its upper body's rank)."""
    return rank(code(vu.split("/")[0]))


def sort_vus(vus: Iterable[str]) -> list[str]:
    return sorted(set(vus), key=vu_rank)


def classes(scheme: str, vus: Iterable[str]) -> list[str]:
    """Ordered class names of a conditioning scheme for the VU names present."""
    vus = list(vus)
    if scheme == "region":
        present = {region(v) for v in vus}
        return [r for r in REGIONS if r in present]
    if scheme == "level":
        return sort_vus(vus)
    raise ValueError(f"unknown conditioning scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")


def vocabulary(scheme: str) -> list[str]:
    """Every class a scheme can name, whatever a dataset holds: C, T, L for ``region``; every VU of two
    consecutive bodies (transitional T13 and L6 included) for ``level``."""
    if scheme == "region":
        return ["C", "T", "L"]
    if scheme == "level":
        names = [vu_name(a, b) for a, b in vu_pairs(ANATOMICAL_ORDER)] + ["T12/L1", "L5/S1"]
        return sorted(names, key=lambda v: (vu_rank(v), rank(code(v.split("/")[1]))))
    raise ValueError(f"unknown conditioning scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")


def position_class(scheme: str, vu: str) -> str:
    """Class name of a VU under a scheme (``"L4/L5"`` -> ``"L"`` under ``region``)."""
    return region(vu) if scheme == "region" else vu


def parse_mapping(spec: str | Path | Mapping | None) -> dict[int, int] | None:
    """Parse a user label mapping (source label -> VerSe code).

    Accepts a dict, a JSON file path, or a string like ``"1=L1,2=L2,3=23"``; values may be
    VerSe codes or body names.
    """
    if spec is None or spec == "":
        return None
    where = "label mapping"
    if isinstance(spec, Mapping):
        items = spec.items()
    else:
        text = str(spec)
        p = Path(text)
        if p.suffix == ".json" or (p.exists() and p.is_file()):
            where = f"{p}: label mapping"
            try:
                doc = json.loads(p.read_text())
            except (OSError, ValueError) as e:
                raise DataError(f"{p}: cannot read label mapping: {e}") from None
            if not isinstance(doc, Mapping):
                raise DataError(f"{p}: a label mapping is a JSON object of source label -> VerSe code or body name "
                                f'(e.g. {{"1": "L1", "2": "L2"}}), not a {type(doc).__name__}')
            items = doc.items()
        else:
            items = []
            for part in filter(None, re.split(r"[,\s]+", text)):
                if "=" not in part:
                    raise DataError(f"label mapping entry {part!r} is not of the form SOURCE=TARGET")
                k, v = part.split("=", 1)
                items.append((k, v))
    out: dict[int, int] = {}
    for k, v in items:
        try:
            src = int(k)
        except ValueError:
            raise DataError(f"{where} source {k!r} is not an integer label") from None
        try:
            tgt = int(v) if str(v).strip().lstrip("-").isdigit() else code(str(v))
        except (DataError, ValueError, KeyError) as e:
            raise DataError(f"{where} target {v!r}: {e}") from None
        if not is_known(tgt):
            raise DataError(f"{where} target {v!r} is not a VerSe code")
        out[src] = tgt
    return out
