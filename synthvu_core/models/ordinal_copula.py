"""An ordinal Gaussian copula: few-valued columns as thresholded latent normals (a probit copula), numpy and scipy only.

SDV's Gaussian copula correlates the columns' normal scores. A grade column is mostly ties, which all get one score,
so the correlation learnt between a grade and age (or another grade) is smaller than the one between the latent
degeneration behind the grade and age. Here every few-valued column (a grade, a finding count, a binary
categorical such as sex) is an *ordinal margin* of a latent standard normal: value k is drawn when the latent lies
between the thresholds ``Phi^-1(P(X < k))`` and ``Phi^-1(P(X <= k))`` read from the column's cumulative
proportions. The latent correlation of each pair of columns is estimated by maximum likelihood, one pair at a time
(thresholds fixed from the margins, a bounded 1-D search for rho):

- two ordinal columns: the **polychoric** correlation (the bivariate normal's rectangle probabilities against the
  contingency table);
- an ordinal and a continuous column: the **polyserial** correlation (the continuous column's normal scores);
- two continuous columns: Pearson's correlation of the normal scores.

The pairwise matrix is projected onto the nearest positive-definite correlation matrix (Higham's alternating
projections: eigenvalues clipped, diagonal set to 1, repeated with Dykstra's correction). Continuous margins are
kernel densities (scipy's ``gaussian_kde``, Scott's bandwidth, as SDV's default here), sampled by their inverse
CDF, reflected at the ends of the observed range and rounded to the column's decimals: smoothed values, never the
real ones, and no point mass at the real minimum or maximum.
Missing cells are left out of each margin and pair, and sampled missing at each column's observed rate,
independently of everything else.

No well-kept library provides this: scipy has the bivariate normal CDF (``multivariate_normal.cdf``; Owen's T,
``scipy.special.owens_t``, used here, gives it exactly) but no polychoric or polyserial estimator; statsmodels has
the nearest correlation matrix (``corr_nearest``, ``corr_clipped``) but no polychoric estimator, and is not a
dependency here; SDV's ``copulas`` has no ordinal margins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from synthvu_core.errors import SynthVUError

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

#: an integer column with at most this many distinct values is ordinal (a grade column always is)
MAX_ORDINAL_LEVELS = 10
#: bound of the 1-D search for a pair's latent correlation (an empty cell pushes ML to the boundary)
RHO_BOUND = 0.995
#: smallest eigenvalue kept when projecting the pairwise matrix to a positive-definite one
MIN_EIGENVALUE = 1e-3
_GRID = 4096  #: points of a kernel density's CDF table for its inverse


# ---- the bivariate normal -----------------------------------------------------------------------------------


def bivariate_normal_cdf(h: np.ndarray, k: np.ndarray, rho: float) -> np.ndarray:
    """P(X <= h, Y <= k) for standard normals of correlation ``rho`` (|rho| < 1), elementwise; infinite limits
    allowed. Owen's formula: Phi2 = (Phi(h) + Phi(k)) / 2 - T(h, a_h) - T(k, a_k) - beta (Owen 1956)."""
    from scipy.special import ndtr, owens_t

    h, k = np.broadcast_arrays(np.asarray(h, float), np.asarray(k, float))
    out = np.empty(h.shape)
    lo = (h == -np.inf) | (k == -np.inf)
    out[lo] = 0.0
    hi_h, hi_k = (h == np.inf) & ~lo, (k == np.inf) & ~lo
    out[hi_h] = ndtr(k[hi_h])
    out[hi_k & ~hi_h] = ndtr(h[hi_k & ~hi_h])
    finite = ~(lo | hi_h | hi_k)
    hf, kf = h[finite], k[finite]
    hf, kf = np.where(hf == 0, 1e-12, hf), np.where(kf == 0, 1e-12, kf)  # Owen's terms divide by h and k
    root = np.sqrt(1.0 - rho * rho)
    beta = np.where(hf * kf > 0, 0.0, 0.5)
    out[finite] = (0.5 * (ndtr(hf) + ndtr(kf)) - owens_t(hf, (kf / hf - rho) / root)
                   - owens_t(kf, (hf / kf - rho) / root) - beta)
    return np.clip(out, 0.0, 1.0)


def rectangle_probabilities(tau_a: np.ndarray, tau_b: np.ndarray, rho: float) -> np.ndarray:
    """The (len(tau_a) - 1) x (len(tau_b) - 1) cell probabilities of two thresholded normals; ``tau_*`` include
    the -inf and +inf ends."""
    cdf = bivariate_normal_cdf(tau_a[:, None], tau_b[None, :], rho)
    return np.maximum(cdf[1:, 1:] - cdf[:-1, 1:] - cdf[1:, :-1] + cdf[:-1, :-1], 1e-300)


# ---- margins --------------------------------------------------------------------------------------------------


def thresholds(codes: np.ndarray, n_levels: int) -> np.ndarray:
    """Latent thresholds of an ordinal column coded 0 .. n_levels - 1: -inf, Phi^-1 of the cumulative
    proportions, +inf."""
    from scipy.special import ndtri

    cumulative = np.cumsum(np.bincount(codes, minlength=n_levels))[:-1] / len(codes)
    return np.concatenate([[-np.inf], ndtri(cumulative), [np.inf]])


def normal_scores(values: np.ndarray) -> np.ndarray:
    """Phi^-1(rank / (n + 1)), ties at their average rank."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    return ndtri(rankdata(values) / (len(values) + 1))


@dataclass
class _Margin:
    """One column's margin. Ordinal: its sorted values and thresholds; continuous: the kernel density's inverse
    CDF table, observed range and decimals."""

    name: str
    ordinal: bool
    missing: float
    levels: np.ndarray | None = None
    tau: np.ndarray | None = None
    grid: np.ndarray | None = None
    cdf: np.ndarray | None = None
    low: float = 0.0
    high: float = 0.0
    decimals: int = 0

    def latent(self, values: np.ndarray) -> np.ndarray:
        """Codes (ordinal) or normal scores (continuous) of the observed values."""
        if self.ordinal:
            return np.searchsorted(self.levels, values)
        return normal_scores(values.astype(float))

    def sample(self, z: np.ndarray) -> np.ndarray:
        """Values for latent standard normals ``z``."""
        if self.ordinal:
            return self.levels[np.searchsorted(self.tau[1:-1], z, side="right")]
        from scipy.special import ndtr

        x = np.interp(ndtr(z), self.cdf, self.grid)
        # the density reflected at the observed range's ends (no point mass at the real minimum and maximum)
        x = np.where(x > self.high, 2 * self.high - x, x)
        x = np.where(x < self.low, 2 * self.low - x, x)
        return np.clip(np.round(x, self.decimals), self.low, self.high)


def _decimals(values: np.ndarray) -> int:
    """The fewest decimals (up to 6) that give back every value."""
    for d in range(7):
        if np.allclose(np.round(values, d), values, rtol=0, atol=1e-9):
            return d
    return 6


def _kde_margin(name: str, values: np.ndarray, missing: float) -> _Margin:
    from scipy.special import ndtr
    from scipy.stats import gaussian_kde

    low, high, decimals = float(values.min()), float(values.max()), _decimals(values)
    if high == low or len(values) < 2:
        return _Margin(name, False, missing, grid=np.array([low, low + 1]), cdf=np.array([0.0, 1.0]), low=low,
                       high=low, decimals=decimals)
    bandwidth = float(np.sqrt(gaussian_kde(values).covariance[0, 0]))
    grid = np.linspace(low - 5 * bandwidth, high + 5 * bandwidth, _GRID)
    cdf = ndtr((grid[:, None] - values[None, :]) / bandwidth).mean(axis=1)
    return _Margin(name, False, missing, grid=grid, cdf=cdf, low=low, high=high, decimals=decimals)


def is_ordinal(column: pd.Series, name: str, forced: bool = False) -> bool:
    """A grade column (``forced``), an integer column with at most :data:`MAX_ORDINAL_LEVELS` values, or a
    categorical one with at most two labels. A categorical column with more labels has no order: refused."""
    import pandas as pd

    values = column.dropna()
    if not pd.api.types.is_numeric_dtype(column):
        if values.nunique() > 2:
            raise SynthVUError(f"the ordinal copula cannot model column {name!r}: it is categorical with "
                               f"{values.nunique()} labels and no order; use --table-method gaussian_copula")
        return True
    integral = bool(np.all(np.mod(values.astype(float), 1) == 0))
    return forced or (integral and values.nunique() <= MAX_ORDINAL_LEVELS)


def fit_margin(column: pd.Series, name: str, ordinal: bool) -> _Margin:
    observed = column.dropna()
    if observed.empty:
        raise SynthVUError(f"the ordinal copula cannot model column {name!r}: it has no value")
    missing = 1.0 - len(observed) / len(column)
    if ordinal:
        levels = np.array(sorted(observed.unique()), dtype=observed.to_numpy().dtype)
        codes = np.searchsorted(levels, observed.to_numpy())
        return _Margin(name, True, missing, levels=levels, tau=thresholds(codes, len(levels)))
    return _kde_margin(name, observed.to_numpy(float), missing)


# ---- the latent correlations ------------------------------------------------------------------------------------


def _maximise(loglik: Callable[[float], float]) -> float:
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(lambda r: -loglik(r), bounds=(-RHO_BOUND, RHO_BOUND), method="bounded",
                             options={"xatol": 1e-4})
    return float(result.x)


def polychoric(a: np.ndarray, b: np.ndarray, tau_a: np.ndarray, tau_b: np.ndarray) -> float:
    """ML latent correlation of two ordinal columns coded 0 .. K-1, thresholds fixed (two-step estimator)."""
    counts = np.zeros((len(tau_a) - 1, len(tau_b) - 1))
    np.add.at(counts, (a, b), 1)
    return _maximise(lambda r: float(np.sum(counts * np.log(rectangle_probabilities(tau_a, tau_b, r)))))


def polyserial(codes: np.ndarray, z: np.ndarray, tau: np.ndarray) -> float:
    """ML latent correlation of an ordinal column (codes, thresholds ``tau``) and a continuous one's normal scores
    ``z``: P(code = k | z) = Phi((tau_k+1 - rho z) / s) - Phi((tau_k - rho z) / s), s = sqrt(1 - rho^2)."""
    from scipy.special import ndtr

    upper, lower = tau[codes + 1], tau[codes]

    def loglik(r: float) -> float:
        s = np.sqrt(1 - r * r)
        p = ndtr((upper - r * z) / s) - ndtr((lower - r * z) / s)
        return float(np.sum(np.log(np.maximum(p, 1e-300))))

    return _maximise(loglik)


def latent_correlation(x: np.ndarray, y: np.ndarray, mx: _Margin, my: _Margin) -> float:
    """One pair's latent correlation over the rows where both are observed (0 if either is constant there)."""
    both = ~(_isna(x) | _isna(y))
    if both.sum() < 3:
        return 0.0
    ux, uy = mx.latent(x[both]), my.latent(y[both])
    if np.unique(ux).size < 2 or np.unique(uy).size < 2:
        return 0.0
    if mx.ordinal and my.ordinal:
        return polychoric(ux, uy, _pair_tau(ux, mx), _pair_tau(uy, my))
    if mx.ordinal:
        return polyserial(ux, normal_scores(uy), _pair_tau(ux, mx))
    if my.ordinal:
        return polyserial(uy, normal_scores(ux), _pair_tau(uy, my))
    return float(np.corrcoef(ux, uy)[0, 1])


def _pair_tau(codes: np.ndarray, margin: _Margin) -> np.ndarray:
    """The column's thresholds over the pair's rows (its own margin's when no value is missing)."""
    return thresholds(codes, len(margin.levels)) if margin.missing else margin.tau


def _column_values(column: pd.Series, margin: _Margin) -> np.ndarray:
    """Labels as objects (a categorical column), numbers as floats with NaN for a missing cell."""
    if margin.ordinal and margin.levels.dtype == object:
        return column.to_numpy(dtype=object)
    return column.to_numpy(dtype=float, na_value=np.nan)


def _isna(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), bool)


def clipped_correlation(matrix: np.ndarray, min_eigenvalue: float = MIN_EIGENVALUE) -> np.ndarray:
    """The symmetric matrix with eigenvalues clipped at ``min_eigenvalue`` and its diagonal rescaled to 1."""
    clipped = _clip_eigenvalues(matrix, min_eigenvalue)
    scale = 1 / np.sqrt(np.diag(clipped))
    out = clipped * scale[:, None] * scale[None, :]
    np.fill_diagonal(out, 1.0)
    return out


def _clip_eigenvalues(matrix: np.ndarray, min_eigenvalue: float) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.maximum(values, min_eigenvalue)) @ vectors.T


def nearest_correlation(matrix: np.ndarray, min_eigenvalue: float = MIN_EIGENVALUE, iterations: int = 500,
                        tol: float = 1e-8) -> np.ndarray:
    """The nearest correlation matrix (Frobenius norm) with eigenvalues at least ``min_eigenvalue``: Higham's
    alternating projections with Dykstra's correction (Higham 2002) onto the matrices of eigenvalues >=
    ``min_eigenvalue`` and those of unit diagonal, then :func:`clipped_correlation` for the last rounding.

    Clipping the eigenvalues once and rescaling the diagonal (:func:`clipped_correlation` alone) also gives a valid
    correlation matrix, but not the nearest: it shrinks every correlation, the well-estimated ones too."""
    y, correction = (matrix + matrix.T) / 2, np.zeros_like(matrix)
    for _ in range(iterations):
        r = y - correction
        x = _clip_eigenvalues(r, min_eigenvalue)
        correction = x - r
        y = x.copy()
        np.fill_diagonal(y, 1.0)
        if np.abs(y - x).max() < tol:
            break
    return clipped_correlation(y, min_eigenvalue)


# ---- the copula -------------------------------------------------------------------------------------------------


@dataclass
class OrdinalCopula:
    """Fitted margins and the latent correlation matrix of one table's columns."""

    margins: list[_Margin]
    correlation: np.ndarray
    clipped: int  #: eigenvalues raised to MIN_EIGENVALUE by the projection

    @property
    def columns(self) -> list[str]:
        return [m.name for m in self.margins]

    def sample(self, n_rows: int, seed: int) -> pd.DataFrame:
        """``n_rows`` rows; the same seed gives the same rows."""
        import pandas as pd

        rng = np.random.default_rng(seed)
        z = rng.standard_normal((int(n_rows), len(self.margins))) @ np.linalg.cholesky(self.correlation).T
        out = {}
        for j, margin in enumerate(self.margins):
            values = pd.Series(margin.sample(z[:, j]))
            if margin.missing:
                values = values.where(rng.random(len(values)) >= margin.missing)
            out[margin.name] = values
        return pd.DataFrame(out)


def fit(table: pd.DataFrame, ordinal_columns: list[str] | None = None) -> OrdinalCopula:
    """Fit the copula on every column of ``table``; ``ordinal_columns`` are ordinal whatever their values (the
    grades), the others by :func:`is_ordinal`."""
    forced = set(ordinal_columns or [])
    margins = [fit_margin(table[c], c, is_ordinal(table[c], c, c in forced)) for c in table.columns]
    values = [_column_values(table[c], m) for c, m in zip(table.columns, margins, strict=True)]
    n = len(margins)
    pairwise = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            pairwise[i, j] = pairwise[j, i] = latent_correlation(values[i], values[j], margins[i], margins[j])
    clipped = int(np.sum(np.linalg.eigvalsh(pairwise) < MIN_EIGENVALUE))
    return OrdinalCopula(margins, nearest_correlation(pairwise), clipped)
