"""soundsim.ann: faiss indexes with exact float64 re-ranking, on small real arrays."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss", reason="soundsim.ann needs faiss-cpu (requirements.txt, the [service] extra)")

from soundsim import ann as A  # noqa: E402
from soundsim import search as S  # noqa: E402

#: small graphs / cells so that builds take milliseconds (the defaults are for millions)
FAST = {"hnsw": {"m": 16, "ef_construction": 64}, "freesound": {}, "flat": {}, "ivf": {"nlist": 16, "nprobe": 16},
        "ivf-sq8": {"nlist": 16, "nprobe": 16}, "ivf-pq": {"nlist": 8, "nprobe": 8, "pq_m": 8}}


def unequal(n: int = 300, d: int = 16, seed: int = 0) -> np.ndarray:
    """Gaussian rows with unequal norms (mips, mcss and nns differ), float64."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * rng.uniform(0.3, 3.0, size=(n, 1))


def clustered(n: int, d: int, clusters: int, seed: int = 0, spread: float = 0.15) -> np.ndarray:
    """Rows around ``clusters`` random centres (noise ``spread`` relative to a unit centre)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)) / np.sqrt(d)
    return centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, d)) * (spread / np.sqrt(d))


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """Tiny searches on shared cores: OpenMP thread hand-offs would dominate (results do not depend on it)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def build(Z: np.ndarray, type_: str, search: str = "mcss", **params) -> A.VectorIndex:
    spec = A.make_spec(type_, search, len(Z), Z.shape[1], {**FAST[type_], **params})
    return A.VectorIndex.build(Z, spec)


def self_excluded(n: int) -> list[np.ndarray]:
    return [np.array([i]) for i in range(n)]


# ------------------------------------------------------------------ make_spec


def test_make_spec_defaults():
    s = A.make_spec("hnsw", "mcss", 1000, 64)
    assert (s.type, s.search, s.metric) == ("hnsw", "mcss", "ip")
    assert s.params == A.DEFAULTS["hnsw"]
    assert A.make_spec("exact", "nns", 10, 4).type == "flat"
    assert A.make_spec("flat", "nns", 10, 4).metric == "l2"
    ivf = A.make_spec("ivf", "mips", 1_000_000, 100)
    assert ivf.params["nlist"] == A.default_nlist(1_000_000) == 4000
    assert ivf.params["nprobe"] == A.DEFAULTS["ivf"]["nprobe"]
    assert A.make_spec("freesound", "mcss", 10, 4).params == {"m": 10, "ef_construction": 40, "ef_search": 40,
                                                              "min_similarity": 0.7}
    assert A.make_spec("ivf", "mips", 100_000, 4, {"nprobe": None}).params["nprobe"] == A.DEFAULTS["ivf"]["nprobe"]
    assert A.IndexSpec.from_dict(ivf.to_dict()) == ivf


def test_default_nlist():
    assert A.default_nlist(1_000_000) == 4000  # 4 sqrt(n)
    assert A.default_nlist(10_000_000) == round(4 * np.sqrt(1e7))
    assert A.default_nlist(1000) == 1000 // 39  # 39 training points per cell
    assert A.default_nlist(10) == 1
    assert A.default_nlist(0) == 1


@pytest.mark.parametrize("type_, search, params, match", [
    ("annoy", "mcss", {}, "unknown index type 'annoy'"),
    ("ivf", "cosine", {}, "unknown search 'cosine'"),
    ("flat", "mcss", {"nprobe": 4}, "no parameter.*nprobe.*its parameters: margin"),
    ("hnsw", "mcss", {"m": 0}, "m must be a positive integer, got 0"),
    ("hnsw", "mcss", {"ef_search": -5}, "ef_search must be a positive integer"),
    ("ivf", "mcss", {"nprobe": 2.5}, "nprobe must be a positive integer, got 2.5"),
    ("ivf", "mcss", {"nlist": "100"}, "nlist must be a positive integer"),
    ("ivf-pq", "mcss", {"rerank": True}, "rerank must be a positive integer, got True"),
    ("flat", "mcss", {"margin": -1}, "margin must be a positive integer"),
    ("freesound", "mcss", {"min_similarity": 1.5}, r"min_similarity must be a number in \[-1, 1\]"),
    ("freesound", "mcss", {"min_similarity": "high"}, "min_similarity must be a number"),
])
def test_make_spec_refuses(type_, search, params, match):
    with pytest.raises(A.IndexError_, match=match):
        A.make_spec(type_, search, 1000, 16, params)


def test_make_spec_zero_margin_allowed():
    assert A.make_spec("flat", "mcss", 10, 4, {"margin": 0}).params["margin"] == 0


def test_make_spec_nlist_capped_and_nprobe_capped():
    s = A.make_spec("ivf", "mcss", 50, 8, {"nlist": 4000, "nprobe": 64})
    assert s.params["nlist"] == 50 and s.params["nprobe"] == 50
    s = A.make_spec("ivf-sq8", "mcss", 10_000, 8, {"nlist": 8})
    assert s.params["nlist"] == 8 and s.params["nprobe"] == 8
    assert A.make_spec("ivf", "mcss", 1, 8).params["nlist"] == 1


@pytest.mark.parametrize("d, want, got", [(100, 32, 25), (512, 32, 32), (96, 32, 32), (37, 32, 1), (8, 32, 8),
                                           (30, 7, 6)])
def test_make_spec_pq_m_divides_d(d, want, got):
    s = A.make_spec("ivf-pq", "mcss", 100_000, d, {"pq_m": want})
    assert s.params["pq_m"] == got and d % got == 0


@pytest.mark.parametrize("n, nbits", [(100_000, 8), (39 * 256, 8), (39 * 256 - 1, 7), (1000, 4), (10, 1)])
def test_make_spec_pq_nbits_lowered_for_small_n(n, nbits):
    assert A.make_spec("ivf-pq", "mcss", n, 16).params["pq_nbits"] == nbits


# ------------------------------------------------------------------ exactness


@pytest.mark.parametrize("search", S.SEARCHES)
def test_flat_equals_exact_rank_with_duplicates(search):
    Z = unequal(300, 16)
    Z[[5, 6, 250]] = Z[3]  # exact duplicates: tied keys, lower id first
    Z[100] = Z[299]
    Z[7] = 2 * Z[3]  # same direction: ties under mcss only
    k = 20
    want_ids, want_sc = S.rank(Z, search, k)
    vi = build(Z, "flat", search)
    ids, keys = vi.search(Z, k, exclude=self_excluded(len(Z)))
    np.testing.assert_array_equal(ids, want_ids.astype(np.int64))
    q_sq = np.einsum("ij,ij->i", Z, Z)
    sc = np.stack([A.score_of(keys[i], search, q_sq[i]) for i in range(len(Z))])
    np.testing.assert_allclose(sc, want_sc, rtol=1e-5, atol=1e-5)
    # the duplicates of row 3 come first for row 3 itself, in id order
    if search != "nns":
        assert list(ids[3, :3]) == ([5, 6, 7] if search == "mcss" else [7, 5, 6])
    else:
        assert list(ids[3, :3]) == [5, 6, 250]


@pytest.mark.parametrize("search", S.SEARCHES)
def test_exact_keys_to_bit_for_bit(search):
    Z = unequal(200, 24, seed=3)
    prep = S.prepare(Z, [search])
    rng = np.random.default_rng(1)
    for q in (0, 17, 199):
        cols = rng.choice(len(Z), size=60, replace=False)
        want = S.exact_keys(prep, search, np.full(cols.size, q), cols)
        got = A.exact_keys_to(Z, Z[q], cols, search)
        assert np.array_equal(got, want)
        got2 = A.exact_keys_to(Z, Z[q], cols, search, q_norm=float(prep.norms64[q]), norms64=prep.norms64)
        assert np.array_equal(got2, want)


def test_hand_computed_keys_scores_and_cosines():
    Z = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    q = np.array([1.0, 0.0])
    rows = np.array([0, 1, 2])
    np.testing.assert_array_equal(A.exact_keys_to(Z, q, rows, "mips"), [3.0, 1.0, 0.0])
    np.testing.assert_allclose(A.exact_keys_to(Z, q, rows, "mcss"), [0.6, 1.0, 0.0])
    nns = A.exact_keys_to(Z, q, rows, "nns")  # 2<q,b> - |b|^2
    np.testing.assert_array_equal(nns, [6.0 - 25.0, 2.0 - 1.0, 0.0 - 4.0])
    # distance = sqrt(|q|^2 - key): |q-b| = sqrt(20), 0, sqrt(5)
    np.testing.assert_allclose(A.score_of(nns, "nns", 1.0), [np.sqrt(20.0), 0.0, np.sqrt(5.0)])
    np.testing.assert_array_equal(A.score_of(np.array([0.6, -1.0]), "mcss", 1.0), [0.6, -1.0])
    np.testing.assert_array_equal(A.score_of(np.array([3.0]), "mips", 1.0), [3.0])
    Zc = np.vstack([Z, [[0.0, 0.0]]])
    np.testing.assert_allclose(A.cosine_to(Zc, np.array([3.0, 4.0]), np.array([0, 1, 2, 3])), [1.0, 0.6, 0.8, 0.0])
    np.testing.assert_array_equal(A.cosine_to(Zc, np.zeros(2), np.array([0, 1])), [0.0, 0.0])


# ------------------------------------------------------------------ exclude


@pytest.mark.parametrize("type_", ["flat", "hnsw", "ivf", "ivf-sq8", "ivf-pq", "freesound"])
def test_exclude_global_and_per_query(type_):
    Z = clustered(1000, 16, 10, seed=2)
    vi = build(Z, type_)
    Q = Z[:20]
    banned = np.arange(0, 1000, 3)  # includes the queries 0, 3, 6, ...
    ids, _ = vi.search(Q, 10, exclude=banned)
    assert (ids >= 0).all() and not np.isin(ids, banned).any()
    per = [np.arange(i, i + 50) for i in range(20)]
    ids, _ = vi.search(Q, 10, exclude=per)
    for i in range(20):
        assert (ids[i] >= 0).all() and not np.isin(ids[i], per[i]).any()
    ids, _ = vi.search(Q, 10, exclude=self_excluded(20))
    assert not (ids == np.arange(20)[:, None]).any()


def test_padding_when_k_exceeds_n():
    Z = unequal(5, 4)
    ids, keys = build(Z, "flat").search(Z[:2], 8, exclude=[np.array([0]), np.array([1, 2])])
    assert list(ids[0]) == sorted(ids[0][:4], key=lambda j: -A.exact_keys_to(Z, Z[0], [j], "mcss")[0]) + [-1] * 4
    assert set(ids[0][:4]) == {1, 2, 3, 4} and set(ids[1][:3]) == {0, 3, 4}
    assert (ids[1, 3:] == -1).all() and np.isneginf(keys[1, 3:]).all()


@pytest.mark.parametrize("type_", ["ivf-sq8", "ivf-pq"])
def test_compressed_types_rerank_at_least_k_plus_margin(type_):
    vi = build(clustered(1000, 16, 10), type_)
    assert vi.n_candidates(1) == 1 + A.MIN_CANDIDATE_MARGIN
    assert vi.n_candidates(15) == max(15 + A.MIN_CANDIDATE_MARGIN, vi.spec.params["rerank"] * 15)


# ------------------------------------------------------------------ approximate types


@pytest.mark.parametrize("type_, params", [("hnsw", {}), ("ivf", {"nlist": 64, "nprobe": 8}),
                                           ("ivf-sq8", {"nlist": 64, "nprobe": 8}),
                                           ("ivf-pq", {"nlist": 64, "nprobe": 8, "pq_m": 8})])
def test_recall_on_clustered_data(type_, params):
    Z = clustered(4000, 32, 40, seed=4)
    rng = np.random.default_rng(9)
    # held-out queries near the collection's rows
    Q = Z[rng.choice(len(Z), 200, replace=False)] + rng.standard_normal((200, 32)) * (0.05 / np.sqrt(32))
    exact, _ = build(Z, "flat").search(Q, 15)
    approx, _ = build(Z, type_, **params).search(Q, 15)
    recall = np.mean([np.intersect1d(a, b).size / 15 for a, b in zip(approx, exact)])
    assert recall >= 0.9, f"{type_} recall@15 {recall:.3f}"


@pytest.mark.parametrize("type_", ["flat", "hnsw", "ivf", "ivf-sq8", "ivf-pq", "freesound"])
def test_save_load_round_trip(tmp_path, type_):
    Z = clustered(1500, 16, 12, seed=5)
    vi = build(Z, type_)
    ids, keys = vi.search(Z[:30], 10, exclude=self_excluded(30))
    path = tmp_path / f"{type_}.faiss"
    vi.save(path)
    for mmap in (False, True):
        back = A.VectorIndex.load(path, A.IndexSpec.from_dict(vi.spec.to_dict()), Z, mmap=mmap)
        assert back.n == vi.n == 1500
        ids2, keys2 = back.search(Z[:30], 10, exclude=self_excluded(30))
        np.testing.assert_array_equal(ids2, ids)
        np.testing.assert_array_equal(keys2, keys)


def test_load_refuses_a_non_index(tmp_path):
    bad = tmp_path / "not.faiss"
    bad.write_bytes(b"this is not a faiss index")
    with pytest.raises(A.IndexError_, match="not.faiss: not a readable faiss index"):
        A.VectorIndex.load(bad, A.make_spec("flat", "mcss", 1, 1), np.zeros((1, 1)))


@pytest.mark.parametrize("type_", ["flat", "hnsw", "ivf", "ivf-sq8"])
def test_add_then_search_finds_new_rows(type_):
    Z = clustered(1200, 16, 12, seed=6)
    Z[1000:] += 0.5 / np.sqrt(16)  # the new rows: shifted, not duplicates of old ones
    vi = build(Z[:1000], type_)
    vi.add(Z[1000:], Z)
    assert vi.n == 1200 and vi.Z64 is Z
    ids, keys = vi.search(Z[1000:], 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(1000, 1200))
    np.testing.assert_allclose(keys[:, 0], 1.0)  # mcss: a row's cosine with itself


def test_build_refuses_empty():
    with pytest.raises(A.IndexError_, match="no vectors to index"):
        A.VectorIndex.build(np.zeros((0, 4)), A.make_spec("flat", "mcss", 0, 4))


def test_hnsw_small_build_is_deterministic():
    Z = clustered(800, 16, 8, seed=7)
    a = build(Z, "hnsw").search(Z[:50], 10, exclude=self_excluded(50))
    b = build(Z, "hnsw").search(Z[:50], 10, exclude=self_excluded(50))
    np.testing.assert_array_equal(a[0], b[0])


def test_memory_bytes_reflects_compression():
    Z = clustered(4000, 64, 20, seed=8)
    flat = build(Z, "flat").memory_bytes()
    assert flat >= 4000 * 64 * 4
    assert build(Z, "ivf-sq8").memory_bytes() < flat / 3
    assert build(Z, "ivf-pq").memory_bytes() < flat / 8
