"""Model environments: which Python runs a model.

Models with incompatible dependencies run in separate environments. Each
environment ``<env>`` is described twice: ``envs/<env>.yaml`` (pinned conda
environment, for ``snakemake --sdm conda``) and ``envs/<env>.txt`` (+
``envs/<env>.nodeps.txt``, pip requirements installed with ``--no-deps``) from
which ``make envs`` builds the virtual environment ``.venvs/<env>``. The
environment ``soundsim`` is the project's own ``.venv`` (requirements.txt).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soundsim.errors import SoundsimError

MAIN_ENV = "soundsim"


def project_root() -> Path:
    """The checkout this (editable) package lives in."""
    return Path(__file__).resolve().parents[2]


def venv_python(env: str, root: Path | None = None) -> Path:
    """``<root>/.venvs/<env>/bin/python`` (the main env: ``<root>/.venv``)."""
    root = root or project_root()
    return root / (".venv" if env == MAIN_ENV else f".venvs/{env}") / "bin" / "python"


def env_status(env: str, root: Path | None = None) -> str:
    """'yes' when the environment's interpreter exists, else how to build it."""
    if env == MAIN_ENV:
        return "yes"
    return "yes" if venv_python(env, root).exists() else f"no (make envs ENVS={env})"


def python_for(env: str, root: Path | None = None) -> str:
    """The interpreter to run a model of environment ``env`` with: this one for
    the main env, else ``.venvs/<env>/bin/python``; a clear error when missing."""
    if env == MAIN_ENV:
        return sys.executable
    py = venv_python(env, root)
    if not py.exists():
        raise SoundsimError(
            f"environment {env!r} is not built: {py} is missing; run `make envs ENVS={env}` "
            f"(pip requirements: envs/{env}.txt), or use `snakemake --sdm conda` with envs/{env}.yaml"
        )
    return str(py)


def model_python(env: str, conda: bool, root: Path | None = None) -> str:
    """The interpreter rule ``extract_shard`` runs ``python -m soundsim.cli extract`` with:
    ``python`` of the environment Snakemake activated (``--sdm conda``, ``conda`` true), else
    :func:`python_for` (``.venvs/<env>/bin/python``, a clear error when it is not built)."""
    return "python" if conda else python_for(env, root)


def extract_flags(weights: str | None, reuse: str | None, options: Mapping[str, Any],
                  model_cfg: Mapping[str, Any] | None = None) -> str:
    """The optional flags of ``soundsim extract``, shell-quoted: ``--weights``, ``--reuse`` (each
    when given), one ``--option=KEY=VALUE`` per model option, the value as JSON (which YAML reads),
    and, for a model of a kind (``models.<name>.kind``), ``--model-config=<its section as JSON>``."""
    args = [f"--weights={weights}"] if weights else []
    args += [f"--reuse={reuse}"] if reuse else []
    args += [f"--option={k}={json.dumps(v)}" for k, v in options.items()]
    if model_cfg and model_cfg.get("kind"):
        args += [f"--model-config={json.dumps(dict(model_cfg), sort_keys=True)}"]
    return shlex.join(args)
