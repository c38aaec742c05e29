"""Small file helpers: outputs appear atomically (temporary name, then rename).

:func:`write_csv_atomic` is the one writer of every CSV table soundsim produces
(manifest, metrics, tables, listening summary).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from soundsim.errors import SoundsimError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``
    (``os.replace``, atomic on POSIX), on error delete it. Readers never see a
    half-written file, and an interrupted job leaves no valid-looking output."""
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_csv_atomic(df: pd.DataFrame, path: str | Path, *, na_rep: str = "nan",
                     float_format: str | None = None) -> Path:
    """Write ``df`` as CSV (header, no index) to ``path`` atomically and return the path.
    Missing values are written as ``na_rep`` (default ``nan``; ``""``: empty cells);
    floats at full precision unless ``float_format`` (e.g. ``"%.6f"``) says otherwise."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, na_rep=na_rep, float_format=float_format)
    return Path(path)


class LockedError(SoundsimError):
    """Another process holds the lock (the message names the file and that process)."""


@contextmanager
def exclusive_lock(target: str | Path, what: str = "it", advice: str = "") -> Iterator[Path]:
    """Hold an exclusive lock on ``<target>.lock`` while the block runs; a
    second process asking for the same lock gets :class:`LockedError` at
    once, naming the file and the process holding it (pid, host, start time).

    The lock is the kernel's (``fcntl.flock``), so it is released whenever its
    holder exits, even under ``kill -9``: a lock is never stale, and there is
    nothing to remove by hand. The lock file holds the holder's description;
    it is removed on release (an acquirer that finds its file unlinked after
    locking tries again, so two processes can never both hold it). ``advice``
    ends the message.
    On NFS, ``flock`` is emulated with POSIX locks by Linux (since 2.6.12)."""
    import datetime
    import fcntl
    import socket

    lock = Path(f"{target}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            finally:
                os.close(fd)
            raise LockedError(
                f"{target}: {what} is being written by {holder}; a second writer would corrupt it. "
                "Wait for that process to finish (or stop it), then run again" + (f". {advice}" if advice else "")
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file between our open and lock: retry
    try:
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        desc = f"process {os.getpid()} on host {socket.gethostname()} (since {started})"
        os.ftruncate(fd, 0)
        os.pwrite(fd, desc.encode(), 0)
        yield lock
    finally:
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
        os.close(fd)
