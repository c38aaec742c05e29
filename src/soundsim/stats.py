"""How sure are we? Bootstrap confidence intervals of the macro metrics, paired
tests between systems and Holm's correction.

Input: the evaluator's ``per_query.parquet`` of a setting (:func:`soundsim.evaluate.per_query_table`):
one row per class-wise query, i.e. per (clip, label) pair, with ``ap@<N>...``
and ``r1``. A clip with several labels is a query once per label -- exactly as
in the class-wise averages, where it counts in each of its labels -- and
every row is resampled as one query of its label. Rows with NaN (labels with a
single clip) are left out, as in every average. Statistics never re-run a search.

**The estimand and the resampling scheme.** The paper's macro value is

    MAP@N = (1/L) * sum_l  m_l,      m_l = (1/n_l) * sum_{q in Q_l} AP@N(q)

over the L labels with >= 2 clips, Q_l the n_l queries of label l (MR1
likewise with R1). The labels are a fixed design (FSD50K's 200-label
vocabulary, each weighted 1/L whatever its size); what is random is which
clips happen to represent each label. So the uncertainty to report is

    Var(MAP@N) = (1/L^2) * sum_l  s_l^2 / n_l      (s_l^2: within-label variance of AP@N)

and the bootstrap that estimates it is the **stratified** one: each resample
draws n_l queries with replacement *within* every label l, recomputes each
m*_l and averages them with the same weights 1/L. Resampling all queries
together would change the labels' sizes and hence their weights in the macro
average (and may drop a label); resampling labels would treat the vocabulary
as random and answer another question (how a new set of labels would score).
The plug-in bootstrap variance of m*_l is (n_l-1)/n_l * s_l^2/n_l, too small
for small labels (half the variance at n_l = 2), so each replicate is
**rescaled** (Rao & Wu 1988, resample size n_l)::

    MAP* = MAP + (1/L) * sum_l  sqrt(n_l/(n_l-1)) * (m*_l - m_l)

which makes the bootstrap variance equal the unbiased estimate above (on
FSD50K, n_l >= 32, the factor is <= 1.016). The interval is the percentile
interval of the replicates (default 95 %, 1,000 resamples), kept within the
metric's range (:func:`metric_range`: MAP@N in [0, 1], MR1 >= 0): the
rescaling can carry a replicate of a small collection past a bound (e.g. MR1
0.0625 with a lower end of -0.004), which no collection can produce; clipping
the interval's ends is the percentile interval of the replicates clipped to
the range (clipping is monotone), i.e. of the estimator's parameter space. Computation:
a resample is an (n_resamples x queries) matrix of draw counts, so the
replicates of every system and metric are one matrix product
``counts @ (values * weights)``; the counts depend only on the seed and the
query set, hence every system evaluated on the same queries is resampled
identically (common random numbers).

**Paired test.** Two systems evaluated on the same queries are compared by the
paired stratified bootstrap of the macro difference D = MAP_a - MAP_b: the
same resampled queries for both (the difference of their replicates, above).
The percentile interval of D is reported, and the two-sided p-value of
H0: E[D] = 0 is ``2 * (1 - Phi(|D| / se*))`` with se* the standard deviation
of the replicates of D (a Wald test with the bootstrap standard error). An
empirical bootstrap p-value cannot go below 1/(n_resamples+1) (~0.001 for
1,000 resamples), so with 14 models (91 pairs) Holm's first threshold
0.05/91 = 0.00055 could never be met; the macro difference is an average of
hundreds of label means, close to normal, which the normal tail uses. When
two systems' query sets differ (e.g. clips an extractor could not embed) the
pair is compared on the queries they share (``same_queries`` False).
Caveats: queries of one clip in several labels, and queries sharing relevant
clips, are not independent; the bootstrap treats them as if they were.

**Ranks and tied groups.** :func:`rank_intervals` ranks the systems on a
metric (1 = best) in the point estimates and in every replicate, from the
same replicates as the intervals (the same design and seed), and reports the
percentile interval of each system's replicate ranks and the share of
resamples in which it comes first. :func:`tied_groups` turns the
Holm-corrected paired tests into a compact letter display
(:func:`compact_letters`, Piepho's insert-and-absorb): systems sharing a letter
are not significantly different. The two answer different questions -- where
a system's rank could lie, and which pairs are separated -- so a rank
interval may overlap another's while the pair is significantly different
(the paired test is the more sensitive one).

**Holm.** :func:`holm` (written here: statsmodels is not a dependency and
scipy has only Benjamini-Hochberg/-Yekutieli in ``false_discovery_control``)
adjusts the p-values of all pairs of a comparison, one family per metric.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from soundsim import measures
from soundsim.errors import SoundsimError

log = logging.getLogger(__name__)

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0
#: resamples whose draw counts are turned into a float matrix at once
_CHUNK = 128


class StatsError(SoundsimError):
    """Per-query values cannot be used (missing columns, no labels with >= 2 clips, bad options)."""


# --------------------------------------------------------------------------- inputs


def metric_of(column: str) -> str:
    """Per-query column -> macro metric: ``ap@15`` -> ``map@15``, ``r1`` -> ``mr1``,
    ``rr`` -> ``mrr``, a panel column -> its own name (:func:`soundsim.measures.average_of`)."""
    try:
        return measures.average_of(column)
    except measures.UnknownMetric as e:
        raise StatsError(str(e)) from None


def query_columns(df: pd.DataFrame) -> list[str]:
    """The per-query metric columns of ``df``: ``ap@<N>`` (increasing N), ``r1``, then the
    panel's (:func:`soundsim.measures.query_columns`)."""
    return measures.query_columns(df.columns)


def read_per_query(path: str | Path) -> pd.DataFrame:
    """Read a ``per_query.parquet`` (columns ``fname, label, ap@<N>..., r1``)."""
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise StatsError(f"{path}: unreadable per-query file ({e})") from None
    missing = [c for c in ("fname", "label") if c not in df.columns]
    if missing or not query_columns(df):
        raise StatsError(f"{path}: not a per-query file (needs fname, label, ap@<N>... / r1)")
    return df


def _check_options(n_resamples: int, confidence: float) -> None:
    if int(n_resamples) < 1:
        raise StatsError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < float(confidence) < 1.0:
        raise StatsError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")


@dataclass
class QuerySet:
    """The valid queries of one system, sorted by label then fname, with its
    metric values. ``signature`` identifies the (fname, label) set."""

    fname: np.ndarray
    label: np.ndarray
    columns: list[str]
    values: np.ndarray  # (P, k) float64
    _signature: str | None = field(default=None, repr=False)
    _order: np.ndarray | None = field(default=None, repr=False)  # valid rows of the frame -> sorted position

    def __post_init__(self) -> None:
        if self._signature is not None:
            self.signature = self._signature
            return
        keys = pd.DataFrame({"label": self.label, "fname": self.fname})
        h = pd.util.hash_pandas_object(keys, index=False).to_numpy()
        self.signature = hashlib.sha1(h.tobytes()).hexdigest() + f"-{h.size}"

    @classmethod
    def from_frame(cls, df: pd.DataFrame, columns: Sequence[str] | None = None, what: str = "per-query") -> QuerySet:
        cols = list(columns) if columns is not None else query_columns(df)
        missing = [c for c in ["fname", "label", *cols] if c not in df.columns]
        if missing:
            raise StatsError(f"{what}: lacks column(s) {', '.join(missing)}")
        sub = df[["label", "fname", *cols]]
        sub = sub[np.isfinite(sub[cols].to_numpy(dtype=np.float64)).all(axis=1)].reset_index(drop=True)
        sub = sub.astype({"label": str, "fname": str}).sort_values(["label", "fname"], kind="mergesort")
        if sub.duplicated(["label", "fname"]).any():
            raise StatsError(f"{what}: repeated (fname, label) rows")
        q = cls(sub["fname"].to_numpy(dtype=object), sub["label"].to_numpy(dtype=object), cols,
                sub[cols].to_numpy(dtype=np.float64))
        q._order = sub.index.to_numpy()
        return q

    @classmethod
    def like(cls, df: pd.DataFrame, prev: QuerySet, prev_df: pd.DataFrame, what: str = "per-query") -> QuerySet:
        """:meth:`from_frame`, reusing ``prev`` (built from ``prev_df``) when
        ``df`` has the same fname/label rows in the same order and the same
        undefined rows (the common case: one collection, one evaluation
        order), which skips the sort of the keys."""
        cols = prev.columns
        if (len(df) == len(prev_df) and all(c in df.columns for c in ["fname", "label", *cols])
                and np.array_equal(df["label"].to_numpy(), prev_df["label"].to_numpy())
                and np.array_equal(df["fname"].to_numpy(), prev_df["fname"].to_numpy())):
            v = df[cols].to_numpy(dtype=np.float64)
            ok = np.isfinite(v).all(axis=1)
            if np.array_equal(ok, np.isfinite(prev_df[cols].to_numpy(dtype=np.float64)).all(axis=1)):
                order = prev._order
                q = cls(prev.fname, prev.label, cols, v[ok][order], _signature=prev.signature)
                q._order = order
                return q
        return cls.from_frame(df, None, what)

    def restrict(self, keep: np.ndarray) -> QuerySet:
        return QuerySet(self.fname[keep], self.label[keep], self.columns, self.values[keep])

    @property
    def n_queries(self) -> int:
        return int(self.label.size)


def _query_sets(systems: Mapping[Any, pd.DataFrame | QuerySet]) -> list[QuerySet]:
    """Each system as a :class:`QuerySet`, reusing the previous frame's key
    order when its keys are the same (:meth:`QuerySet.like`)."""
    out: list[QuerySet] = []
    prev: tuple[QuerySet, pd.DataFrame] | None = None
    for name, data in systems.items():
        if isinstance(data, QuerySet):
            out.append(data)
            continue
        if prev is not None and prev[0]._order is not None and list(prev[0].columns) == query_columns(data):
            q = QuerySet.like(data, prev[0], prev[1], what=str(name))
        else:
            q = QuerySet.from_frame(data, what=str(name))
        out.append(q)
        prev = (q, data)
    return out


# --------------------------------------------------------------------------- the resampling design


class Design:
    """Stratified resampling of queries within labels.

    ``label``: the label of each query, sorted (queries of a label are
    contiguous). Labels with fewer than 2 queries cannot be resampled and are
    an error (the evaluator leaves single-clip labels NaN, so they never get
    here)."""

    def __init__(self, label: np.ndarray) -> None:
        label = np.asarray(label)
        if label.size == 0:
            raise StatsError("no queries with defined values (every label has a single clip?)")
        if label.size > 1 and not (label[1:] >= label[:-1]).all():
            raise StatsError("queries must be sorted by label")
        names, start, n = np.unique(label, return_index=True, return_counts=True)
        if (n < 2).any():
            raise StatsError(f"label(s) with a single query cannot be resampled: {list(names[n < 2][:5])}")
        self.labels = names
        self.start = start.astype(np.int64)
        self.n = n.astype(np.int64)
        self.code = np.repeat(np.arange(names.size), self.n)
        self.scale = np.sqrt(self.n / (self.n - 1.0))
        self._counts: dict[tuple[int, int], np.ndarray] = {}

    @property
    def n_labels(self) -> int:
        return int(self.labels.size)

    @property
    def n_queries(self) -> int:
        return int(self.code.size)

    def label_means(self, values: np.ndarray) -> np.ndarray:
        """(L, k) per-label means of ``values`` (P, k)."""
        return np.add.reduceat(values, self.start, axis=0) / self.n[:, None]

    def estimate(self, values: np.ndarray) -> np.ndarray:
        """(k,) macro values: the mean over labels of the per-label means."""
        return self.label_means(values).mean(axis=0)

    def counts(self, n_resamples: int, seed: int) -> np.ndarray:
        """(n_resamples, P) draw counts: row b says how often each query is
        drawn in resample b (n_l draws with replacement within each label l).
        Depends only on the seed and the design; cached."""
        key = (int(n_resamples), int(seed))
        if key not in self._counts:
            rng = np.random.default_rng(int(seed))
            p = self.n_queries
            first = self.start[self.code]
            size = self.n[self.code]
            out = np.empty((int(n_resamples), p), dtype=np.uint16 if self.n.max() > 255 else np.uint8)
            for b0 in range(0, int(n_resamples), _CHUNK):
                b = min(int(n_resamples), b0 + _CHUNK) - b0
                u = rng.random((b, p))
                idx = first + np.minimum((u * size).astype(np.int64), size - 1)
                idx += (np.arange(b, dtype=np.int64) * p)[:, None]
                out[b0 : b0 + b] = np.bincount(idx.ravel(), minlength=b * p).reshape(b, p)
            self._counts = {key: out}  # keep one: they are large
        return self._counts[key]

    def replicates(self, values: np.ndarray, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Point estimates (k,) and rescaled bootstrap replicates (B, k) of
        the macro means of the columns of ``values`` (P, k):
        ``est + (1/L) sum_l sqrt(n_l/(n_l-1)) (m*_l - m_l)``."""
        values = np.asarray(values, dtype=np.float64)
        lm = self.label_means(values)
        est = lm.mean(axis=0)
        L = self.n_labels
        w = (self.scale / (L * self.n))[self.code]
        vw = values * w[:, None]
        off = est - (self.scale[:, None] * lm).sum(axis=0) / L
        counts = self.counts(n_resamples, seed)
        rep = np.empty((counts.shape[0], values.shape[1]), dtype=np.float64)
        for b0 in range(0, counts.shape[0], _CHUNK):
            rep[b0 : b0 + _CHUNK] = counts[b0 : b0 + _CHUNK].astype(np.float64) @ vw
        rep += off
        return est, rep


def _interval(rep: np.ndarray, confidence: float, bounds: tuple[np.ndarray, np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the replicates (B, k), each column within
    ``bounds`` (lo, hi per column) when given."""
    a = (1.0 - float(confidence)) / 2.0
    q = np.quantile(rep, [a, 1.0 - a], axis=0)
    if bounds is None:
        return q[0], q[1]
    return np.clip(q[0], bounds[0], bounds[1]), np.clip(q[1], bounds[0], bounds[1])


def metric_range(metric: str) -> tuple[float, float]:
    """The values a macro metric can take: MR1 (a 0-based rank) in [0, inf), every other
    (MAP@N and the panel's) in [0, 1] (:func:`soundsim.measures.metric_range`)."""
    return measures.metric_range(metric)


def _bounds(columns: Sequence[str], difference: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-column bounds of the macro values (``difference``: of a difference of two systems)."""
    lo, hi = np.array([metric_range(metric_of(c)) for c in columns], dtype=np.float64).T
    return (lo - hi, hi - lo) if difference else (lo, hi)


# --------------------------------------------------------------------------- intervals


def intervals(
    systems: Mapping[Any, pd.DataFrame | QuerySet],
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
    designs: dict[str, Design] | None = None,
) -> pd.DataFrame:
    """Stratified bootstrap confidence intervals of the macro metrics of each
    system (name -> its per-query DataFrame or :class:`QuerySet`).

    Returns one row per system and metric: ``system, metric`` (``map@<N>``,
    ``mr1``), ``estimate`` (the macro value: equals ``summary.json``), ``lo, hi``
    (percentile interval), ``se`` (bootstrap standard error), ``n_labels,
    n_queries``. Systems with the same query set share the resamples.
    ``designs``: a cache (query-set signature -> :class:`Design`) to reuse the
    resamples over several calls."""
    _check_options(n_resamples, confidence)
    designs = {} if designs is None else designs
    rows = []
    groups: dict[str, list[tuple[Any, QuerySet]]] = {}
    for name, qs in zip(systems, _query_sets(systems), strict=True):
        groups.setdefault(qs.signature, []).append((name, qs))
    order = {name: i for i, name in enumerate(systems)}
    for sig, members in groups.items():
        if sig not in designs:
            designs.clear()  # keep one: its resample counts are large
            designs[sig] = Design(members[0][1].label)
        design = designs[sig]
        # every system and metric of the group in one pass over the resamples
        est_all, rep_all = design.replicates(np.hstack([qs.values for _, qs in members]), n_resamples, seed)
        lo_all, hi_all = _interval(rep_all, confidence,
                                   _bounds([c for _, qs in members for c in qs.columns]))
        # a metric constant over the queries (e.g. P@150 of a small collection) has replicates equal to
        # its estimate up to rounding: keep the interval's ends on the estimate's side of it
        tol = 1e-12 * np.maximum(1.0, np.abs(est_all))
        lo_all = np.where((lo_all > est_all) & (lo_all - est_all <= tol), est_all, lo_all)
        hi_all = np.where((hi_all < est_all) & (est_all - hi_all <= tol), est_all, hi_all)
        se_all = rep_all.std(axis=0, ddof=1) if rep_all.shape[0] > 1 else np.full(est_all.shape, np.nan)
        k0 = 0
        for name, qs in members:
            for j, col in enumerate(qs.columns):
                k = k0 + j
                rows.append({"system": name, "metric": metric_of(col), "estimate": float(est_all[k]),
                             "lo": float(lo_all[k]), "hi": float(hi_all[k]), "se": float(se_all[k]),
                             "n_labels": design.n_labels, "n_queries": design.n_queries, "_o": order[name]})
            k0 += len(qs.columns)
    out = pd.DataFrame(rows, columns=["system", "metric", "estimate", "lo", "hi", "se", "n_labels", "n_queries",
                                      "_o"])
    return out.sort_values("_o", kind="mergesort").drop(columns="_o").reset_index(drop=True)


# --------------------------------------------------------------------------- Holm


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (strong control of the family-wise
    error rate). With the m finite p-values sorted, p_(1) <= ... <= p_(m)::

        p~_(i) = min(1, max_{j <= i} (m - j + 1) * p_(j))

    and hypothesis i is rejected at level alpha iff p~_i <= alpha (the same
    decisions as comparing p_(i) with alpha / (m - i + 1) and stopping at the
    first failure). NaN p-values stay NaN and do not count in m."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


# --------------------------------------------------------------------------- paired tests


def _p_value(diff: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Two-sided normal p-value of diff / se (se 0: p 1 when diff is 0, else 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(diff) / se
    p = 2.0 * norm.sf(z)
    p = np.where(se > 0, p, np.where(np.abs(diff) > 0, 0.0, 1.0))
    return np.where(np.isfinite(diff) & np.isfinite(se), p, np.nan)


PAIRWISE_COLUMNS = ["a", "b", "metric", "a_value", "b_value", "diff", "diff_lo", "diff_hi", "se", "p", "p_holm",
                    "significant", "better", "n_labels", "n_queries", "same_queries"]


def pairwise(
    systems: Mapping[Any, pd.DataFrame | QuerySet],
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """Paired stratified bootstrap tests of every pair of systems (name ->
    per-query DataFrame or :class:`QuerySet`), see the module docstring.

    One row per metric and pair (metrics in column order, then pairs with a
    before b in input order): ``a, b, metric,
    a_value, b_value`` (macro values on the compared queries), ``diff`` (a -
    b), ``diff_lo, diff_hi`` (percentile interval of the difference), ``se``,
    ``p`` (two-sided), ``p_holm`` (Holm-adjusted over all pairs, per metric),
    ``significant`` (``p_holm < 1 - confidence``), ``better`` (the better
    system when significant: higher MAP, lower MR1; else empty), ``n_labels,
    n_queries, same_queries`` (False: the pair was compared on the queries both
    systems have)."""
    _check_options(n_resamples, confidence)
    names = list(systems)
    qsets = _query_sets(systems)
    if len(set(tuple(q.columns) for q in qsets)) > 1:
        raise StatsError("pairwise: the systems' per-query files have different metric columns")
    by_sig: dict[str, list[int]] = {}
    for i, q in enumerate(qsets):
        by_sig.setdefault(q.signature, []).append(i)
    sigs = list(by_sig)
    rows: list[dict[str, Any]] = []
    for gi, ga in enumerate(sigs):
        for gb in sigs[gi:]:
            ia, ib = by_sig[ga], by_sig[gb]
            if ga == gb:
                pairs = [(i, j) for k, i in enumerate(ia) for j in ia[k + 1:]]
            else:
                pairs = sorted((min(i, j), max(i, j)) for i in ia for j in ib)
            if not pairs:
                continue
            if ga == gb:
                members = {i: qsets[i] for i in ia}
            else:
                a0, b0 = qsets[ia[0]], qsets[ib[0]]
                ka = pd.MultiIndex.from_arrays([a0.label, a0.fname])
                kb = pd.MultiIndex.from_arrays([b0.label, b0.fname])
                common_a = ka.isin(kb)
                common_b = kb.isin(ka)
                members = {i: qsets[i].restrict(common_a) for i in ia}
                members.update({j: qsets[j].restrict(common_b) for j in ib})
                # drop labels left with < 2 shared queries (cannot be resampled)
                lab = members[ia[0]].label
                u, cnt = np.unique(lab, return_counts=True)
                keep = np.isin(lab, u[cnt >= 2])
                members = {i: q.restrict(keep) for i, q in members.items()}
                if members[ia[0]].n_queries == 0:
                    log.warning("pairwise: %s and %s share no resampleable queries", names[ia[0]], names[ib[0]])
                    continue
            design = Design(next(iter(members.values())).label)
            # every system and metric in one pass over the resamples (the same resamples: paired)
            ids = list(members)
            e_all, r_all = design.replicates(np.hstack([members[i].values for i in ids]), n_resamples, seed)
            k = len(qsets[ids[0]].columns)
            est = {i: e_all[n * k:(n + 1) * k] for n, i in enumerate(ids)}
            rep = {i: r_all[:, n * k:(n + 1) * k] for n, i in enumerate(ids)}
            for i, j in pairs:
                d_rep = rep[i] - rep[j]
                d = est[i] - est[j]
                lo, hi = _interval(d_rep, confidence, _bounds(qsets[i].columns, difference=True))
                se = d_rep.std(axis=0, ddof=1) if d_rep.shape[0] > 1 else np.full(d.shape, np.nan)
                p = _p_value(d, se)
                for k, col in enumerate(qsets[i].columns):
                    rows.append({"a": names[i], "b": names[j], "metric": metric_of(col), "a_value": float(est[i][k]),
                                 "b_value": float(est[j][k]), "diff": float(d[k]), "diff_lo": float(lo[k]),
                                 "diff_hi": float(hi[k]), "se": float(se[k]), "p": float(p[k]),
                                 "n_labels": design.n_labels, "n_queries": design.n_queries,
                                 "same_queries": ga == gb, "_m": k, "_i": i, "_j": j})
    out = pd.DataFrame(rows, columns=[c for c in PAIRWISE_COLUMNS if c not in ("p_holm", "significant", "better")]
                       + ["_m", "_i", "_j"])
    if len(out):
        out = out.sort_values(["_m", "_i", "_j"], kind="mergesort").reset_index(drop=True)
        out["p_holm"] = np.nan
        for _, idx in out.groupby("metric", sort=False).groups.items():
            out.loc[idx, "p_holm"] = holm(out.loc[idx, "p"].to_numpy())
        alpha = 1.0 - float(confidence)
        out["significant"] = out["p_holm"] < alpha
        lower_better = ~out["metric"].map(measures.higher_is_better).astype(bool)
        a_better = np.where(lower_better, out["diff"] < 0, out["diff"] > 0)
        out["better"] = np.where(out["significant"], np.where(a_better, out["a"].astype(str), out["b"].astype(str)),
                                 "")
    else:
        out["p_holm"] = pd.Series(dtype=float)
        out["significant"] = pd.Series(dtype=bool)
        out["better"] = pd.Series(dtype=str)
    return out[PAIRWISE_COLUMNS]


def options(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``n_resamples, confidence, seed`` from a config's ``evaluation`` section (defaults filled in)."""
    ev = dict((config or {}).get("evaluation", config or {}))
    return {"n_resamples": int(ev.get("n_resamples", DEFAULT_RESAMPLES)),
            "confidence": float(ev.get("confidence", DEFAULT_CONFIDENCE)),
            "seed": int(ev.get("seed", DEFAULT_SEED))}


def interval_columns(metric: str) -> tuple[str, str]:
    """``map@15`` -> (``map@15_lo``, ``map@15_hi``)."""
    return f"{metric}_lo", f"{metric}_hi"


def confidence_text(confidence: float) -> str:
    """0.95 -> '95 %'."""
    pct = 100.0 * float(confidence)
    return f"{pct:g} %" if not math.isclose(pct, round(pct)) else f"{round(pct)} %"


# --------------------------------------------------------------------------- ranks and tied groups

#: the columns of :func:`rank_intervals`
RANK_COLUMNS = ["system", "metric", "estimate", "rank", "rank_lo", "rank_hi", "p_first", "n_systems", "n_labels",
                "n_queries", "same_queries"]
#: differences below this (relative to the largest value) are ties when ranking (floating-point noise)
_RANK_TOL = 1e-12


def _ranks(values: np.ndarray, tol: float) -> np.ndarray:
    """Competition ranks ("1224") along the last axis of ``values`` (..., k), larger
    is better: 1 + the number of systems more than ``tol`` better."""
    better = values[..., None, :] > values[..., :, None] + tol  # [..., i, j]: j beats i
    return 1 + better.sum(axis=-1)


def _shared(qsets: Sequence[QuerySet]) -> list[QuerySet]:
    """The systems restricted to the queries every one has, labels left with
    fewer than 2 of them dropped (as :func:`pairwise` does for a pair)."""
    keys = [pd.MultiIndex.from_arrays([q.label, q.fname]) for q in qsets]
    common = keys[0]
    for k in keys[1:]:
        common = common.intersection(k)
    out = [q.restrict(k.isin(common)) for q, k in zip(qsets, keys, strict=True)]
    lab = out[0].label
    u, cnt = np.unique(lab, return_counts=True)
    keep = np.isin(lab, u[cnt >= 2])
    return [q.restrict(keep) for q in out]


def rank_intervals(
    systems: Mapping[Any, pd.DataFrame | QuerySet],
    metric: str = "map@15",
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """How stable is each system's rank? (``systems``: name -> per-query
    DataFrame or :class:`QuerySet`, as for :func:`intervals`.)

    Definition. With the systems' macro values ``v_s`` of ``metric`` (better
    when higher, :func:`soundsim.measures.higher_is_better`; MR1: lower), the
    rank is the competition rank

        rank_s = 1 + #{t : v_t better than v_s}

    (1 = best; systems whose values differ by less than 1e-12 of the largest
    are tied and share the better rank, so two identical systems are both
    first). ``rank`` is that of the point estimates; in each bootstrap
    replicate b the same rule ranks the replicates ``v*_s,b`` -- the rescaled
    stratified replicates of :meth:`Design.replicates`, drawn by the
    :class:`Design` of the query set with the same ``seed`` and
    ``n_resamples``, i.e. the very replicates :func:`intervals` takes its
    percentiles of (common random numbers: every system is resampled on the
    same queries in a replicate). ``rank_lo``/``rank_hi``: the percentile
    interval of the replicate ranks at ``confidence``, widened to whole ranks
    (the lower quantile rounded down to an observed rank, the upper one up:
    numpy's ``lower``/``higher`` methods), so [1, 1] means first in at least
    (1 + confidence)/2 of the resamples. ``p_first``: the share of resamples
    in which the system is ranked first (ties included, so the shares of tied
    systems may sum to more than 1).

    Systems evaluated on different query sets (e.g. clips one extractor could
    not embed) are all compared on the queries every system has (labels left
    with fewer than 2 dropped; ``same_queries`` False, ``estimate`` then the
    macro value on those queries); otherwise the design is each system's
    own, and the replicates equal those of :func:`intervals`.

    Returns one row per system in input order: :data:`RANK_COLUMNS`
    (``rank, rank_lo, rank_hi, n_systems`` integers). Empty (with these
    columns) when ``systems`` is empty."""
    _check_options(n_resamples, confidence)
    try:
        column = measures.column_of(metric)
        sign = 1.0 if measures.higher_is_better(metric) else -1.0
    except measures.UnknownMetric as e:
        raise StatsError(str(e)) from None
    names = list(systems)
    if not names:
        return pd.DataFrame(columns=RANK_COLUMNS)
    qsets = _query_sets(systems)
    for name, q in zip(names, qsets, strict=True):
        if column not in q.columns:
            raise StatsError(f"rank_intervals: {name} has no {column!r} values (metric {metric})")
    same = len({q.signature for q in qsets}) == 1
    if not same:
        qsets = _shared(qsets)
        if qsets[0].n_queries == 0:
            raise StatsError("rank_intervals: the systems share no resampleable queries")
        log.info("rank_intervals: %d systems with different query sets ranked on the %d queries they share",
                 len(names), qsets[0].n_queries)
    design = Design(qsets[0].label)
    values = np.column_stack([q.values[:, q.columns.index(column)] for q in qsets])
    est, rep = design.replicates(values, n_resamples, seed)
    tol = _RANK_TOL * max(1.0, float(np.abs(est).max()))
    point = _ranks(sign * est, tol)
    reps = _ranks(sign * rep, tol)  # (B, k)
    a = (1.0 - float(confidence)) / 2.0
    lo = np.quantile(reps, a, axis=0, method="lower")
    hi = np.quantile(reps, 1.0 - a, axis=0, method="higher")
    first = (reps == 1).mean(axis=0)
    out = pd.DataFrame({"system": names, "metric": metric, "estimate": est, "rank": point.astype(np.int64),
                        "rank_lo": lo.astype(np.int64), "rank_hi": hi.astype(np.int64), "p_first": first,
                        "n_systems": len(names), "n_labels": design.n_labels, "n_queries": design.n_queries,
                        "same_queries": same})
    return out[RANK_COLUMNS]


def _letter(k: int) -> str:
    """The k-th letter of a display: a..z, A..Z, then ``<53>``, ``<54>``, ... (unambiguous when joined)."""
    if k < 26:
        return chr(ord("a") + k)
    if k < 52:
        return chr(ord("A") + k - 26)
    return f"<{k + 1}>"


def compact_letters(names: Sequence[Any], different: Iterable[tuple[Any, Any]]) -> dict[Any, str]:
    """A compact letter display of ``names``: letters per system such that
    every pair in ``different`` (the significantly different pairs) shares no
    letter and every other pair of ``names`` shares at least one (pairs not in
    ``different``, tested or not, count as not different): systems sharing a
    letter are statistically tied.

    Algorithm: insert-and-absorb (Piepho 2004, J. Comput. Graph. Stat. 13:456).
    Start with one letter column holding every system; for each significant
    pair (i, j), every column holding both is replaced by two copies, one
    without i and one without j (insert); then every column that is a subset
    of another is deleted (absorb). Each column is a set of mutually tied
    systems (no significant pair inside), every non-significant pair stays in
    some column, and no column is redundant. The columns are then lettered
    in the order of their best member in ``names`` (give ``names`` best
    first: the best system gets ``a``), and each system's letters are those
    of its columns, in that order (``a``, ``ab``, ``b``, ...; after z: A..Z,
    then ``<53>``...). Example: A, B, C best first, only A-C significant ->
    A ``a``, B ``ab``, C ``b``. Pairs naming a system not in ``names`` are
    ignored."""
    order = list(dict.fromkeys(names))
    pos = {n: i for i, n in enumerate(order)}
    if not order:
        return {}
    pairs = sorted({(min(pos[a], pos[b]), max(pos[a], pos[b])) for a, b in different
                    if a in pos and b in pos and a != b})
    cols: list[frozenset[int]] = [frozenset(range(len(order)))]
    for i, j in pairs:
        new: list[frozenset[int]] = []
        for c in cols:
            new += [c - {i}, c - {j}] if i in c and j in c else [c]
        uniq = list(dict.fromkeys(new))
        cols = [c for c in uniq if not any(c < d for d in uniq)]
    cols.sort(key=lambda c: sorted(c))
    letters = {n: "" for n in order}
    for k, c in enumerate(cols):
        for i in sorted(c):
            letters[order[i]] += _letter(k)
    return letters


def tied_groups(pairwise_df: pd.DataFrame, order: Sequence[Any], metric: str = "map@15") -> dict[Any, str]:
    """The :func:`compact_letters` of the systems ``order`` (best first) from
    the Holm-corrected paired tests of ``pairwise_df`` (:func:`pairwise`, or the
    rows of one ``comparison`` of ``pairwise.csv``): a pair is different when
    its row of ``metric`` is ``significant``. Systems sharing a letter are not
    significantly different (statistically tied); a pair without a row (e.g.
    no shared queries) counts as tied."""
    if pairwise_df is None or len(pairwise_df) == 0:
        return compact_letters(order, [])
    missing = [c for c in ("a", "b", "metric", "significant") if c not in pairwise_df.columns]
    if missing:
        raise StatsError(f"tied_groups: pairwise table lacks column(s) {', '.join(missing)}")
    rows = pairwise_df[pairwise_df["metric"].astype(str) == str(metric)]
    sig = rows["significant"].astype(str).str.lower().isin(["true", "1"])
    by_name = {str(n): n for n in order}
    diff = [(by_name.get(str(a)), by_name.get(str(b))) for a, b in zip(rows["a"][sig], rows["b"][sig], strict=True)]
    return compact_letters(order, [(a, b) for a, b in diff if a is not None and b is not None])
