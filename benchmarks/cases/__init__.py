"""Benchmark cases and the timing primitives they share.

Each case module (``sampling``, ``training``, ``data``, ``evaluation``, ``dashboard``, ``quality``)
exposes ``run(ctx: Context) -> list[Row]``. A row measures the project and, where one exists, its
reference in the same process and run: both are warmed up, then timed in alternation (ABAB…) so that
drift on a busy machine falls on both alike. A case whose code or data is missing raises
:class:`Unavailable`; the runner reports the reason instead of a number.
"""

from __future__ import annotations

import importlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CASE_NAMES: tuple[str, ...] = ("sampling", "diffusion", "training", "data", "evaluation", "dashboard", "quality")
"""Cases in run order. ``quality`` (time to quality) runs only with ``--long`` or ``--only quality``."""

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that set a child process's threads (torch reads OMP's at start)."""


def thread_env(threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process that runs at ``threads`` threads: ``base`` (default this process's
    environment) with ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to ``threads``."""
    return {**(os.environ if base is None else base), **{k: str(int(threads)) for k in THREAD_VARIABLES}}


def size_keys() -> dict[str, str]:
    """Every problem-size key a case declares (its module's ``SIZE_KEYS``), mapped to that case's name."""
    keys: dict[str, str] = {}
    for name in CASE_NAMES:
        for key in importlib.import_module(f"benchmarks.cases.{name}").SIZE_KEYS:
            keys[key] = name
    return keys


def check_sizes(sizes: dict[str, Any] | None) -> None:
    """Raise ``ValueError`` naming every key of ``sizes`` that no case declares (a typo would be ignored)."""
    known = size_keys()
    unknown = sorted(set(sizes or {}) - set(known))
    if unknown:
        case = unknown[0].split(".", 1)[0]
        hint = [k for k in sorted(known) if known[k] == case]
        raise ValueError(f"unknown size key {', '.join(unknown)}; "
                         + (f"{case}'s keys: {', '.join(hint)}" if hint else f"keys start with a case name "
                            f"({', '.join(CASE_NAMES)})"))


class Unavailable(Exception):
    """The code, data or tool a measurement needs is not there; the message says what is missing."""


@dataclass(frozen=True)
class Stats:
    """Summary of repeated measurements: median, interquartile range and extremes."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int
    values: list[float]

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        if not values:
            raise ValueError("no measurements")
        vals = [float(v) for v in values]
        if len(vals) == 1:
            q1 = q3 = vals[0]
        else:
            q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
        return cls(statistics.median(vals), q1, q3, min(vals), max(vals), len(vals), vals)

    def to_json(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "q1": self.q1,
            "q3": self.q3,
            "min": self.min,
            "max": self.max,
            "n": self.n,
            "values": self.values,
        }


@dataclass(frozen=True)
class Goal:
    """A target from the issues, e.g. ``Goal("≥ 1.5× pgan", ">=", 1.5, on="ratio")``.

    ``on="project"`` compares the project's median, ``on="ratio"`` the ratio project/reference.
    """

    text: str
    op: str  # ">=" or "<="
    value: float
    on: str = "project"

    def met(self, row: Row) -> bool | None:
        x = row.ratio if self.on == "ratio" else (row.project.median if row.project else None)
        if x is None:
            return None
        return x >= self.value if self.op == ">=" else x <= self.value


@dataclass
class Row:
    """One measured quantity. ``ratio`` is always project median / reference median."""

    metric: str
    unit: str
    project: Stats | None
    reference: Stats | None = None
    reference_name: str | None = None
    higher_is_better: bool = True
    goal: Goal | None = None
    note: str = ""
    unavailable: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.project is None or self.reference is None or self.reference.median == 0:
            return None
        return self.project.median / self.reference.median

    @classmethod
    def missing(cls, metric: str, unit: str, reason: str, *, goal: Goal | None = None) -> Row:
        return cls(metric, unit, None, goal=goal, unavailable=reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "project": self.project.to_json() if self.project else None,
            "reference_name": self.reference_name,
            "reference": self.reference.to_json() if self.reference else None,
            "ratio": self.ratio,
            "goal": None
            if self.goal is None
            else {"text": self.goal.text, "op": self.goal.op, "value": self.goal.value, "on": self.goal.on,
                  "met": self.goal.met(self)},
            "note": self.note,
            "unavailable": self.unavailable,
            **({"extra": self.extra} if self.extra else {}),
        }


@dataclass
class Context:
    """What every case gets: mode, repeat counts, a scratch folder, the repository root, a logger.

    ``sizes`` overrides a case's problem sizes by key (tests use it to make a case tiny).
    """

    quick: bool
    long: bool
    repeats: int
    warmup: int
    threads: int
    workdir: Path
    root: Path
    seed: int = 0
    sizes: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = print

    def size(self, key: str, quick: Any, full: Any) -> Any:
        """The problem size ``key``: an override from ``sizes``, else the quick or the full value. ``key`` must be
        one of the case's ``SIZE_KEYS`` (the runner refuses overrides no case declares)."""
        if key in self.sizes:
            return self.sizes[key]
        return quick if self.quick else full


def seconds(fn: Callable[[], Any]) -> float:
    """Wall time of one call of ``fn`` in seconds (perf_counter)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_pair(
    project: Callable[[], Any],
    reference: Callable[[], Any] | None,
    *,
    repeats: int,
    warmup: int,
) -> tuple[list[float], list[float] | None]:
    """Seconds per call of ``project`` and ``reference``, after ``warmup`` untimed calls of each.

    Timed calls alternate, and the order within a pair flips every repeat, so slow phases of a busy
    machine and cache effects of going first fall on both sides alike.
    """
    for _ in range(warmup):
        project()
        if reference is not None:
            reference()
    p: list[float] = []
    r: list[float] | None = None if reference is None else []
    for i in range(repeats):
        if reference is None:
            p.append(seconds(project))
        elif i % 2 == 0:
            p.append(seconds(project))
            r.append(seconds(reference))  # type: ignore[union-attr]
        else:
            r.append(seconds(reference))  # type: ignore[union-attr]
            p.append(seconds(project))
    return p, r


def rate(work: float, times: list[float]) -> list[float]:
    """Per-repeat throughput ``work / seconds``."""
    return [work / t for t in times]


def millis(times: list[float]) -> list[float]:
    return [1000.0 * t for t in times]
