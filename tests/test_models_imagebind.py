"""ImageBind (audio branch, plain torch) in the main environment.

A small random checkpoint in the official format (one flat state dict of the
whole multimodal model with ImageBind's key names; here the audio branch at
width 128 with 2 blocks, plus a few tensors of other modalities that must be
ignored), loaded through ``soundsim.models.load`` with networking disabled,
embedding real WAV files written here.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundsim import models, store
from soundsim.errors import ConfigError

from conftest import run_offline, tone, write_manifest

pytestmark = pytest.mark.model_env("soundsim")

WIDTH, OUT = 128, 1024  # 2 heads of 64 (the real audio trunk: 12 heads of 64 at width 768); output 1024 as the real one


def imagebind_state(dim: int = WIDTH, depth: int = 2, out_dim: int = OUT, seed: int = 0) -> dict:
    """A random state dict with ImageBind's key names for the audio branch
    (128 x 204 fbank, 16 x 16 patches with stride 10 -> 1 + 12 x 19 tokens)."""
    import torch

    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    pre, trunk, head = "modality_preprocessors.audio.", "modality_trunks.audio.", "modality_heads.audio."
    sd = {
        pre + "cls_token": r(1, 1, dim),
        pre + "rgbt_stem.proj.weight": r(dim, 1, 16, 16),
        pre + "rgbt_stem.norm_layer.weight": 1 + r(dim),
        pre + "rgbt_stem.norm_layer.bias": r(dim),
        pre + "pos_embedding_helper.pos_embed": r(1, 229, dim),
    }
    for i in range(depth):
        p = f"{trunk}blocks.{i}."
        sd.update({
            p + "attn.in_proj_weight": r(3 * dim, dim), p + "attn.in_proj_bias": r(3 * dim),
            p + "attn.bias_k": r(1, 1, dim), p + "attn.bias_v": r(1, 1, dim),
            p + "attn.out_proj.weight": r(dim, dim), p + "attn.out_proj.bias": r(dim),
            p + "norm_1.weight": 1 + r(dim), p + "norm_1.bias": r(dim),
            p + "mlp.fc1.weight": r(4 * dim, dim), p + "mlp.fc1.bias": r(4 * dim),
            p + "mlp.fc2.weight": r(dim, 4 * dim), p + "mlp.fc2.bias": r(dim),
            p + "norm_2.weight": 1 + r(dim), p + "norm_2.bias": r(dim),
        })
    sd.update({
        head + "0.weight": 1 + r(dim), head + "0.bias": r(dim), head + "2.weight": r(out_dim, dim),
        "modality_postprocessors.audio.1.log_logit_scale": torch.ones([]) * np.log(20.0),
        # other modalities, as in imagebind_huge.pth (not used)
        "modality_preprocessors.vision.cls_token": r(1, 1, 32),
        "modality_trunks.vision.blocks.0.attn.in_proj_weight": r(96, 32),
        "modality_postprocessors.text.1.log_logit_scale": torch.ones([]) * np.log(1 / 0.07),
    })
    return sd


RUN = textwrap.dedent(
    """
    import sys
    import numpy as np
    from soundsim import audio, extract, models

    ckpt, man, out = sys.argv[1:4]
    files = sys.argv[4:]
    res = {}
    m = models.load("imagebind", weights=ckpt)
    res["dim"] = np.array(m.embedder.dim)
    for f in files:
        y, _ = audio.load(f, 16000)
        key = f.rsplit("/", 1)[-1].split(".")[0]
        res[key] = m.embed(y)
        res[key + "_again"] = m.embed(y)
        res[key + "_clips"] = m.embedder.clip_embeddings(y).numpy()
        res[key + "_features"] = m.embedder.features(y).numpy()
    shard = extract.extract_shard(man, "imagebind", "huge", 0, 1, out + ".shard.h5", weights=ckpt, progress=False)
    extract.merge_shards([shard], out)
    np.savez(out + ".npz", **res)
    """
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("imagebind-ckpt") / "imagebind_huge.pth"
    torch.save(imagebind_state(), path)
    return path


@pytest.fixture(scope="module")
def result(checkpoint, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("imagebind-run")
    rng = np.random.default_rng(0)
    files = []
    for name, sec, freq in (("one", 1.0, 660.0), ("ten", 10.0, 220.0), ("long", 25.0, 330.0)):
        t = np.arange(int(sec * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * (freq + 20 * t) * t) + 0.02 * rng.standard_normal(len(t)) + 0.01
        files.append(folder / f"{name}.wav")
        sf.write(files[-1], x.astype(np.float32), 16000, subtype="FLOAT")
    files.append(folder / "stereo44k.wav")
    sf.write(files[-1], tone(3.0, 44100, 2, freq=500, seed=3), 44100)
    man = write_manifest(folder, files, label="Music")
    out = folder / "emb.h5"
    run_offline("soundsim", RUN, str(checkpoint), str(man), str(out), *map(str, files[:3]))
    with np.load(str(out) + ".npz") as z:
        res = dict(z)
    res["h5"] = store.read_embeddings(out)
    return res


def test_info():
    inf = models.info("imagebind")
    assert (inf.name, inf.variations, inf.default_variation) == ("imagebind", ("huge",), "huge")
    assert (inf.sample_rate, inf.level, inf.hop, inf.dim, inf.env) == (16000, "clip", None, 1024, "soundsim")
    assert inf.paper == models.PaperInfo("A & I & L & O", "Contrastive alignment", "85M", "1.8M", 1024)
    assert inf.weights == "required" and inf.needs_gpu and inf.min_duration == 0.0
    assert dict(inf.weight_files) == {"huge": "imagebind_huge.pth"} and "imagebind_huge.pth" in inf.weights_hint


def test_clip_sampler_matches_pytorchvideo():
    from soundsim.models.imagebind import clip_bounds

    sr = 16000
    # ConstantClipsPerVideoSampler(2, 3): starts 0, (d - 2) / 2, d - 2; short clips: three times [0, 2 s)
    assert clip_bounds(10 * sr) == [(0, 32000), (64000, 96000), (128000, 160000)]
    assert clip_bounds(25 * sr) == [(0, 32000), (184000, 216000), (368000, 400000)]
    assert clip_bounds(1 * sr) == [(0, 32000)] * 3
    assert clip_bounds(0) == [(0, 32000)] * 3
    # 3.3 s: overlapping clips; 52800 / 16000 - 2 is 1.2999999999999998 in floating point, which
    # pytorchvideo turns into an exact Fraction, so the later clips start one sample early
    assert clip_bounds(52800) == [(0, 32000), (10399, 42399), (20799, 52799)]


def test_clip_level_rows_dims_dtype_and_determinism(result):
    assert int(result["dim"]) == OUT
    for key in ("one", "ten", "long"):
        e = result[key]
        assert e.shape == (1, OUT) and e.dtype == np.float32 and np.isfinite(e).all()
        assert np.array_equal(e, result[key + "_again"])
    assert not np.allclose(result["one"], result["ten"]) and not np.allclose(result["ten"], result["long"])


def test_three_clips_normalised_scaled_and_averaged(result):
    for key in ("one", "ten", "long"):
        clips = result[key + "_clips"]
        assert clips.shape == (3, OUT)
        np.testing.assert_allclose(np.linalg.norm(clips, axis=1), 20.0, rtol=1e-5)  # unit vectors x exp(log 20)
        np.testing.assert_allclose(clips.mean(axis=0, keepdims=True), result[key], rtol=0, atol=1e-5)
    # 1 s: three times the same samples; ImageBind's in-place mean removal makes the later ones differ by
    # float rounding only
    np.testing.assert_allclose(result["one_clips"][0], result["one_clips"][1], rtol=0, atol=1e-4)
    assert not np.allclose(result["long_clips"][0], result["long_clips"][2])


def test_features(result):
    f = result["ten_features"]
    assert f.shape == (3, 1, 128, 204) and f.dtype == np.float32
    # 2 s = 198 fbank frames, zero-padded (fbank domain) to 204, then (0 - (-4.268)) / 9.138
    np.testing.assert_allclose(f[:, :, :, 198:], 4.268 / 9.138, rtol=1e-6)
    assert not np.isclose(f[:, :, :, :198], 4.268 / 9.138).all()
    one = result["one_features"]  # 1 s = 98 frames, then padding
    np.testing.assert_allclose(one[:, :, :, 98:], 4.268 / 9.138, rtol=1e-6)


def test_extraction(result):
    e = result["h5"]
    assert e.fnames == ["one", "ten", "long", "stereo44k"] and e.failed == []
    assert np.diff(e.offsets).tolist() == [1, 1, 1, 1]
    assert e.attrs["level"] == "clip" and e.attrs["model"] == "imagebind" and e.embeddings.shape == (4, OUT)
    assert np.array_equal(e.embeddings[:3], np.concatenate([result["one"], result["ten"], result["long"]]))


def test_errors(checkpoint, tmp_path):
    import torch

    with pytest.raises(ConfigError, match=r"models.imagebind.weights.huge: no weights path given.*imagebind_huge.pth"):
        models.load("imagebind", weights=None)
    with pytest.raises(ConfigError, match=r"models.imagebind.weights.huge: .*nope.pth does not exist"):
        models.load("imagebind", weights=str(tmp_path / "nope.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ConfigError, match=r"junk.pth is not a PyTorch checkpoint"):
        models.load("imagebind", weights=str(junk))
    with pytest.raises(ConfigError, match=r"is not a file"):
        models.load("imagebind", weights=str(tmp_path))
    other = tmp_path / "cavmae.pth"
    torch.save({"module.pos_embed_a": torch.zeros(1, 512, 64)}, other)
    with pytest.raises(ConfigError, match=r"cavmae.pth is not an ImageBind checkpoint with the audio branch"):
        models.load("imagebind", weights=str(other))
    wrong = imagebind_state()
    wrong["modality_preprocessors.audio.pos_embedding_helper.pos_embed"] = torch.zeros(1, 513, WIDTH)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(ConfigError, match=r"513 tokens, expected 1 \+ 228"):
        models.load("imagebind", weights=str(tmp_path / "wrong.pth"))
    broken = imagebind_state()
    del broken["modality_trunks.audio.blocks.1.attn.bias_k"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ConfigError, match=r"missing modality_trunks.audio.blocks.1.attn.bias_k"):
        models.load("imagebind", weights=str(tmp_path / "broken.pth"))
    assert math.isclose(float(imagebind_state()["modality_postprocessors.audio.1.log_logit_scale"]), math.log(20),
                        rel_tol=1e-6)
