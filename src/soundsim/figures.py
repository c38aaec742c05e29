"""Figures of a collection's results (Araz et al. 2024, Fig. 1 and Fig. 2, and more).

Every function draws one figure on its own :class:`matplotlib.figure.Figure`
(Agg canvas; pyplot and its global state are never used), saves it as
``<path>.png`` (150 dpi) and ``<path>.pdf`` atomically, closes nothing global
and returns the two paths. Inputs are the DataFrames of :mod:`soundsim.tables`;
empty input raises :class:`FiguresError`.

* :func:`grid_heatmap` (Fig. 1): macro MAP@15 of one model/variation over
  processing (aggregation / PCA) x search;
* :func:`family_heatmap` (Fig. 2): family-averaged MAP@15, model x family;
* :func:`model_comparison`: MAP@15, MAP@150, MR1 per model (fixed and best setting),
  with confidence intervals as error bars where the table has them;
* :func:`per_label`: class-wise MAP@15, label x model;
* :func:`significance_matrix`: the paired tests of ``pairwise.csv`` as model x model
  matrices of differences, significant ones (Holm) marked;
* :func:`make_figures`: all of them for one collection, from the tables the
  ``tables`` rule wrote (:func:`soundsim.tables.write_tables`); nothing is recomputed.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from soundsim import layout as L
from soundsim import tables as T
from soundsim.errors import SoundsimError
from soundsim.fileutil import atomic_path

log = logging.getLogger(__name__)

DPI = 150
CMAP = "viridis"
SEARCH_LABELS = {"mips": "MIPS", "mcss": "MCSS", "nns": "NNS"}


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


def _title(what: str, collection: str | None, setting: str = "") -> str:
    """``what (collection)``, with a second line naming the setting when given."""
    title = f"{what} ({collection})" if collection else what
    return title + (f"\nsetting: {setting}" if setting else "")


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


def grid_heatmap(
    df_one_variation: pd.DataFrame, path: str | Path, collection: str | None = None, metric: str = "map@15",
    best: str | None = None,
) -> list[Path]:
    """The paper's Fig. 1 for one model and variation: macro ``metric``
    (MAP@15) of every evaluated setting, processing (x: aggregation / PCA) by
    search (y), annotated. ``df_one_variation``: rows of
    :func:`soundsim.tables.collect` for a single model and variation.
    ``best``: the name of the setting to frame in red (the model's best setting,
    as ``best_settings.csv`` says; :func:`make_figures` passes it for the
    model's best variation), or None: no frame."""
    df = _check(df_one_variation, ["model", "variation", "aggregation", "pca", "search", metric], "grid_heatmap")
    pairs = df[["model", "variation"]].drop_duplicates()
    if len(pairs) != 1:
        raise FiguresError(
            f"grid_heatmap: expected the settings of one model and variation, got {len(pairs)}: "
            + ", ".join(f"{m}/{v}" for m, v in pairs.itertuples(index=False))
        )
    model, variation = pairs.iloc[0]
    table = grid_table(df, metric)
    fig = _new_figure(max(4.5, 1.0 * table.shape[1] + 2.2), 0.55 * table.shape[0] + 1.9)
    ax = fig.add_subplot()
    _annotated_heatmap(ax, table, ".3f", metric_label(metric), 9)
    framed = best is not None and L.is_setting_name(best)
    if framed:  # the best setting as the tables rule chose it (best_settings.csv, its tie rule)
        b = L.parse_setting(best)
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
    ax.set_title(_title(f"{model} / {variation}: macro {metric.upper()}", collection), fontsize=10)
    return save(fig, path)


# --------------------------------------------------------------------------- Fig. 2


def family_heatmap(
    families_df: pd.DataFrame, path: str | Path, collection: str | None = None, metric: str = "map@15"
) -> list[Path]:
    """The paper's Fig. 2: family-averaged ``metric`` (MAP@15), models (rows,
    in input order) x families (columns, alphabetical), annotated.
    ``families_df``: :func:`soundsim.tables.families_table`."""
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
    ax.set_title(_title(f"Family-averaged {metric.upper()} per model", collection, _settings_text(df)), fontsize=10)
    return save(fig, path)


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


def model_comparison(models_df: pd.DataFrame, path: str | Path, collection: str | None = None) -> list[Path]:
    """MAP@<N> and MR1 per model, one panel per metric (horizontal bars):
    each model's variation at the fixed setting (``setting`` column of
    models.csv) and at its best setting (``best_*`` columns), plus the
    paper's value as a black diamond where ``paper_*`` columns exist. Where
    the table has interval columns (``<metric>_lo/_hi``, ``best_<metric>_lo/_hi``:
    :func:`soundsim.tables.add_intervals`), each bar gets its confidence
    interval as an error bar. ``models_df``: :func:`soundsim.tables.models_table`."""
    df = _check(models_df, ["model"], "model_comparison")
    metrics = T.metric_columns(df)
    if not metrics:
        raise FiguresError("model_comparison: input has no map@N / mr1 columns")
    n = len(df)
    labels = [f"{m}\n{v}" if "variation" in df.columns else str(m)
              for m, v in zip(df["model"], df.get("variation", df["model"]), strict=True)]
    y = np.arange(n)
    h = 0.38
    fig = _new_figure(max(7.0, 3.1 * len(metrics) + 1.5), max(2.6, 0.62 * n + 1.6))
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    fixed = _settings_text(df) or "fixed setting"
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
    names = [f"paper's fixed setting ({fixed})" if nm == "paper's fixed setting" else nm for nm in names]
    fig.legend(handles, names, loc="outside lower center", ncols=min(3, len(names)), fontsize=8, frameon=False)
    fig.suptitle(_title("Semantic sound similarity per model (averages of class-wise metrics)"
                        + ("; error bars: bootstrap confidence intervals" if has_ci else ""), collection),
                 fontsize=10)
    return save(fig, path)


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


def significance_matrix(
    pairwise_df: pd.DataFrame,
    path: str | Path,
    collection: str | None = None,
    order: Sequence[str] | None = None,
    confidence: float | None = None,
) -> list[Path]:
    """Which differences are real: for each comparison of pairwise.csv
    (rows of panels: fixed, best setting) and metric (columns), a model x
    model matrix whose cell (row A, column B) is A - B, coloured by how much
    better A is (blue: A better, red: B better; for MR1 lower is better, so
    the colour follows -difference), annotated with the difference and stars
    for the Holm-corrected p-value (* < 0.05, ** < 0.01, *** < 0.001);
    cells whose difference is not significant at ``1 - confidence`` are pale
    and marked 'n.s.'. Models are ordered best first by each panel's metric
    (``order``: a fixed order instead). ``pairwise_df``:
    :func:`soundsim.tables.pairwise_table`."""
    df = _check(pairwise_df, ["comparison", "metric", "a", "b", "diff", "p_holm", "significant"], "significance_matrix")
    comparisons = [c for c in ("fixed", "best") if c in set(df["comparison"])] + sorted(
        set(df["comparison"]) - {"fixed", "best"})
    metrics = T.metric_names(df["metric"].unique())
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
            ax.set_xlabel("B", fontsize=8)
            ax.set_ylabel("A", fontsize=8)
            lower = " (lower is better)" if metric == "mr1" else ""
            setting = "paper's fixed setting" if comp == "fixed" else "each model's best setting" if comp == "best" \
                else comp
            ax.set_title(f"{metric.upper()}{lower}: A - B\n{setting}", fontsize=9)
    level = f"Holm-corrected p < {alpha:g}" if alpha else "Holm-corrected"
    fig.suptitle(_title(f"Paired bootstrap tests between models (blue: A better, red: B better; "
                        f"pale, n.s.: not significant, {level})", collection), fontsize=10)
    return save(fig, path)


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
    fig.suptitle(_title(f"Class-wise {metric.upper()} per label", collection, _settings_text(data)), fontsize=10)
    return save(fig, path)


# --------------------------------------------------------------------------- all


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


def make_figures(
    tables: Mapping[str, Any],
    out_dir: str | Path,
    collection: str | None = None,
    confidence: float | None = None,
) -> list[Path]:
    """Every figure of a collection under ``out_dir``:
    ``grid/<model>__<variation>.{png,pdf}`` (Fig. 1, one per model and
    variation of all_settings.csv, :func:`soundsim.layout.grid_figure_name`;
    the model's best setting of best_settings.csv framed on its best
    variation's grid), ``families.{png,pdf}`` (Fig. 2), ``models.{png,pdf}``,
    ``per_label.{png,pdf}`` and ``significance.{png,pdf}``. ``tables``: key ->
    DataFrame or CSV path (as :func:`soundsim.tables.write_tables` returns
    them) of every table of :data:`FIGURE_TABLES`; a missing one raises
    :class:`FiguresError` (figures never recompute a table). When no model has
    family (or label) data at its models.csv setting, or fewer than two models
    can be compared, that figure is a placeholder saying so. ``confidence``:
    the level of the tests (names the threshold). Returns the written paths."""
    out = Path(out_dir)
    grid, best, models, families, labels, pairwise = (_load(tables, k) for k in FIGURE_TABLES)
    best_of = _best_of(best)
    written: list[Path] = []
    for (model, variation), g in grid.groupby(["model", "variation"], sort=True):
        written += grid_heatmap(g, out / L.grid_figure_name(model, variation), collection,
                                best=best_of.get((str(model), str(variation))))
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
    log.info("wrote %d figure file(s) under %s", len(written), out)
    return written
