"""A differentially private clinical table: smartnoise-synth's MST (or AIM) fitted on the train patients' rows.

MST (McKenna, Miklau & Sheldon 2021, winner of the NIST differential privacy synthetic-data challenge) measures
noisy one- and two-way marginals and samples from the graphical model they fit (private-pgm, ``mbi``). Its
guarantee is rho-zero-concentrated DP (rho from the requested ``(epsilon, delta)``, ``cdp_rho``) over **rows**;
a clinical table holds one row per patient, so the protected unit is a patient, as in the VU generator.

Everything MST sees is discrete, and every bin edge is **public** (never read from the private rows):

* a grade column (``grade_<VU>``) has the grades 1-5 of the clinical vocabulary;
* a numeric column needs public bounds (:data:`PUBLIC_BOUNDS`: age 18-90, an angle ``*_deg`` 0-90 degrees, a
  finding count ``n_*`` 0-5); values outside are clamped into the edge bin; a numeric column without public bounds
  is refused, naming it;
* a categorical column's labels (``sex``: F, M) are read from the rows, as smartnoise-synth does; they are
  taken as public vocabulary.

Sampled numbers are placed uniformly within their bin (post-processing), and integer columns rounded.

Composition: rho-zCDP is Renyi DP of every order alpha with epsilon(alpha) = rho * alpha, the Renyi curve of one
Gaussian mechanism of noise multiplier ``sqrt(1 / (2 rho))`` without subsampling. :func:`ledger_entry` records
the run so, and the dataset's privacy ledger composes it with the VU generator's DP-SGD runs exactly (Opacus's
RDP accountant with sample rate 1, one step).

smartnoise-synth 1.0.8 pins opacus 0.14, which would replace the opacus that synthvu's DP-SGD uses: install it
without its dependencies (see ``requirements-clinical.txt``); only ``snsynth.mst`` / ``snsynth.aim`` are used.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.data.clinical import GRADES, ID_COLUMN, split_level_column
from synthvu_core.errors import SelectionError, SynthVUError
from synthvu_core.models.tabular import SYNTHETIC_PREFIX, synthesised_columns

if TYPE_CHECKING:
    import pandas as pd

DP_METHODS: tuple[str, ...] = ("mst", "aim")
INSTALL_HINT = ("pip install -r requirements-clinical.txt, then pip install --no-deps smartnoise-synth==1.0.8 "
                "'disjoint-set>=0.9,<0.10'")
#: public bounds and bin counts of numeric columns, by name (exact) or by pattern (``prefix*`` / ``*suffix``)
PUBLIC_BOUNDS: dict[str, tuple[float, float, int]] = {
    "age": (18.0, 90.0, 12),
    "*_deg": (0.0, 90.0, 18),
    "n_*": (-0.5, 5.5, 6),
}


def public_bins(column: str) -> tuple[float, float, int] | None:
    """``(lower, upper, bins)`` of a column from public knowledge, or None where there is none."""
    if (s := split_level_column(column)) and s[0] == "grade":
        return GRADES[0] - 0.5, GRADES[-1] + 0.5, len(GRADES)
    for key, bounds in PUBLIC_BOUNDS.items():
        if key == column or (key.endswith("*") and column.startswith(key[:-1])) or (
                key.startswith("*") and column.endswith(key[1:])):
            return bounds
    return None


def _snsynth(method: str) -> Any:
    try:
        if method == "mst":
            from snsynth.mst import MSTSynthesizer as synthesiser
        else:
            from snsynth.aim import AIMSynthesizer as synthesiser
    except ImportError as e:
        raise SynthVUError(f"the DP table synthesiser needs smartnoise-synth ({e}); {INSTALL_HINT}") from None
    return synthesiser


def _discrete(table: pd.DataFrame, columns: list[str], bounds: dict[str, tuple[float, float, int]]) -> pd.DataFrame:
    """Every column as a bin index (numbers, public edges) or its label (categories)."""
    import pandas as pd

    out = {}
    for c in columns:
        if c in bounds:
            lo, hi, k = bounds[c]
            x = table[c].astype(float).to_numpy()
            out[c] = np.clip(np.floor((x - lo) / (hi - lo) * k), 0, k - 1).astype(np.int64)
        else:
            out[c] = table[c].astype(str)
    return pd.DataFrame(out)


def _continuous(sample: pd.DataFrame, real: pd.DataFrame, bounds: dict[str, tuple[float, float, int]],
                rng: np.random.Generator) -> pd.DataFrame:
    """Bin indices back to numbers: grades (one value a bin) exactly, others uniform within their bin; integer columns
    rounded."""
    import pandas as pd

    out = sample.copy()
    for c, (lo, hi, k) in bounds.items():
        width = (hi - lo) / k
        b = sample[c].astype(float).to_numpy()
        grade = (s := split_level_column(c)) and s[0] == "grade"
        x = lo + (b + (0.5 if grade else rng.uniform(0, 1, len(b)))) * width
        out[c] = np.round(x).astype(np.int64) if pd.api.types.is_integer_dtype(real[c]) else np.round(x, 2)
        if pd.api.types.is_integer_dtype(real[c]):
            out[c] = out[c].astype("Int64")
    return out


def check_fit(table: pd.DataFrame, method: str, *, epsilon: float, delta: float,
              ) -> tuple[list[str], dict[str, tuple[float, float, int]]]:
    """What :func:`fit_sample_dp` needs, checked without fitting (run it before any work that spends privacy): a
    known method, ``epsilon > 0`` and ``0 < delta < 1``, public bounds for every numeric column, no missing value,
    and smartnoise-synth importable. Returns the synthesised columns and their public bins."""
    import pandas as pd

    if method not in DP_METHODS:
        raise SelectionError(f"unknown DP table synthesiser {method!r}; choose one of {', '.join(DP_METHODS)}")
    if not (math.isfinite(epsilon) and epsilon > 0) or not (0 < delta < 1):
        raise SelectionError(f"the DP table needs epsilon > 0 and 0 < delta < 1, got {epsilon:g}, {delta:g}")
    columns = synthesised_columns(table)
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(table[c])]
    bounds = {c: public_bins(c) for c in numeric}
    missing = [c for c, b in bounds.items() if b is None]
    if missing:
        raise SelectionError(f"the DP table needs public bounds for the numeric columns {', '.join(missing)} "
                             "(bounds read from the private rows would leak them)")
    holes = [c for c in columns if table[c].isna().any()]
    if holes:
        raise SelectionError(f"the DP table synthesiser takes no missing values; the columns {', '.join(holes)} "
                             "have some")
    _snsynth(method)
    return columns, {c: b for c, b in bounds.items() if b is not None}


def fit_sample_dp(table: pd.DataFrame, n_rows: int, *, epsilon: float, delta: float, method: str = "mst",
                  seed: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit MST (or AIM) at ``(epsilon, delta)`` on ``table`` (one row per patient) and sample ``n_rows`` rows.

    Returns the rows (ids ``syn-0000`` ...) and the card's description (library, version, method, epsilon, delta,
    rho, the public bins). The mechanism's noise comes from OpenDP's samplers, not from ``seed``: the same seed
    does not give the same rows (a seeded DP mechanism would be no DP); ``seed`` places values within bins.
    """
    columns, bounds = check_fit(table, method, epsilon=epsilon, delta=delta)
    data = _discrete(table, columns, bounds)
    model = _snsynth(method)(epsilon=float(epsilon), delta=float(delta))
    model.fit(data, categorical_columns=columns, preprocessor_eps=0.0)
    rows = _continuous(model.sample(int(n_rows)), table, bounds, np.random.default_rng(seed))
    rows = rows[columns].reset_index(drop=True)
    rows.insert(0, ID_COLUMN, [f"{SYNTHETIC_PREFIX}{i:04d}" for i in range(len(rows))])
    import snsynth
    from snsynth.utils import cdp_rho

    rho = float(cdp_rho(float(epsilon), float(delta)))
    about = {"library": "smartnoise-synth", "version": getattr(snsynth, "__version__", "1.0.8"), "method": method,
             "columns": columns, "rows_fitted": int(len(table)), "rows_sampled": int(len(rows)), "seed": int(seed),
             "dp": {"epsilon": float(epsilon), "delta": float(delta), "rho": rho, "guarantee": "rho-zCDP over rows",
                    "protected_unit": "patient (one row per patient)", "noise_source": "OpenDP samplers",
                    "bins": {c: list(b) for c, b in bounds.items()},
                    "categories": "labels read from the rows, taken as public vocabulary"}}
    return rows, about


def ledger_entry(about: dict[str, Any], run: str) -> dict[str, Any]:
    """The privacy-ledger entry of a DP table run: rho-zCDP as the Renyi curve of one Gaussian mechanism of noise
    multiplier ``sqrt(1 / (2 rho))`` (sample rate 1, one step), which the ledger's RDP accountant composes."""
    dp = about["dp"]
    return {"run": run, "dp": True, "epsilon": dp["epsilon"], "mechanism": f"{about['method']} (smartnoise-synth), "
            "rho-zCDP", "noise_multiplier": math.sqrt(1.0 / (2.0 * dp["rho"])), "sample_rate": 1.0, "steps": 1,
            "accountant": "rdp", "delta": dp["delta"], "n_patients": about["rows_fitted"], "rho": dp["rho"]}
