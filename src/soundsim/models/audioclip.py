"""AudioCLIP (Guzhov et al., ICASSP 2022): the audio branch, ESResNeXt-fbsp, of CLIP extended to audio.

Model: AudioCLIP's audio head, an ESResNeXt (ResNeXt-50 32x4d with attention blocks
after each stage) on a learnable time-frequency transform (fbsp: frequency B-spline
kernels), trained first on AudioSet and then jointly with CLIP's image and text
heads. Variations: ``full-training`` (the paper's best: CLIP's image and text heads
trained too) and ``partial-training`` (CLIP frozen; audio embeddings compatible with
the vanilla CLIP RN50). Both have the same architecture. Re-implemented in plain torch
in :mod:`soundsim.models._audioclip_net` (no torchvision, whose PyPI wheels do not
load beside torch 2.13 CPU); runs in the main environment.

Input: 44.1 kHz mono float32. The waveform goes to the model as the paper's authors
passed it (raraz15/semantic-sound-similarity, ``code/audioclip-embedding-extractor.py``):
the float samples in [-1, 1] **unscaled** (option ``scaling: none``, the default). The
model itself treats its input as int16-range samples and maps [-32768, 32767] onto
[-1, 1] (``2 x / 65535 + 1 / 65535``), so the paper's audio reaches the frontend
about 90 dB quieter, with a DC offset of 1/65535. AudioCLIP's own datasets instead
min-max scale each clip to [-32768, 32767] (``scaling: minmax``); ``scaling: int16``
multiplies by 32768. Then: frames of 1654 samples (Blackman-Harris window), hop 561,
zero-padded on both sides to whole hops, padded to 2048, the fbsp transform (1025
complex bins), power, the first 1023 bins split into 3 bands of 341 used as the 3
input channels of the CNN, ``10 log10`` (zeros -> 1e-18).

Layer: ``encode_audio`` (the ``fc`` projection into the joint CLIP space, 1024-dim)
divided by its L2 norm, as ``AudioCLIP.forward(audio=...)`` returns it and the paper
used. Clip-level: one row per clip (global average pooling with attention over the
whole spectrogram). Clips shorter than 1 s are zero-padded at the end to 1 s
(``min_duration``, as the authors' AudioCLIP script). Long clips: the first 30 s
are embedded (the authors' ``TRIM_DUR``; FSD50K clips are at most 30 s), option
``max_seconds`` (0: the whole clip). The waveform is cut before anything else
(scaling, spectrogram), so memory per clip does not grow past 30 s (with
``max_seconds: 0`` it grows with the clip: the spectrogram and CNN activations of
the whole clip). Deterministic: no random crops, BN in
inference mode, one clip at a time.

Weights (required): the official AudioCLIP checkpoints from
https://github.com/AndreyGuzhov/AudioCLIP/releases (tag v0.1):
``AudioCLIP-Full-Training.pt`` and ``AudioCLIP-Partial-Training.pt``, each a
``torch.save``\\ d state dict of the whole model (CLIP's ``visual.*``,
``transformer.*``... and the audio head's ``audio.*``). Only ``audio.*`` is read
and must load strictly (a missing ``audio.window`` buffer is rebuilt with SciPy, a
missing empty ``audio.fbsp.bias`` is not needed).
The number of bottleneck blocks per stage, the cardinality and the group width are
read from the state dict (so a small test checkpoint runs the same code); the fbsp
frontend must be the official one (1025 bins, 1654-sample window) and the
embedding 1024-dim. ``ESRNXFBSP.pt`` (the AudioSet-pretrained audio head alone,
527 classes) is refused: it is not AudioCLIP.

Numerical check (done once, not in the test suite): the forward path of upstream
``model/esresnet`` (base.py, fbsp.py, attention.py) and ``utils/transforms.py``
(AndreyGuzhov/AudioCLIP; the same code as the authors' vendored copy of commit 45327aa),
transcribed unchanged into a scratch folder with torchvision and ignite_trainer
stubbed, ``ESResNeXtFBSP(n_fft=2048, hop_length=561, win_length=1654,
window='blackmanharris', normalized=True, spec_height=-1, spec_width=-1,
num_classes=1024, apply_attention=True)`` with random weights (full ResNeXt-50 size,
randomised BN statistics and fbsp parameters), followed by AudioCLIP.forward's L2
normalisation, against this module on the same checkpoint (``audio.*`` keys), on
1 s, 4.3 s and 10 s clips with ``scaling`` none and minmax: max abs difference 0.0
(identical float32 output), also 0.0 on the dB spectrogram the CNN sees.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from soundsim.errors import ConfigError
from soundsim.models import ModelInfo, OptionSpec, PaperInfo, check_sample_rate

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
DIM = 1024
MAX_SECONDS = 30.0  # the authors' TRIM_DUR
SCALINGS = ("none", "minmax", "int16")
VARIATIONS = ("full-training", "partial-training")
WEIGHT_FILES = {"full-training": "AudioCLIP-Full-Training.pt", "partial-training": "AudioCLIP-Partial-Training.pt"}
RELEASES = "https://github.com/AndreyGuzhov/AudioCLIP/releases (tag v0.1)"

INFO = ModelInfo(
    name="audioclip",
    variations=VARIATIONS,
    default_variation="full-training",
    sample_rate=SAMPLE_RATE,
    level="clip",
    hop=None,
    dim=DIM,
    env="soundsim",
    description="AudioCLIP (Guzhov et al. 2022): ESResNeXt-fbsp audio head aligned with CLIP on AudioSet; "
    "L2-normalised 1024-dim audio embedding",
    weights="required",
    weights_hint=f"AudioCLIP-Full-Training.pt / AudioCLIP-Partial-Training.pt from {RELEASES}",
    weight_files=WEIGHT_FILES,
    min_duration=1.0,
    long_clips="the first 30 s are embedded (the authors' trim; option max_seconds, 0 = whole clip)",
    paper=PaperInfo(modality="A & I & L", objective="Contrastive alignment", params="30M", data_size="1.8M",
                    dims=1024),
    packages=("torch", "scipy"),
    options={
        "scaling": OptionSpec(str, "none", "how the [-1, 1] waveform is handed to AudioCLIP: none (the paper's "
                              "authors), minmax (AudioCLIP's own datasets), int16 (x 32768)", choices=SCALINGS),
        "max_seconds": OptionSpec(float, MAX_SECONDS, "seconds embedded from the start of a clip; 0: the whole clip",
                                  min=0),
    },
    # Guzhov et al., ICASSP 2022 (AudioCLIP) / paper Sec. II-B: ESResNeXt pre-trained on AudioSet, then trained
    # with CLIP on AudioSet (CLIP's image-text pairs and ImageNet initialisation: not audio, not listed)
    trained_on=("AudioSet",),
)


def _fail(variation: str, path: str, problem: str) -> ConfigError:
    return ConfigError(f"models.audioclip.weights.{variation}: {path}: {problem} "
                       f"(expected {WEIGHT_FILES[variation]} from {RELEASES})")


def read_audio_state(path: str, variation: str) -> dict:
    """The ``audio.*`` entries of an AudioCLIP checkpoint, without the prefix; ConfigError otherwise."""
    from soundsim.models import _torch_ckpt

    p = Path(path)
    if not p.is_file():
        raise _fail(variation, path, "no such file" if not p.exists() else "not a file")
    try:
        obj = _torch_ckpt.read(p)
    except ValueError as e:
        raise _fail(variation, path, str(e)) from e
    if not isinstance(obj, dict):
        raise _fail(variation, path, f"holds a {type(obj).__name__}, not a state dict")
    state = {k[len("audio."):]: v for k, v in obj.items() if isinstance(k, str) and k.startswith("audio.")}
    if not state:
        if "fbsp.m" in obj and "conv1.weight" in obj:
            raise _fail(variation, path, "holds an ESResNeXt-fbsp audio model alone (ESRNXFBSP.pt?), not AudioCLIP")
        raise _fail(variation, path, "has no AudioCLIP audio head (no 'audio.*' entries)")
    return state


def build(state: dict, variation: str, path: str):
    """An ESResNeXtFBSP with ``state`` loaded strictly, in inference mode."""
    import torch

    from soundsim.models import _audioclip_net as net

    try:
        arch = net.architecture(state)
    except (KeyError, ValueError, IndexError) as e:
        raise _fail(variation, path, f"the audio head is not an ESResNeXt-fbsp ({type(e).__name__}: {e})") from e
    if arch["n_fft"] != net.N_FFT or arch["win_length"] != net.WIN_LENGTH:
        raise _fail(variation, path, f"fbsp frontend with n_fft {arch['n_fft']}, window {arch['win_length']}; "
                                     f"AudioCLIP's is {net.N_FFT}, {net.WIN_LENGTH}")
    if arch["num_classes"] != DIM:
        raise _fail(variation, path, f"audio embedding of {arch['num_classes']} dims, AudioCLIP's has {DIM}")
    model = net.ESResNeXtFBSP(**arch)
    state = dict(state)
    state.setdefault("window", model.window)  # a buffer, rebuilt the same way where a checkpoint lacks it
    state.setdefault("fbsp.bias", model.fbsp.bias.detach())  # empty (unused) in AudioCLIP's fbsp
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise _fail(variation, path, f"does not fit the ESResNeXt-fbsp audio head: {str(e)[:500]}") from e
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise _fail(variation, path, f"does not fit the ESResNeXt-fbsp audio head: missing {missing[:5]}, "
                                     f"unexpected {unexpected[:5]}")
    with torch.no_grad():
        return model.freeze()


def to_model_units(x: np.ndarray, scaling: str) -> np.ndarray:
    """The waveform as handed to AudioCLIP (see module docstring)."""
    x = np.asarray(x, dtype=np.float32)
    if scaling == "none":
        return x
    if scaling == "int16":
        return x * np.float32(32768.0)
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:  # a constant clip: AudioCLIP's scale() would divide by zero
        return np.zeros_like(x)
    return ((x - np.float32(lo)) * np.float32(65535.0) / np.float32(hi - lo) - np.float32(32768.0)).astype(np.float32)


class AudioclipEmbedder:
    def __init__(self, variation: str, weights: str | None, device: str = "cpu", scaling: str = "none",
                 max_seconds: float = MAX_SECONDS) -> None:
        import torch

        if variation not in VARIATIONS:
            raise ConfigError(f"models.audioclip.variations: {variation!r}; allowed values: {', '.join(VARIATIONS)}")
        if not weights:
            raise ConfigError(f"models.audioclip.weights.{variation}: no weights path given ({INFO.weights_hint})")
        self.torch = torch
        self.device = torch.device(device)
        self.scaling = scaling
        self.max_samples = int(round(float(max_seconds) * SAMPLE_RATE)) if max_seconds else 0
        self.dim = DIM
        self.model = build(read_audio_state(weights, variation), variation, weights).to(self.device)

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        check_sample_rate("AudioCLIP", sample_rate, SAMPLE_RATE)
        x = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if self.max_samples:
            x = x[: self.max_samples]
        if x.size == 0:
            raise ValueError("empty waveform")
        x = to_model_units(x, self.scaling)
        torch = self.torch
        with torch.inference_mode():
            emb = self.model(torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device))
            emb = emb / emb.norm(dim=-1, keepdim=True)
        return emb.cpu().numpy().astype(np.float32)


def load(variation: str, weights: str | None, device: str = "cpu", *, scaling: str,
         max_seconds: float) -> AudioclipEmbedder:
    """Options: ``scaling`` (none | minmax | int16; see module docstring), ``max_seconds``
    (seconds embedded from the start of a clip; 0 = the whole clip)."""
    return AudioclipEmbedder(variation, weights, device, scaling, max_seconds)
