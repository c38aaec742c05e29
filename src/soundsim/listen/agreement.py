"""Which objective metric agrees with listeners? ``tables/listening_metrics.csv`` and
``figures/listening_metrics.png/.pdf`` (what the ``listening_metrics`` workflow rule writes).

For every metric of the rated systems' ``per_query.parquet`` (the paper's ``ap@<N>``, ``r1``
and, where present, the retrieval panel's columns; names and order from
:mod:`soundsim.measures`), Spearman's rank correlation between the listeners' ratings and
the metric, at two levels:

* **system**: the mean rating of each rated system (``<model>/<variation>/<setting>``) vs the
  system's macro value of the metric, computed from its ``per_query.parquet`` as the mean over
  labels of the label means (:meth:`soundsim.stats.Design.estimate`, the value ``summary.json``
  holds; ``metric`` is the average's name, e.g. ``map@15``, ``mr1``, ``mrr``);
* **query**: every rating vs the rated query's per-query value under the rated system. The
  rated query is the pair (query clip, query class) the listener was shown -- the class the
  listening page drew the clip for, the one its AP\\@15 is computed for -- so its value is
  that one row of ``per_query.parquet``: a clip with several labels is not averaged over its
  labels. Only when the database's class has no row for the clip (a hand-made database) is the
  value the mean over the clip's rows. A row that is NaN (a label with a single clip) or a
  clip missing from the file leaves that rating out (``n`` counts what is left).

**Orientation.** Every correlation is oriented so that *agrees with listeners* is positive:
for a metric that is better when lower (:func:`soundsim.measures.higher_is_better`: ``mr1``,
i.e. the per-query column ``r1``), the metric is negated before correlating (``negated``
True in the table), so ``rho`` > 0 means "a smaller rank of the first relevant clip goes with
a higher rating".

**Uncertainty.** The interval is the bootstrap percentile interval (default 95 %, 1,000
resamples, seeded: ``evaluation.n_resamples, confidence, seed`` of the config). What is
resampled are the **judgements** (one submitted form: one listener, one query, the lists of
all systems shown), with replacement, keeping together the ratings of one form: they share
the query and the listener, so they are not independent, and resampling single ratings would
make the interval too narrow. The metric values are fixed (the systems are evaluated on the
whole collection; what is uncertain here is what the listeners said). At the system level a
resample recomputes every system's mean rating from the drawn judgements (a system none of
whose judgements was drawn drops out of that replicate); at the query level it repeats the
(rating, value) pairs of each drawn judgement as often as it was drawn. Every metric and both
levels use the same resamples (common random numbers), so the intervals of two metrics are
comparable. A replicate whose correlation is undefined (fewer than 2 pairs, or a constant
side: e.g. every drawn rating equal) is left out; ``n_valid`` counts the others, and the
interval is NaN with fewer than 2. ``p`` is scipy's two-sided p-value of the point estimate
(t approximation, needs n >= 3); at the query level it treats ratings as independent, which
they are not (the interval accounts for that, the p-value does not). With few systems the
system level is coarse: with 3 systems rho takes only the values -1, -0.5, 0.5, 1.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from soundsim import layout as L
from soundsim import measures
from soundsim import stats as St
from soundsim.fileutil import write_csv_atomic
from soundsim.listen import db
from soundsim.listen.summary import ListeningError

log = logging.getLogger(__name__)

LEVELS = ("system", "query")
#: the table's columns: ``metric`` (the average's name, :func:`soundsim.measures.average_of`),
#: ``level`` (:data:`LEVELS`), ``n`` (systems / ratings with a defined value), ``rho`` (oriented:
#: positive = agrees), ``rho_lo, rho_hi`` (bootstrap percentile interval), ``p``, ``column``
#: (the per-query column), ``negated`` (lower is better: the metric was negated), ``n_valid``
#: (bootstrap replicates with a defined rho)
COLUMNS = ["metric", "level", "n", "rho", "rho_lo", "rho_hi", "p", "column", "negated", "n_valid"]


# --------------------------------------------------------------------------- inputs


def read_per_query_files(paths: Iterable[str | Path]) -> dict[str, pd.DataFrame]:
    """System id (``<model>/<variation>/<setting>``, from the folder) -> its ``per_query.parquet``
    (:func:`soundsim.stats.read_per_query`)."""
    return {L.setting_files_of(p).id: St.read_per_query(p) for p in paths}


def metric_columns(per_query: Mapping[str, pd.DataFrame]) -> list[str]:
    """The per-query metric columns present in any of the systems' files, canonical order."""
    names: set[str] = set()
    for df in per_query.values():
        names.update(map(str, df.columns))
    return measures.query_columns(names)


def macro_values(df: pd.DataFrame, columns: Iterable[str], what: str = "per-query") -> dict[str, float]:
    """Per-query column -> the macro value of its metric (mean over labels of the label means
    of the column's finite rows: :class:`soundsim.stats.QuerySet`, :meth:`soundsim.stats.Design.estimate`);
    NaN for a column the file lacks or without finite rows."""
    out: dict[str, float] = {}
    for c in columns:
        if c not in df.columns:
            out[c] = math.nan
            continue
        qs = St.QuerySet.from_frame(df, [c], what=what)
        out[c] = float(St.Design(qs.label).estimate(qs.values)[0]) if qs.n_queries else math.nan
    return out


def system_values(per_query: Mapping[str, pd.DataFrame], columns: Iterable[str]) -> pd.DataFrame:
    """One row per system (index: system id), one column per per-query column: the macro value
    (:func:`macro_values`)."""
    cols = list(columns)
    rows = {sid: macro_values(df, cols, what=sid) for sid, df in per_query.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols).astype(float)


def query_values(ratings: pd.DataFrame, per_query: Mapping[str, pd.DataFrame], columns: Iterable[str]
                 ) -> pd.DataFrame:
    """One row per rating (the index of ``ratings``), one column per per-query column: the rated
    query's value under the rated system -- the row (``query``, ``query_class``) of the system's
    ``per_query.parquet``; when that pair has no row, the mean over the clip's rows; NaN when the
    clip is not in the file or the system has no file (module docstring)."""
    cols = list(columns)
    out = pd.DataFrame(np.nan, index=ratings.index, columns=cols, dtype=float)
    for sid, g in ratings.groupby("system", sort=False):
        df = per_query.get(str(sid))
        if df is None:
            continue
        have = [c for c in cols if c in df.columns]
        if not have:
            continue
        d = df.assign(fname=df["fname"].astype(str), label=df["label"].astype(str))
        exact = d.drop_duplicates(["fname", "label"]).set_index(["fname", "label"])[have]
        clip = d.groupby("fname")[have].mean()
        keys = pd.MultiIndex.from_arrays([g["query"].astype(str), g["query_class"].astype(str)])
        found = keys.isin(exact.index)
        vals = exact.reindex(keys).to_numpy(dtype=float, copy=True)
        if (~found).any():
            vals[~found] = clip.reindex(g["query"].astype(str)[~found]).to_numpy(dtype=float)
        out.loc[g.index, have] = vals
    return out


# --------------------------------------------------------------------------- Spearman and the bootstrap


def _centred_ranks(x: np.ndarray) -> np.ndarray:
    r = sps.rankdata(x)
    return r - r.mean()


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho of the finite pairs (average ranks for ties); NaN when undefined
    (fewer than 2 pairs or a constant side)."""
    return float(_rhos(x, y[:, None])[0])


def _rhos(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """:func:`_rho` of ``x`` (n,) with every column of ``ys`` (n, k): the columns defined
    wherever ``x`` is are ranked together (one call), the others one by one."""
    out = np.full(ys.shape[1], np.nan)
    fx = np.isfinite(x)
    fy = np.isfinite(ys)
    full = (fy | ~fx[:, None]).all(axis=0)  # defined wherever x is
    if fx.sum() >= 2 and full.any():
        rx = _centred_ranks(x[fx])
        ry = sps.rankdata(ys[fx][:, full], axis=0)
        ry -= ry.mean(axis=0)
        d = np.sqrt(float(rx @ rx) * np.einsum("ij,ij->j", ry, ry))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[full] = np.where(d > 0, (rx @ ry) / d, np.nan)
    for k in np.flatnonzero(~full):
        ok = fx & fy[:, k]
        if ok.sum() < 2:
            continue
        rx, ry = _centred_ranks(x[ok]), _centred_ranks(ys[ok, k])
        d = math.sqrt(float(rx @ rx) * float(ry @ ry))
        if d > 0:
            out[k] = float(rx @ ry) / d
    return out


def _p(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    p = float(sps.spearmanr(x[ok], y[ok]).pvalue)
    return p if math.isfinite(p) else math.nan


def _draws(n_judgements: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, J) how often each judgement is drawn (J draws with replacement each)."""
    rng = np.random.default_rng(int(seed))
    idx = rng.integers(0, n_judgements, size=(int(n_resamples), n_judgements))
    idx += (np.arange(int(n_resamples)) * n_judgements)[:, None]
    return np.bincount(idx.ravel(), minlength=int(n_resamples) * n_judgements).reshape(-1, n_judgements)


def _interval(rep: np.ndarray, confidence: float) -> tuple[float, float, int]:
    ok = rep[np.isfinite(rep)]
    if ok.size < 2:
        return math.nan, math.nan, int(ok.size)
    a = (1.0 - float(confidence)) / 2.0
    lo, hi = np.quantile(ok, [a, 1.0 - a])
    return float(lo), float(hi), int(ok.size)


def agreement(
    ratings: pd.DataFrame,
    per_query: Mapping[str, pd.DataFrame],
    n_resamples: int = St.DEFAULT_RESAMPLES,
    confidence: float = St.DEFAULT_CONFIDENCE,
    seed: int = St.DEFAULT_SEED,
) -> pd.DataFrame:
    """Spearman's rho between ratings and each metric, per system and per query, with a
    bootstrap percentile interval over judgements (module docstring). ``ratings``:
    :func:`soundsim.listen.db.read_ratings`; ``per_query``: system id -> its per-query frame
    (:func:`read_per_query_files`). One row per metric and level (:data:`COLUMNS`), metrics in
    canonical order, each metric's system row first."""
    if int(n_resamples) < 1 or not 0.0 < float(confidence) < 1.0:
        raise ListeningError(f"need n_resamples >= 1 and 0 < confidence < 1, got {n_resamples}, {confidence}")
    if ratings.empty:
        raise ListeningError("no ratings to correlate")
    cols = metric_columns(per_query)
    if not cols:
        raise ListeningError("no per-query metric columns: give the per_query.parquet of the rated systems")
    ratings = ratings.reset_index(drop=True)
    jcode, _ = pd.factorize(ratings["judgement_id"], sort=True)
    scode, systems = pd.factorize(ratings["system"].astype(str), sort=True)
    n_j, n_s = int(jcode.max()) + 1, len(systems)
    x = ratings["rating"].to_numpy(dtype=float)
    counts = _draws(n_j, n_resamples, seed)  # (B, J)
    sign = np.array([1.0 if measures.higher_is_better(measures.average_of(c)) else -1.0 for c in cols])

    # system level: mean rating per system (S,) and its replicates (B, S); oriented macro values (S, k)
    rsum = np.zeros((n_j, n_s))
    rnum = np.zeros((n_j, n_s))
    np.add.at(rsum, (jcode, scode), x)
    np.add.at(rnum, (jcode, scode), 1.0)
    mean_rating = rsum.sum(axis=0) / rnum.sum(axis=0)
    cf = counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rep_mean = (cf @ rsum) / (cf @ rnum)
    y_sys = system_values(per_query, cols).reindex(list(systems)).to_numpy(dtype=float) * sign
    # query level: oriented per-rating values (N, k)
    y_q = query_values(ratings, per_query, cols).to_numpy(dtype=float) * sign

    B = counts.shape[0]
    rep_sys = np.empty((B, len(cols)))
    rep_q = np.empty((B, len(cols)))
    for b in range(B):
        rep_sys[b] = _rhos(rep_mean[b], y_sys)
        r = np.repeat(np.arange(x.size), counts[b, jcode])  # each rating as often as its judgement was drawn
        rep_q[b] = _rhos(x[r], y_q[r])
    est_sys, est_q = _rhos(mean_rating, y_sys), _rhos(x, y_q)

    out: list[dict[str, Any]] = []
    for k, col in enumerate(cols):
        for level, xs, ys, est, rep in (("system", mean_rating, y_sys[:, k], est_sys, rep_sys),
                                        ("query", x, y_q[:, k], est_q, rep_q)):
            lo, hi, nv = _interval(rep[:, k], confidence)
            out.append({"metric": measures.average_of(col), "level": level,
                        "n": int((np.isfinite(xs) & np.isfinite(ys)).sum()), "rho": float(est[k]),
                        "rho_lo": lo, "rho_hi": hi, "p": _p(xs, ys), "column": col, "negated": bool(sign[k] < 0),
                        "n_valid": nv})
    return pd.DataFrame(out, columns=COLUMNS)


# --------------------------------------------------------------------------- figure and files


def plot_agreement(table: pd.DataFrame, path_stem: str | Path, collection: str = "",
                   confidence: float = St.DEFAULT_CONFIDENCE) -> list[Path]:
    """"Which metric agrees with listeners": one panel per level (per system, per query), one
    row per metric (canonical order, top to bottom), rho with its bootstrap interval; metrics
    that were negated (lower is better) are marked. Writes ``<stem>.png`` (150 dpi) and ``.pdf``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = list(dict.fromkeys(table["metric"]))
    n = len(metrics)
    fig = Figure(figsize=(10, 1.8 + 0.32 * n), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(LEVELS), sharey=True, squeeze=False)[0]
    y = np.arange(n)[::-1]  # first metric on top
    labels = []
    for m in metrics:
        neg = bool(table.loc[table["metric"] == m, "negated"].iloc[0])
        labels.append(f"{m} (negated)" if neg else m)
    colours = {"system": "#1f5f8b", "query": "#b5562b"}
    for ax, level in zip(axes, LEVELS, strict=True):
        t = table[table["level"] == level].set_index("metric").reindex(metrics)
        rho = t["rho"].to_numpy(float)
        lo, hi = t["rho_lo"].to_numpy(float), t["rho_hi"].to_numpy(float)
        ok = np.isfinite(rho)
        err = np.vstack([np.where(np.isfinite(lo), rho - lo, 0), np.where(np.isfinite(hi), hi - rho, 0)])
        ax.axvline(0, color="0.5", lw=0.8)
        ax.errorbar(rho[ok], y[ok], xerr=np.abs(err[:, ok]), fmt="o", color=colours[level],
                    ecolor=colours[level], capsize=3, lw=1.3, ms=5)
        for yi, r in zip(y, rho, strict=True):
            ax.annotate("n/a" if not math.isfinite(r) else f"{r:+.2f}", (r if math.isfinite(r) else 0, yi),
                        xytext=(0, 5), textcoords="offset points", ha="center", fontsize=7)
        ns = sorted(set(t["n"].dropna().astype(int)))
        n_txt = ", ".join(map(str, ns)) if ns else "0"
        what = "mean rating vs macro metric, n = " + n_txt + " systems" if level == "system" else \
            "rating vs the query's value, n = " + n_txt + " ratings"
        ax.set_title(f"per {level}: {what}", fontsize=9)
        ax.set_xlim(-1.08, 1.08)
        ax.set_xlabel(f"Spearman \u03c1 ({St.confidence_text(confidence)} bootstrap interval over judgements)",
                      fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].set_ylim(-0.7, n - 0.3)
    where = f" on {collection}" if collection else ""
    fig.suptitle(f"Which metric agrees with listeners{where}? (\u03c1 > 0: the metric orders as listeners do; "
                 f"lower-is-better metrics negated)", fontsize=10)
    from soundsim.figures import save

    return save(fig, path_stem, tight=False)


def write_agreement(
    ratings_db: str | Path,
    per_query: Iterable[str | Path],
    table_path: str | Path,
    figure_stem: str | Path,
    collection: str = "",
    n_resamples: int = St.DEFAULT_RESAMPLES,
    confidence: float = St.DEFAULT_CONFIDENCE,
    seed: int = St.DEFAULT_SEED,
) -> dict[str, Path]:
    """Read the ratings database and the rated systems' ``per_query.parquet`` files, write the
    table (6 decimals, NaN as ``nan``) and the figure. Ratings of a system without a file are
    left out (the workflow declares the file of every rated system)."""
    if not Path(ratings_db).is_file():
        raise ListeningError(f"{ratings_db}: no ratings database (rate some lists with `soundsim listen` first)")
    ratings = db.read_ratings(ratings_db)
    if ratings.empty:
        raise ListeningError(f"{ratings_db}: the database holds no ratings yet")
    pq = read_per_query_files(per_query)
    missing = sorted(set(ratings["system"].astype(str)) - set(pq))
    if missing:
        log.warning("listening_metrics: no per_query.parquet for %d rated system(s), their ratings are left out: %s",
                    len(missing), ", ".join(missing))
    table = agreement(ratings, pq, n_resamples, confidence, seed)
    write_csv_atomic(table, table_path, float_format="%.6f")
    png, pdf = plot_agreement(table, figure_stem, collection, confidence)
    best = table.dropna(subset=["rho"]).sort_values("rho", ascending=False).groupby("level").head(1)
    log.info("listening_metrics: %d ratings of %d systems, %d metrics; best agreement %s", len(ratings),
             ratings["system"].nunique(), table["metric"].nunique(),
             "; ".join(f"{r.level}: {r.metric} rho {r.rho:+.2f}" for r in best.itertuples()))
    return {"table": Path(table_path), "png": png, "pdf": pdf}
