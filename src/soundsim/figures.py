"""Figures of a collection's results (Araz et al. 2024, Fig. 1 and Fig. 2, and more).

Every function draws one figure on its own :class:`matplotlib.figure.Figure`
(Agg canvas; pyplot and its global state are never used), saves it as
``<path>.png`` (150 dpi) and ``<path>.pdf`` atomically, closes nothing global
and returns the two paths. Inputs are the DataFrames of :mod:`soundsim.tables`;
empty input raises :class:`FiguresError`.

* :func:`grid_bars` (Fig. 1, as in the paper): macro MAP@15 of one
  model/variation as grouped bars, processing (aggregation / PCA) on x, one
  bar per search (colour), bootstrap confidence intervals as error bars, the
  best setting marked; one y range for every model when ``ymax`` is given;
* :func:`grid_heatmap` (Fig. 1 as a table): the same values as an annotated
  heatmap, on a colour range shared by all models when ``vmin``/``vmax`` are given;
* :func:`family_heatmap` (Fig. 2): family-averaged MAP@15, model x family;
* :func:`model_comparison`: MAP@15, MAP@150, MR1 per model (fixed and best setting),
  with confidence intervals as error bars where the table has them;
* :func:`per_label`: class-wise MAP@15, label x model;
* :func:`significance_matrix`: the paired tests of ``pairwise.csv`` as model x model
  matrices of differences, significant ones (Holm) marked;
* :func:`rank_stability`: each model's rank by MAP@15 with the bootstrap interval of the
  rank, its group letters (statistically tied models share one) and P(first), from
  ``models.csv`` (:func:`soundsim.tables.add_ranks`);
* :func:`precision_at_k` / :func:`precision_figure`: macro precision@k
  (k = 1..K) per model at its best and at the fixed setting, from the top-K
  lists of ``rankings.h5`` and the manifest's labels;
* :func:`index_figure` / :func:`index_plot`: approximate search (``tables/indexes.csv``),
  MAP@15 against memory per sound and against query latency, per model and index type;
* :func:`heads_comparison` / :func:`heads_comparison_figure`: each learned similarity head
  against its frozen base model (``tables/heads.csv``), per subset of labels, intervals as error
  bars, significant differences (Holm) marked;
* :func:`head_training` / :func:`head_training_figure`: the heads' training loss and validation
  MAP@15 per epoch, the kept epoch marked;
* :func:`make_figures`: all of them (but the last three) for one collection, from the tables the
  ``tables`` rule wrote (:func:`soundsim.tables.write_tables`), the settings'
  ``rankings.h5`` and the manifest; nothing is recomputed (the best setting of
  Fig. 1 is the one ``best_settings.csv`` names).

The ``*_figure`` functions return the drawn :class:`~matplotlib.figure.Figure`
without saving it (what the tests inspect); the functions without the suffix
draw and :func:`save`.
"""

from __future__ import annotations

import logging
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

from soundsim import measures
from soundsim import layout as L
from soundsim import metrics as M
from soundsim import tables as T
from soundsim import training_data as TD
from soundsim.errors import SoundsimError
from soundsim.fileutil import atomic_path
from soundsim.store import RankingsFile, read_rankings

log = logging.getLogger(__name__)

DPI = 150
CMAP = "viridis"
SEARCH_LABELS = {"mips": "MIPS", "mcss": "MCSS", "nns": "NNS"}
#: one colour per similarity search, the same in every figure (seaborn's "deep" palette)
SEARCH_COLOURS = {"mips": "#4c72b0", "mcss": "#dd8452", "nns": "#55a868"}


class FiguresError(SoundsimError):
    """A figure cannot be drawn from the given input (empty or lacking columns)."""


# --------------------------------------------------------------------------- helpers


def _check(df: pd.DataFrame | None, cols: Sequence[str], what: str) -> pd.DataFrame:
    if df is None or len(df) == 0:
        raise FiguresError(f"{what}: no data to plot (empty input)")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise FiguresError(f"{what}: input lacks column(s) {', '.join(missing)}")
    return df


def metric_label(metric: str) -> str:
    """``map@15`` -> ``MAP@15 (higher is better)``; ``mr1`` -> ``MR1 (lower is better)``."""
    m = re.match(r"^map@(\d+)$", metric)
    if m:
        return f"MAP@{m.group(1)} (higher is better)"
    if metric == "mr1":
        return "MR1: mean rank of 1st relevant clip (lower is better)"
    return metric


def _pretty(name: Any) -> str:
    return str(name).replace("_", " ")


def _settings_text(df: pd.DataFrame, col: str = "setting") -> str:
    if col not in df.columns:
        return ""
    return "; ".join(T.setting_label(s) for s in sorted(df[col].astype(str).unique()))


def _settings_by_model(df: pd.DataFrame, col: str = "setting", width: int = 110) -> str:
    """Which setting applies to which model: ``aisfx, musicnn: mean / PCA 100 /
    MCSS; freesound: no aggregation / PCA 100 / MCSS`` (``every model: ...``
    when they share one); lines break between the models' groups at about
    ``width`` characters; '' without ``col``."""
    if col not in df.columns or "model" not in df.columns:
        return _settings_text(df, col)
    by_setting: dict[str, list[str]] = {}
    for model, setting in zip(df["model"].astype(str), df[col].astype(str), strict=True):
        names = by_setting.setdefault(setting, [])
        if model not in names:
            names.append(model)
    if len(by_setting) == 1:
        return f"every model: {T.setting_label(next(iter(by_setting)))}"
    lines: list[str] = []
    for s, models in sorted(by_setting.items(), key=lambda kv: kv[1][0]):
        piece = textwrap.fill(f"{', '.join(models)}: {T.setting_label(s)}", width, break_long_words=False)
        if lines and len(lines[-1]) + 2 + len(piece) <= width and "\n" not in piece:
            lines[-1] += "; " + piece
        else:
            lines.append(piece)
    return "\n".join(lines)


def _level(confidence: float | None) -> str:
    """``95 % `` for 0.95 (names the intervals' level), '' when unknown."""
    return f"{100 * float(confidence):g} % " if confidence else ""


def _title(what: str, collection: str | None, setting: str = "", prefix: str = "setting: ") -> str:
    """``what (collection)``, with a second line ``prefix + setting`` when given."""
    title = f"{what} ({collection})" if collection else what
    return title + (f"\n{prefix}{setting}" if setting else "")


def save(fig: Figure, path: str | Path, tight: bool = True) -> list[Path]:
    """Save ``fig`` as ``<path>.png`` (150 dpi) and ``<path>.pdf`` (any suffix
    of ``path`` is replaced), each atomically, with a tight bounding box
    (unless ``tight`` is false: the whole figure); the figure is cleared afterwards."""
    base = Path(path)
    if base.suffix.lower() in (".png", ".pdf"):
        base = base.with_suffix("")
    out = []
    for fmt in ("png", "pdf"):
        dst = base.with_name(base.name + "." + fmt)
        with atomic_path(dst) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight" if tight else None, pad_inches=0.1)
        out.append(dst)
    fig.clear()
    return out


def _new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (no pyplot, no global figure registry)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _rotate_xticks(ax: Axes, angle: float = 30) -> None:
    """Rotate the bottom (and top, if shown) tick labels so long names do not
    overlap: bottom ones hang down-left of their tick, top ones rise up-right."""
    for tick in ax.xaxis.get_major_ticks():
        tick.label1.set(rotation=angle, ha="right", rotation_mode="anchor")
        tick.label2.set(rotation=angle, ha="left", rotation_mode="anchor")


def _annotated_heatmap(
    ax: Axes, table: pd.DataFrame, fmt: str, cbar_label: str, annot_size: float, vmin: float | None = None,
    vmax: float | None = None, cbar: Mapping[str, Any] | None = None,
) -> None:
    data = table.astype(float)
    sns.heatmap(
        data, ax=ax, annot=True, fmt=fmt, cmap=CMAP, vmin=vmin, vmax=vmax, linewidths=0.5, linecolor="white",
        annot_kws={"size": annot_size}, cbar_kws={"label": cbar_label, "shrink": 0.9, **(cbar or {})},
    )
    ax.set_facecolor("0.85")  # NaN cells: light grey


# --------------------------------------------------------------------------- Fig. 1


def processing_label(aggregation: Any, pca: Any) -> str:
    """``('mean', '100')`` -> ``mean / PCA 100``; PCA none -> ``no PCA``."""
    p = "no PCA" if str(pca) == "none" else f"PCA {pca}"
    return p if str(aggregation) == "none" else f"{aggregation} / {p}"


def _one_variation(df: pd.DataFrame, metric: str, what: str) -> tuple[pd.DataFrame, str, str]:
    df = _check(df, ["model", "variation", "aggregation", "pca", "search", metric], what)
    pairs = df[["model", "variation"]].drop_duplicates()
    if len(pairs) != 1:
        raise FiguresError(
            f"{what}: expected the settings of one model and variation, got {len(pairs)}: "
            + ", ".join(f"{m}/{v}" for m, v in pairs.itertuples(index=False))
        )
    model, variation = pairs.iloc[0]
    return df, str(model), str(variation)


def _best_parts(best: str | None) -> L.Setting | None:
    """The parts of the setting name ``best`` (from ``best_settings.csv``), or None
    when no best setting is given; :class:`FiguresError` when it is not a setting name."""
    if best is None:
        return None
    try:
        return L.parse_setting(best)
    except L.LayoutError as e:
        raise FiguresError(f"best setting: {e}") from None


def grid_table(df_one_variation: pd.DataFrame, metric: str = "map@15") -> pd.DataFrame:
    """``metric`` as a search (rows: MIPS, MCSS, NNS) x processing (columns,
    aggregation then PCA in the grid order) table."""
    df = T.sort_settings(df_one_variation)
    cols = list(dict.fromkeys(processing_label(a, p) for a, p in zip(df["aggregation"], df["pca"], strict=True)))
    rows = [s for s in T.SEARCH_ORDER if s in set(df["search"])] + sorted(set(df["search"]) - set(T.SEARCH_ORDER))
    table = pd.DataFrame(np.nan, index=[SEARCH_LABELS.get(s, s) for s in rows], columns=cols)
    for _, r in df.iterrows():
        table.loc[SEARCH_LABELS.get(r["search"], r["search"]), processing_label(r["aggregation"], r["pca"])] = r[metric]
    return table


def grid_bars_table(df_one_variation: pd.DataFrame, metric: str = "map@15", best: str | None = None) -> pd.DataFrame:
    """The bars of Fig. 1: one row per setting in the grid order, columns
    ``processing`` (:func:`processing_label`), ``search``, ``value``, ``lo``,
    ``hi`` (the interval columns ``<metric>_lo/_hi``; NaN when absent) and
    ``best`` (True on the setting named ``best``, e.g. the model's best setting
    of ``best_settings.csv``; all False when None or not among the rows)."""
    df, _, _ = _one_variation(df_one_variation, metric, "grid_bars")
    df = T.sort_settings(df)
    b = _best_parts(best)
    nan = np.full(len(df), np.nan)
    out = pd.DataFrame({
        "processing": [processing_label(a, p) for a, p in zip(df["aggregation"], df["pca"], strict=True)],
        "search": df["search"].astype(str).to_numpy(),
        "value": df[metric].to_numpy(dtype=float),
        "lo": df[f"{metric}_lo"].to_numpy(dtype=float) if f"{metric}_lo" in df.columns else nan,
        "hi": df[f"{metric}_hi"].to_numpy(dtype=float) if f"{metric}_hi" in df.columns else nan,
    })
    out["best"] = False
    if b is not None:
        out["best"] = ((df["aggregation"].astype(str) == b.aggregation) & (df["pca"].astype(str) == b.pca)
                       & (df["search"].astype(str) == b.search)).to_numpy()
    return out


def grid_bars_figure(
    df_one_variation: pd.DataFrame, collection: str | None = None, metric: str = "map@15", ymax: float | None = None,
    confidence: float | None = None, best: str | None = None,
) -> Figure:
    """The paper's Fig. 1 for one model and variation (drawn, not saved):
    macro ``metric`` (MAP@15) of every evaluated setting as grouped bars,
    one group per processing (x: aggregation / PCA, grid order), one bar per
    similarity search (colour: MIPS, MCSS, NNS, the same in every figure).
    Error bars: the bootstrap intervals ``<metric>_lo/_hi`` where the table
    has them. ``best``: the name of the setting to mark (the model's best
    setting as ``best_settings.csv`` names it; :func:`make_figures` passes it
    for the model's best variation), drawn with a black outline and a star
    and named with its value in the subtitle; None: no mark.
    ``ymax``: the top of the y axis (pass the same value for every model so
    the figures compare; default: this variation's highest bar or interval)."""
    df, model, variation = _one_variation(df_one_variation, metric, "grid_bars")
    bars = grid_bars_table(df, metric, best)
    groups = list(dict.fromkeys(bars["processing"]))
    searches = [s for s in T.SEARCH_ORDER if s in set(bars["search"])] + sorted(
        set(bars["search"]) - set(T.SEARCH_ORDER))
    n_s = len(searches)
    width = 0.8 / n_s
    fig = _new_figure(max(5.0, 0.32 * len(bars) + 2.4), 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    has_ci = bool(np.isfinite(bars["lo"]).any() or np.isfinite(bars["hi"]).any())
    for si, s in enumerate(searches):
        sub = bars[bars["search"] == s].set_index("processing").reindex(groups)
        values = sub["value"].to_numpy(dtype=float)
        err = None
        if has_ci:
            err = np.clip(np.nan_to_num(np.vstack([values - sub["lo"].to_numpy(dtype=float),
                                                   sub["hi"].to_numpy(dtype=float) - values]), nan=0.0), 0.0, None)
        xs = x - 0.4 + width * (si + 0.5)
        ax.bar(xs, np.nan_to_num(values), width=width * 0.92, color=SEARCH_COLOURS.get(s, f"C{si}"),
               label=SEARCH_LABELS.get(s, s), yerr=err,
               error_kw={"ecolor": "0.2", "elinewidth": 0.8, "capsize": 2, "capthick": 0.8})
        for k, (xi, v) in enumerate(zip(xs, values, strict=True)):
            if not np.isfinite(v):
                ax.text(xi, 0, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
            elif bool(sub["best"].iloc[k]):
                top = v + (err[1][k] if err is not None else 0.0)
                ax.bar(xi, v, width=width * 0.92, fill=False, edgecolor="black", linewidth=1.8, zorder=3)
                ax.plot(xi, top, marker="*", markersize=11, color="black", linestyle="none", zorder=4,
                        label="best setting", clip_on=False)
    tops = np.concatenate([bars["value"].to_numpy(dtype=float), bars["hi"].to_numpy(dtype=float)])
    top = float(np.nanmax(tops)) if np.isfinite(tops).any() else 1.0
    ax.set_ylim(0, ymax if ymax else (top * 1.12 if top > 0 else 1.0))
    ax.set_xticks(x, groups, fontsize=8)
    if len(groups) > 3:
        _rotate_xticks(ax, 30)
    ax.set_xlabel("embedding processing (aggregation / PCA)")
    ax.set_ylabel(f"macro {metric_label(metric)}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: names[i] == "best setting")  # searches first, then the star
    fig.legend([handles[i] for i in order], [names[i] for i in order], loc="outside lower center", ncols=n_s + 1,
               fontsize=8, frameon=False, title="similarity search", title_fontsize=8)
    marked = bars[bars["best"]]
    sub = ""
    if len(marked):
        b = marked.iloc[0]
        ci = f" [{b['lo']:.3f}, {b['hi']:.3f}]" if np.isfinite(b["lo"]) and np.isfinite(b["hi"]) else ""
        sub = f"best (star): {b['processing']} / {SEARCH_LABELS.get(b['search'], b['search'])} = {b['value']:.3f}{ci}"
    if has_ci:
        sub += ("; " if sub else "") + f"error bars: {_level(confidence)}bootstrap confidence intervals"
    ax.set_title(_title(f"{model} / {variation}: macro {metric.upper()} per setting", collection, sub, ""),
                 fontsize=10)
    return fig


def grid_bars(
    df_one_variation: pd.DataFrame, path: str | Path, collection: str | None = None, metric: str = "map@15",
    ymax: float | None = None, confidence: float | None = None, best: str | None = None,
) -> list[Path]:
    """:func:`grid_bars_figure`, saved as ``<path>.png`` and ``.pdf``."""
    return save(grid_bars_figure(df_one_variation, collection, metric, ymax, confidence, best), path)


def grid_heatmap_figure(
    df_one_variation: pd.DataFrame, collection: str | None = None, metric: str = "map@15",
    vmin: float | None = None, vmax: float | None = None, best: str | None = None,
) -> Figure:
    """Fig. 1 as an annotated table (drawn, not saved): macro ``metric``
    (MAP@15) of every evaluated setting, processing (x: aggregation / PCA) by
    search (y). ``vmin``/``vmax``: the colour range (pass the same for every
    model, e.g. 0 and the highest value of all of them, so that colours compare
    across figures; the subtitle says so; default: this variation's own range).
    ``best``: the name of the setting to frame in red (the model's best setting,
    as ``best_settings.csv`` says; :func:`make_figures` passes it for the
    model's best variation), or None: no frame. ``df_one_variation``: rows of
    :func:`soundsim.tables.collect` for a single model and variation."""
    df, model, variation = _one_variation(df_one_variation, metric, "grid_heatmap")
    table = grid_table(df, metric)
    fig = _new_figure(max(4.5, 1.0 * table.shape[1] + 2.2), 0.55 * table.shape[0] + 1.9)
    ax = fig.add_subplot()
    _annotated_heatmap(ax, table, ".3f", metric_label(metric), 9, vmin=vmin, vmax=vmax)
    b = _best_parts(best)
    framed = False
    if b is not None:  # the best setting as the tables rule chose it (best_settings.csv, its tie rule)
        rows, cols = list(table.index), list(table.columns)
        i, j = SEARCH_LABELS.get(b.search, b.search), processing_label(b.aggregation, b.pca)
        framed = i in rows and j in cols
        if framed:
            ax.add_patch(Rectangle((cols.index(j), rows.index(i)), 1, 1, fill=False, edgecolor="red", linewidth=2.2,
                                   clip_on=False))
    ax.set_xlabel("embedding processing (aggregation / PCA)" + ("; red box: best setting" if framed else ""))
    ax.set_ylabel("similarity search")
    _rotate_xticks(ax, 35)
    ax.tick_params(axis="y", labelrotation=0)
    shared = f"colours {vmin:g} to {vmax:.3g}, the same range for every model" if vmin is not None and vmax else ""
    ax.set_title(_title(f"{model} / {variation}: macro {metric.upper()}", collection, shared, ""), fontsize=10)
    return fig


def grid_heatmap(
    df_one_variation: pd.DataFrame, path: str | Path, collection: str | None = None, metric: str = "map@15",
    best: str | None = None, vmin: float | None = None, vmax: float | None = None,
) -> list[Path]:
    """:func:`grid_heatmap_figure`, saved as ``<path>.png`` and ``.pdf``."""
    return save(grid_heatmap_figure(df_one_variation, collection, metric, vmin, vmax, best), path)


# --------------------------------------------------------------------------- Fig. 2


def family_heatmap_figure(families_df: pd.DataFrame, collection: str | None = None,
                          metric: str = "map@15") -> Figure:
    """The paper's Fig. 2 (drawn, not saved): family-averaged ``metric``
    (MAP@15), models (rows, in input order) x families (columns,
    alphabetical), annotated; the subtitle says which setting each model's
    row comes from. ``families_df``: :func:`soundsim.tables.families_table`."""
    df = _check(families_df, ["model", "family", metric], "family_heatmap")
    models = list(dict.fromkeys(df["model"].astype(str)))
    table = df.pivot_table(index="model", columns="family", values=metric, aggfunc="first", sort=True)
    table = table.reindex(models)
    table.columns = [_pretty(c) for c in table.columns]
    n_rows, n_cols = table.shape
    fig = _new_figure(max(5.0, 1.15 * n_cols + 2.6), max(2.4, 0.45 * n_rows + 1.8))
    ax = fig.add_subplot()
    _annotated_heatmap(ax, table, ".3f", metric_label(metric), 9 if n_rows <= 20 else 7)
    ax.set_xlabel("sound family")
    ax.set_ylabel("model")
    _rotate_xticks(ax, 30)
    ax.tick_params(axis="y", labelrotation=0)
    setting = _settings_by_model(df, width=max(60, int(12 * fig.get_figwidth())))
    ax.set_title(_title(f"Family-averaged {metric.upper()} per model", collection, setting, "setting per model: "),
                 fontsize=10)
    return fig


def family_heatmap(
    families_df: pd.DataFrame, path: str | Path, collection: str | None = None, metric: str = "map@15"
) -> list[Path]:
    """:func:`family_heatmap_figure`, saved as ``<path>.png`` and ``.pdf``."""
    return save(family_heatmap_figure(families_df, collection, metric), path)


# --------------------------------------------------------------------------- model comparison


def _bar_values(ax: Axes, ys: np.ndarray, values: np.ndarray, ends: np.ndarray | None = None) -> None:
    """Write each bar's value at its end, or beyond ``ends`` (error bars) when
    given ('n/a' at 0 for NaN)."""
    for k, (yi, v) in enumerate(zip(ys, values, strict=True)):
        nan = math.isnan(v)
        x = 0 if nan else v
        if ends is not None and not nan and np.isfinite(ends[k]):
            x = max(x, float(ends[k]))
        ax.text(x, yi, " n/a" if nan else f" {v:.3g}", va="center", fontsize=7)


def _errors(df: pd.DataFrame, col: str, values: np.ndarray) -> np.ndarray | None:
    """(2, n) error-bar lengths from ``<col>_lo`` / ``<col>_hi`` (0 where NaN), or None."""
    lo_c, hi_c = f"{col}_lo", f"{col}_hi"
    if lo_c not in df.columns or hi_c not in df.columns:
        return None
    lo, hi = df[lo_c].to_numpy(dtype=float), df[hi_c].to_numpy(dtype=float)
    if not (np.isfinite(lo) | np.isfinite(hi)).any():
        return None
    err = np.vstack([values - lo, hi - values])
    return np.clip(np.nan_to_num(err, nan=0.0), 0.0, None)


def _model_tick(r: pd.Series) -> str:
    """``model / variation`` (and :data:`soundsim.training_data.MARKER` when the model was
    trained on the collection's dataset), then the fixed and the best setting it was scored at."""
    name = f"{r['model']} / {r['variation']}" if "variation" in r.index else str(r["model"])
    if str(r.get(TD.FLAG_COLUMN, "")) == "true":
        name += f" {TD.MARKER}"
    lines = [name]
    for col, what in (("setting", "fixed"), ("best_setting", "best")):
        if col in r.index and not pd.isna(r[col]) and str(r[col]):
            lines.append(f"{what}: {T.setting_label(r[col])}")
    return "\n".join(lines)


def model_comparison(models_df: pd.DataFrame, path: str | Path, collection: str | None = None) -> list[Path]:
    """:func:`model_comparison_figure`, saved as ``<path>.png`` and ``.pdf``."""
    return save(model_comparison_figure(models_df, collection), path)


def model_comparison_figure(models_df: pd.DataFrame, collection: str | None = None) -> Figure:
    """MAP@<N> and MR1 per model (drawn, not saved), one panel per metric (horizontal bars):
    each model's variation at the fixed setting (``setting`` column of
    models.csv) and at its best setting (``best_*`` columns; both settings
    are named under the model's name), plus the
    paper's value as a black diamond where ``paper_*`` columns exist. Where
    the table has interval columns (``<metric>_lo/_hi``, ``best_<metric>_lo/_hi``:
    :func:`soundsim.tables.add_intervals`), each bar gets its confidence
    interval as an error bar. A model trained on the collection's dataset
    (``trained_on_collection`` true) is marked :data:`soundsim.training_data.MARKER`
    and the title explains the marker. ``models_df``: :func:`soundsim.tables.models_table`."""
    df = _check(models_df, ["model"], "model_comparison")
    metrics = [m for m in T.metric_columns(df) if measures.is_paper_metric(m)]  # the panel: in the tables
    if not metrics:
        raise FiguresError("model_comparison: input has no map@N / mr1 columns")
    n = len(df)
    labels = [_model_tick(r) for _, r in df.iterrows()]
    y = np.arange(n)
    h = 0.38
    fig = _new_figure(max(7.0, 3.1 * len(metrics) + 2.0), max(2.6, 0.75 * n + 1.6))
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    has_ci = False
    bar_err = {"ecolor": "0.15", "elinewidth": 0.9, "capsize": 2.5, "capthick": 0.9}
    for ax, m in zip(axes, metrics, strict=True):
        fixed_v = df[m].to_numpy(dtype=float)
        best_v = df[f"best_{m}"].to_numpy(dtype=float) if f"best_{m}" in df.columns else None
        fixed_e = _errors(df, m, fixed_v)
        best_e = _errors(df, f"best_{m}", best_v) if best_v is not None else None
        has_ci = has_ci or fixed_e is not None or best_e is not None
        ax.barh(y - h / 2 if best_v is not None else y, np.nan_to_num(fixed_v), height=h, color="#4c72b0",
                label="paper's fixed setting", xerr=fixed_e, error_kw=bar_err)
        if best_v is not None:
            ax.barh(y + h / 2, np.nan_to_num(best_v), height=h, color="#dd8452", label="model's best setting",
                    xerr=best_e, error_kw=bar_err)
        if f"paper_{m}" in df.columns:
            pv = df[f"paper_{m}"].to_numpy(dtype=float)
            ok = ~np.isnan(pv)
            if ok.any():
                ax.scatter(pv[ok], y[ok], marker="D", color="black", s=22, zorder=3, label="paper (FSD50K)")
        fixed_end = fixed_v + fixed_e[1] if fixed_e is not None else None
        best_end = best_v + best_e[1] if best_e is not None else None
        vals = np.concatenate([fixed_v, best_v if best_v is not None else [],
                               df[f"paper_{m}"].to_numpy(dtype=float) if f"paper_{m}" in df.columns else [],
                               fixed_end if fixed_end is not None else [], best_end if best_end is not None else []])
        top = np.nanmax(vals) if np.isfinite(vals).any() else 1.0
        _bar_values(ax, y - h / 2 if best_v is not None else y, fixed_v, fixed_end)
        if best_v is not None:
            _bar_values(ax, y + h / 2, best_v, best_end)
        ax.set_xlim(0, top * 1.25 if top > 0 else 1.0)
        ax.set_xlabel(metric_label(m).replace(" (", "\n("), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].invert_yaxis()
    handles, names = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for hd, nm in zip(*ax.get_legend_handles_labels(), strict=True):
            if nm not in names:
                handles.append(hd)
                names.append(nm)
    fig.legend(handles, names, loc="outside lower center", ncols=min(3, len(names)), fontsize=8, frameon=False)
    flagged = TD.FLAG_COLUMN in df.columns and (df[TD.FLAG_COLUMN].astype(str) == "true").any()
    fig.suptitle(_title("Semantic sound similarity per model (averages of class-wise metrics)"
                        + ("; error bars: bootstrap confidence intervals" if has_ci else ""), collection,
                        f"{TD.MARKER} trained on data that includes this collection: not zero-shot" if flagged else "",
                        ""),
                 fontsize=10)
    return fig


# --------------------------------------------------------------------------- significance


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def significance_tables(pairwise_df: pd.DataFrame, comparison: str, metric: str,
                        order: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Square model x model tables (rows a, columns b, both triangles) of one
    comparison and metric of pairwise.csv: the difference row - column, the
    Holm-corrected p-value and ``significant``. ``order``: the models' order
    (default: first appearance)."""
    df = pairwise_df[(pairwise_df["comparison"] == comparison) & (pairwise_df["metric"] == metric)]
    names = list(order) if order is not None else list(dict.fromkeys(list(df["a"]) + list(df["b"])))
    names = [str(n) for n in names]
    diff = pd.DataFrame(np.nan, index=names, columns=names)
    p = diff.copy()
    sig = pd.DataFrame(False, index=names, columns=names)
    for r in df.itertuples(index=False):
        a, b = str(r.a), str(r.b)
        if a not in diff.index or b not in diff.index:
            continue
        diff.loc[a, b], diff.loc[b, a] = r.diff, -r.diff
        p.loc[a, b] = p.loc[b, a] = r.p_holm
        sig.loc[a, b] = sig.loc[b, a] = bool(r.significant)
    return diff, p, sig


def _panel_order(df: pd.DataFrame, comparison: str, metric: str, order: Sequence[str] | None) -> list[str]:
    """The models of one panel: in ``order`` when given, else best first by the metric."""
    sub = df[(df["comparison"] == comparison) & (df["metric"] == metric)]
    value: dict[str, float] = {}
    for r in sub.itertuples(index=False):
        value[str(r.a)] = float(r.a_value) if hasattr(r, "a_value") else 0.0
        value.setdefault(str(r.b), float(r.b_value) if hasattr(r, "b_value") else 0.0)
    if order is not None:
        return [str(m) for m in order if str(m) in value]
    sign = 1.0 if metric == "mr1" else -1.0
    return sorted(value, key=lambda m: (sign * value[m] if np.isfinite(value[m]) else math.inf, m))


def significance_matrix_figure(
    pairwise_df: pd.DataFrame,
    collection: str | None = None,
    order: Sequence[str] | None = None,
    confidence: float | None = None,
) -> Figure:
    """Which differences are real (drawn, not saved; :func:`significance_matrix` saves): for each comparison of pairwise.csv
    (rows of panels: fixed, best setting) and metric (columns), a model x
    model matrix whose cell (row A, column B) is A - B, coloured by how much
    better A is (blue: A better, red: B better; for MR1 lower is better, so
    the colour follows -difference), annotated with the difference and stars
    for the Holm-corrected p-value (* < 0.05, ** < 0.01, *** < 0.001);
    cells whose difference is not significant at ``1 - confidence`` are pale
    and marked 'n.s.'. Models are ordered best first by each panel's metric
    (``order``: a fixed order instead). The axes say it in words: rows
    "model A (row)", columns "model B (column)". ``pairwise_df``:
    :func:`soundsim.tables.pairwise_table`."""
    df = _check(pairwise_df, ["comparison", "metric", "a", "b", "diff", "p_holm", "significant"], "significance_matrix")
    comparisons = [c for c in ("fixed", "best") if c in set(df["comparison"])] + sorted(
        set(df["comparison"]) - {"fixed", "best"})
    metrics = [m for m in T.metric_names(df["metric"].unique()) if measures.is_paper_metric(m)]
    n = len(set(df["a"].astype(str)) | set(df["b"].astype(str)))
    cell = 0.62 if n <= 8 else 0.48
    font = 8 if n <= 8 else 6
    fig = _new_figure(max(4.0, len(metrics) * (cell * n + 1.6)), max(3.0, len(comparisons) * (cell * n + 1.4) + 0.9))
    axes = fig.subplots(len(comparisons), len(metrics), squeeze=False)
    alpha = 1.0 - float(confidence) if confidence else None
    for ci, comp in enumerate(comparisons):
        for mi, metric in enumerate(metrics):
            ax = axes[ci][mi]
            names = _panel_order(df, comp, metric, order)
            if not names:
                ax.set_axis_off()
                continue
            diff, p, sig = significance_tables(df, comp, metric, names)
            good = -diff if metric == "mr1" else diff  # > 0: row better
            vals = good.to_numpy(dtype=float)
            lim = float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 1.0
            lim = lim if lim > 0 else 1.0
            shown = np.where(sig.to_numpy(), vals, vals * 0.25)  # not significant: pale
            ax.imshow(shown, cmap="RdBu", vmin=-lim, vmax=lim, aspect="equal")
            for i in range(len(names)):
                for j in range(len(names)):
                    if i == j:
                        ax.text(j, i, "-", ha="center", va="center", fontsize=font, color="0.5")
                        continue
                    d = diff.iat[i, j]
                    if not np.isfinite(d):
                        continue
                    fmt = f"{d:+.2f}" if metric == "mr1" else f"{d:+.3f}"
                    mark = _stars(p.iat[i, j]) if sig.iat[i, j] else "n.s."
                    strong = sig.iat[i, j] and abs(vals[i, j]) > 0.6 * lim
                    ax.text(j, i, f"{fmt}\n{mark}", ha="center", va="center", fontsize=font,
                            color="white" if strong else "black")
            ticks = np.arange(len(names))
            ax.set_xticks(ticks, [str(x) for x in names], fontsize=font + 0.5)
            ax.set_yticks(ticks, [str(x) for x in names], fontsize=font + 0.5)
            _rotate_xticks(ax, 35)
            ax.set_xlabel("model B (column)", fontsize=8)
            ax.set_ylabel("model A (row)", fontsize=8)
            lower = " (lower is better)" if metric == "mr1" else ""
            setting = "paper's fixed setting" if comp == "fixed" else "each model's best setting" if comp == "best" \
                else comp
            ax.set_title(f"{metric.upper()}{lower}: A minus B\n{setting}", fontsize=9)
    level = f"Holm-corrected p < {alpha:g}" if alpha else "Holm-corrected"
    fig.suptitle(_title("Paired bootstrap tests between models", collection, "blue: row model A better, red: column "
                        f"model B better; pale, n.s.: not significant ({level})", ""), fontsize=10)
    return fig


def significance_matrix(
    pairwise_df: pd.DataFrame,
    path: str | Path,
    collection: str | None = None,
    order: Sequence[str] | None = None,
    confidence: float | None = None,
) -> list[Path]:
    """:func:`significance_matrix_figure`, saved as ``<path>.png`` and ``.pdf``."""
    return save(significance_matrix_figure(pairwise_df, collection, order, confidence), path)


# --------------------------------------------------------------------------- rank stability

RANK_PANELS = {"best": "each model's best setting", "fixed": "the paper's fixed setting"}


def _rank_panel_rows(models_df: pd.DataFrame, comparison: str) -> pd.DataFrame:
    """The models of one panel of :func:`rank_stability_figure`: those with a
    rank at ``comparison``, best first (rank, then higher ``p_first``, then name),
    with columns ``rank, rank_lo, rank_hi, p_first`` (floats) and ``group`` (text)."""
    rank, lo, hi, p_first, group = T.rank_columns(comparison)
    if rank not in models_df.columns:
        return models_df.iloc[:0]
    df = models_df.copy()
    for src, dst in ((rank, "_rank"), (lo, "_lo"), (hi, "_hi"), (p_first, "_p")):
        df[dst] = pd.to_numeric(df[src], errors="coerce").astype(float) if src in df.columns else np.nan
    df["_group"] = df[group].fillna("").astype(str) if group in df.columns else ""
    df = df[np.isfinite(df["_rank"].to_numpy())]
    return df.assign(_name=df["model"].astype(str)).sort_values(["_rank", "_p", "_name"],
                                                                ascending=[True, False, True], kind="mergesort")


def rank_stability_figure(models_df: pd.DataFrame, collection: str | None = None,
                          confidence: float | None = None) -> Figure:
    """How stable is each model's rank? (drawn, not saved): one panel per
    comparison with ranks in models.csv (:func:`soundsim.tables.add_ranks`:
    each model's best setting, then the paper's fixed setting), one row per
    model ordered by rank (best on top): a dot at the rank of its MAP@15,
    a bar over the bootstrap interval of its rank (``rank_lo`` to
    ``rank_hi``), and on the right its group letters (models sharing a letter
    are not significantly different, Holm-corrected paired tests) and
    ``p_first`` (share of resamples in which it ranks first). Rank 1 on the
    left. A panel's model names carry its setting; † marks a model trained on
    the collection's dataset."""
    df = _check(models_df, ["model"], "rank_stability")
    panels = [(c, _rank_panel_rows(df, c)) for c in ("best", "fixed")]
    panels = [(c, rows) for c, rows in panels if len(rows)]
    if not panels:
        raise FiguresError("rank_stability: no model has a rank (models.csv lacks rank / fixed_rank values; "
                           "see soundsim.tables.add_ranks)")
    n = max(len(rows) for _, rows in panels)
    fig = _new_figure(max(6.5, 5.4 * len(panels)), max(2.8, 0.5 * n + 1.9))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (comparison, rows) in zip(axes, panels, strict=True):
        setting_col = dict(T.COMPARISONS)[comparison]
        k = len(rows)
        y = np.arange(k)
        rank = rows["_rank"].to_numpy()
        lo = np.where(np.isfinite(rows["_lo"].to_numpy()), rows["_lo"].to_numpy(), rank)
        hi = np.where(np.isfinite(rows["_hi"].to_numpy()), rows["_hi"].to_numpy(), rank)
        ax.hlines(y, lo - 0.18, hi + 0.18, color="#4c72b0", alpha=0.35, linewidth=9, label="interval of the rank")
        ax.scatter(rank, y, color="#1f3b73", s=36, zorder=3, label="rank of the estimate")
        ticks = []
        for _, r in rows.iterrows():
            name = f"{r['model']} / {r['variation']}" if "variation" in rows.columns else str(r["model"])
            if str(r.get(TD.FLAG_COLUMN, "")) == "true":
                name += f" {TD.MARKER}"
            if setting_col in rows.columns and not pd.isna(r[setting_col]):
                name += f"\n{T.setting_label(r[setting_col])}"
            ticks.append(name)
        ax.set_yticks(y, ticks, fontsize=7.5)
        ax.set_ylim(k - 0.5, -0.5)
        total = int(max(k, np.nanmax(hi)))
        ax.set_xticks(np.arange(1, total + 1))
        ax.set_xlim(0.4, total + 0.6)
        ax.set_xlabel("rank by macro MAP@15 (1 = best)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        right = ax.secondary_yaxis("right")
        right.set_yticks(y, [f"{g or '-':<4} {p:.2f}" if np.isfinite(p) else f"{g or '-'}"
                             for g, p in zip(rows["_group"], rows["_p"].to_numpy(), strict=True)],
                         fontsize=8, family="monospace")
        right.set_ylabel("group, P(ranked first)", fontsize=8)
        ax.set_title(RANK_PANELS.get(comparison, comparison), fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    note = (f"bar: {_level(confidence)}bootstrap interval of the rank (the intervals' resamples, every model "
            "ranked in each); models sharing a letter are not significantly different (Holm-corrected paired tests)")
    width = 70 if len(panels) == 1 else 130
    fig.suptitle(_title("Rank stability per model", collection, "\n".join(textwrap.wrap(note, width)), ""),
                 fontsize=10)
    return fig


def rank_stability(models_df: pd.DataFrame, path: str | Path, collection: str | None = None,
                   confidence: float | None = None) -> list[Path]:
    """:func:`rank_stability_figure`, saved as ``<path>.png`` and ``.pdf``."""
    return save(rank_stability_figure(models_df, collection, confidence), path)


# --------------------------------------------------------------------------- precision@k


def _labels_of(labels: pd.DataFrame | Mapping[str, Sequence[str]], what: str) -> Mapping[str, Sequence[str]]:
    """fname -> labels from a manifest DataFrame (``fname``, ``labels`` as
    lists or comma-separated text) or a mapping."""
    if isinstance(labels, pd.DataFrame):
        _check(labels, ["fname", "labels"], what)
        out: dict[str, list[str]] = {}
        for f, labs in zip(labels["fname"].astype(str), labels["labels"], strict=True):
            if isinstance(labs, str):
                labs = [x.strip() for x in labs.split(",") if x.strip()]
            out[f] = list(dict.fromkeys(str(x) for x in labs))
        return out
    return labels


def precision_at_k(
    rankings: RankingsFile | str | Path,
    labels: pd.DataFrame | Mapping[str, Sequence[str]],
    k_max: int | None = None,
) -> pd.DataFrame:
    """Macro precision@k of one setting, k = 1..K, from its top-K lists.

    For a query clip q asked on behalf of one of its labels L (class-wise
    relevance, as :mod:`soundsim.metrics` defines it: a retrieved clip is
    relevant iff it carries L), precision@k is the share of the first k
    results that carry L. It is averaged over the queries of each label, then
    over labels, as the macro MAP is; labels with a single clip among the
    ranked clips are left out (no other clip can be relevant). The clips are
    those of the rankings (the evaluated ones), their labels from ``labels``
    (the manifest: ``fname``, ``labels``; or fname -> labels).

    Returns columns ``k`` (1..K, or ``k_max`` when smaller), ``precision``
    and ``ideal`` (the best any ranking can do, every relevant clip first:
    the same average of min(k, n_L - 1) / k), with ``attrs`` ``n_labels``
    and ``n_queries`` (the (clip, label) pairs averaged)."""
    path = None
    if not isinstance(rankings, RankingsFile):
        path = Path(rankings)
        rankings = read_rankings(path)
    src = str(path) if path is not None else "rankings"
    lab_of = _labels_of(labels, "precision_at_k")
    missing = [f for f in rankings.fnames if f not in lab_of]
    if missing:
        raise FiguresError(f"{src}: {len(missing)} ranked clip(s) have no labels in the manifest: "
                           + ", ".join(repr(f) for f in missing[:5]))
    if rankings.indices.ndim != 2 or rankings.indices.shape[0] != len(rankings.fnames):
        raise FiguresError(f"{src}: indices must be (N={len(rankings.fnames)}, K), got {rankings.indices.shape}")
    k = rankings.indices.shape[1] if k_max is None else min(int(k_max), rankings.indices.shape[1])
    if k < 1:
        raise FiguresError(f"{src}: empty rankings (K = 0)")
    index = M.build_label_index([lab_of[f] for f in rankings.fnames], rankings.fnames)
    keep = index.counts[index.pair_l] >= 2
    pq, pl = index.pair_q[keep], index.pair_l[keep]
    if pq.size == 0:
        raise FiguresError(f"{src}: no label has two or more clips: precision@k is undefined")
    top = rankings.indices[pq, :k].astype(np.int64)
    rel = index.Y[top, pl[:, None]]  # (pairs, k): result i of the pair's query carries the pair's label
    ks = np.arange(1, k + 1, dtype=np.float64)
    prec = np.cumsum(rel, axis=1, dtype=np.float64) / ks
    ideal = np.minimum(ks[None, :], (index.counts[pl] - 1)[:, None]) / ks
    labels_kept, per_label = np.unique(pl, return_inverse=True)
    n_per_label = np.bincount(per_label).astype(np.float64)

    def macro(values: np.ndarray) -> np.ndarray:
        sums = np.zeros((labels_kept.size, k))
        np.add.at(sums, per_label, values)
        return (sums / n_per_label[:, None]).mean(axis=0)

    out = pd.DataFrame({"k": np.arange(1, k + 1), "precision": macro(prec), "ideal": macro(ideal)})
    out.attrs.update(n_labels=int(labels_kept.size), n_queries=int(pq.size))
    return out


def _rankings_index(rankings: Mapping[Any, str | Path] | Sequence[str | Path]) -> dict[tuple[str, str, str], Path]:
    """(model, variation, setting) -> rankings.h5: a mapping as given, or a
    list of the ``rankings.h5`` files of setting folders (a rule's declared
    inputs), each named by its folder (:func:`soundsim.layout.settings_from_inputs`)."""
    if isinstance(rankings, Mapping):
        return {tuple(str(x) for x in key): Path(p) for key, p in rankings.items()}  # type: ignore[misc]
    try:
        return {s.key: s.rankings for s in L.settings_from_inputs(rankings=rankings)}
    except L.LayoutError as e:
        raise FiguresError(f"precision@k: {e}") from None


def precision_curves(
    models_df: pd.DataFrame,
    rankings: Mapping[Any, str | Path] | Sequence[str | Path],
    labels: pd.DataFrame | Mapping[str, Sequence[str]],
) -> pd.DataFrame:
    """:func:`precision_at_k` of every model of ``models_df`` (models.csv) at
    its best setting (``best_setting``) and, where it was evaluated (empty
    ``note``), at the paper's fixed setting (``setting``). ``rankings``: the
    rankings.h5 files to choose from (see :func:`_rankings_index`); a needed
    one that is not among them raises :class:`FiguresError` naming it.
    Long format: ``which`` (best, fixed), ``model, variation, setting, k,
    precision, ideal``."""
    df = _check(models_df, ["model", "variation", "setting", "best_setting"], "precision_curves")
    files = _rankings_index(rankings)
    lab_of = _labels_of(labels, "precision_curves")
    parts = []
    for _, r in df.iterrows():
        wanted = [("best", str(r["best_setting"]))]
        if str(r.get("note", "") or "") in ("", "nan"):
            wanted.append(("fixed", str(r["setting"])))
        for which, setting in wanted:
            key = (str(r["model"]), str(r["variation"]), setting)
            if key not in files:
                raise FiguresError(f"precision_curves: no rankings.h5 of {'/'.join(key)} among the "
                                   f"{len(files)} rankings file(s) given (the {which} setting of {r['model']})")
            c = precision_at_k(files[key], lab_of)
            c.insert(0, "setting", setting)
            c.insert(0, "variation", key[1])
            c.insert(0, "model", key[0])
            c.insert(0, "which", which)
            parts.append(c)
    return pd.concat(parts, ignore_index=True)


_WHICH = {"best": "each model's best setting", "fixed": "the paper's fixed setting"}


def precision_figure(curves: pd.DataFrame, collection: str | None = None, mark_k: Sequence[int] = (15,)) -> Figure:
    """Macro precision@k against k (log axis) per model (drawn, not saved):
    one panel per ``which`` of :func:`precision_curves` (each model's best
    setting, then the paper's fixed setting), one line per model (the same
    colour in both panels) named with its setting and P@15; dashed grey: the
    best possible curve (every relevant clip first; one per distinct clip
    set); dotted verticals at ``mark_k`` (the MAP cutoffs)."""
    df = _check(curves, ["which", "model", "variation", "setting", "k", "precision", "ideal"], "precision_figure")
    panels = [w for w in ("best", "fixed") if w in set(df["which"])] + sorted(set(df["which"]) - {"best", "fixed"})
    models = sorted(set(df["model"].astype(str)))
    colours = {m: c for m, c in zip(models, sns.color_palette("tab10" if len(models) <= 10 else "tab20",
                                                                 len(models)), strict=True)}
    fig = _new_figure(5.2 * len(panels) + 0.6, 4.4)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    k_max = int(df["k"].max())
    for ax, which in zip(axes, panels, strict=True):
        sub = df[df["which"] == which]
        ideals: list[tuple[np.ndarray, np.ndarray, str]] = []
        for (model, variation, setting), c in sub.groupby(["model", "variation", "setting"], sort=True):
            c = c.sort_values("k")
            ks, p = c["k"].to_numpy(), c["precision"].to_numpy(dtype=float)
            at = {int(kk): float(v) for kk, v in zip(ks, p, strict=True)}
            p15 = f", P@15 {at[15]:.3f}" if 15 in at else ""
            ax.plot(ks, p, color=colours[str(model)], linewidth=1.6,
                    label=f"{model} / {variation}\n{T.setting_label(setting)}{p15}")
            ideal = c["ideal"].to_numpy(dtype=float)
            if not any(len(i) == len(ideal) and np.allclose(i, ideal) for _, i, _ in ideals):
                ideals.append((ks, ideal, str(model)))
        for n, (ks, ideal, model) in enumerate(ideals):  # grey: one clip set; else each model's own, its colour
            ax.plot(ks, ideal, color="0.55" if len(ideals) == 1 else colours[model], linestyle="--",
                    linewidth=1.0, alpha=1.0 if len(ideals) == 1 else 0.6,
                    label=None if n else "best possible (every relevant clip first)"
                    + ("" if len(ideals) == 1 else ";\nper model: the clips it embedded"))
        for mk in mark_k:
            if mk <= k_max:
                ax.axvline(mk, color="0.6", linestyle=":", linewidth=0.9)
        ax.set_xscale("log")
        ticks = [t for t in (1, 2, 5, 10, 15, 20, 50, 100, 150) if t <= k_max]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlim(1, k_max)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("k (number of results looked at)")
        ax.grid(alpha=0.3)
        ax.set_title(_WHICH.get(which, str(which)), fontsize=9)
        ax.legend(fontsize=7, frameon=False, loc="upper right")
    axes[0].set_ylabel("macro precision@k (share of the first k results\nthat carry the query's label)", fontsize=9)
    fig.suptitle(_title("Precision@k per model", collection, "mean over each label's queries, then over labels "
                        "(as the macro MAP); a query's relevant clips carry its label", ""), fontsize=10)
    return fig


def precision_plot(curves: pd.DataFrame, path: str | Path, collection: str | None = None) -> list[Path]:
    """:func:`precision_figure`, saved as ``<path>.png`` and ``.pdf``."""
    return save(precision_figure(curves, collection), path)


# --------------------------------------------------------------------------- per label


def per_label_table(labels_df: pd.DataFrame, metric: str = "map@15") -> pd.DataFrame:
    """label x model table of ``metric``; labels sorted by their mean over
    models (descending, NaN last), then by name; models in input order."""
    df = _check(labels_df, ["model", "label", metric], "per_label")
    models = list(dict.fromkeys(df["model"].astype(str)))
    table = df.pivot_table(index="label", columns="model", values=metric, aggfunc="first", dropna=False)
    table = table.reindex(columns=models)
    mean = table.mean(axis=1, skipna=True)
    order = sorted(table.index, key=lambda lab: (math.isnan(mean[lab]), -(0 if math.isnan(mean[lab]) else
                                                                          mean[lab]), str(lab)))
    return table.loc[order]


def per_label(
    data: pd.DataFrame | str | Path,
    path: str | Path,
    collection: str | None = None,
    metric: str = "map@15",
) -> list[Path]:
    """Class-wise ``metric`` (MAP@15) per label (rows, sorted by the mean over
    models, best first) and model (columns), as an annotated heatmap; grey
    cells: labels with a single clip (undefined). ``data``: the long table of
    :func:`soundsim.tables.labels_table`, or the path of the ``labels.csv`` it
    was written to. The figure grows with the number of labels (~0.17 in per
    row; fonts shrink past 60 labels) so 200 labels stay legible."""
    if not isinstance(data, pd.DataFrame):
        data = T.read_table(data)
    table = per_label_table(data, metric)
    n_lab, n_mod = table.shape
    big = n_lab > 60
    row_h = 0.17 if big else 0.3
    font = 6.5 if big else 8.5
    width = max(4.5, 0.95 * n_mod + 3.2)
    height = max(3.0, row_h * n_lab + 2.0)
    fig = _new_figure(width, height)
    ax = fig.add_subplot()
    values = table.to_numpy(dtype=float)
    vmax = max(1e-9, float(np.nanmax(values))) if np.isfinite(values).any() else None
    # a tall figure: a short horizontal colour bar on top instead of a 30-inch one at the side
    cbar = {"location": "top", "shrink": min(0.8, 4.0 / width), "aspect": 25, "pad": 0.005} if big else None
    _annotated_heatmap(ax, table, ".2f" if big else ".3f", metric_label(metric), font - 1 if big else font,
                       vmin=0.0, vmax=vmax, cbar=cbar)
    ax.set_yticks(np.arange(n_lab) + 0.5, [_pretty(x) for x in table.index], fontsize=font, rotation=0)
    ax.set_xticks(np.arange(n_mod) + 0.5, list(table.columns), fontsize=8.5)
    if big:  # a tall figure: model names above and below
        ax.tick_params(axis="x", labelbottom=True, labeltop=True, bottom=True, top=True)
    if max((len(str(c)) for c in table.columns), default=0) > 12:
        _rotate_xticks(ax, 30)
    ax.set_ylabel(f"label ({n_lab}, sorted by mean over models)")
    ax.set_xlabel("model" + ("  (grey: undefined, label with a single clip)" if np.isnan(values).any() else ""))
    setting = _settings_by_model(data, width=max(60, int(12 * width)))
    fig.suptitle(_title(f"Class-wise {metric.upper()} per label", collection, setting, "setting per model: "),
                 fontsize=10)
    return save(fig, path)


# --------------------------------------------------------------------------- all


# --------------------------------------------------------------------------- approximate search

#: a marker per vector index type (:data:`soundsim.index_eval.INDEX_NAMES`), the same in every panel
INDEX_MARKERS = {"exact": "o", "flat": "P", "hnsw": "^", "ivf": "s", "ivf-sq8": "D", "ivf-pq": "X",
                 "freesound": "v"}


def index_figure(indexes_df: pd.DataFrame, collection: str | None = None, metric: str = "map@15") -> Figure:
    """Quality vs memory vs latency of approximate search (drawn, not saved), from
    ``tables/indexes.csv`` (:func:`soundsim.index_eval.gather_index_tables`): two panels
    sharing the y axis, macro ``metric`` (MAP@15) against ``memory_bytes_per_sound`` (left)
    and against the median query latency ``latency_ms_p50`` (right, one thread), an x axis
    logarithmic where its values span a factor of 10 or more; one colour per model/variation (its setting in the legend), one marker per
    index type; a point whose recall@N against exact is below 1 is labelled with it."""
    recall = next((c for c in indexes_df.columns if str(c).startswith("recall@")), None)
    df = _check(indexes_df, ["model", "variation", "setting", "index", metric, "memory_bytes_per_sound",
                             "latency_ms_p50"], "index_figure").copy()
    df["system"] = [f"{m} / {v}" if v != "" else str(m) for m, v in zip(df["model"], df["variation"], strict=True)]
    systems = list(dict.fromkeys(df["system"]))
    colours = dict(zip(systems, sns.color_palette("deep", max(len(systems), 1)).as_hex(), strict=False))
    names = list(dict.fromkeys(df["index"].astype(str)))
    fig = _new_figure(11.0, 4.6)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, x, xlabel in ((axes[0], "memory_bytes_per_sound", "index memory per sound (bytes"),
                          (axes[1], "latency_ms_p50", "median query latency, 1 thread (ms")):
        for system, g in df.groupby("system", sort=False):
            for _, r in g.iterrows():
                ax.scatter(r[x], r[metric], color=colours[system], marker=INDEX_MARKERS.get(str(r["index"]), "o"),
                           s=60, edgecolor="black", linewidth=0.5, zorder=3)
                if recall and np.isfinite(float(r[recall])) and float(r[recall]) < 0.9995:
                    ax.annotate(f"{float(r[recall]):.3f}", (r[x], r[metric]), xytext=(5, 4),
                                textcoords="offset points", fontsize=7, color="0.25")
        values = df[x].to_numpy(dtype=float)
        values = values[np.isfinite(values) & (values > 0)]
        wide = values.size > 0 and values.max() / values.min() >= 10  # a log axis for a range of decades
        if wide:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
            ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel(xlabel + (", log scale)" if wide else ")"), fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.set_axisbelow(True)
    axes[0].set_ylabel(metric_label(metric), fontsize=9)
    handles = [axes[0].scatter([], [], color=colours[s], marker="o", s=50, edgecolor="black", linewidth=0.5,
                               label=f"{s}: {T.setting_label(df.loc[df['system'] == s, 'setting'].iloc[0])}")
               for s in systems]
    handles += [axes[0].scatter([], [], color="0.7", marker=INDEX_MARKERS.get(n, "o"), s=50, edgecolor="black",
                                linewidth=0.5, label=n) for n in names]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=8, frameon=False)
    note = f"numbers: {recall} against exact search, where below 1" if recall else ""
    fig.suptitle(_title("Approximate search: quality vs memory vs latency (each model's best setting)", collection,
                        note, ""), fontsize=10)
    return fig


def index_plot(indexes_df: pd.DataFrame, path: str | Path, collection: str | None = None) -> list[Path]:
    """:func:`index_figure`, saved as ``<path>.png`` and ``.pdf``."""
    return save(index_figure(indexes_df, collection), path)


# --------------------------------------------------------------------------- learned similarity heads

#: the columns of a head's training log (``heads/<head>/training.csv``) :func:`head_training_figure` draws
TRAINING_LOG_COLUMNS = ("epoch", "train_loss", "val_map@15", "best")
SUBSET_LABELS = {"all": "all labels", "seen": "training labels", "unseen": "held-out labels"}
#: head and base colours in :func:`heads_comparison_figure`
HEAD_COLOUR, BASE_COLOUR = "#dd8452", "#8c8c8c"


def _as_bool(values: pd.Series) -> np.ndarray:
    """A boolean column as read from CSV (bools, or the text ``True``/``true``/``1``)."""
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=bool)
    return np.array([str(v).strip().lower() in ("true", "1", "yes") for v in values], dtype=bool)


def head_training_figure(logs: Mapping[str, pd.DataFrame], collection: str | None = None) -> Figure:
    """The heads' training curves (drawn, not saved): two panels sharing the x axis
    (epoch), the training loss (top) and the validation MAP\\@15 (bottom, on the
    validation split held out of the training collection), one line per head
    (the same colour in both panels); the kept epoch (``best`` true: the weights
    the head was saved with) is a star on both lines and named in the legend.
    ``logs``: head -> its training log (``heads/<head>/training.csv``, columns
    :data:`TRAINING_LOG_COLUMNS`; ``best`` bool or its text). ``collection``:
    the training collection, named in the title. No logs, an empty log or one
    lacking a column raise :class:`FiguresError` naming the head."""
    if not logs:
        raise FiguresError("head_training: no data to plot (no training logs)")
    frames = {str(h): _check(df, TRAINING_LOG_COLUMNS, f"head_training ({h})").sort_values("epoch")
              for h, df in logs.items()}
    colours = dict(zip(frames, sns.color_palette("deep", max(len(frames), 1)).as_hex(), strict=False))
    fig = _new_figure(7.5, 5.6)
    loss_ax, val_ax = fig.subplots(2, 1, sharex=True)
    for head, df in frames.items():
        epoch = df["epoch"].to_numpy(dtype=float)
        kept = _as_bool(df["best"])
        val = df["val_map@15"].to_numpy(dtype=float)
        label = head
        if kept.any():
            k = int(np.flatnonzero(kept)[-1])
            label += f" (kept epoch {epoch[k]:g}, validation MAP@15 {val[k]:.3f})"
        for ax, col in ((loss_ax, "train_loss"), (val_ax, "val_map@15")):
            y = df[col].to_numpy(dtype=float)
            ok = np.isfinite(y)
            ax.plot(epoch[ok], y[ok], color=colours[head], linewidth=1.4, marker="." if ok.sum() < 40 else None,
                    label=label if ax is loss_ax else None)
            mark = kept & ok
            if mark.any():
                ax.plot(epoch[mark], y[mark], marker="*", markersize=13, color=colours[head],
                        markeredgecolor="black", linestyle="none", zorder=4)
    loss_ax.set_ylabel("training loss", fontsize=9)
    val_ax.set_ylabel("validation MAP@15\n(higher is better)", fontsize=9)
    val_ax.set_xlabel("epoch")
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
        ax.set_axisbelow(True)
    handles, names = loss_ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="*", markersize=11, color="0.6", markeredgecolor="black", linestyle="none"))
    names.append("kept epoch")
    fig.legend(handles, names, loc="outside lower center", ncols=1 if len(frames) > 2 else 2,
               fontsize=8, frameon=False)
    fig.suptitle(_title("Learned similarity heads: training curves", collection,
                        "star: the epoch whose weights were kept (best validation MAP@15)", ""), fontsize=10)
    return fig


def head_training(logs: Mapping[str, pd.DataFrame], path: str | Path, collection: str | None = None) -> list[Path]:
    """:func:`head_training_figure`, saved as ``<path>.png`` and ``.pdf``."""
    return save(head_training_figure(logs, collection), path)


def _head_tick(r: pd.Series) -> str:
    """Three lines: ``head-aisfx: mean / PCA 100 / MCSS``, ``vs aisfx / x-sequential-ce:
    <its setting>`` (settings where the row has them) and the subset with its number of labels."""
    subset = SUBSET_LABELS.get(str(r["subset"]), str(r["subset"]))
    n = f" ({int(r['n_labels'])} labels)" if "n_labels" in r.index and not pd.isna(r["n_labels"]) else ""
    var = f" / {r['variation']}" if "variation" in r.index and str(r["variation"]) else ""

    def setting(col: str) -> str:
        return f": {T.setting_label(r[col])}" if col in r.index and not pd.isna(r[col]) and str(r[col]) else ""

    return f"{r['head']}{setting('head_setting')}\nvs {r['base']}{var}{setting('base_setting')}\n{subset}{n}"


def _diff_text(r: pd.Series, metric: str) -> str:
    """``Δ +0.052 **`` (stars: Holm-corrected p) when significant, else ``Δ +0.012 n.s.``."""
    d = float(r["diff"])
    fmt = f"{d:+.2f}" if metric == "mr1" else f"{d:+.3f}"
    if "significant" in r.index and bool(_as_bool(pd.Series([r["significant"]]))[0]):
        return f"Δ {fmt} {_stars(float(r.get('p_holm', math.nan))) or '*'}"
    return f"Δ {fmt} n.s."


def heads_comparison_figure(heads_df: pd.DataFrame, collection: str | None = None) -> Figure:
    """Each learned similarity head against its frozen base (drawn, not saved),
    from ``tables/heads.csv`` (:func:`soundsim.tables.heads_table`): one panel per
    metric (MAP\\@15, MAP\\@150, MR1, those in the table), one pair of horizontal
    bars per head and subset (rows: all labels; for a class-disjoint head also
    its training labels and its held-out labels), base (grey) and head
    (orange), each at its best setting, with the bootstrap intervals
    (``*_lo``, ``*_hi``) as error bars. Beside each pair: the difference head -
    base, with stars for the Holm-corrected p-value when significant (``*`` <
    0.05, ``**`` < 0.01, ``***`` < 0.001; the family: every head-vs-base test
    of one subset and metric) and ``n.s.`` otherwise; a significant
    difference's head bar is outlined in black."""
    df = _check(heads_df, ["head", "base", "subset", "metric", "head_value", "base_value", "diff"],
                "heads_comparison")
    metrics = [m for m in T.metric_names(df["metric"].astype(str).unique()) if measures.is_paper_metric(m)]
    if not metrics:
        raise FiguresError("heads_comparison: the table has no map@N / mr1 rows")
    groups = list(dict.fromkeys(zip(df["head"].astype(str), df["subset"].astype(str), strict=True)))
    y = np.arange(len(groups))
    h = 0.38
    fig = _new_figure(max(7.0, 3.1 * len(metrics) + 3.4), max(2.8, 0.95 * len(groups) + 1.8))
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    bar_err = {"ecolor": "0.15", "elinewidth": 0.9, "capsize": 2.5, "capthick": 0.9}
    ticks = [""] * len(groups)
    for ax, m in zip(axes, metrics, strict=True):
        rows = df[df["metric"].astype(str) == m].copy()
        rows["_g"] = [groups.index(g) for g in zip(rows["head"].astype(str), rows["subset"].astype(str),
                                                    strict=True)]
        rows = rows.drop_duplicates("_g").set_index("_g").reindex(range(len(groups)))
        ends = []
        for side, colour, off, what in (("base", BASE_COLOUR, -h / 2, "frozen base model"),
                                        ("head", HEAD_COLOUR, h / 2, "learned head")):
            v = rows[f"{side}_value"].to_numpy(dtype=float)
            err = _errors(rows.rename(columns={f"{side}_lo": "v_lo", f"{side}_hi": "v_hi"}), "v", v)
            bars = ax.barh(y + off, np.nan_to_num(v), height=h, color=colour, label=what, xerr=err, error_kw=bar_err)
            end = v + (err[1] if err is not None else 0.0)
            ends.append(end)
            if side == "head" and "significant" in rows.columns:
                sig = _as_bool(rows["significant"].fillna(False))
                for k in np.flatnonzero(sig):
                    bars[k].set(edgecolor="black", linewidth=1.6)
        end = np.fmax(ends[0], ends[1])
        for k in range(len(groups)):
            r = rows.iloc[k]
            if pd.isna(r["head_value"]):
                continue
            ticks[k] = _head_tick(r)
            x = float(end[k]) if np.isfinite(end[k]) else 0.0
            ax.text(x, y[k], "  " + _diff_text(r, m), va="center", fontsize=7.5,
                    fontweight="bold" if "n.s." not in _diff_text(r, m) else "normal")
        top = np.nanmax(end) if np.isfinite(end).any() else 1.0
        ax.set_xlim(0, top * 1.45 if top > 0 else 1.0)
        if m.startswith("map@"):  # room for the differences' text, but no MAP above 1 on the axis
            ax.set_xticks([t for t in np.linspace(0, 1, 6) if t <= ax.get_xlim()[1]])
        ax.set_xlabel(metric_label(m).replace(" (", "\n("), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0].set_yticks(y, ticks, fontsize=7.5)
    axes[0].invert_yaxis()
    handles = [Rectangle((0, 0), 1, 1, color=BASE_COLOUR), Rectangle((0, 0), 1, 1, color=HEAD_COLOUR),
               Rectangle((0, 0), 1, 1, facecolor=HEAD_COLOUR, edgecolor="black", linewidth=1.6)]
    names = ["frozen base model (its best setting)", "learned head (its best setting)",
             "learned head, significantly different"]
    fig.legend(handles, names, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    note = ("error bars: bootstrap confidence intervals; Δ = head − base, stars: Holm-corrected paired test "
            "(family: every head vs its base, per subset and metric)")
    fig.suptitle(_title("Learned similarity heads vs their frozen base models", collection, note, ""), fontsize=10)
    return fig


def heads_comparison(heads_df: pd.DataFrame, path: str | Path, collection: str | None = None) -> list[Path]:
    """:func:`heads_comparison_figure`, saved as ``<path>.png`` and ``.pdf``."""
    return save(heads_comparison_figure(heads_df, collection), path)


def placeholder(path: str | Path, message: str, collection: str | None = None) -> list[Path]:
    """A small figure that only says ``message`` (keeps a workflow's outputs
    fixed when there is nothing to draw, e.g. no family data)."""
    fig = _new_figure(6, 1.6)
    fig.text(0.5, 0.5, _title(message, collection), ha="center", va="center", wrap=True, fontsize=10)
    return save(fig, path, tight=False)


#: the tables :func:`make_figures` draws from (keys of :data:`soundsim.layout.TABLES`)
FIGURE_TABLES = ("all_settings", "best_settings", "models", "families", "labels", "pairwise")


def _load(tables: Mapping[str, Any], key: str) -> pd.DataFrame:
    if key not in tables or tables[key] is None:
        raise FiguresError(f"make_figures: table {key!r} not given (the tables rule writes tables/"
                           f"{L.TABLES[key]}; tables needed: {', '.join(FIGURE_TABLES)})")
    v = tables[key]
    if isinstance(v, pd.DataFrame):
        return v
    if not Path(v).is_file():
        raise FiguresError(f"{v}: table not found (written by the tables rule, or `soundsim tables`)")
    return T.read_table(v)


def _best_of(best: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(model, variation) -> the best setting, from best_settings.csv (one row per model)."""
    _check(best, ["model", "variation", "setting"], "best_settings")
    return {(str(r.model), str(r.variation)): str(r.setting) for r in best.itertuples(index=False)}


def _shared_top(grid: pd.DataFrame, metric: str = "map@15", intervals: bool = True) -> float | None:
    """The highest value of ``metric`` (with ``intervals``: or interval end,
    ``<metric>_hi``) over every model of ``grid``: the common top of the
    Fig. 1 axes (bars) and colour range (heatmaps), or None."""
    cols = [c for c in (metric, f"{metric}_hi" if intervals else "") if c in grid.columns]
    values = grid[cols].to_numpy(dtype=float) if cols else np.array([])
    return float(np.nanmax(values)) if np.isfinite(values).any() and np.nanmax(values) > 0 else None


def _manifest_labels(manifest: pd.DataFrame | str | Path) -> pd.DataFrame:
    """The clips' labels: a DataFrame with ``fname``, ``labels`` as given, or a manifest.csv read."""
    if isinstance(manifest, pd.DataFrame):
        return manifest
    from soundsim.manifest import read_manifest

    return read_manifest(manifest)


def make_figures(
    tables: Mapping[str, Any],
    out_dir: str | Path,
    collection: str | None = None,
    confidence: float | None = None,
    *,
    rankings: Mapping[Any, str | Path] | Sequence[str | Path],
    manifest: pd.DataFrame | str | Path,
) -> list[Path]:
    """Every figure of a collection under ``out_dir`` (names of
    :mod:`soundsim.layout`): ``grid/<model>__<variation>.{png,pdf}`` (Fig. 1
    as grouped bars, one per model and variation of all_settings.csv, on one y
    range, :func:`soundsim.layout.grid_figure_name`),
    ``grid/<model>__<variation>_heatmap.{png,pdf}`` (the same as heatmaps on
    one colour range, :func:`soundsim.layout.grid_heatmap_name`; on both, the
    model's best setting of best_settings.csv is marked on its best
    variation's figure), ``families.{png,pdf}`` (Fig. 2), ``models.{png,pdf}``,
    ``per_label.{png,pdf}``, ``significance.{png,pdf}``,
    ``precision_at_k.{png,pdf}`` and ``ranks.{png,pdf}`` (:func:`rank_stability`;
    a placeholder when models.csv has no ranks). ``tables``: key -> DataFrame or CSV path (as
    :func:`soundsim.tables.write_tables` returns them) of every table of
    :data:`FIGURE_TABLES`; a missing one raises :class:`FiguresError`
    (figures never recompute a table). ``rankings``: the rankings.h5 files
    the precision@k figure may read (a list of setting folders' files, or
    (model, variation, setting) -> path; see :func:`precision_curves`), of
    which it reads each model's best and fixed setting of models.csv;
    ``manifest``: the clips' labels (a manifest.csv path or a DataFrame with
    ``fname``, ``labels``). When no model has family (or label) data at its
    models.csv setting, or fewer than two models can be compared, that figure
    is a placeholder saying so. ``confidence``: the level of the intervals
    and tests (named in the figures). Returns the written paths."""
    out = Path(out_dir)
    grid, best, models, families, labels, pairwise = (_load(tables, k) for k in FIGURE_TABLES)
    best_of = _best_of(best)
    clips = _manifest_labels(manifest)
    written: list[Path] = []
    top, top_value = _shared_top(grid), _shared_top(grid, intervals=False)
    for (model, variation), g in grid.groupby(["model", "variation"], sort=True):
        mark = best_of.get((str(model), str(variation)))
        written += grid_bars(g, out / L.grid_figure_name(model, variation), collection,
                             ymax=top * 1.1 if top else None, confidence=confidence, best=mark)
        written += grid_heatmap(g, out / L.grid_heatmap_name(model, variation), collection, best=mark,
                                vmin=0.0, vmax=top_value)
    written += model_comparison(models, out / "models", collection)
    if len(families):
        written += family_heatmap(families, out / "families", collection)
    else:
        log.warning("no family data at the models.csv settings; families figure is a placeholder")
        written += placeholder(out / "families", "No family-averaged results at the models' fixed settings",
                               collection)
    if len(labels):
        written += per_label(labels, out / "per_label", collection)
    else:
        log.warning("no per-label data at the models.csv settings; per-label figure is a placeholder")
        written += placeholder(out / "per_label", "No class-wise results at the models' fixed settings", collection)
    if len(pairwise):
        written += significance_matrix(pairwise, out / "significance", collection, confidence=confidence)
    else:
        log.warning("fewer than two models with per-query values; significance figure is a placeholder")
        written += placeholder(out / "significance", "Significance: fewer than two models to compare", collection)
    written += precision_plot(precision_curves(models, rankings, clips), out / "precision_at_k", collection)
    if any(len(_rank_panel_rows(models, c)) for c in ("best", "fixed")):
        written += rank_stability(models, out / "ranks", collection, confidence)
    else:
        log.warning("models.csv has no ranks (no per-query values?); ranks figure is a placeholder")
        written += placeholder(out / "ranks", "Ranks: no model has a rank in models.csv", collection)
    log.info("wrote %d figure file(s) under %s", len(written), out)
    return written
