"""The Python API: evaluate vectors you already have, and compare systems.

:func:`evaluate_embeddings` evaluates one setting (aggregation, PCA, search)
of embeddings held in memory, and :func:`compare` gives the bootstrap
intervals and paired tests of several evaluated systems. Both are thin: the
vectors become a :class:`soundsim.store.Embeddings` (float32, as an HDF5
file written by :func:`soundsim.store.write_embeddings` holds them), then the
evaluator's own path runs (:func:`soundsim.evaluate.prepare_grid`,
:func:`soundsim.evaluate.compute_grid`), so the numbers are those
``soundsim evaluate`` writes for the same vectors, bit for bit; and
:func:`compare` is :func:`soundsim.stats.intervals` and
:func:`soundsim.stats.pairwise`, as ``tables/models.csv`` and
``tables/pairwise.csv`` use them. Nothing is written unless asked
(:meth:`EvaluationResult.write`).

Bad input raises :class:`soundsim.errors.InputError` (a :class:`ValueError`)
whose message names the argument and the clip(s) at fault.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundsim import evaluate as E
from soundsim import process as P
from soundsim import search as S
from soundsim import stats as St
from soundsim.errors import InputError, SoundsimError, first_few
from soundsim.store import Embeddings

__all__ = ["Comparison", "EvaluationResult", "compare", "evaluate_embeddings", "to_embeddings"]

PathLike = str | os.PathLike


@dataclass(frozen=True)
class EvaluationResult:
    """One evaluated setting (:class:`soundsim.evaluate.SettingResult`), as
    ``soundsim evaluate`` would write it to ``OUT/<setting>/``.

    * ``summary``: the macro values, ``{"map@15": ..., "map@150": ..., "mr1": ...}``
      (one ``map@N`` per cutoff): ``summary.json``'s ``macro``;
    * ``details``: the whole ``summary.json`` (settings, ``macro``,
      ``family_mean``, ``micro``, counts, processing, timings);
    * ``per_label`` / ``per_family`` / ``per_query``: the tables of
      ``per_label.csv`` / ``per_family.csv`` / ``per_query.parquet``;
    * ``setting``: the setting's name, e.g. ``mean__pca100__mcss``;
    * ``fnames``, ``indices`` (N, K), ``scores`` (N, K): the top-K rankings
      (``rankings.h5``; row q: the clips ranked first for query ``fnames[q]``).
    """

    result: E.SettingResult

    @property
    def summary(self) -> dict[str, float]:
        return dict(self.result.summary["macro"])

    @property
    def details(self) -> dict[str, Any]:
        return self.result.summary

    @property
    def per_label(self) -> pd.DataFrame:
        return self.result.per_label

    @property
    def per_family(self) -> pd.DataFrame:
        return self.result.per_family

    @property
    def per_query(self) -> pd.DataFrame:
        return self.result.per_query

    @property
    def setting(self) -> str:
        return self.result.name

    @property
    def fnames(self) -> list[str]:
        return self.result.fnames

    @property
    def indices(self) -> np.ndarray:
        return self.result.indices

    @property
    def scores(self) -> np.ndarray:
        return self.result.scores

    def write(self, folder: PathLike, rankings: bool = True) -> dict[str, Any]:
        """Write the setting's files to ``folder`` (:func:`soundsim.evaluate.write_setting`:
        per_label.csv, per_family.csv, per_query.parquet, rankings.h5, summary.json);
        returns the summary as written."""
        return E.write_setting(self.result, folder, rankings)

    def __repr__(self) -> str:
        vals = ", ".join(f"{k}={v:.4f}" for k, v in self.summary.items())
        return f"EvaluationResult({self.setting}: {vals}; {len(self.fnames)} clips)"


# --------------------------------------------------------------------------- inputs


def _fname_list(fnames: Sequence[str]) -> list[str]:
    """``fnames`` as a list of strings; repeats and a bare string are errors."""
    if isinstance(fnames, (str, bytes)) or not isinstance(fnames, (Sequence, np.ndarray, pd.Index, pd.Series)):
        raise InputError(f"fnames: expected a sequence of N clip names, got {type(fnames).__name__}")
    out = [str(f) for f in fnames]
    dup = sorted(f for f, c in Counter(out).items() if c > 1)
    if dup:
        raise InputError(f"fnames: {len(dup)} repeated name(s): {first_few(dup, quote=True)}")
    return out


def _clip_arrays(X: Any) -> list[np.ndarray]:
    """``X`` as one 2-D array (frames, D) per clip: an (N, D) array gives one
    row per clip, an (N, F, D) array F frames per clip, a sequence one array
    (D,) or (F, D) each."""
    if isinstance(X, np.ndarray):
        if X.ndim == 2:
            return list(X[:, None, :])
        if X.ndim == 3:
            return list(X)
        raise InputError(f"X: expected an (N, D) array or a list of N (frames, D) arrays, got shape {X.shape}")
    if not isinstance(X, Sequence) or isinstance(X, (str, bytes)):
        raise InputError(f"X: expected an (N, D) array or a list of N (frames, D) arrays, got {type(X).__name__}")
    out = []
    for i, a in enumerate(X):
        arr = np.asarray(a)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise InputError(f"X[{i}]: expected a (frames, D) or (D,) array, got shape {arr.shape}")
        out.append(arr)
    return out


def to_embeddings(X: Any, fnames: Sequence[str], processing: str = "l2-pca", name: str = "embeddings"
                  ) -> Embeddings:
    """The :class:`soundsim.store.Embeddings` of ``X`` (see
    :func:`evaluate_embeddings`): rows cast to float32 (what an HDF5 file
    holds), ``processing`` recorded as the file attribute that selects the
    processing order (:data:`soundsim.process.PROCESSING`), ``name`` as the
    model. Raises :class:`InputError` for a length mismatch, a clip without
    rows, differing dimensions (ragged D), non-numeric or non-finite values."""
    names = _fname_list(fnames)
    clips = _clip_arrays(X)
    if len(clips) != len(names):
        raise InputError(f"X has {len(clips)} clip(s) but fnames has {len(names)}; give one name per clip")
    if processing not in P.PROCESSING:
        raise InputError(f"processing={processing!r}: unknown; allowed: {', '.join(map(repr, P.PROCESSING))}")
    if not clips:
        raise InputError("X: no clips")
    empty = [names[i] for i, a in enumerate(clips) if a.shape[0] == 0]
    if empty:
        raise InputError(f"X: {len(empty)} clip(s) without rows: {first_few(empty, quote=True)}")
    dims = [a.shape[1] for a in clips]
    if len(set(dims)) > 1:
        odd = [f"{names[i]!r} has D={d}" for i, d in enumerate(dims) if d != dims[0]]
        raise InputError(f"X: clips have different dimensions (ragged D): {names[0]!r} has D={dims[0]}, "
                         + first_few(odd))
    if dims[0] == 0:
        raise InputError("X: the embeddings have dimension 0")
    bad_type = [names[i] for i, a in enumerate(clips) if not (np.issubdtype(a.dtype, np.floating)
                                                               or np.issubdtype(a.dtype, np.integer))]
    if bad_type:
        raise InputError(f"X: non-numeric values in {len(bad_type)} clip(s): {first_few(bad_type, quote=True)}")
    rows = np.concatenate(clips, axis=0).astype(np.float32)
    offsets = np.zeros(len(clips) + 1, dtype=np.int64)
    np.cumsum([a.shape[0] for a in clips], out=offsets[1:])
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        clip_of_row = np.repeat(np.arange(len(clips)), np.diff(offsets))
        bad = [names[i] for i in np.unique(clip_of_row[~finite])]
        raise InputError(f"X: NaN or infinite values (in float32) in {len(bad)} clip(s): {first_few(bad, quote=True)}")
    level = "clip" if bool(np.all(np.diff(offsets) == 1)) else "frame"
    attrs = {"model": name, "variation": "", "level": level, "dim": int(rows.shape[1]), "processing": processing}
    return Embeddings(names, rows, offsets, attrs)


def _clips(labels: Sequence[Any] | PathLike, fnames: list[str]) -> pd.DataFrame | tuple[list[str], list[Any]]:
    """The ground truth the evaluator takes: a ground-truth CSV
    (:func:`soundsim.datasets.common.read_ground_truth`: ``fname,labels``, labels
    comma-separated), or (fnames, labels) with one entry per clip: a list of
    label strings, or one string of comma-separated labels."""
    if isinstance(labels, (str, os.PathLike)):
        from soundsim.datasets.common import read_ground_truth

        try:
            return read_ground_truth(labels)[["fname", "labels"]]
        except SoundsimError as e:
            raise InputError(f"labels: {e}") from e
    if not isinstance(labels, (Sequence, np.ndarray, pd.Series)):
        raise InputError(f"labels: expected N label lists or a ground-truth CSV path, got {type(labels).__name__}")
    labels = list(labels)
    if len(labels) != len(fnames):
        raise InputError(f"labels has {len(labels)} entries but fnames has {len(fnames)}; give one label list per clip")
    for f, labs in zip(fnames, labels, strict=True):
        if not isinstance(labs, (str, Sequence, np.ndarray)) or (not isinstance(labs, str) and not all(
                isinstance(x, str) for x in labs)):
            raise InputError(f"labels of {f!r}: expected a list of label strings, got {labs!r}")
    return fnames, labels


def _families(families: Mapping[str, Sequence[str]] | PathLike | None) -> dict[str, list[str]]:
    """Family -> labels, from a mapping or a families.json file (:func:`soundsim.datasets.common.read_families`)."""
    if families is None:
        return {}
    if isinstance(families, (str, os.PathLike)):
        from soundsim.datasets.common import read_families

        try:
            return read_families(families)
        except SoundsimError as e:
            raise InputError(f"families: {e}") from e
    if not isinstance(families, Mapping):
        raise InputError(f"families: expected a mapping family -> labels or a JSON path, got {type(families).__name__}")
    return {str(k): [str(x) for x in v] for k, v in families.items()}


def _check_setting(emb: Embeddings, aggregation: str, pca: int | str | None, search: str) -> int | None:
    """Validate the setting's names and whether it can run on ``emb``; returns the PCA size (None: no PCA)."""
    if aggregation not in P.AGGREGATIONS:
        raise InputError(f"aggregation={aggregation!r}: unknown; allowed: {', '.join(map(repr, P.AGGREGATIONS))}")
    if search not in S.SEARCHES:
        raise InputError(f"search={search!r}: unknown; allowed: {', '.join(map(repr, S.SEARCHES))}")
    try:
        k = P.parse_pca(pca)
    except SoundsimError as e:
        raise InputError(f"pca={pca!r}: {e}") from e
    if aggregation == "none":
        many = [f for f, c in zip(emb.fnames, emb.frame_counts, strict=True) if c > 1]
        if many:
            raise InputError(f"aggregation='none' takes one row per clip, but {len(many)} clip(s) have several: "
                             f"{first_few(many, quote=True)}; choose mean, median or max")
    if k is not None and k > emb.dim:
        raise InputError(f"pca={k} is larger than the dimension D={emb.dim}; use pca <= {emb.dim} or pca='none'")
    if k is not None and k > emb.n_clips:
        raise InputError(f"pca={k} is larger than the number of clips N={emb.n_clips}; use pca <= {emb.n_clips} "
                         "or pca='none'")
    return k


# --------------------------------------------------------------------------- evaluation


def evaluate_embeddings(
    X: np.ndarray | Sequence[np.ndarray],
    fnames: Sequence[str],
    labels: Sequence[Sequence[str] | str] | PathLike,
    aggregation: str = "mean",
    pca: int | str | None = 100,
    search: str = "mcss",
    cutoffs: Sequence[int] = (15, 150),
    *,
    processing: str = "l2-pca",
    families: Mapping[str, Sequence[str]] | PathLike | None = None,
    seed: int = 0,
    block_size: int | None = None,
    restrict: bool = False,
    name: str = "embeddings",
) -> EvaluationResult:
    """Evaluate one setting of in-memory embeddings: every clip is a query
    against all the others (Araz et al. 2024), class-wise MAP@N per cutoff and
    MR1, macro-averaged over labels with >= 2 clips.

    * ``X``: an (N, D) array (one vector per clip), an (N, F, D) array, or a
      list of N arrays (frames, D) (or (D,)); cast to float32, as in an
      embeddings file.
    * ``fnames``: N distinct clip names, in the order of ``X``.
    * ``labels``: N label lists (or comma-separated strings), in the order of
      ``X``; or the path of a ground-truth CSV with columns ``fname,labels``
      (FSD50K style, labels comma-separated), matched by fname.
    * ``aggregation`` (mean, median, max; none for one row per clip), ``pca``
      (components, or None/'none'), ``search`` (mips, mcss, nns), ``cutoffs``:
      the setting, as ``soundsim evaluate --aggregation A --pca K --search S
      --cutoffs ...``.
    * ``processing``: ``l2-pca`` (L2 before PCA: deep models) or
      ``minmax-pca`` (min-max scaling: Freesound descriptors),
      :mod:`soundsim.process`.
    * ``families``: family -> labels (or a families.json) for ``per_family``
      and ``details["family_mean"]``, and the graded gains of the retrieval
      panel (:mod:`soundsim.panel`: same label 1, same family 0.5; without
      families, graded nDCG is binary); ``seed``: PCA's random_state (recorded);
      ``block_size``: query rows per search block; ``restrict``: with a CSV,
      evaluate the clips in both instead of raising on a mismatch.

    Returns an :class:`EvaluationResult`: the same numbers as ``soundsim
    evaluate`` on these vectors written with
    :func:`soundsim.store.write_embeddings`. Raises
    :class:`soundsim.errors.InputError` (a ValueError) naming the problem."""
    emb = to_embeddings(X, fnames, processing, name)
    clips = _clips(labels, emb.fnames)
    fams = _families(families)
    k = _check_setting(emb, aggregation, pca, search)
    try:
        grid = E.prepare_grid(emb, clips, fams, [aggregation], [k], [search], cutoffs, seed, block_size, restrict)
        outcome = next(E.compute_grid(grid))
    except SoundsimError as e:
        raise InputError(str(e)) from e
    if outcome.failures:
        err = outcome.failures[0].error
        raise InputError(f"{E.setting_name(aggregation, k, search)}: {err}") from err
    return EvaluationResult(outcome.results[0])


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    """Bootstrap statistics of several systems (:func:`compare`).

    * ``intervals``: one row per system and metric: ``system, metric,
      estimate`` (the macro value), ``lo, hi`` (percentile interval), ``se,
      n_labels, n_queries`` (:func:`soundsim.stats.intervals`);
    * ``pairwise``: one row per metric and pair: ``a, b, metric, a_value,
      b_value, diff, diff_lo, diff_hi, se, p, p_holm, significant, better,
      n_labels, n_queries, same_queries`` (:func:`soundsim.stats.pairwise`;
      Holm over all pairs of one metric);
    * ``table``: one row per system, ``system, map@15, map@15_lo, map@15_hi,
      ..., mr1, mr1_lo, mr1_hi`` (the interval columns of ``models.csv``).
    """

    intervals: pd.DataFrame
    pairwise: pd.DataFrame
    confidence: float
    n_resamples: int
    seed: int

    @property
    def table(self) -> pd.DataFrame:
        ci = self.intervals
        metrics = list(dict.fromkeys(ci["metric"]))
        rows = []
        for system, g in ci.groupby("system", sort=False):
            row: dict[str, Any] = {"system": system}
            by = g.set_index("metric")
            for m in metrics:
                lo, hi = St.interval_columns(m)
                row[m], row[lo], row[hi] = (by.at[m, c] if m in by.index else np.nan for c in ("estimate", "lo", "hi"))
            rows.append(row)
        return pd.DataFrame(rows)


def _per_query(name: Any, system: Any) -> pd.DataFrame:
    """A system's per-query table: from an :class:`EvaluationResult`, a
    DataFrame as ``per_query.parquet``, or the path of that file (or of the
    setting folder holding it)."""
    if isinstance(system, EvaluationResult):
        return system.per_query
    if isinstance(system, pd.DataFrame):
        return system
    if isinstance(system, (str, os.PathLike)):
        p = Path(system)
        if p.is_dir():
            p = p / "per_query.parquet"
        if not p.is_file():
            raise InputError(f"systems[{name!r}]: {p} not found (give a per_query.parquet or its setting folder)")
        return St.read_per_query(p)
    raise InputError(f"systems[{name!r}]: expected an EvaluationResult, a per-query DataFrame or a path, "
                     f"got {type(system).__name__}")


def compare(
    systems: Mapping[str, EvaluationResult | pd.DataFrame | PathLike],
    n_resamples: int = St.DEFAULT_RESAMPLES,
    confidence: float = St.DEFAULT_CONFIDENCE,
    seed: int = St.DEFAULT_SEED,
) -> Comparison:
    """Confidence intervals of each system's macro metrics and paired tests of
    every pair (name -> result of :func:`evaluate_embeddings`, per-query
    DataFrame, or ``per_query.parquet`` path): the stratified bootstrap of
    :mod:`soundsim.stats` (queries resampled within labels, ``n_resamples``
    resamples, the same for every system: paired), percentile intervals at
    ``confidence``, two-sided p-values, Holm-corrected. ``estimate`` equals
    each system's ``summary``. Systems evaluated on different clips are
    compared on the queries they share. Returns a :class:`Comparison`."""
    if not isinstance(systems, Mapping) or not systems:
        raise InputError("systems: expected a non-empty mapping name -> result of evaluate_embeddings")
    frames = {name: _per_query(name, s) for name, s in systems.items()}
    try:
        ci = St.intervals(frames, n_resamples, confidence, seed)
        pw = St.pairwise(frames, n_resamples, confidence, seed) if len(frames) > 1 else \
            pd.DataFrame(columns=St.PAIRWISE_COLUMNS)
    except SoundsimError as e:
        raise InputError(str(e)) from e
    return Comparison(ci, pw, float(confidence), int(n_resamples), int(seed))
