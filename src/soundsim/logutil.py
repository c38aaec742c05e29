"""Logging and progress bars for long work.

``progress`` is tqdm with a calm refresh rate when stderr is not a terminal
(a job's log file gets a line every 10 s, not thousands). ``job_log`` sends
logging and stderr (progress bars, warnings) of a Snakemake job to its log file.
``native_output`` turns what native libraries print per clip (Essentia's
``[ WARNING  ]`` lines, often the same one dozens of times) into one summary
line. Every log line carries a timestamp (:data:`LOG_FORMAT`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    """``tqdm(iterable, **kwargs)``; refreshes every 10 s when stderr is not a TTY."""
    kwargs.setdefault("mininterval", 0.2 if sys.stderr.isatty() else 10.0)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, **kwargs)


@contextmanager
def job_log(path: str | Path | None, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Log (and redirect stderr) to ``path`` for the duration of a job; an
    exception is logged with its traceback before it propagates."""
    root = logging.getLogger()
    root.setLevel(level)
    if path is None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        fh = None
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a", buffering=1)  # noqa: SIM115 - closed below
        handler = logging.StreamHandler(fh)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    log = logging.getLogger("soundsim")
    try:
        if fh is None:
            yield log
        else:
            with redirect_stderr(fh):
                yield log
    except Exception:
        log.exception("job failed")
        raise
    finally:
        root.removeHandler(handler)
        if fh is not None:
            fh.close()


#: a line of Essentia's own logger: ``[ WARNING  ] clipping ...``, ``[   INFO   ] ...``
_ESSENTIA_LINE = re.compile(r"^\[\s*(WARNING|INFO|ERROR|DEBUG)\s*\]\s?(.*)$")


def summarise_native(text: str) -> tuple[Counter[str], str]:
    """Split what native code printed into Essentia's warnings (message ->
    count) and everything else (returned unchanged, in order)."""
    warnings: Counter[str] = Counter()
    rest: list[str] = []
    for line in text.splitlines(keepends=True):
        m = _ESSENTIA_LINE.match(line.rstrip("\n"))
        if m and m.group(1) == "WARNING":
            warnings[m.group(2).strip()] += 1
        else:
            rest.append(line)
    return warnings, "".join(rest)


@contextmanager
def native_output(what: str, logger: logging.Logger | None = None) -> Iterator[None]:
    """While the block runs, capture what is written to this process's stdout
    and stderr *file descriptors* (native libraries such as Essentia write there,
    past Python's ``sys.stderr``); afterwards log Essentia's warnings as one
    line, ``<what>: 242 Essentia warning(s): 'clipping ...' x240, ...``, and
    write everything else back to stderr unchanged."""
    logger = logger or logging.getLogger("soundsim")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(1), os.dup(2)
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            warnings, rest = summarise_native(tmp.read().decode(errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()
            if warnings:
                shown = ", ".join(f"{msg!r} x{n}" for msg, n in warnings.most_common(3))
                more = f", ... ({len(warnings) - 3} other messages)" if len(warnings) > 3 else ""
                logger.warning("%s: %d Essentia warning(s): %s%s", what, sum(warnings.values()), shown, more)
