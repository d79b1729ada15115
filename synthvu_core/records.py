"""Typed records at the bottom of the package: the evaluation :class:`Report` and the version of its format.

Every layer imports this module downwards (data, models, evaluation, the CLI and the dashboard); it imports
only the standard library, numpy (inside a method) and :mod:`synthvu_core.errors`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthvu_core.errors import ReportError

#: 2: balanced membership design, reference-fitted attack spaces, graded controls, verdicts per threat model, seeds.
#: 3: patient-clustered CIs (Obuchowski / DeLong with Student-t, bootstrap-t for TPR); power = the rise of a graded
#: control's AUC over the generator's own (``meta.power[...]["rise"]``, ``status``, ``counts``). Older reports are
#: stale (:func:`synthvu_core.models.registry.report_staleness`).
REPORT_VERSION = 3

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


@dataclass
class Report:
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

                try:
                    with np.load(self._arrays_path, allow_pickle=False) as z:
                        self._arrays = {k: z[k] for k in z.files}
                except (OSError, ValueError) as e:
                    raise ReportError(f"{self._arrays_path}: cannot read report arrays: {e}") from None
        return self._arrays

    def missing(self) -> dict[str, str]:
        """Key -> reason for every scalar that is None."""
        return dict(self.meta.get("missing", {}))
