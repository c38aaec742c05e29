"""soundsim: evaluate audio embeddings for semantic sound similarity (query-by-example).

The Python API (:mod:`soundsim.api`, imported on first use, so that ``import
soundsim`` stays cheap in every model environment)::

    import soundsim
    res = soundsim.evaluate_embeddings(X, fnames, labels, aggregation="mean", pca=100, search="mcss")
    res.summary["map@15"], res.per_label, res.per_query
    cmp = soundsim.compare({"a": res, "b": other})   # intervals, paired tests

All logic lives in this package; the Snakemake workflow calls it through thin
rules. Modules: :mod:`soundsim.config` (configuration), :mod:`soundsim.audio`
(decode, check, resample), :mod:`soundsim.datasets` (demo, fsd50k, csv
collections), :mod:`soundsim.manifest`, :mod:`soundsim.models` (registry, one
module per model), :mod:`soundsim.extract` (sharded, resumable extraction),
:mod:`soundsim.envs` (per-model environments), :mod:`soundsim.store` (HDF5),
:mod:`soundsim.process` (aggregation, PCA, normalisation), :mod:`soundsim.search`
(exact MIPS/MCSS/NNS), :mod:`soundsim.metrics` (AP@N, R1, MAP, MR1),
:mod:`soundsim.evaluate` (the grid), :mod:`soundsim.stats` (intervals, tests),
:mod:`soundsim.api` (the Python API), :mod:`soundsim.extras` (optional
dependencies), :mod:`soundsim.data` (the schema and report captions),
:mod:`soundsim.cli`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: the Python API, resolved lazily from soundsim.api (numpy, pandas, scikit-learn are imported then)
_API = ("evaluate_embeddings", "compare", "EvaluationResult", "Comparison")
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    """``soundsim.evaluate_embeddings`` etc.: imported from :mod:`soundsim.api` on first access."""
    if name in _API:
        from soundsim import api

        return getattr(api, name)
    raise AttributeError(f"module 'soundsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
