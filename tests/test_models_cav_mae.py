"""CAV-MAE (audio branch, plain torch) in the main environment.

Small random checkpoints in the official format (a DataParallel state dict:
every key prefixed ``module.``, with the visual branch and either the
classification head of ``as_46.6.pth`` or the MAE decoder of
``audio_model.21.pth``), loaded through ``soundsim.models.load`` with networking
disabled, embedding real WAV files written here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundsim import models, store
from soundsim.errors import ConfigError

from conftest import run_offline, tone, write_manifest

pytestmark = pytest.mark.model_env("soundsim")

WIDTH = 128  # 2 heads of 64, as the real model's 12 heads of 64 at width 768


def cavmae_state(variation: str, dim: int = WIDTH, depth_a: int = 2, depth_u: int = 1, n_patches: int = 512,
                 seed: int = 0) -> dict:
    """A random state dict with the official key names (``CAVMAEFT`` for as_46.6,
    ``CAVMAE`` with decoder for audio_model.21), as ``torch.nn.DataParallel`` saves it."""
    import torch

    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    sd: dict = {}

    def block(p: str, d: int) -> None:
        for n in ("norm1", "norm1_a", "norm1_v", "norm2", "norm2_a", "norm2_v"):
            sd[f"{p}.{n}.weight"], sd[f"{p}.{n}.bias"] = 1 + r(d), r(d)
        sd[f"{p}.attn.qkv.weight"], sd[f"{p}.attn.qkv.bias"] = r(3 * d, d), r(3 * d)
        sd[f"{p}.attn.proj.weight"], sd[f"{p}.attn.proj.bias"] = r(d, d), r(d)
        sd[f"{p}.mlp.fc1.weight"], sd[f"{p}.mlp.fc1.bias"] = r(4 * d, d), r(4 * d)
        sd[f"{p}.mlp.fc2.weight"], sd[f"{p}.mlp.fc2.bias"] = r(d, 4 * d), r(d)

    sd["modality_a"], sd["modality_v"] = r(1, 1, dim), r(1, 1, dim)
    sd["pos_embed_a"], sd["pos_embed_v"] = r(1, n_patches, dim), r(1, 196, dim)
    sd["patch_embed_a.proj.weight"], sd["patch_embed_a.proj.bias"] = r(dim, 1, 16, 16), r(dim)
    sd["patch_embed_v.proj.weight"], sd["patch_embed_v.proj.bias"] = r(dim, 3, 16, 16), r(dim)
    for i in range(depth_a):
        block(f"blocks_a.{i}", dim)
        block(f"blocks_v.{i}", dim)
    for i in range(depth_u):
        block(f"blocks_u.{i}", dim)
    for n in ("norm_a", "norm_v", "norm"):
        sd[f"{n}.weight"], sd[f"{n}.bias"] = 1 + r(dim), r(dim)
    if variation == "as_46.6":
        sd["mlp_head.0.weight"], sd["mlp_head.0.bias"] = 1 + r(dim), r(dim)
        sd["mlp_head.1.weight"], sd["mlp_head.1.bias"] = r(527, dim), r(527)
    else:
        dd = 64
        sd["decoder_embed.weight"], sd["decoder_embed.bias"] = r(dd, dim), r(dd)
        sd["mask_token"], sd["decoder_modality_a"], sd["decoder_modality_v"] = r(1, 1, dd), r(1, 1, dd), r(1, 1, dd)
        sd["decoder_pos_embed_a"], sd["decoder_pos_embed_v"] = r(1, n_patches, dd), r(1, 196, dd)
        block("decoder_blocks.0", dd)
        sd["decoder_norm.weight"], sd["decoder_norm.bias"] = 1 + r(dd), r(dd)
        sd["decoder_pred_a.weight"], sd["decoder_pred_a.bias"] = r(256, dd), r(256)
        sd["decoder_pred_v.weight"], sd["decoder_pred_v.bias"] = r(768, dd), r(768)
    return {"module." + k: v for k, v in sd.items()}


RUN = textwrap.dedent(
    """
    import sys
    import numpy as np
    from soundsim import audio, extract, models

    ft, pre, man, out = sys.argv[1:5]
    files = sys.argv[5:]
    res = {}
    m = models.load("cav-mae", "as_46.6", weights=ft)
    res["dim"] = np.array(m.embedder.dim)
    for f in files:
        y, _ = audio.load(f, 44100)
        key = f.rsplit("/", 1)[-1].split(".")[0]
        res[key] = m.embed(y)
        res[key + "_again"] = m.embed(y)
        res[key + "_clip"] = extract.embed_clip(m, f)
    y, _ = audio.load(files[2], 44100)  # 25 s: change everything after 10.24 s (1023 * 441 + 1102 samples)
    y2 = y.copy()
    y2[452245:] = np.random.default_rng(5).standard_normal(len(y) - 452245).astype(np.float32) * 0.3
    res["tail_changed"] = m.embed(y2)
    native = models.load("cav-mae", "as_46.6", weights=ft, options={"native_rate": True})
    res["native"], res["native_again"] = native.embed(y), native.embed(y)
    res["tokens"] = m.embedder.tokens(y).numpy()
    res["pre"] = models.load("cav-mae", "audio_model.21", weights=pre).embed(y)
    # issue 12: a 75 s clip with native_rate is resampled in blocks (head + running mean), = the one-shot path
    from soundsim.models import cav_mae
    y75 = np.concatenate([y, y, y])[: 75 * 44100] + np.float32(0.05)
    res["native75"] = native.embed(y75)
    cav_mae.EXACT_RESAMPLE_SECONDS = 10**9
    res["native75_one_shot"] = native.embed(y75)
    shard = extract.extract_shard(man, "cav-mae", "as_46.6", 0, 1, out + ".shard.h5", weights=ft, progress=False)
    extract.merge_shards([shard], out)
    np.savez(out + ".npz", **res)
    """
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    import torch

    folder = tmp_path_factory.mktemp("cavmae-ckpt")
    out = {"as_46.6": folder / "as_46.6.pth", "audio_model.21": folder / "audio_model.21.pth"}
    torch.save(cavmae_state("as_46.6", seed=0), out["as_46.6"])
    torch.save(cavmae_state("audio_model.21", seed=1), out["audio_model.21"])
    return out


@pytest.fixture(scope="module")
def result(checkpoints, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("cavmae-run")
    rng = np.random.default_rng(0)
    files = []
    for name, sec, freq in (("one", 1.0, 660.0), ("ten", 10.0, 220.0), ("long", 25.0, 330.0)):
        t = np.arange(int(sec * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * (freq + 20 * t) * t) + 0.02 * rng.standard_normal(len(t))
        files.append(folder / f"{name}.wav")
        sf.write(files[-1], x.astype(np.float32), 16000, subtype="FLOAT")
    files.append(folder / "stereo44k.wav")
    sf.write(files[-1], tone(3.0, 44100, 2, freq=500, seed=3), 44100)
    man = write_manifest(folder, files, label="Music")
    out = folder / "emb.h5"
    run_offline("soundsim", RUN, str(checkpoints["as_46.6"]), str(checkpoints["audio_model.21"]), str(man), str(out),
                *map(str, files[:3]))
    with np.load(str(out) + ".npz") as z:
        res = dict(z)
    res["h5"] = store.read_embeddings(out)
    return res


def test_info():
    inf = models.info("cav-mae")
    assert (inf.name, inf.variations, inf.default_variation) == ("cav-mae", ("as_46.6", "audio_model.21"), "as_46.6")
    assert (inf.sample_rate, inf.level, inf.hop, inf.dim, inf.env) == (44100, "clip", None, 768, "soundsim")
    assert inf.paper == models.PaperInfo("A & I", "Audiovisual correspondence", "85M", "1.8M", 768)
    assert inf.weights == "required" and inf.needs_gpu and inf.min_duration == 0.0
    assert dict(inf.weight_files) == {"as_46.6": "as_46.6.pth", "audio_model.21": "audio_model.21.pth"}
    assert "as_46.6.pth" in inf.weights_hint and "audio_model.21.pth" in inf.weights_hint
    assert models.default_weights_path(inf, "as_46.6", "/w") == Path("/w/as_46.6.pth")


def test_module_import_is_light():
    code = "import sys, soundsim.models.cav_mae, soundsim.models.imagebind; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_clip_level_rows_dims_dtype_and_determinism(result):
    assert int(result["dim"]) == WIDTH  # read from the checkpoint (768 for the official files)
    for key in ("one", "ten", "long"):
        e = result[key]
        assert e.shape == (1, WIDTH) and e.dtype == np.float32 and np.isfinite(e).all()
        assert np.array_equal(e, result[key + "_again"])
        assert np.array_equal(e, result[key + "_clip"])  # extraction adds nothing (min_duration 0)
    assert not np.allclose(result["one"], result["ten"]) and not np.allclose(result["ten"], result["long"])
    assert result["pre"].shape == (1, WIDTH) and not np.allclose(result["pre"], result["long"])


def test_mean_of_the_512_audio_tokens(result):
    tokens = result["tokens"]
    assert tokens.shape == (1, 512, WIDTH)  # 8 x 64 patches of 16 x 16 on 128 bins x 1024 frames
    np.testing.assert_allclose(tokens.mean(axis=1), result["long"], rtol=0, atol=1e-5)  # numpy vs torch sums


def test_only_the_first_10_24_seconds_count(result):
    # the fbank is cut to 1024 frames; the changed tail only moves the clip's mean, which the
    # per-frame DC removal of the Kaldi fbank cancels (up to float rounding)
    np.testing.assert_allclose(result["tail_changed"], result["long"], rtol=0, atol=1e-4)


def test_native_rate_option(result):
    """native_rate: the model's own 16 kHz input instead of the paper's 44.1 kHz fbank."""
    assert result["native"].shape == (1, WIDTH) and result["native"].dtype == np.float32
    assert np.array_equal(result["native"], result["native_again"])
    assert not np.allclose(result["native"], result["long"], atol=1e-3)


def test_extraction(result):
    e = result["h5"]
    assert e.fnames == ["one", "ten", "long", "stereo44k"] and e.failed == []
    assert np.diff(e.offsets).tolist() == [1, 1, 1, 1]
    assert e.attrs["level"] == "clip" and e.attrs["model"] == "cav-mae" and e.embeddings.shape == (4, WIDTH)
    assert np.array_equal(e.embeddings[:3], np.concatenate([result["one"], result["ten"], result["long"]]))


def test_errors(checkpoints, tmp_path):
    with pytest.raises(ConfigError, match=r"models.cav-mae.weights.as_46.6: no weights path given.*as_46.6.pth"):
        models.load("cav-mae", "as_46.6", weights=None)
    with pytest.raises(ConfigError, match=r"models.cav-mae.weights.as_46.6: .*nope.pth does not exist"):
        models.load("cav-mae", weights=str(tmp_path / "nope.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ConfigError, match=r"junk.pth is not a PyTorch checkpoint"):
        models.load("cav-mae", weights=str(junk))
    with pytest.raises(ConfigError, match=r"not the fine-tuned as_46.6.pth.*use variation audio_model.21"):
        models.load("cav-mae", "as_46.6", weights=str(checkpoints["audio_model.21"]))
    with pytest.raises(ConfigError, match=r"not the pre-trained audio_model.21.pth.*use variation as_46.6"):
        models.load("cav-mae", "audio_model.21", weights=str(checkpoints["as_46.6"]))
    import torch

    other = tmp_path / "other.pth"
    torch.save({"modality_trunks.audio.blocks.0.attn.in_proj_weight": torch.zeros(3, 1)}, other)
    with pytest.raises(ConfigError, match=r"other.pth is not a CAV-MAE checkpoint"):
        models.load("cav-mae", weights=str(other))
    broken = cavmae_state("as_46.6")
    del broken["module.blocks_u.0.norm1_a.weight"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ConfigError, match=r"does not match the architecture: missing blocks_u.0.norm1_a.weight"):
        models.load("cav-mae", weights=str(tmp_path / "broken.pth"))
    with pytest.raises(ConfigError, match=r"^models.cav-mae.options.layer: unknown option; allowed options: "
                       r"native_rate$"):
        models.load("cav-mae", weights=str(checkpoints["as_46.6"]), options={"layer": "x"})
    with pytest.raises(ConfigError, match=r"^models.cav-mae.options.native_rate: 'yes' is not true or false; "
                       r"allowed values: true or false$"):
        models.load("cav-mae", weights=str(checkpoints["as_46.6"]), options={"native_rate": "yes"})


def test_native_rate_long_clip_resampled_in_blocks(result):
    """Issue 12: over 60 s, native_rate resamples in blocks (the first 10.24 s kept, the mean
    accumulated in float64): the one-shot resampling's embedding up to float rounding."""
    np.testing.assert_allclose(result["native75"], result["native75_one_shot"], rtol=0, atol=1e-5)
