"""Exact blockwise search: scores, query exclusion, tie rule, block-size independence."""

from __future__ import annotations

import numpy as np
import pytest

from soundsim import search as S

from conftest import brute_force_keys


def _naive(Z: np.ndarray, search: str) -> np.ndarray:
    """Float64 pairwise scores, higher = better (nns: minus the distance)."""
    Z = Z.astype(np.float64)
    n = len(Z)
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            a, b = Z[i], Z[j]
            if search == "mips":
                out[i, j] = a @ b
            elif search == "mcss":
                out[i, j] = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
            else:
                out[i, j] = -np.linalg.norm(a - b)
    return out


@pytest.mark.parametrize("search", S.SEARCHES)
def test_rank_matches_naive_scores_and_excludes_query(search):
    rng = np.random.default_rng(7)
    Z = rng.standard_normal((31, 6)).astype(np.float32)
    idx, sc = S.rank(Z, search, k=10, block_size=8)
    assert idx.shape == (31, 10) and idx.dtype == np.int32 and sc.dtype == np.float32
    naive = _naive(Z, search)
    for q in range(31):
        assert q not in idx[q]
        others = [j for j in range(31) if j != q]
        want = sorted(others, key=lambda j: -naive[q, j])[:10]
        assert idx[q].tolist() == want
        expected = naive[q, want] if search != "nns" else -naive[q, want]
        np.testing.assert_allclose(sc[q], expected, rtol=1e-4, atol=1e-4)
    if search == "nns":
        assert np.all(np.diff(sc, axis=1) >= 0)  # distances ascend
    else:
        assert np.all(np.diff(sc, axis=1) <= 0)  # similarities descend


@pytest.mark.parametrize("search", S.SEARCHES)
def test_ties_lower_index_first(search):
    # clips 0..5 identical (1, 0); clip 6 = (0, 1). Every clip ties with the identical ones.
    Z = np.array([[1, 0]] * 6 + [[0, 1]], dtype=np.float32)
    idx, _ = S.rank(Z, search, k=3, block_size=4)
    assert idx[0].tolist() == [1, 2, 3]  # itself excluded, ties by index
    assert idx[4].tolist() == [0, 1, 2]
    assert idx[6].tolist() == [0, 1, 2]  # all six tie for the last clip
    idx_all, _ = S.rank(Z, search, k=6, block_size=7)
    assert idx_all[3].tolist() == [0, 1, 2, 4, 5, 6]


def test_topk_tie_straddling_the_cut():
    keys = np.array([[5, 3, 3, 3, 1, 3, 3], [3, 3, 3, 3, 3, 3, 9]], dtype=np.float32)
    cols, vals = S.topk(keys, 2)
    assert cols.tolist() == [[0, 1], [6, 0]] and vals.tolist() == [[5, 3], [9, 3]]
    cols, _ = S.topk(keys, 4)
    assert cols.tolist() == [[0, 1, 2, 3], [6, 0, 1, 2]]
    cols, _ = S.topk(keys, 7)
    assert cols.tolist() == [[0, 1, 2, 3, 5, 6, 4], [6, 0, 1, 2, 3, 4, 5]]


@pytest.mark.parametrize("search", S.SEARCHES)
def test_block_size_independence_exact_data(search):
    # integer-valued embeddings: every product and sum is exact in float32,
    # so results must be bit-identical whatever the block size (and full of ties)
    rng = np.random.default_rng(11)
    Z = rng.integers(-3, 4, size=(40, 5)).astype(np.float32)
    Z[np.all(Z == 0, axis=1), 0] = 1
    ref = S.rank(Z, search, k=12, block_size=40)
    for bs in (1, 7, 40, 1000):
        got = S.rank(Z, search, k=12, block_size=bs)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])


@pytest.mark.parametrize("search", S.SEARCHES)
def test_block_size_independence_float_data(search):
    # continuous data: BLAS may round a float32 Gram entry differently for
    # different block shapes (last bit), but the rankings are those of the
    # float64 keys; the reported scores agree to float32 precision
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((37, 9))
    ref = S.rank(Z, search, k=36, block_size=37)
    for bs in (1, 7, 37):
        got = S.rank(Z, search, k=36, block_size=bs)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Rankings equal a brute-force float64 ranking, whatever the block size


def brute_force_ranking(keys: np.ndarray) -> np.ndarray:
    """Full ranking of every row (N, N-1): key descending, ties by lower index."""
    n = len(keys)
    order = np.lexsort((np.broadcast_to(np.arange(n), keys.shape), -keys), axis=1)
    return order[:, : n - 1]  # the own entry (-inf) comes last


def near_tie_collection(seed: int = 0) -> np.ndarray:
    """240 x 6 float64 vectors full of near-ties and ties: 16 base vectors,
    each copied 15 times -- 5 exact copies (ties) and 10 with noise of 1e-9
    relative size (float64 keys differ, the float32 keys cannot tell them
    apart) -- in a shuffled order."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((16, 6)) * rng.uniform(0.5, 2, size=(16, 1))
    Z = np.repeat(base, 15, axis=0)
    noisy = np.tile(np.r_[np.zeros(5), np.ones(10)], 16).astype(bool)
    Z[noisy] += rng.standard_normal((int(noisy.sum()), 6)) * 1e-9
    return Z[rng.permutation(len(Z))]


def low_dim_collection(seed: int = 1) -> np.ndarray:
    """400 x 2 continuous vectors near a coarse grid (integers -3..3 plus noise
    of 1e-8): nearly every key has near-ties that float32 cannot resolve."""
    rng = np.random.default_rng(seed)
    Z = rng.integers(-3, 4, size=(400, 2)) + rng.standard_normal((400, 2)) * 1e-8
    Z[np.abs(Z).sum(axis=1) < 0.5] = 1.0  # no zero vectors (cosine)
    return Z


@pytest.mark.parametrize("search", S.SEARCHES)
@pytest.mark.parametrize("make", [near_tie_collection, low_dim_collection])
def test_rankings_equal_brute_force_float64_for_any_block_size(search, make):
    Z = make()
    n = len(Z)
    want = brute_force_ranking(brute_force_keys(Z, search))
    # the float32 ranking differs: the data exercise the float64 re-scoring
    k32 = np.concatenate([kb[search].keys for _, kb in S.iter_key_blocks(S.prepare(Z, [search]), [search], n)])
    assert (brute_force_ranking(k32.astype(np.float64)) != want).any()
    for k in (1, 17, 40, n - 1):
        for bs in (1, 13, 64, n):
            idx, sc = S.rank(Z, search, k=k, block_size=bs)
            np.testing.assert_array_equal(idx, want[:, :k], err_msg=f"k={k} block_size={bs}")
            if search == "nns":
                assert np.all(np.diff(sc, axis=1) >= 0)
            else:
                assert np.all(np.diff(sc, axis=1) <= 0)


def test_exact_duplicates_tie_by_lower_index():
    # clips 3, 7, 11 are copies of clip 0 (and 5 of 2); with noise-free copies
    # every search gives equal float64 keys: lower index first
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((14, 5))
    Z[[3, 7, 11]] = Z[0]
    Z[5] = Z[2]
    for search in S.SEARCHES:
        idx, _ = S.rank(Z, search, k=13, block_size=4)
        if search != "mips":  # a copy is the nearest (cosine 1, distance 0)
            assert idx[0][:3].tolist() == [3, 7, 11]
            assert idx[7][:3].tolist() == [0, 3, 11]
            assert idx[2][0] == 5 and idx[5][0] == 2
        for q in range(14):  # copies are adjacent in every ranking, in index order
            pos = {int(j): p for p, j in enumerate(idx[q])}
            group = [j for j in (0, 3, 7, 11) if j != q]
            assert [pos[j] for j in group] == list(range(pos[group[0]], pos[group[0]] + len(group)))


@pytest.mark.parametrize("search", S.SEARCHES)
@pytest.mark.parametrize(("d", "scale"), [(3, 1.0), (100, 1.0), (512, 1.0), (512, 1e3), (64, 1e-12)])
def test_error_bound_holds(search, d, scale):
    # |key32 - key64| <= eps for every entry (eps: the per-row rigorous bound)
    rng = np.random.default_rng(d)
    Z = rng.standard_normal((300, d)) * rng.uniform(0.1, 3, size=(300, 1)) * scale
    prep = S.prepare(Z, [search])
    _, blocks = next(S.iter_key_blocks(prep, [search], 300))
    kb = blocks[search]
    exact = brute_force_keys(Z, search)
    off = ~np.eye(300, dtype=bool)
    err = np.abs(kb.keys.astype(np.float64)[off] - exact[off]).reshape(300, 299)
    assert np.all(err <= kb.eps[:, None])
    assert err.max() > 0 and np.all(kb.eps < 1e-3 * np.abs(exact[off]).max())  # not absurdly loose


def test_zero_vector_under_cosine_names_clip():
    Z = np.array([[1, 0], [0, 0], [0, 1]], dtype=np.float32)
    with pytest.raises(S.SearchError, match=r"1 clip\(s\) have an all-zero vector.*mcss.*'quiet'"):
        S.rank(Z, "mcss", 1, fnames=["a", "quiet", "c"])
    # inner product and distance are defined for a zero vector
    idx, sc = S.rank(Z, "mips", 2)
    assert idx[1].tolist() == [0, 2] and sc[1].tolist() == [0.0, 0.0]
    idx, sc = S.rank(Z, "nns", 2)
    assert idx[0].tolist() == [1, 2] and sc[0].tolist() == pytest.approx([1.0, np.sqrt(2)])


def test_bad_inputs():
    with pytest.raises(S.SearchError, match="unknown search 'cosine'"):
        S.rank(np.ones((3, 2), np.float32), "cosine", 1)
    with pytest.raises(S.SearchError, match="at least 2 clips"):
        S.rank(np.ones((1, 2), np.float32), "mips", 1)
    with pytest.raises(S.SearchError, match=r"NaN/inf: 'b'"):
        S.rank(np.array([[1, 0], [np.nan, 0]], np.float32), "mips", 1, fnames=["a", "b"])
    idx, _ = S.rank(np.eye(3, dtype=np.float32), "mips", 50)  # k capped at N-1
    assert idx.shape == (3, 2)


def test_default_block_size_bounds_memory():
    assert S.default_block_size(100_000) * 100_000 <= S.BLOCK_ELEMENTS
    assert 1 <= S.default_block_size(10**9) and S.default_block_size(10) == 4096


def test_blocks_never_allocate_n_by_n():
    prep = S.prepare(np.random.default_rng(0).standard_normal((50, 3)), S.SEARCHES)
    shapes = [keys[s].keys.shape for _, keys in S.iter_key_blocks(prep, S.SEARCHES, block_size=8) for s in keys]
    assert max(r for r, _ in shapes) == 8 and all(c == 50 for _, c in shapes)
