"""LAION-CLAP (HTS-AT audio branch) in its own environment ``.venvs/laion-clap``.

Random checkpoints of the real architectures (HTSAT-tiny with feature fusion,
HTSAT-tiny without, HTSAT-base without), saved in the official format
(``torch.save({'epoch': ..., 'state_dict': {'module.audio_branch...': ...,
'module.audio_projection...': ..., 'module.text_branch...': ...}})``), loaded
through ``soundsim.models.load`` with networking disabled, on real 48 kHz WAV
files of 1 s, 10 s and 25 s. The tests skip, saying how to build it, when the
environment is missing (``make envs ENVS=laion-clap``).

The values were checked once against laion_clap 1.1.7's own audio path (see
the module docstring): bit-identical.
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

pytestmark = pytest.mark.model_env("laion-clap")

ENV = "laion-clap"
SR = 48000

# Runs in the laion-clap env: random official-format checkpoints, embeddings, errors.
EMBED = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    from soundsim import audio, models
    from soundsim.errors import ConfigError
    from soundsim.models import laion_clap as lc

    folder, out = sys.argv[1:3]
    files = {k: f"{folder}/{k}.wav" for k in ("one", "ten", "long")}

    def make(size, fusion, path, seed):
        # the real architecture, random weights (and batch-norm statistics), official layout
        torch.manual_seed(seed)
        enc = lc.build_audio_encoder(size, fusion)
        g = torch.Generator().manual_seed(seed)
        state = {}
        for k, v in enc.state_dict().items():
            if k.endswith("running_var"):
                v = 0.5 + torch.rand(v.shape, generator=g)
            elif k.endswith("running_mean") or (v.dtype.is_floating_point and v.dim() == 1):
                v = v + 0.1 * torch.randn(v.shape, generator=g)
            state["module." + k] = v
        state["module.text_branch.embeddings.position_ids"] = torch.arange(514)[None]  # text keys are ignored
        state["module.logit_scale_a"] = torch.tensor(2.65)
        torch.save({"epoch": 45, "state_dict": state}, path)
        return path

    fus = make("tiny", True, f"{folder}/630k-fusion-best.pt", 1)
    tin = make("tiny", False, f"{folder}/630k-best.pt", 2)
    bas = make("base", False, f"{folder}/music_speech_audioset_epoch_15_esc_89.98.pt", 3)
    ck = torch.load(fus, weights_only=True)
    fmt = {"top": sorted(ck), "n_module": sum(k.startswith("module.") for k in ck["state_dict"]),
           "n": len(ck["state_dict"])}

    y = {k: audio.load(p, 48000)[0] for k, p in files.items()}
    res = {}
    for tag, var, path in (("fus", "630k-fusion-best", fus), ("tin", "630k-best", tin),
                           ("bas", "music_speech_audioset_epoch_15_esc_89.98", bas)):
        m = models.load("laion-clap", var, weights=path)
        for k in ("one", "ten", "long"):
            res[f"{tag}_{k}"] = m.embed(y[k])
        res[f"{tag}_long_again"] = models.load("laion-clap", var, weights=path).embed(y["long"])
    fm = models.load("laion-clap", "630k-fusion-best", weights=fus)
    res["fus_one_tiled"] = fm.embed(np.tile(y["one"], 10))  # repeatpad: 1 s tiled 10 times = 10 s
    res["fus_long_first10"] = fm.embed(y["long"][:480000])
    res["fus_long_aa"] = models.load("laion-clap", "630k-fusion-best", weights=fus,
                                     options={"antialias": True}).embed(y["long"])
    tm = models.load("laion-clap", "630k-best", weights=tin)
    res["tin_one_tiled"] = tm.embed(np.tile(y["one"], 10))
    res["tin_long_first10"] = tm.embed(y["long"][:480000])
    res["tin_long_mid10"] = tm.embed(y["long"][360000:840000])
    res["tin_long_last10"] = tm.embed(y["long"][-480000:])
    res["tin_long_second10"] = tm.embed(y["long"][480000:960000])
    for crop in ("center", "mean"):
        res[f"tin_long_{crop}"] = models.load("laion-clap", "630k-best", weights=tin,
                                              options={"crop": crop}).embed(y["long"])
    # a bare state dict of the audio keys, without 'module.': accepted, same values
    sd = {k[len("module."):]: v for k, v in torch.load(tin, weights_only=True)["state_dict"].items()
          if k.startswith(("module.audio_branch.", "module.audio_projection."))}
    torch.save(sd, f"{folder}/bare.pt")
    res["tin_bare_long"] = models.load("laion-clap", "630k-best", weights=f"{folder}/bare.pt").embed(y["long"])

    # issue 12: the fusion mel of a long clip in chunks of STFT frames (= the whole clip's STFT),
    # quantisation per chunk; 25 s = 2501 frames: one chunk by default, four of 626 here
    q = torch.from_numpy(lc.quantize(y["long"]))
    res["mel_whole"] = fm.embedder.mel(q).numpy()
    res["mel_chunked"] = fm.embedder.mel.chunked(y["long"], lc.quantize, frames=700).numpy()
    lc.MEL_CHUNK_FRAMES = 700
    res["fus_long_chunked"] = fm.embed(y["long"])
    lc.MEL_CHUNK_FRAMES = 6000

    # errors
    with open(f"{folder}/random.pt", "wb") as fh:
        fh.write(np.random.default_rng(0).bytes(5000))
    torch.save({"epoch": 1, "state_dict": {"module.text_branch.w": torch.zeros(3)}}, f"{folder}/text_only.pt")
    sd.pop("audio_projection.2.weight")
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, f"{folder}/incomplete.pt")
    errors = {}
    for tag, var, path, opts in (
        ("missing", "630k-fusion-best", f"{folder}/nope.pt", {}),
        ("random", "630k-fusion-best", f"{folder}/random.pt", {}),
        ("text_only", "630k-best", f"{folder}/text_only.pt", {}),
        ("nonfusion_for_fusion", "630k-fusion-best", tin, {}),
        ("fusion_for_nonfusion", "630k-audioset-best", fus, {}),
        ("base_for_tiny", "630k-best", bas, {}),
        ("incomplete", "630k-best", f"{folder}/incomplete.pt", {}),
        ("bad_crop", "630k-best", tin, {"crop": "random"}),
    ):
        try:
            models.load("laion-clap", var, weights=path, options=opts)
            errors[tag] = "no error"
        except ConfigError as e:
            errors[tag] = str(e)
    try:
        tm.embed(np.zeros(0, np.float32))
        errors["empty"] = "no error"
    except ValueError as e:
        errors["empty"] = str(e)
    np.savez(out, **res)
    with open(out + ".json", "w") as fh:
        json.dump({"errors": errors, "format": fmt, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in
                   ("transformers", "torchvision", "torchaudio", "laion_clap", "webdataset"))}, fh)
    """
)



def signal(seconds: float, seed: int) -> np.ndarray:
    """A gliding, amplitude-modulated tone with noise and a noise burst: not periodic, so
    repeat-padding, crops and windows all give different inputs."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * (200 + 37 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.23 * t))
    x = x + 0.03 * rng.standard_normal(n)
    a, b = int(0.6 * n), int(0.7 * n)
    x[a:b] += 0.4 * rng.standard_normal(b - a)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("laion-clap")
    files = {}
    for k, sec, seed in (("one", 1.0, 1), ("ten", 10.0, 2), ("long", 25.0, 3)):
        files[k] = folder / f"{k}.wav"
        sf.write(files[k], signal(sec, seed), SR, subtype="FLOAT")
    files["stereo"] = folder / "stereo44k.wav"
    x = signal(3.0, 4)[: int(3 * 44100)]
    sf.write(files["stereo"], np.stack([x, 0.5 * x], axis=1), 44100)
    return files


@pytest.fixture(scope="module")
def computed(audio_files) -> dict:
    folder = audio_files["one"].parent
    out = folder / "res.npz"
    run_offline(ENV, EMBED, str(folder), str(out), timeout=900)
    with np.load(out) as z:
        res = dict(z)
    res.update(json.loads(Path(str(out) + ".json").read_text()))
    res["folder"] = folder
    return res


def test_info():
    inf = models.info("laion-clap")
    assert inf.variations[0] == inf.default_variation == "630k-fusion-best"
    assert set(inf.variations) == {
        "630k-best", "630k-fusion-best", "630k-audioset-best", "630k-audioset-fusion-best",
        "music_audioset_epoch_15_esc_90.14", "music_speech_epoch_15_esc_89.25",
        "music_speech_audioset_epoch_15_esc_89.98"}
    assert (inf.sample_rate, inf.level, inf.hop, inf.dim, inf.env) == (48000, "clip", None, 512, "laion-clap")
    assert inf.weights == "required" and "huggingface.co/lukewys/laion_clap" in inf.weights_hint
    assert inf.min_duration == 0.0  # short clips are repeat-padded by the model, not zero-padded
    p = inf.paper
    assert (p.modality, p.objective, p.params, p.data_size, p.dims) == ("A & L", "Contrastive alignment", "31M",
                                                                        "2.5M", 512)


def test_module_import_is_light_and_helpers():
    """soundsim.models imports every model module: no torch / laion_clap at import time.
    The numpy helpers (quantisation, repeat-padding, fusion crop starts) run without torch."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import soundsim.models.laion_clap as lc
        heavy = {'torch', 'laion_clap', 'librosa', 'torchlibrosa', 'transformers'} & set(sys.modules)
        assert not heavy, heavy
        x = np.array([0.5, -2.0, 1.5, 1e-6], np.float32)
        assert np.array_equal(lc.quantize(x), (np.array([16383, -32767, 32767, 0]) / 32767.0).astype(np.float32))
        p = lc.repeatpad(np.arange(1, 144001, dtype=np.float32))   # 3 s: 3 copies, then 1 s of zeros
        assert p.shape == (480000,) and p[144000] == 1 and p[431999] == 144000 and not p[432000:].any()
        assert lc.repeatpad(np.ones(480000, np.float32)).shape == (480000,)
        # 25 s -> 2501 frames, 1501 possible starts split in 3 parts: the middle of each
        assert lc.fusion_starts(2501, 1001) == [250, 751, 1251]
        assert lc.fusion_starts(1003, 1001) == [0, 1, 2] and lc.fusion_starts(1002, 1001) == [0, 1, 0]
        """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_checkpoint_format_is_the_official_one(computed):
    fmt = computed["format"]
    assert fmt["top"] == ["epoch", "state_dict"] and fmt["n_module"] == fmt["n"] > 100
    # nothing of laion_clap's package init, text branch or training code was imported
    assert computed["heavy"] == []


@pytest.mark.parametrize("tag", ["fus", "tin", "bas"])
def test_one_unit_row_per_clip_and_determinism(computed, tag):
    for k in ("one", "ten", "long"):
        e = computed[f"{tag}_{k}"]
        assert e.shape == (1, 512) and e.dtype == np.float32 and np.isfinite(e).all()
        assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)  # normalised, as get_audio_embedding
    assert np.array_equal(computed[f"{tag}_long"], computed[f"{tag}_long_again"])
    assert not np.allclose(computed[f"{tag}_one"], computed[f"{tag}_ten"], atol=1e-4)
    assert not np.allclose(computed[f"{tag}_ten"], computed[f"{tag}_long"], atol=1e-4)


def test_short_clips_are_repeat_padded(computed):
    # 1 s: tiled int(480000 / 48000) = 10 times, nothing left to zero-pad
    for tag in ("fus", "tin"):
        np.testing.assert_allclose(computed[f"{tag}_one"], computed[f"{tag}_one_tiled"], rtol=0, atol=1e-6)


def test_fusion_uses_the_whole_long_clip(computed):
    # global (squeezed) + 3 local crops: not the same as the first 10 s alone
    assert not np.allclose(computed["fus_long"], computed["fus_long_first10"], atol=1e-4)
    # antialiased resize (laion_clap with torchvision >= 0.17) changes long fusion clips a little
    d = np.abs(computed["fus_long"] - computed["fus_long_aa"]).max()
    assert 0 < d < 0.05


def test_non_fusion_long_clip_crops(computed):
    tol = dict(rtol=0, atol=1e-6)
    np.testing.assert_allclose(computed["tin_long"], computed["tin_long_first10"], **tol)  # crop 'start' (default)
    np.testing.assert_allclose(computed["tin_long_center"], computed["tin_long_mid10"], **tol)
    # 'mean': windows 0-10 s, 10-20 s and 15-25 s (the last one ends at the end), averaged, normalised
    rows = np.concatenate([computed["tin_long_first10"], computed["tin_long_second10"], computed["tin_long_last10"]])
    mean = rows.mean(axis=0)
    np.testing.assert_allclose(computed["tin_long_mean"][0], mean / np.linalg.norm(mean), **tol)
    # the same weights as a bare state dict without 'module.': same values
    assert np.array_equal(computed["tin_bare_long"], computed["tin_long"])


def test_checkpoint_errors(computed):
    err = computed["errors"]
    folder = computed["folder"]
    assert err["missing"].startswith(f"models.laion-clap.weights.630k-fusion-best: {folder}/nope.pt does not exist")
    assert "lukewys/laion_clap" in err["missing"]
    assert f"{folder}/random.pt is not a PyTorch checkpoint" in err["random"]
    assert "has no LAION-CLAP audio branch" in err["text_only"]
    assert ("is a HTSAT-tiny non-fusion checkpoint, but 630k-fusion-best is HTSAT-tiny fusion"
            in err["nonfusion_for_fusion"])
    assert "is a HTSAT-tiny fusion checkpoint, but 630k-audioset-best is HTSAT-tiny non-fusion" in err[
        "fusion_for_nonfusion"]
    assert "is a HTSAT-base non-fusion checkpoint, but 630k-best is HTSAT-tiny non-fusion" in err["base_for_tiny"]
    assert "does not fit the HTSAT-tiny audio branch" in err["incomplete"]
    assert "audio_projection.2.weight" in err["incomplete"]
    assert "models.laion-clap.options.crop: 'random'" in err["bad_crop"]
    assert "empty waveform" in err["empty"]


def test_extraction_through_the_laion_clap_env(audio_files, computed, tmp_path):
    """extract_shard + merge_shards in the env: one row per clip, the same values as the other process."""
    paths = [audio_files["one"], audio_files["ten"], audio_files["long"], audio_files["stereo"]]
    man = write_manifest(tmp_path, paths, label="Dog")
    out = tmp_path / "630k-fusion-best.h5"
    extract_offline(ENV, man, "laion-clap", "630k-fusion-best", out, computed["folder"] / "630k-fusion-best.pt")
    e = store.read_embeddings(out)
    assert e.fnames == ["one", "ten", "long", "stereo44k"] and e.failed == []
    assert np.diff(e.offsets).tolist() == [1, 1, 1, 1]
    assert e.attrs["level"] == "clip" and e.attrs["env"] == "laion-clap" and e.attrs["sample_rate"] == 48000
    assert e.embeddings.shape == (4, 512) and e.embeddings.dtype == np.float32
    for i, k in enumerate(("one", "ten", "long")):
        assert np.array_equal(e.embeddings[i : i + 1], computed[f"fus_{k}"])


def test_fusion_mel_of_a_long_clip_in_chunks(computed):
    """Issue 12: the STFT of the whole clip never exists (chunks of frames, reflect padding at the
    ends rebuilt), the rows and the embedding are the whole-clip ones up to float rounding."""
    assert computed["mel_chunked"].shape == computed["mel_whole"].shape == (2501, 64)
    np.testing.assert_allclose(computed["mel_chunked"], computed["mel_whole"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(computed["fus_long_chunked"], computed["fus_long"], rtol=0, atol=1e-5)
