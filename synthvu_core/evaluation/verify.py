"""Re-run a generator's evaluation from scratch and say what differs from its saved report.

:func:`verify_report` copies the generator folder (without its report) into a temporary folder, points the
cache at an empty temporary folder and evaluates again with the saved report's settings (synthetic count,
seed, controls), caches off. The saved report is never touched. Every scalar (the report's and each
control's) is compared within :func:`tolerance`; the verdict levels and verdict (a)'s counted family must
match exactly.

Tolerances: on one machine the path is deterministic (a re-run repeats every scalar bit for bit), so the
default is 1e-9. Across x86 CPUs BLAS and the encoder's kernels may round differently; the report records
the rules it is read with (``meta["tolerances"]``) and :data:`TOLERANCES` is the default of those rules.
They are a stated policy, not a measured cross-machine spread.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from synthvu_core.errors import ReportError
from synthvu_core.evaluation.tolerance_rules import (
    FAMILIES,
    TOLERANCES_FILE,
    default_tolerances,
    family,
    unchecked_attacks,
)
from synthvu_core.records import TOLERANCES, tolerance

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.records import Report

__all__ = [
    "FAMILIES",
    "TOLERANCES",
    "TOLERANCES_FILE",
    "default_tolerances",
    "differences",
    "family",
    "tolerance",
    "verify_report",
]

def _scalars(report: Report) -> dict[str, float | None]:
    out = {k: v for k, v in report.scalars.items()}
    for name, ctl in (getattr(report, "controls", {}) or {}).items():
        out.update({f"controls.{name}.{k}": v for k, v in ctl.scalars.items()})
    return out


def differences(
    saved: Report, fresh: Report, rules: tuple[tuple[str, float], ...] | list = TOLERANCES,
    across_machines: bool = False,
) -> list[str]:
    """Every scalar, verdict level and counted family of ``saved`` that ``fresh`` does not repeat, in words.

    ``across_machines``: the counted family is compared without the attacks the ``rules`` leave unchecked
    (:func:`~synthvu_core.evaluation.tolerance_rules.unchecked_attacks`)."""
    a, b = _scalars(saved), _scalars(fresh)
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x is None or y is None:
            if (x is None) != (y is None):
                out.append(f"{key}: saved {x}, re-run {y}")
            continue
        if abs(float(x) - float(y)) > tolerance(key, rules):
            out.append(f"{key}: saved {float(x):.6g}, re-run {float(y):.6g} (|diff| {abs(float(x) - float(y)):.3g} "
                       f"> {tolerance(key, rules):g})")
    va, vb = saved.meta.get("verdicts") or {}, fresh.meta.get("verdicts") or {}
    for threat in sorted(set(va) | set(vb)):
        la, lb = (va.get(threat) or {}).get("level"), (vb.get(threat) or {}).get("level")
        if la != lb:
            out.append(f"verdict {threat}: saved {la}, re-run {lb}")
    ca = sorted((va.get("released_samples") or {}).get("counted") or [])
    cb = sorted((vb.get("released_samples") or {}).get("counted") or [])
    if across_machines:
        loose = unchecked_attacks(set(ca) | set(cb), tuple(rules))
        ca, cb = [a for a in ca if a not in loose], [a for a in cb if a not in loose]
    if ca != cb:
        out.append(f"verdict released_samples counted attacks: saved {ca}, re-run {cb}")
    return out


def _predates_release_reading(saved: Report, utility_dataset: Callable[[], VUDataset]) -> bool:
    """Whether ``saved`` holds neither TSTR on the whole synthetic set nor why not, where a re-run would read it
    (:func:`~synthvu_core.evaluation.release_utility.release_size` on the report's synthetic class counts and the
    train split of the utility dataset as ``evaluate`` uses it, resolved by ``utility_dataset`` only where needed)."""
    import numpy as np

    from synthvu_core.evaluation.release_utility import PREFIX, release_size

    key, meta = PREFIX + "tstr.balanced_accuracy", saved.meta
    counts, classes = meta.get("synthetic_class_counts"), meta.get("classes")
    if key in saved.scalars or key in (meta.get("missing") or {}) or counts is None or not classes:
        return False
    ds = utility_dataset()
    train = ds.labels(str(meta.get("scheme", "region")), list(classes))[ds.indices("train")]
    pool = np.repeat(np.arange(len(counts)), np.asarray(counts, dtype=np.int64))
    return release_size(train, pool, len(classes))[1] is None


@contextmanager
def _empty_cache() -> Iterator[Path]:
    before = os.environ.get("SYNTHVU_CACHE")
    with tempfile.TemporaryDirectory(prefix="synthvu-verify-") as tmp:
        os.environ["SYNTHVU_CACHE"] = str(Path(tmp) / "cache")
        try:
            yield Path(tmp)
        finally:
            if before is None:
                os.environ.pop("SYNTHVU_CACHE", None)
            else:
                os.environ["SYNTHVU_CACHE"] = before


def verify_report(
    model_dir: str | Path, saved: Report, dataset: VUDataset | str | Path | None = None, progress: bool = True
) -> tuple[Report, list[str]]:
    """``(fresh report, differences)``: the evaluation of ``model_dir`` re-run from scratch against ``saved``.

    Args:
        model_dir: the generator folder (left as it is).
        saved: its saved report.
        dataset: a ``VUDataset`` or folder; None resolves the card's dataset as ``evaluate`` does (the dataset
            is input data, checked by fingerprint, not a cached result).
        progress: show progress bars.
    """
    from synthvu_core.data.build import dataset_of_card
    from synthvu_core.evaluation.report import EvaluationConfig, evaluate_generator, evaluation_datasets
    from synthvu_core.evaluation.source_utility import has_source_reading, holdout_has_sources
    from synthvu_core.models.registry import load_card
    from synthvu_core.names import REPORT_DIR

    model_dir = Path(model_dir)
    if "cohort.p_value" not in saved.scalars:  # a re-run would add the test, and may read verdict (a) otherwise
        raise ReportError(f"{model_dir}: the saved report predates the whole-cohort test; add it on the same "
                          f"samples first (`python -m synthvu_core report amend {model_dir.name}`), then verify")
    if holdout_has_sources(saved.meta) and not has_source_reading(saved.scalars):  # a re-run would add it
        raise ReportError(f"{model_dir}: the saved report predates the utility per source; add it from its stored "
                          f"predictions first (`python -m synthvu_core report amend {model_dir.name} --dataset DIR`), "
                          "then verify")
    card = load_card(model_dir)
    if dataset is None:
        dataset = dataset_of_card(card, model_dir, command="report verify")
    if _predates_release_reading(saved, lambda: evaluation_datasets(model_dir, card, dataset)[1]):  # a re-run adds it
        raise ReportError(f"{model_dir}: the saved report predates TSTR on the whole synthetic set; add it on the same "
                          f"samples first (`python -m synthvu_core report amend {model_dir.name} --dataset DIR`), "
                          "then verify")
    meta = saved.meta
    with _empty_cache() as tmp:
        copy = tmp / model_dir.name
        shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns(REPORT_DIR))
        fresh = evaluate_generator(
            copy, dataset=dataset, n_synthetic=int(meta.get("n_synthetic") or 5000),
            controls=bool(getattr(saved, "controls", None)), seed=int(meta.get("seed") or 0), progress=progress,
            config=EvaluationConfig(scheme=card.get("scheme", "region"), cache=False),
        )
        for r in (fresh, *fresh.controls.values()):
            r.arrays  # noqa: B018 - read now: the temporary folder they lie in is removed on leaving this block
    rules = [tuple(r) for r in meta.get("tolerances") or TOLERANCES]
    return fresh, differences(saved, fresh, rules)
