"""Model kind ``hear`` (soundsim.models._hear): any module implementing the HEAR 2021 API.

Real components only: the real PyPI hearbaseline (its ``naive`` model needs no weights) in
``.venvs/hear`` (skipped, saying how to build it, when that env is not built), and a tiny HEAR
module this file writes (torch, in the main env) to test the wrapper without hearbaseline.
Audio: WAV files the tests write. The probe's disk cache goes to a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from soundsim import extract, models, provenance, store
from soundsim.errors import ConfigError
from soundsim.models import _hear

from conftest import ROOT, chirp, env_python, extract_offline, run_offline, write_manifest

NAIVE = {"kind": "hear", "module": "hearbaseline.naive", "env": "hear", "weights": None}

#: a tiny HEAR 2021 module: 16 kHz, non-overlapping 100 ms frames, 6 statistics per frame
#: projected to 8 dims; timestamps at the frames' centres; scene = mean of the frames
TINY = '''
import torch

FRAME = 1600

class Tiny(torch.nn.Module):
    sample_rate = 16000
    scene_embedding_size = 8
    timestamp_embedding_size = 8

    def __init__(self, scale=1.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = torch.nn.Parameter(scale * torch.randn(6, 8, generator=g))

    def forward(self, frames):
        f = torch.stack([frames.mean(-1), frames.std(-1), frames.max(-1).values, frames.min(-1).values,
                         frames.abs().mean(-1), (frames ** 2).mean(-1).sqrt()], -1)
        return f @ self.proj


def load_model(model_file_path=""):
    model = Tiny()
    if model_file_path:
        model.load_state_dict(torch.load(model_file_path))
    return model


def get_timestamp_embeddings(audio, model):
    n = max(1, audio.shape[1] // FRAME)
    if audio.shape[1] < n * FRAME:
        audio = torch.nn.functional.pad(audio, (0, n * FRAME - audio.shape[1]))
    frames = audio[:, : n * FRAME].reshape(audio.shape[0], n, FRAME)
    ts = (torch.arange(n, dtype=torch.float32) + 0.5) * 100.0
    return model(frames), ts.expand(audio.shape[0], -1)


def get_scene_embeddings(audio, model):
    emb, _ = get_timestamp_embeddings(audio, model)
    return emb.mean(1)
'''


@pytest.fixture
def probe_cache(tmp_path, monkeypatch):
    """The probe's disk cache in a temporary folder, this process's cache empty."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _hear.clear_probe_cache()
    yield tmp_path / "cache" / "soundsim" / "hear-probe"
    _hear.clear_probe_cache()


@pytest.fixture
def tiny(tmp_path, monkeypatch, probe_cache):
    """Write the tiny HEAR module ``tinyhear`` (+ variants) to a folder on PYTHONPATH (for the probe's
    subprocess) and sys.path (for extraction in this process); returns the folder."""
    folder = tmp_path / "hearmods"
    folder.mkdir()
    (folder / "tinyhear.py").write_text(TINY)
    # variants: no timestamp embeddings; not a HEAR module at all
    (folder / "tinyscene.py").write_text(TINY.replace("def get_timestamp_embeddings", "def _timestamps")
                                         .replace("get_timestamp_embeddings(audio, model)", "_timestamps(audio, model)"))
    (folder / "notahear.py").write_text("def get_scene_embeddings(audio, model):\n    return audio\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), str(ROOT / "src"),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(folder))
    for m in ("tinyhear", "tinyscene", "notahear"):
        sys.modules.pop(m, None)
    return folder


def tiny_cfg(**kw) -> dict:
    return {"kind": "hear", "module": "tinyhear", "env": "soundsim", **kw}


def write_clips(folder: Path, specs: dict[str, tuple[float, int, int]]) -> list[Path]:
    """One WAV per name: (seconds, sample rate, channels) of a chirp (different per clip)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (name, (seconds, sr, ch)) in enumerate(specs.items()):
        x = chirp(seconds, sr, seed=i + 1)
        sf.write(folder / f"{name}.wav", np.repeat(x[:, None], ch, axis=1) if ch > 1 else x, sr, subtype="FLOAT")
        out.append(folder / f"{name}.wav")
    return out


# --------------------------------------------------------------------------- the wrapper, on the tiny module


def test_chunk_bounds():
    assert _hear.chunk_bounds(10, None) == [(0, 10)]
    assert _hear.chunk_bounds(10, 10) == [(0, 10)]
    assert _hear.chunk_bounds(25, 10) == [(0, 10), (10, 20), (20, 25)]  # last piece 5 = chunk / 2: kept
    assert _hear.chunk_bounds(24, 10) == [(0, 10), (10, 24)]  # last piece 4 < chunk / 2: joined
    assert _hear.chunk_bounds(30, 10) == [(0, 10), (10, 20), (20, 30)]
    assert _hear.chunk_bounds(12, 10, limit=12) == [(0, 12)]  # no longer than the limit: one pass
    # frame level: the chunk is a whole number of hops (2205 samples = 50 ms at 44.1 kHz)
    assert _hear.chunk_samples(60.0, 44100, 0.05) == 2646000
    assert _hear.chunk_samples(2.01, 44100, 0.05) == 88200
    assert _hear.chunk_samples(2.01, 44100, None) == 88641
    assert _hear.chunk_samples(None, 44100, 0.05) is None


def test_tiny_module_probe_info_and_disk_cache(tiny, probe_cache):
    p = _hear.probe("tinyhear", None, "soundsim")
    assert (p.sample_rate, p.scene_embedding_size, p.timestamp_embedding_size) == (16000, 8, 8)
    assert p.hop == pytest.approx(0.1) and p.functions == _hear.API_FUNCTIONS
    assert p.distribution is None and p.source_digest and str(tiny / "tinyhear.py") in p.sources
    clip = models.info("tiny", tiny_cfg())
    frame = models.info("tiny-f", tiny_cfg(level="frame", trained_on=["AudioSet"]))
    assert (clip.level, clip.dim, clip.hop, clip.sample_rate, clip.variations) == ("clip", 8, None, 16000, ("default",))
    assert (frame.level, frame.dim, frame.hop, frame.env) == ("frame", 8, pytest.approx(0.1), "soundsim")
    assert clip.trained_on is None and frame.trained_on == ("AudioSet",)
    assert set(clip.options) == {"chunk_seconds"} and models.origin("tiny", tiny_cfg()) == "config (kind hear)"
    # the disk cache answers a new process (here: after forgetting this one's cache)
    files = list(probe_cache.glob("*.json"))
    assert len(files) == 1
    cached = json.loads(files[0].read_text())
    files[0].write_text(json.dumps({**cached, "scene_embedding_size": 5}))
    _hear.clear_probe_cache()
    assert _hear.probe("tinyhear", None, "soundsim").scene_embedding_size == 5, "the disk cache was not read"
    # ... while the module's source is unchanged: an edit probes again
    (tiny / "tinyhear.py").write_text(TINY.replace("scene_embedding_size = 8", "scene_embedding_size = 8  # edited"))
    _hear.clear_probe_cache()
    again = _hear.probe("tinyhear", None, "soundsim")
    assert again.scene_embedding_size == 8 and again.source_digest != p.source_digest


def test_tiny_module_short_clip_is_one_pass_equal_to_calling_the_module(tiny):
    import torch

    import tinyhear

    x = chirp(1.55, 16000, seed=3)
    direct = tinyhear.load_model()
    with torch.no_grad():
        scene = tinyhear.get_scene_embeddings(torch.from_numpy(x[None]), direct).numpy()
        frames, _ = tinyhear.get_timestamp_embeddings(torch.from_numpy(x[None]), direct)
    for level, want in (("clip", scene), ("frame", frames[0].numpy())):
        m = models.load("tiny", None, options={"chunk_seconds": 2.0}, cfg=tiny_cfg(level=level))
        got = m.embed(x)
        assert got.dtype == np.float32 and np.array_equal(got, want), level


def test_tiny_module_long_clips_in_chunks(tiny):
    """Frame level: the chunks' rows (timestamps offset, boundary frames once) equal the one pass
    exactly, the tiny module's frames not overlapping. Clip level: the duration-weighted mean."""
    import torch

    import tinyhear

    x = chirp(6.1, 16000, seed=4)  # 97600 samples, chunks of 2 s = 32000: [0, 32000), [32000, 64000), [64000, 97600)
    assert _hear.chunk_bounds(len(x), 32000) == [(0, 32000), (32000, 64000), (64000, 97600)]
    x = x[:78400]  # 4.9 s: the last 14400 samples (< 1 s) join the chunk before
    chunked = models.load("tiny", None, options={"chunk_seconds": 2.0}, cfg=tiny_cfg(level="frame"))
    whole = models.load("tiny", None, options={"chunk_seconds": None}, cfg=tiny_cfg(level="frame"))
    assert _hear.chunk_bounds(len(x), 32000) == [(0, 32000), (32000, 78400)]
    a, b = chunked.embed(x), whole.embed(x)
    assert a.shape == b.shape == (49, 8) and np.array_equal(a, b)
    clip = models.load("tiny", None, options={"chunk_seconds": 2.0}, cfg=tiny_cfg(level="clip")).embed(x)
    direct = tinyhear.load_model()
    with torch.no_grad():
        parts = [tinyhear.get_scene_embeddings(torch.from_numpy(x[None, s:e].copy()), direct)[0].numpy()
                 for s, e in [(0, 32000), (32000, 78400)]]
    want = (32000 * parts[0].astype(np.float64) + 46400 * parts[1]) / 78400
    assert clip.shape == (1, 8) and np.allclose(clip[0], want, rtol=1e-6, atol=1e-7)
    one_pass = models.load("tiny", None, options={"chunk_seconds": None}, cfg=tiny_cfg(level="clip")).embed(x)
    # the tiny module's frames tile the chunks: weighting each chunk's mean by its duration gives the mean
    # of all frames, the one-pass value; an unweighted mean of the chunks would not
    assert np.allclose(clip, one_pass, rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.mean(parts, axis=0), one_pass[0], rtol=1e-3, atol=1e-4)


def test_tiny_module_extraction_resamples_to_its_rate_and_records_it(tiny, tmp_path):
    paths = write_clips(tmp_path / "audio", {"a": (1.0, 44100, 2), "b": (2.5, 16000, 1), "c": (0.3, 22050, 1)})
    man = write_manifest(tmp_path, paths)
    for level, rows in (("clip", [1, 1, 1]), ("frame", [10, 25, 3])):
        cfg = tiny_cfg(level=level)
        out = extract.extract_shard(man, "tiny", None, 0, 1, tmp_path / f"{level}.h5", progress=False, model_cfg=cfg)
        e = store.read_embeddings(out)
        assert e.fnames == ["a", "b", "c"] and e.frame_counts.tolist() == rows
        assert e.attrs["sample_rate"] == 16000 and e.dim == 8 and e.attrs["variation"] == "default"
        assert json.loads(e.attrs["options"]) == {"chunk_seconds": 60.0}
        # the 16 kHz mono clip is embedded as it is: equal to the module on the file's samples
        x, _ = sf.read(paths[1], dtype="float32")
        assert np.array_equal(e.clip_rows(1), models.load("tiny", None, cfg=cfg).embed(x))


def test_the_extract_cli_embeds_a_kind_model_from_the_flags_the_workflow_passes(tiny, tmp_path):
    """`soundsim extract` as the extract_shard rule runs it: the model's section as --model-config
    (soundsim.envs.extract_flags), in a subprocess; the file equals extract_shard's."""
    import shlex
    import subprocess

    from soundsim import envs

    paths = write_clips(tmp_path / "audio", {"a": (1.0, 44100, 1), "b": (0.4, 16000, 1)})
    man = write_manifest(tmp_path, paths)
    cfg = tiny_cfg(level="frame", options={"chunk_seconds": 30})
    flags = shlex.split(envs.extract_flags(None, None, cfg["options"], cfg))
    out = tmp_path / "cli.h5"
    r = subprocess.run([sys.executable, "-m", "soundsim.cli", "extract", "--manifest", str(man), "--model", "tiny",
                        "--out", str(out), "-q", *flags], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ref = extract.extract_shard(man, "tiny", None, 0, 1, tmp_path / "ref.h5", progress=False,
                                options=cfg["options"], model_cfg=cfg)
    a, b = store.read_embeddings(out), store.read_embeddings(ref)
    assert a.fnames == b.fnames == ["a", "b"] and np.array_equal(a.embeddings, b.embeddings)
    assert json.loads(a.attrs["options"]) == {"chunk_seconds": 30.0}


def test_tiny_module_code_version_follows_its_source_and_level(tiny):
    v = provenance.model_code_version("tiny", cfg=tiny_cfg())
    parts = provenance.model_code_parts("tiny", cfg=tiny_cfg())
    assert parts["hear"]["module"] == "tinyhear" and parts["hear"]["source"]
    assert provenance.model_code_version("tiny", cfg=tiny_cfg()) == v
    assert provenance.model_code_version("tiny", cfg=tiny_cfg(level="frame")) != v
    (tiny / "tinyhear.py").write_text(TINY.replace("frames.abs().mean(-1)", "frames.abs().amax(-1)"))
    assert provenance.model_code_version("tiny", cfg=tiny_cfg()) != v


def test_errors_name_the_key_module_and_environment(tiny, tmp_path):
    def problems(cfg):
        return models.kind_module("hear").config_problems("m", cfg)

    [p] = problems(tiny_cfg(module="no_such_hear_module"))
    assert p.startswith("models.m.module: cannot import 'no_such_hear_module' in environment 'soundsim'")
    assert "No module named 'no_such_hear_module'" in p
    [p] = problems(tiny_cfg(module="notahear"))
    assert p == ("models.m.module: notahear does not implement the HEAR 2021 API: it has no function "
                 "load_model(model_file_path)")
    [p] = problems(tiny_cfg(module="tinyscene", level="frame"))
    assert p == ("models.m.level: 'frame' needs get_timestamp_embeddings, which tinyscene does not define; use "
                 "level: clip")
    assert problems(tiny_cfg(module="tinyscene", level="clip")) == []
    [p] = problems(tiny_cfg(env="no-such-env"))
    assert p.startswith("models.m.env: environment 'no-such-env' is not built") and "make envs ENVS=no-such-env" in p
    [p] = problems(tiny_cfg(weights=str(tmp_path / "missing.pt")))
    assert p == f"models.m.weights: {tmp_path / 'missing.pt'} does not exist"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    [p] = problems(tiny_cfg(weights=str(bad)))
    assert p.startswith(f"models.m: tinyhear.load_model('{bad}') failed:") and "models.m.weights" in p
    with pytest.raises(ConfigError, match="models.m.module: cannot import 'no_such_hear_module'"):
        models.info("m", tiny_cfg(module="no_such_hear_module"))
    # check-config: every problem, one per line, exit status 2
    cfg = tmp_path / "c.yaml"
    cfg.write_text("collection: {name: d, kind: demo}\nmodels:\n"
                   "  a: {kind: hear, module: no_such_hear_module}\n  b: {kind: hear, module: tinyscene, level: frame}\n")
    r = subprocess.run([sys.executable, "-m", "soundsim.cli", "check-config", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "models.a.module: cannot import 'no_such_hear_module' in environment 'soundsim'" in r.stderr
    assert "models.b.level: 'frame' needs get_timestamp_embeddings" in r.stderr


def test_weights_are_passed_as_model_file_path(tiny, tmp_path):
    import torch

    import tinyhear

    ckpt = tmp_path / "tiny.pt"
    torch.save(tinyhear.Tiny(scale=3.0).state_dict(), ckpt)
    x = chirp(1.0, 16000, seed=5)
    default = models.load("tiny", None, cfg=tiny_cfg()).embed(x)
    cfg = tiny_cfg(weights=str(ckpt))
    inf = models.info("tiny", cfg)
    assert inf.weights == "required" and models.resolve_all_weights({"tiny": cfg}) == {("tiny", "default"): str(ckpt)}
    own = models.load("tiny", None, str(ckpt), cfg=cfg).embed(x)
    assert np.allclose(own, 3.0 * default, rtol=1e-5)
    assert models.info("tiny", tiny_cfg(weights={"default": str(ckpt)})) == inf
    [p] = models.kind_module("hear").config_problems("tiny", tiny_cfg(weights={"other": str(ckpt)}))
    assert p.startswith("models.tiny.weights: a model of kind 'hear' takes one path (or null; or {default: path})")


def test_models_cli_lists_kind_models(tiny, tmp_path, capsys):
    from soundsim.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("collection: {name: d, kind: demo}\nmodels:\n  aisfx: {}\n"
                   "  tiny: {kind: hear, module: tinyhear, level: frame}\n  broken: {kind: hear, module: no_such_mod}\n")
    assert main(["models", "--config", str(cfg)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-3:] == ["from", "trained", "on"]
    tiny_line = next(ln for ln in lines if ln.startswith("tiny "))
    assert tiny_line.split() == ["tiny", "default", "*", "soundsim", "yes", "frame", "8", "16000", "bundled", "yes",
                                 "config", "(kind", "hear)", "not", "declared"]
    assert "built in" in next(ln for ln in lines if ln.startswith("aisfx "))
    assert next(ln for ln in lines if ln.startswith("broken ")).split()[1] == "?"
    assert any(ln.startswith("problem: models.broken.module: cannot import 'no_such_mod'") for ln in lines)


# --------------------------------------------------------------------------- the real hearbaseline


NAIVE_DIRECT = '''
import json, sys
import numpy as np, soundfile as sf, torch
import hearbaseline.naive as naive
model = naive.load_model()
out = {}
for path in sys.argv[1:]:
    x, sr = sf.read(path, dtype="float32")
    assert sr == 44100 and x.ndim == 1
    with torch.no_grad():
        scene = naive.get_scene_embeddings(torch.from_numpy(x[None]), model)[0].numpy()
        frames, ts = naive.get_timestamp_embeddings(torch.from_numpy(x[None]), model)
    out[path] = {"scene": scene.tolist(), "frames": frames[0].numpy().tolist(), "ts": ts[0].tolist()}
print(json.dumps(out))
'''


@pytest.mark.model_env("hear")
def test_hearbaseline_naive_probe(probe_cache):
    env_python("hear")
    p = _hear.probe("hearbaseline.naive", None, "hear")
    assert (p.sample_rate, p.scene_embedding_size, p.timestamp_embedding_size) == (44100, 4096, 4096)
    assert p.hop == pytest.approx(0.05) and p.functions == _hear.API_FUNCTIONS
    assert (p.distribution, p.version) == ("hearbaseline", "2021.1.1") and len(p.source_digest) == 64
    clip, frame = models.info("naive", NAIVE), models.info("naive-f", {**NAIVE, "level": "frame"})
    assert (clip.level, clip.dim, clip.sample_rate, clip.hop, clip.weights) == ("clip", 4096, 44100, None, "bundled")
    assert (frame.level, frame.dim, frame.hop) == ("frame", 4096, pytest.approx(0.05))
    assert "hearbaseline" in clip.packages
    parts = provenance.model_code_parts("naive", cfg=NAIVE)
    assert parts["hear"]["distribution"] == "hearbaseline" and parts["hear"]["version"] == "2021.1.1"
    assert parts["packages"]["hearbaseline"] == "2021.1.1" and parts["packages"]["torch"].startswith("2.13.0")


@pytest.mark.model_env("hear")
def test_hearbaseline_naive_extraction_clip_and_frame_level(tmp_path):
    """Real audio files at several rates and channel counts; the 44.1 kHz mono clips (shorter than a
    chunk) equal hearbaseline called directly on the file's samples, bit for bit."""
    env_python("hear")
    paths = write_clips(tmp_path / "audio", {"a": (1.5, 44100, 1), "b": (3.2, 44100, 1), "c": (2.0, 16000, 2),
                                              "d": (0.4, 48000, 1)})
    man = write_manifest(tmp_path, paths)
    direct = json.loads(run_offline("hear", NAIVE_DIRECT, str(paths[0]), str(paths[1])))
    for level in ("clip", "frame"):
        cfg = {**NAIVE, "level": level}
        out = tmp_path / f"naive-{level}.h5"
        extract_offline("hear", man, "naive", None, out, model_cfg=cfg)
        e = store.read_embeddings(out)
        assert e.fnames == ["a", "b", "c", "d"] and e.dim == 4096 and e.attrs["sample_rate"] == 44100
        assert np.isfinite(e.embeddings).all()
        for i in (0, 1):
            d = direct[str(paths[i])]
            want = np.asarray(d["scene"], np.float32)[None] if level == "clip" else np.asarray(d["frames"], np.float32)
            assert np.array_equal(e.clip_rows(i), want), (level, i)
        if level == "frame":
            # naive: frames centred every 50 ms from 0 to the end: floor(n / 2205) + 1 rows
            assert e.frame_counts.tolist() == [31, 65, 41, 9]
            assert e.attrs["hop"] == pytest.approx(0.05)
        else:
            assert e.frame_counts.tolist() == [1, 1, 1, 1]
            assert not np.allclose(e.clip_rows(0), e.clip_rows(1))


@pytest.mark.model_env("hear")
def test_hearbaseline_naive_chunks():
    """A clip no longer than a chunk: one pass, equal to hearbaseline itself. A longer one (4.5 s,
    chunks of 2 s -> [0, 2 s), [2 s, 4.5 s)): frame level has the one-pass timestamps, every row
    whose 4096-sample window lies inside one chunk equals the one-pass row, the one centred on the
    boundary (t = 2 s) does not; clip level is the duration-weighted mean of the chunks' scene
    embeddings."""
    env_python("hear")
    code = textwrap.dedent('''
        import json
        import numpy as np, torch
        import hearbaseline.naive as naive
        from soundsim import models
        cfg = {"kind": "hear", "module": "hearbaseline.naive", "env": "hear"}
        t = np.arange(int(4.5 * 44100)) / 44100
        x = (0.3 * np.sin(2 * np.pi * (300 + 40 * t) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))).astype(np.float32)
        short = x[: int(1.9 * 44100)]
        model = naive.load_model()
        def direct_frames(y):
            with torch.no_grad():
                return naive.get_timestamp_embeddings(torch.from_numpy(y[None].copy()), model)[0][0].numpy()
        def direct_scene(y):
            with torch.no_grad():
                return naive.get_scene_embeddings(torch.from_numpy(y[None].copy()), model)[0].numpy()
        opts = {"chunk_seconds": 2.0}
        frame = models.load("n", None, options=opts, cfg={**cfg, "level": "frame"})
        clip = models.load("n", None, options=opts, cfg={**cfg, "level": "clip"})
        out = {"short_frame_equal": bool(np.array_equal(frame.embed(short), direct_frames(short))),
               "short_clip_equal": bool(np.array_equal(clip.embed(short)[0], direct_scene(short)))}
        a, b = frame.embed(x), direct_frames(x)
        diff = np.abs(a - b).max(axis=1) / np.abs(b).max()
        out["rows"], out["one_pass_rows"] = len(a), len(b)
        out["close"] = [bool(d < 1e-5) for d in diff]
        s = clip.embed(x)[0].astype(np.float64)
        want = (88200 * direct_scene(x[:88200]).astype(np.float64) + 110250 * direct_scene(x[88200:])) / 198450
        out["clip_weighted_mean"] = float(np.abs(s - want).max() / np.abs(want).max())
        out["clip_vs_one_pass"] = float(np.abs(s - direct_scene(x)).max() / np.abs(want).max())
        print(json.dumps(out))
    ''')
    r = json.loads(run_offline("hear", code))
    assert r["short_frame_equal"] and r["short_clip_equal"]
    assert r["rows"] == r["one_pass_rows"] == 91
    boundary = 40  # t = 2000 ms: its window holds samples of both chunks
    assert not r["close"][boundary]
    assert all(c for i, c in enumerate(r["close"]) if i != boundary)
    assert r["clip_weighted_mean"] < 1e-6 and r["clip_vs_one_pass"] > 1e-4


@pytest.mark.model_env("hear")
def test_hearbaseline_errors(probe_cache, tmp_path):
    env_python("hear")
    kind = models.kind_module("hear")
    [p] = kind.config_problems("m", {**NAIVE, "module": "hearbaseline.nosuch"})
    assert p.startswith("models.m.module: cannot import 'hearbaseline.nosuch' in environment 'hear'")
    assert "No module named 'hearbaseline.nosuch'" in p
    # hearbaseline.util is importable there but is not a HEAR module
    [p] = kind.config_problems("m", {**NAIVE, "module": "hearbaseline.util"})
    assert p == ("models.m.module: hearbaseline.util does not implement the HEAR 2021 API: it has no function "
                 "load_model(model_file_path)")
    # in the main env hearbaseline is not installed: the message names the module and the env
    [p] = kind.config_problems("m", {**NAIVE, "env": "soundsim"})
    assert p.startswith("models.m.module: cannot import 'hearbaseline.naive' in environment 'soundsim'")


@pytest.mark.slow
@pytest.mark.model_env("hear")
def test_workflow_runs_hearbaseline_at_clip_and_frame_level_next_to_aisfx(venv_bin, tmp_path, monkeypatch):
    """The demo collection (2 clips per class), aisfx and hearbaseline.naive at clip and at frame
    level: embeddings, the metrics of every setting, models.csv with a row per model and its
    intervals, the figures; a second plan finds nothing to do (the probe is cached)."""
    env_python("hear")
    from test_workflow import SMALL_GRID, job_counts, snakemake, write_config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    models_cfg = {"aisfx": {}, "hear-naive": {**NAIVE, "level": "clip"},
                  "hear-naive-frames": {**NAIVE, "level": "frame", "trained_on": []}}
    write_config(tmp_path, models=models_cfg, grid={**SMALL_GRID, "searches": ["mcss", "nns"]})
    plan = snakemake(venv_bin, tmp_path, "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    # aisfx and the frame-level model: 2 aggregations x 2 PCA; the clip-level one: 2 PCA
    assert job_counts(plan.stdout)["evaluate"] == 4 + 2 + 4
    assert len(list((tmp_path / "cache" / "soundsim" / "hear-probe").glob("*.json"))) == 1
    run = snakemake(venv_bin, tmp_path, timeout=1500)
    assert run.returncode == 0, run.stderr[-4000:]
    res = tmp_path / "results" / "demo"
    n = len(pd.read_csv(res / "manifest.csv"))
    clip = store.read_embeddings(res / "embeddings" / "hear-naive" / "default.h5")
    frame = store.read_embeddings(res / "embeddings" / "hear-naive-frames" / "default.h5")
    assert clip.embeddings.shape == (n, 4096) and frame.dim == 4096 and frame.frame_counts.min() > 1
    assert clip.attrs["model"] == "hear-naive" and frame.attrs["hop"] == pytest.approx(0.05)
    table = pd.read_csv(res / "tables" / "models.csv").set_index("model")
    assert sorted(table.index) == ["aisfx", "hear-naive", "hear-naive-frames"]
    assert table.loc["hear-naive", "dims"] == 4096 and table.loc["hear-naive-frames", "level"] == "frame"
    for col in ("best_map@15", "best_map@15_lo", "best_map@15_hi", "best_mr1_lo", "best_mr1_hi"):
        assert table[col].notna().all(), col
    assert (table["best_map@15_lo"] <= table["best_map@15"]).all()
    assert (table["best_map@15"] <= table["best_map@15_hi"]).all()
    all_settings = pd.read_csv(res / "tables" / "all_settings.csv")
    assert len(all_settings) == (4 + 2 + 4) * 2 and all_settings["map@15_lo"].notna().all()
    for f in ["models", "grid/hear-naive__default", "grid/hear-naive-frames__default", "families"]:
        assert (res / "figures" / f"{f}.png").stat().st_size > 10_000
    print("\nMAP@15 at each model's best setting [interval]:")
    for model, r in table.iterrows():
        print(f"  {model}: {r['best_map@15']:.4f} [{r['best_map@15_lo']:.4f}, {r['best_map@15_hi']:.4f}] "
              f"({r['best_setting']})")
    again = snakemake(venv_bin, tmp_path, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
