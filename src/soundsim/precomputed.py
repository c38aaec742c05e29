"""Precomputed embeddings: vectors computed elsewhere, imported into soundsim's embeddings format.

A model of kind ``precomputed`` (``models.<name>.kind: precomputed``,
:mod:`soundsim.models._precomputed`) embeds no audio: its vectors come from
``models.<name>.path``, one of these **formats** (told from the path unless
``models.<name>.format`` says):

============  ============================================================================
format        source
============  ============================================================================
npy-folder    a folder of ``<name>.npy`` files, one per clip, each ``(frames, D)`` or ``(D,)``
npz           an ``.npz`` with arrays ``X`` (or ``embeddings``) and ``fnames``: one row per
              fname; or one array per clip, the array's name being the clip's name
npy           an ``.npy`` array with ``models.<name>.fnames``: a text file, one fname per
              line, one line per row of the array
parquet       a table with a ``fname`` column and the vector: every other column (numeric),
csv, tsv      or (parquet only) one list column
hdf5          soundsim's own embeddings file (:mod:`soundsim.store`; ``.h5``/``.hdf5``)
============  ============================================================================

In the tabular formats (``npz`` with ``X`` + ``fnames``, ``npy``, ``parquet``,
``csv``, ``tsv``) a fname on several rows gives that clip several frames, in
file order; a 3-D array ``(N, frames, D)`` with N fnames gives each clip its
``frames`` rows.

**Names.** A source's name for a clip (a file's name without ``.npy``, an
fname in the source) matches the collection's ``fname`` ``f`` when it equals
``f``, else when it equals ``f`` without its extension (``dog.wav`` in the
collection, ``dog.npy`` in the folder), else when the name without its
extension equals ``f`` (``dog.wav.npy`` or fname ``dog.wav`` in the source,
``dog`` in the collection). Two source names for one clip, or one name that
could be two clips, are errors naming both.

**What is checked**, each error naming the file and the clip(s)
(:class:`SourceError`): an unreadable file or an unknown format; arrays that
are not 1-, 2- or (tabular) 3-D, or non-numeric; clips with another dimension
than the others (two clips and their dimensions are named); NaN or infinity
(the clip, row and column); names not in the collection (listed, up to
:data:`LIST_LIMIT`, with their count; names of clips the manifest left out as
bad audio, ``bad_audio.csv``, are dropped with a note instead); ``level: clip``
with a clip of several rows.

**Clips of the collection without a vector** are recorded as failed
(``/failed``, reason ``no vector in <path>``), as extraction records a clip
whose audio it cannot embed: with ``extraction.on_bad_audio: skip`` (the
default) they are left out of the evaluation and counted in ``summary.json``;
with ``fail`` the import stops listing them. A source that matches no clip at
all is an error either way. Failed clips of an ``hdf5`` source stay failed,
with their reasons.

**Level**: ``clip`` when every clip has one row, else ``frame``, unless
``models.<name>.level`` says (``frame`` with one row per clip is allowed:
aggregation of one row is that row).

The import (:func:`import_embeddings`) writes the clips in the manifest's
order with :func:`soundsim.store.write_embeddings`, the attributes extraction
writes where they apply (``model``, ``variation``, ``level``, ``dim``,
``sample_rate`` -1, ``hop`` NaN, ``processing``, ``env``, ``options``,
``code_version``, ``versions``, ``n_failed``) plus ``source``,
``source_format`` and ``source_fingerprint``. Values are stored as float32
(float64 sources are rounded once, on import).

:func:`source_fingerprint` is the content fingerprint of what the import reads
(:mod:`soundsim.fingerprint`: the names and contents of the files, cached by
size and mtime): the workflow passes it as a parameter of the import rule, so
a changed source re-imports (and re-evaluates) that model, and an unchanged one
does nothing. :func:`describe` reads only what planning needs (the dimension
and the level: ``.npy`` headers, the parquet schema and ``fname`` column, HDF5
attributes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from soundsim.errors import SoundsimError, first_few

log = logging.getLogger(__name__)

#: the formats a source may have (``models.<name>.format``)
FORMATS = ("npy-folder", "npz", "npy", "parquet", "csv", "tsv", "hdf5")
#: file name ending -> format (a folder is ``npy-folder``)
SUFFIXES = {".npz": "npz", ".npy": "npy", ".parquet": "parquet", ".pq": "parquet", ".csv": "csv",
            ".tsv": "tsv", ".h5": "hdf5", ".hdf5": "hdf5"}
#: the variation of a precomputed model unless ``models.<name>.variations`` names one
DEFAULT_VARIATION = "precomputed"
#: names listed at most in an error message (then "... (N more)")
LIST_LIMIT = 10
#: the array names of an .npz holding one matrix and its fnames
NPZ_MATRIX = ("X", "embeddings")
FNAME_COLUMN = "fname"


class SourceError(SoundsimError):
    """A precomputed-embeddings source is missing, unreadable or inconsistent (the
    message names the file and the clip(s) at fault)."""


@dataclass(frozen=True)
class Source:
    """A source of precomputed embeddings: ``path`` of ``format`` (:data:`FORMATS`);
    ``fnames``: the fnames list of a single ``.npy``."""

    path: Path
    format: str
    fnames: Path | None = None

    def files(self) -> list[Path]:
        """The files the import reads (a folder: its ``*.npy`` files, sorted by name)."""
        if self.format == "npy-folder":
            return _npy_files(self.path)
        return [self.path] + ([self.fnames] if self.fnames is not None else [])


@dataclass(frozen=True)
class Summary:
    """What planning needs of a source (:func:`describe`): the vectors' dimension and
    the level the data has (``clip``: one row per clip; ``frame``: some clip has several)."""

    format: str
    dim: int
    level: str


@dataclass
class Vectors:
    """A source's clips, in source order: ``names[i]`` owns ``rows[i]`` ``(frames, D)``
    float32; ``labels[i]`` names it in messages, after the source's path (``a.npy`` in a
    folder, ``array 'a'`` in an .npz, ``clip 'a'`` in a table); ``failed``: (name, reason)
    of clips an ``hdf5`` source records as failed."""

    names: list[str]
    rows: list[np.ndarray]
    labels: list[str]
    failed: list[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- sources


def source_of(path: str | Path, format: str | None = None, fnames: str | Path | None = None) -> Source:
    """The :class:`Source` at ``path``: ``format`` as given (:data:`FORMATS`) or told from the
    path (a folder: ``npy-folder``; else by :data:`SUFFIXES`). ``fnames`` is required with,
    and only with, format ``npy``. A SourceError names the path and the problem."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: not found")
    if format is None:
        format = "npy-folder" if p.is_dir() else SUFFIXES.get(p.suffix.lower())
        if format is None:
            raise SourceError(f"{p}: unknown format (known: a folder of .npy files, "
                              f"{', '.join(sorted(SUFFIXES))}); name it with format: ({', '.join(FORMATS)})")
    elif format not in FORMATS:
        raise SourceError(f"{p}: format {format!r} is not a format; allowed values: {', '.join(FORMATS)}")
    if (format == "npy-folder") != p.is_dir():
        raise SourceError(f"{p}: format {format} needs " + ("a folder" if format == "npy-folder" else "a file"))
    if format == "npy" and fnames is None:
        raise SourceError(f"{p}: a single .npy needs fnames: a text file with one fname per row of the array")
    if format != "npy" and fnames is not None:
        raise SourceError(f"{p}: fnames: is for a single .npy only (format {format} names its clips itself)")
    fn = Path(fnames) if fnames is not None else None
    if fn is not None and not fn.is_file():
        raise SourceError(f"{fn}: fnames list not found")
    return Source(p, format, fn)


def _npy_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix == ".npy" and p.is_file()), key=lambda p: p.name)


def _state(src: Source) -> str:
    """A digest of the size and mtime of every file the source reads (no content read)."""
    from soundsim.fingerprint import stat_digest

    return stat_digest([src.path, *src.files()])


# --------------------------------------------------------------------------- cheap description


def describe(src: Source) -> Summary:
    """The format, dimension and level of ``src`` from headers, schemas or attributes only
    (memoised while the files' sizes and mtimes are unchanged)."""
    return _describe(src, _state(src))


@lru_cache(maxsize=64)
def _describe(src: Source, state: str) -> Summary:  # noqa: ARG001 - state keys the cache
    try:
        dim, level = _DESCRIBERS[src.format](src)
    except SourceError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise SourceError(f"{src.path}: not a readable {src.format} source ({type(e).__name__}: {e})") from e
    return Summary(src.format, dim, level)


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an open ``.npy`` stream (only its header is read)."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(shape), dtype


def _level_of_shapes(shapes: Iterable[tuple[int, ...]]) -> str:
    return "frame" if any(len(s) == 2 and s[0] != 1 for s in shapes) else "clip"


def _describe_folder(src: Source) -> tuple[int, str]:
    files = src.files()
    if not files:
        raise SourceError(f"{src.path}: no .npy files in this folder")
    shapes = []
    for f in files:
        with f.open("rb") as fh:
            try:
                shapes.append(_npy_header(fh)[0])
            except ValueError as e:
                raise SourceError(f"{f}: not a readable .npy file ({e})") from e
    return (shapes[0][-1] if shapes[0] else 0), _level_of_shapes(shapes)


def _tabular_level(names: Sequence[str], shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return "frame" if shape[1] != 1 else "clip"
    return "frame" if len(set(names)) < len(names) else "clip"


def _describe_npz(src: Source) -> tuple[int, str]:
    with zipfile.ZipFile(src.path) as z:
        members = {n[:-4]: n for n in z.namelist() if n.endswith(".npy")}
        shapes = {}
        for name, member in members.items():
            with z.open(member) as fh:
                shapes[name] = _npy_header(fh)[0]
    matrix = next((m for m in NPZ_MATRIX if m in shapes), None)
    if matrix is not None and "fnames" in shapes:
        with np.load(src.path, allow_pickle=False) as z:
            names = [str(x) for x in z["fnames"]]
        return shapes[matrix][-1], _tabular_level(names, shapes[matrix])
    if not shapes:
        raise SourceError(f"{src.path}: the .npz holds no arrays")
    first = next(iter(shapes.values()))
    return (first[-1] if first else 0), _level_of_shapes(shapes.values())


def _describe_npy(src: Source) -> tuple[int, str]:
    with src.path.open("rb") as fh:
        shape, _ = _npy_header(fh)
    assert src.fnames is not None
    return (shape[-1] if shape else 0), _tabular_level(_read_fnames_list(src.fnames), shape)


def _describe_parquet(src: Source) -> tuple[int, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(src.path)
    _require_fname(src, schema.names)
    vec = [f for f in schema if f.name != FNAME_COLUMN]
    lists = [f for f in vec if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)
             or pa.types.is_fixed_size_list(f.type)]
    names = [str(x) for x in pq.read_table(src.path, columns=[FNAME_COLUMN]).column(0).to_pylist()]
    level = _tabular_level(names, (len(names), 0))
    if len(vec) == 1 and lists:
        if pa.types.is_fixed_size_list(lists[0].type):
            return int(lists[0].type.list_size), level
        pf = pq.ParquetFile(src.path)
        first = next(pf.iter_batches(batch_size=1, columns=[lists[0].name]), None)
        return (len(first.column(0)[0]) if first is not None and first.num_rows else 0), level
    return len(vec), level


def _describe_csv(src: Source) -> tuple[int, str]:
    import pandas as pd

    sep = "\t" if src.format == "tsv" else ","
    cols = list(pd.read_csv(src.path, sep=sep, nrows=0).columns)
    _require_fname(src, cols)
    names = pd.read_csv(src.path, sep=sep, usecols=[FNAME_COLUMN], dtype=str, keep_default_na=False)[FNAME_COLUMN]
    return len(cols) - 1, _tabular_level(names.tolist(), (len(names), 0))


def _describe_hdf5(src: Source) -> tuple[int, str]:
    import h5py

    with h5py.File(src.path, "r") as f:
        if "embeddings" not in f or "offsets" not in f:
            raise SourceError(f"{src.path}: not a soundsim embeddings file (needs /fnames, /embeddings, /offsets; "
                              "see docs/embeddings-format.md)")
        dim = int(f["embeddings"].shape[1]) if len(f["embeddings"].shape) == 2 else 0
        level = f.attrs.get("level")
        level = level.decode() if isinstance(level, bytes) else level
        if level not in ("clip", "frame"):
            level = "clip" if bool(np.all(np.diff(f["offsets"][()]) == 1)) else "frame"
    return dim, str(level)


_DESCRIBERS = {"npy-folder": _describe_folder, "npz": _describe_npz, "npy": _describe_npy,
               "parquet": _describe_parquet, "csv": _describe_csv, "tsv": _describe_csv, "hdf5": _describe_hdf5}


# --------------------------------------------------------------------------- readers


def _read_fnames_list(path: Path) -> list[str]:
    """One fname per line (trailing blank lines ignored; a blank line in between is an error)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"{path}: not a readable fnames list ({e})") from e
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i + 1 for i, s in enumerate(lines) if not s.strip()]
    if blank:
        raise SourceError(f"{path}: blank line(s) {first_few(blank)} (one fname per line, one line per row)")
    return [s.strip() for s in lines]


def _require_fname(src: Source, columns: Sequence[str]) -> None:
    if FNAME_COLUMN not in columns:
        raise SourceError(f"{src.path}: no {FNAME_COLUMN!r} column (columns: {first_few(list(columns), quote=True)}); "
                          f"a table needs {FNAME_COLUMN!r} and the vector columns")


def _numeric(arr: np.ndarray, where: str) -> np.ndarray:
    """``arr`` as float32; a SourceError for a non-numeric array."""
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == np.bool_):
        raise SourceError(f"{where}: values must be numbers, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float32)


def _as_rows(arr: np.ndarray, where: str) -> np.ndarray:
    """One clip's array as (frames, D) float32: (D,) is one row; other ranks are errors."""
    a = _numeric(np.asarray(arr), where)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise SourceError(f"{where}: expected (frames, D) or (D,), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise SourceError(f"{where}: empty array, shape {a.shape}")
    return a


def _group(names: Sequence[str], X: np.ndarray, where: str) -> Vectors:
    """Rows ``X`` (R, D) with one name per row -> one clip per name (first-appearance order),
    its rows in file order; ``X`` (N, frames, D) with N names -> clip i owns ``X[i]``."""
    X = _numeric(np.asarray(X), where)
    if X.ndim == 3:
        if len(names) != X.shape[0]:
            raise SourceError(f"{where}: {len(names)} fnames for an array of {X.shape[0]} clips (shape {X.shape})")
        return Vectors(list(names), [X[i] for i in range(len(names))], [f"clip {n!r}" for n in names])
    if X.ndim == 1 and len(names) == 1:
        X = X[None, :]
    if X.ndim != 2:
        raise SourceError(f"{where}: expected a (rows, D) or (N, frames, D) array, got shape {X.shape}")
    if len(names) != X.shape[0]:
        raise SourceError(f"{where}: {len(names)} fnames for {X.shape[0]} rows; one fname per row")
    import pandas as pd

    codes, uniq = pd.factorize(pd.Series(list(names), dtype=object))
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(uniq))
    parts = np.split(X[order], np.cumsum(counts)[:-1]) if len(uniq) else []
    return Vectors([str(u) for u in uniq], list(parts), [f"clip {str(u)!r}" for u in uniq])


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise SourceError(f"{path}: not a readable .npy file ({e})") from e


def _read_folder(src: Source) -> Vectors:
    files = src.files()
    if not files:
        raise SourceError(f"{src.path}: no .npy files in this folder")
    rows = [_as_rows(_load_npy(f), str(f)) for f in files]
    return Vectors([f.name[: -len(".npy")] for f in files], rows, [f.name for f in files])


def _read_npz(src: Source) -> Vectors:
    try:
        z = np.load(src.path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SourceError(f"{src.path}: not a readable .npz file ({e})") from e
    with z:
        try:
            arrays = {k: z[k] for k in z.files}
        except ValueError as e:
            raise SourceError(f"{src.path}: an array holds Python objects ({e}); store strings as str arrays "
                              "(np.array(fnames, dtype=str)) and vectors as numbers") from e
    matrix = next((m for m in NPZ_MATRIX if m in arrays), None)
    if matrix is not None and "fnames" in arrays:
        names = [str(x) for x in np.asarray(arrays["fnames"]).ravel()]
        return _group(names, arrays[matrix], f"{src.path}[{matrix}]")
    if matrix is not None or "fnames" in arrays:
        raise SourceError(f"{src.path}: has {'fnames' if matrix is None else matrix!r} but not "
                          f"{' or '.join(NPZ_MATRIX) if matrix is None else 'fnames'}; give both, "
                          "or one array per clip named by its fname")
    if not arrays:
        raise SourceError(f"{src.path}: the .npz holds no arrays")
    names = list(arrays)
    return Vectors(names, [_as_rows(arrays[n], f"{src.path}: array {n!r}") for n in names],
                   [f"array {n!r}" for n in names])


def _read_npy(src: Source) -> Vectors:
    assert src.fnames is not None
    names = _read_fnames_list(src.fnames)
    return _group(names, _load_npy(src.path), f"{src.path} (fnames: {src.fnames})")


def _table_vectors(src: Source, df: Any) -> Vectors:
    """A table (pandas) with ``fname`` and the vector: numeric columns, or one list column."""
    import pandas as pd

    _require_fname(src, list(df.columns))
    names = df[FNAME_COLUMN].astype(str).tolist()
    vec = df.drop(columns=[FNAME_COLUMN])
    if vec.shape[1] == 0:
        raise SourceError(f"{src.path}: no vector columns beside {FNAME_COLUMN!r}")
    if vec.shape[1] == 1 and vec.dtypes.iloc[0] == object:
        col = vec.columns[0]
        lengths = vec[col].map(lambda v: len(v) if hasattr(v, "__len__") else -1)
        if (lengths < 0).any():
            raise SourceError(f"{src.path}: column {col!r} holds neither numbers nor lists of numbers")
        _same_dim([(f"clip {n!r}", int(k)) for n, k in zip(names, lengths, strict=True)], str(src.path))
        X = np.stack([np.asarray(v, dtype=np.float64) for v in vec[col]]) if len(vec) else np.zeros((0, 0))
        return _group(names, X, str(src.path))
    bad = [c for c in vec.columns if not pd.api.types.is_numeric_dtype(vec[c])]
    if bad:
        raise SourceError(f"{src.path}: column(s) {first_few(bad, quote=True)} are not numbers; every column "
                          f"beside {FNAME_COLUMN!r} is a component of the vector")
    return _group(names, vec.to_numpy(), str(src.path))


def _read_parquet(src: Source) -> Vectors:
    import pandas as pd

    try:
        df = pd.read_parquet(src.path)
    except (OSError, ValueError) as e:
        raise SourceError(f"{src.path}: not a readable parquet file ({e})") from e
    return _table_vectors(src, df)


def _read_csv(src: Source) -> Vectors:
    import pandas as pd

    try:
        df = pd.read_csv(src.path, sep="\t" if src.format == "tsv" else ",", dtype={FNAME_COLUMN: str},
                         keep_default_na=False, na_values=["", "nan", "NaN", "NA"])
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise SourceError(f"{src.path}: not a readable {src.format.upper()} file ({e})") from e
    return _table_vectors(src, df)


def _read_hdf5(src: Source) -> Vectors:
    from soundsim import store

    emb = store.read_embeddings(src.path)
    rows = [emb.clip_rows(i) for i in range(emb.n_clips)]
    return Vectors(list(emb.fnames), rows, [f"clip {f!r}" for f in emb.fnames], list(emb.failed))


_READERS = {"npy-folder": _read_folder, "npz": _read_npz, "npy": _read_npy, "parquet": _read_parquet,
            "csv": _read_csv, "tsv": _read_csv, "hdf5": _read_hdf5}


def _same_dim(dims: Sequence[tuple[str, int]], where: str) -> None:
    """A SourceError naming the first clip and the first clip with another dimension."""
    if not dims:
        return
    first, d0 = dims[0]
    other = next(((n, d) for n, d in dims if d != d0), None)
    if other is not None:
        n_other = sum(1 for _, d in dims if d != d0)
        raise SourceError(f"{where}: dimension mismatch: {first} has {d0} columns but {other[0]} has {other[1]} "
                          f"({n_other} of {len(dims)} clips differ from the first); every clip needs the same D")


def read_source(src: Source) -> Vectors:
    """Every clip of ``src`` (source order), checked: one dimension for all (else the first
    clip and the first with another dimension are named), unique names, finite values
    (else the clip, row and column). Values float32."""
    vec = _READERS[src.format](src)
    _same_dim([(lab, int(r.shape[1])) for lab, r in zip(vec.labels, vec.rows, strict=True)], str(src.path))
    dup = sorted(n for n, k in Counter(vec.names).items() if k > 1)
    if dup:
        raise SourceError(f"{src.path}: {len(dup)} clip name(s) appear twice: {first_few(dup, LIST_LIMIT, quote=True)}")
    for label, rows in zip(vec.labels, vec.rows, strict=True):
        bad = ~np.isfinite(rows)
        if bad.any():
            r, c = (int(x[0]) for x in np.nonzero(bad))
            raise SourceError(f"{src.path}: {label} has a non-finite value ({rows[r, c]}) at row {r}, column {c}; "
                              "NaN and infinity cannot be searched")
    return vec


# --------------------------------------------------------------------------- names


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


def match_names(names: Sequence[str], fnames: Sequence[str], where: str,
                ignore: Iterable[str] = (), strict: bool = True) -> dict[str, str]:
    """Source name -> collection fname (the rules in the module docstring). Names that match
    none are a SourceError listing them (up to :data:`LIST_LIMIT`) with their count (left out
    without ``strict``), except those that match a name in ``ignore`` (clips the manifest left
    out), dropped with a note; two names for one clip, or a name that fits two clips, are
    errors naming them."""
    exact = set(fnames)
    by_stem: dict[str, list[str]] = {}
    for f in fnames:
        s = _stem(f)
        if s != f:
            by_stem.setdefault(s, []).append(f)
    ignored = set(ignore)
    ignored |= {_stem(f) for f in ignored}
    out: dict[str, str] = {}
    unknown: list[str] = []
    dropped: list[str] = []
    for n in names:
        if n in exact:
            out[n] = n
        elif n in by_stem:
            if len(by_stem[n]) > 1:
                raise SourceError(f"{where}: {n!r} could be any of the clips {first_few(by_stem[n], quote=True)}; "
                                  "name it by the full fname")
            out[n] = by_stem[n][0]
        elif _stem(n) in exact:
            out[n] = _stem(n)
        elif n in ignored or _stem(n) in ignored:
            dropped.append(n)
        else:
            unknown.append(n)
    if unknown and strict:
        like = (f"the collection's fnames look like {first_few(list(fnames)[:3], 3, quote=True)}; " if fnames
                else "the collection has no clips; ")
        raise SourceError(f"{where}: {len(unknown)} name(s) not in the collection: "
                          f"{first_few(unknown, LIST_LIMIT, quote=True)} ({like}see soundsim.precomputed on names)")
    if dropped:
        log.info("%s: %d clip(s) the manifest left out as bad audio are not imported: %s", where, len(dropped),
                 first_few(dropped, LIST_LIMIT, quote=True))
    taken: dict[str, str] = {}
    for n, f in out.items():
        if f in taken:
            raise SourceError(f"{where}: {taken[f]!r} and {n!r} are both clip {f!r}; keep one")
        taken[f] = n
    return out


# --------------------------------------------------------------------------- import


def _bad_audio_fnames(path: str | Path | None) -> list[str]:
    if path is None:
        return []
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False)["fname"].tolist()


def import_embeddings(
    src: Source,
    manifest_path: str | Path,
    out_path: str | Path,
    model: str,
    variation: str = DEFAULT_VARIATION,
    level: str | None = None,
    on_missing: str = "skip",
    bad_audio_path: str | Path | None = None,
    fingerprint: str | None = None,
    code_version: str = "",
) -> Path:
    """Import ``src`` into the embeddings file ``out_path`` (:mod:`soundsim.store`), the clips in
    the order of the manifest at ``manifest_path``; clips without a vector are failed (see the
    module docstring; ``on_missing``: ``skip`` or ``fail``, as ``extraction.on_bad_audio``);
    ``level``: None (from the data, as :func:`describe` says), ``clip`` or ``frame``; ``bad_audio_path``: the manifest's
    ``bad_audio.csv`` (names in it are not 'not in the collection'); ``fingerprint``: the
    source's (default: computed, :func:`source_fingerprint`). Returns ``out_path``."""
    from soundsim import store
    from soundsim.manifest import read_manifest

    if on_missing not in ("skip", "fail"):
        raise ValueError(f"on_missing must be 'skip' or 'fail', not {on_missing!r}")
    if level not in (None, "clip", "frame"):
        raise ValueError(f"level must be None, 'clip' or 'frame', not {level!r}")
    fnames = read_manifest(manifest_path)["fname"].astype(str).tolist()
    vec = read_source(src)
    where = str(src.path)
    to_clip = match_names(vec.names, fnames, where, ignore=_bad_audio_fnames(bad_audio_path))
    # clips an hdf5 source records as failed keep their reasons (names matched as the others)
    to_failed = match_names([n for n, _ in vec.failed], fnames, where, strict=False)
    failed_of = {to_failed[n]: r for n, r in vec.failed if n in to_failed}
    rows_of = {to_clip[n]: r for n, r in zip(vec.names, vec.rows, strict=True) if n in to_clip}
    ok = [f for f in fnames if f in rows_of]
    if not ok:
        raise SourceError(f"{where}: no vector for any of the {len(fnames)} clips of {manifest_path}")
    missing = [f for f in fnames if f not in rows_of]
    if missing and on_missing == "fail":
        raise SourceError(f"{where}: {len(missing)} clip(s) of {manifest_path} have no vector: "
                          f"{first_few(missing, LIST_LIMIT, quote=True)} (extraction.on_bad_audio is 'fail'; "
                          "'skip' leaves them out of the evaluation)")
    failed = [(f, failed_of.get(f) or f"no vector in {where}") for f in missing]
    if missing:
        log.warning("%s: %d clip(s) have no vector and are recorded as failed: %s", where, len(missing),
                    first_few(missing, LIST_LIMIT, quote=True))
    data = [rows_of[f] for f in ok]
    multi = [f"{f!r} ({len(r)} rows)" for f, r in zip(ok, data, strict=True) if len(r) != 1]
    if level == "clip" and multi:
        raise SourceError(f"{where}: level: clip but {len(multi)} clip(s) have several rows: "
                          f"{first_few(multi, LIST_LIMIT)}; set level: frame (or leave it out)")
    # the level planning saw (describe: the model's ModelInfo), unless one is given
    level = level or ("frame" if multi else describe(src).level)
    attrs = {
        "model": model, "variation": variation, "level": level,
        "sample_rate": -1, "hop": float("nan"), "processing": "l2-pca", "env": "soundsim", "options": "{}",
        "code_version": code_version, "n_failed": len(failed), "n_imported": len(ok),
        "source": where, "source_format": src.format,
        "source_fingerprint": fingerprint or source_fingerprint(src),
        "versions": store.package_versions((*store.CORE_PACKAGES, "pandas", "pyarrow")),
    }
    out = store.write_embeddings(out_path, ok, data, attrs, failed=failed)
    log.info("%s: %d clips (%d rows, D=%d, level %s) from %s (%s); %d without a vector", out, len(ok),
             sum(len(r) for r in data), data[0].shape[1], attrs["level"], where, src.format, len(failed))
    return out


# --------------------------------------------------------------------------- fingerprint


def source_fingerprint(src: Source, cache_dir: str | Path | None = None) -> str:
    """``xxh3-128:<hex>`` of the format and of every file the import reads (its name relative
    to the source, and its content fingerprint), so any changed vector changes it and nothing
    else does. File fingerprints are cached by (size, mtime) in one cache file per source
    under ``cache_dir`` (default ``<user cache>/precomputed``, :mod:`soundsim.fingerprint`)."""
    from soundsim.fingerprint import FingerprintCache, text_fingerprint, user_cache_dir

    folder = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "precomputed"
    key = hashlib.sha256(str(src.path.resolve()).encode()).hexdigest()[:32]
    cache = FingerprintCache(folder / f"{key}.json")
    files = src.files()
    fps = cache.many(files)
    cache.keep_only(files)
    if cache.misses:
        try:
            cache.save()
        except OSError as e:  # a read-only home: recomputed next time
            log.debug("cannot write the fingerprint cache %s: %s", cache.path, e)
    base = src.path if src.format == "npy-folder" else src.path.parent
    lines = [f"format\t{src.format}"] + [f"{_relative(f, base)}\t{fp}" for f, fp in zip(files, fps, strict=True)]
    return text_fingerprint("\n".join(lines))


def _relative(f: Path, base: Path) -> str:
    try:
        return str(f.relative_to(base))
    except ValueError:
        return str(f)


def source_of_config(cfg: Mapping[str, Any]) -> Source:
    """The :class:`Source` of a model's config section (``path``, ``format``, ``fnames``)."""
    return source_of(cfg["path"], cfg.get("format"), cfg.get("fnames"))
