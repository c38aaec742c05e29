"""Logging and progress bars for long work.

``progress`` is tqdm with a calm refresh rate when stderr is not a terminal
(a job's log file gets a line every 10 s, not thousands). ``job_log`` sends
logging and stderr (progress bars, warnings) of a Snakemake job to its log file.
"""

from __future__ import annotations

import logging
import sys
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
