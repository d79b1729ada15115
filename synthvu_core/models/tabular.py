"""Synthetic clinical tables with SDV (non-private): fit on the train patients' rows, sample a released table.

SDV (``sdv``, the Synthetic Data Vault) is optional: it pins pandas below 3, so it lives in
``requirements-clinical.txt``, not in the core requirements, and is imported only here. Its fitted
synthesisers are saved as pickles, which this project never loads, so a run samples its table once and
releases the table (``clinical_synthetic.csv``), not the synthesiser. ``ordinal_copula`` is not SDV's: it is
:mod:`synthvu_core.models.ordinal_copula` (scipy only), which models the grades as ordinal margins of latent normals.

Columns synthesised: numeric, categorical and per-level ones (:func:`~synthvu_core.data.clinical.column_kinds`);
free text (the findings list) is left out, the per-kind finding counts stand for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.data.clinical import GRADE_ATTRIBUTE, ID_COLUMN, column_kinds, split_level_column
from synthvu_core.errors import SynthVUError

if TYPE_CHECKING:
    import pandas as pd

#: ``ordinal_copula`` is synthvu's own (:mod:`synthvu_core.models.ordinal_copula`, scipy only, no SDV)
METHODS: tuple[str, ...] = ("gaussian_copula", "ctgan", "ordinal_copula")
#: how the per-level grades enter the synthesiser: ``numerical`` (numbers, rounded back) or ``ordinal`` (ordered
#: categories, each mapped to its own interval of [0, 1] in grade order with a uniform draw inside it: RDT's
#: ``OrderedUniformEncoder``), which keeps the many tied grades from weakening the copula's correlations
GRADE_ENCODINGS: tuple[str, ...] = ("numerical", "ordinal")
SYNTHETIC_PREFIX = "syn-"
INSTALL_HINT = "pip install -r requirements-clinical.txt"
TABLE = "patients"  #: the table's name in SDV's metadata


def _sdv() -> Any:
    try:
        import sdv.single_table as single_table
    except ImportError as e:
        raise SynthVUError(f"the clinical table synthesiser needs SDV ({e}); `{INSTALL_HINT}`") from None
    return single_table


def synthesised_columns(table: pd.DataFrame) -> list[str]:
    """The columns a synthesiser learns: every column but the id and free text."""
    return [c for c, kind in column_kinds(table).items() if kind != "text"]


def grade_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if (s := split_level_column(c)) is not None and s[0] == GRADE_ATTRIBUTE]


def _metadata(table: pd.DataFrame, ordinal: list[str]) -> Any:
    import pandas as pd
    from sdv.metadata import Metadata

    metadata = Metadata()
    metadata.add_table(TABLE)
    for column in table.columns:
        kind = "numerical" if pd.api.types.is_numeric_dtype(table[column]) else "categorical"
        metadata.add_column(column, table_name=TABLE, sdtype="categorical" if column in ordinal else kind)
    return metadata


def check_fit(table: pd.DataFrame, method: str, grades: str = "numerical") -> None:
    """What :func:`fit_sample` needs, checked without fitting (run it before any work the table would waste): a
    known method and grade encoding, SDV importable for its methods; for the ordinal copula, ``grades``
    ``numerical`` and every column a margin it can model (:func:`ordinal_copula.fit_margin`)."""
    if method not in METHODS:
        raise SynthVUError(f"unknown table synthesiser {method!r}; choose one of {', '.join(METHODS)}")
    if grades not in GRADE_ENCODINGS:
        raise SynthVUError(f"unknown grade encoding {grades!r}; choose one of {', '.join(GRADE_ENCODINGS)}")
    if method != "ordinal_copula":
        _sdv()
        return
    from synthvu_core.models import ordinal_copula

    if grades != "numerical":
        raise SynthVUError("--table-grades is an SDV option; the ordinal copula models every grade as an ordinal "
                           "margin of a latent normal itself")
    forced = set(grade_columns(synthesised_columns(table)))
    for c in synthesised_columns(table):
        ordinal_copula.fit_margin(table[c], c, ordinal_copula.is_ordinal(table[c], c, c in forced))


def fit_sample(table: pd.DataFrame, n_rows: int, *, method: str = "gaussian_copula", seed: int = 0,
               epochs: int = 300, distribution: str = "gaussian_kde", grades: str = "numerical",
               ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit a synthesiser on ``table`` (one row per patient) and sample ``n_rows`` synthetic rows.

    ``grades`` is the grade columns' encoding (:data:`GRADE_ENCODINGS`). Returns the rows (ids ``syn-0000`` ...;
    integer columns stay integers) and a description for the card (library, version, method, columns, rows
    fitted and sampled). The same seed gives the same rows.
    """
    import pandas as pd

    check_fit(table, method, grades)
    if method == "ordinal_copula":
        return _fit_sample_ordinal(table, n_rows, seed=seed)
    single_table = _sdv()
    import sdv

    columns = synthesised_columns(table)
    ordinal = grade_columns(columns) if grades == "ordinal" else []
    data = table[columns].copy()
    for c in columns:  # nullable integers as plain numbers: SDV learns floats and rounds integer columns back
        if pd.api.types.is_integer_dtype(data[c]):
            data[c] = data[c].astype(float)
    np.random.seed(seed)  # SDV samples with numpy's global generator (and torch's for CTGAN)
    if method == "gaussian_copula":
        # each column's marginal as a kernel density: the grades are discrete and skewed (most discs grade 1),
        # which SDV's default parametric fit (beta) misses
        synthesiser = single_table.GaussianCopulaSynthesizer(_metadata(data, ordinal), enforce_min_max_values=True,
                                                             enforce_rounding=True, default_distribution=distribution)
    else:
        import torch

        torch.manual_seed(seed)
        synthesiser = single_table.CTGANSynthesizer(_metadata(data, ordinal), epochs=epochs,
                                                    enforce_min_max_values=True, enforce_rounding=True)
    if ordinal:
        from rdt.transformers.ordinal import OrderedUniformEncoder

        synthesiser.auto_assign_transformers({TABLE: data} if _by_table(sdv) else data)
        synthesiser.update_transformers({c: OrderedUniformEncoder(order=sorted(data[c].dropna().unique()))
                                         for c in ordinal})
    synthesiser.fit({TABLE: data} if _by_table(sdv) else data)
    rows = synthesiser.sample(num_rows=int(n_rows))
    rows = rows[TABLE] if isinstance(rows, dict) else rows
    rows = _released(rows, table, columns)
    about = {"library": "sdv", "version": sdv.__version__, "method": method, "columns": columns,
             **({"marginals": distribution} if method == "gaussian_copula" else {"epochs": int(epochs)}),
             "grades": grades, "rows_fitted": int(len(table)), "rows_sampled": int(len(rows)), "seed": int(seed),
             "dp": None}
    return rows.reset_index(drop=True), about


def _by_table(sdv: Any) -> bool:
    """SDV 2 takes and returns {table name: frame}."""
    return int(sdv.__version__.split(".")[0]) >= 2


def _released(rows: pd.DataFrame, table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Integer columns back to (nullable) integers, and the synthetic ids in front."""
    import pandas as pd

    for c in columns:
        if pd.api.types.is_integer_dtype(table[c]):
            rows[c] = pd.to_numeric(rows[c]).round().astype("Int64")
    rows.insert(0, ID_COLUMN, [f"{SYNTHETIC_PREFIX}{i:04d}" for i in range(len(rows))])
    return rows


def _fit_sample_ordinal(table: pd.DataFrame, n_rows: int, *, seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`fit_sample` with the ordinal copula (its grades are ordinal margins: :func:`check_fit` accepts only
    ``numerical``, the default, for ``grades``)."""
    import scipy

    from synthvu_core.models import ordinal_copula

    columns = synthesised_columns(table)
    copula = ordinal_copula.fit(table[columns], grade_columns(columns))
    rows = _released(copula.sample(n_rows, seed), table, columns)
    about = {"library": "scipy", "version": scipy.__version__, "method": "ordinal_copula",
             "columns": columns, "marginals": "gaussian_kde (continuous), thresholded latent normal (ordinal)",
             "ordinal_columns": [m.name for m in copula.margins if m.ordinal],
             "eigenvalues_clipped": copula.clipped, "grades": "ordinal (latent normal)",
             "rows_fitted": int(len(table)), "rows_sampled": int(len(rows)), "seed": int(seed), "dp": None}
    return rows.reset_index(drop=True), about
