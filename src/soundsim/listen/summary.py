"""Listening ratings against the objective metrics: ``tables/listening.csv``, ``tables/listening.json``
and ``figures/listening.png/.pdf`` (what the ``listening`` workflow rule writes).

Per system (``<model>/<variation>/<setting>``), :func:`summarize` gives the number of
ratings, listeners and queries, the mean rating (1-5) with a 95 % t confidence interval
(NaN with a single rating), how often its list was picked as best, the mean AP@15 of the
rated queries and the system's macro MAP@15 (from its ``summary.json``, else the value
stored with the ratings; the ``listening_summary`` rule passes the declared
``summary.json`` of every rated system). :func:`correlations` gives Spearman's rank correlation between
mean rating and MAP@15 over systems, and between each rating and that query's AP@15.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from soundsim import layout as L
from soundsim.errors import SoundsimError
from soundsim.fileutil import atomic_path, write_csv_atomic, write_text_atomic
from soundsim.listen import db

log = logging.getLogger(__name__)

CONFIDENCE = 0.95
COLUMNS = [
    "system", "model", "variation", "setting", "aggregation", "pca", "search", "n_ratings", "n_listeners",
    "n_queries", "mean_rating", "sd_rating", "ci_low", "ci_high", "n_best", "best_share", "mean_ap@15",
    "map@15", "rank_rating", "rank_map@15",
]


class ListeningError(SoundsimError):
    """The ratings cannot be summarised (no database, no ratings)."""


def _ci(x: np.ndarray, level: float = CONFIDENCE) -> tuple[float, float]:
    n = x.size
    if n < 2:
        return math.nan, math.nan
    m, se = float(np.mean(x)), float(np.std(x, ddof=1)) / math.sqrt(n)
    h = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    return m - h, m + h


def _summaries_by_system(summaries: Iterable[str | Path] | None) -> dict[str, Path]:
    """System id (``<model>/<variation>/<setting>``) -> its summary.json, from the given files."""
    return {L.setting_files_of(p).id: Path(p) for p in summaries or ()}


def _map15(summaries: dict[str, Path], system: str) -> float:
    """The system's macro MAP@15 from its summary.json (:func:`soundsim.layout.read_summary`;
    a malformed file is an error naming it), NaN when no summary is given for it."""
    path = summaries.get(system)
    if path is None:
        return math.nan
    return L.read_summary(path).macro.get("map@15", math.nan)


def summarize(ratings: pd.DataFrame, summaries: Iterable[str | Path] | None = None) -> pd.DataFrame:
    """One row per rated system (:data:`COLUMNS`), best mean rating first.
    ``summaries``: summary.json files of (some of) the rated systems; a system's
    MAP@15 comes from its file, else from the value stored with its ratings."""
    if ratings.empty:
        raise ListeningError("no ratings to summarise")
    by_system = _summaries_by_system(summaries)
    picked = ratings.groupby("judgement_id")["best_position"].first().notna()
    rows: list[dict[str, Any]] = []
    for sid, g in ratings.groupby("system", sort=True):
        r = g["rating"].to_numpy(dtype=float)
        lo, hi = _ci(r)
        shown_with_pick = int(picked.reindex(g["judgement_id"].unique()).sum())
        map15 = _map15(by_system, str(sid))
        if math.isnan(map15):
            stored = pd.to_numeric(g["map"], errors="coerce").dropna()
            map15 = float(stored.iloc[-1]) if len(stored) else math.nan
        first = g.iloc[0]
        rows.append({
            "system": sid, "model": first["model"], "variation": first["variation"], "setting": first["setting"],
            "aggregation": first["aggregation"], "pca": str(first["pca"]), "search": first["search"],
            "n_ratings": int(r.size), "n_listeners": int(g["listener"].nunique()),
            "n_queries": int(g["query"].nunique()), "mean_rating": float(r.mean()),
            "sd_rating": float(r.std(ddof=1)) if r.size > 1 else math.nan, "ci_low": lo, "ci_high": hi,
            "n_best": int(g["best"].sum()),
            "best_share": float(g["best"].sum() / shown_with_pick) if shown_with_pick else math.nan,
            "mean_ap@15": float(pd.to_numeric(g["ap"], errors="coerce").mean()),
            "map@15": map15,
        })
    out = pd.DataFrame(rows, columns=COLUMNS[:-2])
    out["rank_rating"] = out["mean_rating"].rank(ascending=False, method="average")
    out["rank_map@15"] = out["map@15"].rank(ascending=False, method="average")
    return out.sort_values(["mean_rating", "system"], ascending=[False, True]).reset_index(drop=True)[COLUMNS]


def _spearman(a: Any, b: Any) -> dict[str, Any]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n < 2 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return {"rho": None, "p": None, "n": n}
    res = stats.spearmanr(a[ok], b[ok])
    p = float(res.pvalue) if n >= 3 and math.isfinite(float(res.pvalue)) else None
    return {"rho": float(res.statistic), "p": p, "n": n}


def correlations(ratings: pd.DataFrame, table: pd.DataFrame) -> dict[str, Any]:
    """Spearman correlations: systems' mean rating vs MAP@15, and every rating vs its query's AP@15
    (``rho``/``p`` None when undefined: fewer than 2 pairs or a constant side; ``p`` needs 3)."""
    return {
        "systems_mean_rating_vs_map@15": _spearman(table["mean_rating"], table["map@15"]),
        "ratings_vs_query_ap@15": _spearman(ratings["rating"], pd.to_numeric(ratings["ap"], errors="coerce")),
    }


def _fmt_rho(c: dict[str, Any]) -> str:
    if c["rho"] is None:
        return f"undefined (n = {c['n']})"
    p = f", p = {c['p']:.3g}" if c["p"] is not None else ""
    return f"{c['rho']:+.2f} (n = {c['n']}{p})"


def plot(table: pd.DataFrame, corr: dict[str, Any], path_stem: str | Path, collection: str = "") -> list[Path]:
    """Two panels sharing the systems axis: mean rating with its 95 % CI, and MAP@15;
    Spearman's rho over systems in the title. Writes ``<stem>.png`` (150 dpi) and ``.pdf``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = table.iloc[::-1].reset_index(drop=True)  # best rated on top
    n = len(t)
    fig = Figure(figsize=(10, 1.6 + 0.55 * n), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, sharey=True, width_ratios=[1.3, 1])
    y = np.arange(n)
    m = t["mean_rating"].to_numpy(float)
    lo, hi = t["ci_low"].to_numpy(float), t["ci_high"].to_numpy(float)
    err = np.vstack([np.where(np.isfinite(lo), m - lo, 0), np.where(np.isfinite(hi), hi - m, 0)])
    ax1.errorbar(m, y, xerr=err, fmt="o", color="#1f5f8b", ecolor="#1f5f8b", capsize=4, lw=1.5)
    for yi, (mi, nr) in enumerate(zip(m, t["n_ratings"], strict=True)):
        ax1.annotate(f"{mi:.2f} (n={nr})", (mi, yi), xytext=(0, 7), textcoords="offset points", ha="center",
                     fontsize=8)
    ax1.set_xlim(db.RATING_MIN - 0.2, db.RATING_MAX + 0.2)
    ax1.set_xlabel(f"mean rating, {db.RATING_MIN}-{db.RATING_MAX} (95 % CI)")
    ax1.set_yticks(y, [f"{r.model} / {r.variation}\n{r.aggregation}, PCA {r.pca}, {str(r.search).upper()}"
                       for r in t.itertuples(index=False)], fontsize=8)
    ax1.set_ylim(-0.6, n - 0.4)
    ax1.grid(axis="x", alpha=0.3)
    mp = t["map@15"].to_numpy(float)
    ax2.barh(y, np.nan_to_num(mp), color="#7fb069", height=0.5)
    for yi, v in enumerate(mp):
        ax2.annotate("n/a" if not math.isfinite(v) else f"{v:.3f}", (0 if not math.isfinite(v) else v, yi),
                     xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    top = np.nanmax(mp) if np.isfinite(mp).any() else 1.0
    ax2.set_xlim(0, max(0.05, min(1.0, top * 1.25)))
    ax2.set_xlabel("macro MAP@15 (higher is better)")
    ax2.grid(axis="x", alpha=0.3)
    where = f" on {collection}" if collection else ""
    fig.suptitle(f"Listening test{where}: mean rating vs MAP@15 per system; Spearman \u03c1 over systems "
                 f"{_fmt_rho(corr['systems_mean_rating_vs_map@15'])}", fontsize=10)
    out = []
    for ext in ("png", "pdf"):
        dst = Path(f"{path_stem}.{ext}")
        with atomic_path(dst) as tmp:
            fig.savefig(tmp, format=ext, dpi=150)
        out.append(dst)
    return out


def write_listening(
    ratings_db: str | Path,
    table_path: str | Path,
    json_path: str | Path,
    figure_stem: str | Path,
    summaries: Iterable[str | Path] | None = None,
    collection: str = "",
) -> dict[str, Path]:
    """Read the ratings database and write the table (6 decimals, NaN as ``nan``), the
    correlations (JSON) and the figure. ``summaries``: see :func:`summarize`."""
    if not Path(ratings_db).is_file():
        raise ListeningError(f"{ratings_db}: no ratings database (rate some lists with `soundsim listen` first)")
    ratings = db.read_ratings(ratings_db)
    if ratings.empty:
        raise ListeningError(f"{ratings_db}: the database holds no ratings yet")
    table = summarize(ratings, summaries)
    corr = correlations(ratings, table)
    write_csv_atomic(table, table_path, float_format="%.6f")
    info = {
        "ratings_db": str(ratings_db),
        "n_judgements": int(ratings["judgement_id"].nunique()),
        "n_ratings": len(ratings),
        "n_listeners": int(ratings["listener"].nunique()),
        "n_queries": int(ratings["query"].nunique()),
        "n_systems": len(table),
        "confidence": CONFIDENCE,
        "spearman": corr,
    }
    write_text_atomic(json_path, json.dumps(info, indent=2) + "\n")
    png, pdf = plot(table, corr, figure_stem, collection)
    log.info("listening: %d ratings of %d systems by %d listener(s); Spearman rho (mean rating vs MAP@15) %s",
             len(ratings), len(table), info["n_listeners"], _fmt_rho(corr["systems_mean_rating_vs_map@15"]))
    return {"table": Path(table_path), "json": Path(json_path), "png": png, "pdf": pdf}
