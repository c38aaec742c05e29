"""Reading a PyTorch checkpoint file that a user named in the config.

One rule for every torch model: ``torch.load`` on the CPU with ``weights_only=True``
(tensors and plain containers only); a file that pickles more than that (an older
training state, as some official files are) is loaded with ``weights_only=False``,
as the upstream loaders do: soundsim only does so for a local file the user chose.
Large files are memory-mapped where torch's zip format allows it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def read(path: str | Path, mmap: bool = False) -> Any:
    """The object stored in ``path``. Raises ValueError('not a PyTorch checkpoint
    (<error type>: <first line>)') for a file torch cannot read; callers put it in
    their ConfigError, which names the config key and the path."""
    import pickle

    import torch

    try:
        try:
            if mmap:
                try:
                    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                except RuntimeError as e:  # torch's legacy (non-zip) format cannot be memory-mapped
                    if "mmap" not in str(e):
                        raise
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            log.info("%s pickles more than tensors: loading it with weights_only=False, as upstream does", path)
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a file that is no checkpoint
        text = str(e).strip()
        raise ValueError(f"not a PyTorch checkpoint ({type(e).__name__}: "
                         f"{text.splitlines()[0] if text else 'unreadable'})") from e
