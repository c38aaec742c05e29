"""Wav2CLIP (Wu et al., ICASSP 2022): a ResNet-18 audio encoder distilled from CLIP on VGGSound.

Model: Wav2CLIP's audio encoder (ResNet-18 on a log power spectrogram, global average
pooling, 512-dim) followed by its MLP projection into CLIP's image space
(``audio_transform``, 512-dim), i.e. what ``wav2clip.get_model()`` (``transform=True``,
``scenario='frozen'``) and ``wav2clip.embed_audio`` return, as the paper's authors used
it (raraz15/semantic-sound-similarity, ``code/lib/wav2clip_wrapper.py``: ``get_model``
without ``frame_length``/``hop_length``, i.e. **clip mode**: one vector per clip).
Variation: ``base`` (the released checkpoint). Re-implemented in plain torch in
:mod:`soundsim.models._wav2clip_net`: the PyPI package (0.1.0) imports torchaudio at
module level (its PyPI wheels do not load beside torch 2.13 CPU) and its frame mode
uses an old ``librosa.util.frame`` signature that librosa >= 0.10 rejects; neither is
needed here, so the model runs in the main environment with torch alone.

Input: **44.1 kHz** mono float32 in [-1, 1], as the paper's authors fed it
(``librosa.load(path, sr=44100)``) although Wav2CLIP was trained on 16 kHz VGGSound
audio; option ``native_rate: true`` resamples to 16 kHz first (soxr, very high
quality, as soundsim's loader) for the model's own rate. Features (inside the model):
power spectrogram (n_fft 512, hop 353, periodic Hann, centred frames with reflect
padding), ``log(x + 1e-7)``, standardised by the mean and standard deviation of the
clip's whole log spectrogram.

Output: clip-level, one 512-dim row per clip. Clips shorter than 0.1 s are
zero-padded at the end to 0.1 s (the centred STFT needs more than 256 samples; FSD50K
clips are at least 0.3 s, so the paper's clips are unaffected). Long clips: the first
30 s are embedded (the authors' ``TRIM_DUR``), option ``max_seconds`` (0: the whole
clip). The waveform is cut before anything else (``native_rate`` resampling,
spectrogram), so memory per clip does not grow past 30 s (with ``max_seconds: 0`` it
grows with the clip). Deterministic: no random crops, batch norm and dropout in inference mode.

Weights (required): ``Wav2CLIP.pt`` from
https://github.com/descriptinc/lyrebird-wav2clip/releases (tag v0.1.0-alpha; the file
``wav2clip.get_model()`` downloads), a ``torch.save``\\ d state dict of the
distillation model; the ``audio_encoder.*`` (including ``spectrogram.window``) and
``audio_transform.*`` entries are read and must load strictly (others, such as
``image_transform.*``, are ignored). Residual blocks per stage and MLP widths are read
from the checkpoint (so a small test checkpoint runs the same code); the output must
be 512-dim.

Numerical check (done once, not in the test suite): ``wav2clip.model.encoder.ResNetExtractor
(checkpoint, scenario='frozen', transform=True)`` from the PyPI wheel 0.1.0, with the
real ``torchaudio.transforms.Spectrogram`` (torchaudio 2.11 from PyPI, its compiled
extensions removed in a scratch folder: the transform is pure Python), against this
module on the same random full-size checkpoint, on 1 s, 4.3 s and 10 s clips at
44.1 kHz and 16 kHz: max abs difference 0.0 (identical float32 output).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from soundsim.errors import ConfigError
from soundsim.models import ModelInfo, OptionSpec, PaperInfo, check_sample_rate

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100  # what the paper's authors fed the model
NATIVE_RATE = 16000  # Wav2CLIP's training rate (VGGSound)
DIM = 512
MAX_SECONDS = 30.0  # the authors' TRIM_DUR
WEIGHT_FILE = "Wav2CLIP.pt"
RELEASES = "https://github.com/descriptinc/lyrebird-wav2clip/releases (tag v0.1.0-alpha)"

INFO = ModelInfo(
    name="wav2clip",
    variations=("base",),
    default_variation="base",
    sample_rate=SAMPLE_RATE,
    level="clip",
    hop=None,
    dim=DIM,
    env="soundsim",
    description="Wav2CLIP (Wu et al. 2022): ResNet-18 audio encoder distilled from CLIP on VGGSound, "
    "with its projection into CLIP space; 512-dim, one row per clip",
    weights="required",
    weights_hint=f"{WEIGHT_FILE} from {RELEASES}",
    weight_files={"base": WEIGHT_FILE},
    min_duration=0.1,
    long_clips="the first 30 s are embedded (the authors' trim; option max_seconds, 0 = whole clip)",
    paper=PaperInfo(modality="A & I & L", objective="Contrastive alignment", params="12M", data_size="200K", dims=512),
    packages=("torch", "soxr"),
    options={
        "native_rate": OptionSpec(bool, False, "true: resample the 44.1 kHz input to Wav2CLIP's 16 kHz training "
                                  "rate first; false: 44.1 kHz, as the paper's authors"),
        "max_seconds": OptionSpec(float, MAX_SECONDS, "seconds embedded from the start of a clip; 0: the whole clip",
                                  min=0),
    },
    # Wu et al., ICASSP 2022 (Wav2CLIP) / paper Sec. II-B: distilled from CLIP on VGGSound videos
    trained_on=("VGGSound",),
)


def _fail(path: str, problem: str) -> ConfigError:
    return ConfigError(f"models.wav2clip.weights.base: {path}: {problem} (expected {WEIGHT_FILE} from {RELEASES})")


def read_state(path: str) -> tuple[dict, dict]:
    """(audio_encoder, audio_transform) entries of a Wav2CLIP checkpoint, without the prefixes."""
    from soundsim.models import _torch_ckpt

    p = Path(path)
    if not p.is_file():
        raise _fail(path, "no such file" if not p.exists() else "not a file")
    try:
        obj = _torch_ckpt.read(p)
    except ValueError as e:
        raise _fail(path, str(e)) from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):  # a Lightning checkpoint
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise _fail(path, f"holds a {type(obj).__name__}, not a state dict")

    def part(prefix: str) -> dict:
        # the package's own rule: keys starting with the prefix, first dotted component dropped
        return {".".join(k.split(".")[1:]): v for k, v in obj.items() if isinstance(k, str) and k.startswith(prefix)}

    encoder, transform = part("audio_encoder"), part("audio_transform")
    if not encoder:
        raise _fail(path, "has no Wav2CLIP audio encoder (no 'audio_encoder.*' entries)")
    if not transform:
        raise _fail(path, "has no Wav2CLIP projection (no 'audio_transform.*' entries)")
    return encoder, transform


def _load_strict(module, state: dict, what: str, path: str) -> None:
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise _fail(path, f"its {what} does not fit Wav2CLIP's: {str(e)[:500]}") from e
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise _fail(path, f"its {what} does not fit Wav2CLIP's: missing {missing[:5]}, unexpected {unexpected[:5]}")


def build(path: str):
    """(encoder, transform) with the checkpoint's weights, in inference mode."""
    from soundsim.models import _wav2clip_net as net

    enc_state, tr_state = read_state(path)
    try:
        layers, units = net.blocks_per_stage(enc_state), net.mlp_units(tr_state)
    except (KeyError, ValueError, IndexError) as e:
        raise _fail(path, f"not Wav2CLIP's ResNet-18 + MLP ({type(e).__name__}: {e})") from e
    if units[0] != 512 or units[-1] != DIM:
        raise _fail(path, f"projection {units[0]} -> {units[-1]} dims; Wav2CLIP's is 512 -> {DIM}")
    encoder, transform = net.ResNet(layers), net.MLPLayers(units)
    enc_state = dict(enc_state)
    enc_state.setdefault("spectrogram.window", encoder.spectrogram.window)  # a buffer: rebuilt if absent
    _load_strict(encoder, enc_state, "audio encoder", path)
    _load_strict(transform, tr_state, "projection (audio_transform)", path)
    return encoder.eval(), transform.eval()


class Wav2clipEmbedder:
    def __init__(self, weights: str | None, device: str = "cpu", native_rate: bool = False,
                 max_seconds: float = MAX_SECONDS) -> None:
        import torch

        if not weights:
            raise ConfigError(f"models.wav2clip.weights.base: no weights path given ({INFO.weights_hint})")
        self.torch = torch
        self.device = torch.device(device)
        self.native_rate = bool(native_rate)
        self.max_samples = int(round(float(max_seconds) * SAMPLE_RATE)) if max_seconds else 0
        self.dim = DIM
        encoder, transform = build(weights)
        self.encoder, self.transform = encoder.to(self.device), transform.to(self.device)

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        check_sample_rate("wav2clip", sample_rate, SAMPLE_RATE)
        x = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if self.max_samples:
            x = x[: self.max_samples]
        if self.native_rate:
            import soxr

            x = soxr.resample(x, SAMPLE_RATE, NATIVE_RATE, quality="VHQ").astype(np.float32, copy=False)
        if x.size <= 256:
            raise ValueError(f"clip too short for wav2clip: {x.size} samples, the STFT needs more than 256")
        torch = self.torch
        with torch.inference_mode():
            emb = self.transform(self.encoder(torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device)))
        return emb.cpu().numpy().astype(np.float32)


def load(variation: str, weights: str | None, device: str = "cpu", *, native_rate: bool,
         max_seconds: float) -> Wav2clipEmbedder:
    """Options: ``native_rate`` (true: resample the 44.1 kHz input to Wav2CLIP's 16 kHz first;
    default false, as the paper), ``max_seconds`` (seconds embedded from the start; 0 = whole clip)."""
    if variation != "base":
        raise ConfigError(f"models.wav2clip.variations: {variation!r}; allowed values: base")
    return Wav2clipEmbedder(weights, device, native_rate, max_seconds)
