"""AudioCLIP (audio head, ESResNeXt-fbsp): random checkpoints in the official format, loaded offline.

The official files (AudioCLIP-Full-Training.pt, AudioCLIP-Partial-Training.pt) are state dicts
of the whole AudioCLIP model; the audio head's entries are 'audio.*'. Here a small ESResNeXt-fbsp
(one bottleneck per stage, the real widths, cardinality 32 and fbsp frontend) with random weights
is saved the same way, next to CLIP-like entries that must be ignored. The numerical agreement
with the upstream code is recorded in soundsim/models/audioclip.py's docstring.
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

from conftest import chirp, extract_offline, run_offline, write_manifest

pytestmark = pytest.mark.model_env("soundsim")

SR = 44100

RUN = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from soundsim import audio, extract, models
    from soundsim.errors import ConfigError
    from soundsim.models import _audioclip_net as net

    SR = 44100
    folder, out = sys.argv[1], sys.argv[2]
    one, ten, long_ = sys.argv[3:6]
    res = {}

    # the real architecture's audio keys, as upstream names them (370 entries, checked against
    # AndreyGuzhov/AudioCLIP model/esresnet): a few names and shapes
    full = net.ESResNeXtFBSP().state_dict()
    res["full_keys"] = np.array(len(full))
    res["full_params"] = np.array(sum(v.numel() for k, v in full.items() if "running" not in k
                                      and "num_batches" not in k and k != "window"))
    expect = {"fbsp.bias": (0,), "fbsp.m": (1025,), "window": (1654,), "conv1.weight": (64, 3, 7, 7),
              "layer1.0.conv2.weight": (128, 4, 3, 3), "layer3.5.conv3.weight": (1024, 512, 1, 1),
              "layer4.0.downsample.0.weight": (2048, 1024, 1, 1), "att5.conv_depth.weight": (2048, 1, 3, 5),
              "att1.conv_point.weight": (256, 64, 1, 1), "fc.weight": (1024, 2048)}
    res["full_shapes_ok"] = np.array(all(tuple(full[k].shape) == s for k, s in expect.items()))
    del full

    def checkpoint(path, seed, drop=(), **arch):
        torch.manual_seed(seed)
        m = net.ESResNeXtFBSP(**{"layers": (1, 1, 1, 1), **arch})
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for k, t in m.state_dict().items():
                if k.endswith("running_mean"):
                    t.copy_(0.1 * torch.randn(t.shape, generator=g))
                elif k.endswith("running_var"):
                    t.copy_(0.5 + torch.rand(t.shape, generator=g))
                elif k.endswith("bias") and t.numel():
                    t.copy_(0.1 * torch.randn(t.shape, generator=g))
            m.fbsp.m.copy_(0.5 + 1.5 * torch.rand(m.fbsp.m.shape, generator=g))
            m.fbsp.fb.copy_(0.5 + 1.5 * torch.rand(m.fbsp.fb.shape, generator=g))
        sd = {"audio." + k: v for k, v in m.state_dict().items() if k not in drop}
        # CLIP's image and text heads and the logit scales are in the official files too: ignored
        sd.update({"visual.conv1.weight": torch.randn(8, 3, 7, 7), "transformer.resblocks.0.ln_1.weight":
                   torch.ones(8), "token_embedding.weight": torch.randn(10, 8), "logit_scale": torch.tensor(4.6),
                   "logit_scale_ai": torch.tensor(4.6), "logit_scale_at": torch.tensor(4.6)})
        torch.save(sd, path)
        return path

    full_ckpt = checkpoint(folder + "/AudioCLIP-Full-Training.pt", 0)
    part_ckpt = checkpoint(folder + "/AudioCLIP-Partial-Training.pt", 1)

    m = models.load("audioclip", weights=full_ckpt)
    y1, _ = audio.load(one, SR)
    y10, _ = audio.load(ten, SR)
    y25, _ = audio.load(long_, SR)
    res["e1"], res["e10"], res["e25"] = m.embed(y1), m.embed(y10), m.embed(y25)
    res["e10_again"] = m.embed(y10)
    res["e10_reloaded"] = models.load("audioclip", "full-training", weights=full_ckpt).embed(y10)
    res["partial"] = models.load("audioclip", "partial-training", weights=part_ckpt).embed(y10)
    res["minmax"] = models.load("audioclip", weights=full_ckpt, options={"scaling": "minmax"}).embed(y1)
    res["int16"] = models.load("audioclip", weights=full_ckpt, options={"scaling": "int16"}).embed(y1)
    res["minmax_as_int16"] = m.embed((y1 - y1.min()) * (65535.0 / (y1.max() - y1.min())) - 32768.0)
    cut = models.load("audioclip", weights=full_ckpt, options={"max_seconds": 5})
    res["cut10"], res["first5"] = cut.embed(y10), m.embed(y10[: 5 * SR])
    res["short"] = extract.embed_clip(m, sys.argv[6])  # 0.4 s, 48 kHz stereo: padded to 1 s by extraction

    errors = {}
    def err(key, *args, **kw):
        try:
            models.load("audioclip", *args, **kw)
        except ConfigError as e:
            errors[key] = str(e)
        else:
            errors[key] = "no error"
    err("missing", weights=folder + "/nope.pt")
    err("none", weights=None)
    open(folder + "/junk.pt", "wb").write(np.random.default_rng(0).bytes(5000))
    err("junk", weights=folder + "/junk.pt")
    head_alone = {k[len("audio."):]: v for k, v in torch.load(full_ckpt).items() if k.startswith("audio.")}
    torch.save(head_alone, folder + "/ESRNXFBSP.pt")
    err("head_alone", weights=folder + "/ESRNXFBSP.pt")
    torch.save({"visual.conv1.weight": torch.zeros(3)}, folder + "/clip_only.pt")
    err("clip_only", weights=folder + "/clip_only.pt")
    err("missing_key", weights=checkpoint(folder + "/missing_key.pt", 2, drop=("att3.bn.weight",)))
    err("wrong_dim", weights=checkpoint(folder + "/wrong_dim.pt", 3, num_classes=512))
    err("wrong_frontend", weights=checkpoint(folder + "/wrong_frontend.pt", 4, n_fft=1024, win_length=1024))
    no_window = checkpoint(folder + "/no_window.pt", 0, drop=("window", "fbsp.bias"))  # both rebuilt
    res["no_window"] = models.load("audioclip", weights=no_window).embed(y1)
    try:
        models.load("audioclip", weights=full_ckpt, options={"scaling": "peak"})
    except ConfigError as e:
        errors["bad_scaling"] = str(e)
    for k, v in errors.items():
        res["err_" + k] = np.array(v)
    np.savez(out, **res)
    """
)




@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audioclip-audio")
    files = {}
    for name, secs, seed in (("one", 1.0, 1), ("ten", 10.0, 2), ("long", 25.0, 3)):
        files[name] = folder / f"{name}.wav"
        sf.write(files[name], chirp(secs, SR, seed), SR, subtype="PCM_16")
    files["short"] = folder / "short48k.wav"
    sf.write(files["short"], np.repeat(chirp(0.4, 48000, 4)[:, None], 2, axis=1), 48000)
    return files


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audioclip-ckpt")


@pytest.fixture(scope="module")
def res(audio_files, ckpt_dir) -> dict[str, np.ndarray]:
    out = ckpt_dir / "res.npz"
    run_offline("soundsim", RUN, str(ckpt_dir), str(out), str(audio_files["one"]), str(audio_files["ten"]),
                str(audio_files["long"]), str(audio_files["short"]))
    with np.load(out) as z:
        return dict(z)


def test_info():
    inf = models.info("audioclip")
    assert (inf.name, inf.variations, inf.default_variation) == (
        "audioclip", ("full-training", "partial-training"), "full-training")
    assert (inf.sample_rate, inf.level, inf.hop, inf.dim, inf.env) == (44100, "clip", None, 1024, "soundsim")
    assert inf.weights == "required" and inf.min_duration == 1.0
    assert inf.weight_files == {"full-training": "AudioCLIP-Full-Training.pt",
                                "partial-training": "AudioCLIP-Partial-Training.pt"}
    assert "AndreyGuzhov/AudioCLIP/releases" in inf.weights_hint
    p = inf.paper
    assert (p.modality, p.objective, p.params, p.data_size, p.dims) == (
        "A & I & L", "Contrastive alignment", "30M", "1.8M", 1024)


def test_module_import_is_light():
    code = ("import sys, soundsim.models.audioclip, soundsim.models.wav2clip; "
            "assert not {'torch', 'scipy', 'soxr'} & set(sys.modules), 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_real_architecture_key_names(res):
    """The full ResNeXt-50 32x4d head has the upstream key names and shapes (370 entries, ~32M parameters)."""
    assert int(res["full_keys"]) == 370 and bool(res["full_shapes_ok"])
    assert 31e6 < int(res["full_params"]) < 33e6


def test_clip_level_rows_dims_dtype_and_unit_norm(res):
    for key in ("e1", "e10", "e25", "partial", "minmax", "int16", "short", "cut10"):
        e = res[key]
        assert e.shape == (1, 1024) and e.dtype == np.float32 and np.isfinite(e).all(), key
        assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5), key  # AudioCLIP's L2 normalisation
    assert not np.allclose(res["e1"], res["e10"], atol=1e-4) and not np.allclose(res["e10"], res["e25"], atol=1e-4)


def test_deterministic(res):
    assert np.array_equal(res["e10"], res["e10_again"])
    assert np.array_equal(res["e10"], res["e10_reloaded"])


def test_variations_and_options(res):
    assert not np.allclose(res["partial"], res["e10"], atol=1e-4)  # the other checkpoint was used
    # scaling: the paper's unscaled input differs from AudioCLIP's own min-max and int16 scalings ...
    assert not np.allclose(res["minmax"], res["e1"], atol=1e-4) and not np.allclose(res["int16"], res["e1"], atol=1e-4)
    # ... and 'minmax' is the unscaled path on the min-max-scaled waveform
    np.testing.assert_allclose(res["minmax"], res["minmax_as_int16"], rtol=0, atol=1e-6)
    # max_seconds: only the start of the clip is embedded
    assert np.array_equal(res["cut10"], res["first5"]) and not np.allclose(res["cut10"], res["e10"], atol=1e-4)
    # a checkpoint without the window buffer (rebuilt as upstream builds it) and the empty fbsp bias
    assert np.array_equal(res["no_window"], res["e1"])


def test_errors_name_the_path_and_the_problem(res):
    def e(key: str) -> str:
        return str(res["err_" + key])

    assert e("missing").startswith("models.audioclip.weights.full-training: ")
    assert "nope.pt: no such file" in e("missing")
    assert "AudioCLIP-Full-Training.pt" in e("missing")
    assert "no weights path given" in e("none")
    assert "junk.pt: not a PyTorch checkpoint" in e("junk")
    assert "ESRNXFBSP.pt: holds an ESResNeXt-fbsp audio model alone" in e("head_alone")
    assert "clip_only.pt: has no AudioCLIP audio head" in e("clip_only")
    assert "missing_key.pt: does not fit" in e("missing_key") and "att3.bn.weight" in e("missing_key")
    assert "wrong_dim.pt: audio embedding of 512 dims" in e("wrong_dim")
    assert "wrong_frontend.pt: fbsp frontend with n_fft 1024" in e("wrong_frontend")
    assert "models.audioclip.options.scaling: 'peak'" in e("bad_scaling")


def test_extraction(res, audio_files, ckpt_dir, tmp_path):
    """extract_shard + merge_shards: one row per clip, the same values as the direct embedding."""
    paths = [audio_files["one"], audio_files["ten"], audio_files["short"]]
    man = write_manifest(tmp_path, paths, label="Music")
    out = tmp_path / "full-training.h5"
    extract_offline("soundsim", man, "audioclip", "full-training", out, ckpt_dir / "AudioCLIP-Full-Training.pt")
    e = store.read_embeddings(out)
    assert e.fnames == ["one", "ten", "short48k"] and e.failed == []
    assert np.diff(e.offsets).tolist() == [1, 1, 1]
    assert e.attrs["level"] == "clip" and int(e.attrs["sample_rate"]) == 44100
    assert np.array_equal(e.embeddings[0:1], res["e1"]) and np.array_equal(e.embeddings[1:2], res["e10"])
    assert np.array_equal(e.embeddings[2:3], res["short"])
