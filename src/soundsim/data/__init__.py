"""Files soundsim ships with its code (package data, found through :mod:`importlib.resources`).

* ``config.schema.yaml``: the JSON Schema of the workflow configuration
  (:func:`soundsim.config.find_schema`, ``soundsim check-config``, and the
  workflow's own validation in ``workflow/rules/common.smk``);
* ``report/<name>.rst``: the Snakemake report's landing page (``workflow.rst``)
  and the captions of its tables and figures (``report:`` in the rules).

They live here, once, so that a wheel (``pip install .``, not editable) has
them and the workflow in a source checkout reads the very same files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from soundsim.errors import SoundsimError

#: the configuration schema's file name in this package
SCHEMA_FILE = "config.schema.yaml"
#: the folder of the report's landing page and captions in this package
REPORT_DIR = "report"


def data_file(relpath: str) -> Path:
    """The path of packaged file ``relpath`` (e.g. ``report/grid.rst``). soundsim
    is installed as files (a wheel or a checkout, never a zip), so this is a
    real path; a missing file is a :class:`SoundsimError` naming it."""
    p = resources.files(__name__).joinpath(relpath)
    path = Path(str(p))
    if not path.is_file():
        raise SoundsimError(f"{path}: packaged file missing (a broken soundsim install? reinstall it)")
    return path


def schema_file() -> Path:
    """The configuration schema, ``soundsim/data/config.schema.yaml``."""
    return data_file(SCHEMA_FILE)


def report_file(name: str) -> Path:
    """The report page or caption ``name`` (``grid`` or ``grid.rst``) under ``soundsim/data/report/``."""
    return data_file(f"{REPORT_DIR}/{name if name.endswith('.rst') else name + '.rst'}")
