"""Environment files, checked statically (conda is not available here): they parse,
pin every package, cover every model's environment, and agree with the pip pins."""

from __future__ import annotations

import re

import pytest
import yaml

from soundsim import envs, models
from soundsim.errors import SoundsimError

from conftest import ROOT

ENVS = ROOT / "envs"


def conda_envs():
    return sorted(ENVS.glob("*.yaml"))


def pip_pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            assert m, f"{path.name}: unpinned requirement {line!r}"
            pins[m.group(1).lower()] = m.group(2)
    return pins


@pytest.mark.parametrize("path", conda_envs(), ids=lambda p: p.name)
def test_conda_env_files_parse_and_pin(path):
    env = yaml.safe_load(path.read_text())
    assert env["name"] == path.stem
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    assert "python=3.11" in deps
    for d in deps:
        if isinstance(d, str) and d not in ("pip",):
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+=[0-9][^\s]*", d), f"{path.name}: {d!r} is not pinned"
        elif isinstance(d, dict):
            for p in d["pip"]:
                assert "==" in p, f"{path.name}: pip entry {p!r} is not pinned"
    post = path.with_suffix(".post-deploy.sh")
    if post.exists():
        assert post.stat().st_mode & 0o111, f"{post.name} must be executable"


def test_every_model_env_has_its_files():
    for inf in models.available().values():
        assert (ENVS / f"{inf.env}.yaml").is_file()
        if inf.env != envs.MAIN_ENV:
            assert (ENVS / f"{inf.env}.txt").is_file()


@pytest.mark.parametrize("txt", sorted(ENVS.glob("*.txt")), ids=lambda p: p.name)
def test_pip_env_files_pin_and_match_conda(txt):
    pins = pip_pins(txt)
    if txt.name.endswith(".nodeps.txt"):
        return
    conda = yaml.safe_load((ENVS / f"{txt.stem}.yaml").read_text())["dependencies"]
    names = {"pysoundfile": "soundfile", "soxr-python": "soxr"}
    for d in conda:
        if isinstance(d, str) and "=" in d and not d.startswith("python="):
            name, ver = d.split("=", 1)
            name = names.get(name, name).lower()
            if name in pins:
                assert pins[name] == ver, f"{txt.name} pins {name}=={pins[name]}, {txt.stem}.yaml {ver}"


def test_main_requirements_are_pinned_and_match_the_soundsim_env():
    pins = pip_pins(ROOT / "requirements.txt")
    pip_pins(ROOT / "requirements.nodeps.txt")
    assert pins["torch"] == "2.13.0"
    conda = yaml.safe_load((ENVS / "soundsim.yaml").read_text())["dependencies"]
    for d in conda:
        if isinstance(d, str) and d.startswith(("numpy=", "pandas=", "h5py=", "scikit-learn=")):
            name, ver = d.split("=", 1)
            assert pins[name] == ver


def test_python_for_missing_env_says_how_to_build_it(tmp_path):
    with pytest.raises(SoundsimError, match=r"environment 'ghost' is not built: .*make envs ENVS=ghost"):
        envs.python_for("ghost", root=tmp_path)
    assert envs.env_status("ghost", root=tmp_path).startswith("no (make envs")
    import sys

    assert envs.python_for(envs.MAIN_ENV) == sys.executable


def test_model_python_is_the_activated_env_under_conda_else_the_venv(tmp_path):
    """Rule extract_shard's interpreter: `python` of the env Snakemake activated (--sdm conda),
    else .venvs/<env>/bin/python, with the how-to-build error when that is missing."""
    assert envs.model_python("essentia-tf", conda=True, root=tmp_path) == "python"
    with pytest.raises(SoundsimError, match="make envs ENVS=essentia-tf"):
        envs.model_python("essentia-tf", conda=False, root=tmp_path)
    py = tmp_path / ".venvs" / "essentia-tf" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text("")
    assert envs.model_python("essentia-tf", conda=False, root=tmp_path) == str(py)


def test_extract_flags_are_shell_quoted_and_read_back_by_the_cli(tmp_path):
    """The flags the rule passes parse back, through the shell, to the same values."""
    import shlex

    from soundsim.cli import _parse_options, build_parser

    flags = envs.extract_flags("/w/my weights.pt", str(tmp_path / "prev.h5"),
                               {"batch_size": 4, "layer": "it's", "native_rate": True})
    assert envs.extract_flags(None, None, {}) == ""
    argv = ["extract", "--manifest", "m.csv", "--model", "aisfx", "--out", "o.h5", *shlex.split(flags)]
    args = build_parser().parse_args(argv)
    assert args.weights == "/w/my weights.pt" and args.reuse == tmp_path / "prev.h5"
    assert _parse_options(args.option) == {"batch_size": 4, "layer": "it's", "native_rate": True}
