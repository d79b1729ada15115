import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_curve

from synthvu_core.evaluation import privacy as pv

torch.set_num_threads(1)


def test_pairwise_ratio_by_hand():
    cand = np.array([[0.0], [10.0]])
    syn = np.array([[1.0], [2.0], [3.0], [4.0]])
    s = pv.summarise_distances(cand, syn, quantiles=())
    np.testing.assert_allclose(s.d_min, [1, 6])
    np.testing.assert_allclose(s.median, [2.5, 7.5])  # even count: mean of the two middle distances
    np.testing.assert_array_equal(s.nearest, [0, 3])
    score, ratio = pv.pairwise_scores(s)
    np.testing.assert_allclose(ratio, [1 / 2.5, 6 / 7.5])
    np.testing.assert_allclose(score, -ratio)


def test_distribution_counts_by_hand():
    cand = np.array([[0.0], [10.0]])
    syn = np.array([[0.5], [1.0], [9.9]])
    # all distances: 0.5, 1, 9.9 | 9.5, 9, 0.1 -> median quantile = (1 + 9) / 2 = 5
    s = pv.summarise_distances(cand, syn, quantiles=(0.5,))
    assert s.eps[0.5] == pytest.approx(5.0, abs=1e-5)
    np.testing.assert_array_equal(s.counts[0.5], [2, 1])


@pytest.mark.parametrize("q", [0.01, 0.2])
def test_streamed_quantile_and_counts_match_brute_force(q):
    rng = np.random.default_rng(1)
    cand = rng.integers(0, 4, size=(37, 2)).astype(np.float32)  # integer grid: many tied distances
    syn = rng.integers(0, 4, size=(23, 2)).astype(np.float32)
    d = cdist(cand, syn)
    s = pv.summarise_distances(cand, syn, quantiles=(q,), chunk=5)
    eps = np.quantile(d, q)
    assert s.eps[q] == pytest.approx(eps, abs=1e-5)
    np.testing.assert_array_equal(s.counts[q], (d <= eps + 1e-6).sum(1))
    np.testing.assert_allclose(s.median, np.median(d, axis=1), atol=1e-5)
    np.testing.assert_allclose(s.d_min, d.min(1), atol=1e-5)


def test_distance_blocks_split_synthetic_and_uint8():
    rng = np.random.default_rng(2)
    cand = rng.integers(0, 256, size=(9, 2, 3, 3), dtype=np.uint8)
    syn = rng.normal(size=(11, 2, 3, 3)).astype(np.float32)
    full = np.concatenate([d for _, d in pv.distance_blocks(cand, syn, chunk=4, synthetic_chunk=3)])
    ref = cdist(cand.reshape(9, -1) / 127.5 - 1, syn.reshape(11, -1))
    np.testing.assert_allclose(full, ref, rtol=1e-4, atol=1e-4)


def test_tpr_at_fpr_interpolates_the_sklearn_roc():
    y = np.array([1, 0, 1, 0, 1, 0, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1])
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    # points (0, .25), (1/6, .25), (1/6, .5), ... -> at fpr 0.1: between (0, .25) and (1/6, .25)
    assert pv.tpr_at_fpr(fpr, tpr, 0.1) == pytest.approx(0.25)
    # at fpr = 1/6 exactly: top of the vertical segment
    assert pv.tpr_at_fpr(fpr, tpr, 1 / 6) == pytest.approx(0.5)
    # between (2/6, .75) and (3/6, .75)? check against hand interpolation of sklearn's points
    level = 0.25
    i = np.searchsorted(fpr, level, side="right") - 1
    expect = tpr[i] + (tpr[i + 1] - tpr[i]) * (level - fpr[i]) / (fpr[i + 1] - fpr[i])
    assert pv.tpr_at_fpr(fpr, tpr, level) == pytest.approx(expect)
    assert pv.tpr_at_fpr(fpr, tpr, 1.0) == 1.0


def test_tpr_at_fpr_on_a_perfect_attack_is_one():
    y = np.array([1, 1, 0, 0])
    fpr, tpr, _ = roc_curve(y, [4, 3, 2, 1], drop_intermediate=False)
    assert pv.tpr_at_fpr(fpr, tpr, 0.001) == 1.0


def test_topk_share_by_hand_and_with_ties():
    assert pv.topk_share(np.array([5, 4, 3, 2, 1, 0]), np.array([1, 0, 1, 0, 0, 1], bool)) == pytest.approx(2 / 3)
    # k = 2; 3 is above, two candidates tie at 2 (one member): expected share (1 + 0.5) / 2
    assert pv.topk_share(np.array([3, 2, 2, 1]), np.array([1, 1, 0, 0], bool)) == pytest.approx(0.75)


def test_patient_level_is_mean_of_vu_scores():
    names, scores, member = pv.patient_scores(
        np.array([1, 3, 2, 4, 10]), np.array([1, 1, 0, 0, 1], bool), np.array(["a", "a", "b", "b", "c"])
    )
    assert names.tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(scores, [2, 3, 10])
    assert member.tolist() == [True, False, True]


def test_domias_prefers_points_where_synthetic_is_denser_than_reference():
    rng = np.random.default_rng(0)
    syn = rng.normal(0, 1, size=(400, 3))
    ref = rng.normal(3, 1, size=(400, 3))
    cand = np.array([[0.0, 0, 0], [3.0, 3, 3]])
    s, why = pv.domias_scores(cand, syn, ref, dims=3)
    assert why is None and s[0] > s[1]
    s, why = pv.domias_scores(cand, syn[:5], ref, dims=3)
    assert s is None and "reference" in why


def test_discriminator_scores_are_sigmoid_of_real_logit():
    class D(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1).sum(1), torch.zeros(len(x), 3)

    x = np.array([[[[0.0]]], [[[2.0]]]], dtype=np.float32)
    np.testing.assert_allclose(pv.discriminator_scores(D(), x), 1 / (1 + np.exp(-np.array([0.0, 2.0]))), rtol=1e-6)


def test_distance_blocks_never_write_into_the_callers_arrays():
    rng = np.random.default_rng(5)
    cand = rng.normal(size=(7, 2, 3, 3)).astype(np.float32)
    syn = rng.normal(size=(5, 2, 3, 3)).astype(np.float32) + 3.0
    cand0, syn0 = cand.copy(), syn.copy()
    first = np.concatenate([d for _, d in pv.distance_blocks(cand, syn, chunk=3, synthetic_chunk=2)])
    assert np.array_equal(cand, cand0) and np.array_equal(syn, syn0)
    again = np.concatenate([d for _, d in pv.distance_blocks(cand, syn)])
    np.testing.assert_allclose(first, again, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kinds", [("u8", "u8"), ("f32", "u8"), ("u8", "f64")])
def test_matrix_product_path_matches_float64_brute_force(kinds):
    """Above EXACT_DIM features the distances come from one matrix product: same summaries as float64."""
    rng = np.random.default_rng(7)
    shape = (3, 8, 8)  # 192 features > EXACT_DIM
    assert np.prod(shape) > pv.EXACT_DIM

    def make(kind, n):
        u = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        return u if kind == "u8" else (u / 127.5 - 1).astype(np.float32 if kind == "f32" else np.float64)

    cand, syn = make(kinds[0], 31), make(kinds[1], 43)
    f = [x.reshape(len(x), -1) / 127.5 - 1 if x.dtype == np.uint8 else x.reshape(len(x), -1) for x in (cand, syn)]
    d = cdist(f[0].astype(np.float64), f[1].astype(np.float64))
    for chunk, syn_chunk in ((None, None), (7, 9)):
        blocks = np.concatenate([b for _, b in pv.distance_blocks(cand, syn, chunk=chunk, synthetic_chunk=syn_chunk)])
        np.testing.assert_allclose(blocks, d, rtol=1e-5, atol=1e-4)
    s = pv.summarise_distances(cand, syn, quantiles=(0.05,), chunk=6)
    np.testing.assert_array_equal(s.nearest, d.argmin(1))
    np.testing.assert_allclose(s.d_min, d.min(1), rtol=1e-5)
    np.testing.assert_allclose(s.median, np.median(d, axis=1), rtol=1e-5)
    eps = np.quantile(d, 0.05)
    assert s.eps[0.05] == pytest.approx(eps, rel=1e-5)
    np.testing.assert_array_equal(s.counts[0.05], (d <= eps * (1 + 1e-6)).sum(1))


def test_summaries_keep_enough_values_to_skip_the_second_pass(monkeypatch):
    rng = np.random.default_rng(8)
    cand = rng.integers(0, 3, size=(40, 100), dtype=np.uint8)  # few distinct distances: many ties at eps
    syn = rng.integers(0, 3, size=(50, 100), dtype=np.uint8)
    calls = []
    real = pv.distance_blocks
    monkeypatch.setattr(pv, "distance_blocks", lambda *a, **k: calls.append(1) or real(*a, **k))
    s = pv.summarise_distances(cand, syn, quantiles=(0.01,))
    d = cdist(cand / 127.5 - 1, syn / 127.5 - 1)
    eps = np.quantile(d, 0.01)
    np.testing.assert_array_equal(s.counts[0.01], (d <= eps * (1 + 1e-6)).sum(1))
    assert not calls  # the counts came from the kept values


@pytest.mark.parametrize("m", [1, 7, 40, 1000])
def test_smallest_keeper_keeps_exactly_the_m_smallest_across_many_blocks(m):
    rng = np.random.default_rng(m)
    blocks = [rng.integers(0, 50, size=(3, 11)).astype(np.float32) for _ in range(30)]  # ties across blocks
    keep = pv._SmallestKeeper(m)
    for i, b in enumerate(blocks):
        keep.add(b, 3 * i)
    every = np.concatenate([b.ravel() for b in blocks])
    want = np.sort(every)[:m]
    np.testing.assert_array_equal(np.sort(keep.values), want)
    rows = np.concatenate([np.repeat(np.arange(3 * i, 3 * i + 3), 11) for i in range(30)])
    # every kept row id is the row of a value it claims: the pair (value, row) exists in the stream
    pairs = set(zip(every.tolist(), rows.tolist()))
    assert all((v, r) in pairs for v, r in zip(keep.values.tolist(), keep.rows.tolist()))
