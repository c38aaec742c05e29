"""Result tables over a collection's evaluated settings (Araz et al. 2024, Tables I and II, Fig. 2 data).

Input: the settings to tabulate, as :class:`soundsim.layout.SettingFiles` (one
evaluated setting's folder ``metrics/<model>/<variation>/<setting>/`` and its
``summary.json``, ``per_label.csv``, ``per_family.csv``, ``per_query.parquet``,
written by :mod:`soundsim.evaluate`). Only the given settings' files are read,
nothing else in the tree: the ``tables`` rule passes its declared inputs
(:func:`soundsim.layout.settings_from_inputs`), ``soundsim tables`` the
configured settings (:func:`soundsim.plan.configured_settings`).

Tables (plain functions over DataFrames; :func:`write_tables` writes them all
under ``<out_dir>``, each file atomically, named as :data:`soundsim.layout.TABLES`):

* :func:`collect` -> one row per setting, every value read from its ``summary.json``;
* :func:`all_settings` -> ``all_settings.csv``: that table in the paper's grid order;
* :func:`best_settings` -> ``best_settings.csv``: Table I extended (each model's best
  variation and setting by macro MAP@15, see :data:`TIE_RULE`);
* :func:`models_table` -> ``models.csv`` / ``models.md``: Table II (the paper's fixed
  setting, see :func:`fixed_setting`, and each model's own best setting);
* :func:`families_table` -> ``families.csv``: family-averaged metrics at the models.csv
  setting (Fig. 2 data), from ``per_family.csv``;
* :func:`labels_table` -> ``labels.csv``: class-wise metrics at the same setting, from
  ``per_label.csv`` (data of the per-label figure);
* :func:`add_intervals`: bootstrap confidence intervals of the macro metrics
  (``map@<N>_lo, map@<N>_hi, ..., mr1_lo, mr1_hi``) from each setting's
  ``per_query.parquet`` (:mod:`soundsim.stats`); :func:`write_tables` adds
  them to ``all_settings.csv``, ``best_settings.csv`` and ``models.csv`` (also
  ``best_*_lo/_hi`` there);
* :func:`pairwise_table` -> ``pairwise.csv``: paired bootstrap tests of every
  pair of models of models.csv (at the fixed and at the best setting), the
  difference, its interval and the Holm-corrected p-value;
* :func:`add_ranks`: each model's rank on MAP@15 with its bootstrap interval
  (from the same resamples as the intervals), the share of resamples in
  which it is first, and its group letters (compact letter display of
  pairwise.csv's Holm-corrected tests: models sharing a letter are tied):
  ``rank, rank_lo, rank_hi, p_first, group`` (best setting) and ``fixed_*``
  (fixed setting), which :func:`write_tables` adds to ``models.csv`` and
  ``models.md``;
* :func:`heads_table` -> ``heads.csv`` (written by its own rule, not by
  :func:`write_tables`): each learned similarity head against its frozen base
  model at their best settings, on all queries and, for a class-disjoint head,
  on the queries of its training labels and of its held-out labels (paired
  tests, Holm over the heads' tests).

Training data (:mod:`soundsim.training_data`): models.csv says what each model
was trained on (``trained_on``) and whether that includes the evaluated
collection's dataset (``trained_on_collection``: true / false / unknown, with
``training_note``, e.g. "trained on FSD50K (dev split): not zero-shot"); every
other table with a model column gets the same ``trained_on_collection`` column
(pairwise.csv: ``a_``/``b_trained_on_collection``), and models.md marks a flagged
model with :data:`soundsim.training_data.MARKER` (:func:`add_training_flag`).

Metric column names follow the evaluator: ``map@<N>`` for every cutoff found
(increasing N) and ``mr1``; macro (mean over labels) values carry no prefix,
family means ``family_``, instance-based ones ``micro_``. MR1 is better when
lower, MAP when higher. Missing values are NaN (written ``nan``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from soundsim import layout as L
from soundsim import measures
from soundsim import stats as St
from soundsim import training_data as TD
from soundsim.errors import SoundsimError
from soundsim.fileutil import write_csv_atomic, write_text_atomic

log = logging.getLogger(__name__)

#: canonical orders used to sort settings (unknown values go last, alphabetically)
AGGREGATION_ORDER = ("mean", "median", "max", "none")
SEARCH_ORDER = ("mips", "mcss", "nns")
SETTING_KEYS = ["model", "variation", "aggregation", "pca", "search"]

#: the paper's fixed setting for Table II (Section IV): PCA 100 and MCSS; mean
#: aggregation for frame-level models, none for clip-level ones
FIXED_PCA = "100"
FIXED_SEARCH = "mcss"

TIE_RULE = (
    "highest macro MAP@15; exact ties broken by higher macro MAP@150, then lower macro MR1, "
    "then the first setting in all_settings order (variation name, aggregation mean < median < max < none, "
    "PCA ascending with none last, search mips < mcss < nns); settings whose MAP@15 is NaN come last"
)

_MAP_RE = re.compile(r"^map@(\d+)$")


class TablesError(SoundsimError):
    """The settings cannot be tabulated; the message names the file or folder at fault.
    (A malformed ``summary.json`` raises :class:`soundsim.layout.SummaryError`.)"""


# --------------------------------------------------------------------------- helpers


def metric_names(keys: Any) -> list[str]:
    """``map@<N>`` keys in increasing N, ``mr1``, then the panel's metrics
    (:func:`soundsim.measures.metric_names`; other keys dropped)."""
    return measures.metric_names(keys)


def _order(values: tuple[str, ...], v: Any) -> tuple[int, str]:
    s = str(v)
    return (values.index(s), "") if s in values else (len(values), s)


def _pca_order(v: Any) -> tuple[int, float, str]:
    s = str(v)
    if s == "none":
        return (1, 0.0, "")
    try:
        return (0, float(s), "")
    except ValueError:
        return (2, 0.0, s)


def sort_settings(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in the paper-grid order: model, variation (names), aggregation
    (mean, median, max, none), PCA (ascending, none last), search (mips, mcss, nns)."""
    if df.empty:
        return df.reset_index(drop=True)
    keys = {
        "model": lambda v: (0, str(v)),
        "variation": lambda v: (0, str(v)),
        "aggregation": lambda v: _order(AGGREGATION_ORDER, v),
        "pca": _pca_order,
        "search": lambda v: _order(SEARCH_ORDER, v),
    }
    cols = [c for c in SETTING_KEYS if c in df.columns]
    order = sorted(range(len(df)), key=lambda i: tuple(keys[c](df[c].iloc[i]) for c in cols))
    return df.iloc[order].reset_index(drop=True)


def setting_name(aggregation: Any, pca: Any, search: Any) -> str:
    """The setting's name (:func:`soundsim.layout.setting_name`)."""
    return L.setting_name(str(aggregation), str(pca), str(search))


def setting_label(name: Any) -> str:
    """A setting name -> ``mean / PCA 100 / MCSS`` (``no aggregation``, ``no PCA``
    for 'none'); text that is not a setting name is returned unchanged."""
    if not L.is_setting_name(str(name)):
        return str(name)
    st = L.parse_setting(str(name))
    return " / ".join(["no aggregation" if st.aggregation == "none" else st.aggregation,
                       "no PCA" if st.pca == "none" else f"PCA {st.pca}", st.search.upper()])


Settings = Sequence[L.SettingFiles]


def _index(settings: Settings) -> dict[tuple[str, str, str], L.SettingFiles]:
    """(model, variation, setting) -> its files; the first of duplicates wins."""
    out: dict[tuple[str, str, str], L.SettingFiles] = {}
    for s in settings:
        out.setdefault(s.key, s)
    return out


def _files_of(index: Mapping[tuple[str, str, str], L.SettingFiles], r: Any, setting: str | None = None
              ) -> L.SettingFiles | None:
    return index.get((str(r["model"]), str(r["variation"]), str(setting if setting is not None else r["setting"])))


# --------------------------------------------------------------------------- collect


def _summary_row(files: L.SettingFiles) -> dict[str, Any]:
    s = L.read_summary(files.summary)
    row: dict[str, Any] = {
        "model": files.model,
        "variation": files.variation,
        "level": s.embeddings.get("level"),
        "dim": s.embeddings.get("dim"),
        "aggregation": s.setting.aggregation,
        "pca": s.setting.pca,
        "search": s.setting.search,
        "setting": files.setting,
        "n_clips": s.counts["n_clips"],
        "n_labels_evaluated": s.counts.get("n_labels_evaluated"),
        "n_dropped_without_embedding": s.counts.get("n_dropped_without_embedding", 0),
    }
    for prefix, block in (("", s.macro), ("family_", s.family_mean), ("micro_", s.micro)):
        for m in metric_names(block):
            row[prefix + m] = block[m]
    return row


def collect(settings: Settings) -> pd.DataFrame:
    """One row per given setting (duplicates once), read from its ``summary.json``
    (:func:`soundsim.layout.read_summary`).

    Columns: ``model, variation`` (from the folder names), ``level, dim`` (the
    embeddings' level and dimension), ``aggregation, pca, search, setting``
    (``pca`` as in folder names: '100' or 'none'), ``n_clips,
    n_labels_evaluated, n_dropped_without_embedding``, the macro metrics
    ``map@<N>... mr1``, the family means ``family_map@<N>... family_mr1`` and the
    micro values ``micro_map@<N>... micro_mr1``, one column per cutoff found in
    any summary (NaN where a summary lacks it). Rows in :func:`sort_settings`
    order. A missing or malformed summary.json raises
    :class:`soundsim.layout.SummaryError` naming the file; no settings at all
    raise :class:`TablesError`. Nothing but the given settings is read, so
    results in the tree that the config does not ask for stay out of the tables."""
    index = _index(settings)
    if not index:
        raise TablesError("no evaluated settings given (nothing to tabulate)")
    rows = [_summary_row(f) for f in index.values()]
    df = pd.DataFrame(rows)
    metric_cols = metric_columns(df) + metric_columns(df, "family_") + metric_columns(df, "micro_")
    front = [c for c in df.columns if c not in metric_cols and not c.startswith(("family_", "micro_"))]
    df = df[front + metric_cols]
    return sort_settings(df)


def metric_columns(df: pd.DataFrame, prefix: str = "") -> list[str]:
    """The metric columns of ``df`` with ``prefix`` (``''``: macro), in order."""
    names = [c[len(prefix):] for c in df.columns if c.startswith(prefix)]
    return [prefix + m for m in metric_names(names)]


def _require(df: pd.DataFrame, cols: list[str], what: str) -> None:
    if df is None or len(df) == 0:
        raise TablesError(f"{what}: no rows (nothing was evaluated?)")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise TablesError(f"{what}: input lacks column(s) {', '.join(missing)}")


# --------------------------------------------------------------------------- tables


def all_settings(df: pd.DataFrame) -> pd.DataFrame:
    """The paper grid: every (model, variation, aggregation, PCA, search) with
    its metrics; the columns of :func:`collect`, rows sorted by
    :func:`sort_settings`. Written as ``all_settings.csv``."""
    _require(df, SETTING_KEYS + ["map@15" if "map@15" in df.columns else "mr1"], "all_settings")
    return sort_settings(df.copy())


def _best_index(g: pd.DataFrame, key: str) -> Any:
    """Index label of the best row of ``g`` (see :data:`TIE_RULE`)."""
    g = sort_settings(g.assign(_row=list(g.index)))
    g["_pos"] = range(len(g))
    by, asc = [key], [False]
    for col, up in (("map@150", False), ("mr1", True)):
        if col in g.columns and col != key:
            by.append(col)
            asc.append(up)
    g = g.sort_values(by + ["_pos"], ascending=asc + [True], na_position="last", kind="mergesort")
    return g["_row"].iloc[0]


def best_settings(df: pd.DataFrame, metric: str = "map@15") -> pd.DataFrame:
    """The paper's Table I, extended: one row per model with its best
    variation and setting by macro ``metric`` (MAP@15) over every evaluated
    variation and setting (ties: :data:`TIE_RULE`).

    Columns: ``model, variation, setting, aggregation, pca, search``, the other
    :func:`collect` columns (metrics of that setting), then ``n_variations``
    (variations compared) and ``n_settings`` (settings compared). Rows sorted
    by model. Written as ``best_settings.csv``."""
    _require(df, SETTING_KEYS + [metric], "best_settings")
    rows = []
    for model, g in df.groupby("model", sort=True):
        best = df.loc[_best_index(g, metric)].to_dict()
        best["n_variations"] = int(g["variation"].nunique())
        best["n_settings"] = int(len(g))
        rows.append(best)
    out = pd.DataFrame(rows)
    front = ["model", "variation", "setting", "aggregation", "pca", "search"]
    return out[front + [c for c in out.columns if c not in front]].reset_index(drop=True)


def fixed_setting(df_variation: pd.DataFrame, pca: str = FIXED_PCA, search: str = FIXED_SEARCH) -> str:
    """The paper's fixed Table II setting for one variation's rows: aggregation
    'none' when that variation was evaluated with aggregation 'none' only
    (clip-level embeddings, or one row per clip), else 'mean'; PCA 100; MCSS."""
    aggs = set(df_variation["aggregation"].astype(str))
    agg = "none" if aggs == {"none"} else "mean"
    return setting_name(agg, pca, search)


def _grid_text(g: pd.DataFrame) -> str:
    """``evaluated: aggregation mean, max; PCA 5, none; search mcss`` for one variation's rows."""
    g = sort_settings(g)
    parts = [f"{label} {', '.join(dict.fromkeys(g[col].astype(str)))}"
             for col, label in (("aggregation", "aggregation"), ("pca", "PCA"), ("search", "search"))]
    return "evaluated: " + "; ".join(parts)


def _paper_key(name: Any) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _registry(registry: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if registry is not None:
        return registry
    from soundsim.models import available

    return available()


def models_table(
    df: pd.DataFrame,
    registry: Mapping[str, Any] | None = None,
    paper: pd.DataFrame | None = None,
    pca: str = FIXED_PCA,
    search: str = FIXED_SEARCH,
    dataset: str | None = None,
) -> pd.DataFrame:
    """The paper's Table II: one row per model (sorted by name).

    Columns: ``model, modality, objective, params, data_size`` (from the
    registry's :class:`~soundsim.models.PaperInfo`; '-' for models not in the
    paper or not in the registry), ``dims`` (the registry's dimension of the
    variation; the embeddings' dimension for unregistered models), ``variation``
    (the model's best variation, :func:`best_settings`), ``level``,
    ``setting`` (the fixed setting, :func:`fixed_setting`: aggregation mean /
    none, PCA 100, MCSS) and its macro metrics ``map@<N>..., mr1``; then
    ``best_setting`` and ``best_map@<N>..., best_mr1`` (the variation's best
    setting, :data:`TIE_RULE`); when ``df`` has interval columns
    (:func:`add_intervals`), each metric is followed by its ``_lo, _hi``
    (``best_<metric>_lo, _hi`` for the best setting); ``note`` (empty, or why the fixed-setting
    values are NaN: that setting was not evaluated). ``registry``: model name
    -> ModelInfo (default :func:`soundsim.models.available`).

    Before ``note``: ``trained_on`` (the model's declared training data,
    :func:`soundsim.training_data.describe_training`), ``trained_on_collection``
    and ``training_note`` (:func:`soundsim.training_data.training_overlap` of the
    model and ``dataset``, the collection's dataset,
    :func:`soundsim.datasets.collection_dataset`; None: not declared, so
    ``unknown``).

    ``paper`` (a DataFrame read from the paper's table2.csv): adds
    ``paper_map@<N>..., paper_mr1`` for models whose name matches the paper's
    ``model`` column, compared case-insensitively and ignoring characters other
    than letters and digits (NaN for the others)."""
    _require(df, SETTING_KEYS + ["map@15"], "models_table")
    reg = _registry(registry)
    metrics = metric_columns(df)
    best = best_settings(df).set_index("model")
    rows = []
    for model in sorted(df["model"].unique(), key=str):
        b = best.loc[model]
        variation = b["variation"]
        g = df[(df["model"] == model) & (df["variation"] == variation)]
        info = reg.get(model)
        p = getattr(info, "paper", None)
        if info is not None:
            try:
                dims = info.dim_of(variation)
            except (KeyError, TypeError, ValueError):
                dims = b.get("dim")
        else:
            dims = b.get("dim")
        level = getattr(info, "level", None) or b.get("level")
        fixed = fixed_setting(g, pca, search)
        hit = g[g["setting"] == fixed]
        row: dict[str, Any] = {
            "model": model,
            "modality": p.modality if p else "-",
            "objective": p.objective if p else "-",
            "params": p.params if p else "-",
            "data_size": p.data_size if p else "-",
            "dims": int(dims) if dims is not None and not pd.isna(dims) else math.nan,
            "variation": variation,
            "level": level,
            "setting": fixed,
        }
        for m in metrics:
            row[m] = float(hit[m].iloc[0]) if len(hit) else math.nan
            for c in St.interval_columns(m):
                if c in df.columns:
                    row[c] = float(hit[c].iloc[0]) if len(hit) else math.nan
        row["best_setting"] = b["setting"]
        for m in metrics:
            row[f"best_{m}"] = float(b[m])
            for c in St.interval_columns(m):
                if c in df.columns:
                    row[f"best_{c}"] = float(b[c])
        overlap = TD.training_overlap(info, dataset)
        row["trained_on"] = TD.describe_training(info)
        row[TD.FLAG_COLUMN] = overlap.flag
        row["training_note"] = overlap.note
        if len(hit):
            row["note"] = ""
        else:
            row["note"] = f"fixed setting {fixed} was not evaluated for {variation} ({_grid_text(g)})"
        rows.append(row)
    out = pd.DataFrame(rows)
    if paper is not None:
        out = _add_paper(out, paper)
    return out


def _add_paper(out: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    if "model" not in paper.columns:
        raise TablesError("paper table: no 'model' column")
    pm = metric_names(paper.columns)
    lookup = {_paper_key(r["model"]): r for _, r in paper.iterrows()}
    out = out.copy()
    for m in pm:
        out[f"paper_{m}"] = [
            float(lookup[_paper_key(name)][m]) if _paper_key(name) in lookup else math.nan for name in out["model"]
        ]
    cols = [c for c in out.columns if c != "note"] + ["note"]
    return out[cols]


def _per_setting_csv(settings: Settings, models_df: pd.DataFrame, kind: str, first: str, what: str) -> pd.DataFrame:
    index = _index(settings)
    _require(models_df, ["model", "variation", "setting"], what)
    parts = []
    for _, r in models_df.iterrows():
        if "note" in models_df.columns and str(r.get("note") or "") not in ("", "nan"):
            log.warning("%s: %s/%s left out: %s", what, r["model"], r["variation"], r["note"])
            continue
        files = _files_of(index, r)
        if files is None:
            log.warning("%s: %s/%s/%s is not among the given settings; left out", what, r["model"], r["variation"],
                        r["setting"])
            continue
        path = files.file(kind)
        if not path.is_file():
            log.warning("%s: %s not found; %s/%s left out", what, path, r["model"], r["variation"])
            continue
        try:
            t = pd.read_csv(path, keep_default_na=True, na_values=["nan"])
        except (OSError, ValueError) as e:
            raise TablesError(f"{path}: unreadable ({e})") from None
        if first not in t.columns:
            raise TablesError(f"{path}: no '{first}' column")
        t[first] = t[first].astype(str)
        t.insert(0, "setting", r["setting"])
        t.insert(0, "variation", r["variation"])
        t.insert(0, "model", r["model"])
        parts.append(t)
    if not parts:
        return pd.DataFrame(columns=["model", "variation", "setting", first])
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["model", first], kind="mergesort").reset_index(drop=True)


def families_table(settings: Settings, models_df: pd.DataFrame) -> pd.DataFrame:
    """Family-averaged metrics (the paper's Fig. 2 data) for each model of
    ``models_df`` at its ``setting`` (the fixed setting of models.csv), read
    from that setting's ``per_family.csv`` (its file among ``settings``). Long
    format, sorted by model and family: ``model, variation, setting, family,
    n_labels, map@<N>..., mr1``. Models whose fixed setting was not evaluated
    (non-empty ``note``), is not among ``settings`` or has no such file are left
    out with a logged warning; the result may have no rows."""
    return _per_setting_csv(settings, models_df, "per_family", "family", "families_table")


def labels_table(settings: Settings, models_df: pd.DataFrame) -> pd.DataFrame:
    """Class-wise metrics for each model of ``models_df`` at its ``setting``,
    read from its ``per_label.csv`` (among ``settings``). Long format, sorted by
    model and label: ``model, variation, setting, label, n_clips, map@<N>...,
    mr1`` (NaN for labels with a single clip). Models without that setting are
    left out (as in :func:`families_table`)."""
    return _per_setting_csv(settings, models_df, "per_label", "label", "labels_table")


# --------------------------------------------------------------------------- uncertainty


def add_intervals(
    df: pd.DataFrame,
    settings: Settings,
    n_resamples: int = St.DEFAULT_RESAMPLES,
    confidence: float = St.DEFAULT_CONFIDENCE,
    seed: int = St.DEFAULT_SEED,
    batch: int = 32,
) -> pd.DataFrame:
    """``df`` (rows of :func:`collect`) with the bootstrap confidence interval
    of each macro metric beside it: ``map@<N>, map@<N>_lo, map@<N>_hi, ...,
    mr1, mr1_lo, mr1_hi`` (:func:`soundsim.stats.intervals`: stratified
    bootstrap, percentile interval at ``confidence``), read from each setting's
    ``per_query.parquet`` (its file among ``settings``). A setting that is not
    among ``settings`` or has no such file gets NaN intervals (and a logged
    warning). Family and micro values get no interval."""
    index = _index(settings)
    metrics = metric_columns(df)
    out = df.copy()
    lo = {m: [math.nan] * len(df) for m in metrics}
    hi = {m: [math.nan] * len(df) for m in metrics}
    todo: list[tuple[int, Path]] = []
    missing: list[str] = []
    for i, (_, r) in enumerate(df.iterrows()):
        f = _files_of(index, r)
        if f is not None and f.per_query.is_file():
            todo.append((i, f.per_query))
        else:
            missing.append(str(f.per_query) if f is not None else f"{r['model']}/{r['variation']}/{r['setting']}")
    if missing:
        log.warning("%d setting(s) have no per_query.parquet (intervals NaN), e.g. %s", len(missing), missing[0])
    designs: dict[str, St.Design] = {}
    for b0 in range(0, len(todo), batch):
        part = todo[b0 : b0 + batch]
        systems = {i: St.read_per_query(p) for i, p in part}
        ci = St.intervals(systems, n_resamples, confidence, seed, designs=designs)
        for r in ci.itertuples(index=False):
            if r.metric in lo:
                lo[r.metric][r.system] = r.lo
                hi[r.metric][r.system] = r.hi
    cols: list[str] = []
    for c in out.columns:
        cols.append(c)
        if c in metrics:
            lc, hc = St.interval_columns(c)
            out[lc], out[hc] = lo[c], hi[c]
            cols += [lc, hc]
    return out[cols]


_PAIR_SIDE = ["variation", "setting"]
#: the comparisons of pairwise.csv and the models.csv column naming each model's setting in it
COMPARISONS = (("fixed", "setting"), ("best", "best_setting"))


def _comparison_systems(index: Mapping[tuple[str, str, str], L.SettingFiles], models_df: pd.DataFrame,
                        comparison: str, what: str) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[str, str]]]:
    """The per-query values of every model of ``models_df`` at its setting of
    ``comparison`` (:data:`COMPARISONS`: ``fixed``, the ``setting`` column,
    models with a non-empty ``note`` left out; ``best``, ``best_setting``), and
    where they come from (model -> (variation, setting)); a model whose file is
    not among the settings or not on disk is left out with a logged warning."""
    col = dict(COMPARISONS)[comparison]
    systems: dict[str, pd.DataFrame] = {}
    where: dict[str, tuple[str, str]] = {}
    for _, r in models_df.iterrows():
        setting = str(r[col]) if not pd.isna(r[col]) else ""
        if col == "setting" and "note" in models_df.columns and str(r.get("note") or "") not in ("", "nan"):
            continue
        files = _files_of(index, r, setting) if setting else None
        if files is None or not files.per_query.is_file():
            where_ = files.per_query if files is not None else f"{r['model']}/{r['variation']}/{setting}"
            log.warning("%s: %s not found; %s left out of the %s comparison", what, where_, r["model"], comparison)
            continue
        systems[str(r["model"])] = St.read_per_query(files.per_query)
        where[str(r["model"])] = (str(r["variation"]), setting)
    return systems, where


def pairwise_table(
    settings: Settings,
    models_df: pd.DataFrame,
    n_resamples: int = St.DEFAULT_RESAMPLES,
    confidence: float = St.DEFAULT_CONFIDENCE,
    seed: int = St.DEFAULT_SEED,
) -> pd.DataFrame:
    """Paired bootstrap tests of every pair of models in ``models_df``
    (models.csv), :func:`soundsim.stats.pairwise`, twice: ``comparison``
    ``fixed`` (each model's variation at the paper's fixed setting, the
    ``setting`` column; models whose fixed setting was not evaluated are left
    out) and ``best`` (at the ``best_setting``; chosen on the same data, so
    these differences favour the tuned models a little). Holm's correction
    runs over all pairs of one comparison and metric. The per-query values are
    those of each setting's ``per_query.parquet`` among ``settings`` (a model
    whose setting is not among them, or has no such file, is left out).

    Columns: ``comparison, metric, a, a_variation, a_setting, b, b_variation,
    b_setting, a_value, b_value, diff`` (a - b), ``diff_lo, diff_hi, se, p,
    p_holm, significant, better, n_labels, n_queries, same_queries``. Empty
    (with these columns) when fewer than two models have per-query values."""
    index = _index(settings)
    _require(models_df, ["model", "variation", "setting"], "pairwise_table")
    parts = []
    for comparison, col in COMPARISONS:
        if col not in models_df.columns:
            continue
        systems, where = _comparison_systems(index, models_df, comparison, "pairwise_table")
        if len(systems) < 2:
            continue
        t = St.pairwise(systems, n_resamples, confidence, seed)
        for side in ("a", "b"):
            for k, name in enumerate(_PAIR_SIDE):
                t.insert(list(t.columns).index(side) + 1 + k, f"{side}_{name}", [where[m][k] for m in t[side]])
        t.insert(0, "comparison", comparison)
        metric = t.pop("metric")
        t.insert(1, "metric", metric)
        parts.append(t)
    cols = (["comparison", "metric", "a", "a_variation", "a_setting", "b", "b_variation", "b_setting"]
            + [c for c in St.PAIRWISE_COLUMNS if c not in ("a", "b", "metric")])
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


# --------------------------------------------------------------------------- ranks and tied groups

#: the rank columns :func:`add_ranks` adds to models.csv, per comparison (prefix + name)
RANK_FIELDS = ("rank", "rank_lo", "rank_hi", "p_first", "group")
#: comparison -> the prefix of its rank columns (best setting: none, as the issue names them)
RANK_PREFIX = {"best": "", "fixed": "fixed_"}
RANK_METRIC = "map@15"
_RANK_INTEGERS = {"rank", "rank_lo", "rank_hi"}


def rank_columns(comparison: str) -> list[str]:
    """``best`` -> ``rank, rank_lo, rank_hi, p_first, group``; ``fixed`` -> ``fixed_rank, ...``."""
    return [RANK_PREFIX[comparison] + f for f in RANK_FIELDS]


def _is_rank_integer(col: str) -> bool:
    return col.removeprefix("fixed_") in _RANK_INTEGERS


def add_ranks(
    models_df: pd.DataFrame,
    settings: Settings,
    pairwise_df: pd.DataFrame | None = None,
    metric: str = RANK_METRIC,
    n_resamples: int = St.DEFAULT_RESAMPLES,
    confidence: float = St.DEFAULT_CONFIDENCE,
    seed: int = St.DEFAULT_SEED,
) -> pd.DataFrame:
    """``models_df`` (models.csv) with each model's rank on ``metric``
    (MAP@15) and how stable it is, before ``note``: at the best setting
    ``rank, rank_lo, rank_hi, p_first, group``; at the paper's fixed setting
    the same with the prefix ``fixed_`` (:func:`rank_columns`).

    ``rank`` (1 = best), ``rank_lo``/``rank_hi`` (percentile interval of the
    ranks in the bootstrap replicates) and ``p_first`` (share of resamples in
    which the model is first): :func:`soundsim.stats.rank_intervals` over
    the models of that comparison of pairwise.csv (each model's
    ``per_query.parquet`` at its ``best_setting`` / ``setting``, as
    :func:`pairwise_table` reads them), with the same ``n_resamples`` and
    ``seed`` as the intervals, hence the same resamples. ``group``: the
    compact letter display (:func:`soundsim.stats.tied_groups`) of the
    Holm-corrected tests of ``pairwise_df`` (pairwise.csv; computed here when
    None) of that comparison and metric: models sharing a letter are not
    significantly different; the best model's letters start with ``a``.
    A model without per-query values at that setting (or whose fixed setting
    was not evaluated) gets NaN and an empty group. Models on different query
    sets are ranked on the queries all of them have."""
    _require(models_df, ["model", "variation", "setting", "best_setting"], "add_ranks")
    index = _index(settings)
    if pairwise_df is None:
        pairwise_df = pairwise_table(settings, models_df, n_resamples, confidence, seed)
    out = models_df.copy()
    names = [str(m) for m in out["model"]]
    for comparison in ("best", "fixed"):
        cols = dict(zip(RANK_FIELDS, rank_columns(comparison), strict=True))
        values: dict[str, dict[str, Any]] = {f: {} for f in RANK_FIELDS}
        systems, _ = _comparison_systems(index, models_df, comparison, "add_ranks")
        if systems:
            r = St.rank_intervals(systems, metric, n_resamples, confidence, seed)
            order = [str(x) for x in r.sort_values(["rank", "p_first", "system"], ascending=[True, False, True],
                                                   kind="mergesort")["system"]]
            pw = pairwise_df[pairwise_df["comparison"].astype(str) == comparison] \
                if pairwise_df is not None and "comparison" in pairwise_df.columns else pairwise_df
            groups = St.tied_groups(pw, order, metric)
            for t in r.itertuples(index=False):
                for f in ("rank", "rank_lo", "rank_hi", "p_first"):
                    values[f][str(t.system)] = getattr(t, f)
            values["group"] = groups
        for f in RANK_FIELDS:
            v = [values[f].get(m) for m in names]
            if f == "group":
                col = pd.Series([x or "" for x in v], index=out.index, dtype=object)
            elif f in _RANK_INTEGERS:
                col = pd.Series(pd.array(v, dtype="Int64"), index=out.index)
            else:
                col = pd.Series([math.nan if x is None else float(x) for x in v], index=out.index, dtype=float)
            out[cols[f]] = col
    new = [c for comp in ("best", "fixed") for c in rank_columns(comp)]
    rest = [c for c in out.columns if c not in new]
    at = rest.index("note") if "note" in rest else len(rest)
    return out[rest[:at] + new + rest[at:]]


# --------------------------------------------------------------------------- learned similarity heads

#: the query subsets of :func:`heads_table`, in row order
HEAD_SUBSETS = ("all", "seen", "unseen")

#: the columns of :func:`heads_table` (``heads.csv``)
HEADS_COLUMNS = [
    "head", "base", "variation", "subset", "metric", "head_setting", "base_setting",
    "head_value", "head_lo", "head_hi", "base_value", "base_lo", "base_hi",
    "diff", "diff_lo", "diff_hi", "se", "p", "p_holm", "significant", "better",
    "n_labels", "n_queries", "same_queries", "class_disjoint", "train_collection", "fingerprint",
]


def _head_meta(key: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """A head's ``head.json`` dict with what :func:`heads_table` needs checked:
    ``name`` (default: ``key``), ``base`` and ``variation`` (strings),
    ``train_labels`` / ``heldout_labels`` (lists of labels; default empty)."""
    if not isinstance(meta, Mapping):
        raise TablesError(f"head {key!r}: its metadata (head.json) is not an object")
    missing = [k for k in ("base", "variation") if not meta.get(k)]
    if missing:
        raise TablesError(f"head {key!r}: head.json lacks {', '.join(missing)}")
    out = dict(meta)
    out["name"] = str(meta.get("name") or key)
    for k in ("train_labels", "heldout_labels"):
        v = meta.get(k) or []
        if isinstance(v, str) or not isinstance(v, Sequence):
            raise TablesError(f"head {out['name']!r}: head.json '{k}' is not a list of labels")
        out[k] = [str(x) for x in v]
    return out


def _model_row(models_df: pd.DataFrame, model: str) -> pd.Series | None:
    hit = models_df[models_df["model"].astype(str) == model]
    return hit.iloc[0] if len(hit) else None


def _base_setting(settings: Settings, base_row: pd.Series, variation: str) -> str | None:
    """The base's setting to compare a head with: models.csv's ``best_setting``
    when that row is the head's variation, else the best setting (:data:`TIE_RULE`)
    of that variation among ``settings`` (None when it has none)."""
    if str(base_row["variation"]) == variation:
        return str(base_row["best_setting"])
    mine = [s for s in settings if s.model == str(base_row["model"]) and s.variation == variation]
    if not mine:
        return None
    best = best_settings(collect(mine))
    log.info("heads_table: %s's best variation in models.csv is %s; compared at %s/%s's best setting %s",
             base_row["model"], base_row["variation"], base_row["model"], variation, best["setting"].iloc[0])
    return str(best["setting"].iloc[0])


def _head_subsets(meta: Mapping[str, Any]) -> list[tuple[str, set[str] | None]]:
    """(subset name, its labels; None: every label): ``all``, and for a head
    with held-out labels ``seen`` (its train_labels) and ``unseen`` (heldout_labels)."""
    out: list[tuple[str, set[str] | None]] = [("all", None)]
    if meta["heldout_labels"]:
        out += [("seen", set(meta["train_labels"])), ("unseen", set(meta["heldout_labels"]))]
    return out


def _head_rows(name: str, meta: Mapping[str, Any], pq: Mapping[str, pd.DataFrame], where: Mapping[str, str],
               n_resamples: int, confidence: float, seed: int) -> list[dict[str, Any]]:
    """The rows of one head (before Holm): per subset and metric, both systems'
    intervals (:func:`soundsim.stats.intervals`) and the paired test of head - base
    (:func:`soundsim.stats.pairwise`)."""
    rows: list[dict[str, Any]] = []
    for subset, labels in _head_subsets(meta):
        sub = {k: df if labels is None else df[df["label"].astype(str).isin(labels)] for k, df in pq.items()}
        try:
            ci = St.intervals(sub, n_resamples, confidence, seed)
            pw = St.pairwise(sub, n_resamples, confidence, seed)
        except St.StatsError as e:
            log.warning("heads_table: %s vs %s, subset %s: no comparable queries (%s); left out", name,
                        meta["base"], subset, e)
            continue
        est = ci.set_index(["system", "metric"])
        for t in pw.itertuples(index=False):
            h, b = est.loc[("head", t.metric)], est.loc[("base", t.metric)]
            rows.append({
                "head": name, "base": str(meta["base"]), "variation": str(meta["variation"]), "subset": subset,
                "metric": t.metric, "head_setting": where["head"], "base_setting": where["base"],
                "head_value": float(h["estimate"]), "head_lo": float(h["lo"]), "head_hi": float(h["hi"]),
                "base_value": float(b["estimate"]), "base_lo": float(b["lo"]), "base_hi": float(b["hi"]),
                "diff": t.diff, "diff_lo": t.diff_lo, "diff_hi": t.diff_hi, "se": t.se, "p": t.p,
                "n_labels": t.n_labels, "n_queries": t.n_queries, "same_queries": bool(t.same_queries),
                "class_disjoint": bool(meta.get("class_disjoint", False)),
                "train_collection": str(meta.get("train_collection") or ""),
                "fingerprint": str(meta.get("fingerprint") or ""),
            })
    return rows


def _head_systems(index: Mapping[tuple[str, str, str], L.SettingFiles], settings: Settings,
                  models_df: pd.DataFrame, meta: Mapping[str, Any]
                  ) -> tuple[dict[str, pd.DataFrame], dict[str, str]] | None:
    """The per-query values (``head``, ``base``) and settings of one head's
    comparison, or None (with a logged warning) when one is missing."""
    name, base, variation = meta["name"], str(meta["base"]), str(meta["variation"])
    head_row, base_row = _model_row(models_df, name), _model_row(models_df, base)
    if head_row is None or base_row is None:
        log.warning("heads_table: %s is not in models.csv; head %s left out", name if head_row is None else base,
                    name)
        return None
    found = {"head": (str(head_row["variation"]), str(head_row["best_setting"])),
             "base": (variation, _base_setting(settings, base_row, variation))}
    pq: dict[str, pd.DataFrame] = {}
    for side, model in (("head", name), ("base", base)):
        var, setting = found[side]
        files = index.get((model, var, setting)) if setting else None
        if files is None or not files.per_query.is_file():
            what = files.per_query if files is not None else f"{model}/{var}/{setting or '(no setting)'}"
            log.warning("heads_table: %s not found; head %s left out", what, name)
            return None
        pq[side] = St.read_per_query(files.per_query)
    return pq, {side: s for side, (_, s) in found.items()}


def heads_table(
    settings: Settings,
    models_df: pd.DataFrame,
    heads: Mapping[str, Mapping[str, Any]],
    n_resamples: int = St.DEFAULT_RESAMPLES,
    confidence: float = St.DEFAULT_CONFIDENCE,
    seed: int = St.DEFAULT_SEED,
) -> pd.DataFrame:
    """Each learned similarity head against its frozen base model (``heads.csv``).

    ``heads``: head -> its metadata (the dict of ``heads/<head>/head.json``:
    ``name`` (the head's model name in models.csv, default the key), ``base``,
    ``variation`` (the base's variation the head was trained on), ``train_labels``,
    ``heldout_labels`` (empty unless ``class_disjoint``), ``class_disjoint``,
    ``train_collection``, ``fingerprint``). The head is compared at its
    ``best_setting`` of ``models_df`` (models.csv) with the base's variation
    at the base's best setting: models.csv's ``best_setting`` when its row is
    that variation, else that variation's best setting among ``settings``
    (:data:`TIE_RULE`). Best against best: both chosen on the evaluated data.

    One row per head, subset and metric (long format, like pairwise.csv; rows
    in the order of ``heads``, then subset, then metric). Subsets (:data:`HEAD_SUBSETS`):
    ``all`` (every query), and for a head with held-out labels ``seen`` (the
    queries of its ``train_labels``) and ``unseen`` (of its
    ``heldout_labels``); each system's ``per_query.parquet`` rows (one per
    (clip, label) pair) are kept by their ``label``, so a subset's macro value
    is the mean over its labels of ``per_label.csv``'s values. Per subset and
    metric: each system's macro value and bootstrap interval
    (:func:`soundsim.stats.intervals`; ``all``: models.csv's ``best_*``
    values) and the paired stratified bootstrap of ``diff`` = head - base
    (:func:`soundsim.stats.pairwise`: interval, ``se``, two-sided ``p``).

    **Holm's family**: every head-vs-base test of this table with the same
    subset and metric (e.g. two heads: two tests for ``all`` / ``map@15``), not
    pairwise.csv's family of all pairs of models (fewer tests, so ``p_holm``
    here is usually smaller than the same pair's ``p_holm`` there). ``significant``:
    ``p_holm < 1 - confidence``; ``better``: ``head`` or ``base`` when
    significant (higher MAP, lower MR1), else empty.

    Columns: :data:`HEADS_COLUMNS` (``n_labels, n_queries``: the compared
    queries; ``same_queries`` False: compared on the queries both have). A
    head whose model or base is not in ``models_df``, or whose per-query file
    is not among ``settings`` or not on disk, is left out with a logged
    warning; so is a subset without queries to resample. Empty (with these
    columns) when no head can be compared; malformed metadata (no ``base`` or
    ``variation``) raises :class:`TablesError` naming the head."""
    _require(models_df, ["model", "variation", "best_setting"], "heads_table")
    index = _index(settings)
    rows: list[dict[str, Any]] = []
    for key, raw in heads.items():
        meta = _head_meta(str(key), raw)
        found = _head_systems(index, settings, models_df, meta)
        if found is not None:
            rows += _head_rows(meta["name"], meta, found[0], found[1], n_resamples, confidence, seed)
    if not rows:
        return pd.DataFrame(columns=HEADS_COLUMNS)
    out = pd.DataFrame(rows)
    out["p_holm"] = math.nan
    for _, idx in out.groupby(["subset", "metric"], sort=False).groups.items():
        out.loc[idx, "p_holm"] = St.holm(out.loc[idx, "p"].to_numpy())
    out["significant"] = out["p_holm"] < 1.0 - float(confidence)
    head_better = [d < 0 if m == "mr1" else d > 0 for d, m in zip(out["diff"], out["metric"], strict=True)]
    out["better"] = [("head" if hb else "base") if s else "" for hb, s in zip(head_better, out["significant"],
                                                                            strict=True)]
    return out[HEADS_COLUMNS]


# --------------------------------------------------------------------------- training data


def training_flags(models_df: pd.DataFrame) -> dict[str, str]:
    """Model -> its ``trained_on_collection`` value in ``models_df`` (models.csv)."""
    if TD.FLAG_COLUMN not in models_df.columns:
        return {}
    return {str(m): str(f) for m, f in zip(models_df["model"], models_df[TD.FLAG_COLUMN], strict=True)}


def add_training_flag(df: pd.DataFrame, flags: Mapping[str, str], model_col: str = "model",
                      column: str = TD.FLAG_COLUMN) -> pd.DataFrame:
    """``df`` with ``column`` appended: the flag of the model in ``model_col``
    (``flags``: :func:`training_flags`; ``unknown`` for a model not in it)."""
    out = df.copy()
    out[column] = [flags.get(str(m), "unknown") for m in out[model_col]] if len(out) else pd.Series(dtype=str)
    return out


def _flagged(r: pd.Series) -> bool:
    return str(r.get(TD.FLAG_COLUMN, "")) == "true"


def training_notes(models_df: pd.DataFrame) -> tuple[str, list[str]]:
    """What models.md says about training data: a sentence for its explanation
    (:data:`soundsim.training_data.MARKER` when a model is flagged; the reason when
    every model's flag is unknown for the same reason) and one note per flagged
    model (``model: † trained on FSD50K (dev split): not zero-shot``) or per model
    whose own training data is not declared."""
    if TD.FLAG_COLUMN not in models_df.columns or models_df.empty:
        return "", []
    flags = models_df[TD.FLAG_COLUMN].astype(str)
    notes_col = models_df["training_note"].fillna("").astype(str) if "training_note" in models_df.columns \
        else pd.Series([""] * len(models_df), index=models_df.index)
    unknown = set(notes_col[flags == "unknown"])
    if (flags == "unknown").all() and len(unknown) == 1:
        return f"Training data: whether a model was trained on this collection is unknown ({unknown.pop()}).", []
    notes = []
    for (_, r), flag, note in zip(models_df.iterrows(), flags, notes_col, strict=True):
        if flag == "true":
            notes.append(f"{r['model']}: {TD.MARKER} {note}")
        elif flag == "unknown":
            notes.append(f"{r['model']}: training data vs this collection unknown ({note})")
    sentence = (f"{TD.MARKER}: trained on data that includes this collection's dataset (from its paper / model "
                "card; see the notes): not zero-shot." if (flags == "true").any() else "")
    return sentence, notes


# --------------------------------------------------------------------------- output


def _fmt(v: Any, col: str, markdown: bool = True) -> str:
    if v is pd.NA:
        return "n/a"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if (col == "dims" or _is_rank_integer(col)) and v.is_integer():
            return str(int(v))
        return f"{v:.2f}" if col.endswith("mr1") else f"{v:.3f}"
    s = "" if v is None else str(v)
    return s.replace("|", "\\|") if markdown else s


_MD_HEADERS = {
    "model": "Model", "modality": "Modality", "objective": "Pre-training objective", "params": "# Param.",
    "data_size": "Data size", "dims": "# Dim.", "variation": "Variation", "best_setting": "Best setting",
    # models.md's convention: unprefixed = the fixed setting, "best" = the best setting
    "rank": "best rank", "p_first": "best P(1st)", "group": "best group",
    "fixed_rank": "Rank", "fixed_p_first": "P(1st)", "fixed_group": "Group",
}


def _md_header(col: str) -> str:
    if col in _MD_HEADERS:
        return _MD_HEADERS[col]
    prefix = ""
    for p, label in (("best_", "best "), ("paper_", "paper ")):
        if col.startswith(p):
            prefix, col = label, col[len(p):]
    m = _MAP_RE.match(col)
    name = f"MAP@{m.group(1)} ↑" if m else ("MR1 ↓" if col == "mr1" else col)
    return prefix + name


def _is_panel(col: str) -> bool:
    """A column of the retrieval panel (``ndcg@15``, ``best_mrr``, ...), not of the paper's metrics."""
    name = re.sub(r"^(best_|paper_)", "", col)
    return measures.is_metric(name) and not measures.is_paper_metric(name)


def _is_interval(col: str) -> bool:
    return col.endswith(("_lo", "_hi")) and bool(metric_names([re.sub(r"^(best_|paper_)", "", col[:-3])]))


def models_display(
    models_df: pd.DataFrame, confidence: float | None = None, markdown: bool = True
) -> tuple[pd.DataFrame, str, list[str]]:
    """The models table as ``models.md`` (and its HTML page) show it: a
    table of display strings (headers such as ``MAP@15 ↑``; MAP to 3
    decimals, MR1 to 2, n/a for NaN; a metric with interval columns shows
    ``value [lo, hi]``; a model trained on the collection's dataset is marked
    :data:`soundsim.training_data.MARKER`; ``attrs["numeric"]``: which columns
    are numbers), the sentence that explains it (``confidence``: the
    intervals' level, named there; the marker) and the notes (``model: note``,
    then :func:`training_notes`). ``markdown``: escape ``|`` in
    text cells (for a Markdown table)."""
    _require(models_df, ["model"], "models_markdown")
    hidden = ("note", "level", "setting", "trained_on", TD.FLAG_COLUMN, "training_note")
    # the retrieval panel's columns stay in models.csv (too many for one readable table)
    cols = [c for c in models_df.columns if c not in hidden and not _is_interval(c) and not _is_panel(c)]
    cols, rank_note = _rank_display(models_df, cols, confidence)
    has_ci = any(_is_interval(c) for c in models_df.columns)
    fixed = "; ".join(setting_label(x) for x in sorted({str(x) for x in models_df.get("setting", [])}))
    intro = (
        f"Unprefixed metrics: each model's variation at the paper's fixed setting ({fixed}); "
        "best: that variation's best setting by macro MAP@15. Averages of class-wise metrics."
        + (f" In brackets: {St.confidence_text(confidence) + ' ' if confidence else ''}bootstrap confidence "
           "interval (queries resampled within labels; see pairwise.csv for which differences are significant)."
           if has_ci else "")
    )
    training_sentence, training = training_notes(models_df)
    if training_sentence:
        intro += " " + training_sentence

    def cell(r: pd.Series, c: str) -> str:
        text = _fmt(setting_label(r[c]) if c == "best_setting" else r[c], c, markdown)
        if c == "model" and _flagged(r):
            text += f" {TD.MARKER}"
        lo, hi = f"{c}_lo", f"{c}_hi"
        if lo in r.index and hi in r.index and not (pd.isna(r[lo]) or pd.isna(r[hi])):
            text += f" [{_fmt(float(r[lo]), c)}, {_fmt(float(r[hi]), c)}]"
        return text

    table = pd.DataFrame([[cell(r, c) for c in cols] for _, r in models_df.iterrows()],
                         columns=[_md_header(c) for c in cols])
    table.attrs["numeric"] = [pd.api.types.is_numeric_dtype(models_df[c]) and c not in ("model", "variation")
                              for c in cols]
    notes = [f"{r['model']}: {r['note']}" for _, r in models_df.iterrows()
             if "note" in models_df.columns and str(r["note"] or "") not in ("", "nan")]
    return table, intro, ([rank_note] if rank_note else []) + notes + training


def _rank_display(models_df: pd.DataFrame, cols: list[str], confidence: float | None) -> tuple[list[str], str]:
    """The displayed columns with the rank columns of :func:`add_ranks` placed
    (the fixed setting's before ``best_setting``, the best setting's after the
    last ``best_`` metric; ``_lo``/``_hi`` shown in brackets; a comparison
    without any rank left out), and the footnote that explains them ('' without)."""
    shown: dict[str, list[str]] = {}
    for comparison in ("fixed", "best"):
        rank, lo, hi, p_first, group = rank_columns(comparison)
        if rank in models_df.columns and pd.to_numeric(models_df[rank], errors="coerce").notna().any():
            shown[comparison] = [c for c in (rank, p_first, group) if c in models_df.columns]
    every = {c for comp in ("fixed", "best") for c in rank_columns(comp)}
    out = [c for c in cols if c not in every]
    if not shown:
        return out, ""
    if "fixed" in shown:
        at = out.index("best_setting") if "best_setting" in out else len(out)
        out[at:at] = shown["fixed"]
    if "best" in shown:
        best_metrics = [i for i, c in enumerate(out) if c.startswith("best_") and c != "best_setting"]
        at = best_metrics[-1] + 1 if best_metrics else len(out)
        out[at:at] = shown["best"]
    which = " and ".join(w for w, comp in (("the fixed setting (Rank, P(1st), Group)", "fixed"),
                                           ("the best setting (best rank, best P(1st), best group)", "best"))
                         if comp in shown)
    level = f"{St.confidence_text(confidence)} " if confidence else ""
    note = (f"Ranks by macro MAP@15 at {which}: 1 = best; in brackets the {level}bootstrap interval of the rank "
            "(the same resamples as the other intervals, every model ranked in each resample); P(1st): the share "
            "of resamples in which the model ranks first. Group: models that share a letter are not "
            "significantly different (Holm-corrected paired tests of pairwise.csv, compact letter display); "
            "models with no letter in common are.")
    return out, note


def models_markdown(models_df: pd.DataFrame, collection: str | None = None, confidence: float | None = None) -> str:
    """``models_df`` as a Markdown document: a title, one table (header row,
    one row per model, cells as :func:`models_display` writes them) and notes.
    ``confidence``: the intervals' level, named in the text."""
    table, intro, notes = models_display(models_df, confidence)
    lines = [f"# Semantic sound similarity per model{f' ({collection})' if collection else ''}", "", intro, ""]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in table.attrs["numeric"]) + "|")
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(row) + " |")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_tables` (or ``heads.csv``, :func:`heads_table`;
    ``pca`` and names kept as strings, empty text columns as '')."""
    str_cols = {c: str for c in ("model", "variation", "aggregation", "pca", "search", "setting", "best_setting",
                                 "family", "label", "note", "modality", "objective", "params", "data_size",
                                 "comparison", "metric", "a", "a_variation", "a_setting", "b", "b_variation",
                                 "b_setting", "better", "trained_on", "training_note", TD.FLAG_COLUMN,
                                 "head", "base", "subset", "head_setting", "base_setting", "train_collection",
                                 "fingerprint", "group", "fixed_group",
                                 f"a_{TD.FLAG_COLUMN}", f"b_{TD.FLAG_COLUMN}")}
    df = pd.read_csv(path, dtype=str_cols, keep_default_na=False, na_values=["nan", ""])
    for c in ("note", "better", "trained_on", "training_note", "train_collection", "fingerprint", "group",
              "fixed_group"):
        if c in df.columns:
            df[c] = df[c].fillna("")
    return df


def write_tables(
    settings: Settings,
    out_dir: str | Path,
    paper_table2: pd.DataFrame | str | Path | None = None,
    registry: Mapping[str, Any] | None = None,
    collection: str | None = None,
    n_resamples: int = St.DEFAULT_RESAMPLES,
    confidence: float = St.DEFAULT_CONFIDENCE,
    seed: int = St.DEFAULT_SEED,
    dataset: str | None = None,
) -> dict[str, Path]:
    """Tabulate ``settings`` (:func:`collect`; only their files are read) and
    write every table under ``out_dir``, each atomically (CSV: NaN as ``nan``,
    full precision): ``all_settings.csv``, ``best_settings.csv``,
    ``models.csv``, ``models.md``, ``families.csv``, ``labels.csv``,
    ``pairwise.csv`` (names: :data:`soundsim.layout.TABLES`). ``paper_table2``
    (the paper's table2.csv, path or DataFrame) adds the ``paper_*`` columns to
    models.*. The macro metrics get bootstrap intervals (:func:`add_intervals`;
    ``n_resamples``, ``confidence``, ``seed``) and pairwise.csv the paired
    tests (:func:`pairwise_table`); models.* get each model's rank, its interval,
    ``p_first`` and group letters at the best and the fixed setting
    (:func:`add_ranks`, from the same resamples). ``collection`` names the collection in
    models.md (default: the results tree's collection the settings sit in).
    ``dataset``: the collection's dataset (:func:`soundsim.datasets.collection_dataset`;
    None: not declared), which sets the training-data flag of every table
    (:func:`models_table`, :func:`add_training_flag`). Returns table key -> path (keys :data:`soundsim.layout.SUMMARY_TABLES`:
    ``all_settings, best_settings, models, models_md, families, labels,
    pairwise``)."""
    settings = list(settings)
    collection = collection or next((s.collection for s in settings if s.collection), None)
    df = add_intervals(collect(settings), settings, n_resamples, confidence, seed)
    paper = paper_table2
    if paper is not None and not isinstance(paper, pd.DataFrame):
        paper = pd.read_csv(paper)
    models = models_table(df, registry, paper, dataset=dataset)
    tables = {
        "all_settings": all_settings(df),
        "best_settings": best_settings(df),
        "models": models,
        "families": families_table(settings, models),
        "labels": labels_table(settings, models),
        "pairwise": pairwise_table(settings, models, n_resamples, confidence, seed),
    }
    models = tables["models"] = add_ranks(models, settings, tables["pairwise"], RANK_METRIC, n_resamples,
                                          confidence, seed)
    flags = training_flags(models)
    for key in ("all_settings", "best_settings", "families", "labels"):
        tables[key] = add_training_flag(tables[key], flags)
    for side in ("a", "b"):
        tables["pairwise"] = add_training_flag(tables["pairwise"], flags, side, f"{side}_{TD.FLAG_COLUMN}")
    paths = {key: write_csv_atomic(t, L.table_file(out_dir, key)) for key, t in tables.items()}
    paths["models_md"] = write_text_atomic(L.table_file(out_dir, "models_md"),
                                           models_markdown(models, collection, confidence))
    paths = {key: paths[key] for key in L.SUMMARY_TABLES}
    log.info("wrote %d table(s) under %s", len(paths), out_dir)
    return paths
