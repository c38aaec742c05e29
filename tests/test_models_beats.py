"""BEATs (soundsim's own implementation, main environment) on small random checkpoints.

The checkpoints have the real architecture and the official file format
(``torch.save({'cfg': ..., 'model': state_dict})`` with upstream's parameter
names, checked against the list below) but few, narrow layers: 2 layers, 32
dims, 4 heads, deep norm, gated relative position bias, weight-normalised
convolutional position embedding, 16 x 16 patches, as the official cfg; one of
them fine-tuned style (an AudioSet ``predictor`` head and ``label_dict``). They
load through ``soundsim.models.load("beats", ..., weights=path)`` inside
``run_offline`` (no network) and embed real WAV files of 1 s, 10 s and 25 s.

Numerics against upstream (microsoft/unilm ``beats/``): checked once outside
the tests, max abs difference 0.0 (see the module docstring of
``soundsim.models.beats``); here the tests check the properties.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundsim import models, store

from conftest import extract_offline, run_offline, write_manifest

pytestmark = pytest.mark.model_env("soundsim")

SR = 16000
DURATIONS = {"one": 1.0, "ten": 10.0, "long": 25.0, "short": 0.1}
ROWS = {"one": 6, "ten": 62, "long": 156, "short": 1}  # (1 + (n - 400) // 160) // 16; 0.1 s padded to 0.175 s

# Upstream's parameter names for a 2-layer BEATs with relative position bias and gating
# (beats/BEATs.py, beats/backbone.py: weight_norm'ed pos_conv, one relative_attention_bias per layer entry).
LAYER_KEYS = [f"self_attn.{p}.{w}" for p in ("k_proj", "v_proj", "q_proj", "out_proj") for w in ("weight", "bias")]
LAYER_KEYS += ["self_attn.relative_attention_bias.weight", "self_attn.grep_linear.weight",
               "self_attn.grep_linear.bias", "self_attn.grep_a"]
LAYER_KEYS += [f"{m}.{w}" for m in ("self_attn_layer_norm", "fc1", "fc2", "final_layer_norm")
               for w in ("weight", "bias")]
OFFICIAL_KEYS = sorted(
    ["post_extract_proj.weight", "post_extract_proj.bias", "patch_embedding.weight", "layer_norm.weight",
     "layer_norm.bias", "encoder.pos_conv.0.weight_g", "encoder.pos_conv.0.weight_v", "encoder.pos_conv.0.bias",
     "encoder.layer_norm.weight", "encoder.layer_norm.bias"]
    + [f"encoder.layers.{i}.{k}" for i in range(2) for k in LAYER_KEYS]
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    from soundsim import audio, extract, models
    from soundsim.errors import ConfigError
    from soundsim.models import _beats_net

    folder = sys.argv[1]
    files = json.loads(sys.argv[2])
    expected_keys = json.loads(sys.argv[3])
    CFG = dict(input_patch_size=16, embed_dim=24, conv_bias=False, encoder_layers=2, encoder_embed_dim=32,
               encoder_ffn_embed_dim=48, encoder_attention_heads=4, activation_fn="gelu",
               layer_wise_gradient_decay_ratio=0.6, layer_norm_first=False, deep_norm=True, dropout=0.0,
               attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.05, dropout_input=0.0,
               conv_pos=16, conv_pos_groups=4, relative_position_embedding=True, num_buckets=32, max_distance=80,
               gru_rel_pos=True, finetuned_model=False, predictor_dropout=0.0, predictor_class=527)

    def checkpoint(path, seed, **over):
        cfg = dict(CFG, **over)
        torch.manual_seed(seed)
        sd = _beats_net.BEATs(_beats_net.BEATsConfig.from_dict(cfg)).state_dict()
        for k, v in sd.items():  # random weights (the shared relative-position embedding gets one value)
            v.copy_(torch.randn_like(v) * (0.5 if v.ndim > 1 else 0.1) + (1.0 if k.endswith("norm.weight") else 0.0))
        ckpt = {"cfg": cfg, "model": sd}
        if cfg["finetuned_model"]:
            ckpt["label_dict"] = {i: f"/m/{i:05d}" for i in range(cfg["predictor_class"])}
        torch.save(ckpt, path)
        return sorted(sd)

    res, info = {}, {}
    pre, ft = folder + "/BEATs_iter3_plus_AS2M.pt", folder + "/BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
    info["pre_keys"] = checkpoint(pre, 0)
    info["ft_keys"] = checkpoint(ft, 1, finetuned_model=True)
    assert info["pre_keys"] == expected_keys, sorted(set(info["pre_keys"]) ^ set(expected_keys))
    m = models.load("beats", weights=pre)
    info["dim"] = m.embedder.dim
    for name, path in files.items():
        res[name] = extract.embed_clip(m, path)
        res[name + "_again"] = extract.embed_clip(m, path)
    res["fresh_ten"] = extract.embed_clip(models.load("beats", "iter3", weights=pre), files["ten"])
    res["ft_ten"] = extract.embed_clip(models.load("beats", weights=ft), files["ten"])

    # chunk_seconds: blocks of whole patches, each embedded alone
    x, _ = audio.load(files["long"], 16000)
    res["chunk_long"] = models.load("beats", weights=pre, options={"chunk_seconds": 4}).embed(x)
    res["head_long"] = m.embed(x[: 400 + 399 * 160])  # exactly the first chunk's 400 fbank frames

    # the shared relative-position embedding stored for layer 0 only loads too
    ck = torch.load(pre, weights_only=True)
    del ck["model"]["encoder.layers.1.self_attn.relative_attention_bias.weight"]
    torch.save(ck, folder + "/only0.pt")
    res["only0_ten"] = extract.embed_clip(models.load("beats", weights=folder + "/only0.pt"), files["ten"])

    # wrong checkpoints: each must be a ConfigError naming the path
    torch.save({"cfg": dict(CFG, encoder_layers=3), "model": torch.load(pre, weights_only=True)["model"]},
               folder + "/three_layers.pt")
    torch.save({"cfg": dict(CFG, encoder_embed_dim=64), "model": torch.load(pre, weights_only=True)["model"]},
               folder + "/wider.pt")
    torch.save(torch.load(pre, weights_only=True)["model"], folder + "/bare_state_dict.pt")
    torch.save({"cfg": dict(CFG, input_patch_size=8), "model": {}}, folder + "/patch8.pt")
    open(folder + "/garbage.pt", "wb").write(b"not a checkpoint at all")
    errors = {}
    for name in ("missing.pt", "three_layers.pt", "wider.pt", "bare_state_dict.pt", "patch8.pt", "garbage.pt", None):
        try:
            models.load("beats", weights=None if name is None else folder + "/" + name)
            errors[str(name)] = "loaded"
        except ConfigError as e:
            errors[str(name)] = str(e)
    for bad in (0.1, "soon"):
        try:
            models.load("beats", weights=pre, options={"chunk_seconds": bad})
            errors[f"chunk_{bad}"] = "loaded"
        except ConfigError as e:
            errors[f"chunk_{bad}"] = str(e)
    info["errors"] = errors

    # long clips (issue 12): up to 30 s one pass (as before), longer ones in 30 s blocks of whole patches
    one_pass = models.load("beats", weights=pre, options={"chunk_seconds": None})
    res["long_one_pass"] = one_pass.embed(x)
    x45 = np.concatenate([x, audio.load(files["ten"], 16000)[0], x[:10 * 16000]])  # 45 s: 281 patches
    res["x45"] = m.embed(x45)
    res["x45_one_pass"] = one_pass.embed(x45)
    block = (187 * 16 - 1) * 160 + 400  # samples of one 30 s block (187 patches)
    res["x45_head"] = m.embed(x45[:block])
    res["x45_tail"] = m.embed(x45[94 * 2560 : 94 * 2560 + block])  # the last block: patches 94 .. 280
    feats = m.embedder.features(x45)
    res["fbank_block_diff"] = np.array(float((m.embedder.features(x45, 1000, 800) - feats[:, 1000:1800]).abs().max()))
    np.savez(folder + "/res.npz", **res)
    json.dump(info, open(folder + "/info.json", "w"))
    """
)



def clip(seconds: float, seed: int) -> np.ndarray:
    """A gliding tone with a changing level plus noise: the rows of a clip differ."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * (220 + 30 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.4 * t))
    return (x + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("beats-audio")
    out = {}
    for i, (name, sec) in enumerate(DURATIONS.items()):
        out[name] = str(folder / f"{name}.wav")
        sf.write(out[name], clip(sec, i), SR, subtype="PCM_16")
    return out


@pytest.fixture(scope="module")
def run(files, tmp_path_factory) -> tuple[dict[str, np.ndarray], dict, Path]:
    folder = tmp_path_factory.mktemp("beats-run")
    run_offline("soundsim", SCRIPT, str(folder), json.dumps(files), json.dumps(OFFICIAL_KEYS))
    with np.load(folder / "res.npz") as z:
        res = dict(z)
    return res, json.loads((folder / "info.json").read_text()), folder


def test_info():
    inf = models.info("beats")
    assert (inf.name, inf.variations, inf.default_variation) == (
        "beats", ("iter3", "iter3_plus_AS20K", "iter3_plus_AS2M"), "iter3_plus_AS2M")
    assert (inf.sample_rate, inf.level, inf.env, inf.weights, inf.dim) == (16000, "frame", "soundsim", "required", 768)
    assert inf.hop == pytest.approx(0.16) and inf.min_duration == pytest.approx(0.175)
    assert inf.paper == models.PaperInfo("A", "Classification", "90M", "1.8M", 768)
    assert dict(inf.weight_files) == {"iter3": "BEATs_iter3.pt", "iter3_plus_AS20K": "BEATs_iter3_plus_AS20K.pt",
                                      "iter3_plus_AS2M": "BEATs_iter3_plus_AS2M.pt"}
    assert inf.needs_gpu and "microsoft/unilm" in inf.weights_hint


def test_module_import_is_light_and_row_count():
    """soundsim.models imports every model module: no torch at import time."""
    code = ("import sys, soundsim.models, soundsim.models.beats as b; "
            "assert 'torch' not in sys.modules, 'heavy import'; "
            "assert [b.n_rows(n) for n in (399, 2799, 2800, 5359, 5360, 16000, 160000, 400000)] "
            "== [0, 0, 1, 1, 2, 6, 62, 156]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_official_parameter_names(run):
    _, info, _ = run
    assert info["pre_keys"] == OFFICIAL_KEYS
    assert info["ft_keys"] == sorted(OFFICIAL_KEYS + ["predictor.weight", "predictor.bias"])


def test_rows_per_duration_dims_and_dtype(run):
    res, info, _ = run
    assert info["dim"] == 32  # the checkpoint's encoder_embed_dim (768 for the official ones)
    for name, rows in ROWS.items():
        e = res[name]
        assert e.shape == (rows, 32) and e.dtype == np.float32 and np.isfinite(e).all(), name
    assert not np.allclose(res["ten"][0], res["ten"][1])


def test_deterministic(run):
    res, _, _ = run
    for name in DURATIONS:
        assert np.array_equal(res[name], res[name + "_again"]), name
    assert np.array_equal(res["fresh_ten"], res["ten"])  # another load (another variation name), same file
    assert np.array_equal(res["only0_ten"], res["ten"])  # relative-position embedding stored for layer 0 only


def test_finetuned_checkpoint_gives_encoder_output(run):
    res, _, _ = run
    ft = res["ft_ten"]
    assert ft.shape == (62, 32) and not np.allclose(ft, res["ten"])  # encoder rows, not 527 class probabilities


def test_chunk_seconds(run):
    res, _, _ = run
    chunked = res["chunk_long"]
    assert chunked.shape == res["long"].shape  # same rows: 4 s -> blocks of 25 patches
    np.testing.assert_allclose(chunked[:25], res["head_long"], rtol=0, atol=1e-5)
    assert not np.allclose(chunked[25:], res["long"][25:], atol=1e-4)  # later blocks see less context


def test_errors_name_the_path_and_the_problem(run):
    _, info, folder = run
    err = info["errors"]
    key = "models.beats.weights.iter3_plus_AS2M: "
    assert err["missing.pt"].startswith(key) and "missing.pt does not exist" in err["missing.pt"]
    assert "BEATs_iter3_plus_AS2M.pt" in err["missing.pt"]  # the hint names the official file
    for name in ("three_layers.pt", "wider.pt"):
        assert err[name].startswith(key) and str(folder / name) in err[name]
        assert "does not fit the BEATs network of its cfg" in err[name]
    assert "missing 19" in err["three_layers.pt"]  # layer 2 (its relative-position embedding is shared)
    assert "wrong shape" in err["wider.pt"]
    assert "is not an official BEATs checkpoint (expected a dict with 'cfg' and 'model'" in err["bare_state_dict.pt"]
    assert "input_patch_size 8" in err["patch8.pt"]
    assert "is not a PyTorch checkpoint" in err["garbage.pt"]
    assert "no weights path given" in err["None"]
    assert err["chunk_0.1"] == ("models.beats.options.chunk_seconds: 0.1 is out of range; allowed values: "
                                "a number >= 0.16, or null")
    assert err["chunk_soon"] == ("models.beats.options.chunk_seconds: 'soon' is not a number; allowed values: "
                                 "a number >= 0.16, or null")


def test_extraction_through_the_main_env(files, run, tmp_path):
    """extract_shard + merge_shards: rows per clip, hop, and the values of the other process."""
    res, _, folder = run
    names = ["one", "ten", "short"]
    man = write_manifest(tmp_path, [Path(files[n]) for n in names], label="Dog")
    out = tmp_path / "beats.h5"
    extract_offline("soundsim", man, "beats", "iter3_plus_AS2M", out, folder / "BEATs_iter3_plus_AS2M.pt")
    e = store.read_embeddings(out)
    assert e.fnames == names and e.failed == []
    assert np.diff(e.offsets).tolist() == [ROWS[n] for n in names]
    assert e.attrs["level"] == "frame" and float(e.attrs["hop"]) == pytest.approx(0.16)
    assert np.array_equal(e.embeddings, np.concatenate([res[n] for n in names]))


def test_long_clips_in_30_second_blocks(run):
    """Issue 12: clips up to 30 s as before (one pass, bit for bit); a 45 s clip in two blocks,
    the second ending at the clip's end (its rows after the first block's end kept)."""
    res, _, _ = run
    assert np.array_equal(res["long"], res["long_one_pass"])  # 25 s: the default is the single pass
    assert res["x45"].shape == res["x45_one_pass"].shape == (281, 32)
    np.testing.assert_allclose(res["x45"][:187], res["x45_head"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(res["x45"][187:], res["x45_tail"][93:], rtol=0, atol=1e-5)
    assert not np.allclose(res["x45"][187:], res["x45_one_pass"][187:], atol=1e-4)
    assert float(res["fbank_block_diff"]) <= 1e-6  # a block's fbank = the clip's fbank rows
