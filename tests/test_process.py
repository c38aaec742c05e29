"""Aggregation, L2 normalisation and PCA."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from soundsim.process import (
    ProcessingError,
    aggregate,
    l2_normalize,
    minmax_scale,
    normalise,
    normalize_for_search,
    parse_pca,
    pca_label,
    pca_reduce,
    process,
    processing_order,
)


def _frames(seed: int = 0, n: int = 40, d: int = 5, max_frames: int = 9):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_frames + 1, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    emb = rng.standard_normal((offsets[-1], d)).astype(np.float32)
    return emb, offsets


@pytest.mark.parametrize("chunk", [1 << 24, 7])
@pytest.mark.parametrize(("method", "ref"), [("mean", np.mean), ("median", np.median), ("max", np.max)])
def test_aggregate_matches_per_clip_loop(method, ref, chunk, monkeypatch):
    monkeypatch.setattr("soundsim.process._GATHER_ELEMENTS", chunk)  # 7: one clip per gather
    emb, off = _frames()
    got = aggregate(emb, off, method)
    want = np.stack([ref(emb[off[i] : off[i + 1]].astype(np.float64), axis=0) for i in range(len(off) - 1)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got.dtype == np.float64 and got.shape == (len(off) - 1, emb.shape[1])


def test_aggregate_hand_values():
    # clip a: rows [1, 10], [3, 20], [8, 0] ; clip b: rows [2, 2], [4, -2]
    emb = np.array([[1, 10], [3, 20], [8, 0], [2, 2], [4, -2]], dtype=np.float32)
    off = np.array([0, 3, 5])
    np.testing.assert_array_equal(aggregate(emb, off, "mean"), [[4, 10], [3, 0]])  # (1+3+8)/3=4, (10+20+0)/3=10
    np.testing.assert_array_equal(aggregate(emb, off, "median"), [[3, 10], [3, 0]])  # even count: (2+4)/2=3
    np.testing.assert_array_equal(aggregate(emb, off, "max"), [[8, 20], [4, 2]])


def test_aggregate_none():
    emb = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(aggregate(emb, np.arange(4), "none"), emb)
    with pytest.raises(ProcessingError, match=r"'none' needs exactly one row per clip.*'b' \(2 rows\)"):
        aggregate(emb, np.array([0, 1, 3]), "none", fnames=["a", "b"])
    with pytest.raises(ProcessingError, match=r"unknown aggregation 'sum'"):
        aggregate(emb, np.arange(4), "sum")


def test_l2_normalize_and_zero_vector():
    X = np.array([[3.0, 4.0], [0.0, 2.0]])
    np.testing.assert_allclose(l2_normalize(X), [[0.6, 0.8], [0.0, 1.0]])
    with pytest.raises(ProcessingError, match=r"1 clip\(s\) have an all-zero vector.*'silent'"):
        l2_normalize(np.array([[1.0, 0.0], [0.0, 0.0]]), ["ok", "silent"])


def test_pca_deterministic_and_equal_to_sklearn_full():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 12))
    a, info = pca_reduce(X, 5, seed=0)
    b, _ = pca_reduce(X.copy(), "5", seed=123)  # the seed does not matter for the exact solver
    np.testing.assert_array_equal(a, b)
    want = PCA(n_components=5, svd_solver="full").fit_transform(X)
    np.testing.assert_allclose(a, want, rtol=1e-10, atol=1e-10)
    assert info["pca"] == 5 and info["svd_solver"] == "covariance_eigh" and 0 < info["explained_variance_ratio"] < 1
    # fewer clips than dimensions: the SVD solver, same components and signs
    wide, info_w = pca_reduce(X[:8], 3)
    assert info_w["svd_solver"] == "full"
    np.testing.assert_allclose(wide, PCA(n_components=3, svd_solver="full").fit_transform(X[:8]), atol=1e-10)
    same, info_none = pca_reduce(X, "none")
    np.testing.assert_array_equal(same, X)
    assert info_none == {"pca": "none"}


def test_pca_too_many_components():
    X = np.random.default_rng(0).standard_normal((10, 4))
    msg = r"PCA with 5 components is impossible for 10 clips of dimension 4.*min\(N, D\) = 4"
    with pytest.raises(ProcessingError, match=msg):
        pca_reduce(X, 5)
    with pytest.raises(ProcessingError, match=r"min\(N, D\) = 3"):
        pca_reduce(X[:3], 4)
    assert pca_reduce(X, 4)[0].shape == (10, 4)


def test_parse_pca():
    assert parse_pca(100) == 100 and parse_pca("200") == 200 and parse_pca("none") is None and parse_pca(None) is None
    assert pca_label("NONE") == "none" and pca_label(50) == "50"
    for bad in ("ten", 0, -3, 2.5):
        with pytest.raises(ProcessingError):
            parse_pca(bad)


def test_process_order_l2_then_pca_then_l2_for_mcss():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 8)) * rng.uniform(0.1, 10, (30, 1))
    Z, _ = process(X, 3)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)  # reference: normalise first ...
    want = PCA(n_components=3, svd_solver="full").fit_transform(Xn)  # ... then PCA
    np.testing.assert_allclose(Z, want, rtol=1e-9, atol=1e-12)
    assert Z.dtype == np.float64  # the search re-scores its decisions in float64
    # MIPS/NNS keep the PCA output; MCSS re-normalises it
    np.testing.assert_array_equal(normalize_for_search(Z, "mips"), Z)
    np.testing.assert_allclose(np.linalg.norm(normalize_for_search(Z, "mcss"), axis=1), 1, rtol=1e-6)
    # without PCA the vectors are already unit length
    Zn, _ = process(X, "none")
    np.testing.assert_allclose(np.linalg.norm(Zn, axis=1), 1, rtol=1e-6)


def test_pca_output_zero_row_under_cosine():
    # a PCA output row is exactly zero when the clip sits at the collection mean
    Z = np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    with pytest.raises(ProcessingError, match=r"all-zero vector \(PCA output, before cosine search\).*'b'"):
        normalize_for_search(Z, "mcss", ["a", "b"])


def test_minmax_scale_by_hand():
    x = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 0.0], [2.0, 5.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(minmax_scale(x), [[0, 0, 1], [1, 0, 0], [0.5, 0, 0.5]])  # constant column -> 0


def test_l2_pca_order_by_hand():
    """Deep models (create_clip_level_embedding.py): L2 first, then PCA. Two clips
    (3, 4) and (6, 8) point the same way: after L2 both are (0.6, 0.8), so PCA
    sees no variance along them; a third clip (1, 0) is the only other direction."""
    X = np.array([[3.0, 4.0], [6.0, 8.0], [1.0, 0.0]])
    Xn = normalise(X, "l2-pca")
    np.testing.assert_allclose(Xn, [[0.6, 0.8], [0.6, 0.8], [1.0, 0.0]])
    Z, info = process(X, 1, order="l2-pca")
    # PCA on the three unit vectors: mean (2.2/3, 1.6/3); the first component is the
    # direction (0.4, -0.8)/|.| from the two equal clips to (1, 0); the scores are
    # the centred points projected on it: equal for the first two clips
    c = Xn - Xn.mean(axis=0)
    v = np.array([0.4, -0.8]) / np.hypot(0.4, 0.8)
    np.testing.assert_allclose(np.abs(Z[:, 0]), np.abs(c @ v), atol=1e-12)
    assert Z[0, 0] == pytest.approx(Z[1, 0]) and info["order"] == "l2-pca"
    # without PCA the vectors are unit length: the three searches rank alike
    Zn, _ = process(X, "none", order="l2-pca")
    np.testing.assert_allclose(np.linalg.norm(Zn, axis=1), 1)


def test_minmax_pca_order_by_hand():
    """Freesound (freesound-create_clip_level_embedding.py): min-max over the
    collection, then PCA, and no L2 before it: (3, 4) and (6, 8) stay apart."""
    X = np.array([[3.0, 4.0], [6.0, 8.0], [1.0, 0.0]])
    Xm = normalise(X, "minmax-pca")
    np.testing.assert_allclose(Xm, [[0.4, 0.5], [1.0, 1.0], [0.0, 0.0]])
    Zn, info = process(X, "none", order="minmax-pca")
    np.testing.assert_allclose(Zn, Xm)  # no L2: lengths 0.640, 1.414, 0
    assert info["order"] == "minmax-pca"
    Z, _ = process(X, 1, order="minmax-pca")
    want = PCA(n_components=1, svd_solver="full").fit_transform(Xm)
    np.testing.assert_allclose(Z, want, atol=1e-12)


def test_processing_order_from_file_attributes():
    assert processing_order({}) == "l2-pca"
    assert processing_order({"processing": "minmax-pca"}) == "minmax-pca"
    assert processing_order({"collection_transform": "minmax"}) == "minmax-pca"  # files of soundsim < 0.2
    with pytest.raises(ProcessingError, match="unknown processing order 'pca-first'"):
        processing_order({"processing": "pca-first"})


# --------------------------------------------------------------------------- FittedProcessing (issue 15)


def _one_row_clips(seed: int = 5, n: int = 25, d: int = 12):
    """Clip-level rows (one per clip), as Freesound's descriptors: very different scales per column."""
    rng = np.random.default_rng(seed)
    emb = (rng.standard_normal((n, d)) * rng.uniform(0.01, 100, d) + rng.uniform(-50, 50, d)).astype(np.float32)
    return emb, np.arange(n + 1)


_ORDERS_AGGS = [("l2-pca", a) for a in ("mean", "median", "max")] + [("minmax-pca", a) for a in ("mean", "none")]


@pytest.mark.parametrize("pca", [3, None])
@pytest.mark.parametrize(("order", "agg"), _ORDERS_AGGS)
def test_fitted_processing_reproduces_the_evaluations_rows(order, agg, pca, tmp_path):
    """fit_processing's Z is exactly aggregate + process (the evaluation's processing), and
    transforming a clip's frames with the stored statistics gives back its row (to ~1e-12);
    the stored processing survives to_arrays / np.savez / from_arrays unchanged."""
    from soundsim.process import FittedProcessing, fit_processing

    emb, off = _one_row_clips() if agg == "none" else _frames(seed=7, n=30, d=6)
    Z, fitted = fit_processing(emb, off, agg, pca, order, seed=0)
    want, _ = process(aggregate(emb, off, agg), pca, seed=0, order=order)
    np.testing.assert_array_equal(Z, want)
    assert fitted.dim == Z.shape[1] and fitted.order == order and fitted.pca == pca
    np.savez(tmp_path / "p.npz", **fitted.to_arrays())
    with np.load(tmp_path / "p.npz") as a:
        back = FittedProcessing.from_arrays(dict(a))
    assert (back.aggregation, back.order, back.pca, back.seed, back.dim_in) == (agg, order, pca, 0, emb.shape[1])
    for k in ("lo", "span", "mean", "components"):
        v, w = getattr(fitted, k), getattr(back, k)
        assert (v is None) == (w is None) and (v is None or np.array_equal(v, w)), k
    for p in (fitted, back):
        one = [emb[off[i] : off[i + 1]] for i in range(len(off) - 1)]
        got = p.transform(one)
        np.testing.assert_allclose(got, Z, rtol=0, atol=1e-10)
        assert np.max(np.abs(got - Z)) < 1e-6
        np.testing.assert_allclose(p.transform([one[4]])[0], Z[4], rtol=0, atol=1e-10)
    with pytest.raises(ProcessingError, match=f"dimension {emb.shape[1] + 1}.*fitted on dimension {emb.shape[1]}"):
        fitted.transform([np.ones((1, emb.shape[1] + 1))])


def test_fitted_minmax_new_clip_outside_the_range():
    """A new clip beyond the collection's min/max is scaled with the stored lo/span (values
    outside [0, 1] are allowed, not clipped); a constant column stays 0."""
    from soundsim.process import fit_processing

    emb = np.array([[0.0, 1.0, 7.0], [2.0, 3.0, 7.0], [1.0, 5.0, 7.0]], dtype=np.float32)
    _, fitted = fit_processing(emb, np.arange(4), "none", None, "minmax-pca")
    np.testing.assert_array_equal(fitted.lo, [0, 1, 7])
    np.testing.assert_array_equal(fitted.span, [2, 4, 0])
    got = fitted.transform([np.array([[4.0, -1.0, 9.0]])])
    np.testing.assert_allclose(got, [[2.0, -0.5, 0.0]])  # (4-0)/2, (-1-1)/4, constant column -> 0


def test_fitted_l2_zero_clip_is_named():
    from soundsim.process import fit_processing

    emb, off = _frames(seed=2, n=10, d=4)
    _, fitted = fit_processing(emb, off, "mean", 2)
    with pytest.raises(ProcessingError, match="all-zero vector.*'silent.wav'"):
        fitted.transform([np.zeros((3, 4))], ["silent.wav"])


@pytest.mark.parametrize("agg", ["mean", "median", "max"])
@pytest.mark.parametrize("pca", [8, "none"])
def test_fitted_processing_on_real_embeddings_equals_the_processed_file(small_collection, tmp_path, agg, pca):
    """On real aisfx embeddings: the evaluation's own processed/ file (written by
    evaluate_grid, float32) equals fit_processing's Z, and each clip's frames transformed with
    the stored processing reproduce its row (to ~1e-12 against the float64 Z)."""
    from soundsim.evaluate import evaluate_grid
    from soundsim.layout import processed_file
    from soundsim.manifest import read_manifest
    from soundsim.process import fit_processing, processing_order
    from soundsim.store import read_embeddings

    emb = read_embeddings(small_collection["embeddings"])
    man = read_manifest(small_collection["manifest"])
    evaluate_grid(emb, man[["fname", "labels"]], None, [agg], [pca], ["mcss"], out_dir=tmp_path / "m",
                  save_processed=True, processed_dir=tmp_path / "p", restrict=True)
    stored = read_embeddings(processed_file(tmp_path / "p", agg, pca))
    Z, fitted = fit_processing(emb.embeddings, emb.offsets, agg, pca, processing_order(emb.attrs))
    assert stored.fnames == emb.fnames
    np.testing.assert_allclose(stored.embeddings, Z, rtol=0, atol=1e-6)  # float32 file
    frames = [emb.embeddings[emb.offsets[i] : emb.offsets[i + 1]] for i in range(emb.n_clips)]
    err = np.max(np.abs(fitted.transform(frames) - Z))
    assert err < 1e-9, err
