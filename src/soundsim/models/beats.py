"""BEATs (Chen et al., ICML 2023): an audio transformer pre-trained on AudioSet by
predicting discrete labels from an acoustic tokenizer (the paper's Table II row
"BEATs": audio, classification, 90M, 1.8M, 768 dims; best variation
``iter3_plus_AS2M``, Table I).

Variations = the official *pre-trained* checkpoints of the third iteration
(``microsoft/unilm``, ``beats/README.md``, column "Pre-Trained Model"):

* ``iter3``: ``BEATs_iter3.pt`` (self-distilled tokenizer, iteration 3);
* ``iter3_plus_AS20K``: ``BEATs_iter3_plus_AS20K.pt`` (tokenizer iter3+
  trained with an AudioSet-20K fine-tuned teacher);
* ``iter3_plus_AS2M`` (default, the paper's best): ``BEATs_iter3_plus_AS2M.pt``
  (tokenizer iter3+ with an AudioSet-2M fine-tuned teacher).

Download them from the README's links (OneDrive ``1drv.ms`` in the current
README, Azure blob ``msranlcmtteamdrive.blob.core.windows.net/share/BEATs/<file>``
in earlier versions) and name them in ``config.yaml``
(``models.beats.weights.<variation>``) or put them, under these names, in
``weights_dir``. The AudioSet fine-tuned checkpoints of the same README
(``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt`` and the like) also load:
they add an AudioSet classifier (``predictor``), which soundsim loads (strictly)
but never uses; the embedding is always the encoder output.

Which output the paper used: the authors' ``code/embedding_extractor.py``
(raraz15/semantic-sound-similarity) loads the 16 kHz clip with librosa, whole
(their 30 s trim is not applied to BEATs), calls upstream
``BEATs.extract_features(audio, padding_mask=zeros)[0]`` and saves the (tokens,
768) output of the last transformer layer (``finetuned_model`` is false in
the pre-trained checkpoints, so this is not the classifier's probabilities);
``code/create_clip_level_embedding.py`` then averages the rows (``mean`` is
the aggregation the paper fixes), applies PCA to 100 dims and normalises.
The paper's text says BEATs "is fine-tuned on AudioSet", but its 768 dims, the
variation names (the pre-trained files' names) and that code (which would have
saved 527 probabilities from a fine-tuned checkpoint) all point to the
pre-trained checkpoints.

Input and features, as upstream ``BEATs.preprocess``: 16 kHz mono, waveform
times 2^15, Kaldi fbank (``soundsim.models._kaldi.fbank_torch``, equal to
``torchaudio.compliance.kaldi.fbank`` with its defaults: 25 ms Povey window,
10 ms shift, 128 mel bins, no dither), normalised ``(fbank - 15.41663) /
(2 x 6.55582)``; 16 x 16 patches (``input_patch_size``; soundsim accepts
checkpoints with 16 only, which all official ones have).

Framing: the encoder's tokens are patches of 16 fbank frames x 16 mel bins,
8 frequency patches per time step. soundsim returns one row per time step,
the mean of its 8 patch tokens (768 dims): ``INFO.hop`` = 16 x 10 ms =
0.16 s; row ``i`` covers fbank frames ``16 i .. 16 i + 15`` (samples
``2560 i .. 2560 i + 2799``). A clip of ``n >= 400`` samples has ``F = 1 + (n -
400) // 160`` fbank frames and gives ``F // 16`` rows (the trailing ``F % 16``
frames do not fill a patch and are dropped, as upstream's strided convolution
does): 1 s -> 6 rows, 10 s -> 62, 25 s -> 156 (:func:`n_rows`). The mean over
rows equals the authors' mean over all tokens (each row averages the same
number of tokens); a median or maximum over rows does not equal theirs over tokens.
Clips shorter than 0.175 s (2800 samples, 16 fbank frames) are zero-padded at
the end to that length by extraction (``min_duration``): one row.

Long clips: clips up to 30 s (all of FSD50K: at most 187 rows, 1496 tokens)
go through the encoder whole, in one forward pass, as the authors did; neither
position encoding limits the length (a convolutional positional embedding and a
bucketed relative position bias; BEATs was pre-trained on 10 s clips). Longer
clips are cut into blocks of whole patches of at most ``chunk_seconds``
(default :data:`CHUNK_SECONDS` = 30 s: 187 patches), each embedded alone,
because attention memory grows with the square of the length (50 tokens per
second; one attention matrix takes 12 x (50 x seconds)^2 x 4 bytes, and a few
exist at once: 1 GB each at 90 s, 11 GB at 5 min). The blocks are consecutive
and non-overlapping from the start; when the clip does not end on a block
boundary, the last block is the last ``chunk_seconds`` of the clip (it overlaps
the one before, and only its rows after that block's end are kept), so every
row of a long clip is computed with at least ``chunk_seconds`` of context.
Same rows as a single pass, deterministic; values of rows past the first block
differ from a single pass (less context). The fbank is computed per block too
(its frames depend on their own samples only), so memory is bounded whatever
the clip's length: about 0.5 GB of activations for a 30 s block on the
official model. ``chunk_seconds: null`` embeds the whole clip in one pass at
any length (the authors' choice; memory unbounded).

Checkpoint format (official): ``torch.save({'cfg': {BEATsConfig fields},
'model': state_dict, ...})``; loaded with ``torch.load(weights_only=True)``
(falling back to a full unpickle for a file that needs it), the network built
from ``cfg`` (``_beats_net``, soundsim's own implementation of upstream
``BEATs.py``/``backbone.py``) and the state_dict loaded strictly with its
official key names (the relative-position embedding, shared by all layers,
may be stored for layer 0 only). A missing file, another format or a
state_dict that does not fit its cfg is a ConfigError naming the path.

Numerical check (once, on CPU, torch 2.13): upstream ``BEATs.py``, ``backbone.py``
and ``modules.py`` (microsoft/unilm at c68101b, copied into a scratch folder
outside the repository, torchaudio's fbank replaced by soundsim's, which equals
it exactly) against this module, on the same checkpoints and clips, gave a max
abs difference of **0.0** (bit for bit): on the encoder output of 1 s, 10 s and
25 s clips for small random checkpoints (2 layers; deep norm + gated relative
position bias as the official cfg, pre-norm, GLU without relative bias), on the
AudioSet probabilities of a fine-tuned one (``predictor``), and on the official
configuration itself (12 layers, 768 dims, 90.3M parameters, random weights
saved from upstream's own ``state_dict``, also with the shared relative
position embedding kept for layer 0 only) on a 10 s clip. The rows equal
upstream's tokens averaged over frequency (difference 0.0).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from soundsim.errors import ConfigError, first_few
from soundsim.models import ModelInfo, OptionSpec, PaperInfo, check_sample_rate

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
PATCH = 16  # fbank frames (and mel bins) per patch
FRAME_SHIFT = 160  # samples (10 ms)
FRAME_LENGTH = 400  # samples (25 ms)
HOP = PATCH * FRAME_SHIFT / SAMPLE_RATE  # 0.16 s between rows
MIN_SAMPLES = FRAME_LENGTH + (PATCH - 1) * FRAME_SHIFT  # 2800: 16 fbank frames, one patch
VARIATIONS = ("iter3", "iter3_plus_AS20K", "iter3_plus_AS2M")
WEIGHT_FILES = {v: f"BEATs_{v}.pt" for v in VARIATIONS}
CHUNK_SECONDS = 30.0  # default block length for long clips: every FSD50K clip (<= 30 s) is one block

INFO = ModelInfo(
    name="beats",
    variations=VARIATIONS,
    default_variation="iter3_plus_AS2M",
    sample_rate=SAMPLE_RATE,
    level="frame",
    hop=HOP,
    dim=768,
    env="soundsim",
    description="BEATs audio transformer (Chen et al. 2023), self-supervised on AudioSet with acoustic "
    "tokenizers; last-layer output, mean of the 8 frequency patches per 160 ms step",
    weights="required",
    weights_hint="official pre-trained checkpoints BEATs_iter3.pt, BEATs_iter3_plus_AS20K.pt, "
    "BEATs_iter3_plus_AS2M.pt from the links in github.com/microsoft/unilm/tree/master/beats (README)",
    weight_files=WEIGHT_FILES,
    min_duration=MIN_SAMPLES / SAMPLE_RATE,
    long_clips="clips up to 30 s in one pass (the authors' choice); longer ones in consecutive 30 s blocks of "
    "whole patches, each embedded alone, the last one ending at the clip's end (option chunk_seconds; null = "
    "one pass whatever the length)",
    paper=PaperInfo(modality="A", objective="Classification", params="90M", data_size="1.8M", dims=768),
    packages=("torch",),
    needs_gpu=True,
    options={"chunk_seconds": OptionSpec(float, CHUNK_SECONDS, "longest block of a long clip embedded in one pass, "
                                         "in seconds (at least one 0.16 s patch); null: the whole clip in one pass",
                                         min=HOP, nullable=True)},
    # Chen et al. 2023 (BEATs) / paper Sec. II-B: self-supervised on AudioSet-2M; the _plus_ variations then
    # fine-tuned on AudioSet labels
    trained_on=("AudioSet",),
    trained_on_notes={"AudioSet": "AS-2M; iter3_plus_AS20K / iter3_plus_AS2M fine-tuned on AS-20K / AS-2M labels"},
)


def n_rows(n_samples: int) -> int:
    """Rows :meth:`BEATsEmbedder.embed` returns for a clip of ``n_samples`` at 16 kHz."""
    if n_samples < FRAME_LENGTH:
        return 0
    return (1 + (n_samples - FRAME_LENGTH) // FRAME_SHIFT) // PATCH


def _load_checkpoint(path: Path, key: str):
    from soundsim.models import _torch_ckpt

    try:
        ckpt = _torch_ckpt.read(path)
    except ValueError as e:
        raise ConfigError(f"{key}: {path} is {e}") from e
    if not (isinstance(ckpt, dict) and isinstance(ckpt.get("cfg"), dict) and isinstance(ckpt.get("model"), dict)):
        found = f"keys {first_few(map(str, ckpt), 5, quote=True)}" if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ConfigError(f"{key}: {path} is not an official BEATs checkpoint (expected a dict with 'cfg' and "
                          f"'model', as torch.save writes them; found {found})")
    return ckpt


def build(path: str | Path, variation: str = "iter3_plus_AS2M"):
    """The :class:`_beats_net.BEATs` of a checkpoint file, weights loaded strictly, in eval mode."""
    from soundsim.models import _beats_net as net

    key = f"models.beats.weights.{variation}"
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}: {path} does not exist or is not a file ({INFO.weights_hint})")
    ckpt = _load_checkpoint(path, key)
    cfg = net.BEATsConfig.from_dict(ckpt["cfg"])
    if cfg.input_patch_size != PATCH:
        raise ConfigError(f"{key}: {path} has input_patch_size {cfg.input_patch_size}; soundsim's BEATs "
                          f"supports {PATCH} (all official checkpoints)")
    try:
        model = net.BEATs(cfg)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{key}: {path} has a BEATs cfg soundsim cannot build: {e}") from e
    state = ckpt["model"]
    expected = model.state_dict()
    shared = {k for k in expected
              if ".self_attn.relative_attention_bias." in k and not k.startswith("encoder.layers.0.")}
    missing = sorted(set(expected) - set(state) - shared)
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state)
                   if not hasattr(state[k], "shape") or tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{name} {len(keys)} ({first_few(keys, 4)})"
                 for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise ConfigError(f"{key}: {path}: its state_dict does not fit the BEATs network of its cfg (a BEATs "
                          "tokenizer, another model or a damaged file?): " + "; ".join(parts))
    # strict=False only for the shared relative-position embedding of layers > 0 (checked above)
    model.load_state_dict(state, strict=False)
    if cfg.finetuned_model:
        log.info("%s: an AudioSet fine-tuned BEATs checkpoint; its classifier is not used (embedding = encoder "
                 "output)", path)
    return model.eval()


class BEATsEmbedder:
    """A loaded BEATs checkpoint; ``embed`` -> (rows, encoder_embed_dim) float32, see module docstring."""

    def __init__(self, variation: str, weights: str | None, device: str = "cpu",
                 chunk_seconds: float | None = CHUNK_SECONDS) -> None:
        import torch

        if weights is None:
            raise ConfigError(f"models.beats.weights.{variation}: no weights path given ({INFO.weights_hint})")
        self.torch = torch
        self.device = torch.device(device)
        self.model = build(weights, variation).to(self.device)
        self.dim = int(self.model.cfg.encoder_embed_dim)
        self.chunk_patches = None if chunk_seconds is None else int(math.floor(chunk_seconds / HOP + 1e-9))

    def features(self, waveform: np.ndarray, first_frame: int = 0, n_frames: int | None = None):
        """(1, T, 128) normalised fbank, as upstream ``BEATs.preprocess``, on the model's device:
        the whole clip's, or its frames ``first_frame .. first_frame + n_frames - 1`` alone
        (computed from the samples those frames cover: the same values)."""
        from soundsim.models import _beats_net as net
        from soundsim.models._kaldi import fbank_torch

        x = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if n_frames is not None:
            start = first_frame * FRAME_SHIFT
            x = x[start : start + (n_frames - 1) * FRAME_SHIFT + FRAME_LENGTH]
        fb = fbank_torch(x * np.float32(2**15), SAMPLE_RATE, net.NUM_MEL_BINS, window_type="povey")
        return net.BEATs.normalise(fb).unsqueeze(0).to(self.device)

    def blocks(self, total: int) -> list[tuple[int, int, int]]:
        """(first patch, end patch, first row kept) of each forward pass over a clip of ``total`` patches."""
        step = self.chunk_patches
        if step is None or total <= step:
            return [(0, total, 0)]
        out = [(s, s + step, s) for s in range(0, total - step + 1, step)]
        if out[-1][1] < total:  # the last block ends at the clip's end; keep only its new rows
            out.append((total - step, total, out[-1][1]))
        return out

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        check_sample_rate("BEATs", sample_rate, SAMPLE_RATE)
        total = n_rows(len(waveform))
        if total == 0:
            raise ValueError(f"clip too short for BEATs: {len(waveform)} samples, one patch needs {MIN_SAMPLES} "
                             f"(pad clips to {INFO.min_duration} s)")
        out = np.empty((total, self.dim), dtype=np.float32)
        with self.torch.inference_mode():
            for first, end, keep in self.blocks(total):
                fb = self.features(waveform, first * PATCH, (end - first) * PATCH)
                rows = self.model.frames(fb)[0].float().cpu().numpy()
                out[keep:end] = rows[keep - first :]
        return out


def load(variation: str, weights: str | None, device: str = "cpu", *,
         chunk_seconds: float | None) -> BEATsEmbedder:
    """Option ``chunk_seconds`` (default :data:`CHUNK_SECONDS`; null: the whole clip in one pass
    at any length), see module docstring."""
    return BEATsEmbedder(variation, weights, device, chunk_seconds)
