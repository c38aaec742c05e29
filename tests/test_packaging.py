"""soundsim as a package: optional dependencies (one message naming the extra,
exit 2) and, slow, a real `pip install <repo>` into a clean venv without torch
that evaluates, validates a config with the packaged schema and runs the
README's Python example."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soundsim import extras
from soundsim.data import report_file, schema_file

from conftest import ROOT
from test_api import readme_example

# Runs the CLI with some modules made unimportable: sys.modules[name] = None makes
# `import name` raise ModuleNotFoundError (a real import failure, as when it is not installed).
BLOCKED_CLI = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from soundsim.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_blocked(blocked: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-c", BLOCKED_CLI, ",".join(blocked), *args], cwd=cwd,
                          capture_output=True, text=True, env=env)


def one_line(r: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed command (no traceback, no log line)."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


# --------------------------------------------------------------------------- the extras table


def test_every_extra_named_is_declared_in_pyproject():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.EXTRA_OF.values()) <= set(declared)
    assert set(declared) == {"torch", "essentia", "workflow", "listen", "service", "test", "all"}
    assert declared["all"] == ["soundsim[torch,essentia,workflow,listen,service,test]"]
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("pyarrow") for d in core) and not any(d.startswith("torch") for d in core)


def test_install_hint():
    assert extras.install_hint(["torch"]) == "pip install 'soundsim[torch]'"
    assert extras.install_hint(["torch", "essentia", "torchaudio"]) == "pip install 'soundsim[torch,essentia]'"
    assert extras.install_hint(["matplotlib.pyplot", "aisfx", "rarepkg"]) == (
        "pip install 'soundsim[workflow]' && pip install --no-deps aisfx==0.1.2 && pip install rarepkg")
    assert extras.install_hint(["faiss"]) == "pip install 'soundsim[service]'"
    e = extras.MissingDependency(["torch"], "model aisfx")
    assert str(e) == "model aisfx needs torch (not installed); install it with: pip install 'soundsim[torch]'"


def test_packaged_files_are_found():
    assert schema_file() == ROOT / "src" / "soundsim" / "data" / "config.schema.yaml"
    assert report_file("grid") == report_file("grid.rst") and report_file("workflow").is_file()
    # one copy of each: nothing left at the old places
    assert not (ROOT / "workflow" / "schemas").exists() and not (ROOT / "workflow" / "report").exists()
    rules = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    for name in [p.stem for p in (ROOT / "src" / "soundsim" / "data" / "report").glob("*.rst")]:
        if name != "workflow":  # the landing page: Snakefile's report:
            assert name in rules, f"report/{name}.rst is captioned by no rule"


# --------------------------------------------------------------------------- missing optional dependencies


def test_extract_without_torch_names_the_extra_and_writes_nothing(tmp_path):
    out = tmp_path / "aisfx.h5"
    r = run_blocked(["torch", "essentia"], ["extract", "--manifest", "m.csv", "--model", "aisfx", "--out", str(out)],
                    tmp_path)
    assert r.returncode == 2
    line = one_line(r)
    assert line.startswith("soundsim extract: model aisfx needs torch, essentia (not installed); install them with: "
                           "pip install 'soundsim[torch,essentia]'"), line
    assert list(tmp_path.iterdir()) == []  # no output, journal or lock


def test_extract_of_a_model_with_its_own_env_says_so(tmp_path):
    r = run_blocked(["torch"], ["extract", "--manifest", "m.csv", "--model", "laion-clap", "--out", "x.h5"], tmp_path)
    assert r.returncode == 2
    line = one_line(r)
    assert "model laion-clap needs torch" in line and "make envs ENVS=laion-clap" in line, line


def test_figures_without_matplotlib(tmp_path):
    r = run_blocked(["matplotlib", "seaborn"], ["figures", "--config", str(ROOT / "config.yaml")], tmp_path)
    assert r.returncode == 2
    assert one_line(r) == ("soundsim figures: needs seaborn (not installed); install it with: "
                           "pip install 'soundsim[workflow]'")


def test_listen_without_flask(tmp_path):
    r = run_blocked(["flask"], ["listen", "--results", str(tmp_path), "--collection", "demo"], tmp_path)
    assert r.returncode == 2
    assert one_line(r) == "soundsim listen: needs flask (not installed); install it with: pip install 'soundsim[listen]'"


def _tiny_inputs(folder: Path, n: int = 30, d: int = 8) -> tuple[Path, Path, np.ndarray, list[str], list[list[str]]]:
    """An embeddings file (clip level) and its ground truth, written with soundsim.store."""
    from soundsim.store import write_embeddings

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    fnames = [f"c{i}" for i in range(n)]
    labels = [[f"L{i % 3}"] + (["X"] if i % 4 == 0 else []) for i in range(n)]
    h5 = write_embeddings(folder / "e.h5", fnames, list(X), {"model": "m", "variation": "v"})
    gt = folder / "gt.csv"
    pd.DataFrame({"fname": fnames, "labels": [",".join(ls) for ls in labels]}).to_csv(gt, index=False)
    return h5, gt, X, fnames, labels


def test_evaluate_without_pyarrow_writes_nothing(tmp_path):
    h5, gt, *_ = _tiny_inputs(tmp_path)
    out = tmp_path / "out"
    r = run_blocked(["pyarrow"], ["-q", "evaluate", str(h5), "--ground-truth", str(gt), "--out", str(out),
                                  "--pca", "4"], tmp_path)
    assert r.returncode == 2
    assert "needs pyarrow (not installed)" in one_line(r)
    assert not out.exists()


def test_a_missing_soundsim_module_is_not_an_extra(tmp_path):
    """A broken install (soundsim's own module missing) keeps its traceback."""
    r = run_blocked(["soundsim.figures"], ["figures", "--config", str(ROOT / "config.yaml")], tmp_path)
    assert r.returncode == 1 and "Traceback" in r.stderr and "soundsim[" not in r.stderr


# --------------------------------------------------------------------------- a real install


def _copy_project(dst: Path) -> Path:
    """What a wheel is built from (pyproject.toml, README.md, LICENSE, src/), copied so that
    the build leaves nothing in the checkout."""
    dst.mkdir()
    for f in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / f, dst / f)
    shutil.copytree(ROOT / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    return dst


@pytest.mark.slow
def test_pip_install_into_a_clean_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # no system site-packages
    py, bin_ = venv / "bin" / "python", venv / "bin"
    project = _copy_project(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    t0 = time.monotonic()
    r = subprocess.run([py, "-m", "pip", "install", "--quiet", str(project)], capture_output=True, text=True, env=env)
    install_s = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"pip install <repo> into a clean venv: {install_s:.0f} s")

    def run(*args: str | Path, cwd: Path = tmp_path) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env)

    # the installed copy (not the checkout), without torch
    r = run(py, "-c", "import soundsim, importlib.util as u; print(soundsim.__file__); "
            "print(u.find_spec('torch') is None, u.find_spec('snakemake') is None)")
    assert r.returncode == 0, r.stderr
    where, no_torch = r.stdout.splitlines()
    assert where.startswith(str(venv)) and no_torch == "True True"

    # the README's Python example
    ex = tmp_path / "example"
    ex.mkdir()
    (ex / "example.py").write_text(readme_example())
    r = run(py, "example.py", cwd=ex)
    assert r.returncode == 0, r.stderr
    assert (ex / "metrics" / "vectors" / "summary.json").is_file()

    # soundsim evaluate on a real HDF5 file writes its metrics, the numbers of the API
    h5, gt, X, fnames, labels = _tiny_inputs(tmp_path)
    out = tmp_path / "out"
    r = run(bin_ / "soundsim", "-q", "evaluate", h5, "--ground-truth", gt, "--out", out, "--pca", "4", "none")
    assert r.returncode == 0, r.stderr
    setting = out / "agg-none_pca-4_search-mcss"
    assert sorted(p.name for p in setting.iterdir()) == ["per_family.csv", "per_label.csv", "per_query.parquet",
                                                         "rankings.h5", "summary.json"]
    assert len(list(out.iterdir())) == 6  # 2 PCA x 3 searches
    import soundsim

    res = soundsim.evaluate_embeddings(X, fnames, labels, aggregation="none", pca=4, search="mcss")
    assert json.loads((setting / "summary.json").read_text())["macro"] == res.summary
    pd.testing.assert_frame_equal(pd.read_parquet(setting / "per_query.parquet"), res.per_query)

    # check-config finds the schema in the installed package (run away from the checkout)
    r = run(bin_ / "soundsim", "check-config", "--config", ROOT / "config.yaml")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{ROOT / 'config.yaml'}: valid"
    r = run(py, "-c", "from soundsim.data import schema_file, report_file; print(schema_file()); "
            "print(report_file('grid'))")
    assert all(line.startswith(str(venv)) for line in r.stdout.splitlines()), r.stdout + r.stderr

    # a model without torch: the extra to install, exit 2, nothing written
    r = run(bin_ / "soundsim", "extract", "--manifest", tmp_path / "m.csv", "--model", "aisfx", "--out",
            tmp_path / "aisfx.h5")
    assert r.returncode == 2
    line = one_line(r)
    assert line.startswith("soundsim extract: model aisfx needs aisfx, torch, essentia (not installed)"), line
    assert "pip install 'soundsim[torch,essentia]'" in line
    assert not (tmp_path / "aisfx.h5").exists()
    # and soundsim figures names the workflow extra
    r = run(bin_ / "soundsim", "figures", "--config", ROOT / "config.yaml")
    assert r.returncode == 2 and "pip install 'soundsim[workflow]'" in one_line(r)
