"""The index directory: one similarity system, self-contained, updated atomically.

Layout (``DIR`` is what ``soundsim index --out DIR`` writes)::

    DIR/CURRENT                 the name of the live generation ("gen-000001"), one line
    DIR/gen-000001/
        manifest.json           model, variation, weights fingerprint, code versions, setting,
                                index type and parameters, created/updated, counts, format
        processing.npz          the fitted processing (soundsim.process.FittedProcessing)
        vectors.npy             Z: the processing output, float64 (N, k); row i = faiss id i
        items.parquet           row, fname, labels ("a,b"), path, removed (bool), added (ISO time)
        faiss.index             the faiss index over the search vectors of Z (soundsim.ann)
    DIR/writer.lock             held by a writer (soundsim.fileutil.exclusive_lock)

**Atomic updates.** A writer (``index add`` / ``remove``) holds ``DIR/writer.lock``,
builds the next generation in ``DIR/.tmp-gen-NNNNNN-<pid>/`` (unchanged files
hard-linked, changed ones written and fsynced), renames it to
``gen-NNNNNN`` and only then replaces ``CURRENT`` (temporary file, fsync,
``os.replace``, fsync of the directory). A process killed at any point (even
``kill -9``) leaves ``CURRENT`` naming the previous, complete generation: the
index works and is unchanged; the next writer deletes the leftovers. Readers
resolve ``CURRENT`` once when they open the index; a generation older than the
previous one is deleted after an update (open readers keep their open files).

**Removed sounds** are marked ``removed`` in ``items.parquet`` and excluded
from every answer inside faiss (:mod:`soundsim.ann`, ``exclude``); their rows
stay until the index is rebuilt (``soundsim index``), so ids never change.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundsim.errors import SoundsimError
from soundsim.process import FittedProcessing

FORMAT = "soundsim-index/1"
CURRENT = "CURRENT"
FILES = ("manifest.json", "processing.npz", "vectors.npy", "items.parquet", "faiss.index")
_GEN_RE = re.compile(r"^gen-(\d{6})$")
ITEM_COLUMNS = ["row", "fname", "labels", "path", "removed", "added"]


class IndexDirError(SoundsimError):
    """An index directory is missing, incomplete or not an index (the message names the path)."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Generation:
    """One generation's contents, as read (``vectors`` memory-mapped read-only)."""

    path: Path
    manifest: dict[str, Any]
    processing: FittedProcessing
    vectors: np.ndarray
    items: pd.DataFrame

    @property
    def name(self) -> str:
        return self.path.name


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_generation(root: str | Path) -> Path:
    """The live generation's folder; :class:`IndexDirError` naming what is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise IndexDirError(f"{root}: no such index directory (build one with `soundsim index --out {root}`)")
    cur = root / CURRENT
    if not cur.is_file():
        raise IndexDirError(f"{root}: not a soundsim index (no {CURRENT} file); build one with `soundsim index`")
    name = cur.read_text().strip()
    if not _GEN_RE.match(name) or not (root / name).is_dir():
        raise IndexDirError(f"{cur}: names {name!r}, which is not a generation folder of {root}")
    return root / name


def write_items(items: pd.DataFrame, path: Path) -> None:
    items[ITEM_COLUMNS].to_parquet(path, index=False)


def read_generation(gen: Path) -> Generation:
    """Read one generation folder (the vectors memory-mapped)."""
    missing = [f for f in FILES if not (gen / f).is_file()]
    if missing:
        raise IndexDirError(f"{gen}: incomplete index generation, missing {', '.join(missing)}")
    manifest = json.loads((gen / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise IndexDirError(f"{gen}/manifest.json: format {manifest.get('format')!r}, expected {FORMAT!r}")
    with np.load(gen / "processing.npz") as a:
        proc = FittedProcessing.from_arrays(dict(a))
    vectors = np.load(gen / "vectors.npy", mmap_mode="r")
    items = pd.read_parquet(gen / "items.parquet")
    if len(items) != vectors.shape[0]:
        raise IndexDirError(f"{gen}: items.parquet has {len(items)} rows but vectors.npy {vectors.shape[0]}")
    return Generation(gen, manifest, proc, vectors, items)


def open_generation(root: str | Path) -> Generation:
    """Read the live generation of the index at ``root``."""
    return read_generation(current_generation(root))


def _generations(root: Path) -> list[tuple[int, Path]]:
    out = []
    for p in root.iterdir():
        m = _GEN_RE.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def clean_leftovers(root: Path) -> list[Path]:
    """Delete what interrupted writers left (the caller holds the lock): their temporary
    folders and ``CURRENT`` files, and a generation newer than the one ``CURRENT`` names
    (renamed into place by a writer killed before it replaced ``CURRENT``: never live)."""
    gone = []
    try:
        live = int(_GEN_RE.match(current_generation(root).name).group(1))  # type: ignore[union-attr]
    except IndexDirError:
        live = None
    for p in root.iterdir():
        m = _GEN_RE.match(p.name)
        if p.name.startswith(".tmp-gen-") or p.name.startswith(f".{CURRENT}.tmp") or (
                m and live is not None and int(m.group(1)) > live):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def _set_current(root: Path, name: str) -> None:
    tmp = root / f".{CURRENT}.tmp-{os.getpid()}"
    tmp.write_text(name + "\n")
    _fsync_file(tmp)
    os.replace(tmp, root / CURRENT)
    _fsync_dir(root)


def write_generation(
    root: str | Path,
    manifest: Mapping[str, Any],
    processing: FittedProcessing | None,
    vectors: np.ndarray | None,
    items: pd.DataFrame,
    write_faiss: Any,
    base: Path | None = None,
    keep: int = 2,
) -> Path:
    """Write the next generation of ``root`` and make it live (module docstring). ``None`` for
    ``processing`` / ``vectors`` (and ``write_faiss``) hard-links that file from ``base``;
    ``write_faiss(path)`` writes the faiss index. The caller holds the lock. Returns the new
    generation's folder; generations beyond the newest ``keep`` are deleted."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    gens = _generations(root)
    number = gens[-1][0] + 1 if gens else 1
    name = f"gen-{number:06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if processing is None:
            os.link(base / "processing.npz", tmp / "processing.npz")
        else:
            np.savez(tmp / "processing.npz", **processing.to_arrays())
        if vectors is None:
            os.link(base / "vectors.npy", tmp / "vectors.npy")
        else:
            np.save(tmp / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float64))
        if write_faiss is None:
            os.link(base / "faiss.index", tmp / "faiss.index")
        else:
            write_faiss(tmp / "faiss.index")
        write_items(items, tmp / "items.parquet")
        (tmp / "manifest.json").write_text(json.dumps(dict(manifest), indent=2, sort_keys=True) + "\n")
        for f in FILES:
            _fsync_file(tmp / f)
        _fsync_dir(tmp)
        os.rename(tmp, root / name)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _set_current(root, name)
    for _, old in _generations(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return root / name
