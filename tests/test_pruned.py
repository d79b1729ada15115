import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from synthvu_core.evaluation import attacks
from synthvu_core.evaluation import pruned as pr
from synthvu_core.evaluation.privacy import summarise_distances

torch.set_num_threads(1)


def low_rank_vus(n: int, rank: int, noise: float, seed: int, shape: tuple[int, ...] = (2, 6, 6)) -> np.ndarray:
    """uint8 VUs: a few random patterns mixed at random, plus noise (structured like images, not uniform noise)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(rank, int(np.prod(shape))))
    x = 128 + 25 * rng.normal(size=(n, rank)) @ basis + noise * rng.normal(size=(n, basis.shape[1]))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(n, *shape)


def unit(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float64) / 127.5 - 1.0


def test_lower_bound_never_exceeds_the_exact_distance():
    cand, syn = low_rank_vus(40, 3, 20.0, 1), low_rank_vus(70, 3, 20.0, 2)
    space = pr.fit_bound_space(syn, dims=2)
    bounds = pr.lower_bound_block(pr.project(cand, space), pr.project(syn, space), 0, len(cand)).numpy()
    exact = cdist(unit(cand), unit(syn), "sqeuclidean")
    assert np.all(bounds <= exact)
    assert np.mean(bounds > 0.5 * exact) > 0.5  # and it is a useful bound, not zero


@pytest.mark.parametrize("first", [1, 4, 200])
def test_nearest_is_exact_whatever_the_certification_path(first):
    cand, syn = low_rank_vus(60, 4, 30.0, 3), low_rank_vus(90, 4, 30.0, 4)
    got, stats = pr.pruned_summary(cand, syn, dims=2, first=first)
    exact = cdist(unit(cand), unit(syn))
    np.testing.assert_array_equal(got.nearest, exact.argmin(1))
    np.testing.assert_allclose(got.d_min, exact.min(1), rtol=1e-5)
    assert stats.certified_first + stats.fallback_rows == len(cand)
    if first == 1:  # two axes miss much of the noise: the first guess is often not certified
        assert stats.fallback_rows > 0
    if first == 200:  # every synthetic VU is a first candidate: nothing left to certify against
        assert stats.fallback_rows == 0 and stats.exact_pairs == len(cand) * len(syn)


def test_duplicates_are_found_with_the_lowest_index():
    syn = low_rank_vus(50, 3, 10.0, 5)
    syn[20] = syn[7]
    cand = syn[[7, 3, 20]].copy()
    got, _ = pr.pruned_summary(cand, syn, dims=2, first=1)
    np.testing.assert_array_equal(got.nearest, [7, 3, 7])
    np.testing.assert_allclose(got.d_min, 0.0, atol=1e-3)


def test_median_eps_and_counts_are_exact_when_the_axes_span_the_data():
    cand, syn = low_rank_vus(30, 5, 0.0, 6), low_rank_vus(80, 5, 0.0, 7)
    got, stats = pr.pruned_summary(cand, syn, dims=72, quantile=0.05)  # every axis: no residual
    want = summarise_distances(cand, syn, quantiles=(0.05,))
    assert stats.eps_se == 0.0 and stats.eps_pairs == len(cand) * len(syn)  # small sets: every pair sampled
    assert got.eps[0.05] == pytest.approx(want.eps[0.05], rel=1e-5)
    np.testing.assert_allclose(got.median, want.median, rtol=1e-3)
    np.testing.assert_array_equal(got.counts[0.05], want.counts[0.05])


def test_median_and_counts_are_estimates_between_the_bounds_with_few_axes():
    cand, syn = low_rank_vus(40, 4, 15.0, 8), low_rank_vus(120, 4, 15.0, 9)
    got, _ = pr.pruned_summary(cand, syn, dims=4, quantile=0.05)  # the patterns; the noise left over
    want = summarise_distances(cand, syn, quantiles=(0.05,))
    np.testing.assert_allclose(got.median, want.median, rtol=0.02)
    assert abs(got.counts[0.05].sum() - want.counts[0.05].sum()) <= 0.1 * want.counts[0.05].sum()


def test_eps_from_a_sample_reports_its_standard_error():
    cand, syn = low_rank_vus(200, 4, 15.0, 10), low_rank_vus(300, 4, 15.0, 11)
    eps, se, pairs = pr.estimate_eps(cand, syn, 0.05, rows=50, cols=100, seed=0)
    exact = float(np.quantile(cdist(unit(cand), unit(syn)), 0.05))
    assert pairs == 50 * 100 and se > 0
    assert abs(eps - exact) < 4 * se


def test_large_pixel_sets_take_the_pruned_path(monkeypatch):
    cand, syn = low_rank_vus(30, 4, 20.0, 12), low_rank_vus(60, 4, 20.0, 13)
    calls = []

    def spy(*a, **k):
        calls.append(k)
        return pr.pruned_summary(*a, **k)

    monkeypatch.setattr(attacks, "pruned_summary", spy)
    monkeypatch.setattr(attacks, "DENSE_BYTES", 0)
    space = attacks.AttackSpaces({"pixel": cand})
    syn_set = attacks.SyntheticSet.of(space, syn)
    exact = summarise_distances(cand, syn, quantiles=(0.01,))
    small = syn_set.summary(space, "pixel", 0.01)
    assert not calls and np.array_equal(small.counts[0.01], exact.counts[0.01])  # below the work threshold: exact
    monkeypatch.setattr(attacks, "PRUNED_WORK", 1)
    monkeypatch.setattr(attacks, "PRUNED_MIN_DIM", 8)
    big = syn_set.summary(space, "pixel", 0.01)
    assert len(calls) == 1 and calls[0]["quantile"] == 0.01
    np.testing.assert_array_equal(big.nearest, exact.nearest)


def test_gram_axes_are_orthonormal_and_bound_from_below():
    cand, base = low_rank_vus(40, 3, 20.0, 14), low_rank_vus(70, 3, 20.0, 15)
    space = pr.fit_gram_space(base, dims=3, fit_rows=50)
    axes = space.axes.double().numpy()
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-6)
    assert space.explained > 0.8  # three patterns: three axes hold most of the variance
    bounds = pr.lower_bound_block(pr.project(cand, space), pr.project(base, space), 0, len(cand)).numpy()
    assert np.all(bounds <= cdist(unit(cand), unit(base), "sqeuclidean"))


@pytest.mark.parametrize(("dims", "first"), [(1, 1), (2, 4), (3, 300)])
def test_nearest_in_finds_the_brute_force_nearest(dims, first):
    queries, base = low_rank_vus(150, 4, 30.0, 16), low_rank_vus(90, 4, 30.0, 17)
    d2, idx, stats = pr.nearest_in(queries, base, dims=dims, first=first)
    exact = cdist(unit(queries), unit(base), "sqeuclidean")
    np.testing.assert_array_equal(idx, exact.argmin(1))
    np.testing.assert_allclose(d2, exact.min(1), rtol=1e-4)
    if first == 300:  # every base VU a first guess: the brute force's work
        assert stats.exact_pairs == len(queries) * len(base)


def test_nearest_in_computes_few_pairs_where_the_axes_hold_the_patterns():
    queries, base = low_rank_vus(150, 4, 5.0, 19), low_rank_vus(600, 4, 5.0, 20)
    _, idx, stats = pr.nearest_in(queries, base, dims=4, first=4)
    np.testing.assert_array_equal(idx, cdist(unit(queries), unit(base), "sqeuclidean").argmin(1))
    assert stats.exact_pairs < 0.3 * len(queries) * len(base)


def test_nearest_in_breaks_ties_by_the_lowest_index():
    base = low_rank_vus(60, 3, 10.0, 18)
    base[41] = base[9]
    _, idx, _ = pr.nearest_in(base[[41, 9, 2]].copy(), base, dims=2, first=1)
    np.testing.assert_array_equal(idx, [9, 9, 2])


def test_nearest_in_hands_unstructured_vus_to_the_brute_force(monkeypatch):
    monkeypatch.setattr(pr, "PILOT_ROWS", 32)
    rng = np.random.default_rng(21)
    queries, base = (rng.integers(0, 256, (n, 2, 6, 6), dtype=np.uint8) for n in (200, 150))  # noise: no axes help
    _, idx, stats = pr.nearest_in(queries, base, dims=4)
    np.testing.assert_array_equal(idx, cdist(unit(queries), unit(base), "sqeuclidean").argmin(1))
    assert stats.fallback_rows == len(queries) - 32
    structured = pr.nearest_in(low_rank_vus(200, 4, 5.0, 22), low_rank_vus(1500, 4, 5.0, 23), dims=4)[2]
    assert structured.fallback_rows == 0


def test_nearest_in_gives_duplicates_the_lowest_index_across_rounds():
    """Duplicate VUs reached in different rounds get distances from different products, which differ in the last
    float32 bits: the lowest index must still win (VUs of the real size, where the rounding differs)."""
    rng = np.random.default_rng(5)
    dim, m = 9 * 64 * 64, 400
    lat, basis = rng.normal(size=(m, 8)), rng.normal(size=(8, dim))
    base = np.clip(128 + 20 * lat @ basis / np.sqrt(8) + rng.normal(0, 5, (m, dim)), 0, 255).astype(np.uint8)
    base[200:300] = base[0:100]  # exact duplicates: base[j + 200] == base[j]
    pick = rng.integers(0, 100, 45)
    queries = np.clip(base[pick].astype(np.int16) + rng.integers(-15, 16, (45, dim)), 0, 255).astype(np.uint8)
    _, idx, _ = pr.nearest_in(queries, base, dims=8, first=1)
    diffs = (base.astype(np.int32) - q.astype(np.int32) for q in queries)
    exact = [np.einsum("ij,ij->i", d, d).argmin() for d in diffs]
    np.testing.assert_array_equal(idx, exact)  # the integer-exact brute force: lowest index of the duplicates
