"""Shared code of the Microsoft audio-language models: CLAP 2022, CLAP 2023 (PyPI
``msclap``) and Pengi (``microsoft/Pengi``, not on PyPI). Private: not a registry module.

Only the **audio encoder** is built: msclap's ``CLAPWrapper`` constructor downloads
weights and a text model from the Hugging Face hub and imports torchaudio, so it is
not used. Instead the encoder is assembled from msclap's own model modules
(``msclap.models.audio``: ``Cnn14`` for 2022, ``HTSATWrapper`` for 2023 and Pengi)
plus the projection head of ``msclap.models.clap`` (re-declared here with the same
module and parameter names, :func:`audio_encoder_class`, because importing
``msclap.models.clap`` imports transformers for the text encoder, which is not needed:
the environment has no transformers). msclap's package ``__init__`` files are not run
(:func:`msclap_audio_module`): ``msclap/__init__.py`` imports ``CLAPWrapper`` (torchaudio,
transformers, huggingface_hub).

Pengi's audio encoder (``Pengi/models/pengi.py`` ``AudioEncoder`` with
``Pengi/models/htsat.py`` ``HTSATWrapper``) is the same code as msclap's 2023 one: same
HTS-AT (``HTSAT_Swin_Transformer(config=config)``, hyper-parameters taken from the
module ``config``, not from the YAML), same ``Projection`` (768 -> 1024), same module
names (``audio_encoder.base.htsat.*``, ``audio_encoder.projection.*``); only Pengi's
embedding is L2-normalised (its config's ``normalize_prefix: True``, applied by
``PengiWrapper._get_audio_embeddings``).

Input (every model): 44.1 kHz mono (``sampling_rate`` of msclap's ``config_2022.yml``,
``config_2023.yml`` and Pengi's ``base.yml``) in windows of ``duration`` seconds
(5 s for CLAP 2022, 7 s for CLAP 2023 and Pengi), the length the models were trained
on. msclap / Pengi's ``load_audio_into_tensor`` repeats a shorter clip until it fills
the window (``x.repeat(ceil(W / n))[:W]``) and takes a **random** window of a longer
one. soundsim is deterministic instead (:func:`windows`):

* a clip of ``n <= W`` samples: one window, repeated as msclap does (bit-identical
  input to msclap's);
* a longer clip: consecutive non-overlapping windows starting at 0, W, 2W, ... and,
  when ``n`` is not a multiple of ``W``, one last window **ending at the clip's end**
  (it overlaps the previous one), so that every window holds only real audio, as
  msclap's crops do. ``ceil(n / W)`` rows (:func:`n_rows`); row k is the embedding
  msclap computes for the window that starts at ``k W`` (the last: at ``n - W``).

Each window gives one row (frame-level output, hop = ``duration``); aggregate over
rows for a clip-level vector (a clip up to ``duration`` seconds has one row, exactly
msclap's embedding). The windows are cut and embedded ``batch_size`` (option, default 8)
at a time, so memory per clip is bounded whatever its length (measured on one CPU core:
about 0.6 GB of activations for a batch of eight 7 s windows through HTS-AT, 0.4 GB for
eight 5 s windows through Cnn14; ``benchmarks/bench_memory.py``); another batch size
changes the rows at float rounding level only. The spectrogram front end (torchlibrosa STFT + log-mel, window
1024, hop 320) is part of the encoder, as in msclap. Mind msclap's HTS-AT: its
front end is built from ``msclap.models.config`` (32 kHz mel filters, 50-14000 Hz),
not from the YAML; the STFT and mel matrices are stored in the checkpoints
(``...spectrogram_extractor.stft.conv_real.weight``, ``...logmel_extractor.melW``)
and loaded from them, as msclap does.

Checkpoints: ``torch.save({'model': state_dict, ...})`` of the whole model (text
encoder, and for Pengi the GPT-2 decoder, included); a ``module.`` prefix (DDP) is
stripped as Pengi's wrapper does. Only the ``audio_encoder.*`` tensors are loaded,
strictly: every one must fit the architecture and every parameter of the encoder
must be present (only the buffers derived from the configuration may be absent:
STFT and mel matrices, HTS-AT attention masks and position indices, BatchNorm
counters; msclap itself loads with ``strict=False``, which would silently keep
random weights).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import sys
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from soundsim.errors import ConfigError
from soundsim.models import OptionSpec, check_sample_rate

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
BATCH_SIZE = 8  # windows per forward pass (option batch_size)
PACKAGES = ("msclap", "torch", "torchlibrosa", "librosa")
ENV = "msclap"

# suffixes of state-dict entries computed from the configuration at construction
# time (not learnt); a checkpoint may lack them
DERIVED = (
    "spectrogram_extractor.stft.conv_real.weight",
    "spectrogram_extractor.stft.conv_imag.weight",
    "logmel_extractor.melW",
    ".attn_mask",
    ".relative_position_index",
    ".num_batches_tracked",
)
MARKERS = {  # a parameter only this audio encoder has (key without 'audio_encoder.')
    "Cnn14": "base.conv_block1.conv1.weight",
    "HTSAT": "base.htsat.patch_embed.proj.weight",
}
ARCH_NAMES = {"Cnn14": "a Cnn14 (CLAP 2022)", "HTSAT": "an HTS-AT (CLAP 2023 / Pengi)"}


@dataclass(frozen=True)
class Spec:
    """The audio-encoder settings of one model (msclap's / Pengi's config files)."""

    name: str  # registry name
    variation: str
    audioenc_name: str  # 'Cnn14' | 'HTSAT'
    out_emb: int  # encoder embedding size (projection input)
    d_proj: int  # projection output = the embedding soundsim returns
    duration: int  # seconds per window (config 'duration')
    window_size: int = 1024
    hop_size: int = 320
    mel_bins: int = 64
    fmin: int = 50
    fmax: int = 14000
    classes_num: int = 527
    normalize: bool = False  # L2-normalise the embedding (Pengi's wrapper does)
    family: str = "clap"  # 'clap' | 'pengi': which whole-model checkpoint is expected

    @property
    def window(self) -> int:
        return self.duration * SAMPLE_RATE


SPECS = {
    # msclap/configs/config_2022.yml
    "clap-2022": Spec("clap-2022", "2022", "Cnn14", out_emb=2048, d_proj=1024, duration=5, fmax=14000),
    # msclap/configs/config_2023.yml (HTSATWrapper ignores the front-end values; see module docstring)
    "clap-2023": Spec("clap-2023", "2023", "HTSAT", out_emb=768, d_proj=1024, duration=7, fmax=8000),
    # Pengi/configs/base.yml (normalize_prefix: True)
    "pengi": Spec("pengi", "base", "HTSAT", out_emb=768, d_proj=1024, duration=7, fmax=8000, normalize=True,
                  family="pengi"),
}


def options(spec: Spec) -> dict[str, OptionSpec]:
    """The options of one model (``ModelInfo.options``): the same for all three, but
    ``normalize`` defaults to the model's own convention (Pengi: true; CLAP: false)."""
    return {
        "batch_size": OptionSpec(int, BATCH_SIZE, "windows per forward pass (memory; the rows change at float "
                                 "rounding level only)", min=1),
        "normalize": OptionSpec(bool, spec.normalize, "L2-normalise each window's embedding (Pengi's wrapper "
                                "does, msclap's CLAP does not)"),
    }


def n_rows(n_samples: int, duration: int) -> int:
    """Rows (windows) for a clip of ``n_samples`` at 44.1 kHz and ``duration``-second windows."""
    w = duration * SAMPLE_RATE
    return 1 if n_samples <= w else math.ceil(n_samples / w)


def window_starts(n: int, window: int) -> list[int]:
    """First sample of each window of a clip of ``n > window`` samples (module docstring)."""
    starts = list(range(0, n - window + 1, window))
    if starts[-1] + window < n:
        starts.append(n - window)
    return starts


def window_batches(x: np.ndarray, window: int, batch_size: int):
    """The rows of :func:`windows`, ``batch_size`` at a time (each a ``(k, window)`` float32
    array): only one batch of windows exists at once, whatever the clip's length."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    n = len(x)
    if n == 0:
        raise ValueError("empty clip: nothing to embed")
    if n <= window:  # msclap: audio.repeat(ceil(W / n))[0:W]
        yield np.tile(x, math.ceil(window / n))[:window][None, :]
        return
    starts = window_starts(n, window)
    for i in range(0, len(starts), batch_size):
        yield np.stack([x[s : s + window] for s in starts[i : i + batch_size]])


def windows(x: np.ndarray, window: int) -> np.ndarray:
    """(rows, window) float32: deterministic windows of a mono clip (module docstring)."""
    return np.concatenate(list(window_batches(x, window, 1 << 30)))


def msclap_audio_module() -> types.ModuleType:
    """``msclap.models.audio`` (Cnn14, HTSATWrapper) without running msclap's package
    ``__init__`` files, which import torchaudio, transformers and huggingface_hub."""
    if "msclap.models.audio" in sys.modules:
        return sys.modules["msclap.models.audio"]
    if "msclap" in sys.modules:  # imported already (the real package, or the bare one below)
        locations = list(getattr(sys.modules["msclap"], "__path__", []))
    else:
        spec = importlib.util.find_spec("msclap")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ImportError(
            "the msclap package is not installed: run in the 'msclap' environment (make envs ENVS=msclap; "
            "envs/msclap.txt, then pip install --no-deps msclap==1.3.4)"
        )
    root = Path(locations[0])
    for name, folder in (("msclap", root), ("msclap.models", root / "models")):
        if name not in sys.modules:  # a bare package: its submodules import, its __init__ is not run
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(folder)]
            pkg.__package__ = name
            sys.modules[name] = pkg
    return importlib.import_module("msclap.models.audio")


@lru_cache(maxsize=None)
def audio_encoder_class() -> type:
    """msclap's ``clap.AudioEncoder`` (= Pengi's, without its unused options): the
    encoder ('base') and ``Projection`` with msclap's module names."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    audio = msclap_audio_module()

    class Projection(nn.Module):  # msclap.models.clap.Projection
        def __init__(self, d_in: int, d_out: int, p: float = 0.5) -> None:
            super().__init__()
            self.linear1 = nn.Linear(d_in, d_out, bias=False)
            self.linear2 = nn.Linear(d_out, d_out, bias=False)
            self.layer_norm = nn.LayerNorm(d_out)
            self.drop = nn.Dropout(p)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            embed1 = self.linear1(x)
            embed2 = self.drop(self.linear2(F.gelu(embed1)))
            return self.layer_norm(embed1 + embed2)

    class AudioEncoder(nn.Module):  # msclap.models.clap.AudioEncoder
        def __init__(self, audioenc_name: str, d_in: int, d_out: int, sample_rate: int, window_size: int,
                     hop_size: int, mel_bins: int, fmin: int, fmax: int, classes_num: int) -> None:
            super().__init__()
            self.base = audio.get_audio_encoder(audioenc_name)(
                sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num, d_in)
            self.projection = Projection(d_in, d_out)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.base(x)
            return self.projection(out["embedding"]), out["clipwise_output"]

    return AudioEncoder


def build_encoder(spec: Spec) -> Any:
    """The (randomly initialised) audio encoder of ``spec``, in eval mode."""
    import warnings

    cls = audio_encoder_class()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.meshgrid.*")  # msclap's HTS-AT
        enc = cls(spec.audioenc_name, spec.out_emb, spec.d_proj, SAMPLE_RATE, spec.window_size, spec.hop_size,
                  spec.mel_bins, spec.fmin, spec.fmax, spec.classes_num)
    return enc.eval()


def _torch_load(path: Path, where: str) -> Any:
    from soundsim.models import _torch_ckpt

    try:
        return _torch_ckpt.read(path)
    except ValueError as e:
        raise ConfigError(f"{where}: {path} is {e}") from e


def audio_state_dict(spec: Spec, weights: str | None) -> dict[str, Any]:
    """The ``audio_encoder.*`` tensors of an official checkpoint (prefix removed),
    after checking that the checkpoint is of ``spec``'s model; ConfigError otherwise."""
    import torch

    where = f"models.{spec.name}.weights.{spec.variation}"
    if not weights:
        raise ConfigError(f"{where}: no weights path given ({weights_hint(spec)})")
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"{where}: {path} does not exist or is not a file ({weights_hint(spec)})")
    obj = _torch_load(path, where)
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{where}: {path} is not a msclap/Pengi checkpoint (expected {{'model': state_dict}})")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    audio = {k[len("audio_encoder."):]: v for k, v in state.items() if k.startswith("audio_encoder.")}
    if not audio:
        hint = " (a clapcap captioning checkpoint? use CLAP_weights_2023.pth)" if any(
            k.startswith("clap.audio_encoder.") for k in state) else ""
        raise ConfigError(f"{where}: {path} has no 'audio_encoder.*' weights: not a msclap/Pengi checkpoint{hint}")
    if MARKERS[spec.audioenc_name] not in audio:
        other = next((a for a, m in MARKERS.items() if m in audio), None)
        held = f"holds {ARCH_NAMES[other]} audio encoder" if other else "holds an unknown audio encoder"
        raise ConfigError(f"{where}: {path} {held}, not {ARCH_NAMES[spec.audioenc_name]}")
    is_pengi = any(k.startswith("caption_decoder.") for k in state)
    if spec.family == "pengi" and not is_pengi:
        raise ConfigError(f"{where}: {path} has no 'caption_decoder.*' weights: a CLAP 2023 checkpoint, not Pengi's "
                          "(same audio encoder; use the model clap-2023)")
    if spec.family == "clap" and is_pengi:
        raise ConfigError(f"{where}: {path} is a Pengi checkpoint (it has 'caption_decoder.*' weights; use the model "
                          "pengi)")
    return audio


def load_encoder(spec: Spec, weights: str | None, device: str = "cpu") -> Any:
    """Build ``spec``'s encoder and load the checkpoint's audio-encoder weights into it."""
    audio = audio_state_dict(spec, weights)
    where = f"models.{spec.name}.weights.{spec.variation}"
    enc = build_encoder(spec)
    try:
        res = enc.load_state_dict(audio, strict=False)
    except RuntimeError as e:  # size mismatches
        lines = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln][:3]
        raise ConfigError(f"{where}: {weights} does not fit the {spec.name} audio encoder: "
                          f"{'; '.join(lines) or str(e).splitlines()[0]}") from e
    missing = [k for k in res.missing_keys if not k.endswith(DERIVED)]
    if res.unexpected_keys or missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if res.unexpected_keys:
            parts.append(f"{len(res.unexpected_keys)} unexpected (e.g. {', '.join(res.unexpected_keys[:3])})")
        raise ConfigError(f"{where}: {weights} does not fit the {spec.name} audio encoder: "
                          f"audio_encoder weights {' and '.join(parts)}")
    return enc.to(device).eval()


def weights_hint(spec: Spec) -> str:
    return {
        "clap-2022": "CLAP_weights_2022.pth from Hugging Face microsoft/msclap or Zenodo record 8378278",
        "clap-2023": "CLAP_weights_2023.pth from Hugging Face microsoft/msclap or Zenodo record 8378278",
        "pengi": "base.pth from Zenodo record 8387083 (the Pengi README's 'Pretrained Model')",
    }[spec.name]


class MsclapEmbedder:
    """One loaded audio encoder; ``embed`` returns one ``d_proj`` row per window."""

    def __init__(self, spec: Spec, weights: str | None, device: str = "cpu", batch_size: int = BATCH_SIZE,
                 normalize: bool | None = None) -> None:
        import torch

        self.spec = spec
        self.dim = spec.d_proj
        self.device = device
        self.batch_size = batch_size
        self.normalize = spec.normalize if normalize is None else normalize
        self.torch = torch
        self.encoder = load_encoder(spec, weights, device)

    def _embed_batch(self, wins: np.ndarray) -> np.ndarray:
        x = self.torch.from_numpy(np.ascontiguousarray(wins)).to(self.device)
        e = self.encoder(x)[0]
        if self.normalize:  # Pengi: audio_embeddings / audio_embeddings.norm(2, -1)
            e = e / e.norm(2, -1).reshape(-1, 1)
        return e.float().cpu().numpy()

    def embed_windows(self, wins: np.ndarray) -> np.ndarray:
        """(k, W) float32 windows -> (k, d_proj) float32 embeddings, ``batch_size`` per forward pass."""
        with self.torch.inference_mode():
            out = [self._embed_batch(wins[i : i + self.batch_size]) for i in range(0, len(wins), self.batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        """One row per window; the windows are cut ``batch_size`` at a time (:func:`window_batches`),
        so memory is bounded whatever the clip's length (same batches, same rows as
        :meth:`embed_windows` on all windows)."""
        check_sample_rate(self.spec.name, sample_rate, SAMPLE_RATE)
        with self.torch.inference_mode():
            out = [self._embed_batch(b) for b in window_batches(waveform, self.spec.window, self.batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)


def load(name: str, variation: str, weights: str | None, device: str = "cpu", *, batch_size: int,
         normalize: bool) -> MsclapEmbedder:
    """The audio encoder of model ``name`` with its checked options (:func:`options`)."""
    spec = SPECS[name]
    if variation != spec.variation:
        raise ConfigError(f"models.{name}.variations: {variation!r}; allowed values: {spec.variation}")
    return MsclapEmbedder(spec, weights, device, batch_size, normalize)
