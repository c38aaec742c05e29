"""soundsim: evaluate audio embeddings for semantic sound similarity (query-by-example).

All logic lives in this package; the Snakemake workflow calls it through thin
rules. Modules: :mod:`soundsim.config` (configuration), :mod:`soundsim.audio`
(decode, check, resample), :mod:`soundsim.datasets` (demo, fsd50k, csv
collections), :mod:`soundsim.manifest`, :mod:`soundsim.models` (registry, one
module per model), :mod:`soundsim.extract` (sharded, resumable extraction),
:mod:`soundsim.envs` (per-model environments), :mod:`soundsim.store` (HDF5),
:mod:`soundsim.process` (aggregation, PCA, normalisation), :mod:`soundsim.search`
(exact MIPS/MCSS/NNS), :mod:`soundsim.metrics` (AP@N, R1, MAP, MR1),
:mod:`soundsim.evaluate` (the grid), :mod:`soundsim.cli`.
"""

__version__ = "0.1.0"
