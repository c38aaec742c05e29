"""Retrieval metrics of Araz et al. 2024 (III-B), vectorised over query blocks.

Definitions (checked against the authors' code, raraz15/semantic-sound-similarity,
``code/lib/metrics/mAP_at_n.py``, ``code/lib/metrics/mAP.py``,
``code/lib/metrics/MR1.py``, ``code/lib/metrics/relevance.py``):

* **Relevance**, class-wise: for a query asked on behalf of label L, a retrieved
  clip is relevant iff it carries L (``evaluate_relevance(..., query_label=L)``).
  Instance-based (micro): relevant iff it shares at least one label with the
  query (``query_labels.intersection(ref_labels)``).
* **AP@N** of one ranking with relevances rel_1..rel_N::

      precision@k = (1/k) * sum_{i<=k} rel_i
      AP@N        = (1/D) * sum_{k<=N, rel_k=1} precision@k      (0 if no rel_k)

  class-wise ``D = min(N, n_L)``, where n_L is the number of clips in the
  collection that carry L, *the query included* (``n_relevant =
  len(fnames_with_label)`` in ``calculate_map_at_n_for_labels``), so a query
  of a label with n_L <= N scores at most (n_L-1)/n_L. Micro: ``D = N``
  (``instance_based_map_at_n`` passes ``n_relevant=None``). When the collection
  has fewer than N other clips, the missing positions count as not relevant.
* **R1**: the 0-based rank of the first relevant clip in the full ranking of
  all other clips (``R1`` returns the ``enumerate`` index ``i``). It is
  computed without storing full rankings: from the top-K list when a relevant
  clip is in it, else as ``#{j != q: key_j > s*} + #{j != q: key_j = s*, j < j*}``
  with (s*, j*) the best relevant clip (highest key, then lowest index), which
  is the tie rule of :mod:`soundsim.search`. Keys are the exact (float64)
  keys: the float32 keys decide only where they are more than their error
  bound ``eps`` away from the comparison, and the clips within it are
  re-scored in float64 (:class:`soundsim.search.KeyBlock`), so R1 equals that
  of the full float64 ranking. Micro R1 = min over the query's
  labels of the class-wise R1 (the first clip sharing any label is the first
  clip carrying one of them). R1 ranks by the evaluated search's scores; the
  stored ``MR1.py`` always ranked by Euclidean distance, the final README's
  ``evaluate_mr1.py`` takes the search (``-s {dot,nn}``), as here.
* **Class-wise** MAP@N(L) and MR1(L): the mean of AP@N and R1 over all queries
  that carry L. **Macro**: the mean of the class-wise values over labels.
  **Family-wise**: the mean over the labels of a family (``families`` maps a
  family to its labels; multi-parent labels are given in no family and are
  left out; labels in no family are left out). **Micro**: the mean over all
  queries (every clip), with micro relevance.

Labels with a single clip (policy): no other clip can be relevant, so AP@N and
R1 are undefined (the reference returns AP 0 and its R1 returns None, which
breaks its mean). soundsim reports such labels with ``n_clips = 1`` and NaN
metrics, and leaves them out of the macro, family and micro averages (a
micro query counts only when some other clip shares a label with it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from soundsim import panel as PN
from soundsim.errors import SoundsimError
from soundsim.measures import average_of, metric_names
from soundsim.search import KeyBlock, round_down, round_up

#: rows of the score block compared at once when counting ranks beyond top-K
_COUNT_CHUNK = 256


class MetricsError(SoundsimError):
    """Metric inputs are inconsistent (names the label/clip/cutoff at fault)."""


@dataclass
class LabelIndex:
    """Labels of a collection as arrays.

    ``Y[i, l]``: clip i carries label l (dense bool, N x L); ``counts[l]`` =
    n_l; ``members[l]``: sorted clip indices carrying l. The (query, label)
    pairs -- one per label of each clip -- are ``pair_q``/``pair_l``, sorted by
    clip; clip q owns pairs ``pair_start[q]:pair_start[q+1]``.
    """

    labels: list[str]
    Y: np.ndarray
    counts: np.ndarray
    members: list[np.ndarray]
    pair_q: np.ndarray
    pair_l: np.ndarray
    pair_start: np.ndarray

    @property
    def n_clips(self) -> int:
        return int(self.Y.shape[0])

    @property
    def n_pairs(self) -> int:
        return int(self.pair_q.size)


def build_label_index(labels_per_clip: Sequence[Sequence[str]], fnames: Sequence[str] | None = None) -> LabelIndex:
    """Build a :class:`LabelIndex` from each clip's labels (order kept;
    duplicate labels of a clip count once). Every clip needs >= 1 label."""
    names = sorted({lab for labs in labels_per_clip for lab in labs})
    pos = {lab: j for j, lab in enumerate(names)}
    n = len(labels_per_clip)
    empty = [i for i, labs in enumerate(labels_per_clip) if len(labs) == 0]
    if empty:
        shown = [repr(fnames[i]) if fnames is not None else f"#{i}" for i in empty[:5]]
        raise MetricsError(f"{len(empty)} clip(s) have no label: {', '.join(shown)}")
    rows = np.repeat(np.arange(n, dtype=np.int64), [len(labs) for labs in labels_per_clip])
    cols = np.fromiter((pos[lab] for labs in labels_per_clip for lab in labs), dtype=np.int64, count=rows.size)
    Y = np.zeros((n, len(names)), dtype=bool)
    Y[rows, cols] = True
    pair_q, pair_l = np.nonzero(Y)  # row-major: sorted by clip, then label
    pair_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(Y.sum(axis=1), out=pair_start[1:])
    counts = Y.sum(axis=0).astype(np.int64)
    order = np.argsort(pair_l, kind="stable")
    members = np.split(pair_q[order], np.cumsum(counts)[:-1])
    return LabelIndex(names, Y, counts, members, pair_q.astype(np.int64), pair_l.astype(np.int64), pair_start)


def precision_sums(rel: np.ndarray) -> np.ndarray:
    """``S[:, k-1] = sum_{i <= k, rel_i} precision@i`` for each row of ``rel``
    (P, K) bool, ranked best first, with precision@i = (hits in the first i) / i:
    the numerator of AP@k for every k at once (the one place the AP formula is
    written; :func:`average_precision_at_n` and :class:`MetricAccumulator`
    divide it by their denominators)."""
    rel = np.asarray(rel, dtype=bool)
    hits = np.cumsum(rel, axis=1, dtype=np.float64)
    prec = hits / np.arange(1, rel.shape[1] + 1, dtype=np.float64)
    return np.cumsum(np.where(rel, prec, 0.0), axis=1)


def average_precision_at_n(rel: np.ndarray, n: int, denominator: np.ndarray | int) -> np.ndarray:
    """AP@n of each row of ``rel`` (P, K) bool, ranked best first:
    ``(1/D) sum_{k<=n, rel_k} precision@k`` with precision@k = hits in the
    first k / k, over the first ``min(n, K)`` positions (:func:`precision_sums`).
    ``denominator`` D is ``min(n, n_L)`` (class-wise) or ``n`` (micro), per row or scalar."""
    rel = np.asarray(rel, dtype=bool)
    m = min(int(n), rel.shape[1])
    return precision_sums(rel[:, :m])[:, m - 1] / np.asarray(denominator, dtype=np.float64)


@dataclass
class MetricResult:
    """Per-pair, per-label and micro metrics of one search setting."""

    cutoffs: list[int]
    labels: list[str]
    n_clips: np.ndarray  # (L,) clips per label
    label_map: dict[int, np.ndarray]  # cutoff -> (L,) MAP@N, NaN for single-clip labels
    label_mr1: np.ndarray  # (L,)
    micro_map: dict[int, float]
    micro_mr1: float
    n_micro_queries: int
    pair_ap: dict[int, np.ndarray] = field(repr=False, default_factory=dict)  # cutoff -> (P,)
    pair_r1: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # (P,)
    query_ap: dict[int, np.ndarray] = field(repr=False, default_factory=dict)  # micro, (N,)
    query_r1: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # micro, (N,)
    #: the retrieval panel (:mod:`soundsim.panel`), per-query column -> values; empty without it
    pair_panel: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # (P,)
    query_panel: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # micro, (N,)
    label_panel: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # (L,)

    def _label_columns(self) -> dict[str, np.ndarray]:
        """Average name -> per-label values: ``map@N..., mr1``, then the panel's."""
        out = {f"map@{c}": self.label_map[c] for c in self.cutoffs}
        out["mr1"] = self.label_mr1
        out.update({average_of(col): v for col, v in self.label_panel.items()})
        return out

    def per_label(self) -> pd.DataFrame:
        """Columns ``label, n_clips, map@N..., mr1`` and the panel's averages
        (:mod:`soundsim.measures` names; one row per label, sorted by label)."""
        df = pd.DataFrame({"label": self.labels, "n_clips": self.n_clips})
        for name, v in self._label_columns().items():
            df[name] = v
        return df

    def per_family(self, families: Mapping[str, Sequence[str]]) -> pd.DataFrame:
        """Columns ``family, n_labels, map@N..., mr1``: the mean of the
        class-wise values over each family's labels present in the collection
        with a defined value (n_labels counts those); families without such
        labels are left out."""
        pos = {lab: j for j, lab in enumerate(self.labels)}
        defined = self.n_clips >= 2
        values = self._label_columns()
        rows: list[dict[str, Any]] = []
        for fam, labs in families.items():
            idx = np.array(sorted({pos[lab] for lab in labs if lab in pos and defined[pos[lab]]}), dtype=np.int64)
            if idx.size == 0:
                continue
            row: dict[str, Any] = {"family": fam, "n_labels": int(idx.size)}
            for name, v in values.items():
                row[name] = float(np.mean(v[idx]))
            rows.append(row)
        cols = ["family", "n_labels", *values]
        return pd.DataFrame(rows, columns=cols)

    def macro(self) -> dict[str, float]:
        """Mean of class-wise values over labels with >= 2 clips."""
        ok = self.n_clips >= 2
        return {name: _mean(v[ok]) for name, v in self._label_columns().items()}

    def micro(self) -> dict[str, float]:
        out = {f"map@{c}": self.micro_map[c] for c in self.cutoffs}
        out["mr1"] = self.micro_mr1
        ok = np.isfinite(self.query_r1)
        out.update({average_of(col): _mean(v[ok]) for col, v in self.query_panel.items()})
        return out


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def family_mean(per_family: pd.DataFrame, cutoffs: Sequence[int]) -> dict[str, float]:
    """Unweighted mean over families of the family-wise values (the paper's
    ``map@<cutoff>``, ``mr1``, and the panel's columns when present)."""
    cols = [f"map@{c}" for c in cutoffs] + ["mr1"]
    cols += [c for c in metric_names(per_family.columns) if c not in cols]
    return {c: (float(per_family[c].mean()) if len(per_family) else float("nan")) for c in cols}


def check_cutoffs(cutoffs: Sequence[int]) -> list[int]:
    """Sorted distinct positive cutoffs."""
    out = sorted({int(c) for c in cutoffs})
    if not out or out[0] < 1:
        raise MetricsError(f"cutoffs must be positive integers, got {list(cutoffs)}")
    return out


def make_panel(index: LabelIndex, gains: np.ndarray, cutoffs: Sequence[int], rprec_full: bool = False
               ) -> PN.Panel:
    """The :class:`soundsim.panel.Panel` of a collection from its (L, L) label gains
    (over ``index.labels``), for lists of :func:`list_length`; ``rprec_full``: R-precision
    over the full ranking (slow: a selection per query and label), else over the top-K run."""
    from soundsim.relevance import clip_gains

    gains = np.asarray(gains, dtype=np.float64)
    n_lab = len(index.labels)
    if gains.shape != (n_lab, n_lab):
        raise MetricsError(f"label gains must be {n_lab} x {n_lab} (the collection's labels), got {gains.shape}")
    return PN.build_panel(index.Y, clip_gains(gains, index.Y), list_length(cutoffs, index.n_clips, True),
                          rprec_full)


def list_length(cutoffs: Sequence[int], n_clips: int, panel: bool = False) -> int:
    """K, the length of the top-K lists kept: the largest cutoff (of the
    paper's metrics, and of the panel's when it is computed), at most N - 1."""
    k = max(check_cutoffs(cutoffs)[-1], PN.max_cutoff() if panel else 0)
    return min(k, n_clips - 1)


class MetricAccumulator:
    """Accumulates AP@N (every cutoff), R1 and their micro versions block by
    block. Feed every query block once, in any order, with
    :meth:`add_block`; then call :meth:`result`."""

    def __init__(self, index: LabelIndex, cutoffs: Sequence[int], panel: PN.Panel | None = None) -> None:
        self.ix = index
        self.cutoffs = check_cutoffs(cutoffs)
        n = index.n_clips
        if n < 2:
            raise MetricsError("need at least 2 clips")
        self.k = list_length(self.cutoffs, n, panel is not None)
        self.panel = panel
        if panel is not None and panel.k != self.k:
            raise MetricsError(f"the panel was built for lists of {panel.k}, the accumulator keeps {self.k}")
        self.pair_panel = {c: np.full(index.n_pairs, np.nan) for c in PN.columns()} if panel else {}
        self.query_panel = {c: np.full(n, np.nan) for c in PN.columns()} if panel else {}
        p = index.n_pairs
        self.pair_ap = {c: np.full(p, np.nan) for c in self.cutoffs}
        self.pair_r1 = np.full(p, np.nan)
        self.query_ap = {c: np.full(n, np.nan) for c in self.cutoffs}
        self.query_r1 = np.full(n, np.nan)
        self.done = np.zeros(n, dtype=bool)

    def add_block(self, start: int, keys: np.ndarray | KeyBlock, cols: np.ndarray) -> None:
        """``keys``: ranking keys (B, N) of queries ``start:start+B`` (own
        entry -inf, higher = better), either exact (an array) or a
        :class:`soundsim.search.KeyBlock` of float32 keys with their error
        bound, re-scored where a decision needs it; ``cols``: their top-K
        columns (B, K >= self.k) in the exact order under the tie rule
        (:func:`soundsim.search.topk`)."""
        if not isinstance(keys, KeyBlock):
            keys = KeyBlock.from_exact(np.asarray(keys), start)
        ix = self.ix
        b = keys.keys.shape[0]
        stop = start + b
        ps, pe = int(ix.pair_start[start]), int(ix.pair_start[stop])
        pq, pl = ix.pair_q[ps:pe], ix.pair_l[ps:pe]
        local = pq - start
        cols = cols[:, : self.k]
        rel = ix.Y[cols[local], pl[:, None]]  # (P, K): result carries the pair's label
        n_l = ix.counts[pl]
        valid = n_l >= 2
        # AP@N, class-wise: D = min(N, n_L)
        csum = precision_sums(rel)
        for c in self.cutoffs:
            m = min(c, self.k)
            ap = csum[:, m - 1] / np.minimum(c, n_l)
            self.pair_ap[c][ps:pe] = np.where(valid, ap, np.nan)
        # R1: in the top-K, else counted over the full row
        found = rel.any(axis=1)
        r1 = np.where(found, rel.argmax(axis=1), -1).astype(np.float64)
        missing = np.flatnonzero(~found & valid)
        if missing.size:
            r1[missing] = self._rank_beyond_topk(keys, local[missing], pl[missing])
        r1[~valid] = np.nan
        self.pair_r1[ps:pe] = r1
        # micro: relevance = OR over the query's labels, D = N; R1 = min over labels
        starts = ix.pair_start[start:stop] - ps
        rel_m = np.logical_or.reduceat(rel, starts, axis=0)
        r1_m = np.minimum.reduceat(np.where(valid, r1, np.inf), starts)
        ok = np.isfinite(r1_m)
        csum_m = precision_sums(rel_m)
        for c in self.cutoffs:
            m = min(c, self.k)
            self.query_ap[c][start:stop] = np.where(ok, csum_m[:, m - 1] / c, np.nan)
        self.query_r1[start:stop] = np.where(ok, r1_m, np.nan)
        if self.panel is not None:
            self._add_panel(keys, start, stop, ps, pe, local, pl, cols, rel, r1, rel_m, starts,
                            np.where(ok, r1_m, np.nan))
        self.done[start:stop] = True

    def _add_panel(self, kb: KeyBlock, start: int, stop: int, ps: int, pe: int, local: np.ndarray,
                   pl: np.ndarray, cols: np.ndarray, rel: np.ndarray, r1: np.ndarray, rel_m: np.ndarray,
                   starts: np.ndarray, r1_m: np.ndarray) -> None:
        """The retrieval panel (:mod:`soundsim.panel`) of the block's pairs and clips."""
        pn, ix = self.panel, self.ix
        assert pn is not None
        gains = pn.C[pl[:, None], cols[local]]  # (P, K)
        n_rel = ix.counts[pl] - 1
        vals = PN.list_measures(rel, gains, r1, n_rel, pn.ideal_label[pl], pn.disc)
        rp = PN.rprec_in_list(rel, n_rel)
        beyond = np.flatnonzero(np.isfinite(r1) & (n_rel > self.k)) if pn.rprec_full else np.zeros(0, int)
        if beyond.size:
            masks = [ix.Y[:, lab] for lab in range(len(ix.labels))]
            rp[beyond] = PN.rprec_beyond(kb, local[beyond], n_rel[beyond], masks, pl[beyond])
        vals["rprec"] = np.where(np.isfinite(r1), rp, np.nan)
        for c, v in vals.items():
            self.pair_panel[c][ps:pe] = v
        q = np.arange(start, stop)
        gains_m = np.maximum.reduceat(gains, starts, axis=0)
        n_rel_m = pn.n_rel_query[q]
        vals = PN.list_measures(rel_m, gains_m, r1_m, n_rel_m, pn.ideal_query[q], pn.disc)
        rp = PN.rprec_in_list(rel_m, n_rel_m)
        beyond = np.flatnonzero(np.isfinite(r1_m) & (n_rel_m > self.k)) if pn.rprec_full else np.zeros(0, int)
        if beyond.size:
            grp = pn.group[q[beyond]]
            uniq, inv = np.unique(grp, return_inverse=True)
            masks = [ix.Y[:, pn.group_labels[g]].any(axis=1) for g in uniq]
            rp[beyond] = PN.rprec_beyond(kb, beyond, n_rel_m[beyond], masks, inv.reshape(-1))
        vals["rprec"] = np.where(np.isfinite(r1_m), rp, np.nan)
        for c, v in vals.items():
            self.query_panel[c][start:stop] = v

    def _rank_beyond_topk(self, kb: KeyBlock, rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """R1 for (row, label) pairs with no relevant clip in the top-K.

        1. The best relevant clip (s*, j*): among the label's clips whose key
           is within ``2 eps`` of the label's best key (the others are
           provably worse), the highest exact key, then the lowest index.
        2. R1 = #{key > s* + eps} (provably before it) + the clips with a key
           in [s* - eps, s* + eps] whose exact key comes first by the tie
           rule (re-scored). With exact keys (eps 0) this is
           #{key > s*} + #{key = s*, j < j*}."""
        keys, dt = kb.keys, kb.keys.dtype
        m = rows.size
        s_best = np.empty(m, dtype=np.float64)
        j_best = np.empty(m, dtype=np.int64)
        order = np.argsort(labels, kind="stable")
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        for grp in np.split(order, bounds):
            mem = self.ix.members[int(labels[grp[0]])]
            rg = rows[grp]
            sub = keys[np.ix_(rg, mem)]  # own entry is -inf, never the max (n_L >= 2)
            top = sub.max(axis=1).astype(np.float64)
            lo = round_down(top - 2.0 * kb.eps[rg], dt)
            ri, ci = np.nonzero(sub >= lo[:, None])  # sorted by ri, then ci (members sorted)
            v = kb.exact(rg[ri], mem[ci])
            o = np.lexsort((ci, -v, ri))
            first = o[np.r_[True, ri[o][1:] != ri[o][:-1]]]  # per row: highest exact key, lowest index
            s_best[grp] = v[first]
            j_best[grp] = mem[ci[first]]
        out = np.empty(m, dtype=np.float64)
        for c0 in range(0, m, _COUNT_CHUNK):
            sl = slice(c0, min(m, c0 + _COUNT_CHUNK))
            rs = rows[sl]
            kr = keys[rs]
            s, e = s_best[sl], kb.eps[rs]
            hi = round_up(s + e, dt)[:, None]
            lo = round_down(s - e, dt)[:, None]
            gt = kr > hi
            before = np.count_nonzero(gt, axis=1)
            win = kr >= lo
            win ^= gt  # lo <= key <= hi
            ri, ci = np.nonzero(win)
            v = kb.exact(rs[ri], ci)
            ahead = (v > s[ri]) | ((v == s[ri]) & (ci < j_best[sl][ri]))
            out[sl] = before + np.bincount(ri[ahead], minlength=rs.size)
        return out

    def result(self) -> MetricResult:
        """Per-label means (NaN for labels with one clip) and micro means."""
        if not self.done.all():
            missing = np.flatnonzero(~self.done)
            raise MetricsError(f"{missing.size} query clip(s) were never evaluated (first index {int(missing[0])})")
        ix = self.ix
        n_lab = len(ix.labels)
        ok_lab = ix.counts >= 2
        denom = np.where(ok_lab, ix.counts, 1).astype(np.float64)

        def per_label(v: np.ndarray) -> np.ndarray:
            s = np.bincount(ix.pair_l, weights=np.nan_to_num(v, nan=0.0), minlength=n_lab)
            return np.where(ok_lab, s / denom, np.nan)

        ok_q = np.isfinite(self.query_r1)
        label_panel = {c: per_label(v) for c, v in self.pair_panel.items()}
        return MetricResult(
            cutoffs=list(self.cutoffs),
            labels=list(ix.labels),
            n_clips=ix.counts.copy(),
            label_map={c: per_label(self.pair_ap[c]) for c in self.cutoffs},
            label_mr1=per_label(self.pair_r1),
            micro_map={c: _mean(self.query_ap[c][ok_q]) for c in self.cutoffs},
            micro_mr1=_mean(self.query_r1[ok_q]),
            n_micro_queries=int(ok_q.sum()),
            pair_ap=self.pair_ap,
            pair_r1=self.pair_r1,
            query_ap=self.query_ap,
            query_r1=self.query_r1,
            pair_panel=self.pair_panel,
            query_panel=self.query_panel,
            label_panel=label_panel,
        )


def metrics_from_scores(
    S: np.ndarray,
    index: LabelIndex,
    cutoffs: Sequence[int],
    block_size: int | None = None,
    gains: np.ndarray | None = None,
    rprec_full: bool = False,
) -> MetricResult:
    """Metrics of a full score matrix ``S`` (N x N, higher = better; the
    diagonal is ignored), for small collections and hand-made cases.
    ``gains``: (L, L) label gains over ``index.labels`` (:mod:`soundsim.relevance`):
    compute the retrieval panel too. Ranking:
    score descending, ties by lower index, the query excluded."""
    from soundsim.search import topk

    S = np.asarray(S, dtype=np.float64)
    n = S.shape[0]
    if S.shape != (n, n) or n != index.n_clips:
        raise MetricsError(f"score matrix must be {index.n_clips} x {index.n_clips}, got {S.shape}")
    acc = MetricAccumulator(index, cutoffs,
                            make_panel(index, gains, cutoffs, rprec_full) if gains is not None else None)
    bs = n if block_size is None else int(block_size)
    for start in range(0, n, bs):
        keys = S[start : start + bs].copy()
        keys[np.arange(keys.shape[0]), np.arange(start, start + keys.shape[0])] = -np.inf
        cols, _ = topk(keys, acc.k)
        acc.add_block(start, keys, cols)
    return acc.result()
