import numpy as np
import pytest

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


def test_numba_cache_is_turned_on_for_a_package_once(tmp_path, monkeypatch):
    import importlib
    import sys

    from synthvu_core.evaluation.embedding import enable_numba_cache

    pkg = tmp_path / "kernels_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "k.py").write_text("import numba\n\n@numba.njit\ndef twice(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        k = importlib.import_module("kernels_pkg.k")
        assert enable_numba_cache("kernels_pkg") == 1
        assert enable_numba_cache("kernels_pkg") == 0  # already on
        assert enable_numba_cache("kernels") == 0  # a name prefix is not the package
        assert k.twice(21) == 42
        assert list((pkg / "__pycache__").glob("k.twice-*.nbi"))  # compiled code went to numba's on-disk cache
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "kernels_pkg"]:
            del sys.modules[name]


UMAP_CHILD = """
import json, sys
import numpy as np
from synthvu_core.evaluation.embedding import UMAPConfig, fit_umap
rng = np.random.default_rng(0)
real, syn = rng.normal(size=(120, 6)), rng.normal(size=(30, 6))
_, r2, s2, _ = fit_umap(real, syn, config=UMAPConfig(pca_dims=4))
print(json.dumps([r2.tolist(), s2.tolist()]))
"""


@pytest.mark.slow
def test_umap_coordinates_are_the_same_compiled_afresh_or_from_the_cache(tmp_path):
    """A fresh process compiles umap's kernels into an empty numba cache; the next loads them: same numbers."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[1]
    runs = [subprocess.run([sys.executable, "-c", UMAP_CHILD], env=env, cwd=root, capture_output=True, text=True,
                           check=True) for _ in range(2)]
    assert list((tmp_path / "numba").rglob("umap_.*.nbi"))  # umap's own kernels were written to the cache
    first, second = (json.loads(r.stdout.strip().splitlines()[-1]) for r in runs)
    assert first == second
