"""Exact similarity search, every clip a query against all the others.

Searches (Araz et al. 2024, II-D):

* ``mips``: maximum inner product, score ``s(a, b) = <a, b>``;
* ``mcss``: maximum cosine similarity, ``s(a, b) = <a, b> / (|a| |b|)``
  (the inner product of the L2-re-normalised PCA output, see
  :mod:`soundsim.process`);
* ``nns``: nearest neighbour under the Euclidean distance ``|a - b|``.

Contract:

* The query is never among its own results (its key is set to -inf).
* Ranking key, higher first: ``<a,b>`` (mips), ``<a,b> * (1/|a|) * (1/|b|)``
  (mcss), ``2<a,b> - |b|^2`` (nns; ``|a-b|^2 = |a|^2 - (2<a,b> - |b|^2)`` and
  ``|a|^2`` is constant for a query, so this orders by ascending distance).
  All in float32 from one Gram block ``G = Z[rows] @ Z.T`` (float32 matmul),
  shared by the three searches.
* Ties: equal keys are ordered by the lower clip index first. This is a total
  order, so rankings, top-K lists and ranks are deterministic, and the
  blocking logic never changes them. One caveat: the Gram block is a float32
  BLAS product, and BLAS may round an entry differently (in the last bit) for
  differently shaped blocks, so with continuous data a key can differ by an
  ulp between block sizes (only near-ties can swap). With exactly
  representable data (e.g. small integers) results are bit-identical for any
  block size; the default block size depends only on N, so runs repeat exactly.
* Reported scores: the inner product (mips), the cosine (mcss), the distance
  ``sqrt(max(|a|^2 - key, 0))`` (nns, ascending).
* Memory: queries are processed in blocks of ``block_size`` rows; nothing of
  size N x N is ever allocated (a block is ``block_size x N``).

A zero vector has no cosine: :func:`prepare` raises :class:`SearchError`
naming the clip(s) when ``mcss`` is asked for.
"""

from __future__ import annotations

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
TIE_RULE = "equal ranking keys: lower clip index first"
#: default block: about this many score entries (rows x N) per block
BLOCK_ELEMENTS = 1 << 22


class SearchError(SoundsimError):
    """The search cannot run as asked (names the clips or setting at fault)."""


def default_block_size(n: int) -> int:
    """Query rows per block: ~``BLOCK_ELEMENTS`` scores per block, 1..4096 rows."""
    return int(min(4096, max(1, BLOCK_ELEMENTS // max(n, 1))))


@dataclass
class Prepared:
    """A float32 matrix ready for blockwise search, with per-row quantities."""

    Z: np.ndarray  # (N, D) float32, C-contiguous
    sq_norms: np.ndarray  # (N,) float32, |z|^2
    inv_norms: np.ndarray | None  # (N,) float32, 1/|z| (mcss only)

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


def prepare(Z: np.ndarray, searches: Sequence[str], fnames: Sequence[str] | None = None) -> Prepared:
    """Cast to contiguous float32 and compute row norms. Raises
    :class:`SearchError` for non-finite values, norms that overflow float32,
    fewer than 2 clips, or (for ``mcss``) all-zero rows, naming the clips."""
    searches = check_searches(searches)
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    if Z.ndim != 2:
        raise SearchError(f"expected a 2-D matrix (clips x dim), got shape {Z.shape}")
    if Z.shape[0] < 2:
        raise SearchError(f"need at least 2 clips to search, got {Z.shape[0]}")

    def names(idx: np.ndarray) -> str:
        shown = [repr(fnames[i]) if fnames is not None else f"#{i}" for i in idx[:5]]
        return ", ".join(shown) + (f", ... ({len(idx) - 5} more)" if len(idx) > 5 else "")

    bad = np.flatnonzero(~np.isfinite(Z).all(axis=1))
    if bad.size:
        raise SearchError(f"{bad.size} clip vector(s) contain NaN/inf: {names(bad)}")
    sq64 = np.einsum("ij,ij->i", Z.astype(np.float64), Z.astype(np.float64))
    if np.any(sq64 > np.finfo(np.float32).max / 4):
        raise SearchError(f"clip vector(s) too large for float32 scores: {names(np.flatnonzero(sq64 > 1e37))}")
    inv = None
    if "mcss" in searches:
        zero = np.flatnonzero(sq64 == 0)
        if zero.size:
            raise SearchError(
                f"{zero.size} clip(s) have an all-zero vector, which has no cosine similarity (mcss): {names(zero)}"
            )
        inv = (1.0 / np.sqrt(sq64)).astype(np.float32)
    return Prepared(Z, sq64.astype(np.float32), inv)


def keys_from_gram(G: np.ndarray, start: int, prep: Prepared, search: str, inplace: bool = False) -> np.ndarray:
    """Ranking keys (higher = better, see module docstring) of the query rows
    ``start:start+len(G)`` from their Gram block ``G = Z[rows] @ Z.T``; the
    query's own entry is -inf. ``inplace`` reuses ``G`` (mips only)."""
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


def scores_from_keys(keys: np.ndarray, start: int, prep: Prepared, search: str) -> np.ndarray:
    """Reported scores of selected keys (rows ``start:start+len(keys)``):
    mips/mcss the key itself, nns the distance ``sqrt(max(|a|^2 - key, 0))``."""
    if search == "nns":
        d2 = prep.sq_norms[start : start + keys.shape[0], None] - keys
        return np.sqrt(np.maximum(d2, 0, dtype=np.float32)).astype(np.float32)
    return keys.astype(np.float32, copy=False)


def topk(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest keys of each row, sorted by (key descending, column
    ascending): exactly the first ``k`` entries of the full ranking under the
    tie rule. Returns (columns (B, k) int64, keys (B, k)).

    ``np.argpartition`` picks an arbitrary subset among keys equal to the k-th
    value; rows where such a tie straddles the cut (detected by counting
    ``keys >= kth``) are recomputed exactly."""
    b, n = keys.shape
    if not 1 <= k <= n:
        raise SearchError(f"top-k: k={k} must be in 1..{n}")
    if k == n:
        cols = np.broadcast_to(np.arange(n), (b, n)).copy()
    else:
        cols = np.argpartition(keys, n - k, axis=1)[:, n - k :]
    vals = np.take_along_axis(keys, cols, axis=1)
    order = np.lexsort((cols, -vals), axis=1)
    cols = np.take_along_axis(cols, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    if k < n:
        kth = vals[:, -1:]
        n_ge = np.count_nonzero(keys >= kth, axis=1)
        for r in np.flatnonzero(n_ge > k):
            row, t = keys[r], kth[r, 0]
            gt = np.flatnonzero(row > t)
            eq = np.flatnonzero(row == t)[: k - gt.size]
            sel = np.concatenate([gt, eq])
            o = np.lexsort((sel, -row[sel]))
            cols[r], vals[r] = sel[o], row[sel][o]
    return cols.astype(np.int64, copy=False), vals


def iter_key_blocks(
    prep: Prepared, searches: Sequence[str], block_size: int | None = None
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(start, {search: keys (B, N)})`` for consecutive query blocks;
    one float32 Gram block per query block serves every search."""
    searches = check_searches(searches)
    n = prep.n
    bs = default_block_size(n) if block_size is None else int(block_size)
    if bs < 1:
        raise SearchError(f"block_size must be >= 1, got {block_size}")
    # mips last, so it can take the Gram block itself
    ordered = sorted(searches, key=lambda s: s == "mips")
    for start in range(0, n, bs):
        stop = min(n, start + bs)
        G = prep.Z[start:stop] @ prep.Z.T
        yield start, {s: keys_from_gram(G, start, prep, s, inplace=(s == "mips")) for s in ordered}


def rank(
    Z: np.ndarray,
    search: str,
    k: int,
    block_size: int | None = None,
    fnames: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` results of every clip as a query (itself excluded):
    (indices (N, k) int32, scores (N, k) float32), best first, ties by lower
    index. ``k`` is capped at N-1."""
    prep = prepare(Z, [search], fnames)
    k = min(int(k), prep.n - 1)
    idx = np.empty((prep.n, k), dtype=np.int32)
    sc = np.empty((prep.n, k), dtype=np.float32)
    for start, keys in iter_key_blocks(prep, [search], block_size):
        cols, vals = topk(keys[search], k)
        stop = start + cols.shape[0]
        idx[start:stop] = cols
        sc[start:stop] = scores_from_keys(vals, start, prep, search)
    return idx, sc
