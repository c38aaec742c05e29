"""Embedding files (HDF5): write, read and validate; processed matrices and rankings.

One file per (collection, model, variation); the format is documented in
``docs/embeddings-format.md``. In short::

    /fnames       (N,)          utf-8 variable-length strings, unique clip ids
    /embeddings   (F_total, D)  float32; the frame rows of all clips, concatenated
    /offsets      (N+1,)        int64; clip i owns rows offsets[i]:offsets[i+1]
    /keys         (optional, N,) utf-8 strings: the extraction key of each clip (content
                  fingerprint, model, variation, weights, code version; see soundsim.extract)
    /failed/fname, /failed/reason  (optional, M,) strings: clips the extractor could not embed
    /failed/key   (optional, M,) strings: their extraction keys
    attrs: model, variation, dim, sample_rate, hop, level ('frame'|'clip'),
           versions (JSON object of package versions), created (ISO 8601 time)

Contract of :func:`read_embeddings` (and of :func:`write_embeddings`, which
checks the same things *before* writing): offsets start at 0, never decrease,
end at F_total and have N+1 entries; no clip is empty (offsets[i] ==
offsets[i+1]); no fname repeats; every value is finite; ``dim`` equals D; a
``level='clip'`` file has exactly one row per clip. Embeddings must be float32;
float16/float64 data is cast to float32 with a logged note, any other dtype is
an error. Every error is an :class:`EmbeddingError` whose message starts with
the file path and names the clip(s) at fault.

Outputs are written atomically (temporary name, then rename), so a reader never
sees a half-written file.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from soundsim.errors import SoundsimError, first_few
from soundsim.fileutil import atomic_path

log = logging.getLogger(__name__)

LEVELS = ("frame", "clip")
#: rows checked for NaN/inf at a time (bounds the temporary boolean array)
_FINITE_CHUNK_ROWS = 65536


class EmbeddingError(SoundsimError):
    """An embeddings (or rankings) file is missing, malformed or inconsistent.
    The message starts with the file path and names the clip(s) at fault."""


@dataclass
class Embeddings:
    """The content of one embeddings file.

    ``fnames[i]`` owns ``embeddings[offsets[i]:offsets[i+1]]``; clip-level files
    have ``offsets == arange(N+1)``. ``failed`` lists (fname, reason) for clips
    the extractor skipped (not part of ``fnames``).
    """

    fnames: list[str]
    embeddings: np.ndarray  # (F_total, D) float32
    offsets: np.ndarray  # (N+1,) int64
    attrs: dict[str, Any] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    path: str = ""
    keys: list[str] | None = None  # extraction key per clip (None: the file records none)
    failed_keys: list[str] | None = None  # extraction key per failed clip

    @property
    def n_clips(self) -> int:
        return len(self.fnames)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def frame_counts(self) -> np.ndarray:
        """Rows per clip, ``diff(offsets)``."""
        return np.diff(self.offsets)

    def clip_rows(self, i: int) -> np.ndarray:
        """The rows of clip ``i`` (a view)."""
        return self.embeddings[self.offsets[i] : self.offsets[i + 1]]

    def subset(self, idx: Sequence[int] | np.ndarray) -> Embeddings:
        """A new :class:`Embeddings` with clips ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        counts = self.frame_counts[idx]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        # row r of the subset comes from row r - offsets[j] + self.offsets[idx[j]] of clip j
        rows = np.arange(offsets[-1], dtype=np.int64) + np.repeat(self.offsets[idx] - offsets[:-1], counts)
        return Embeddings(
            [self.fnames[i] for i in idx], self.embeddings[rows], offsets, dict(self.attrs), list(self.failed),
            self.path, [self.keys[i] for i in idx] if self.keys is not None else None, self.failed_keys,
        )


@dataclass
class RankingsFile:
    """The content of a rankings.h5 file: row ``q`` holds the top-K results of
    query ``fnames[q]`` as indices into ``fnames`` and their scores."""

    fnames: list[str]
    indices: np.ndarray  # (N, K) int32
    scores: np.ndarray  # (N, K) float32
    attrs: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# helpers



#: packages whose versions every file records
CORE_PACKAGES = ("soundsim", "numpy", "h5py", "scipy", "scikit-learn")


def package_versions(names: Sequence[str] = CORE_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (missing packages are left out)."""
    out: dict[str, str] = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return out


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _attr_value(v: Any) -> Any:
    """Convert an attribute to something HDF5 stores (dicts/lists become JSON)."""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v)
    if v is None:
        return ""
    if isinstance(v, (np.generic,)):
        return v.item()
    return v


def _read_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.attrs.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _as_offsets(path: str, offsets: Any, n_rows: int) -> np.ndarray:
    off = np.asarray(offsets)
    if off.ndim != 1:
        raise EmbeddingError(f"{path}: /offsets must be 1-D, got shape {off.shape}")
    if off.size and not np.issubdtype(off.dtype, np.integer):
        raise EmbeddingError(f"{path}: /offsets must be integers, got dtype {off.dtype}")
    return off.astype(np.int64, copy=False)


def validate_arrays(
    path: str,
    fnames: Sequence[str],
    embeddings: np.ndarray,
    offsets: np.ndarray,
    attrs: Mapping[str, Any] | None = None,
    check_finite: bool = True,
) -> None:
    """Check the contract in the module docstring; raise :class:`EmbeddingError`
    (message starting with ``path``) naming the first offending clip(s)."""
    n = len(fnames)
    if embeddings.ndim != 2:
        raise EmbeddingError(f"{path}: /embeddings must be 2-D (frames x dim), got shape {embeddings.shape}")
    if embeddings.dtype != np.float32:
        raise EmbeddingError(f"{path}: /embeddings must be float32, got {embeddings.dtype}")
    f_total, dim = embeddings.shape
    if dim == 0 and n > 0:
        raise EmbeddingError(f"{path}: /embeddings has dimension 0")
    if offsets.shape != (n + 1,):
        raise EmbeddingError(f"{path}: /offsets has {offsets.shape[0]} entries, expected N+1 = {n + 1} for {n} clips")
    if offsets[0] != 0:
        raise EmbeddingError(f"{path}: /offsets must start at 0, starts at {int(offsets[0])}")
    if offsets[-1] != f_total:
        raise EmbeddingError(
            f"{path}: /offsets must end at the number of embedding rows ({f_total}), ends at {int(offsets[-1])}"
        )
    counts = np.diff(offsets)
    neg = np.flatnonzero(counts < 0)
    if neg.size:
        i = int(neg[0])
        raise EmbeddingError(
            f"{path}: /offsets decrease at clip {fnames[i]!r} (index {i}: {int(offsets[i])} -> {int(offsets[i + 1])}); "
            "offsets must be monotone"
        )
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        names = [fnames[i] for i in empty]
        raise EmbeddingError(f"{path}: {len(names)} empty clip(s) (no embedding rows): {first_few(names, quote=True)}")
    dup = sorted(f for f, c in Counter(fnames).items() if c > 1)
    if dup:
        raise EmbeddingError(f"{path}: {len(dup)} duplicate fname(s): {first_few(dup, quote=True)}")
    attrs = attrs or {}
    if "dim" in attrs and int(attrs["dim"]) != dim:
        raise EmbeddingError(f"{path}: attribute dim={attrs['dim']} but /embeddings has {dim} columns")
    level = attrs.get("level")
    if level is not None and level not in LEVELS:
        raise EmbeddingError(f"{path}: attribute level={level!r}; allowed: {', '.join(map(repr, LEVELS))}")
    if level == "clip":
        multi = np.flatnonzero(counts != 1)
        if multi.size:
            names = [f"{fnames[i]!r} ({int(counts[i])} rows)" for i in multi]
            raise EmbeddingError(
                f"{path}: level='clip' but {len(names)} clip(s) have more than one row: {first_few(names, quote=False)}"
            )
    if check_finite:
        for start in range(0, f_total, _FINITE_CHUNK_ROWS):
            chunk = embeddings[start : start + _FINITE_CHUNK_ROWS]
            ok = np.isfinite(chunk).all(axis=1)
            if not ok.all():
                row = start + int(np.flatnonzero(~ok)[0])
                clip = int(np.searchsorted(offsets, row, side="right") - 1)
                bad = embeddings[row][~np.isfinite(embeddings[row])][0]
                raise EmbeddingError(
                    f"{path}: non-finite value ({bad}) in clip {fnames[clip]!r} (row {row - int(offsets[clip])} "
                    f"of its {int(counts[clip])}); first such clip in file order"
                )


def _to_float32(path: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.float32:
        return arr
    if arr.dtype in (np.float16, np.float64):
        log.warning("%s: embeddings are %s; cast to float32 (soundsim computes in float32)", path, arr.dtype)
        return arr.astype(np.float32)
    raise EmbeddingError(f"{path}: /embeddings must be float32 (float16/float64 are cast), got {arr.dtype}")


# ---------------------------------------------------------------------------
# embeddings


def write_embeddings(
    path: str | Path,
    fnames: Sequence[str],
    data: Sequence[np.ndarray] | tuple[np.ndarray, np.ndarray],
    attrs: Mapping[str, Any],
    failed: Sequence[tuple[str, str]] | None = None,
    keys: Sequence[str] | None = None,
    failed_keys: Sequence[str] | None = None,
) -> Path:
    """Write an embeddings file atomically.

    ``data`` is either a list with one array per clip (``(frames, D)``, or
    ``(D,)`` for one row) or a pair ``(embeddings (F_total, D), offsets (N+1,)
    integer)``. A file may hold no clips (e.g. a shard where every clip
    failed): ``(zeros((0, D)), [0])``.
    ``attrs`` must hold ``model`` and ``variation``; ``level`` defaults to
    'clip' when every clip has one row, else 'frame'; ``dim`` is set from the
    data; ``sample_rate`` defaults to -1 (unknown), ``hop`` to NaN; ``versions``
    (package versions) and ``created`` (now, UTC) are filled in unless given.
    Other attributes are stored as given (dicts/lists as JSON strings).
    ``keys`` / ``failed_keys``: the extraction key of each clip / failed clip
    (``/keys``, ``/failed/key``), one per fname / failed entry.
    The data is validated (see module docstring) before anything is written.
    """
    path = Path(path)
    spath = str(path)
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and np.ndim(data[1]) == 1
        and np.issubdtype(np.asarray(data[1]).dtype, np.integer)
        and len(data[1]) == len(fnames) + 1
    ):
        emb = _to_float32(spath, np.asarray(data[0]))
        offsets = _as_offsets(spath, data[1], emb.shape[0] if emb.ndim else 0)
    else:
        rows = [np.atleast_2d(np.asarray(a)) for a in data]
        if len(rows) != len(fnames):
            raise EmbeddingError(f"{spath}: {len(fnames)} fnames but {len(rows)} clip arrays")
        counts = np.array([r.shape[0] for r in rows], dtype=np.int64)
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        dims = {r.shape[1] for r in rows if r.ndim == 2}
        if len(dims) > 1:
            raise EmbeddingError(f"{spath}: clips have different embedding dimensions: {sorted(dims)}")
        emb = np.concatenate(rows, axis=0) if rows else np.zeros((0, 0), dtype=np.float32)
        emb = _to_float32(spath, emb)
    fnames = [str(f) for f in fnames]
    missing = [k for k in ("model", "variation") if k not in attrs]
    if missing:
        raise EmbeddingError(f"{spath}: missing attribute(s) {', '.join(missing)}")
    a: dict[str, Any] = dict(attrs)
    counts = np.diff(offsets) if offsets.size else offsets
    a.setdefault("level", "clip" if counts.size and bool(np.all(counts == 1)) else "frame")
    a["dim"] = int(emb.shape[1]) if emb.ndim == 2 else 0
    a.setdefault("sample_rate", -1)
    a.setdefault("hop", float("nan"))
    a.setdefault("versions", package_versions())
    a.setdefault("created", _now_iso())
    validate_arrays(spath, fnames, emb, offsets, a)
    failed = list(failed or [])
    if keys is not None and len(keys) != len(fnames):
        raise EmbeddingError(f"{spath}: {len(fnames)} fnames but {len(keys)} keys")
    if failed_keys is not None and len(failed_keys) != len(failed):
        raise EmbeddingError(f"{spath}: {len(failed)} failed clips but {len(failed_keys)} keys")
    str_dt = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("fnames", data=np.array(fnames, dtype=object), dtype=str_dt)
            f.create_dataset("embeddings", data=emb)
            f.create_dataset("offsets", data=offsets.astype(np.int64))
            if keys is not None:
                f.create_dataset("keys", data=np.array([str(k) for k in keys], dtype=object), dtype=str_dt)
            if failed:
                g = f.create_group("failed")
                g.create_dataset("fname", data=np.array([str(x[0]) for x in failed], dtype=object), dtype=str_dt)
                g.create_dataset("reason", data=np.array([str(x[1]) for x in failed], dtype=object), dtype=str_dt)
                if failed_keys is not None:
                    g.create_dataset("key", data=np.array([str(k) for k in failed_keys], dtype=object), dtype=str_dt)
            for k, v in a.items():
                f.attrs[k] = _attr_value(v)
    return path


def read_embeddings(path: str | Path, check_finite: bool = True) -> Embeddings:
    """Read and validate an embeddings file (see the module docstring for the
    contract). ``attrs['versions']`` is parsed from JSON when possible."""
    path = Path(path)
    spath = str(path)
    if not path.is_file():
        raise EmbeddingError(f"{spath}: embeddings file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise EmbeddingError(f"{spath}: not a readable HDF5 file ({e})") from e
    with f:
        missing = [k for k in ("fnames", "embeddings", "offsets") if k not in f]
        if missing:
            raise EmbeddingError(
                f"{spath}: missing dataset(s) {', '.join('/' + m for m in missing)} "
                "(expected /fnames, /embeddings, /offsets; see docs/embeddings-format.md)"
            )
        try:
            fnames = [str(x) for x in f["fnames"].asstr()[()]]
        except (TypeError, ValueError, UnicodeDecodeError) as e:
            raise EmbeddingError(f"{spath}: /fnames must be utf-8 strings ({e})") from e
        emb = f["embeddings"][()]
        offsets = _as_offsets(spath, f["offsets"][()], emb.shape[0] if emb.ndim == 2 else 0)
        attrs = _read_attrs(f)
        keys = _read_strings(f, "keys", spath, len(fnames))
        failed: list[tuple[str, str]] = []
        failed_keys: list[str] | None = None
        if "failed" in f:
            g = f["failed"]
            if not (isinstance(g, h5py.Group) and "fname" in g and "reason" in g):
                raise EmbeddingError(f"{spath}: /failed must be a group with string datasets fname and reason")
            fn, rs = g["fname"].asstr()[()], g["reason"].asstr()[()]
            if len(fn) != len(rs):
                raise EmbeddingError(f"{spath}: /failed/fname and /failed/reason differ in length")
            failed = list(zip(map(str, fn), map(str, rs), strict=True))
            failed_keys = _read_strings(g, "key", spath, len(failed))
    if emb.ndim != 2:
        raise EmbeddingError(f"{spath}: /embeddings must be 2-D (frames x dim), got shape {emb.shape}")
    if not np.issubdtype(emb.dtype, np.floating):
        raise EmbeddingError(f"{spath}: /embeddings must be float32, got {emb.dtype}")
    emb = _to_float32(spath, emb)
    if isinstance(attrs.get("versions"), str):
        try:
            attrs["versions"] = json.loads(attrs["versions"])
        except json.JSONDecodeError:
            pass
    validate_arrays(spath, fnames, emb, offsets, attrs, check_finite=check_finite)
    return Embeddings(fnames, emb, offsets, attrs, failed, spath, keys, failed_keys)


def _read_strings(group: h5py.Group, name: str, spath: str, n: int) -> list[str] | None:
    """An optional string dataset of ``n`` entries (None when absent)."""
    if name not in group:
        return None
    try:
        out = [str(x) for x in group[name].asstr()[()]]
    except (TypeError, ValueError, UnicodeDecodeError) as e:
        raise EmbeddingError(f"{spath}: {group[name].name} must be utf-8 strings ({e})") from e
    if len(out) != n:
        raise EmbeddingError(f"{spath}: {group[name].name} has {len(out)} entries, expected {n}")
    return out


def read_keys(path: str | Path) -> tuple[list[str], list[str] | None, np.ndarray, dict[str, Any],
                                         list[tuple[str, str]], list[str] | None]:
    """The index of an embeddings file without its rows: (fnames, keys, offsets,
    attrs, failed, failed keys). What extraction reads to reuse unchanged clips
    (:func:`read_rows` then reads only the rows it needs)."""
    path = Path(path)
    spath = str(path)
    try:
        with h5py.File(path, "r") as f:
            fnames = [str(x) for x in f["fnames"].asstr()[()]]
            offsets = np.asarray(f["offsets"][()], dtype=np.int64)
            keys = _read_strings(f, "keys", spath, len(fnames))
            failed: list[tuple[str, str]] = []
            failed_keys = None
            if "failed" in f:
                g = f["failed"]
                failed = list(zip(map(str, g["fname"].asstr()[()]), map(str, g["reason"].asstr()[()]), strict=True))
                failed_keys = _read_strings(g, "key", spath, len(failed))
            return fnames, keys, offsets, _read_attrs(f), failed, failed_keys
    except (OSError, KeyError) as e:
        raise EmbeddingError(f"{spath}: not a readable embeddings file ({e})") from e


class RowReader:
    """Reads row ranges of an embeddings file's ``/embeddings`` from disk, one
    range at a time (memory: the rows asked for). A context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._f = h5py.File(path, "r")
        self._ds = self._f["embeddings"]

    def rows(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self._ds[start:stop], dtype=np.float32)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_processed(path: str | Path, fnames: Sequence[str], X: np.ndarray, attrs: Mapping[str, Any]) -> Path:
    """Write a processed clip-level matrix ``X`` (N x D) as a clip-level
    embeddings file (one row per clip, ``level='clip'``), so
    :func:`read_embeddings` reads it back. ``attrs`` should say how it was
    made (model, variation, aggregation, pca, normalisation)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != len(fnames):
        raise EmbeddingError(f"{path}: processed matrix must be (N={len(fnames)}, D), got {X.shape}")
    a = {"model": "", "variation": "", **dict(attrs), "level": "clip"}
    return write_embeddings(path, fnames, (X.astype(np.float32, copy=False), np.arange(X.shape[0] + 1)), a)


# ---------------------------------------------------------------------------
# rankings


def write_rankings(
    path: str | Path,
    fnames: Sequence[str],
    indices: np.ndarray,
    scores: np.ndarray,
    attrs: Mapping[str, Any],
) -> Path:
    """Write rankings atomically: ``/fnames`` (N,) strings (row q is the query
    ``fnames[q]``), ``/indices`` (N, K) int32 indices into ``/fnames``,
    ``/scores`` (N, K) float32, best first; ``attrs`` (search, score meaning,
    tie rule, settings)."""
    n = len(fnames)
    if indices.shape != scores.shape or indices.ndim != 2 or indices.shape[0] != n:
        raise EmbeddingError(
            f"{path}: rankings must be (N={n}, K) indices and scores, got {indices.shape} / {scores.shape}"
        )
    str_dt = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("fnames", data=np.array([str(x) for x in fnames], dtype=object), dtype=str_dt)
            f.create_dataset("indices", data=indices.astype(np.int32, copy=False))
            f.create_dataset("scores", data=scores.astype(np.float32, copy=False))
            for k, v in {**dict(attrs), "created": _now_iso()}.items():
                f.attrs[k] = _attr_value(v)
    return Path(path)


def read_rankings(path: str | Path) -> RankingsFile:
    """Read a rankings file written by :func:`write_rankings`."""
    path = Path(path)
    if not path.is_file():
        raise EmbeddingError(f"{path}: rankings file not found")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("fnames", "indices", "scores") if k not in f]
            if missing:
                raise EmbeddingError(f"{path}: missing dataset(s) {', '.join('/' + m for m in missing)}")
            return RankingsFile(
                [str(x) for x in f["fnames"].asstr()[()]], f["indices"][()], f["scores"][()], _read_attrs(f)
            )
    except OSError as e:
        raise EmbeddingError(f"{path}: not a readable HDF5 file ({e})") from e
