"""Wav2CLIP: random checkpoints in the official format (Wav2CLIP.pt), loaded offline.

Wav2CLIP.pt is a flat state dict of the distillation model: 'audio_encoder.*' (ResNet-18 with the
torchaudio spectrogram's 'window' buffer), 'audio_transform.*' (the MLP projection) and other
entries that are ignored. Here a small encoder (one basic block per stage) and the real MLP with
random weights are saved the same way. The numerical agreement with the package's ResNetExtractor
is recorded in soundsim/models/wav2clip.py's docstring.
"""

from __future__ import annotations

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
    import soxr
    import torch
    from soundsim import audio, extract, models
    from soundsim.errors import ConfigError
    from soundsim.models import _wav2clip_net as net

    SR = 44100
    folder, out, one, ten, long_, short = sys.argv[1:7]
    res = {}

    # the real encoder's keys as the package names them (121 entries): a few names and shapes
    full = net.ResNet().state_dict()
    res["full_keys"] = np.array(len(full))
    res["full_params"] = np.array(sum(v.numel() for k, v in full.items() if "running" not in k
                                      and "num_batches" not in k and k != "spectrogram.window"))
    expect = {"spectrogram.window": (512,), "conv1.weight": (64, 1, 7, 7), "layer1.1.conv2.weight": (64, 64, 3, 3),
              "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer4.1.bn2.running_var": (512,)}
    res["full_shapes_ok"] = np.array(all(tuple(full[k].shape) == s for k, s in expect.items()))
    del full

    def checkpoint(path, seed, drop=(), layers=(1, 1, 1, 1), units=(512, 512, 512)):
        torch.manual_seed(seed)
        enc, tr = net.ResNet(layers), net.MLPLayers(units)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for k, t in list(enc.state_dict().items()) + list(tr.state_dict().items()):
                if k.endswith("running_mean"):
                    t.copy_(0.1 * torch.randn(t.shape, generator=g))
                elif k.endswith("running_var"):
                    t.copy_(0.5 + torch.rand(t.shape, generator=g))
                elif k.endswith("bias"):
                    t.copy_(0.1 * torch.randn(t.shape, generator=g))
        sd = {"audio_encoder." + k: v for k, v in enc.state_dict().items() if k not in drop}
        sd.update({"audio_transform." + k: v for k, v in tr.state_dict().items() if k not in drop})
        # the image-side projection and the loss's logit scale of the distillation model: ignored
        sd.update({"image_transform." + k: torch.randn_like(v) for k, v in tr.state_dict().items()})
        sd["loss_fn_a.logit_scale"] = torch.tensor(2.66)
        torch.save(sd, path)
        return path

    ckpt = checkpoint(folder + "/Wav2CLIP.pt", 0)
    m = models.load("wav2clip", weights=ckpt)
    y1, _ = audio.load(one, SR)
    y10, _ = audio.load(ten, SR)
    y25, _ = audio.load(long_, SR)
    res["e1"], res["e10"], res["e25"] = m.embed(y1), m.embed(y10), m.embed(y25)
    res["e10_again"] = m.embed(y10)
    res["e10_reloaded"] = models.load("wav2clip", "base", weights=ckpt).embed(y10)
    native = models.load("wav2clip", weights=ckpt, options={"native_rate": True})
    res["native"] = native.embed(y10)
    # native_rate: the model sees the clip resampled to 16 kHz (the same as feeding 16 kHz audio)
    x16 = torch.from_numpy(soxr.resample(y10, SR, 16000, quality="VHQ").astype(np.float32))[None]
    with torch.no_grad():
        res["native_direct"] = native.embedder.transform(native.embedder.encoder(x16)).numpy()
    cut = models.load("wav2clip", weights=ckpt, options={"max_seconds": 5})
    res["cut10"], res["first5"] = cut.embed(y10), m.embed(y10[: 5 * SR])
    res["short"] = extract.embed_clip(m, short)  # 0.05 s, 48 kHz stereo: padded to 0.1 s by extraction
    res["silence"] = m.embed(np.zeros(SR, dtype=np.float32))

    errors = {}
    def err(key, *args, **kw):
        try:
            models.load("wav2clip", *args, **kw)
        except ConfigError as e:
            errors[key] = str(e)
        else:
            errors[key] = "no error"
    err("missing", weights=folder + "/nope.pt")
    err("none", weights=None)
    open(folder + "/junk.pt", "wb").write(np.random.default_rng(0).bytes(5000))
    err("junk", weights=folder + "/junk.pt")
    torch.save({"visual.conv1.weight": torch.zeros(3)}, folder + "/other.pt")
    err("other", weights=folder + "/other.pt")
    err("missing_key", weights=checkpoint(folder + "/missing_key.pt", 1, drop=("layer3.0.bn1.weight",)))
    err("wrong_dim", weights=checkpoint(folder + "/wrong_dim.pt", 2, units=(512, 512, 128)))
    no_window = checkpoint(folder + "/no_window.pt", 0, drop=("spectrogram.window",))  # rebuilt
    res["no_window"] = models.load("wav2clip", weights=no_window).embed(y1)
    try:
        m.embed(np.zeros(200, dtype=np.float32))
    except ValueError as e:
        errors["too_short"] = str(e)
    for k, v in errors.items():
        res["err_" + k] = np.array(v)
    np.savez(out, **res)
    """
)




@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wav2clip-audio")
    files = {}
    for name, secs, seed in (("one", 1.0, 1), ("ten", 10.0, 2), ("long", 25.0, 3)):
        files[name] = folder / f"{name}.wav"
        sf.write(files[name], chirp(secs, SR, seed), SR, subtype="PCM_16")
    files["short"] = folder / "short48k.wav"
    sf.write(files["short"], np.repeat(chirp(0.05, 48000, 4)[:, None], 2, axis=1), 48000)
    return files


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wav2clip-ckpt")


@pytest.fixture(scope="module")
def res(audio_files, ckpt_dir) -> dict[str, np.ndarray]:
    out = ckpt_dir / "res.npz"
    run_offline("soundsim", RUN, str(ckpt_dir), str(out), *(str(audio_files[k]) for k in ("one", "ten", "long",
                                                                                           "short")))
    with np.load(out) as z:
        return dict(z)


def test_info():
    inf = models.info("wav2clip")
    assert (inf.name, inf.variations, inf.default_variation) == ("wav2clip", ("base",), "base")
    assert (inf.sample_rate, inf.level, inf.hop, inf.dim, inf.env) == (44100, "clip", None, 512, "soundsim")
    assert inf.weights == "required" and inf.weight_files == {"base": "Wav2CLIP.pt"} and inf.min_duration == 0.1
    assert "descriptinc/lyrebird-wav2clip/releases" in inf.weights_hint
    p = inf.paper
    assert (p.modality, p.objective, p.params, p.data_size, p.dims) == (
        "A & I & L", "Contrastive alignment", "12M", "200K", 512)


def test_real_architecture_key_names(res):
    """The full ResNet-18 encoder has the package's key names and shapes (121 entries, ~11M parameters)."""
    assert int(res["full_keys"]) == 121 and bool(res["full_shapes_ok"])
    assert 11e6 < int(res["full_params"]) < 11.3e6


def test_clip_level_rows_dims_dtype(res):
    for key in ("e1", "e10", "e25", "native", "short", "cut10", "silence"):
        e = res[key]
        assert e.shape == (1, 512) and e.dtype == np.float32 and np.isfinite(e).all(), key
    assert not np.allclose(res["e1"], res["e10"], atol=1e-4) and not np.allclose(res["e10"], res["e25"], atol=1e-4)


def test_deterministic(res):
    assert np.array_equal(res["e10"], res["e10_again"]) and np.array_equal(res["e10"], res["e10_reloaded"])


def test_options(res):
    assert not np.allclose(res["native"], res["e10"], atol=1e-4)
    np.testing.assert_allclose(res["native"], res["native_direct"], rtol=0, atol=1e-6)
    assert np.array_equal(res["cut10"], res["first5"]) and not np.allclose(res["cut10"], res["e10"], atol=1e-4)
    assert np.array_equal(res["no_window"], res["e1"])


def test_errors_name_the_path_and_the_problem(res):
    def e(key: str) -> str:
        return str(res["err_" + key])

    assert e("missing").startswith("models.wav2clip.weights.base: ") and "nope.pt: no such file" in e("missing")
    assert "Wav2CLIP.pt" in e("missing") and "no weights path given" in e("none")
    assert "junk.pt: not a PyTorch checkpoint" in e("junk")
    assert "other.pt: has no Wav2CLIP audio encoder" in e("other")
    assert "missing_key.pt: its audio encoder does not fit" in e("missing_key")
    assert "layer3.0.bn1.weight" in e("missing_key")
    assert "wrong_dim.pt: projection 512 -> 128 dims" in e("wrong_dim")
    assert "clip too short for wav2clip: 200 samples" in e("too_short")


def test_extraction(res, audio_files, ckpt_dir, tmp_path):
    paths = [audio_files["one"], audio_files["ten"], audio_files["short"]]
    man = write_manifest(tmp_path, paths, label="Music")
    out = tmp_path / "base.h5"
    extract_offline("soundsim", man, "wav2clip", "base", out, ckpt_dir / "Wav2CLIP.pt")
    e = store.read_embeddings(out)
    assert e.fnames == ["one", "ten", "short48k"] and e.failed == []
    assert np.diff(e.offsets).tolist() == [1, 1, 1]
    assert e.attrs["level"] == "clip" and int(e.attrs["sample_rate"]) == 44100
    assert np.array_equal(e.embeddings[0:1], res["e1"]) and np.array_equal(e.embeddings[1:2], res["e10"])
    assert np.array_equal(e.embeddings[2:3], res["short"])
