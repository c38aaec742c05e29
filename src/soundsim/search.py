"""Exact similarity search, every clip a query against all the others.

Searches (Araz et al. 2024, II-D):

* ``mips``: maximum inner product, score ``s(a, b) = <a, b>``;
* ``mcss``: maximum cosine similarity, ``s(a, b) = <a, b> / (|a| |b|)``
  (the inner product of the L2-re-normalised PCA output, see
  :mod:`soundsim.process`);
* ``nns``: nearest neighbour under the Euclidean distance ``|a - b|``.

Contract:

* Input: the float64 matrix (the processing output); :func:`prepare` keeps it
  and makes the float32 copy for the candidate scores itself (a float32 input
  is widened exactly).
* The query is never among its own results.
* Ranking key, higher first, computed in float64 from the float64 vectors
  (the *exact keys*, :func:`exact_keys`): ``d = <a,b>`` (mips), ``d / (|a|
  |b|)`` (mcss), ``2 d - |b|^2`` (nns; ``|a-b|^2 = |a|^2 - (2<a,b> - |b|^2)``
  and ``|a|^2`` is constant for a query, so this orders by ascending
  distance), where ``d = sum_i a_i b_i`` and ``|x|^2 = sum_i x_i^2`` come
  from numpy's sum-of-products loop over the two float64 rows
  (``einsum('ij,ij->i')``: the same operations for every pair however the
  pairs are batched, so identical vectors get identical keys and the keys do
  not depend on the block size).
* Ties: equal (float64) keys are ordered by the lower clip index first. This
  is a total order, so rankings, top-K lists and ranks are deterministic.
* Rankings, top-K lists and ranks are those of the exact keys, whatever the
  block size: the float32 keys only *propose*. One float32 Gram block ``G =
  Z32[rows] @ Z32.T`` per query block gives the float32 keys of all three
  searches (``G``, ``G * (1/|b|) * (1/|a|)``, ``2G - |b|^2``). Each query row
  has a rigorous bound ``eps`` with ``|key32 - key64| <= eps`` for every
  entry of the row (below). A decision that the float32 keys make with a
  margin of more than ``eps`` on each side is provably the float64 decision;
  every entry whose float32 key is within that margin of a decision boundary
  is re-scored in float64 (:meth:`KeyBlock.exact`):

  - top-K (:func:`topk`): with ``t`` the K-th largest float32 key of the row,
    the candidates are the entries with ``key32 >= t - 2 eps`` (an entry
    below is beaten by the K float32 leaders, whose exact keys are all
    ``>= t - eps``). The candidates, sorted by float32 key, split into
    clusters wherever two neighbours differ by more than ``2 eps`` (which
    proves their exact order, and by transitivity that of the whole
    clusters); every member of a cluster of two or more (all candidates past
    position K are in the cluster at the cut) is re-scored and the cluster is
    ordered by (exact key descending, index ascending).
  - R1 beyond the top-K (:meth:`soundsim.metrics.MetricAccumulator.add_block`):
    the best relevant clip is chosen among the relevant clips within ``2 eps``
    of the best float32 key, by exact key; clips ranked before it are those
    with ``key32 > s* + eps`` plus the re-scored ones with ``key32`` in
    ``[s* - eps, s* + eps]`` that come first by (exact key, index).

* The bound ``eps`` of query ``a`` (float64, per row). With ``u = 2^-24``
  (float32 unit roundoff), ``v = 2^-53`` (float64), ``gamma_n(w) = n w / (1 -
  n w)``, ``D`` the dimension, ``M = max_b |b|``, ``Q = max_b |b|^2``:
  the float32 dot product of the rounded vectors satisfies ``|fl32(a32.b32) -
  a.b| <= c1 |a| |b| + tiny`` with ``c1 = gamma_D(u) (1+u)^2 + 2u + u^2``
  (the standard bound ``|fl(x.y) - x.y| <= gamma_D sum|x_i y_i|``, valid for
  any summation order and with FMA, the rounding ``|x32_i - x_i| <= u |x_i|``
  of both vectors, and Cauchy-Schwarz ``sum|a_i b_i| <= |a||b|``), ``tiny =
  2^-125 (D + sqrt(D) (|a| + M))`` covering underflow of the products, sums
  and rounded inputs (flush-to-zero and denormals-are-zero included). With ``r = u +
  gamma_{D+3}(v)`` (the relative error of the float32 ``1/|x|``) and ``c64 =
  gamma_{D+6}(v)`` (the float64 keys' own error), the safety factor ``S = 2``
  and ``1+p = (1+r)^2 (1+u)^2``::

      mips: eps = S * ((c1 + c64) |a| M + tiny)
      mcss: eps = S * (c1 + (1 + c1) p + 2 c64 + tiny / (|a| min_b |b|))
      nns:  eps = S * ((2 c1 + 2u (1 + c1) + 2 c64) |a| M
                       + (q + u (1 + q) + c64) Q + 3 tiny),
            q = u + gamma_D(v) (1 + u)   (the float32 |b|^2)

  For unit-scale vectors ``eps`` is about 1.2e-5 (D = 100) to 6e-5 (D =
  512), some 10 to 1000 times the actual float32 errors (the bound is for the
  worst case). On an FSD50K-sized collection (10,231 clips, K = 150) about 8
  (PCA 100) to 50 (512 dimensions) entries per query and search are
  re-scored, 24 on average over the paper's 27 settings
  (``benchmarks/bench_evaluate.py`` prints the count); the searches of a
  query block share the float64 dot products (:class:`DotCache`).
* Reported scores: the inner product (mips), the cosine (mcss), the distance
  ``sqrt(max(|a|^2 - key, 0))`` (nns, ascending), from the exact key where the
  entry was re-scored, else from the float32 key (within ``eps`` of it; the
  float32 value may differ in the last bits between block sizes). Stored as
  float32.
* Memory: queries are processed in blocks of ``block_size`` rows; nothing of
  size N x N is ever allocated (a block is ``block_size x N``).

A zero vector has no cosine: :func:`prepare` raises :class:`SearchError`
naming the clip(s) when ``mcss`` is asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from soundsim.errors import SoundsimError

SEARCHES = ("mips", "mcss", "nns")
SCORE_MEANING = {
    "mips": "inner product <a,b>, descending",
    "mcss": "cosine similarity <a,b>/(|a||b|), descending",
    "nns": "Euclidean distance |a-b|, ascending",
}
TIE_RULE = "equal ranking keys (float64): lower clip index first"
#: default block: about this many score entries (rows x N) per block
BLOCK_ELEMENTS = 1 << 22
#: safety factor on the rigorous float32 error bound
EPS_SAFETY = 2.0
#: float64 values gathered at once when re-scoring (cache-sized chunks: ~4x
#: faster than large ones)
_RESCORE_ELEMENTS = 1 << 15
_U32 = 2.0**-24
_U64 = 2.0**-53
_TINY = 2.0**-125


class SearchError(SoundsimError):
    """The search cannot run as asked (names the clips or setting at fault)."""


def default_block_size(n: int) -> int:
    """Query rows per block: ~``BLOCK_ELEMENTS`` scores per block, 1..4096 rows."""
    return int(min(4096, max(1, BLOCK_ELEMENTS // max(n, 1))))


@dataclass
class Prepared:
    """The float64 matrix and its float32 copy, ready for blockwise search,
    with per-row quantities and the per-row float32 error bounds."""

    Z: np.ndarray  # (N, D) float32, C-contiguous: candidate scores
    sq_norms: np.ndarray  # (N,) float32, |z|^2
    inv_norms: np.ndarray | None  # (N,) float32, 1/|z| (mcss only)
    Z64: np.ndarray  # (N, D) float64, C-contiguous: exact keys
    sq64: np.ndarray  # (N,) float64, |z|^2 = sum z_i^2
    norms64: np.ndarray  # (N,) float64, sqrt(sq64)
    eps: dict[str, np.ndarray]  # search -> (N,) float64: |key32 - key64| <= eps[q] in row q

    @property
    def n(self) -> int:
        return int(self.Z.shape[0])


def check_searches(searches: Sequence[str]) -> list[str]:
    """Validate search names; returns them as a list (order kept, no repeats)."""
    out: list[str] = []
    for s in searches:
        if s not in SEARCHES:
            raise SearchError(f"unknown search {s!r}; allowed: {', '.join(SEARCHES)}")
        if s not in out:
            out.append(s)
    if not out:
        raise SearchError("no search given")
    return out


def _gamma(n: int, w: float) -> float:
    return n * w / (1.0 - n * w)


def error_bounds(norms64: np.ndarray, sq64: np.ndarray, d: int, search: str) -> np.ndarray:
    """Per-row bound ``eps`` (N,) with ``|key32 - key64| <= eps[q]`` for every
    entry of row q (module docstring; the safety factor included)."""
    if d * _U32 >= 0.5:
        raise SearchError(f"dimension {d} too large for the float32 error bound")
    u, v = _U32, _U64
    c1 = _gamma(d, u) * (1 + u) ** 2 + 2 * u + u * u
    c64 = _gamma(d + 6, v)
    big_m = float(norms64.max())
    tiny = _TINY * (d + np.sqrt(d) * (norms64 + big_m))
    if search == "mips":
        e = (c1 + c64) * norms64 * big_m + tiny
    elif search == "mcss":
        r = u + _gamma(d + 3, v)
        p = (1 + r) ** 2 * (1 + u) ** 2 - 1
        e = c1 + (1 + c1) * p + 2 * c64 + tiny / (norms64 * float(norms64.min()))
    elif search == "nns":
        q = u + _gamma(d, v) * (1 + u)
        e = (2 * c1 + 2 * u * (1 + c1) + 2 * c64) * norms64 * big_m + (q + u * (1 + q) + c64) * float(sq64.max())
        e = e + 3 * tiny
    else:
        raise SearchError(f"unknown search {search!r}")
    return np.asarray(EPS_SAFETY * e, dtype=np.float64) * np.ones_like(norms64)


def prepare(Z: np.ndarray, searches: Sequence[str], fnames: Sequence[str] | None = None) -> Prepared:
    """Keep the float64 matrix, make its contiguous float32 copy and compute
    row norms and error bounds. Raises :class:`SearchError` for non-finite
    values, norms that overflow float32, fewer than 2 clips, or (for
    ``mcss``) all-zero rows, naming the clips. ``Z`` is never modified."""
    searches = check_searches(searches)
    Z64 = np.ascontiguousarray(Z, dtype=np.float64)
    if Z64.ndim != 2:
        raise SearchError(f"expected a 2-D matrix (clips x dim), got shape {Z64.shape}")
    if Z64.shape[0] < 2:
        raise SearchError(f"need at least 2 clips to search, got {Z64.shape[0]}")

    def names(idx: np.ndarray) -> str:
        shown = [repr(fnames[i]) if fnames is not None else f"#{i}" for i in idx[:5]]
        return ", ".join(shown) + (f", ... ({len(idx) - 5} more)" if len(idx) > 5 else "")

    bad = np.flatnonzero(~np.isfinite(Z64).all(axis=1))
    if bad.size:
        raise SearchError(f"{bad.size} clip vector(s) contain NaN/inf: {names(bad)}")
    sq64 = np.einsum("ij,ij->i", Z64, Z64)
    if np.any(sq64 > np.finfo(np.float32).max / 4):
        raise SearchError(f"clip vector(s) too large for float32 scores: {names(np.flatnonzero(sq64 > 1e37))}")
    norms64 = np.sqrt(sq64)
    inv = None
    if "mcss" in searches:
        zero = np.flatnonzero(sq64 == 0)
        if zero.size:
            raise SearchError(
                f"{zero.size} clip(s) have an all-zero vector, which has no cosine similarity (mcss): {names(zero)}"
            )
        inv = (1.0 / norms64).astype(np.float32)
    d = Z64.shape[1]
    eps = {s: error_bounds(norms64, sq64, d, s) for s in searches}
    return Prepared(Z64.astype(np.float32), sq64.astype(np.float32), inv, Z64, sq64, norms64, eps)


class DotCache:
    """Float64 dot products ``<z_q, z_j>`` already computed, keyed by pair:
    the searches of one query block share them (their candidates overlap)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.codes = np.zeros(0, dtype=np.int64)  # sorted q * n + j
        self.values = np.zeros(0, dtype=np.float64)

    def lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, values where found)."""
        if self.codes.size == 0:
            return np.zeros(codes.size, dtype=bool), np.zeros(codes.size)
        pos = np.minimum(np.searchsorted(self.codes, codes), self.codes.size - 1)
        found = self.codes[pos] == codes
        return found, np.where(found, self.values[pos], 0.0)

    def add(self, codes: np.ndarray, values: np.ndarray) -> None:
        codes, first = np.unique(codes, return_index=True)
        keep = ~self.lookup(codes)[0]
        c = np.concatenate([self.codes, codes[keep]])
        o = np.argsort(c, kind="stable")
        self.codes = c[o]
        self.values = np.concatenate([self.values, values[first][keep]])[o]


def exact_dots(prep: Prepared, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``d = sum_i a_i b_i`` in float64 for the pairs (``rows[i]``,
    ``cols[i]``) (global clip indices): numpy's sum-of-products loop
    (``einsum('ij,ij->i')``) over each pair's two rows, so the same pair always
    gives the same value, however the pairs are batched (and ``<a,b> =
    <b,a>``). Cache-sized chunks."""
    out = np.empty(rows.size, dtype=np.float64)
    step = max(8, _RESCORE_ELEMENTS // max(1, prep.Z64.shape[1]))
    for i in range(0, rows.size, step):
        a = np.take(prep.Z64, rows[i : i + step], axis=0)
        b = np.take(prep.Z64, cols[i : i + step], axis=0)
        out[i : i + step] = np.einsum("ij,ij->i", a, b)
    return out


def exact_keys(
    prep: Prepared, search: str, rows: np.ndarray, cols: np.ndarray, cache: DotCache | None = None
) -> np.ndarray:
    """Float64 ranking keys of the pairs (``rows[i]``, ``cols[i]``) (global
    clip indices) from the float64 vectors: ``d``, ``d / (|a||b|)``, ``2d -
    |b|^2`` with ``d`` from :func:`exact_dots` (module docstring), taken
    from / added to ``cache`` when given."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if cache is None:
        out = exact_dots(prep, rows, cols)
    else:
        codes = rows * cache.n + cols
        found, out = cache.lookup(codes)
        miss = np.flatnonzero(~found)
        if miss.size:
            out[miss] = exact_dots(prep, rows[miss], cols[miss])
            cache.add(codes[miss], out[miss])
    if search == "mcss":
        out /= prep.norms64[rows] * prep.norms64[cols]
    elif search == "nns":
        out *= 2.0
        out -= prep.sq64[cols]
    elif search != "mips":
        raise SearchError(f"unknown search {search!r}")
    return out


@dataclass
class KeyBlock:
    """Ranking keys of the query rows ``start:start+B`` (B, N), own entry
    -inf, higher = better, with the per-row bound ``eps`` (B,) on their
    distance to the exact keys, and the means to compute exact keys.

    ``prep``/``search`` None: ``keys`` are exact themselves (``eps`` 0, e.g. a
    given score matrix). ``n_rescored``/``seconds`` count the float64
    re-scoring done through :meth:`exact`."""

    keys: np.ndarray
    start: int
    eps: np.ndarray
    prep: Prepared | None = None
    search: str | None = None
    cache: DotCache | None = None
    n_rescored: int = 0
    seconds: float = 0.0

    @classmethod
    def from_exact(cls, keys: np.ndarray, start: int = 0) -> KeyBlock:
        return cls(keys, start, np.zeros(keys.shape[0], dtype=np.float64))

    @property
    def is_exact(self) -> bool:
        return self.prep is None

    def exact(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Exact (float64) keys of (local row, column) pairs."""
        if self.prep is None:
            return self.keys[rows, cols].astype(np.float64)
        assert self.search is not None
        t0 = time.perf_counter()
        out = exact_keys(self.prep, self.search, self.start + np.asarray(rows), cols, self.cache)
        self.seconds += time.perf_counter() - t0
        self.n_rescored += int(out.size)
        return out


def keys_from_gram(G: np.ndarray, start: int, prep: Prepared, search: str, inplace: bool = False) -> np.ndarray:
    """Float32 ranking keys (higher = better, see module docstring) of the
    query rows ``start:start+len(G)`` from their Gram block ``G = Z[rows] @
    Z.T``; the query's own entry is -inf. ``inplace`` reuses ``G`` (mips only)."""
    b = G.shape[0]
    if search == "mips":
        K = G if inplace else G.copy()
    elif search == "mcss":
        assert prep.inv_norms is not None, "prepare() without 'mcss'"
        K = np.multiply(G, prep.inv_norms[None, :])
        K *= prep.inv_norms[start : start + b, None]
    elif search == "nns":
        K = np.multiply(G, np.float32(2.0))
        K -= prep.sq_norms[None, :]
    else:
        raise SearchError(f"unknown search {search!r}")
    K[np.arange(b), np.arange(start, start + b)] = -np.inf
    return K


def key_block(
    G: np.ndarray, start: int, prep: Prepared, search: str, inplace: bool = False, cache: DotCache | None = None
) -> KeyBlock:
    """:func:`keys_from_gram` with the rows' error bounds, as a :class:`KeyBlock`
    (re-scoring through ``cache``, shared by the searches of the block)."""
    keys = keys_from_gram(G, start, prep, search, inplace)
    return KeyBlock(keys, start, prep.eps[search][start : start + G.shape[0]], prep, search, cache)


def scores_from_keys(keys: np.ndarray, start: int, prep: Prepared, search: str) -> np.ndarray:
    """Reported scores (float32) of selected keys (rows ``start:start+len(keys)``):
    mips/mcss the key itself, nns the distance ``sqrt(max(|a|^2 - key, 0))``."""
    if search == "nns":
        d2 = prep.sq64[start : start + keys.shape[0], None] - keys
        return np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)
    return keys.astype(np.float32)


def round_down(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The largest value of ``dtype`` that is <= ``x`` (float64 -> keys' dtype)."""
    y = np.asarray(x).astype(dtype)
    return np.where(y > x, np.nextafter(y, dtype.type(-np.inf)), y)


def round_up(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The smallest value of ``dtype`` that is >= ``x``."""
    y = np.asarray(x).astype(dtype)
    return np.where(y < x, np.nextafter(y, dtype.type(np.inf)), y)


def _settle(kb: KeyBlock, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, valid: np.ndarray, k: int):
    """Exact order of candidate lists sorted by key descending (ties in any order).

    ``rows`` (R,) local rows; ``cols``/``vals`` (R, C) candidates, ``valid``
    (R, C) those that can be in the top-``k``. Neighbours closer than ``2 eps``
    (equal keys included) are linked into clusters, whose members are
    re-scored (unless the keys are exact) and reordered in place by (exact key
    desc, column asc). Returns the first ``k`` (cols, float64 values)."""
    r, c = cols.shape
    v64 = vals.astype(np.float64)
    if c < 2:
        return cols[:, :k], v64[:, :k]
    gap = v64[:, :-1] - v64[:, 1:]
    with np.errstate(invalid="ignore"):
        link = (gap <= 2.0 * kb.eps[rows, None]) & valid[:, 1:]
    if not link.any():
        return cols[:, :k], v64[:, :k]
    need = np.zeros((r, c), dtype=bool)
    need[:, :-1] |= link
    need[:, 1:] |= link
    ri, ci = np.nonzero(need)  # by row, then position: clusters are contiguous runs
    cc = cols[ri, ci]
    v = kb.exact(rows[ri], cc) if not kb.is_exact else v64[ri, ci]
    starts = np.cumsum(~link, axis=1)  # starts[:, i]: cluster of position i + 1
    cid = np.where(ci > 0, starts[ri, np.maximum(ci - 1, 0)], 0)  # cluster of each position
    # each (row, cluster) group fills the same positions, in (exact key desc, column asc) order
    o = np.lexsort((cc, -v, cid, ri))
    cols = cols.copy()
    cols[ri, ci] = cc[o]
    v64[ri, ci] = v[o]
    return cols[:, :k], v64[:, :k]


def topk(keys: np.ndarray | KeyBlock, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` of each row, sorted by (exact key descending, column
    ascending): exactly the first ``k`` entries of the full ranking under the
    tie rule. ``keys``: a :class:`KeyBlock` (float32 keys re-scored where
    needed, module docstring) or an array of exact keys. Returns (columns
    (B, k) int64, keys (B, k) float64: exact where re-scored or given, else
    the float32 key).

    The float32 top ``k + margin`` of each row (``np.argpartition``) holds
    every candidate, unless more keys than that lie within ``2 eps`` of the
    k-th (ties or near-ties straddling the cut): such rows are redone from
    all their candidates."""
    kb = keys if isinstance(keys, KeyBlock) else KeyBlock.from_exact(np.asarray(keys))
    K = kb.keys
    b, n = K.shape
    if not 1 <= k <= n:
        raise SearchError(f"top-k: k={k} must be in 1..{n}")
    kp = min(n, k + 8 + k // 16)
    if kp == n:
        cols = np.broadcast_to(np.arange(n), (b, n)).copy()
    else:
        cols = np.argpartition(K, n - kp, axis=1)[:, n - kp :]
    vals = np.take_along_axis(K, cols, axis=1)
    order = np.argsort(-vals, axis=1)  # ties in any order: they are linked and settled below
    cols = np.take_along_axis(cols, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    t = vals[:, k - 1].astype(np.float64)
    lo = round_down(t - 2.0 * kb.eps, K.dtype)  # candidates: key >= lo
    valid = vals >= lo[:, None]
    rows = np.arange(b)
    out_c, out_v = _settle(kb, rows, cols, vals, valid, k)
    out_c = np.ascontiguousarray(out_c, dtype=np.int64)
    out_v = np.ascontiguousarray(out_v)
    if kp < n:
        redo = np.flatnonzero(np.count_nonzero(K >= lo[:, None], axis=1) > kp)
        for r in redo:
            row = K[r]
            sel = np.flatnonzero(row >= lo[r])
            sel = sel[np.argsort(-row[sel])]
            c1, v1 = _settle(kb, np.array([r]), sel[None, :], row[sel][None, :], np.ones((1, sel.size), bool), k)
            out_c[r], out_v[r] = c1[0], v1[0]
    return out_c, out_v


def search_order(searches: Sequence[str]) -> list[str]:
    """The searches in the order a Gram block serves them: mips last, so that
    its keys can be the Gram block itself (``inplace``)."""
    return sorted(check_searches(searches), key=lambda s: s == "mips")


def iter_gram_blocks(prep: Prepared, block_size: int | None = None
                     ) -> Iterator[tuple[int, np.ndarray, DotCache]]:
    """The one blockwise pass: ``(start, G, cache)`` for consecutive query
    blocks, ``G = Z32[start:stop] @ Z32.T`` (float32) and a fresh
    :class:`DotCache` for the float64 dot products its searches re-score."""
    n = prep.n
    bs = default_block_size(n) if block_size is None else int(block_size)
    if bs < 1:
        raise SearchError(f"block_size must be >= 1, got {block_size}")
    for start in range(0, n, bs):
        yield start, prep.Z[start : min(n, start + bs)] @ prep.Z.T, DotCache(n)


def iter_key_blocks(
    prep: Prepared, searches: Sequence[str], block_size: int | None = None
) -> Iterator[tuple[int, dict[str, KeyBlock]]]:
    """Yield ``(start, {search: KeyBlock (B, N)})`` for consecutive query
    blocks; one float32 Gram block per query block serves every search."""
    order = search_order(searches)
    for start, G, cache in iter_gram_blocks(prep, block_size):
        yield start, {s: key_block(G, start, prep, s, inplace=(s == "mips"), cache=cache) for s in order}


def rank(
    Z: np.ndarray,
    search: str,
    k: int,
    block_size: int | None = None,
    fnames: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` results of every clip of ``Z`` (float64, or float32) as a
    query (itself excluded): (indices (N, k) int32, scores (N, k) float32),
    best first by exact key, ties by lower index. ``k`` is capped at N-1."""
    prep = prepare(Z, [search], fnames)
    k = min(int(k), prep.n - 1)
    idx = np.empty((prep.n, k), dtype=np.int32)
    sc = np.empty((prep.n, k), dtype=np.float32)
    for start, blocks in iter_key_blocks(prep, [search], block_size):
        cols, vals = topk(blocks[search], k)
        stop = start + cols.shape[0]
        idx[start:stop] = cols
        sc[start:stop] = scores_from_keys(vals, start, prep, search)
    return idx, sc
