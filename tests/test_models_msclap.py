"""Microsoft CLAP 2022 / 2023 (msclap) and Pengi, in the ``msclap`` environment.

Per model, one process in ``.venvs/msclap`` (``run_offline``: no network):

* builds the **real architecture** with msclap's own code (``msclap.models.clap.CLAP``
  with the values of msclap's ``config_2022.yml`` / ``config_2023.yml``; Cnn14 and
  HTS-AT take no size settings, so the real sizes are used: 85M / 33M parameters), with
  random weights and random BatchNorm statistics, and saves it in the official format:
  ``torch.save({'model': CLAP.state_dict()})`` (Pengi: every key prefixed ``module.``,
  plus ``caption_decoder.*`` tensors, as ``base.pth``);
* loads it through ``soundsim.models.load(name, variation, weights=path)`` and embeds
  WAV files of 1 s, 10 s and 25 s written here (dims, float32, rows, determinism);
* computes the reference with msclap's own code on the same file: ``CLAPWrapper.load_clap``
  (msclap's loading, ``strict=False``) and ``CLAPWrapper.get_audio_embeddings``
  (``load_audio_into_tensor``'s repeat padding, ``default_collate``,
  ``_get_audio_embeddings``), only the file decoding replaced (torchaudio is not
  installed); the stand-ins below make msclap's modules importable without torchaudio,
  transformers and huggingface_hub, none of which the audio path uses. Pengi: msclap's
  HTS-AT encoder output divided by its L2 norm, as ``PengiWrapper._get_audio_embeddings``;
* checks the errors for a missing file, a file that is not a checkpoint, a checkpoint
  of another model and one that lacks a parameter.
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

pytestmark = pytest.mark.model_env("msclap")

SR = 44100
DURATIONS = {"one": 1.0, "ten": 10.0, "long": 25.0}
ROWS = {  # max(1, ceil(n / (duration * 44100)))
    "clap-2022": {"one": 1, "ten": 2, "long": 5},
    "clap-2023": {"one": 1, "ten": 2, "long": 4},
    "pengi": {"one": 1, "ten": 2, "long": 4},
}
VARIATION = {"clap-2022": "2022", "clap-2023": "2023", "pengi": "base"}

SCRIPT = textwrap.dedent(
    """
    import json, math, sys, types
    from pathlib import Path
    import numpy as np
    import torch

    # -- stand-ins: msclap's CLAPWrapper / clap / mapper modules import these at module level
    def stub(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        sys.modules[name] = mod
        return mod

    class Tokenizer:
        @classmethod
        def from_pretrained(cls, name):
            return cls()
        def add_special_tokens(self, tokens):
            pass

    stub("torchaudio", transforms=stub("torchaudio.transforms", Resample=None))
    stub("transformers", AutoModel=None, AutoTokenizer=Tokenizer, GPT2LMHeadModel=None,
         logging=types.SimpleNamespace(set_verbosity_error=lambda: None))
    stub("huggingface_hub", file_download=stub("huggingface_hub.file_download", hf_hub_download=None))

    import msclap
    import msclap.models.clap as mclap
    from msclap.CLAPWrapper import CLAPWrapper

    class TextEncoder(torch.nn.Module):  # the text branch is not the subject here (and needs the hub)
        def __init__(self, d_out, text_model, transformer_embed_dim):
            super().__init__()
            self.projection = mclap.Projection(8, d_out)

    mclap.TextEncoder = TextEncoder

    from soundsim import audio, models
    from soundsim.errors import ConfigError
    from soundsim.models import _msclap

    name, variation, folder, out = sys.argv[1:5]
    folder = Path(folder)
    res = {}
    torch.manual_seed(0)

    version = "2022" if name == "clap-2022" else "2023"  # Pengi's audio encoder = CLAP 2023's
    wrapper = CLAPWrapper.__new__(CLAPWrapper)
    wrapper.config_as_str = (Path(msclap.__file__).parent / "configs" / f"config_{version}.yml").read_text()
    wrapper.use_cuda = False
    args = wrapper.read_config_as_args(wrapper.config_as_str, is_config_str=True)
    spec = _msclap.SPECS[name]
    res["config"] = json.dumps([
        [args.audioenc_name, args.sampling_rate, args.duration, args.out_emb, args.d_proj, args.window_size,
         args.hop_size, args.mel_bins, args.fmin, args.fmax, args.num_classes],
        [spec.audioenc_name, 44100, spec.duration, spec.out_emb, spec.d_proj, spec.window_size, spec.hop_size,
         spec.mel_bins, spec.fmin, spec.fmax, spec.classes_num]])

    # -- a random CLAP of the real architecture, saved in the official format
    clap = mclap.CLAP(audioenc_name=args.audioenc_name, sample_rate=args.sampling_rate,
                      window_size=args.window_size, hop_size=args.hop_size, mel_bins=args.mel_bins,
                      fmin=args.fmin, fmax=args.fmax, classes_num=args.num_classes, out_emb=args.out_emb,
                      text_model=args.text_model, transformer_embed_dim=args.transformer_embed_dim,
                      d_proj=args.d_proj)
    # BatchNorm statistics of real activations (as after training): with the default ones a deep
    # random Cnn14 maps every input to nearly the same vector and the comparison would prove little
    bns = [m for m in clap.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        clap.audio_encoder.train()
        calib = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 44100)).astype(np.float32) * 0.1)
        clap.audio_encoder(calib)
        clap.eval()
        for m in bns:
            m.momentum = 0.1
            m.weight.normal_(1.0, 0.2)
            m.bias.normal_(0.0, 0.2)
        for m in clap.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.2)
    state = clap.state_dict()
    if name == "pengi":  # base.pth: the whole PENGI model, DDP-wrapped names
        state = dict(state, **{"caption_decoder.gpt.transformer.wte.weight": torch.randn(16, 8),
                               "caption_decoder.audio_project.weight": torch.randn(8, 1024)})
        state = {"module." + k: v for k, v in state.items()}
    ckpt = folder / f"{name}.pth"
    torch.save({"model": state}, ckpt)
    res["n_params"] = sum(p.numel() for p in clap.audio_encoder.parameters())

    # -- soundsim
    m = models.load(name, variation, weights=str(ckpt))
    clips = {k: audio.load(str(folder / f"{k}.wav"), 44100)[0] for k in ("one", "ten", "long")}
    for k, x in clips.items():
        res[k] = m.embed(x)
    res["ten_again"] = m.embed(clips["ten"])
    m.embedder.batch_size = 1
    res["ten_batch1"] = m.embed(clips["ten"])
    # issue 12: a 40 s clip cut and embedded 3 windows at a time = all its windows in one batch
    x40 = np.concatenate([clips["long"], clips["ten"], clips["long"][: 5 * 44100]])
    m.embedder.batch_size = 3
    res["x40_batch3"] = m.embed(x40)
    m.embedder.batch_size = 1000
    res["x40_one_batch"] = m.embedder.embed_windows(_msclap.windows(x40, spec.window))

    # -- msclap's own loading and audio-embedding path on the same checkpoint
    if name == "pengi":
        wrapper.clap = clap.eval()  # holds exactly the saved weights
    else:
        wrapper.model_fp = str(ckpt)
        wrapper.clap, wrapper.tokenizer, wrapper.args = wrapper.load_clap()
    wrapper.args = args
    W = spec.window
    inputs = {"one": clips["one"], "ten0": clips["ten"][:W], "ten1": clips["ten"][-W:],
              "long_last": clips["long"][-W:]}
    wrapper.read_audio = lambda key, resample=True: (torch.from_numpy(inputs[key]).reshape(1, -1), 44100)
    for key in inputs:
        e = wrapper.get_audio_embeddings([key], resample=False)
        if name == "pengi":  # PengiWrapper._get_audio_embeddings (normalize_prefix: True)
            e = e / e.norm(2, -1).reshape(-1, 1)
        res["ref_" + key] = e.numpy()

    # -- errors
    errors = {}
    def error(key, path, load_name=name):
        try:
            models.load(load_name, VARIATIONS[load_name], weights=str(path))
        except ConfigError as e:
            errors[key] = str(e)
        else:
            errors[key] = "no error"
    VARIATIONS = {"clap-2022": "2022", "clap-2023": "2023", "pengi": "base"}
    error("missing", folder / "nope.pth")
    (folder / "garbage.pth").write_bytes(np.random.default_rng(0).bytes(3000))
    error("garbage", folder / "garbage.pth")
    torch.save({"model": {"logit_scale": torch.ones(())}}, folder / "text_only.pth")
    error("no_audio", folder / "text_only.pth")
    if name == "clap-2022":
        pass
    elif name == "clap-2023":
        error("as_2022", ckpt, "clap-2022")  # an HTS-AT checkpoint for the Cnn14 model
        error("as_pengi", ckpt, "pengi")  # CLAP 2023 has no caption_decoder
        cut = dict(state)
        del cut["audio_encoder.projection.linear2.weight"]
        torch.save({"model": cut}, folder / "cut.pth")
        error("cut", folder / "cut.pth")
    else:
        error("as_2023", ckpt, "clap-2023")  # a Pengi checkpoint for CLAP 2023
    res["errors"] = json.dumps(errors)
    np.savez(out, **res)
    """
)



def _clip(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """A chirp whose loudness changes, plus noise: windows differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (200 + 60 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.2 * t))
    return (x + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("msclap")
    for i, (k, s) in enumerate(DURATIONS.items()):
        sf.write(d / f"{k}.wav", _clip(s, i), SR, subtype="FLOAT")
    # 48 kHz stereo, 8 s: resampled and downmixed by extraction -> 2 windows of 7 s
    sf.write(d / "stereo48k.wav", np.repeat(_clip(8.0, 7, 48000)[:, None], 2, axis=1), 48000)
    return d


_RESULTS: dict[str, dict[str, np.ndarray]] = {}


def results(name: str, folder: Path) -> dict[str, np.ndarray]:
    if name not in _RESULTS:
        out = folder / f"{name}.npz"
        run_offline("msclap", SCRIPT, name, VARIATION[name], str(folder), str(out))
        with np.load(out) as z:
            _RESULTS[name] = dict(z)
    return _RESULTS[name]


def test_info():
    for name, variation, hop in (("clap-2022", "2022", 5.0), ("clap-2023", "2023", 7.0), ("pengi", "base", 7.0)):
        inf = models.info(name)
        assert (inf.variations, inf.default_variation, inf.sample_rate, inf.level, inf.env) == (
            (variation,), variation, 44100, "frame", "msclap")
        assert inf.hop == hop and inf.dim == 1024 and inf.weights == "required" and inf.min_duration == 0.0
        assert inf.paper is not None and inf.paper.dims == 1024 and inf.paper.modality == "A & L"
        assert "random" not in inf.long_clips.replace("no random crop", "")
    p = {n: models.info(n).paper for n in ("clap-2022", "clap-2023", "pengi")}
    assert (p["clap-2022"].params, p["clap-2022"].data_size, p["clap-2022"].objective) == (
        "81M", "128K", "Contrastive alignment")
    assert (p["clap-2023"].params, p["clap-2023"].data_size) == ("31M", "4.6M")
    assert (p["pengi"].params, p["pengi"].data_size, p["pengi"].objective) == ("31M", "3.4M", "Question-answering")
    assert "CLAP_weights_2022.pth" in models.info("clap-2022").weights_hint
    assert "CLAP_weights_2023.pth" in models.info("clap-2023").weights_hint
    assert "base.pth" in models.info("pengi").weights_hint


def test_module_import_is_light_and_windows():
    """soundsim.models imports every model module: no torch / msclap at import time. The
    window arithmetic (numpy only) on its own."""
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import soundsim.models.clap_2022, soundsim.models.clap_2023, soundsim.models.pengi
        from soundsim.models import _msclap as M
        assert not {'torch', 'msclap', 'librosa', 'torchlibrosa'} & set(sys.modules), 'heavy import'
        W = 7 * 44100
        assert [M.n_rows(n, 7) for n in (1, W - 1, W, W + 1, 2 * W, 10 * 44100, 25 * 44100)] == [1, 1, 1, 2, 2, 2, 4]
        x = np.arange(10, dtype=np.float32)
        w = M.windows(x, 4)  # 0-3, 4-7, then the last window ends at the clip's end: 6-9
        assert w.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
        assert M.windows(x[:3], 8).tolist() == [[0, 1, 2, 0, 1, 2, 0, 1]]  # msclap's repeat padding
        assert M.windows(x[:8], 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
        try:
            M.windows(x[:0], 4)
        except ValueError:
            pass
        else:
            raise AssertionError('empty clip accepted')
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["clap-2022", "clap-2023", "pengi"])
def test_embeddings_match_msclap(name, folder):
    r = results(name, folder)
    ours_cfg, msclap_cfg = json.loads(str(r["config"]))[1], json.loads(str(r["config"]))[0]
    if name == "clap-2023" or name == "pengi":
        # HTSATWrapper takes its front end from msclap.models.config; the YAML's fmax is unused
        assert ours_cfg[:9] == msclap_cfg[:9]
    else:
        assert ours_cfg == msclap_cfg
    assert int(r["n_params"]) > (80_000_000 if name == "clap-2022" else 30_000_000)
    for k, rows in ROWS[name].items():
        e = r[k]
        assert e.shape == (rows, 1024) and e.dtype == np.float32 and np.isfinite(e).all(), (k, e.shape)
    assert np.array_equal(r["ten"], r["ten_again"])  # deterministic
    np.testing.assert_allclose(r["ten_batch1"], r["ten"], rtol=0, atol=1e-5)  # a row does not depend on batching
    assert not np.allclose(r["ten"][0], r["ten"][1], atol=1e-3)
    # msclap's own code, same checkpoint: 1 s (repeat padded), both windows of 10 s (the second one
    # ends at the clip's end), the last window of 25 s
    pairs = [(r["one"][0], r["ref_one"][0]), (r["ten"][0], r["ref_ten0"][0]), (r["ten"][1], r["ref_ten1"][0]),
             (r["long"][-1], r["ref_long_last"][0])]
    for ours, ref in pairs:
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)  # seen: <= 2.2e-6
    if name == "pengi":
        np.testing.assert_allclose(np.linalg.norm(r["long"], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["clap-2022", "clap-2023", "pengi"])
def test_checkpoint_errors(name, folder):
    errors = json.loads(str(results(name, folder)["errors"]))
    where = f"models.{name}.weights.{VARIATION[name]}: "
    assert errors["missing"].startswith(where) and "does not exist" in errors["missing"]
    assert errors["garbage"].startswith(where) and "not a PyTorch checkpoint" in errors["garbage"]
    assert errors["no_audio"].startswith(where) and "no 'audio_encoder.*' weights" in errors["no_audio"]
    if name == "clap-2023":
        assert "holds an HTS-AT (CLAP 2023 / Pengi) audio encoder, not a Cnn14 (CLAP 2022)" in errors["as_2022"]
        assert errors["as_pengi"].startswith("models.pengi.weights.base: ") and "not Pengi's" in errors["as_pengi"]
        assert "missing" in errors["cut"] and "projection.linear2.weight" in errors["cut"]
    if name == "pengi":
        assert errors["as_2023"].startswith("models.clap-2023.weights.2023: ")
        assert "is a Pengi checkpoint" in errors["as_2023"]


def test_extraction_through_the_msclap_env(folder, tmp_path):
    """extract_shard + merge_shards in the msclap env (clap-2023): rows per clip, the
    resampled stereo file, and the same values as the other process."""
    r = results("clap-2023", folder)
    names = ["ten", "one", "stereo48k", "long"]
    man = write_manifest(tmp_path, [folder / f"{n}.wav" for n in names], label="Music")
    out = tmp_path / "2023.h5"
    extract_offline("msclap", man, "clap-2023", "2023", out, folder / "clap-2023.pth")
    e = store.read_embeddings(out)
    assert e.fnames == names and e.failed == []
    assert np.diff(e.offsets).tolist() == [2, 1, 2, 4]
    assert e.attrs["level"] == "frame" and e.attrs["env"] == "msclap" and float(e.attrs["hop"]) == 7.0
    assert e.embeddings.dtype == np.float32 and e.embeddings.shape[1] == 1024
    assert np.array_equal(e.embeddings[:2], r["ten"])
    assert np.array_equal(e.embeddings[2:3], r["one"])
    assert np.array_equal(e.embeddings[5:9], r["long"])


@pytest.mark.parametrize("name", ["clap-2022", "clap-2023", "pengi"])
def test_long_clip_in_batches_equals_one_batch(name, folder):
    """Issue 12: windows cut batch by batch (bounded memory) give the one-batch rows."""
    r = results(name, folder)
    assert r["x40_batch3"].shape == r["x40_one_batch"].shape == (8 if name == "clap-2022" else 6, 1024)
    np.testing.assert_allclose(r["x40_batch3"], r["x40_one_batch"], rtol=0, atol=1e-5)
