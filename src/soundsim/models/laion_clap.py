"""LAION-CLAP (Wu, Chen et al., ICASSP 2023): the HTS-AT audio encoder of a
contrastive language-audio model, one 512-dim vector per clip.

The paper (Table II: A & L, contrastive alignment, 31M audio-encoder parameters,
2.5M audio-text pairs, 512 dims) uses ``630k-fusion-best`` (the default here):
its code calls ``laion_clap.CLAP_Module(enable_fusion=True)``,
``load_ckpt(<file>)`` and ``get_audio_embedding_from_filelist`` (librosa load at
48 kHz, int16 quantisation, the model's feature fusion), i.e. the **normalised,
projected** audio embedding: ``F.normalize(audio_projection(audio_branch(x)
["embedding"]))``. That is what this module returns, one row per clip
(``INFO.level = "clip"``) for every variation.

Variations (official checkpoint files ``<variation>.pt``, from the LAION-AI/CLAP
README, hosted at https://huggingface.co/lukewys/laion_clap):

* ``630k-fusion-best`` (default, the paper's): HTSAT-tiny, feature fusion, LAION-Audio-630K;
* ``630k-best``: HTSAT-tiny, no fusion, LAION-Audio-630K;
* ``630k-audioset-fusion-best``: HTSAT-tiny, fusion, 630K + AudioSet;
* ``630k-audioset-best``: HTSAT-tiny, no fusion, 630K + AudioSet;
* ``music_audioset_epoch_15_esc_90.14``, ``music_speech_epoch_15_esc_89.25``,
  ``music_speech_audioset_epoch_15_esc_89.98``: HTSAT-base, no fusion, trained
  with music (+ speech, + AudioSet) added

(the music checkpoints are loaded upstream with ``amodel='HTSAT-base'``, non-fusion).

Model, built offline: ``laion_clap.CLAP_Module`` builds the RoBERTa text branch
from the Hugging Face hub and ``laion_clap`` imports torchvision, torchaudio,
webdataset and three tokenizers (downloaded) at import time; none of that is
needed for audio. soundsim builds the **audio branch alone** from the installed
``laion-clap`` 1.1.7 package's own files (installed ``--no-deps``):
``clap_module/htsat.py`` (``create_htsat_model``, the official HTS-AT builder),
``clap_module/feature_fusion.py`` (AFF) and ``model_configs/HTSAT-{tiny,base}.json``
(the audio config: 48 kHz, 1024-sample window, hop 480, 64 mel bands 50-14000 Hz,
527 classes), loaded as a private package without running ``laion_clap/__init__``
(the two helpers ``htsat.py`` takes from ``clap_module/utils.py``, which imports
torchvision, are restated here: ``interpolate`` and ``do_mixup``). The projection
is ``CLAP.audio_projection``: Linear(768 (tiny) / 1024 (base), 512), ReLU,
Linear(512, 512). Nothing touches the network.

Input (exactly ``get_audio_embedding_from_data`` / ``get_audio_features``):

* 48 kHz mono float32, quantised as upstream: ``int16_to_float32(float32_to_int16(x))``
  (clip to [-1, 1], ``(x * 32767).astype(int16)``, ``/ 32767``);
* clips up to 10 s (480000 samples): ``repeatpad`` — the clip is tiled
  ``int(480000 / n)`` times and zero-padded to 10 s (extraction's
  ``min_duration`` is 0: no zero padding before that). Non-fusion variations
  compute the log-mel inside the model (torchlibrosa, Slaney mel); fusion
  variations compute it in the data path (torchaudio ``MelSpectrogram``: Hann
  1024, hop 480, centred with reflect padding, power, HTK mel without norm,
  then ``10 log10(max(x, 1e-10))``, re-implemented here in plain torch) and feed
  the same 1001-frame mel four times (``longer = False``: only the global path);
* longer clips, **made deterministic** (upstream picks random positions):

  - fusion variations (the whole clip is used): ``mel_fusion`` = the whole
    clip's mel squeezed to 1001 frames (bilinear resize, as upstream's
    ``torchvision.transforms.Resize``) plus three 1001-frame local crops.
    Upstream splits the possible start frames ``0 .. T - 1001`` into three
    ``np.array_split`` parts and draws one start at random in each; soundsim
    takes the **middle element of each part** (front, middle and back of the
    clip, evenly spread). ``longer = True``: the AFF fusion of global and local
    patches. (Clips of 480001-480479 samples give exactly 1001 frames: the
    whole mel four times, ``longer = False``, as upstream.)
  - non-fusion variations (upstream ``rand_trunc``: one random 10 s crop):
    option ``crop`` — ``"start"`` (default: the first 10 s, i.e. upstream's
    crop at offset 0), ``"center"`` (the middle 10 s) or ``"mean"`` (the clip
    cut into consecutive 10 s windows, the last one ending at the clip's end;
    the mean of their normalised embeddings, normalised again).

* The global mel resize: the models were trained (LAION-AI/CLAP
  requirements: torchvision 0.13.1) when ``Resize`` on tensors did **not**
  antialias; torchvision >= 0.17 antialiases by default, so ``laion_clap``
  today gives slightly different fusion embeddings for clips over 10 s.
  soundsim follows the training-time behaviour (``antialias=False``); option
  ``antialias: true`` reproduces laion_clap under torchvision >= 0.17.

Memory per clip: the quantisation is applied only to what is used (the crop(s),
or, for fusion, each chunk of the STFT), never to a copy of the whole clip; a long
clip's fusion mel is computed :data:`MEL_CHUNK_FRAMES` STFT frames (60 s) at a time
from the samples those frames cover (:meth:`MelFrontEnd.chunked`, the reflect padding
at the clip's ends rebuilt; the whole clip's complex STFT took 1.5 GB per hour). What
still grows with the clip is the mel itself (64 floats per 10 ms: 92 MB per hour, an
eighth of the 48 kHz waveform), because the global input is a resize of the whole mel
(with ``antialias`` every frame contributes). Clips up to 60 s are one chunk (the same
mel as the whole-clip STFT, bit for bit in our checks); longer ones equal it up to
float rounding.

Audio reaches the model resampled by soundsim's extraction (soxr VHQ; the
paper's code used ``librosa.load(sr=48000)``, soxr HQ). Speed on one CPU core
of a 2-core test machine: about 0.4 s per clip (HTSAT-tiny) and 1.3 s
(HTSAT-base), whatever the clip's length (one 10 s input; ``crop: mean`` runs
one per 10 s window).

Options: ``crop`` (``start`` | ``center`` | ``mean``, non-fusion long clips),
``antialias`` (bool, fusion long clips), ``threads`` (torch intra-op threads,
0 = torch's default).

Checkpoint: the official ``.pt`` file, a ``torch.save`` of a dict with
``state_dict`` (keys prefixed ``module.``: ``module.audio_branch.*``,
``module.audio_projection.*``, ``module.text_branch.*``, ...) and ``epoch``
(plus training state); a bare state dict or keys without ``module.`` are
accepted too, as ``laion_clap.clap_module.factory.load_state_dict`` does. Only
the ``audio_branch.*`` and ``audio_projection.*`` tensors are loaded (strictly:
every one must be there with the right shape). Loaded with ``weights_only=True``
first, falling back to a full unpickle for files that hold other objects, as
laion_clap does. A missing file, a file that is not a PyTorch checkpoint, one
without a LAION-CLAP audio branch, a fusion checkpoint for a non-fusion
variation (or the reverse) and an HTSAT-base checkpoint for an HTSAT-tiny
variation (or the reverse) are ConfigErrors naming the path.

Verification (tests/test_models_laion_clap.py builds random checkpoints of the
real HTSAT-tiny fusion / non-fusion and HTSAT-base architectures in the official
format and checks rows, dtype, norms, determinism, repeat-padding, the crops and
the errors): once, in a scratch environment holding laion_clap 1.1.7's own code
(``CLAP_Module(enable_fusion, amodel, tmodel='transformer')`` so that the text
branch is built locally, random weights saved in the official format and
loaded with its ``load_ckpt``; ``get_audio_embedding_from_data`` with its
``get_audio_features``, the real torchaudio 2.11 ``MelSpectrogram`` /
``AmplitudeToDB`` and torchvision 0.28 ``Resize`` (pure torch; their C
extensions, which do not load beside torch 2.13 CPU, removed there, and
``transformers`` stubbed: tokenizers only); its random choices replaced
by soundsim's deterministic ones: crop offset 0, middle element of each third),
for 630k-fusion-best (both ``antialias`` settings, the training-time one by
``Resize(..., antialias=False)``), 630k-best and
music_speech_audioset_epoch_15_esc_89.98, on clips of 1 s, 3.3 s (clipped by
the quantisation), 10 s, 10.005 s (the 1001-frame corner case), 25 s and 61 s:
the largest absolute difference over all 512 dims was **0** (bit-identical) in
all 24 comparisons.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from soundsim.errors import ConfigError
from soundsim.models import ModelInfo, OptionSpec, PaperInfo, check_sample_rate

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
MAX_LEN = 480000  # 10 s, laion_clap's max_len for get_audio_features
DIM = 512  # joint embedding (audio_projection output)
CROPS = ("start", "center", "mean")
MEL_CHUNK_FRAMES = 6000  # STFT frames per chunk of a long clip's fusion mel (60 s, ~25 MB of spectrum)

#: variation -> (HTS-AT size, feature fusion)
VARIATIONS: dict[str, tuple[str, bool]] = {
    "630k-fusion-best": ("tiny", True),
    "630k-best": ("tiny", False),
    "630k-audioset-fusion-best": ("tiny", True),
    "630k-audioset-best": ("tiny", False),
    "music_audioset_epoch_15_esc_90.14": ("base", False),
    "music_speech_epoch_15_esc_89.25": ("base", False),
    "music_speech_audioset_epoch_15_esc_89.98": ("base", False),
}
FUSION_TYPE = "aff_2d"  # CLAP_Module(enable_fusion=True)
#: HTS-AT size -> patch embedding width (create_htsat_model)
HTSAT_WIDTH = {"tiny": 96, "base": 128, "large": 256}

INFO = ModelInfo(
    name="laion-clap",
    variations=tuple(VARIATIONS),
    default_variation="630k-fusion-best",
    sample_rate=SAMPLE_RATE,
    level="clip",
    hop=None,
    dim=DIM,
    env="laion-clap",
    description="LAION-CLAP (ICASSP 2023) HTS-AT audio encoder, contrastive language-audio pre-training; "
    "normalised projected 512-dim audio embedding per clip",
    weights="required",
    weight_files={v: f"{v}.pt" for v in VARIATIONS},
    weights_hint="official checkpoint <variation>.pt (e.g. 630k-fusion-best.pt, 630k-audioset-best.pt, "
    "music_speech_audioset_epoch_15_esc_89.98.pt) from https://huggingface.co/lukewys/laion_clap "
    "(listed in the LAION-AI/CLAP README)",
    min_duration=0.0,
    long_clips="fusion variations: the whole clip (global mel squeezed to 10 s + three 10 s local crops at the "
    "middle of the front/middle/back thirds of the start positions, not random); non-fusion: the first 10 s "
    "(option crop: start | center | mean of consecutive 10 s windows); clips under 10 s are repeat-padded",
    paper=PaperInfo(modality="A & L", objective="Contrastive alignment", params="31M", data_size="2.5M", dims=512),
    packages=("laion-clap", "torch", "torchlibrosa", "librosa"),
    needs_gpu=False,
    options={
        "crop": OptionSpec(str, "start", "non-fusion clips over 10 s: the first 10 s, the middle 10 s, or the mean "
                           "of consecutive 10 s windows", choices=CROPS),
        "antialias": OptionSpec(bool, False, "fusion clips over 10 s: antialiased resize of the global mel "
                                "(laion_clap under torchvision >= 0.17); false: as at training time"),
        "threads": OptionSpec(int, 0, "torch intra-op threads; 0: torch's default", min=0),
    },
    # Wu et al., ICASSP 2023 (LAION-CLAP), Sec. 2: LAION-Audio-630K (Freesound, BBC Sound Effects and other
    # sites) + AudioCaps + Clotho; AudioSet (keyword-to-caption) in the *audioset* variations only
    trained_on=("LAION-Audio-630K", "FreeSound", "BBC Sound Effects", "AudioCaps", "Clotho", "AudioSet"),
    trained_on_notes={"FreeSound": "inside LAION-Audio-630K", "BBC Sound Effects": "inside LAION-Audio-630K",
                      "AudioSet": "the *audioset* variations only"},
)

# ---------------------------------------------------------------- laion_clap's audio code, without its package init
_PKG = "_soundsim_laion_clap_module"


def _interpolate(x, ratio: int):
    """clap_module.utils.interpolate: repeat each time step ``ratio`` times."""
    b, t, c = x.shape
    return x[:, :, None, :].repeat(1, 1, ratio, 1).reshape(b, t * ratio, c)


def _do_mixup(x, mixup_lambda):
    """clap_module.utils.do_mixup (training only)."""
    import torch

    return (x.transpose(0, -1) * mixup_lambda + torch.flip(x, dims=[0]).transpose(0, -1) * (1 - mixup_lambda)
            ).transpose(0, -1)


def clap_module_dir() -> Path:
    """Folder ``laion_clap/clap_module`` of the installed laion-clap package (not imported)."""
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the laion-clap package is not installed (run in the 'laion-clap' environment: "
                          "envs/laion-clap.txt, laion-clap==1.1.7 installed with --no-deps)")
    return Path(next(iter(spec.submodule_search_locations))) / "clap_module"


def htsat_module() -> types.ModuleType:
    """laion_clap's ``clap_module/htsat.py``, imported as ``_soundsim_laion_clap_module.htsat``
    so that ``laion_clap/__init__`` (torchvision, tokenizer downloads) never runs."""
    name = f"{_PKG}.htsat"
    if name in sys.modules:
        return sys.modules[name]
    folder = clap_module_dir()
    pkg = types.ModuleType(_PKG)
    pkg.__path__ = [str(folder)]
    pkg.__package__ = _PKG
    utils = types.ModuleType(f"{_PKG}.utils")
    utils.interpolate = _interpolate
    utils.do_mixup = _do_mixup
    sys.modules[_PKG] = pkg
    sys.modules[f"{_PKG}.utils"] = utils
    return importlib.import_module(name)


def model_config(size: str) -> dict[str, Any]:
    """The package's ``model_configs/HTSAT-<size>.json`` (embed_dim, audio_cfg)."""
    with open(clap_module_dir() / "model_configs" / f"HTSAT-{size}.json") as fh:
        return json.load(fh)


def build_audio_encoder(size: str, fusion: bool):
    """The audio half of ``clap_module.CLAP``: ``audio_branch`` (HTS-AT) and
    ``audio_projection`` with the same module names, so checkpoint keys match."""
    from torch import nn

    cfg = model_config(size)
    audio_cfg = types.SimpleNamespace(**cfg["audio_cfg"])
    htsat = htsat_module()
    enc = nn.Module()
    enc.audio_branch = htsat.create_htsat_model(audio_cfg, fusion, FUSION_TYPE if fusion else "None")
    enc.audio_projection = nn.Sequential(nn.Linear(cfg["embed_dim"], DIM), nn.ReLU(), nn.Linear(DIM, DIM))
    enc.audio_cfg = cfg["audio_cfg"]
    return enc.eval()


# ---------------------------------------------------------------- checkpoint
def read_checkpoint(path: str, variation: str) -> dict[str, Any]:
    """The ``audio_branch.*`` / ``audio_projection.*`` tensors of an official
    checkpoint (``module.`` prefix removed); ConfigError for anything else."""
    where = f"models.laion-clap.weights.{variation}: {path}"
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{where} does not exist or is not a file ({INFO.weights_hint})")
    from soundsim.models import _torch_ckpt

    try:
        ckpt = _torch_ckpt.read(p)
    except ValueError as e:
        raise ConfigError(f"{where} is {e}") from e
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise ConfigError(f"{where} holds no state dict (expected a dict with 'state_dict', as the official files)")
    out = {}
    for k, v in state.items():
        k = str(k)
        k = k[len("module."):] if k.startswith("module.") else k
        if k.startswith(("audio_branch.", "audio_projection.")):
            out[k] = v
    if not any(k.startswith("audio_branch.") for k in out):
        raise ConfigError(f"{where} has no LAION-CLAP audio branch (no 'module.audio_branch.*' keys)")
    return out


def describe_checkpoint(state: dict[str, Any]) -> tuple[str, bool]:
    """(HTS-AT size, fusion) of a checkpoint's audio branch."""
    w = state.get("audio_branch.patch_embed.proj.weight")
    width = int(w.shape[0]) if w is not None else -1
    size = {v: k for k, v in HTSAT_WIDTH.items()}.get(width, f"unknown (patch embedding width {width})")
    return size, "audio_branch.patch_embed.mel_conv2d.weight" in state


# ---------------------------------------------------------------- features (laion_clap.training.data)
def quantize(x: np.ndarray) -> np.ndarray:
    """int16_to_float32(float32_to_int16(x)), as laion_clap before embedding."""
    q = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    return (q / 32767.0).astype(np.float32)


def repeatpad(x: np.ndarray) -> np.ndarray:
    """data_filling='repeatpad': tile int(480000 / n) times, zero-pad to 480000."""
    n = len(x)
    if n == 0:
        raise ValueError("empty waveform: LAION-CLAP cannot embed a clip of 0 samples")
    if n >= MAX_LEN:
        return x[:MAX_LEN]
    x = np.tile(x, MAX_LEN // n)  # int(max_len / len) == max_len // len for these sizes
    return np.pad(x, (0, MAX_LEN - len(x)))


class MelFrontEnd:
    """laion_clap.training.data.get_mel: torchaudio MelSpectrogram (power, HTK mel,
    no norm) + AmplitudeToDB(top_db=None), in plain torch. Returns (T, n_mels)."""

    def __init__(self, audio_cfg: dict[str, Any], device: str = "cpu") -> None:
        import math

        import torch

        sr, n_fft = int(audio_cfg["sample_rate"]), int(audio_cfg["window_size"])
        self.n_fft, self.hop = n_fft, int(audio_cfg["hop_size"])
        n_freqs, n_mels = n_fft // 2 + 1, int(audio_cfg["mel_bins"])
        self.window = torch.hann_window(n_fft).to(device)  # torchaudio's default window_fn (periodic)
        # torchaudio.functional.melscale_fbanks(..., norm=None, mel_scale="htk")
        all_freqs = torch.linspace(0, sr // 2, n_freqs)
        m_min = 2595.0 * math.log10(1.0 + float(audio_cfg["fmin"]) / 700.0)
        m_max = 2595.0 * math.log10(1.0 + float(audio_cfg["fmax"]) / 700.0)
        m_pts = torch.linspace(m_min, m_max, n_mels + 2)
        f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)
        f_diff = f_pts[1:] - f_pts[:-1]
        slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
        down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
        up = slopes[:, 2:] / f_diff[1:]
        self.fb = torch.max(torch.zeros(1), torch.min(down, up)).to(device)  # (n_freqs, n_mels)

    def __call__(self, wave):
        import torch

        spec = torch.stft(wave, n_fft=self.n_fft, hop_length=self.hop, win_length=self.n_fft, window=self.window,
                          center=True, pad_mode="reflect", normalized=False, onesided=True,
                          return_complex=True).abs().pow(2.0)  # (freq, T)
        return self._db(spec)

    def _db(self, spec):
        import torch

        mel = torch.matmul(spec.transpose(-1, -2), self.fb)  # (T, n_mels)
        return 10.0 * torch.log10(torch.clamp(mel, min=1e-10))

    def n_frames(self, n_samples: int) -> int:
        """Frames of the centred STFT of ``n_samples`` (``1 + n // hop``)."""
        return 1 + n_samples // self.hop

    def chunked(self, x: np.ndarray, transform=None, frames: int | None = None):
        """``self(transform(x))`` for a long 1-D float32 ``x``, computed at most ``frames`` STFT
        frames at a time from the samples those frames cover (the reflect padding at the clip's ends
        rebuilt by index), so that the STFT of the whole clip never exists; ``transform``
        (elementwise, e.g. :func:`quantize`) is applied to each segment. Returns (T, n_mels)."""
        import torch

        frames = int(frames or MEL_CHUNK_FRAMES)
        n, half = len(x), self.n_fft // 2
        if n <= half:
            raise ValueError(f"clip too short for the reflect-padded STFT: {n} samples")
        total = self.n_frames(n)
        parts = -(-total // frames)  # chunks of equal size (+-1): no tiny last chunk
        out = None
        for k in range(parts):
            a, b = k * total // parts, (k + 1) * total // parts
            lo, hi = a * self.hop - half, (b - 1) * self.hop + half - 1  # original sample indices, inclusive
            idx = np.arange(lo, hi + 1)
            if lo < 0 or hi >= n:  # torch's reflect padding: -i before the start, 2 (n - 1) - i after the end
                idx = np.abs(idx)
                idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)
                seg = x[idx]
            else:
                seg = x[lo : hi + 1]
            seg = np.ascontiguousarray(transform(seg) if transform is not None else seg, dtype=np.float32)
            spec = torch.stft(torch.from_numpy(seg).to(self.window.device), n_fft=self.n_fft, hop_length=self.hop,
                              win_length=self.n_fft, window=self.window, center=False, normalized=False,
                              onesided=True, return_complex=True).abs().pow(2.0)
            mel = self._db(spec)
            if out is None:
                out = torch.empty((total, mel.shape[1]), dtype=mel.dtype, device=mel.device)
            out[a:b] = mel
        return out


def fusion_starts(total_frames: int, chunk_frames: int) -> list[int]:
    """Start frames of the three local crops: the middle element of each of
    ``np.array_split(range(0, total - chunk + 1), 3)`` (upstream: a random one);
    an empty part uses 0, as upstream."""
    parts = np.array_split(np.arange(0, total_frames - chunk_frames + 1), 3)
    return [int(p[len(p) // 2]) if len(p) else 0 for p in parts]


# ---------------------------------------------------------------- embedder
class LaionClapEmbedder:
    """One HTS-AT audio encoder per loaded model; see module docstring."""

    dim = DIM

    def __init__(self, variation: str, weights: str | None, device: str = "cpu", crop: str = "start",
                 antialias: bool = False, threads: int = 0) -> None:
        if variation not in VARIATIONS:
            raise ConfigError(f"models.laion-clap.variations: {variation!r}; allowed values: {', '.join(VARIATIONS)}")
        if weights is None:
            raise ConfigError(f"models.laion-clap.weights.{variation}: no weights path given ({INFO.weights_hint})")
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.torch = torch
        self.variation, self.crop, self.antialias, self.device = variation, crop, bool(antialias), device
        self.size, self.fusion = VARIATIONS[variation]
        state = read_checkpoint(str(weights), variation)
        size, fusion = describe_checkpoint(state)
        if (size, fusion) != (self.size, self.fusion):
            def kind(s: str, f: bool) -> str:
                return f"HTSAT-{s} {'fusion' if f else 'non-fusion'}"

            raise ConfigError(
                f"models.laion-clap.weights.{variation}: {weights} is a {kind(size, fusion)} checkpoint, but "
                f"{variation} is {kind(self.size, self.fusion)} (is it the checkpoint of another variation?)"
            )
        self.model = build_audio_encoder(self.size, self.fusion)
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            msg = " ".join(str(e).split())
            raise ConfigError(f"models.laion-clap.weights.{variation}: {weights} does not fit the "
                              f"HTSAT-{self.size} audio branch: {msg[:600]}") from e
        self.model.to(device).eval()
        self.audio_cfg = self.model.audio_cfg
        self.mel = MelFrontEnd(self.audio_cfg, device) if self.fusion else None
        self.chunk_frames = MAX_LEN // int(self.audio_cfg["hop_size"]) + 1  # 1001

    # -- inputs, as get_audio_features(..., 480000, 'fusion' | 'rand_trunc', 'repeatpad', audio_cfg)
    def _fusion_input(self, x: np.ndarray) -> dict[str, Any]:
        """``x``: the waveform before :func:`quantize` (applied here, per chunk for long clips)."""
        torch = self.torch
        if len(x) > MAX_LEN:
            mel = self.mel.chunked(x, quantize)  # = self.mel(quantize(x)), in chunks
            total, chunk = mel.shape[0], self.chunk_frames
            if total == chunk:  # 480001..480479 samples: the whole mel, as upstream
                return {"mel_fusion": torch.stack([mel] * 4)[None], "longer": torch.tensor([[False]])}
            crops = [mel[s : s + chunk] for s in fusion_starts(total, chunk)]
            shrink = torch.nn.functional.interpolate(mel[None, None], size=(chunk, mel.shape[1]), mode="bilinear",
                                                     align_corners=False, antialias=self.antialias)[0, 0]
            return {"mel_fusion": torch.stack([shrink, *crops])[None], "longer": torch.tensor([[True]])}
        mel = self.mel(torch.from_numpy(repeatpad(quantize(x))).to(self.device))
        return {"mel_fusion": torch.stack([mel] * 4)[None], "longer": torch.tensor([[False]])}

    def _forward(self, inputs: dict[str, Any]) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            out = self.model.audio_branch(inputs, mixup_lambda=None, device=self.device)["embedding"]
            emb = torch.nn.functional.normalize(self.model.audio_projection(out), dim=-1)
        return emb.float().cpu().numpy()

    def _wave_rows(self, x: np.ndarray) -> np.ndarray:
        """Normalised embedding of one waveform input of at most 10 s (before :func:`quantize`)."""
        torch = self.torch
        wave = torch.from_numpy(np.ascontiguousarray(repeatpad(quantize(x))))[None]
        return self._forward({"waveform": wave, "longer": torch.tensor([[False]])})

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        check_sample_rate("LAION-CLAP", sample_rate, SAMPLE_RATE)
        x = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if len(x) == 0:
            raise ValueError("empty waveform: LAION-CLAP cannot embed a clip of 0 samples")
        # quantize() is elementwise: applied to the parts used only (no copy of the whole clip)
        if self.fusion:
            return self._forward(self._fusion_input(x)).astype(np.float32)
        if len(x) <= MAX_LEN or self.crop == "start":
            return self._wave_rows(x[:MAX_LEN]).astype(np.float32)
        if self.crop == "center":
            s = (len(x) - MAX_LEN) // 2
            return self._wave_rows(x[s : s + MAX_LEN]).astype(np.float32)
        starts = list(range(0, len(x) - MAX_LEN, MAX_LEN)) + [len(x) - MAX_LEN]  # last window ends at the end
        rows = np.concatenate([self._wave_rows(x[s : s + MAX_LEN]) for s in starts]).astype(np.float64)
        mean = rows.mean(axis=0)
        return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)[None]


def load(variation: str, weights: str | None, device: str = "cpu", *, crop: str, antialias: bool,
         threads: int) -> LaionClapEmbedder:
    """Options: ``crop`` (non-fusion clips over 10 s: ``start`` (default), ``center``, ``mean``),
    ``antialias`` (fusion clips over 10 s: antialiased resize of the global mel, as laion_clap with
    torchvision >= 0.17; default False, as at training time), ``threads`` (torch threads; 0 = default)."""
    return LaionClapEmbedder(variation, weights, device, crop=crop, antialias=antialias, threads=threads)
