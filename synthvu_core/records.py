"""Typed records at the bottom of the package: the evaluation :class:`Report`, the version of its format, typed
access to its scalars and verdicts, and the one formatter of numbers, intervals and epsilon.

Every layer imports this module downwards (data, models, evaluation, the CLI and the dashboard); it imports
only the standard library, numpy (inside a method) and :mod:`synthvu_core.errors`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthvu_core.errors import ReportError

#: 2: balanced membership design, reference-fitted attack spaces, graded controls, verdicts per threat model, seeds.
#: 3: patient-clustered CIs (Obuchowski / DeLong with Student-t, bootstrap-t for TPR); power = the rise of a graded
#: control's AUC over the generator's own (``meta.power[...]["rise"]``, ``status``, ``counts``).
#: 4: power = detection of the 5 % graded control (its AUC interval above 0.5); verdicts ok / inconclusive /
#: design imbalance; the realistic positive control; every holdout non-member scored; patient-bootstrap utility
#: intervals; cache keys of code and library versions; fixed thread counts and measured per-scalar tolerances
#: (``meta["tolerances"]``, read by ``report verify``). Older reports are stale
#: (:func:`synthvu_core.models.registry.report_staleness`).
REPORT_VERSION = 4

#: How a re-run's scalars are compared with a saved report's: ``(glob over scalar keys, absolute tolerance)``; the
#: first matching rule applies. On one machine the path is deterministic, so the default is 1e-9 (see
#: :mod:`synthvu_core.evaluation.verify`); a report records the rules it is read with (``meta["tolerances"]``).
TOLERANCES: tuple[tuple[str, float], ...] = (("*", 1e-9),)


def tolerance(key: str, rules: tuple[tuple[str, float], ...] | list = TOLERANCES) -> float:
    """The absolute tolerance of scalar ``key`` under ``rules`` (first matching glob)."""
    for pattern, tol in rules:
        if fnmatch.fnmatchcase(key, pattern):
            return float(tol)
    return 0.0


# ---- report keys: the one place their dotted grammar is spelled --------------------------------------------------
DP_EPSILON_KEY = "dp.epsilon"
WORST_AUC_KEY = "privacy.worst.auc"
WORST_TPR_KEY = "privacy.worst.tpr_at_1pct_fpr"
RATIO_KEY = "utility.tstr_over_trtr"


def utility_key(setting: str) -> str:
    """``utility.tstr.balanced_accuracy`` for ``tstr`` (``trtr``, ``tstr``, ``trts``)."""
    return f"utility.{setting}.balanced_accuracy"


def fidelity_key(metric: str) -> str:
    """``fidelity.precision`` for ``precision`` (``frechet_distance``, ``recall``, ``density``, ``coverage``)."""
    return f"fidelity.{metric}"


def attack_key(attack: str, space: str, metric: str = "auc") -> str:
    """``privacy.pairwise.pixel.auc`` for an attack, its space and a metric (``auc``, ``auc_ci_low``, ...)."""
    return f"privacy.{attack}.{space}.{metric}"


class ReportReading:
    """Typed reading of a report's ``scalars`` and ``meta`` (mixed into :class:`Report` and the dashboard's copy)."""

    scalars: dict[str, Any]
    meta: dict[str, Any]

    def scalar(self, key: str) -> float | None:
        """The scalar ``key`` as a float; None where absent, null or not a number."""
        v = self.scalars.get(key)
        try:
            f = float(v) if v is not None else None
        except (TypeError, ValueError):
            return None
        return None if f is None or f != f else f

    def interval(self, key: str) -> tuple[float | None, float | None]:
        """The 95 % interval ``(key_ci_low, key_ci_high)`` of a scalar (None ends where not estimable)."""
        return self.scalar(key + "_ci_low"), self.scalar(key + "_ci_high")

    def missing_of(self, area: str) -> dict[str, str]:
        """Why each null scalar of an area (``utility``, ``fidelity``, ``privacy``) is missing: key -> reason."""
        missing = self.meta.get("missing") or {}
        return {k: str(v) for k, v in missing.items() if k.startswith(area + ".")}

    def utility(self, setting: str) -> float | None:
        return self.scalar(utility_key(setting))

    def attack_auc(self, attack: str, space: str) -> float | None:
        return self.scalar(attack_key(attack, space))

    @property
    def worst_auc(self) -> float | None:
        return self.scalar(WORST_AUC_KEY)

    @property
    def worst_tpr(self) -> float | None:
        return self.scalar(WORST_TPR_KEY)

    @property
    def ratio(self) -> float | None:
        return self.scalar(RATIO_KEY)

    def verdict(self, threat: str) -> dict[str, Any]:
        """The stored verdict of a threat model (``released_samples``, ``released_discriminator``); {} where none."""
        v = (self.meta.get("verdicts") or {}).get(threat)
        return v if isinstance(v, dict) else {}

    def patient_means(self, attack: str, space: str) -> dict[bool, tuple[list[str], list[float]]] | None:
        """Per patient, the mean attack score of its candidate VUs: ``{is_member: (patient ids, means)}``, patients
        sorted; None where the report holds no per-VU scores for the attack (needs ``self.arrays``)."""
        import numpy as np

        arrays = getattr(self, "arrays", None) or {}
        scores, member, patient = (arrays.get(f"privacy/{attack}/{space}/scores"),
                                   arrays.get("candidates/is_member"), arrays.get("candidates/patient"))
        if scores is None or member is None or patient is None or not len(scores) == len(member) == len(patient):
            return None
        scores, member, patient = np.asarray(scores, float), np.asarray(member).astype(bool), np.asarray(patient)
        patient = patient.astype(str)
        out = {}
        for want in (True, False):
            ids = sorted(set(patient[member == want]))
            out[want] = (ids, [float(np.nanmean(scores[(patient == p) & (member == want)])) for p in ids])
        return out

    def worst_attack(self) -> tuple[str, str] | None:
        """``(attack, space)`` of the strongest attack counted in the released-samples verdict (highest AUC), the one
        ``privacy.worst.auc`` reports; None where no attack counts."""
        scored = [(self.scalar(attack_key(*n.split("/"))), n) for n in self.verdict("released_samples").get("counted")
                  or []]
        scored = [(auc, n) for auc, n in scored if auc is not None]
        if not scored:
            return None
        attack, space = max(scored)[1].split("/")
        return attack, space


# ---- the one formatter of numbers, intervals and epsilon ----------------------------------------------------------
NO_DP_TEXT = "no DP (ε = ∞)"


def number_text(value: float | None, digits: int = 3) -> str:
    """A number for a table or metric; ``"—"`` where not measured."""
    return "—" if value is None else f"{value:.{digits}f}"


def epochs_text(epochs: float | None) -> str:
    """A training run's epochs as a card records them (steps over steps per epoch): ``"300"``, ``"2.5"``, ``"—"``."""
    if epochs is None:
        return "—"
    e = float(epochs)
    if 0 < abs(e) < 0.1:
        return f"{e:.1g}"  # a run shorter than a tenth of an epoch: one significant digit, not "0.0"
    e = round(e, 1)
    return f"{e:.0f}" if e.is_integer() else f"{e:.1f}"


def interval_text(low: float | None, high: float | None, digits: int = 3) -> str:
    """``"[0.550, 0.670]"``; ``""`` where either end is missing."""
    return "" if low is None or high is None else f"[{low:.{digits}f}, {high:.{digits}f}]"


def epsilon_value(eps: float | None, digits: int = 2, *, none: str = "∞") -> str:
    """ε as a number (``"1.23"``), or ``none`` for a generator trained without differential privacy."""
    return none if eps is None else f"{float(eps):.{digits}f}"


def epsilon_text(eps: float | None, digits: int = 2, *, none: str = NO_DP_TEXT) -> str:
    """``"ε = 1.23"``, or ``none`` (:data:`NO_DP_TEXT`) for a generator trained without differential privacy."""
    return none if eps is None else f"ε = {epsilon_value(eps, digits)}"


def card_epsilon(card: Any, report: ReportReading | None = None) -> float | None:
    """DP ε of a generator: its card's ``dp.epsilon`` first, the report's ``dp.epsilon`` second; None without DP."""
    dp = (card or {}).get("dp") if isinstance(card, Mapping) else None
    eps = dp.get("epsilon") if isinstance(dp, Mapping) else None
    if eps is None and report is not None:
        eps = report.scalar(DP_EPSILON_KEY)
    return None if eps is None else float(eps)


@dataclass
class Report(ReportReading):
    """Scalars (key -> float or None), their definitions, meta, arrays (lazy) and control reports."""

    scalars: dict[str, float | None]
    definitions: dict[str, str]
    meta: dict[str, Any]
    controls: dict[str, Report] = field(default_factory=dict)
    #: How far a loaded report is vouched for: :data:`~synthvu_core.evaluation.integrity.SIGNED` or ``UNSIGNED``
    #: (written before content digests), plus whether its verdicts were re-derived; "" for one not loaded.
    integrity: str = ""
    _arrays: dict[str, Any] | None = field(default=None, repr=False)
    _arrays_path: Path | None = field(default=None, repr=False)

    @property
    def arrays(self) -> dict[str, Any]:
        """Named arrays; read from ``arrays.npz`` on first access when the report was loaded."""
        if self._arrays is None:
            if self._arrays_path is None:
                self._arrays = {}
            else:
                import numpy as np

                from synthvu_core.storage import ARRAY_READ_ERRORS, array_read_problem

                try:
                    with np.load(self._arrays_path, allow_pickle=False) as z:
                        self._arrays = {k: z[k] for k in z.files}
                except ARRAY_READ_ERRORS as e:
                    why = array_read_problem(e)
                    raise ReportError(f"{self._arrays_path}: cannot read report arrays: {why}") from None
        return self._arrays

    def missing(self) -> dict[str, str]:
        """Key -> reason for every scalar that is None."""
        return dict(self.meta.get("missing", {}))


class Card:
    """Typed reading of a generator's ``card.json`` (a dict checked by the registry): what the CLI and pages show.

    ``Card(load_card(folder))``; ``card.raw`` is the dict itself for what has no accessor yet.
    """

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def _part(self, key: str) -> Mapping[str, Any]:
        v = self.raw.get(key)
        return v if isinstance(v, Mapping) else {}

    @property
    def name(self) -> str:
        return str(self.raw.get("name", ""))

    @property
    def architecture(self) -> str:
        return str(self._part("architecture").get("name", ""))

    @property
    def scheme(self) -> str:
        return str(self.raw.get("scheme", "region"))

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.raw.get("classes") or []]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.raw.get("shape") or ())

    @property
    def shape_text(self) -> str:
        """``9x64x64``."""
        return "x".join(map(str, self.shape))

    @property
    def latent_dim(self) -> int | None:
        v = self.raw.get("latent_dim")
        return None if v is None else int(v)

    @property
    def dp(self) -> Mapping[str, Any] | None:
        """The card's ``dp`` block; None for a generator trained without differential privacy."""
        return self._part("dp") or None

    @property
    def epsilon(self) -> float | None:
        return card_epsilon(self.raw)

    @property
    def dataset(self) -> Mapping[str, Any]:
        return self._part("dataset")

    @property
    def fingerprint(self) -> str | None:
        v = self.dataset.get("fingerprint")
        return None if v is None else str(v)

    @property
    def training(self) -> Mapping[str, Any]:
        return self._part("training")

    @property
    def keeps_discriminator(self) -> bool:
        return bool(self._part("discriminator").get("kept"))

    @property
    def created(self) -> str:
        return str(self.raw.get("created", ""))

    @property
    def code_version(self) -> str:
        return str(self.raw.get("code_version", ""))
