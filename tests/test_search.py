"""Exact blockwise search: scores, query exclusion, tie rule, block-size independence."""

from __future__ import annotations

import numpy as np
import pytest

from soundsim import search as S


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
    # continuous data: BLAS may round a Gram entry differently for different
    # block shapes (last bit), so scores agree to float32 precision; without
    # near-ties the rankings are identical
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((37, 9)).astype(np.float32)
    ref = S.rank(Z, search, k=36, block_size=37)
    for bs in (1, 7, 37):
        got = S.rank(Z, search, k=36, block_size=bs)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-5, atol=1e-5)


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
    shapes = [keys[s].shape for _, keys in S.iter_key_blocks(prep, S.SEARCHES, block_size=8) for s in keys]
    assert max(r for r, _ in shapes) == 8 and all(c == 50 for _, c in shapes)
