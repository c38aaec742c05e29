"""Plugin packages: third-party distributions register model modules through the entry-point
group ``soundsim.models`` (soundsim.models.plugins).

Real installs: the tests write small plugin packages (pyproject.toml with
``[project.entry-points."soundsim.models"]``), pip-install them (``--no-deps
--no-build-isolation``) into a virtual environment under tmp_path that sees this checkout's
``src`` and the main ``.venv``'s packages through a ``.pth`` file, and run soundsim there:
``soundsim models``, ``soundsim extract`` on WAV files the tests write, ``check-config``, the
code version.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundsim import store

from conftest import ROOT, chirp, write_manifest


STATS = '''
"""A deterministic frame-statistics embedder: the minimal soundsim model module."""

import numpy as np

from soundsim.models import ModelInfo, OptionSpec, check_sample_rate
from {package}._features import frame_stats

INFO = ModelInfo(
    name="{name}",
    variations=("v1",),
    default_variation="v1",
    sample_rate=16000,
    level="frame",
    hop=0.1,
    dim=4,
    env="soundsim",
    description="mean, std, max, min of every 100 ms frame (a test plugin)",
    weights="bundled",
    trained_on=(),
    options={{"scale": OptionSpec(float, 1.0, "factor applied to every value", min=0.0)}},
)


class Stats:
    def __init__(self, scale):
        self.scale = scale

    def embed(self, waveform, sample_rate):
        check_sample_rate(INFO.name, sample_rate, INFO.sample_rate)
        return (self.scale * frame_stats(np.asarray(waveform, dtype=np.float32))).astype(np.float32)


def load(variation, weights, device="cpu", *, scale):
    return Stats(scale)
'''

FEATURES = '''
import numpy as np

FRAME = 1600


def frame_stats(x):
    n = max(1, len(x) // FRAME)
    x = np.pad(x, (0, max(0, n * FRAME - len(x))))[: n * FRAME].reshape(n, FRAME)
    return np.stack([x.mean(1), x.std(1), x.max(1), x.min(1)], axis=1)
'''

CLASH = '''
from soundsim.models import ModelInfo

INFO = ModelInfo(name="aisfx", variations=("x",), default_variation="x", sample_rate=16000, level="clip",
                 hop=None, dim=2, env="soundsim", description="a plugin that takes a built-in name")


def load(variation, weights, device="cpu"):
    raise AssertionError("never loaded")
'''

BROKEN = '''
import soundsim_missing_dependency  # noqa: F401
'''


def write_plugin(folder: Path, dist: str, package: str, version: str, entry_points: dict[str, str],
                 files: dict[str, str]) -> Path:
    """A plugin source tree: pyproject.toml (setuptools) + the package's files."""
    pkg = folder / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name, text in files.items():
        (pkg / name).write_text(text)
    eps = "\n".join(f'{k} = "{v}"' for k, v in entry_points.items())
    (folder / "pyproject.toml").write_text(textwrap.dedent(f'''\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "{version}"
        requires-python = ">=3.11"
        dependencies = ["soundsim"]

        [project.entry-points."soundsim.models"]
        ''') + eps + f'\n\n[tool.setuptools]\npackages = ["{package}"]\n')
    return folder


def make_venv(folder: Path) -> Path:
    """A venv that sees this checkout's src, then the main .venv's packages (pip, setuptools,
    numpy, soundsim's dependencies); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    py = folder / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    main_site = sysconfig.get_paths()["purelib"]
    (Path(site) / "_soundsim_test.pth").write_text(f"{ROOT / 'src'}\nimport site; site.addsitedir({main_site!r})\n")
    return py


def run(py: Path, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``py *args`` without the test runner's PYTHONPATH (the venv's .pth decides what it sees)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["XDG_CACHE_HOME"] = str(cwd / "cache")
    return subprocess.run([str(py), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def pip_install(py: Path, src: Path, cwd: Path) -> None:
    r = run(py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(src), cwd=cwd,
            timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory) -> tuple[Path, Path]:
    """A venv with soundsim-demo-plugin 0.3.1 installed: entry points demo-stats (a model),
    clash (takes the built-in name aisfx) and broken (fails to import)."""
    tmp = tmp_path_factory.mktemp("plugins")
    src = write_plugin(tmp / "src-a", "soundsim-demo-plugin", "soundsim_demo_plugin", "0.3.1",
                       {"demo-stats": "soundsim_demo_plugin.stats", "clash": "soundsim_demo_plugin.clash",
                        "broken": "soundsim_demo_plugin.broken"},
                       {"stats.py": STATS.format(package="soundsim_demo_plugin", name="demo-stats"),
                        "_features.py": FEATURES, "clash.py": CLASH, "broken.py": BROKEN})
    py = make_venv(tmp / "venv")
    pip_install(py, src, tmp)
    return py, tmp


def test_soundsim_models_lists_the_plugin_and_warns_about_the_bad_ones(plugin_venv):
    py, tmp = plugin_venv
    r = run(py, "-m", "soundsim.cli", "models", "--config", "", cwd=tmp)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("demo-stats "))
    assert line.split() == ["demo-stats", "v1", "*", "soundsim", "yes", "frame", "4", "16000", "bundled",
                            "plugin", "soundsim-demo-plugin", "0.3.1", "none"]
    assert "built in" in next(ln for ln in r.stdout.splitlines() if ln.startswith("aisfx "))
    assert ("plugin soundsim-demo-plugin 0.3.1 (entry point broken = soundsim_demo_plugin.broken) failed to "
            "import: ModuleNotFoundError: No module named 'soundsim_missing_dependency'; it is left out") in r.stderr
    assert ("plugin soundsim-demo-plugin 0.3.1 (entry point clash = soundsim_demo_plugin.clash) registers model "
            "'aisfx', the name of a built-in model; it is left out") in r.stderr
    opts = run(py, "-m", "soundsim.cli", "models", "--options", cwd=tmp)
    assert "| `demo-stats` | `scale` | float | `1.0` |" in opts.stdout


def test_soundsim_extract_runs_the_plugin_on_real_audio(plugin_venv, tmp_path):
    py, tmp = plugin_venv
    folder = tmp_path / "audio"
    folder.mkdir()
    paths = []
    for i, (sec, sr, ch) in enumerate([(1.0, 16000, 1), (2.35, 44100, 2), (0.5, 22050, 1)]):
        x = chirp(sec, sr, seed=i + 1)
        sf.write(folder / f"c{i}.wav", np.repeat(x[:, None], ch, 1) if ch > 1 else x, sr, subtype="FLOAT")
        paths.append(folder / f"c{i}.wav")
    man = write_manifest(tmp_path, paths)
    outs = {}
    for scale in (1, 2):
        out = tmp_path / f"s{scale}.h5"
        r = run(py, "-m", "soundsim.cli", "-q", "extract", "--manifest", str(man), "--model", "demo-stats",
                "--out", str(out), "--option", f"scale={scale}", cwd=tmp)
        assert r.returncode == 0, r.stderr[-3000:]
        outs[scale] = store.read_embeddings(out)
    e = outs[1]
    assert e.fnames == ["c0", "c1", "c2"] and e.dim == 4 and e.attrs["model"] == "demo-stats"
    assert e.frame_counts.tolist() == [10, 23, 5] and e.attrs["sample_rate"] == 16000
    x, _ = sf.read(paths[0], dtype="float32")  # already 16 kHz mono: embedded as it is
    frames = x[:16000].reshape(10, 1600)
    want = np.stack([frames.mean(1), frames.std(1), frames.max(1), frames.min(1)], axis=1)
    assert np.allclose(e.clip_rows(0), want, rtol=1e-6, atol=1e-7)
    assert np.allclose(outs[2].embeddings, 2 * e.embeddings)
    # the plugin's code is versioned: its distribution, its module and the helper it imports
    code = ("from soundsim import provenance as p; parts = p.model_code_parts('demo-stats'); "
            "print(parts['plugin']); print(sorted(k for k in parts if k.startswith('soundsim_demo')))")
    r = run(py, "-c", code, cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["{'distribution': 'soundsim-demo-plugin', 'version': '0.3.1'}",
                                     "['soundsim_demo_plugin._features', 'soundsim_demo_plugin.stats']"]
    assert e.attrs["code_version"] == run(py, "-c", "from soundsim import provenance as p; "
                                          "print(p.model_code_version('demo-stats'))", cwd=tmp).stdout.strip()


def test_a_broken_or_clashing_plugin_name_is_a_clear_error(plugin_venv, tmp_path):
    py, tmp = plugin_venv
    man = write_manifest(tmp_path, [])
    r = run(py, "-m", "soundsim.cli", "extract", "--manifest", str(man), "--model", "broken", "--out",
            str(tmp_path / "x.h5"), cwd=tmp)
    assert r.returncode == 2
    assert ("soundsim extract: error: models.broken: plugin soundsim-demo-plugin 0.3.1 (entry point broken = "
            "soundsim_demo_plugin.broken) failed to import: ModuleNotFoundError: No module named "
            "'soundsim_missing_dependency'") in r.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("collection: {name: d, kind: demo}\nmodels:\n  demo-stats: {options: {scale: 3}}\n  broken: {}\n")
    r = run(py, "-m", "soundsim.cli", "check-config", "--config", str(cfg), cwd=tmp)  # the packaged schema
    assert r.returncode == 2 and "models.broken: plugin soundsim-demo-plugin 0.3.1" in r.stderr
    assert "demo-stats" not in r.stderr.split("invalid configuration")[-1]


def test_two_plugins_registering_one_name_are_both_left_out(tmp_path):
    a = write_plugin(tmp_path / "src-a", "soundsim-plugin-a", "plugin_a", "1.0", {"twin": "plugin_a.stats"},
                     {"stats.py": STATS.format(package="plugin_a", name="twin"), "_features.py": FEATURES})
    b = write_plugin(tmp_path / "src-b", "soundsim-plugin-b", "plugin_b", "2.0", {"twin": "plugin_b.stats"},
                     {"stats.py": STATS.format(package="plugin_b", name="twin"), "_features.py": FEATURES})
    py = make_venv(tmp_path / "venv")
    pip_install(py, a, tmp_path)
    r = run(py, "-m", "soundsim.cli", "models", "--config", "", cwd=tmp_path)
    assert "plugin soundsim-plugin-a 1.0" in next(ln for ln in r.stdout.splitlines() if ln.startswith("twin "))
    pip_install(py, b, tmp_path)
    r = run(py, "-m", "soundsim.cli", "models", "--config", "", cwd=tmp_path)
    assert r.returncode == 0 and not any(ln.startswith("twin ") for ln in r.stdout.splitlines())
    message = ("model 'twin' is registered twice: by plugin soundsim-plugin-a 1.0 (entry point twin = plugin_a.stats) "
               "and by plugin soundsim-plugin-b 2.0 (entry point twin = plugin_b.stats); uninstall one")
    assert message in r.stderr
    man = write_manifest(tmp_path, [])
    r = run(py, "-m", "soundsim.cli", "extract", "--manifest", str(man), "--model", "twin", "--out",
            str(tmp_path / "x.h5"), cwd=tmp_path)
    assert r.returncode == 2 and f"models.twin: {message}" in r.stderr
