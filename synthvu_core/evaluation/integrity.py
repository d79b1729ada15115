"""A report is believed only where its content is intact and its verdicts follow from its numbers.

* **Possible values** (:func:`check_scalars`): every scalar is null or a finite number inside its range
  (accuracies, AUCs, rates, shares and p-values in 0..1; distances, densities, ratios and epsilon at least 0).
* **Content digest** (:func:`content_digest`): SHA-256 over the scalars, the verdicts and the weights' hash,
  stored as ``meta["content_sha256"]`` when the report is written and recomputed on load. It detects an edited
  or damaged ``report.json``; it is not a secret-keyed signature (whoever edits the file can recompute it), which
  is why the verdicts are also re-derived from the numbers.
* **Re-derived verdicts** (:func:`rederive_levels`): the released-samples and released-discriminator levels are
  recomputed by the same functions the evaluation used (:mod:`synthvu_core.evaluation.verdicts`), from the
  report's own scalars, its stored power curves and its stored p-values; a stored level that differs is refused.

A report written before the digest existed loads as "unsigned (older report)" (:data:`UNSIGNED`); its values and
verdicts are still checked.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from synthvu_core.errors import ReportError

DIGEST_KEY = "content_sha256"
#: Shown where a report carries no digest (written before digests existed).
UNSIGNED = "unsigned (older report)"
SIGNED = "signed (content digest checked)"
_UNIT = (0.0, 1.0)
_NON_NEGATIVE = (0.0, math.inf)
#: Range of a scalar, by the last part of its key (first match wins); keys not listed: any finite number.
_RANGES: tuple[tuple[str, tuple[float, float]], ...] = (
    ("balanced_accuracy", _UNIT),
    ("tstr_over_trtr", _NON_NEGATIVE),
    ("auc", _UNIT),
    ("tpr_at_", _UNIT),
    ("share", _UNIT),
    ("p_value", _UNIT),
    ("precision", _UNIT),
    ("recall", _UNIT),
    ("coverage", _UNIT),
    ("density", _NON_NEGATIVE),
    ("frechet_distance", _NON_NEGATIVE),
    ("epsilon", _NON_NEGATIVE),
)


def scalar_range(key: str) -> tuple[float, float]:
    """The possible values of scalar ``key`` (``-inf..inf`` where nothing bounds it)."""
    last = key.split(".")[-1] if not key.startswith("utility.") else key.split(".", 2)[-1]
    for word, bounds in _RANGES:
        if word in last:
            # a t-interval's ends may pass a bound of the estimate by a little: never by a whole range
            return (bounds[0] - 1.0, bounds[1] + 1.0) if last.endswith(("_ci_low", "_ci_high")) else bounds
    return (-math.inf, math.inf)


def check_scalars(scalars: dict[str, Any], path: str | Path) -> None:
    """Raise :class:`ReportError` naming ``path`` and the key for the first impossible scalar."""
    for key, v in scalars.items():
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ReportError(f"{path}: scalar {key!r} is {type(v).__name__} {str(v)[:40]!r}, not a number; "
                              "the report was edited or damaged: re-run evaluate")
        lo, hi = scalar_range(key)
        if not math.isfinite(v) or not lo <= v <= hi:
            raise ReportError(f"{path}: scalar {key!r} = {v!r} is impossible (it lies in {lo:g}..{hi:g}); "
                              "the report was edited or damaged: re-run evaluate")


def content_digest(scalars: dict[str, Any], meta: dict[str, Any]) -> str:
    """SHA-256 (hex) over the scalars, the verdicts and the evaluated weights' hash, as JSON would store them."""
    body = {"scalars": scalars, "verdicts": meta.get("verdicts"), "generator_sha256": meta.get("generator_sha256")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def sign(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (a ``report.json`` document as JSON reads it back) with ``meta["content_sha256"]`` set."""
    doc["meta"][DIGEST_KEY] = content_digest(doc["scalars"], doc["meta"])
    return doc


def check_digest(scalars: dict[str, Any], meta: dict[str, Any], path: str | Path) -> str:
    """:data:`SIGNED` or :data:`UNSIGNED`; :class:`ReportError` where the stored digest does not match."""
    stored = meta.get(DIGEST_KEY)
    if stored is None:
        return UNSIGNED
    if stored != content_digest(scalars, meta):
        raise ReportError(f"{path}: the report's content does not match its digest ({DIGEST_KEY}): its scalars "
                          "or verdicts were edited after evaluation; refused, re-run evaluate")
    return SIGNED


# ---- verdicts re-derived from the numbers --------------------------------------------------------


class _StoredTest:
    """The permutation test as the report stored it: raw p per attack (the scalars' ``p_value``) and the
    max-statistic adjusted p of the verdict's family (``adjusted_p``)."""

    def __init__(self, p: dict[str, float], adjusted: dict[str, float]) -> None:
        self.p, self._adjusted = p, adjusted

    def adjusted(self, family: list[str]) -> dict[str, float]:
        return {n: self._adjusted[n] for n in family}


def _results(scalars: dict[str, Any]) -> dict[str, Any]:
    from synthvu_core.evaluation.privacy import AttackResult

    out: dict[str, Any] = {}
    for key, v in scalars.items():
        parts = key.split(".")
        if parts[0] != "privacy" or parts[1] == "worst" or len(parts) < 4:
            continue
        name = f"{parts[1]}/{parts[2]}"
        out.setdefault(name, AttackResult(scalars={}, arrays={})).scalars[".".join(parts[3:])] = v
    return out


def discriminator_verdict(scalars: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any] | None:
    """Verdict (b) read again from the report's numbers and its record of the DP bound (text included); None where
    the report holds no verdict (b)."""
    from synthvu_core.evaluation import verdicts

    disc = (meta.get("verdicts") or {}).get("released_discriminator")
    if not isinstance(disc, dict) or disc.get("level") is None:
        return None
    results = _results(scalars)
    raw = {n: r.scalars["p_value"] for n, r in results.items() if r.scalars.get("p_value") is not None}
    sides = disc.get("patients")  # older reports: their own rule, without the patient floor
    return verdicts.released_discriminator_verdict(
        results, _StoredTest(raw, {}), verdicts.private_discriminator_epsilon(meta),
        patients=tuple(sides) if sides is not None else None, composed=verdicts.bound_is_composed(meta),
    )


def rederive_levels(scalars: dict[str, Any], meta: dict[str, Any]) -> dict[str, str] | None:
    """Threat model -> verdict level, recomputed by :mod:`~synthvu_core.evaluation.verdicts` from the report's
    numbers (the one adapter between stored reports and the verdict functions); None where the report lacks an
    input or the functions take other arguments (then nothing is claimed either way)."""
    from synthvu_core.evaluation import verdicts

    stored = meta.get("verdicts") or {}
    results = _results(scalars)
    out: dict[str, str] = {}
    try:
        samples = stored.get("released_samples")
        if isinstance(samples, dict) and samples.get("level") is not None:
            inputs = samples.get("inputs")  # every scalar verdict (a) reads; older reports: their own rule
            out["released_samples"] = (
                verdicts.read_released_samples(inputs)["level"] if isinstance(inputs, dict)
                else verdicts.legacy_samples_level(samples, {n: r.scalars for n, r in results.items()})
            )
        d = discriminator_verdict(scalars, meta)
        if d is not None:
            out["released_discriminator"] = d["level"]
    except (KeyError, TypeError, AttributeError, ValueError):
        return None
    return out


def check_verdicts(scalars: dict[str, Any], meta: dict[str, Any], path: str | Path) -> bool:
    """Raise :class:`ReportError` where a stored verdict level differs from the one its numbers give.

    Returns True where the levels were re-derived, False where the report lacks what re-deriving needs.
    """
    _check_quoted(scalars, meta, path)
    _check_sides(meta, path)
    derived = rederive_levels(scalars, meta)
    if derived is None:
        return False
    from synthvu_core.evaluation.verdicts import LEVEL_WORDS

    for threat, level in derived.items():
        said = meta["verdicts"][threat].get("level")
        if LEVEL_WORDS.get(said, said) != LEVEL_WORDS.get(level, level):  # "unknown": the older word, one level
            raise ReportError(f"{path}: verdict {threat} says {said!r} but the report's own numbers give {level!r}; "
                              "the report was edited; refused, re-run evaluate")
    return True


def _check_sides(meta: dict[str, Any], path: str | Path) -> None:
    """The patients per side verdict (b) was read on are the design's (an edited count cannot turn it to ok)."""
    disc = (meta.get("verdicts") or {}).get("released_discriminator")
    sides = disc.get("patients") if isinstance(disc, dict) else None
    design = [meta.get("n_member_patients"), meta.get("n_nonmember_patients")]
    if sides is not None and sides != design:
        raise ReportError(f"{path}: verdict released_discriminator was read on {sides!r} patients per side but the "
                          f"design holds {design!r}; the report was edited; refused, re-run evaluate")


#: ``inputs.cohort`` of verdict (a) -> the report scalar it must equal.
_COHORT_INPUTS = {"p": "cohort.p_value", "auc": "cohort.patient_auc", "auc_p": "cohort.patient_auc_p_value",
                  "share": "cohort.share_train", "expected": "cohort.expected_share"}


def _check_cohort(scalars: dict[str, Any], meta: dict[str, Any], path: str | Path) -> None:
    """The whole-cohort test verdict (a) read is the report's: present in both or in neither, the same numbers."""
    samples = (meta.get("verdicts") or {}).get("released_samples")
    inputs = samples.get("inputs") if isinstance(samples, dict) else None
    read = inputs.get("cohort") if isinstance(inputs, dict) else None
    if not isinstance(inputs, dict):
        return
    stored = scalars.get("cohort.p_value") is not None
    if (read is not None) != stored:
        raise ReportError(f"{path}: verdict released_samples {'reads' if read is not None else 'lacks'} the "
                          f"whole-cohort test but the report's scalars {'lack' if not stored else 'hold'} it; the "
                          "report was edited; refused, re-run evaluate")
    for k, key in _COHORT_INPUTS.items() if read is not None else ():
        v = read.get(k) if isinstance(read, dict) else None
        if not isinstance(v, int | float) or abs(float(v) - float(scalars.get(key) or 0.0)) > 1e-9:
            raise ReportError(f"{path}: verdict released_samples reads {k} = {v!r} of the whole-cohort test but "
                              f"scalar {key!r} = {scalars.get(key)!r}; the report was edited; refused, re-run evaluate")


def _check_quoted(scalars: dict[str, Any], meta: dict[str, Any], path: str | Path) -> None:
    """The AUCs a verdict quotes are the report's scalars (an edited scalar cannot hide behind an old verdict)."""
    _check_cohort(scalars, meta, path)
    verdicts = meta.get("verdicts") or {}
    quoted = [(verdicts.get("released_samples") or {}).get(k) for k in ("primary", "worst_other")]
    quoted.append((verdicts.get("released_discriminator") or {}).get("attack"))
    for d in quoted:
        if not isinstance(d, dict) or not isinstance(d.get("attack"), str) or d.get("auc") is None:
            continue
        key = f"privacy.{d['attack'].replace('/', '.')}.auc"
        v = scalars.get(key)
        if not isinstance(v, int | float) or not isinstance(d["auc"], int | float) or abs(v - d["auc"]) > 1e-9:
            raise ReportError(f"{path}: scalar {key!r} = {v!r} differs from the {d['auc']!r} its verdict quotes; "
                              "the report was edited; refused, re-run evaluate")
