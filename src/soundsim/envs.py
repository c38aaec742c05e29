"""Model environments: which Python runs a model.

Models with incompatible dependencies run in separate environments. Each
environment ``<env>`` is described twice: ``envs/<env>.yaml`` (pinned conda
environment, for ``snakemake --sdm conda``) and ``envs/<env>.txt`` (+
``envs/<env>.nodeps.txt``, pip requirements installed with ``--no-deps``) from
which ``make envs`` builds the virtual environment ``.venvs/<env>``. The
environment ``soundsim`` is the project's own ``.venv`` (requirements.txt).
"""

from __future__ import annotations

import sys
from pathlib import Path

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


def _in_conda_env() -> bool:
    """True when this interpreter is the active conda environment (``--sdm conda``)."""
    import os

    prefix = os.environ.get("CONDA_PREFIX")
    return bool(prefix) and Path(sys.prefix).resolve() == Path(prefix).resolve()


def run_in_env(env: str, cli_args: list[str], log_path: str | Path | None = None, threads: int = 1) -> None:
    """Run ``python -m soundsim.cli <cli_args>`` with the interpreter of ``env``
    (this one under ``--sdm conda``, where Snakemake already activated it),
    appending its output to ``log_path``. Thread counts of the numeric
    libraries are set to ``threads``. A failure raises SoundsimError."""
    import os
    import subprocess

    python = sys.executable if _in_conda_env() else python_for(env)
    env_vars = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env_vars[var] = str(threads)
    env_vars["TF_NUM_INTEROP_THREADS"] = "1"
    env_vars.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [python, "-m", "soundsim.cli", *map(str, cli_args)]
    if log_path is None:
        rc = subprocess.run(cmd, env=env_vars).returncode
    else:
        with open(log_path, "a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            rc = subprocess.run(cmd, env=env_vars, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        where = f"; see {log_path}" if log_path else ""
        raise SoundsimError(f"`soundsim {cli_args[0]}` failed in environment {env!r} (exit status {rc}){where}")
