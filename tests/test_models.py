"""The model registry and the aisfx model (bundled weights, and a random checkpoint of the same architecture)."""

from __future__ import annotations

import numpy as np
import pytest

from soundsim import models
from soundsim.errors import ConfigError

from conftest import ROOT, tone


def test_registry_lists_models_with_complete_info():
    avail = models.available()
    assert "aisfx" in avail
    for name, inf in avail.items():
        assert inf.name == name
        assert inf.default_variation in inf.variations
        assert inf.level in ("frame", "clip")
        assert (inf.hop is None) == (inf.level == "clip") or inf.hop is not None
        assert inf.sample_rate > 0 and all(inf.dim_of(v) > 0 for v in inf.variations)
        assert inf.weights in ("bundled", "required")
        if inf.env != "soundsim":
            assert (ROOT / "envs" / f"{inf.env}.txt").is_file(), f"{name}: envs/{inf.env}.txt missing"
        assert (ROOT / "envs" / f"{inf.env}.yaml").is_file(), f"{name}: envs/{inf.env}.yaml missing"


def test_unknown_model_and_variation():
    with pytest.raises(ConfigError, match="models.nope: unknown model; known models: .*aisfx"):
        models.get("nope")
    with pytest.raises(ConfigError, match="'v9' is not a variation of aisfx; allowed values: x-sequential-ce"):
        models.load("aisfx", "v9")
    with pytest.raises(ConfigError) as exc:
        models.check_models_config({"nope": {}, "aisfx": {"variations": ["v9"]}})
    assert "models.nope: unknown model" in str(exc.value) and "'v9' is not a variation" in str(exc.value)


def test_resolve_weights(tmp_path):
    inf = models.info("aisfx")
    assert models.resolve_weights(inf, "x-sequential-ce", None) is None  # bundled
    w = tmp_path / "w.pth"
    w.write_bytes(b"x")
    assert models.resolve_weights(inf, "x-sequential-ce", {"x-sequential-ce": str(w)}) == str(w)
    with pytest.raises(ConfigError, match="models.aisfx.weights.x-sequential-ce: .*nope.pth does not exist"):
        models.resolve_weights(inf, "x-sequential-ce", {"x-sequential-ce": str(tmp_path / "nope.pth")})
    required = models.ModelInfo("m", ("a",), "a", 16000, "clip", None, 8, "soundsim", "d", weights="required",
                                weights_hint="m.ckpt from example.org")
    with pytest.raises(ConfigError, match=r"models.m.weights.a: no weights path given.*m.ckpt from example.org"):
        models.resolve_weights(required, "a", None)


def test_aisfx_bundled_weights_shape_and_determinism():
    m = models.load("aisfx")
    x = tone(5.0, 44100, 1, freq=330).ravel().astype(np.float32)
    a, b = m.embed(x), m.embed(x)
    # 5 s = 215 spectrogram frames -> blocks at 0, 50, 100 (the partial 4th block is dropped)
    assert a.shape == (3, 512) and a.dtype == np.float32
    assert np.array_equal(a, b) and np.isfinite(a).all()


def test_aisfx_loads_a_local_checkpoint_in_the_official_format(tmp_path):
    """A checkpoint with the real architecture and random weights, saved as the package
    saves its own ((state_dict, datasets) pickle), loads through the weights path."""
    import torch
    from aisfx.models.cnn2d import CrossNet, EmbeddingNet

    torch.manual_seed(0)
    datasets = {"a": (0, 5), "b": (1, 3)}
    net = CrossNet(EmbeddingNet("max", 3, 1, 64), datasets, "cpu")
    ckpt = tmp_path / "random.pth"
    torch.save((net.state_dict(), datasets), ckpt)
    rand = models.load("aisfx", weights=str(ckpt))
    bundled = models.load("aisfx")
    x = tone(3.0, 44100, 1, freq=500).ravel().astype(np.float32)
    r = rand.embed(x)
    assert r.shape == (1, 512)
    assert not np.allclose(r, bundled.embed(x)), "the local weights were used, not the bundled ones"


def test_models_cli_lists_models(capsys):
    from soundsim.cli import main

    assert main(["models", "--config", str(ROOT / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["model", "variation", "env", "env", "ready", "level", "dim", "rate",
                                           "weights", "in", "config"]
    line = next(ln for ln in out.splitlines() if ln.startswith("aisfx"))
    assert "x-sequential-ce *" in line and "soundsim" in line and "512" in line and "bundled" in line
