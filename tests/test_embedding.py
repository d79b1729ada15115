import numpy as np

from synthvu_core.evaluation.embedding import UMAPConfig, fit_umap


def _clusters(n, seed):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * 6, [8.0] * 6])
    lab = np.arange(n) % 2
    return centres[lab] + rng.normal(size=(n, 6)), lab


def test_umap_fit_on_real_projects_synthetic_near_its_cluster():
    real, lab = _clusters(80, 0)
    syn, slab = _clusters(20, 1)
    proj, r2, s2, why = fit_umap(real, syn, config=UMAPConfig(pca_dims=4), seed=0)
    assert why is None and r2.shape == (80, 2) and s2.shape == (20, 2) and proj.fitted_on == "real_train"
    c0, c1 = r2[lab == 0].mean(0), r2[lab == 1].mean(0)
    near0 = np.linalg.norm(s2 - c0, axis=1) < np.linalg.norm(s2 - c1, axis=1)
    assert (near0 == (slab == 0)).all()
    again = fit_umap(real, syn, config=UMAPConfig(pca_dims=4), seed=0)[1]
    np.testing.assert_allclose(again, r2)  # seeded


def test_joint_fit_and_too_few_points():
    real, _ = _clusters(40, 0)
    syn, _ = _clusters(10, 1)
    proj, r2, s2, _ = fit_umap(real, syn, config=UMAPConfig(pca_dims=4, joint=True), seed=0)
    assert proj.fitted_on == "joint" and r2.shape == (40, 2) and s2.shape == (10, 2)
    proj, r2, s2, why = fit_umap(real[:3], syn, seed=0)
    assert proj is None and "at least" in why


def test_small_data_gets_umaps_own_exact_neighbour_graph():
    import umap

    real, _ = _clusters(60, 0)
    proj, _, _, _ = fit_umap(real, None, config=UMAPConfig(pca_dims=4), seed=0)
    assert proj.fit_points is not None and proj.umap.metric == "precomputed"
    own = umap.UMAP(n_neighbors=20, min_dist=0.0, random_state=0).fit(proj.pca.transform(real.astype(np.float32)))
    a, b = proj.umap.graph_.tocsr(), own.graph_.tocsr()
    assert (a != 0).sum() == (b != 0).sum() and abs(a - b).max() < 1e-4  # same neighbours, same weights


def test_large_fits_keep_umaps_approximate_path(monkeypatch):
    import synthvu_core.evaluation.embedding as emb

    monkeypatch.setattr(emb, "SMALL_DATA", 50)
    real, lab = _clusters(80, 0)
    syn, slab = _clusters(20, 1)
    proj, r2, s2, _ = emb.fit_umap(real, syn, config=UMAPConfig(pca_dims=4), seed=0)
    assert proj.fit_points is None and proj.umap.metric == "euclidean"
    c0, c1 = r2[lab == 0].mean(0), r2[lab == 1].mean(0)
    assert ((np.linalg.norm(s2 - c0, axis=1) < np.linalg.norm(s2 - c1, axis=1)) == (slab == 0)).all()
