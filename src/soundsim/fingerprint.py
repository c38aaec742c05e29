"""Content fingerprints of files (audio clips, weights), computed once per version of a file.

A fingerprint is ``xxh3-128:<32 hex digits>``: the 128-bit XXH3 hash (``xxhash``
package) of the file's bytes, read in 4 MiB blocks (I/O-bound: several GB/s).
It says whether two files hold the same bytes; it is not a security hash.

Hashing every file on every run would cost a full read of the collection, so
fingerprints are cached by the file's *state* ``(size, mtime_ns)``: while a
file's size and modification time are unchanged its cached fingerprint is
reused (as ``make``, ``rsync`` and Snakemake itself trust mtimes). A file
rewritten with other content gets a new mtime, hence a new fingerprint.

:func:`stat_digest` is the cheap summary used at planning time: a hash of every
file's path, size and mtime (no content read), so that Snakemake can tell that a
collection's audio changed without reading it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from soundsim.fileutil import write_text_atomic

log = logging.getLogger(__name__)

ALGORITHM = "xxh3-128"
_BLOCK = 4 << 20


@dataclass(frozen=True)
class FileState:
    """What says that a file may have changed: its size and modification time."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> FileState:
        st = os.stat(path)
        return cls(int(st.st_size), int(st.st_mtime_ns))


def file_fingerprint(path: str | Path) -> str:
    """``xxh3-128:<hex>`` of the bytes of ``path`` (see module docstring)."""
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return f"{ALGORITHM}:{h.hexdigest()}"


def text_fingerprint(text: str) -> str:
    """``xxh3-128:<hex>`` of a string's UTF-8 bytes (e.g. for data that is not a file)."""
    import xxhash

    return f"{ALGORITHM}:{xxhash.xxh3_128(text.encode()).hexdigest()}"


class FingerprintCache:
    """Fingerprints by absolute path, valid while ``(size, mtime_ns)`` is unchanged.

    Stored as one JSON file (``{path: [size, mtime_ns, fingerprint]}``), read
    at construction and written atomically by :meth:`save`; a missing or
    unreadable cache file is an empty cache. One process should own a cache
    file (the manifest job owns the collection's; see :func:`weights_fingerprint`
    for files that several jobs fingerprint at once)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, tuple[int, int, str]] = {}
        self.hits = 0
        self.misses = 0
        if self.path is not None and self.path.is_file():
            try:
                raw = json.loads(self.path.read_text())
                self.entries = {str(k): (int(v[0]), int(v[1]), str(v[2])) for k, v in raw.items()}
            except (OSError, ValueError, TypeError, IndexError) as e:
                log.warning("%s: unreadable fingerprint cache (%s); fingerprints are computed afresh", self.path, e)

    def get(self, path: str | Path, state: FileState | None = None) -> str:
        """The fingerprint of ``path``: cached when its state is unchanged, else computed."""
        key = str(Path(path).resolve())
        state = state or FileState.of(key)
        hit = self.entries.get(key)
        if hit is not None and hit[0] == state.size and hit[1] == state.mtime_ns:
            self.hits += 1
            return hit[2]
        fp = file_fingerprint(key)
        if FileState.of(key) != state:  # changed while being read: do not cache a mixed state
            return fp
        self.misses += 1
        self.entries[key] = (state.size, state.mtime_ns, fp)
        return fp

    def many(self, paths: Sequence[str | Path], threads: int = 1,
             progress: Callable[[Iterable[str]], Iterable[str]] | None = None) -> list[str]:
        """Fingerprints of ``paths`` (in order), hashing uncached files on ``threads`` threads."""
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            it = pool.map(self.get, paths)
            return list(progress(it) if progress else it)

    def keep_only(self, paths: Iterable[str | Path]) -> None:
        """Forget files not in ``paths`` (removed from the collection)."""
        keep = {str(Path(p).resolve()) for p in paths}
        self.entries = {k: v for k, v in self.entries.items() if k in keep}

    def save(self) -> None:
        if self.path is None:
            return
        data = {k: list(v) for k, v in sorted(self.entries.items())}
        write_text_atomic(self.path, json.dumps(data, separators=(",", ":")) + "\n")


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/soundsim`` (default ``~/.cache/soundsim``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "soundsim"


def weights_fingerprint(path: str | Path | None, cache_dir: str | Path | None = None) -> str:
    """Fingerprint of a weights file or folder (folders: of their files' relative
    paths and fingerprints, sorted); ``'bundled'`` for None (weights shipped by
    a package: its version is part of the model's code version). Cached per
    file in ``cache_dir`` (default :func:`user_cache_dir`/``weights``), one small
    cache file per weights file, so concurrent jobs never share a cache file."""
    if path is None or str(path) == "":
        return "bundled"
    p = Path(path).resolve()
    folder = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "weights"

    def one(f: Path) -> str:
        name = hashlib.sha256(str(f).encode()).hexdigest()[:32]
        cache = FingerprintCache(folder / f"{name}.json")
        fp = cache.get(f)
        if cache.misses:
            try:
                cache.save()
            except OSError as e:  # a read-only home: fingerprints are recomputed next time
                log.debug("cannot write the weights fingerprint cache %s: %s", cache.path, e)
        return fp

    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        return text_fingerprint("\n".join(f"{f.relative_to(p)}\t{one(f)}" for f in files))
    return one(p)


def stat_digest(paths: Iterable[str | Path | None]) -> str:
    """sha256 (16 hex digits) of every path with its size and mtime (``missing``
    for a path that does not exist, ``none`` for None): changes whenever a file
    is added, removed, replaced or touched, without reading any content."""
    h = hashlib.sha256()
    for p in paths:
        if p is None:
            h.update(b"none\n")
            continue
        try:
            st = FileState.of(p)
            h.update(f"{p}\t{st.size}\t{st.mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\tmissing\n".encode())
    return h.hexdigest()[:16]


def tree_digest(folder: str | Path) -> str:
    """:func:`stat_digest` of every file under ``folder`` (recursively, sorted):
    what the workflow compares to tell that a collection's audio changed.
    ``missing`` when the folder does not exist."""
    root = Path(folder)
    if not root.is_dir():
        return "missing"
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        files.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith("."))
    return stat_digest(files)
