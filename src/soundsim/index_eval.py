"""Approximate search in the evaluation: one setting under each vector index type.

The evaluation (:mod:`soundsim.evaluate`) ranks every clip against all others
exactly. A similarity service searches a vector index (:mod:`soundsim.ann`,
faiss) instead. This module measures what that costs: for one model variation,
its best setting by macro MAP@15 (:func:`best_setting`, the tie rule of
:func:`soundsim.tables.best_settings`), the setting's processing recomputed
with the evaluator's own code (:func:`processed_matrix`), then for every index
type of ``grid.indexes`` (:func:`evaluate_indexes`):

* the index is built on the processed vectors (:meth:`soundsim.ann.VectorIndex.build`,
  ``build_s`` measured);
* every clip is a query, itself excluded, for its top ``K`` (``K`` = the largest
  cutoff, at most N - 1), one query at a time on one thread (faiss
  ``omp_set_num_threads(1)``, restored afterwards): each query's wall time is a
  latency sample (``latency_ms_p50``, ``latency_ms_p99``; measured figures,
  they depend on the machine);
* the retrieved lists are scored with soundsim's metric code
  (:func:`list_metrics`: AP@N of :func:`soundsim.metrics.precision_sums` over
  ``D = min(N, n_L)``, per label, macro and family means as the evaluation
  does, multi-parent labels left out by ``families``), and compared with
  exact search (``exact`` = ``flat`` with exact float64 re-ranking, which
  returns the evaluation's own top-K, so its MAP@N equals ``summary.json``'s).

**MR1 under an index** (``mr1@K``): the retrieved list has only K items, so the
rank of the first relevant clip is defined on it: the 0-based position of the
first relevant clip within the list, **censored at K** (the list length) when
none was retrieved. It differs from the evaluation's R1 / MR1, which ranks the
*whole* collection (a query with no relevant clip in its top-K gets its true
rank there, possibly far beyond K): ``mr1@K <= MR1``, equal when every query
finds a relevant clip in its top K. ``mr1@K`` is computed for ``exact`` too,
so the rows compare.

**Memory**: ``memory_bytes_per_sound`` is the serialised faiss index
(:meth:`soundsim.ann.VectorIndex.memory_bytes`) divided by N. The exact
re-ranking of every type except ``freesound`` also reads the candidates'
float64 vectors (8 D bytes per sound, ``rerank_bytes_per_sound``; they may stay
on disk, memory-mapped), which the first column does not count.

``freesound`` (Freesound's production preset) keeps faiss's order and, as in
production, drops results whose cosine similarity to the query is below its
``min_similarity`` (0.7): :meth:`~soundsim.ann.VectorIndex.search` does not
apply that threshold, :func:`retrieve` does.

One row per index type (:data:`COLUMNS`; ``exact`` first, added when
``grid.indexes`` lacks it, since the comparisons need it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundsim import ann as A
from soundsim import layout as L
from soundsim import metrics as M
from soundsim import process as P
from soundsim.errors import ConfigError, SoundsimError
from soundsim.fileutil import write_csv_atomic

log = logging.getLogger(__name__)

#: the index names ``grid.indexes`` accepts: ``exact`` and :data:`soundsim.ann.INDEX_TYPES`
INDEX_NAMES = (A.EXACT, *A.INDEX_TYPES)
#: the columns of the front of a row (then the metric columns of :func:`columns`)
FRONT = ["model", "variation", "setting", "index", "params", "n_clips", "k"]


class IndexEvalError(SoundsimError):
    """The indexes of a setting cannot be evaluated as asked (names the file or key)."""


# --------------------------------------------------------------------------- config


def index_plan(grid: Mapping[str, Any]) -> list[str]:
    """The index types a (validated) ``grid`` config asks for, ``exact`` first: [] when
    ``grid.indexes`` is absent or empty (no index evaluation), else ``exact`` (added when
    missing) and the others in config order."""
    asked = [str(t) for t in (grid.get("indexes") or [])]
    if not asked:
        return []
    return [A.EXACT] + [t for t in asked if t != A.EXACT]


def check_index_config(grid: Mapping[str, Any], n: int | None = None, d: int = 128) -> list[str]:
    """Check ``grid.indexes`` and ``grid.index_params`` as :func:`soundsim.ann.make_spec`
    would (type names, parameter names and values), for ``n`` vectors (default 10,000)
    of dimension ``d``; returns :func:`index_plan`. A problem raises
    :class:`soundsim.errors.ConfigError` naming ``grid.index_params.<type>`` (or
    ``grid.indexes``); parameters of a type not in ``grid.indexes`` are an error too, and so is
    a non-empty ``grid.indexes`` without faiss installed."""
    plan = index_plan(grid)
    params = dict(grid.get("index_params") or {})
    for t in plan:
        try:
            A.make_spec(t, "mcss", n or 10_000, d, params.get(t))
        except A.IndexError_ as e:
            key = f"grid.index_params.{t}" if params.get(t) else "grid.indexes"
            raise ConfigError(f"config: {key}: {e}") from None
    if plan:
        from soundsim.extras import is_installed

        if not is_installed("faiss"):
            raise ConfigError("config: grid.indexes needs faiss (pip install 'soundsim[service]', or faiss-cpu); "
                              "or set grid.indexes: [] to leave approximate search out")
    extra = sorted(set(params) - set(plan))
    if extra:
        raise ConfigError(f"config: grid.index_params: parameters for {', '.join(map(repr, extra))}, which "
                          f"grid.indexes does not list ({', '.join(plan) or 'empty'})")
    return plan


# --------------------------------------------------------------------------- the setting


def best_setting(summaries: Sequence[str | Path]) -> L.Setting:
    """The best of one model variation's settings by macro MAP@15, read from their
    ``summary.json`` files (:func:`soundsim.tables.best_settings`: the tie rule of
    ``best_settings.csv``)."""
    from soundsim import tables as T

    files = [L.setting_files_of(p) for p in summaries]
    if not files:
        raise IndexEvalError("no settings' summary.json given to choose the best setting from")
    if len({(f.model, f.variation) for f in files}) != 1:
        raise IndexEvalError("best_setting: the summaries are not of one model variation: "
                             + ", ".join(sorted({f"{f.model}/{f.variation}" for f in files})))
    best = T.best_settings(T.collect(files))
    return L.parse_setting(str(best["setting"].iloc[0]))


def processed_matrix(emb: Any, aggregation: str, pca: int | str | None, seed: int = 0) -> np.ndarray:
    """The processing output ``Z`` (N, D) float64 of one setting, exactly as
    :func:`soundsim.evaluate.compute_grid` makes it: :func:`soundsim.process.aggregate`,
    :func:`~soundsim.process.normalise` in the file's order, :func:`~soundsim.process.pca_reduce`."""
    order = P.processing_order(emb.attrs)
    X = P.aggregate(emb.embeddings, emb.offsets, aggregation, emb.fnames)
    Xn = P.normalise(X, order, emb.fnames, f"aggregation {aggregation}")
    Z, _ = P.pca_reduce(Xn, P.parse_pca(pca), seed)
    return Z


# --------------------------------------------------------------------------- metrics of retrieved lists


def list_metrics(ids: np.ndarray, index: M.LabelIndex, cutoffs: Sequence[int]) -> tuple[M.MetricResult, int]:
    """Metrics of retrieved lists ``ids`` (N, K) int (row q: query q's results, best
    first, the query itself not among them, -1 = nothing retrieved there): a
    :class:`soundsim.metrics.MetricResult` whose MAP@N are the evaluation's definitions
    (class-wise AP@N = :func:`soundsim.metrics.precision_sums` over the first
    ``min(N, K)`` positions / ``min(N, n_L)``; micro: any shared label, / N; labels with
    one clip NaN), and whose ``mr1`` is **mr1@K**: the 0-based position of the first
    relevant result, K when none is in the list (micro: min over the query's labels).
    Returns (result, K). With the evaluation's own top-K lists, MAP@N equals the
    evaluation's bit for bit."""
    ids = np.asarray(ids, dtype=np.int64)
    cutoffs = M.check_cutoffs(cutoffs)
    n, k = ids.shape
    if n != index.n_clips:
        raise IndexEvalError(f"retrieved lists for {n} queries, but {index.n_clips} clips are labelled")
    ix = index
    got = ids >= 0
    safe = np.where(got, ids, 0)
    rel = ix.Y[safe[ix.pair_q], ix.pair_l[:, None]] & got[ix.pair_q]  # (P, K)
    n_l = ix.counts[ix.pair_l]
    valid = n_l >= 2
    csum = M.precision_sums(rel)
    pair_ap = {c: np.where(valid, csum[:, min(c, k) - 1] / np.minimum(c, n_l), np.nan) for c in cutoffs}
    found = rel.any(axis=1)
    pair_r1 = np.where(valid, np.where(found, rel.argmax(axis=1), k), np.nan).astype(np.float64)
    starts = ix.pair_start[:-1]
    rel_m = np.logical_or.reduceat(rel, starts, axis=0)
    r1_m = np.minimum.reduceat(np.where(valid, pair_r1, np.inf), starts)
    ok_q = np.isfinite(r1_m)
    csum_m = M.precision_sums(rel_m)
    query_ap = {c: np.where(ok_q, csum_m[:, min(c, k) - 1] / c, np.nan) for c in cutoffs}
    ok_lab = ix.counts >= 2
    denom = np.where(ok_lab, ix.counts, 1).astype(np.float64)

    def per_label(v: np.ndarray) -> np.ndarray:
        s = np.bincount(ix.pair_l, weights=np.nan_to_num(v, nan=0.0), minlength=len(ix.labels))
        return np.where(ok_lab, s / denom, np.nan)

    def mean(v: np.ndarray) -> float:
        return float(np.mean(v)) if v.size else float("nan")

    result = M.MetricResult(
        cutoffs=list(cutoffs), labels=list(ix.labels), n_clips=ix.counts.copy(),
        label_map={c: per_label(pair_ap[c]) for c in cutoffs}, label_mr1=per_label(pair_r1),
        micro_map={c: mean(query_ap[c][ok_q]) for c in cutoffs}, micro_mr1=mean(r1_m[ok_q]),
        n_micro_queries=int(ok_q.sum()), pair_ap=pair_ap, pair_r1=pair_r1, query_ap=query_ap,
        query_r1=np.where(ok_q, r1_m, np.nan),
    )
    return result, k


def recall_at(ids: np.ndarray, exact_ids: np.ndarray, n: int) -> float:
    """Mean over queries of ``|top-n(ids) ∩ top-n(exact_ids)| / |top-n(exact_ids)|`` (the
    exact list's -1 padding not counted): recall@n of approximate search against exact."""
    a, e = np.asarray(ids)[:, :n], np.asarray(exact_ids)[:, :n]
    hits = np.array([np.intersect1d(x[x >= 0], y[y >= 0]).size for x, y in zip(a, e, strict=True)], dtype=float)
    size = (e >= 0).sum(axis=1)
    return float(np.mean(np.where(size > 0, hits / np.maximum(size, 1), np.nan)))


# --------------------------------------------------------------------------- searching


@dataclass
class IndexRun:
    """One index type's build and search: the retrieved lists and what was measured."""

    name: str  # as asked (``exact``, ``hnsw``, ...)
    spec: A.IndexSpec
    ids: np.ndarray  # (N, K) int64, -1 padded
    build_s: float
    latencies_s: np.ndarray  # (N,) one query at a time, one thread
    memory_bytes: int


def retrieve(vi: A.VectorIndex, Z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row of ``Z`` as a query against ``vi``, itself excluded, top ``k``; one query at
    a time on one faiss thread (the previous thread count restored). Returns (ids (N, k),
    seconds per query). ``min_similarity`` in the spec (``freesound``): results whose cosine
    to the query is below it are dropped (the list is padded with -1), as in production."""
    faiss = A._faiss()
    n = Z.shape[0]
    ids = np.full((n, k), -1, dtype=np.int64)
    lat = np.empty(n, dtype=np.float64)
    min_sim = vi.spec.params.get("min_similarity")
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for i in range(n):
            t0 = time.perf_counter()
            got, _ = vi.search(Z[i : i + 1], k, np.array([i], dtype=np.int64))
            row = got[0]
            if min_sim is not None:
                keep = row >= 0
                keep[keep] = A.cosine_to(Z, Z[i], row[keep]) >= float(min_sim)
                row = np.concatenate([row[keep], np.full(k - int(keep.sum()), -1, dtype=np.int64)])
            lat[i] = time.perf_counter() - t0
            ids[i] = row
    finally:
        faiss.omp_set_num_threads(threads)
    return ids, lat


def run_index(name: str, Z: np.ndarray, search: str, k: int, params: Mapping[str, Any] | None = None) -> IndexRun:
    """Build index ``name`` (:func:`soundsim.ann.make_spec` for ``Z``'s shape and ``params``)
    on ``Z`` and :func:`retrieve` every clip's top ``k``."""
    n, d = Z.shape
    spec = A.make_spec(name, search, n, d, params)
    t0 = time.perf_counter()
    vi = A.VectorIndex.build(Z, spec)
    build_s = time.perf_counter() - t0
    ids, lat = retrieve(vi, Z, k)
    return IndexRun(name, spec, ids, build_s, lat, vi.memory_bytes())


# --------------------------------------------------------------------------- the table


def columns(cutoffs: Sequence[int], k: int) -> list[str]:
    """The columns of an indexes table: :data:`FRONT`, ``map@<N>`` per cutoff,
    ``family_map@<N>``, ``mr1@<K>``, ``family_mr1@<K>``, ``recall@<N0>`` and
    ``delta_map@<N0>`` (N0 the smallest cutoff; vs exact), ``memory_bytes_per_sound``,
    ``rerank_bytes_per_sound``, ``build_s``, ``latency_ms_p50``, ``latency_ms_p99``."""
    cutoffs = M.check_cutoffs(cutoffs)
    c0 = cutoffs[0]
    return (FRONT + [f"map@{c}" for c in cutoffs] + [f"family_map@{c}" for c in cutoffs]
            + [f"mr1@{k}", f"family_mr1@{k}", f"recall@{c0}", f"delta_map@{c0}", "memory_bytes_per_sound",
               "rerank_bytes_per_sound", "build_s", "latency_ms_p50", "latency_ms_p99"])


def index_row(run: IndexRun, index: M.LabelIndex, families: Mapping[str, Sequence[str]], cutoffs: Sequence[int],
              exact_ids: np.ndarray, exact_map: float | None, d: int) -> dict[str, Any]:
    """One row of the table (without model, variation, setting) for ``run``."""
    cutoffs = M.check_cutoffs(cutoffs)
    res, k = list_metrics(run.ids, index, cutoffs)
    macro = res.macro()
    fam = M.family_mean(res.per_family(families), cutoffs)
    c0 = cutoffs[0]
    n = run.ids.shape[0]
    row: dict[str, Any] = {"index": run.name, "params": json.dumps(run.spec.params, sort_keys=True),
                           "n_clips": n, "k": k}
    row.update({f"map@{c}": macro[f"map@{c}"] for c in cutoffs})
    row.update({f"family_map@{c}": fam[f"map@{c}"] for c in cutoffs})
    row[f"mr1@{k}"], row[f"family_mr1@{k}"] = macro["mr1"], fam["mr1"]
    row[f"recall@{c0}"] = recall_at(run.ids, exact_ids, min(c0, k))
    row[f"delta_map@{c0}"] = macro[f"map@{c0}"] - exact_map if exact_map is not None else 0.0
    row["memory_bytes_per_sound"] = run.memory_bytes / n
    row["rerank_bytes_per_sound"] = 0 if run.spec.type == "freesound" else 8 * d
    row["build_s"] = run.build_s
    row["latency_ms_p50"] = float(np.percentile(run.latencies_s, 50) * 1e3)
    row["latency_ms_p99"] = float(np.percentile(run.latencies_s, 99) * 1e3)
    return row


def evaluate_indexes(Z: np.ndarray, index: M.LabelIndex, families: Mapping[str, Sequence[str]], search: str,
                     cutoffs: Sequence[int], indexes: Sequence[str],
                     index_params: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """The indexes table of one setting's processed vectors ``Z`` (N, D) float64 under
    ``search``: one row per index type of ``indexes`` (``exact`` first, added when
    missing; :func:`index_plan`), columns :func:`columns` without model, variation and
    setting (filled with ''). ``index_params``: type -> parameters
    (:func:`soundsim.ann.make_spec`)."""
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    cutoffs = M.check_cutoffs(cutoffs)
    k = min(cutoffs[-1], Z.shape[0] - 1)
    plan = index_plan({"indexes": list(indexes)}) or [A.EXACT]
    params = dict(index_params or {})
    rows: list[dict[str, Any]] = []
    exact_ids: np.ndarray | None = None
    exact_map: float | None = None
    for name in plan:
        run = run_index(name, Z, search, k, params.get(name))
        if exact_ids is None:
            exact_ids = run.ids
        row = index_row(run, index, families, cutoffs, exact_ids, exact_map, Z.shape[1])
        if exact_map is None:
            exact_map = float(row[f"map@{cutoffs[0]}"])
        rows.append({"model": "", "variation": "", "setting": "", **row})
        log.info("%s: map@%d=%.4f recall@%d=%.4f %.0f B/sound, p50 %.3f ms", name, cutoffs[0],
                 row[f"map@{cutoffs[0]}"], cutoffs[0], row[f"recall@{cutoffs[0]}"], row["memory_bytes_per_sound"],
                 row["latency_ms_p50"])
    return pd.DataFrame(rows, columns=columns(cutoffs, k))


def check_exact(table: pd.DataFrame, summary: Mapping[str, Any], cutoffs: Sequence[int], tol: float = 1e-9
                ) -> list[str]:
    """Where the table's ``exact`` row differs from the evaluation's ``summary.json``
    (``summary``: its content) by more than ``tol`` in macro MAP@N: messages, [] when it
    reproduces it (as it must: ``exact`` returns the evaluation's top-K)."""
    exact = table[table["index"] == A.EXACT].iloc[0]
    out = []
    for c in M.check_cutoffs(cutoffs):
        want = summary["macro"].get(f"map@{c}")
        got = float(exact[f"map@{c}"])
        if want is not None and abs(got - float(want)) > tol:
            out.append(f"exact map@{c} {got!r} != the evaluation's {want!r}")
    return out


# --------------------------------------------------------------------------- the workflow job and the gather


def evaluate_indexes_job(embeddings_path: str | Path, manifest_path: str | Path, families_path: str | Path | None,
                         summaries: Sequence[str | Path], cutoffs: Sequence[int], indexes: Sequence[str],
                         index_params: Mapping[str, Mapping[str, Any]] | None, out: str | Path,
                         seed: int = 0) -> pd.DataFrame:
    """One workflow job (rule ``evaluate_indexes``): the best setting of one model
    variation among ``summaries`` (its settings' ``summary.json``, :func:`best_setting`),
    its processing recomputed from the embeddings (:func:`processed_matrix`) on the clips
    the evaluation used (:func:`soundsim.evaluate.prepare_grid`, ``restrict=True`` as
    :func:`soundsim.evaluate.evaluate_job`), then :func:`evaluate_indexes`; writes the
    table to ``out`` (CSV) and returns it. A mismatch of the ``exact`` row and the
    setting's ``summary.json`` is logged as an error."""
    from soundsim.evaluate import prepare_grid
    from soundsim.manifest import read_manifest
    from soundsim.store import read_embeddings

    st = best_setting(summaries)
    files = next(f for f in map(L.setting_files_of, summaries) if f.setting == st.name)
    summary = json.loads(Path(files.summary).read_text())
    families = json.loads(Path(families_path).read_text()) if families_path else {}
    emb = read_embeddings(embeddings_path)
    man = read_manifest(manifest_path)
    grid = prepare_grid(emb, man[["fname", "labels"]], families, [st.aggregation], [st.pca], [st.search], cutoffs,
                        seed, restrict=True)
    log.info("%s/%s: best setting %s (macro map@15 %s); %d clips; indexes %s", files.model, files.variation,
             st.name, summary["macro"].get("map@15"), grid.emb.n_clips, ", ".join(index_plan({"indexes": indexes})))
    Z = processed_matrix(grid.emb, st.aggregation, st.pca, seed)
    table = evaluate_indexes(Z, grid.index, grid.families, st.search, grid.cutoffs, indexes, index_params)
    table["model"], table["variation"], table["setting"] = files.model, files.variation, st.name
    for problem in check_exact(table, summary, grid.cutoffs):
        log.error("%s: %s", files.summary, problem)
    write_csv_atomic(table, Path(out))
    return table


def read_index_table(path: str | Path) -> pd.DataFrame:
    """Read an indexes table (names and ``params`` as strings)."""
    return pd.read_csv(path, dtype={c: str for c in ("model", "variation", "setting", "index", "params")},
                       keep_default_na=False, na_values=["nan", ""])


def gather_index_tables(paths: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """``tables/indexes.csv``: the per-variation tables (``metrics/<model>/<variation>/indexes.csv``)
    one after the other, sorted by model and variation (index rows in their order, exact
    first); columns the union, in first-seen order. Written atomically to ``out``."""
    if not paths:
        raise IndexEvalError("no per-variation indexes.csv given to gather")
    parts = []
    for p in paths:
        if not Path(p).is_file():
            raise IndexEvalError(f"{p}: not found (written by rule evaluate_indexes)")
        parts.append(read_index_table(p))
    df = pd.concat(parts, ignore_index=True)
    df = df.sort_values(["model", "variation"], kind="mergesort").reset_index(drop=True)
    write_csv_atomic(df, Path(out))
    return df


def index_table_page(df: pd.DataFrame, collection: str | None = None) -> str:
    """``tables/indexes.csv`` as the report's HTML page (:func:`soundsim.table_pages.table_page`),
    with what the columns mean."""
    from soundsim.table_pages import table_page

    title = "Approximate search: each model's best setting under each vector index" + (
        f" ({collection})" if collection else "")
    intro = ("Macro (class-averaged) and family-mean MAP@N of the retrieved lists; mr1@K: 0-based rank of the "
             "first relevant clip within the top K, K when none is retrieved (not the evaluation's MR1, which "
             "ranks the whole collection); recall and delta against exact search; memory: the faiss index per "
             "sound (the float64 vectors read by the exact re-ranking: rerank_bytes_per_sound); latency: one "
             "query at a time on one thread, measured on the machine that ran the workflow.")
    return table_page(df, title, "tables/indexes.csv", intro)


def write_index_table(paths: Sequence[str | Path], out: str | Path, page: str | Path | None = None,
                      collection: str | None = None) -> pd.DataFrame:
    """:func:`gather_index_tables` into ``out`` and, when ``page`` is given, its HTML page
    (:func:`index_table_page`) there, atomically."""
    from soundsim.fileutil import write_text_atomic

    df = gather_index_tables(paths, out)
    if page is not None:
        write_text_atomic(Path(page), index_table_page(df, collection))
    log.info("wrote %s (%d rows)", out, len(df))
    return df
