"""Evaluate one embeddings file over the processing x search grid.

:func:`evaluate_grid` is what ``soundsim evaluate`` and the Snakemake rules
call. For each aggregation it aggregates once and normalises once (the file's
processing order, :mod:`soundsim.process`); for each PCA setting it fits PCA
once; then a single blockwise pass over the query clips serves every search:
one float32 Gram block ``Z[rows] @ Z.T`` per query block proposes the MIPS,
MCSS and NNS ranking keys, and every decision within the float32 error bound
is re-scored in float64 from the float64 vectors (:mod:`soundsim.search`), so
the rankings are those of a float64 computation; for each search the block's
top-K, ranks beyond the top-K and all metrics are computed right away
(:class:`soundsim.metrics.MetricAccumulator`). No N x N matrix and no full
ranking is ever stored.

Each setting writes ``OUT/<setting>/`` (the setting's name,
:func:`soundsim.layout.setting_name`; the files: :data:`soundsim.layout.METRIC_FILES`):

* ``per_label.csv``: ``label, n_clips, map@<N>..., mr1`` (one map column per
  cutoff, in increasing order; NaN for labels with a single clip), then the
  retrieval panel's averages when it is computed (``ndcg@15 ... rprec``,
  :mod:`soundsim.panel`, names :mod:`soundsim.measures`);
* ``per_family.csv``: ``family, n_labels, map@<N>..., mr1`` (+ the panel's);
* ``summary.json``: settings, macro / family-mean / micro values, counts,
  timings (seconds; ``aggregation_s`` is shared by all settings of that
  aggregation, ``pca_s`` by the searches of one processing setting,
  ``gram_s`` by the searches of one pass), input attributes;
* ``rankings.h5``: top-K (K = largest cutoff, of the panel too: 150; at most N-1) indices and scores of every
  query (:func:`soundsim.store.write_rankings`);
* ``per_query.parquet``: one row per class-wise query, i.e. per (clip,
  label) pair -- a clip with several labels is a query once per label, as in
  the class-wise averages -- with ``fname, label, ap@<N>..., r1`` and the
  panel's per-query columns (``ndcg@15, ..., rr, ..., rprec``)
  (:func:`per_query_table`; NaN for labels with a single clip). The mean over
  a label's rows is its ``per_label.csv`` value, so :mod:`soundsim.stats` can
  resample queries without re-running a search.

Computing and writing are apart: :func:`prepare_grid` aligns and validates
the inputs, :func:`compute_grid` yields one :class:`ProcessingOutcome` per
(aggregation, PCA) holding a :class:`SettingResult` per search (summary,
tables, rankings) and the settings that failed, and writes nothing;
:func:`write_setting` writes one setting's folder and :func:`write_processing`
one ``processed/`` file. :func:`evaluate_grid` loops over the outcomes,
writes them, logs, and raises :class:`PartialEvaluationError` at the end.

Clips in the embeddings but not in the ground truth, or the reverse, are an
error listing the first few; ``restrict=True`` (``--intersect``) evaluates the
clips present in both instead, and the summary records how many were dropped.
Label counts n_L are those of the evaluated clips.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundsim import layout as L
from soundsim import metrics as M
from soundsim import process as P
from soundsim import relevance as R
from soundsim import search as S
from soundsim.errors import CollectionError, SoundsimError, first_few
from soundsim.fileutil import atomic_path, write_csv_atomic, write_text_atomic
from soundsim.logutil import progress as progress_bar
from soundsim.store import Embeddings, write_processed, write_rankings

log = logging.getLogger(__name__)

DEFAULT_PCAS: tuple[int | str, ...] = (100, 200, "none")
DEFAULT_CUTOFFS = (15, 150)
#: per_label.csv and per_family.csv: values to 6 decimals (NaN written ``nan``)
CSV_FLOAT_FORMAT = "%.6f"


def setting_name(aggregation: str, pca: int | str | None, search: str) -> str:
    """Output folder of one setting (:func:`soundsim.layout.setting_name`, with
    ``pca`` normalised by :func:`soundsim.process.pca_label`)."""
    return L.setting_name(aggregation, P.pca_label(pca), search)


def default_aggregations(emb: Embeddings) -> list[str]:
    """The paper's aggregations for a frame-level file, ``['none']`` for a
    clip-level one (or a frame-level file that has one row per clip)."""
    if emb.attrs.get("level") == "clip" or bool(np.all(emb.frame_counts == 1)):
        return ["none"]
    return ["mean", "median", "max"]



def _clip_table(clips: pd.DataFrame | tuple[Sequence[str], Sequence[Any]]) -> tuple[list[str], list[list[str]]]:
    if isinstance(clips, pd.DataFrame):
        missing = [c for c in ("fname", "labels") if c not in clips.columns]
        if missing:
            raise CollectionError(f"ground truth lacks column(s) {', '.join(missing)}")
        fnames, labels = clips["fname"].tolist(), clips["labels"].tolist()
    else:
        fnames, labels = list(clips[0]), list(clips[1])
    out: list[list[str]] = []
    for labs in labels:
        if isinstance(labs, str):
            labs = [s.strip() for s in labs.split(",") if s.strip()]
        out.append(list(dict.fromkeys(str(x) for x in labs)))
    return [str(f) for f in fnames], out


def align(
    emb: Embeddings,
    clips: pd.DataFrame | tuple[Sequence[str], Sequence[Any]],
    restrict: bool = False,
) -> tuple[Embeddings, list[list[str]], dict[str, Any]]:
    """Match the embeddings' clips with the ground truth (fname -> labels).

    Returns the embeddings to evaluate (file order), their labels and counts.
    Mismatched fnames raise :class:`CollectionError` unless ``restrict``."""
    gt_fnames, gt_labels = _clip_table(clips)
    dup = sorted(f for f, c in Counter(gt_fnames).items() if c > 1)
    if dup:
        raise CollectionError(f"ground truth: {len(dup)} duplicate fname(s): {first_few(dup, quote=True)}")
    lab_of = dict(zip(gt_fnames, gt_labels, strict=True))
    not_in_gt = [f for f in emb.fnames if f not in lab_of]
    emb_set = set(emb.fnames)
    not_in_emb = [f for f in gt_fnames if f not in emb_set]
    src = emb.path or "embeddings"
    if (not_in_gt or not_in_emb) and not restrict:
        parts = []
        if not_in_gt:
            parts.append(f"{len(not_in_gt)} clip(s) in {src} are not in the ground truth: {first_few(not_in_gt, quote=True)}")
        if not_in_emb:
            parts.append(f"{len(not_in_emb)} ground-truth clip(s) have no embedding in {src}: {first_few(not_in_emb, quote=True)}")
        raise CollectionError(
            "; ".join(parts) + ". Fix the inputs, or pass --intersect (restrict=True) to evaluate the clips in both"
        )
    keep = [i for i, f in enumerate(emb.fnames) if f in lab_of]
    sub = emb if len(keep) == emb.n_clips else emb.subset(keep)
    if sub.n_clips < 2:
        raise CollectionError(f"{src}: fewer than 2 clips are both embedded and labelled ({sub.n_clips})")
    labels = [lab_of[f] for f in sub.fnames]
    empty = [f for f, labs in zip(sub.fnames, labels, strict=True) if not labs]
    if empty:
        raise CollectionError(f"ground truth: {len(empty)} clip(s) without labels: {first_few(empty, quote=True)}")
    info = {
        "n_clips": sub.n_clips,
        "n_dropped_not_in_ground_truth": len(not_in_gt),
        "n_dropped_without_embedding": len(not_in_emb),
        "restricted_to_intersection": bool(restrict and (not_in_gt or not_in_emb)),
    }
    if not_in_gt or not_in_emb:
        log.warning(
            "evaluating the %d clips in both: %d embedded clip(s) lack ground truth, "
            "%d labelled clip(s) lack embeddings",
            sub.n_clips, len(not_in_gt), len(not_in_emb),
        )
    return sub, labels, info


@dataclass
class PassResult:
    """One search's outcome of a blockwise pass."""

    metrics: M.MetricResult
    indices: np.ndarray  # (N, K) int32
    scores: np.ndarray  # (N, K) float32
    seconds: dict[str, float]
    n_rescored: int = 0  # (query, clip) pairs re-scored in float64 (top-K and R1 decisions)


def search_and_score(
    Z: np.ndarray,
    index: M.LabelIndex,
    searches: Sequence[str],
    cutoffs: Sequence[int],
    block_size: int | None = None,
    fnames: Sequence[str] | None = None,
    progress: bool = False,
    desc: str = "search",
    panel: M.PN.Panel | None = None,
) -> dict[str, PassResult]:
    """One blockwise pass over the query clips of ``Z`` (N x D, float64: the
    processing output; kept for re-scoring, the float32 copy is made here)
    computing, for every search in ``searches``, the top-K rankings (K =
    largest cutoff, of the panel too, at most N-1) and all metrics. One float32 Gram block per
    query block proposes the keys of every search; every decision (top-K
    membership and order, R1) is that of the float64 keys
    (:mod:`soundsim.search`), so the results do not depend on the block size.
    Memory: O(block_size x N) per search. ``seconds``: ``gram_s`` (shared),
    ``search_s`` (keys and top-K), ``metrics_s``, and ``rescore_s`` (the
    float64 re-scoring, part of the two before). ``panel``
    (:func:`soundsim.metrics.make_panel`): compute the retrieval panel too."""
    searches = S.check_searches(searches)
    prep = S.prepare(Z, searches, fnames)
    n = prep.n
    accs = {s: M.MetricAccumulator(index, cutoffs, panel) for s in searches}
    k = next(iter(accs.values())).k
    idx = {s: np.empty((n, k), dtype=np.int32) for s in searches}
    sc = {s: np.empty((n, k), dtype=np.float32) for s in searches}
    t_search = dict.fromkeys(searches, 0.0)
    t_metrics = dict.fromkeys(searches, 0.0)
    t_rescore = dict.fromkeys(searches, 0.0)
    n_rescored = dict.fromkeys(searches, 0)
    t_gram = 0.0
    ordered = S.search_order(searches)
    blocks = S.iter_gram_blocks(prep, block_size)
    bs = S.default_block_size(n) if block_size is None else max(1, int(block_size))
    bar = progress_bar(range(-(-n // bs)), desc=desc, unit="block", disable=not progress, leave=False)
    for _ in bar:
        t0 = time.perf_counter()
        start, G, cache = next(blocks)  # G: the float32 Gram block; cache: float64 dots shared by the searches
        t_gram += time.perf_counter() - t0
        stop = start + G.shape[0]
        for s in ordered:
            t0 = time.perf_counter()
            kb = S.key_block(G, start, prep, s, inplace=(s == "mips"), cache=cache)
            cols, vals = S.topk(kb, k)
            idx[s][start:stop] = cols
            sc[s][start:stop] = S.scores_from_keys(vals, start, prep, s)
            t1 = time.perf_counter()
            accs[s].add_block(start, kb, cols)
            t_metrics[s] += time.perf_counter() - t1
            t_search[s] += t1 - t0
            t_rescore[s] += kb.seconds
            n_rescored[s] += kb.n_rescored
            del kb
    return {
        s: PassResult(
            accs[s].result(), idx[s], sc[s],
            {"gram_s": t_gram, "search_s": t_search[s], "metrics_s": t_metrics[s], "rescore_s": t_rescore[s]},
            n_rescored[s],
        )
        for s in searches
    }


def per_query_table(fnames: Sequence[str], index: M.LabelIndex, metrics: M.MetricResult) -> pd.DataFrame:
    """Class-wise per-query values: one row per (clip, label) pair, in clip
    order then label name, with columns ``fname, label, ap@<N>...`` (one per
    cutoff, increasing) and ``r1`` (0-based rank of the first relevant clip).
    Rows of labels with a single clip are NaN (left out of every average).
    The mean of a label's rows is its class-wise MAP@N / MR1, and the mean of
    those over labels the macro value of ``summary.json``."""
    df = pd.DataFrame({
        "fname": pd.Series(np.asarray(fnames, dtype=object)[index.pair_q], dtype="string"),
        "label": pd.Series(np.asarray(index.labels, dtype=object)[index.pair_l], dtype="string"),
    })
    for c in metrics.cutoffs:
        df[f"ap@{c}"] = np.asarray(metrics.pair_ap[c], dtype=np.float64)
    df["r1"] = np.asarray(metrics.pair_r1, dtype=np.float64)
    for c, v in metrics.pair_panel.items():
        df[c] = np.asarray(v, dtype=np.float64)
    return df


def check_parquet_engine() -> None:
    """``per_query.parquet`` needs pyarrow (a core dependency of soundsim):
    :class:`soundsim.extras.MissingDependency` when it is missing, raised
    before anything is computed or written."""
    from soundsim.extras import MissingDependency, is_installed

    if not is_installed("pyarrow"):
        raise MissingDependency(["pyarrow"], "writing per_query.parquet",
                                hint="pip install pyarrow (a dependency of soundsim: reinstall soundsim)")


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as a Parquet file (pyarrow), in memory."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def _write_bytes(data: bytes, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _check_settings(aggregations: Sequence[str], pcas: Sequence[int | str | None]) -> list[int | None]:
    """Validate the names of the settings asked for (an error for a typo);
    whether each can run on this file is decided per setting."""
    for a in aggregations:
        if a not in P.AGGREGATIONS:
            raise P.ProcessingError(f"unknown aggregation {a!r}; allowed: {', '.join(P.AGGREGATIONS)}")
    ks = [P.parse_pca(p) for p in pcas]
    if len(set(ks)) != len(ks):
        raise P.ProcessingError(f"repeated PCA setting in {list(pcas)}")
    return ks


class PartialEvaluationError(SoundsimError):
    """Some settings could not be evaluated; the others were (and were written).
    ``summaries``: those that ran; ``failures``: (setting name, reason)."""

    def __init__(self, summaries: list[dict[str, Any]], failures: list[tuple[str, str]], total: int,
                 errors: Sequence[Exception] = ()) -> None:
        self.summaries = summaries
        self.failures = failures
        self.errors = list(errors)  # the underlying errors, one per failing group of settings
        grouped: dict[str, list[str]] = {}
        for name, reason in failures:
            grouped.setdefault(reason, []).append(name)
        lines = "\n  ".join(f"{', '.join(names)}: {reason}" for reason, names in grouped.items())
        super().__init__(f"{len(failures)} of {total} setting(s) could not be evaluated (the other "
                         f"{total - len(failures)} were evaluated and written):\n  {lines}")


def _check_out_dir(out_dir: str | Path | None) -> Path | None:
    if out_dir is None:
        return None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CollectionError(f"{out}: exists and is not a folder; the output (--out) must be a folder "
                              "(one subfolder per setting is written there)")
    return out


def _pca_problem(emb: Embeddings, k: int | None) -> str | None:
    n, d = emb.n_clips, emb.dim
    if k is not None and k > min(n, d):
        return (f"PCA with {k} components is impossible for {n} clips of dimension {d}: "
                f"n_components must be <= min(N, D) = {min(n, d)}")
    return None


def _search_each(Z: np.ndarray, index: M.LabelIndex, searches: list[str], cutoffs: list[int],
                 block_size: int | None, fnames: list[str], progress: bool, desc: str,
                 panel: M.PN.Panel | None = None) -> tuple[dict[str, PassResult], dict[str, Exception]]:
    """:func:`search_and_score` over all ``searches`` in one pass; when that
    fails for some search (e.g. a zero vector has no cosine), each search alone,
    so that the others still run. Returns (results, search -> error): a
    :class:`soundsim.search.SearchError` is a failure of that search's setting,
    never raised (also with a single search, so that the other processing
    settings of the grid still run)."""
    try:
        return search_and_score(Z, index, searches, cutoffs, block_size, fnames, progress, desc=desc,
                                panel=panel), {}
    except S.SearchError as e:
        if len(searches) == 1:
            return {}, {searches[0]: e}
    results: dict[str, PassResult] = {}
    errors: dict[str, Exception] = {}
    for s in searches:
        try:
            results.update(search_and_score(Z, index, [s], cutoffs, block_size, fnames, progress, desc=desc,
                                            panel=panel))
        except S.SearchError as e:
            errors[s] = e
    return results, errors


# --------------------------------------------------------------------------- computing (no files written)


@dataclass
class GridInputs:
    """The validated inputs of one grid evaluation (:func:`prepare_grid`): the
    aligned embeddings, their label index, and the settings asked for."""

    emb: Embeddings  # the clips evaluated (embedded and labelled), file order
    index: M.LabelIndex
    families: dict[str, Sequence[str]]
    aggregations: list[str]
    pcas: list[int | None]  # parsed PCA settings (None: no PCA)
    searches: list[str]
    cutoffs: list[int]
    order: str  # processing order, :func:`soundsim.process.processing_order`
    seed: int
    block_size: int | None
    align_info: dict[str, Any]  # counts of :func:`align`
    single: list[str]  # labels with a single clip (NaN, left out of averages)
    code: dict[str, Any]  # code versions (evaluation, embeddings)
    panel: M.PN.Panel | None = None  # the retrieval panel's collection data (None: not computed)
    relevance: dict[str, Any] = field(default_factory=dict)  # where the graded gains came from

    @property
    def n_settings(self) -> int:
        """Number of (aggregation, PCA, search) settings asked for."""
        return len(self.aggregations) * len(self.pcas) * len(self.searches)


@dataclass
class SettingResult:
    """One evaluated setting, computed but not written: what its folder holds
    (:func:`write_setting` writes it). ``summary`` is ``summary.json`` without
    ``timings.write_s``; ``per_label`` / ``per_family`` / ``per_query`` are
    the tables of ``per_label.csv`` / ``per_family.csv`` / ``per_query.parquet``;
    ``fnames``, ``indices`` (N, K) int32, ``scores`` (N, K) float32 and
    ``rankings_attrs`` are ``rankings.h5``."""

    name: str  # the setting name, :func:`setting_name`
    summary: dict[str, Any]
    per_label: pd.DataFrame
    per_family: pd.DataFrame
    per_query: pd.DataFrame
    fnames: list[str]
    indices: np.ndarray
    scores: np.ndarray
    rankings_attrs: dict[str, Any]


@dataclass
class SettingFailure:
    """Settings that could not be evaluated, all for the same ``error``."""

    names: list[str]
    error: Exception


@dataclass
class ProcessedMatrix:
    """One processing setting's matrix after normalisation and PCA (N x D,
    float64, rows in ``fnames`` order) and the attributes of its file."""

    fnames: list[str]
    matrix: np.ndarray
    attrs: dict[str, Any]


@dataclass
class ProcessingOutcome:
    """Everything one processing setting (aggregation, PCA) produced: its
    matrix (``processed``; None unless asked for, or when the processing
    failed), one :class:`SettingResult` per search that ran, and the
    failures, in search order."""

    aggregation: str
    pca: int | None
    processed: ProcessedMatrix | None = None
    results: list[SettingResult] = field(default_factory=list)
    failures: list[SettingFailure] = field(default_factory=list)


def prepare_grid(
    emb: Embeddings,
    clips: pd.DataFrame | tuple[Sequence[str], Sequence[Any]],
    families: Mapping[str, Sequence[str]] | None = None,
    aggregations: Sequence[str] | None = None,
    pcas: Sequence[int | str | None] = DEFAULT_PCAS,
    searches: Sequence[str] = S.SEARCHES,
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
    seed: int = 0,
    block_size: int | None = None,
    restrict: bool = False,
    panel: bool = True,
    relevance: str | Path | None = None,
    family_gain: float = R.DEFAULT_FAMILY_GAIN,
    rprec_full: bool = False,
) -> GridInputs:
    """Align the embeddings with the ground truth (:func:`align`) and validate
    the settings asked for (arguments as :func:`evaluate_grid`). Raises
    :class:`CollectionError`, :class:`soundsim.process.ProcessingError` or
    :class:`soundsim.search.SearchError` for bad input; logs a warning for
    labels with a single clip. Writes nothing."""
    from soundsim.provenance import evaluation_code_version

    sub, labels, align_info = align(emb, clips, restrict)
    aggregations = list(aggregations) if aggregations is not None else default_aggregations(sub)
    searches = S.check_searches(searches)
    cutoffs = M.check_cutoffs(cutoffs)
    ks = _check_settings(aggregations, pcas)
    order = P.processing_order(sub.attrs)
    index = M.build_label_index(labels, sub.fnames)
    single = [lab for lab, c in zip(index.labels, index.counts, strict=True) if c < 2]
    if single:
        log.warning("%d label(s) have a single clip; reported with NaN and left out of averages: %s",
                    len(single), first_few(single, quote=True))
    code = {"evaluation": evaluation_code_version(), "embeddings": sub.attrs.get("code_version")}
    pn, rel_info = None, {}
    if panel:
        if relevance is not None:
            G = R.read_gains(relevance, index.labels)
            rel_info = {"gains": "file", "path": str(relevance)}
        else:
            family_of = {lab: fam for fam, labs in (families or {}).items() for lab in labs}
            G = R.family_gains(index.labels, family_of, family_gain)
            rel_info = {"gains": "families", "family_gain": float(family_gain)}
        pn = M.make_panel(index, G, cutoffs, rprec_full)
        rel_info["rprec"] = "full" if rprec_full else "run"
    return GridInputs(sub, index, dict(families or {}), aggregations, ks, searches, cutoffs, order, seed,
                      block_size, align_info, single, code, pn, rel_info)


def compute_grid(grid: GridInputs, progress: bool = False, keep_processed: bool = False
                 ) -> Iterator[ProcessingOutcome]:
    """Evaluate every setting of ``grid``: one :class:`ProcessingOutcome` per
    (aggregation, PCA), in aggregation > PCA order, each made when the
    iteration reaches it (one processing setting's matrices in memory at a
    time). Aggregation and normalisation run once per aggregation. A setting
    that cannot run is a :class:`SettingFailure` of its outcome, not an
    exception. ``keep_processed``: fill ``processed``. Writes nothing."""
    for agg in grid.aggregations:
        t0 = time.perf_counter()
        try:
            X = P.aggregate(grid.emb.embeddings, grid.emb.offsets, agg, grid.emb.fnames)
            Xn = P.normalise(X, grid.order, grid.emb.fnames, f"aggregation {agg}")
        except P.ProcessingError as e:
            for k in grid.pcas:
                yield ProcessingOutcome(agg, k, failures=[_failure(agg, k, grid.searches, e)])
            continue
        del X
        t_agg = time.perf_counter() - t0
        for k in grid.pcas:
            yield _compute_processing(grid, agg, k, Xn, t_agg, progress, keep_processed)


def _failure(agg: str, k: int | None, searches: Sequence[str], error: Exception) -> SettingFailure:
    return SettingFailure([setting_name(agg, k, s) for s in searches], error)


def _compute_processing(grid: GridInputs, agg: str, k: int | None, Xn: np.ndarray, t_agg: float,
                        progress: bool, keep_processed: bool) -> ProcessingOutcome:
    """PCA ``k`` of the normalised matrix ``Xn`` of aggregation ``agg``, then
    every search in one pass (:func:`_search_each`)."""
    outcome = ProcessingOutcome(agg, k)
    problem = _pca_problem(grid.emb, k)
    if problem:
        outcome.failures.append(_failure(agg, k, grid.searches, P.ProcessingError(problem)))
        return outcome
    t0 = time.perf_counter()
    Z, pca_info = P.pca_reduce(Xn, k, grid.seed)
    pca_info = {"order": grid.order, **pca_info}
    t_pca = time.perf_counter() - t0
    pname = P.pca_label(k)
    if keep_processed:
        outcome.processed = ProcessedMatrix(list(grid.emb.fnames), Z, _processed_attrs(grid, agg, pname))
    results, search_errors = _search_each(Z, grid.index, grid.searches, grid.cutoffs, grid.block_size,
                                          grid.emb.fnames, progress, f"agg={agg} pca={pname}", grid.panel)
    outcome.failures.extend(_failure(agg, k, [s], err) for s, err in search_errors.items())
    for s in grid.searches:
        if s in results:
            r = results[s]
            timings = {"aggregation_s": t_agg, "pca_s": t_pca, **r.seconds}
            outcome.results.append(_setting_result(grid, agg, k, s, r, pca_info, timings))
    return outcome


def _processed_attrs(grid: GridInputs, agg: str, pname: str) -> dict[str, Any]:
    """The attributes of one processing setting's ``processed/`` file."""
    sub = grid.emb
    return {"model": str(sub.attrs.get("model", "")), "variation": str(sub.attrs.get("variation", "")),
            "aggregation": agg, "pca": pname, "processing": grid.order,
            "normalisation": P.PROCESSING[grid.order] + "; not after", "source": sub.path,
            "code_version": grid.code["evaluation"]}


def _setting_result(grid: GridInputs, agg: str, k: int | None, search: str, r: PassResult,
                    pca_info: dict[str, Any], timings: dict[str, float]) -> SettingResult:
    """The tables, summary and rankings of one search's :class:`PassResult`."""
    sub = grid.emb
    per_family = r.metrics.per_family(grid.families)
    summary = _summary(grid, per_family, agg, k, search, r, pca_info, timings)
    rankings_attrs = {
        "search": search, "score": S.SCORE_MEANING[search], "tie_rule": S.TIE_RULE,
        "aggregation": agg, "pca": P.pca_label(k), "k": int(r.indices.shape[1]),
        "model": str(sub.attrs.get("model", "")), "variation": str(sub.attrs.get("variation", "")),
    }
    return SettingResult(
        name=setting_name(agg, k, search), summary=summary, per_label=r.metrics.per_label(),
        per_family=per_family, per_query=per_query_table(sub.fnames, grid.index, r.metrics),
        fnames=list(sub.fnames), indices=r.indices, scores=r.scores, rankings_attrs=rankings_attrs,
    )


# --------------------------------------------------------------------------- writing


def write_setting(result: SettingResult, folder: str | Path, rankings: bool = True) -> dict[str, Any]:
    """Write the files of one setting's folder (see the module docstring;
    names: :data:`soundsim.layout.METRIC_FILES`), each atomically;
    ``rankings=False`` leaves out ``rankings.h5``. Returns the summary as
    written: ``result.summary`` with ``timings.write_s`` (the seconds spent
    writing) added; ``result`` itself is not changed. The Parquet table is
    serialised before the folder is made, and ``summary.json`` is written
    last, so a folder with a ``summary.json`` is complete."""
    t0 = time.perf_counter()
    d = Path(folder)
    files = L.SettingFiles(str(result.rankings_attrs["model"]), str(result.rankings_attrs["variation"]),
                           result.name, d)
    per_query = _parquet_bytes(result.per_query)  # before anything is written: a failure here writes nothing
    d.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(result.per_label, files.per_label, float_format=CSV_FLOAT_FORMAT)
    write_csv_atomic(result.per_family, files.per_family, float_format=CSV_FLOAT_FORMAT)
    _write_bytes(per_query, files.per_query)
    if rankings:
        write_rankings(files.rankings, result.fnames, result.indices, result.scores, result.rankings_attrs)
    summary = {**result.summary, "timings": {**result.summary["timings"], "write_s": time.perf_counter() - t0}}
    write_text_atomic(files.summary, json.dumps(_json_safe(summary), indent=2) + "\n")
    return summary


def write_processing(outcome: ProcessingOutcome, processed_dir: str | Path) -> Path | None:
    """Write ``outcome.processed`` (as float32) to its file under
    ``processed_dir`` (:func:`soundsim.layout.processed_file`); returns the
    path, or None when the outcome holds no matrix."""
    p = outcome.processed
    if p is None:
        return None
    path = L.processed_file(Path(processed_dir), outcome.aggregation, P.pca_label(outcome.pca))
    write_processed(path, p.fnames, p.matrix.astype(np.float32), p.attrs)
    return path


def _write_outcome(outcome: ProcessingOutcome, out: Path | None, processed_dir: Path | None,
                   rankings: bool) -> list[dict[str, Any]]:
    """Write one processing setting's files (nothing when ``out`` is None) and
    log each setting's macro values; returns the settings' summaries."""
    if processed_dir is not None:
        write_processing(outcome, processed_dir)
    summaries = []
    for result in outcome.results:
        summary = result.summary if out is None else write_setting(result, out / result.name, rankings)
        summaries.append(summary)
        log.info("%s: macro %s", result.name, ", ".join(f"{key}={v:.4f}" for key, v in summary["macro"].items()))
    return summaries


def _summary(grid: GridInputs, per_family: pd.DataFrame, agg: str, k: int | None, search: str, r: PassResult,
             pca_info: dict[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    """The ``summary.json`` of one setting (without ``timings.write_s``);
    ``per_family``: its per-family table."""
    emb, index, cutoffs, block_size = grid.emb, grid.index, grid.cutoffs, grid.block_size
    present = set(index.labels)
    fam_labels = {lab for labs in grid.families.values() for lab in labs}
    return {
        "setting": {
            "name": setting_name(agg, k, search),
            "aggregation": agg,
            "pca": P.pca_label(k),
            "search": search,
            "cutoffs": cutoffs,
            "seed": grid.seed,
            "block_size": block_size if block_size is not None else S.default_block_size(emb.n_clips),
        },
        "macro": r.metrics.macro(),
        "family_mean": M.family_mean(per_family, cutoffs),
        "micro": r.metrics.micro(),
        "counts": {
            **grid.align_info,
            "n_labels": len(index.labels),
            "n_labels_evaluated": int(np.sum(index.counts >= 2)),
            "single_clip_labels": grid.single,
            "n_families": int(len(per_family)),
            "n_labels_in_families": int(per_family["n_labels"].sum()) if len(per_family) else 0,
            "n_labels_in_no_family": len(present - fam_labels),
            "n_micro_queries": r.metrics.n_micro_queries,
            "k": int(r.indices.shape[1]),
        },
        "processing": {
            **pca_info,
            "order": pca_info.get("order", "l2-pca"),
            "steps": P.PROCESSING[pca_info.get("order", "l2-pca")] + (" -> cosine (L2 again)" if search == "mcss"
                                                                      else ""),
        },
        "panel": ({"measures": M.PN.columns(), **grid.relevance} if grid.panel is not None else None),
        "search": {"score": S.SCORE_MEANING[search], "tie_rule": S.TIE_RULE,
                   "dtype": "float32 candidates, float64 decisions"},
        "embeddings": {
            "path": emb.path,
            "model": emb.attrs.get("model"),
            "variation": emb.attrs.get("variation"),
            "level": emb.attrs.get("level"),
            "dim": emb.dim,
        },
        "timings": dict(timings),
        "code_version": dict(grid.code),
    }


def evaluate_grid(
    emb: Embeddings,
    clips: pd.DataFrame | tuple[Sequence[str], Sequence[Any]],
    families: Mapping[str, Sequence[str]] | None = None,
    aggregations: Sequence[str] | None = None,
    pcas: Sequence[int | str | None] = DEFAULT_PCAS,
    searches: Sequence[str] = S.SEARCHES,
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
    out_dir: str | Path | None = None,
    seed: int = 0,
    block_size: int | None = None,
    restrict: bool = False,
    write_rankings_files: bool = True,
    save_processed: bool = False,
    progress: bool = False,
    processed_dir: str | Path | None = None,
    panel: bool = True,
    relevance: str | Path | None = None,
    family_gain: float = R.DEFAULT_FAMILY_GAIN,
    rprec_full: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate every (aggregation, PCA, search) combination; see the module
    docstring for the outputs (written when ``out_dir`` is given). Returns one
    summary dict per setting, in aggregation > PCA > search order.

    ``clips``: a DataFrame with ``fname`` and ``labels`` (list, or
    comma-separated string), or a pair (fnames, labels). ``families``: family
    -> labels (multi-parent labels left out). ``aggregations`` defaults to
    :func:`default_aggregations`. Processing follows the file's order
    (:func:`soundsim.process.processing_order`: ``l2-pca`` or ``minmax-pca``).
    ``save_processed`` also writes each processing setting's matrix (after
    normalisation and PCA) to ``<processed_dir>/<processing>.h5``
    (:func:`soundsim.layout.processed_file`; default ``OUT/processed``).
    ``panel``: also compute the retrieval panel (:mod:`soundsim.panel`) with
    the graded gains of ``relevance`` (a ``relevance.csv``,
    :mod:`soundsim.relevance`), else family gains (``family_gain``) from
    ``families``; ``rprec_full``: R-precision over the full ranking (else
    the top-K run's, :mod:`soundsim.panel`).

    A setting that cannot run on this file (a PCA size above the number of
    clips or the dimension, aggregation ``none`` on several rows per clip, a
    zero vector under cosine) does not stop the others: they are evaluated and
    written, then :class:`PartialEvaluationError` lists what failed.

    The work is :func:`prepare_grid` and :func:`compute_grid` (computing) and
    :func:`write_setting` / :func:`write_processing` (writing), one
    processing setting at a time."""
    out = _check_out_dir(out_dir)
    if out is not None:
        check_parquet_engine()
    pdir = None if out is None else Path(processed_dir) if processed_dir is not None else out / "processed"
    grid = prepare_grid(emb, clips, families, aggregations, pcas, searches, cutoffs, seed, block_size, restrict,
                        panel, relevance, family_gain, rprec_full)
    log.info("evaluating %d clips x %d labels: %d setting(s), processing %s (%s)", grid.emb.n_clips,
             len(grid.index.labels), grid.n_settings, grid.order, P.PROCESSING[grid.order])
    summaries: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    errors: list[Exception] = []
    for outcome in compute_grid(grid, progress, keep_processed=out is not None and save_processed):
        for f in outcome.failures:
            failures.extend((name, str(f.error)) for name in f.names)
            errors.append(f.error)
            log.error("%s: not evaluated: %s", ", ".join(f.names), f.error)
        summaries.extend(_write_outcome(outcome, out, pdir, write_rankings_files))
    if failures:
        raise PartialEvaluationError(summaries, failures, grid.n_settings, errors)
    return summaries


def evaluate_setting(
    emb: Embeddings,
    clips: pd.DataFrame | tuple[Sequence[str], Sequence[Any]],
    families: Mapping[str, Sequence[str]] | None = None,
    aggregation: str = "mean",
    pca: int | str | None = 100,
    search: str = "mcss",
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
    out_dir: str | Path | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate one (aggregation, PCA, search) setting; returns its summary
    (and writes its folder under ``out_dir`` when given). A setting that cannot
    run raises its own error (:class:`soundsim.process.ProcessingError`, ...)."""
    try:
        return evaluate_grid(
            emb, clips, families, [aggregation], [pca], [search], cutoffs, out_dir, seed, **kwargs
        )[0]
    except PartialEvaluationError as e:
        raise e.errors[0] from None


def evaluate_job(
    embeddings_path: str | Path,
    manifest_path: str | Path,
    families_path: str | Path | None,
    aggregation: str,
    pca: int | str,
    searches: Sequence[str],
    cutoffs: Sequence[int],
    metrics_dir: str | Path,
    processed_dir: str | Path,
    seed: int = 0,
    panel: bool = True,
    relevance_path: str | Path | None = None,
    rprec_full: bool = False,
) -> list[dict[str, Any]]:
    """One workflow job: one processing setting (aggregation, PCA) of one
    embeddings file, every search, evaluated on the clips the model embedded
    (clips the extractor recorded as failed are left out and counted in
    ``summary.json``). Writes the per-search folders under ``metrics_dir`` and
    the processed matrix under ``processed_dir``. ``panel``, ``relevance_path``:
    the retrieval panel with the gains of that ``relevance.csv``."""
    from soundsim.manifest import read_manifest
    from soundsim.store import read_embeddings

    emb = read_embeddings(embeddings_path)
    man = read_manifest(manifest_path)
    families = json.loads(Path(families_path).read_text()) if families_path else {}
    if emb.failed:
        log.info("%s: %d clip(s) the extractor could not embed are left out", embeddings_path, len(emb.failed))
    return evaluate_grid(
        emb, man[["fname", "labels"]], families, [aggregation], [pca], searches, cutoffs,
        out_dir=metrics_dir, seed=seed, restrict=True, save_processed=True, processed_dir=processed_dir,
        panel=panel, relevance=relevance_path, rprec_full=rprec_full,
    )
