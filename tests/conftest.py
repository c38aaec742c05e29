"""Shared fixtures: tiny real audio files and collections written by the tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_ONTOLOGY = SHARED / "data" / "fsd50k-ontology"
SCHEMA = ROOT / "src" / "soundsim" / "data" / "config.schema.yaml"  # package data (soundsim.data)


def tone(seconds: float, sr: int, channels: int = 1, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A quiet sine plus a little noise, shape (frames, channels)."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    return np.repeat(x[:, None], channels, axis=1)


@pytest.fixture
def write_audio() -> Callable[..., Path]:
    """write_audio(path, seconds=1.0, sr=16000, channels=1, subtype='PCM_16') -> path."""

    def _write(path: Path, seconds: float = 1.0, sr: int = 16000, channels: int = 1, subtype: str = "PCM_16",
               freq: float = 440.0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(seconds, sr, channels, freq), sr, subtype=subtype)
        return path

    return _write


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to a fraction of its bytes (header intact, data short)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.fixture
def make_bad_audio(write_audio) -> Callable[[Path], dict[str, Path]]:
    """Write one file per kind of broken audio into a folder; returns kind -> path."""

    def _make(folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        out = {}
        out["empty"] = folder / "empty.wav"
        out["empty"].write_bytes(b"")
        out["random"] = folder / "random.wav"
        out["random"].write_bytes(np.random.default_rng(1).bytes(4000))
        out["truncated_wav"] = truncate(write_audio(folder / "truncated_wav.wav", 1.0, 16000))
        out["truncated_flac"] = truncate(write_audio(folder / "truncated_flac.flac", 1.0, 44100))
        out["zero_length"] = folder / "zero_length.wav"
        sf.write(out["zero_length"], np.zeros((0, 1)), 16000)
        return out

    return _make


@pytest.fixture
def csv_collection(tmp_path, write_audio) -> Callable[..., dict[str, Path]]:
    """A small csv collection: 3 labels in 2 families, mixed formats/rates/channels.

    Returns paths: audio_dir, ground_truth, vocabulary, families.
    """

    def _make(rows: list[tuple[str, str]] | None = None, folder: Path | None = None) -> dict[str, Path]:
        folder = folder or tmp_path / "coll"
        audio = folder / "audio"
        specs = {
            "a1": (".wav", 16000, 1, "Dog"),
            "a2": (".flac", 22050, 2, "Dog,Bark"),
            "b1": (".wav", 44100, 1, "Rain"),
            "b2": (".flac", 48000, 2, "Rain"),
            "c1": (".wav", 48000, 1, "Bark"),
        }
        for i, (fname, (ext, sr, ch, _)) in enumerate(specs.items()):
            write_audio(audio / f"{fname}{ext}", 0.5 + 0.25 * i, sr, ch, freq=200 + 100 * i)
        rows = rows if rows is not None else [(f, spec[3]) for f, spec in specs.items()]
        gt = folder / "gt.csv"
        gt.write_text("fname,labels\n" + "".join(f'{f},"{lab}"\n' for f, lab in rows))
        vocab = folder / "vocabulary.csv"
        vocab.write_text("label\nBark\nDog\nRain\n")
        fams = folder / "families.json"
        fams.write_text(json.dumps({"Animal": ["Dog", "Bark"], "Natural_sounds": ["Rain"]}))
        return {"audio_dir": audio, "ground_truth": gt, "vocabulary": vocab, "families": fams}

    return _make


def write_manifest(folder: Path, paths: list[Path], label: str = "Dog") -> Path:
    """A manifest.csv (soundsim.manifest.MANIFEST_COLUMNS) listing ``paths`` as they are:
    unreadable files get zeros, so that extraction has to cope with them."""
    import pandas as pd

    from soundsim.manifest import MANIFEST_COLUMNS

    from soundsim.fingerprint import file_fingerprint

    rows = []
    for p in paths:
        try:
            i = sf.info(p)
            sr, ch, fr, fmt, st = i.samplerate, i.channels, i.frames, i.format, i.subtype
        except Exception:
            sr, ch, fr, fmt, st = 0, 0, 0, "", ""
        fp = file_fingerprint(p) if Path(p).is_file() else ""
        rows.append((p.stem, str(p), fr / sr if sr else 0.0, sr, ch, fr, fmt, st, fp, label))
    m = folder / "manifest.csv"
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(m, index=False)
    return m


def shared_or_skip() -> Path:
    if not SHARED_ONTOLOGY.is_dir():
        pytest.skip("../shared/data/fsd50k-ontology is absent")
    return SHARED_ONTOLOGY


@pytest.fixture
def venv_bin() -> Path:
    """Folder of the interpreter running the tests (snakemake and soundsim live there)."""
    import sys

    return Path(sys.executable).parent



# Model environments (issue 6): code that must run in .venvs/<env> goes through
# run_offline(), which refuses every network connection in that process.
OFFLINE_PRELUDE = '''
import socket as _socket
def _no_network(*args, **kwargs):
    raise OSError("network access is disabled in soundsim's model tests")
_socket.socket.connect = _no_network
_socket.socket.connect_ex = _no_network
_socket.create_connection = _no_network
_socket.getaddrinfo = _no_network
'''


def env_python(env: str) -> Path:
    """The interpreter of model environment ``env`` (the test runner's own for 'soundsim');
    skips the test, saying how to build it, when the environment is not built."""
    import sys

    if env == "soundsim":
        return Path(sys.executable)
    folder = ROOT / ".venvs" / env
    if not ((folder / "bin" / "python").is_file() and (folder / ".soundsim-installed").is_file()):
        pytest.skip(f"model environment {env!r} is not built ({folder}): run `make envs ENVS={env}`")
    return folder / "bin" / "python"


def run_offline(env: str, code: str, *args: str, timeout: int = 600) -> str:
    """Run ``code`` (a Python script taking ``args``) in environment ``env`` with
    networking disabled (socket connect/getaddrinfo raise OSError; the Hugging Face
    and Torch hub caches point at an empty folder). Returns stdout; a failure
    fails the test with the end of stderr."""
    import os
    import subprocess
    import tempfile

    py = env_python(env)
    with tempfile.TemporaryDirectory() as empty:
        env_vars = dict(os.environ, HF_HOME=empty, TORCH_HOME=empty, XDG_CACHE_HOME=empty,
                        TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
        proc = subprocess.run([str(py), "-c", OFFLINE_PRELUDE + code, *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env=env_vars, cwd=empty)
    assert proc.returncode == 0, f"in env {env!r}: exit {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc.stdout


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "model_env(name): runs code in the model environment .venvs/<name> "
                            "(skipped, saying how to build it, when it is not built)")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say which model environments the model tests ran in and which were skipped."""
    used: dict[str, set[str]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in terminalreporter.stats.get(outcome, []):
            env = getattr(rep, "model_env", None)
            if env:
                used.setdefault(env, set()).add(outcome)
    if used:
        terminalreporter.section("model environments")
        for env, outcomes in sorted(used.items()):
            state = "SKIPPED (not built: make envs ENVS=%s)" % env if outcomes == {"skipped"} else "ran"
            terminalreporter.write_line(f"{env}: {state}; outcomes {', '.join(sorted(outcomes))}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    marker = item.get_closest_marker("model_env")
    if marker and marker.args:
        outcome.get_result().model_env = marker.args[0]


def chirp(seconds: float, sr: int, seed: int) -> np.ndarray:
    """A chirp with a changing envelope plus noise (float32 mono): different seeds and
    durations embed differently, which a plain tone may not."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * (200 + 60 * seed + 30 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t))
    return (x + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


EXTRACT_ONE_SHARD = '''
import json, sys
from soundsim import extract
man, model, variation, out, weights, model_cfg, options = sys.argv[1:8]
shard = extract.extract_shard(man, model, variation or None, 0, 1, out + ".shard", weights=weights or None,
                              progress=False, model_cfg=json.loads(model_cfg), options=json.loads(options))
extract.merge_shards([shard], out)
'''


def extract_offline(env: str, manifest: Path, model: str, variation: str | None, out: Path,
                    weights: Path | str | None = None, model_cfg: dict | None = None,
                    options: dict | None = None) -> None:
    """Extract ``manifest`` with one model/variation as one shard and merge it into ``out``,
    in environment ``env`` with networking disabled (see :func:`run_offline`); ``model_cfg``:
    the model's config section, for a model of a kind (``models.<name>.kind``)."""
    run_offline(env, EXTRACT_ONE_SHARD, str(manifest), model, variation or "", str(out), str(weights or ""),
                json.dumps(model_cfg), json.dumps(options or {}))


def brute_force_keys(Z: np.ndarray, search: str) -> np.ndarray:
    """Float64 keys (N, N), higher = better, the query's own entry -inf:
    <a,b>, <a,b>/(|a||b|), 2<a,b> - |b|^2 with <a,b> = sum_i a_i b_i and
    |b|^2 = sum_i b_i^2 from numpy's sum-of-products loop over two float64
    rows (as soundsim.search defines the exact keys; identical vectors get
    identical keys)."""
    Z = np.asarray(Z, dtype=np.float64)
    sq = np.einsum("ij,ij->i", Z, Z)
    norm = np.sqrt(sq)
    out = np.empty((len(Z), len(Z)))
    for q in range(len(Z)):
        d = np.einsum("ij,ij->i", np.repeat(Z[q][None, :], len(Z), axis=0), Z)
        out[q] = {"mips": d, "mcss": d / (norm[q] * norm), "nns": 2 * d - sq}[search]
        out[q, q] = -np.inf
    return out


# --------------------------------------------------------------------------- a small real similarity index

INDEX_LABELS = ("Bird", "Engine", "Bell")


def build_small_collection(folder: Path, per_label: int = 6) -> dict[str, Path]:
    """``per_label`` real audio files (chirps, 1-2 s, 22.05 kHz) per label of
    :data:`INDEX_LABELS`, their manifest (labels as ``Label``), and their aisfx
    embeddings (the real model, in this process: one shard, merged)."""
    import pandas as pd

    from soundsim import extract

    audio = folder / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    for li, label in enumerate(INDEX_LABELS):
        for j in range(per_label):
            p = audio / f"{label.lower()}{j:02d}.wav"
            x = chirp(1.0 + (j % 2), 22050, seed=li * 3)  # one family of chirps per label
            x = x * (0.5 + 0.1 * j) + 0.01 * np.random.default_rng(100 * li + j).standard_normal(len(x))
            sf.write(p, x.astype(np.float32), 22050, subtype="PCM_16")
            paths.append(p)
            labels.append(label)
    man = write_manifest(folder, paths)
    df = pd.read_csv(man)
    df["labels"] = labels
    df.to_csv(man, index=False)
    emb = folder / "aisfx.h5"
    shard = extract.extract_shard(man, "aisfx", None, 0, 1, folder / "aisfx.shard.h5", progress=False)
    extract.merge_shards([shard], emb)
    return {"folder": folder, "audio": audio, "manifest": man, "embeddings": emb}


@pytest.fixture(scope="session")
def small_collection(tmp_path_factory) -> dict[str, Path]:
    """A session-wide :func:`build_small_collection` (18 clips, aisfx embeddings); read-only."""
    return build_small_collection(tmp_path_factory.mktemp("small-collection"))


@pytest.fixture
def small_index(tmp_path, small_collection) -> Callable[..., Path]:
    """small_index(type='flat', setting='agg-mean_pca-8_search-mcss', **params) -> a fresh index
    folder of :func:`small_collection`, built by soundsim.service.index.build_index_from."""
    from soundsim.service.index import build_index_from

    def _build(type: str = "flat", setting: str = "agg-mean_pca-8_search-mcss", name: str = "index",
               **params) -> Path:
        out = tmp_path / name
        build_index_from(small_collection["embeddings"], small_collection["manifest"], setting, out, type, params)
        return out

    return _build
