"""The ordinal copula table synthesiser: its bivariate normal, its latent-correlation estimators, the projection to
a correlation matrix, and a sampled table's margins and seed (core environment: scipy only, no SDV)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

from synthvu_core.data import clinical as data_clinical
from synthvu_core.models import ordinal_copula, tabular

LATENT = np.array([[1.0, 0.7, 0.5], [0.7, 1.0, 0.6], [0.5, 0.6, 1.0]])


def _latent_table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Two ordinal columns (5 and 3 levels, skewed) and a continuous one cut from correlated normals."""
    z = np.random.default_rng(seed).multivariate_normal(np.zeros(3), LATENT, size=n)
    return pd.DataFrame({"grade": np.digitize(z[:, 0], [-0.2, 0.5, 1.0, 1.5]) + 1,
                         "count": np.digitize(z[:, 1], [0.3, 1.2]), "age": 50 + 10 * np.exp(z[:, 2] / 2)})


def test_bivariate_normal_cdf_matches_scipy():
    rng = np.random.default_rng(1)
    h, k = rng.normal(size=12), rng.normal(size=12)
    h[:2], k[1:3] = 0.0, 0.0  # Owen's formula divides by h and k
    for rho in (-0.9, 0.0, 0.45, 0.97):
        ours = ordinal_copula.bivariate_normal_cdf(h, k, rho)
        cov = [[1, rho], [rho, 1]]
        ref = [multivariate_normal(mean=[0, 0], cov=cov).cdf([a, b]) for a, b in zip(h, k, strict=True)]
        assert np.allclose(ours, ref, atol=1e-6)
    cells = ordinal_copula.rectangle_probabilities(np.array([-np.inf, -0.3, 0.8, np.inf]),
                                                   np.array([-np.inf, 0.0, np.inf]), 0.6)
    assert cells.shape == (3, 2) and cells.sum() == pytest.approx(1.0, abs=1e-9)


def test_estimators_recover_the_latent_correlations():
    table = _latent_table()
    copula = ordinal_copula.fit(table, ["grade"])
    assert [m.ordinal for m in copula.margins] == [True, True, False]
    # polychoric (grade, count), polyserial (grade, age) and (count, age): each within 0.1 of the latent one
    assert np.abs(copula.correlation - LATENT).max() < 0.1
    # the correlation of the codes themselves is attenuated: the reason for the latent model
    assert np.corrcoef(table["grade"], table["count"])[0, 1] < LATENT[0, 1] - 0.1


def test_sampled_ordinal_columns_keep_their_margins_and_the_seed_fixes_the_table():
    table = _latent_table(n=600)
    copula = ordinal_copula.fit(table, ["grade"])
    rows = copula.sample(20_000, seed=3)
    for column in ("grade", "count"):
        real = table[column].value_counts(normalize=True).sort_index()
        synthetic = rows[column].value_counts(normalize=True).reindex(real.index, fill_value=0)
        assert set(rows[column].unique()) <= set(real.index)
        assert np.abs(real - synthetic).max() < 0.02
    assert rows["age"].between(table["age"].min(), table["age"].max()).all()
    assert not rows["age"].isin(table["age"]).any()  # smoothed, never a real value (to the column's decimals)
    pd.testing.assert_frame_equal(copula.sample(50, seed=3), copula.sample(50, seed=3))
    assert not copula.sample(50, seed=3).equals(copula.sample(50, seed=4))


def test_nearest_correlation_is_positive_definite_and_near():
    # not positive semi-definite (one pair contradicts the others), as pairwise estimates can be
    bad = np.array([[1, 0.9, 0.85, 0.8], [0.9, 1, 0.88, -0.7], [0.85, 0.88, 1, 0.8], [0.8, -0.7, 0.8, 1]])
    for project in (ordinal_copula.nearest_correlation, ordinal_copula.clipped_correlation):
        out = project(bad)
        assert np.allclose(np.diag(out), 1.0) and np.allclose(out, out.T)
        assert np.linalg.eigvalsh(out).min() >= ordinal_copula.MIN_EIGENVALUE * 0.5
    # Higham's projection is the nearer one in the Frobenius norm
    near, clipped = ordinal_copula.nearest_correlation(bad), ordinal_copula.clipped_correlation(bad)
    assert np.linalg.norm(near - bad) < np.linalg.norm(clipped - bad)
    good = np.array([[1.0, 0.3], [0.3, 1.0]])
    assert np.allclose(ordinal_copula.nearest_correlation(good), good)


def test_fit_sample_on_the_phantom_table_with_a_missing_cell():
    table = data_clinical.phantom_table(40, seed=0)
    table["grade_L4/L5"] = table["grade_L4/L5"].astype("Int64")
    table.loc[3, "grade_L4/L5"] = pd.NA
    rows, about = tabular.fit_sample(table, 200, method="ordinal_copula", seed=5)
    assert about["method"] == "ordinal_copula" and about["library"] == "scipy"
    assert {"sex", "grade_L4/L5", "n_modic"} <= set(about["ordinal_columns"]) and "age" not in about["ordinal_columns"]
    assert list(rows.columns) == [data_clinical.ID_COLUMN, *about["columns"]]
    assert set(rows["sex"].dropna()) <= set(table["sex"]) and rows["grade_L4/L5"].dtype == "Int64"
    assert rows["grade_L4/L5"].dropna().between(1, 5).all()
    again, _ = tabular.fit_sample(table, 200, method="ordinal_copula", seed=5)
    pd.testing.assert_frame_equal(rows, again)
    with pytest.raises(Exception, match="SDV option"):
        tabular.fit_sample(table, 10, method="ordinal_copula", grades="ordinal")


def test_a_nominal_column_is_refused_by_name():
    table = data_clinical.phantom_table(10, seed=0).assign(site=list("ABCDEABCDE"))
    with pytest.raises(Exception, match="column 'site'.*5 labels and no order"):
        tabular.fit_sample(table, 5, method="ordinal_copula")


def test_clinical_table_writes_an_ordinal_copula_table_and_records_the_run(tmp_path):
    import torch

    from synthvu_core.clinical.commands import write_table
    from synthvu_core.models.joint import synthetic_table, train_images
    from synthvu_core.models.registry import load_card
    from tests.test_clinical_dp_joint import parse
    from tests.test_training import small, tiny_dataset

    torch.set_num_threads(1)
    assert parse("--table-method", "ordinal_copula").table_method == "ordinal_copula"
    ds = tiny_dataset(patients=6, prefix="sub-000")
    ds.clinical = data_clinical.phantom_table(6, seed=0)
    folder = train_images(ds, tmp_path / "j", small(steps=1), progress=False)
    about = write_table(folder, ds, rows=30, method="ordinal_copula", seed=2)
    rows = synthetic_table(folder)
    assert len(rows) == 30 and about["rows_fitted"] == len(ds.patients("train"))
    card = load_card(folder)
    assert card["clinical"]["table"]["method"] == "ordinal_copula"
    assert card["privacy_ledger"]["entries"][-1]["mechanism"] == "scipy ordinal_copula (no DP)"
