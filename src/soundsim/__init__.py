"""soundsim: evaluate audio embeddings for semantic sound similarity (query-by-example).

All logic lives in this package; the Snakemake workflow calls it through thin
rules. Modules: :mod:`soundsim.config`, :mod:`soundsim.audio`,
:mod:`soundsim.datasets`, :mod:`soundsim.manifest`, :mod:`soundsim.cli`.
"""

__version__ = "0.1.0"
