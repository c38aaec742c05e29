"""The standard retrieval metric panel, from the same rankings as the paper's
metrics (issue 17): graded nDCG@k, binary nDCG@k, reciprocal rank, recall@k,
precision@k and R-precision, per class-wise query (clip, label) and per clip
(micro). Names: :mod:`soundsim.measures`.

Conventions (the paper's, :mod:`soundsim.metrics`): a query is ranked against
every *other* clip (it is excluded from its own results, and from the
relevant set); a class-wise query of label L counts a retrieved clip relevant
iff it carries L, a micro query iff it shares a label. With ``n_rel`` the
number of *other* relevant clips (``n_L - 1`` class-wise), ``rel_i`` / ``g_i``
the binary relevance / graded gain (:mod:`soundsim.relevance`) at 1-based
position i, and ``disc_i = 1 / log2(i + 1)``::

    P@k       = (1/k) * sum_{i<=k} rel_i
    recall@k  = (1/n_rel) * sum_{i<=k} rel_i
    R-prec    = (1/R) * sum_{i<=min(R, K)} rel_i, R = n_rel  (trec_eval's Rprec on the top-K run)
    RR        = 1 / (r1 + 1)                                (r1: the paper's 0-based rank of the
                                                             first relevant clip, over the full ranking)
    bnDCG@k   = sum_{i<=k} rel_i * disc_i / sum_{i<=min(k, n_rel)} disc_i
    nDCG@k    = sum_{i<=k} g_i * disc_i / IDCG@k,           IDCG@k = the same sum over the other
                                                             clips' gains sorted in decreasing order

(linear gains, Järvelin & Kekäläinen 2002, as ``trec_eval``'s ``ndcg_cut``;
the AP@N of the paper, in contrast, is normalised by min(N, n_L) *including*
the query). A list shorter than k (a collection of fewer than k + 1 clips)
counts the missing positions as not relevant. Class-wise values are averaged
per label, then over labels (macro) and families, like the paper's metrics;
micro values over clips. Labels with a single clip are NaN and left out.

R-precision and the list length: the lists are K = 150 long (the panel's
largest cutoff). For a label with more than K + 1 clips (56 of FSD50K's 200),
R > K, and the default R-precision is that of the top-K *run*, as trec_eval
computes ``Rprec`` on a run of K results: the relevant clips in the top K over R,
a lower bound of the full ranking's. ``evaluation.rprec: full`` computes it over
the full ranking instead (:func:`rprec_beyond`): with t the R-th largest float
key of a row and ``eps`` its error bound (:class:`soundsim.search.KeyBlock`),
clips with key > t + 2 eps are provably in the exact top R and clips below
t - 2 eps provably not; the clips in between are re-scored in float64 and
ordered by the tie rule (key, then lower index), so it is that of the exact
ranking, like R1 -- at the cost of a selection over the collection per query
and label (about 5x the grid's time on FSD50K: ``benchmarks/bench_evaluate.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from soundsim.search import KeyBlock, round_down, round_up

#: the panel's cutoffs (measure -> k), :data:`soundsim.measures` names
NDCG_CUTOFFS = (15, 150)
BNDCG_CUTOFFS = (10,)
RECALL_CUTOFFS = (1, 5, 10, 15, 150)
PRECISION_CUTOFFS = RECALL_CUTOFFS


def discounts(k: int) -> np.ndarray:
    """``1 / log2(i + 1)`` for positions i = 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def columns() -> list[str]:
    """The panel's per-query columns, in order (:mod:`soundsim.measures`)."""
    return ([f"ndcg@{k}" for k in NDCG_CUTOFFS] + [f"bndcg@{k}" for k in BNDCG_CUTOFFS] + ["rr"]
            + [f"recall@{k}" for k in RECALL_CUTOFFS] + [f"p@{k}" for k in PRECISION_CUTOFFS] + ["rprec"])


def max_cutoff() -> int:
    """The longest list the panel reads."""
    return max(*NDCG_CUTOFFS, *BNDCG_CUTOFFS, *RECALL_CUTOFFS, *PRECISION_CUTOFFS)


def _top_gains(row: np.ndarray, k: int) -> np.ndarray:
    """The k + 1 largest values of ``row`` in decreasing order, the first dropped
    (the query's own gain, 1), padded with 0 to length k."""
    m = min(k + 1, row.size)
    top = -np.sort(-np.partition(row, row.size - m)[row.size - m:]) if m < row.size else -np.sort(-row)
    out = np.zeros(k, dtype=np.float64)
    out[: m - 1] = top[1:m]
    return out


@dataclass
class Panel:
    """What the panel needs of a collection, computed once per grid (not per setting).

    ``C[L, j]``: class-wise gain of clip j for label L (:func:`soundsim.relevance.clip_gains`);
    ``ideal_label[L, c]``: IDCG at the c-th cutoff of :data:`NDCG_CUTOFFS` (at most ``k``) of a
    class-wise query of L; ``ideal_query[q, c]``: of the micro query q; ``n_rel_query[q]``: other
    clips sharing a label with q; ``group[q]``: index of q's label set, ``group_labels[g]`` its
    labels. ``rprec_full``: R-precision over the full ranking (else over the top-``k`` run, as
    trec_eval on that run)."""

    k: int
    C: np.ndarray
    ideal_label: np.ndarray
    ideal_query: np.ndarray
    n_rel_query: np.ndarray
    group: np.ndarray
    group_labels: list[np.ndarray] = field(repr=False)
    disc: np.ndarray = field(repr=False)
    rprec_full: bool = False


def _ideal_at(gains_sorted: np.ndarray, disc: np.ndarray, k: int) -> np.ndarray:
    """IDCG at each cutoff of :data:`NDCG_CUTOFFS` (at most k) from the other clips' gains, sorted."""
    cum = np.cumsum(gains_sorted * disc)
    return np.array([cum[min(c, k) - 1] for c in NDCG_CUTOFFS])


def build_panel(Y: np.ndarray, C: np.ndarray, k: int, rprec_full: bool = False) -> Panel:
    """``Y``: (N, L) clip-label matrix; ``C``: (L, N) class-wise gains; ``k``: list length;
    ``rprec_full``: see :class:`Panel`."""
    n, n_lab = Y.shape
    disc = discounts(k)
    ideal_label = np.zeros((n_lab, len(NDCG_CUTOFFS)), dtype=np.float64)
    for lab in range(n_lab):
        if Y[:, lab].any():
            ideal_label[lab] = _ideal_at(_top_gains(C[lab], k), disc, k)
    keys, group = np.unique(np.packbits(Y, axis=1), axis=0, return_inverse=True)
    group = group.reshape(-1)
    group_labels = [np.flatnonzero(np.unpackbits(kr, count=n_lab)) for kr in keys]
    ideal_query = np.zeros((n, len(NDCG_CUTOFFS)), dtype=np.float64)
    n_rel_query = np.zeros(n, dtype=np.int64)
    order = np.argsort(group, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(group[order])) + 1)
    for g, labs in enumerate(group_labels):
        qs = members[g]
        row = C[labs[0]] if labs.size == 1 else C[labs].max(axis=0)
        ideal_query[qs] = _ideal_at(_top_gains(row, k), disc, k)
        n_rel_query[qs] = int(Y[:, labs].any(axis=1).sum()) - 1
    return Panel(k, C, ideal_label, ideal_query, n_rel_query, group, group_labels, disc, rprec_full)


def list_measures(rel: np.ndarray, gains: np.ndarray, r1: np.ndarray, n_rel: np.ndarray,
                  ideal: np.ndarray, disc: np.ndarray) -> dict[str, np.ndarray]:
    """Every panel measure but R-precision of P rankings: ``rel`` (P, K) bool,
    ``gains`` (P, K), ``r1`` (P,) 0-based first relevant rank (NaN: undefined),
    ``n_rel`` (P,) other relevant clips (>= 1 where defined), ``ideal`` (P, len(NDCG_CUTOFFS))
    ideal graded DCG at each cutoff. NaN where ``r1`` is NaN."""
    k = rel.shape[1]
    d = disc[:k]
    bad = ~np.isfinite(r1)
    nr = np.where(bad, 1, n_rel).astype(np.float64)
    relf = rel.astype(np.float64)
    cdisc = np.cumsum(d)
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, c in enumerate(NDCG_CUTOFFS):
            m = min(c, k)
            out[f"ndcg@{c}"] = (gains[:, :m] @ d[:m]) / ideal[:, j]
        for c in BNDCG_CUTOFFS:
            m = min(c, k)
            out[f"bndcg@{c}"] = (relf[:, :m] @ d[:m]) / cdisc[np.minimum(m, nr).astype(np.int64) - 1]
        out["rr"] = 1.0 / (r1 + 1.0)
        counts = {c: np.count_nonzero(rel[:, : min(c, k)], axis=1).astype(np.float64)
                  for c in sorted({*RECALL_CUTOFFS, *PRECISION_CUTOFFS})}
        for c in RECALL_CUTOFFS:
            out[f"recall@{c}"] = counts[c] / nr
        for c in PRECISION_CUTOFFS:
            out[f"p@{c}"] = counts[c] / c
    return {key: np.where(bad, np.nan, v) for key, v in out.items()}


def rprec_in_list(rel: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """R-precision of the top-K run: ``#relevant in the top min(R, K) / R`` with R = ``n_rel``
    (NaN where R < 1) -- trec_eval's ``Rprec`` of a run of K results. Exact where R <= K; where
    R > K a lower bound of the full ranking's (:func:`rprec_beyond` computes that)."""
    k = rel.shape[1]
    cnt = np.cumsum(rel, axis=1, dtype=np.float64)
    out = np.full(rel.shape[0], np.nan)
    idx = np.flatnonzero(n_rel >= 1)
    out[idx] = cnt[idx, np.minimum(n_rel[idx], k) - 1] / n_rel[idx]
    return out


def relevant_in_top(kb: KeyBlock, rows: np.ndarray, r: int, relevant: np.ndarray) -> np.ndarray:
    """For local rows ``rows`` of ``kb``: how many clips of the boolean mask
    ``relevant`` (N,) are among the exact top ``r`` (module docstring)."""
    keys, dt = kb.keys[rows], kb.keys.dtype
    n = keys.shape[1]
    t = np.partition(keys, n - r, axis=1)[:, n - r].astype(np.float64)
    e = 2.0 * kb.eps[rows]
    hi = round_up(t + e, dt)[:, None]
    lo = round_down(t - e, dt)[:, None]
    above = keys > hi
    out = np.count_nonzero(above[:, relevant], axis=1).astype(np.int64)
    need = r - np.count_nonzero(above, axis=1)
    win = keys >= lo
    win &= ~above
    ri, ci = np.nonzero(win)
    if ri.size:
        v = kb.exact(rows[ri], ci)
        o = np.lexsort((ci, -v, ri))
        ri, ci = ri[o], ci[o]
        first = np.r_[0, np.flatnonzero(np.diff(ri)) + 1]
        pos = np.arange(ri.size) - np.repeat(first, np.diff(np.r_[first, ri.size]))
        take = pos < need[ri]
        np.add.at(out, ri[take & relevant[ci]], 1)
    return out


def rprec_beyond(kb: KeyBlock, rows: np.ndarray, r: np.ndarray, masks: Sequence[np.ndarray],
                 group: np.ndarray) -> np.ndarray:
    """R-precision of local rows ``rows`` whose R = ``r`` exceeds the stored list;
    ``group[i]`` indexes the relevance mask ``masks[group[i]]`` (N,) of row i
    (rows of one group share R)."""
    out = np.empty(rows.size, dtype=np.float64)
    for g in np.unique(group):
        sel = np.flatnonzero(group == g)
        rr = int(r[sel[0]])
        out[sel] = relevant_in_top(kb, rows[sel], rr, masks[g]) / rr
    return out
