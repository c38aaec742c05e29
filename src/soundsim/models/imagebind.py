"""ImageBind (Girdhar et al., CVPR 2023, facebookresearch/ImageBind): the audio branch only.

ImageBind aligns audio (and depth, thermal, IMU, text) to the image embedding
space of a frozen OpenCLIP ViT-H with contrastive learning; the audio encoder
was trained on AudioSet. Variation ``huge`` (the only released model, the
paper's). soundsim re-implements the audio branch in plain torch
(``_vit_audio.build_imagebind_audio``; no timm, einops, torchaudio, torchvision
or pytorchvideo) and loads its tensors from the official full multimodal
checkpoint unchanged:

* ``modality_preprocessors.audio``: ``rgbt_stem`` (Conv2d 16 x 16, stride 10,
  no bias, then LayerNorm) on a 1 x 128 x 204 fbank -> 12 x 19 = 228 patches,
  a CLS token and a learnt positional embedding (229 tokens);
* ``modality_trunks.audio``: 12 pre-norm blocks (``nn.MultiheadAttention`` with
  ``add_bias_kv``, 12 heads, LayerNorm eps 1e-6, MLP 4x with GELU; drop path
  0.1 is inactive at inference), on (tokens, batch, dim) as ImageBind;
* ``modality_heads.audio``: LayerNorm, the CLS token, Linear 768 -> 1024 (no bias);
* ``modality_postprocessors.audio``: L2 normalisation times the fixed logit
  scale ``exp(log_logit_scale)`` = 20 (a buffer in the checkpoint).

Width, depth, MLP width, output width, kernel and token count are read from the
tensors' shapes (heads = width / 64), so a small random checkpoint with the same
keys runs the same code. The other modalities' tensors are not used.

Weights: ``imagebind_huge.pth`` (a ``torch.save``d state dict of the whole
model, about 4.5 GB; CC-BY-NC 4.0), https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth
(linked from the ImageBind README). It is memory-mapped: only the audio tensors
are read.

Input, exactly as ImageBind's ``data.load_and_transform_audio_data`` (what the
paper's authors used, ``code/imagebind-embedding-extractor.py`` with their copy
``code/lib/imagebind/data.py``):

* 16 kHz mono (ImageBind resamples with torchaudio; soundsim's extraction resamples);
* three 2 s clips placed by pytorchvideo's ``ConstantClipsPerVideoSampler(clip_duration=2,
  clips_per_video=3)``: starts 0, (d - 2) / 2 and d - 2 seconds for a clip of d
  seconds (computed with ``Fraction`` as pytorchvideo does; samples
  ``int(start * 16000)`` to ``int(end * 16000)``); clips shorter than 2 s give three
  identical (shorter) clips, clips shorter than 6 s overlapping ones;
* per clip, in order: the clip's mean is subtracted **in place** (ImageBind's
  ``waveform -= waveform.mean()`` on a view of the whole waveform, so a later
  overlapping clip sees the earlier clips' subtraction; replicated), Kaldi fbank
  (:func:`soundsim.models._kaldi.fbank_torch`: 128 bins, ``hanning`` window,
  25 / 10 ms, no dither), transposed to 128 x frames, zero-padded (fbank domain,
  at the end) or cut to 204 frames (2 s = 198 frames -> 6 frames of padding);
* normalised ``(fbank - (-4.268)) / 9.138`` (torchvision ``Normalize``, replaced by
  the same float32 arithmetic).

Output (clip-level, 1024 dims): the three clips go through the model as one
batch; their post-processed embeddings (unit vectors x 20) are averaged, as
``ImageBindModel.forward`` does for inputs with several clips (``reduce_list``).
The mean is not re-normalised (ImageBind's output, which the authors stored).

Long clips: the three 2 s clips are spread over the whole clip (only 6 s of it
are heard), deterministic; only their samples are copied (not the whole
waveform), so memory does not grow with the clip's length. Short clips: no
padding by extraction (``min_duration`` 0); the fbank padding above handles them (ImageBind itself fails on clips
shorter than one 25 ms frame; soundsim embeds the all-padding input).

Numerical check (done once, not part of the tests): a random audio branch
(width 128, 2 blocks, 2 heads, output 1024) built with ImageBind's own module
code copied verbatim (``helpers.py``, ``multimodal_preprocessors.py``,
``transformer.py`` with einops 0.8.1 and timm's ``DropPath``; assembled as
``ImageBindModel._create_modality_*`` build the audio modules, and its
``forward``), fed by ``data.py``'s ``load_and_transform_audio_data`` /
``waveform2melspec`` and pytorchvideo's ``ConstantClipsPerVideoSampler``
(copied; soundsim's fbank in place of torchaudio's, torchvision's ``Normalize``
as its two in-place lines), saved as a full state dict with other modalities'
keys, on 1 s, 3.3 s, 4 s, 10 s and 25 s clips with a DC offset: max abs
difference against this module 0.0. Quirks kept from upstream: the three clips
of a clip shorter than 2 s differ by float rounding (the in-place mean removal
runs three times on the same samples), and clip starts inherit
floating-point rounding (3.3 s: the later clips start one sample early).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from soundsim.errors import ConfigError
from soundsim.models import ModelInfo, PaperInfo, check_sample_rate

SAMPLE_RATE = 16000
NUM_MEL_BINS = 128
TARGET_LENGTH = 204  # frames per 2 s clip (after padding)
CLIP_DURATION = 2
CLIPS_PER_AUDIO = 3
FBANK_MEAN, FBANK_STD = -4.268, 9.138
STRIDE = 10  # audio_stride of ImageBindModel (not stored in the checkpoint)
PREFIX = "modality_{}.audio."
HINT = ("imagebind_huge.pth (the full ImageBind checkpoint) from https://dl.fbaipublicfiles.com/imagebind/"
        "imagebind_huge.pth, linked from https://github.com/facebookresearch/ImageBind")

INFO = ModelInfo(
    name="imagebind",
    variations=("huge",),
    default_variation="huge",
    sample_rate=SAMPLE_RATE,
    level="clip",
    hop=None,
    dim=1024,
    env="soundsim",
    description="ImageBind audio branch (Girdhar et al. 2023), AudioSet audio aligned to CLIP image space; "
    "mean of the embeddings of three 2 s clips",
    weights="required",
    weights_hint=HINT,
    weight_files={"huge": "imagebind_huge.pth"},
    min_duration=0.0,
    long_clips="three 2 s clips spread evenly over the whole clip (ImageBind's ConstantClipsPerVideoSampler), "
    "their embeddings averaged",
    paper=PaperInfo(modality="A & I & L & O", objective="Contrastive alignment", params="85M", data_size="1.8M",
                    dims=1024),
    packages=("torch",),
    needs_gpu=True,
    # Girdhar et al., CVPR 2023 (ImageBind) / paper Sec. II-B: audio-video pairs from AudioSet
    trained_on=("AudioSet",),
)


def clip_bounds(n_samples: int, sample_rate: int = SAMPLE_RATE, clip_duration: int = CLIP_DURATION,
                clips: int = CLIPS_PER_AUDIO) -> list[tuple[int, int]]:
    """Sample ranges of the clips ``ConstantClipsPerVideoSampler`` picks, as ImageBind's
    ``get_clip_timepoints`` + ``load_and_transform_audio_data`` slice them."""
    duration = n_samples / sample_rate
    clip = Fraction(clip_duration)
    max_start = Fraction(max(duration - clip, 0))
    uniform = Fraction(max_start, max(clips - 1, 1))
    out = []
    for i in range(clips):
        start = uniform * i
        out.append((int(start * sample_rate), int((start + clip) * sample_rate)))
        if uniform * (i + 1) > max_start:  # pytorchvideo: the end of the audio is reached
            break
    return out


def _spans(y: np.ndarray, bounds: list[tuple[int, int]]):
    """``(start, end, (span_start, buffer))`` per clip: a copy of only the samples the clips use
    (overlapping clips share one copy, so that ImageBind's in-place mean removal of one clip is
    seen by the next, as on its copy of the whole waveform), not of the whole clip."""
    import torch

    spans: list[list[int]] = []
    for start, end in bounds:
        if spans and start < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    bufs = {s: (s, torch.tensor(y[s:e])) for s, e in spans}  # copies: changed in place
    out = []
    for start, end in bounds:
        owner = max(s for s, _ in spans if s <= start)
        out.append((start, end, bufs[owner]))
    return out


class ImageBindEmbedder:
    """The audio branch of one loaded ImageBind checkpoint; see module docstring."""

    def __init__(self, weights: str | None, device: str = "cpu") -> None:
        import torch

        from soundsim.models import _vit_audio as va

        where = "models.imagebind.weights.huge"
        state = va.load_state_dict(weights, where, HINT)
        pre, trunk, head = PREFIX.format("preprocessors"), PREFIX.format("trunks"), PREFIX.format("heads")
        need = (pre + "pos_embedding_helper.pos_embed", pre + "rgbt_stem.proj.weight",
                trunk + "blocks.0.attn.in_proj_weight", trunk + "blocks.0.mlp.fc1.weight", head + "2.weight")
        lacking = [k for k in need if k not in state]
        if lacking:
            raise ConfigError(f"{where}: {weights} is not an ImageBind checkpoint with the audio branch "
                              f"(no {lacking[0]}); expected {HINT}")
        _, n_tokens, dim = state[need[0]].shape
        kernel = int(state[need[1]].shape[-1])
        depth = 1 + max(int(k[len(trunk + "blocks."):].split(".")[0]) for k in state if k.startswith(trunk + "blocks."))
        hidden = int(state[need[3]].shape[0])
        out_dim = int(state[need[4]].shape[0])
        patches = ((NUM_MEL_BINS - kernel) // STRIDE + 1) * ((TARGET_LENGTH - kernel) // STRIDE + 1)
        if n_tokens != 1 + patches:
            raise ConfigError(f"{where}: {weights}: audio positional embedding has {n_tokens} tokens, expected "
                              f"1 + {patches} for a 128 x 204 fbank with {kernel} x {kernel} patches, stride {STRIDE}")
        net = va.build_imagebind_audio(int(dim), depth, hidden, va.heads_for(int(dim), where), int(n_tokens),
                                       out_dim, kernel, STRIDE)
        va.load_exact(net, state, where, str(weights))
        self.net = net.to(device).eval()
        self.device = device
        self.dim = out_dim
        self.torch = torch

    def features(self, waveform: np.ndarray):
        """(clips, 1, 128, 204) normalised fbanks, as ``load_and_transform_audio_data``."""
        torch = self.torch
        from soundsim.models._kaldi import fbank_torch

        y = np.asarray(waveform, dtype=np.float32).reshape(-1)
        mean, std = torch.as_tensor(FBANK_MEAN, dtype=torch.float32), torch.as_tensor(FBANK_STD, dtype=torch.float32)
        out = []
        for start, end, (span_start, buf) in _spans(y, clip_bounds(len(y))):
            clip = buf[start - span_start : end - span_start]  # a view, as ImageBind's waveform[:, start:end]
            if clip.numel():
                clip -= clip.mean()  # in place, as ImageBind's waveform2melspec
            fbank = fbank_torch(clip.numpy(), SAMPLE_RATE, NUM_MEL_BINS, "hanning").transpose(0, 1)
            p = TARGET_LENGTH - fbank.shape[1]
            if p > 0:
                fbank = torch.nn.functional.pad(fbank, (0, p), mode="constant", value=0)
            elif p < 0:
                fbank = fbank[:, :TARGET_LENGTH]
            out.append(((fbank.unsqueeze(0) - mean) / std))
        return torch.stack(out, dim=0)

    def clip_embeddings(self, waveform: np.ndarray):
        """(clips, dim): the post-processed embedding of each 2 s clip."""
        with self.torch.no_grad():
            return self.net(self.features(waveform).to(self.device))

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        check_sample_rate("ImageBind", sample_rate, SAMPLE_RATE)
        out = self.clip_embeddings(waveform).mean(dim=0, keepdim=True)
        return out.cpu().numpy().astype(np.float32)


def load(variation: str, weights: str | None, device: str = "cpu") -> ImageBindEmbedder:
    """ImageBind's audio branch (variation ``huge``); no options."""
    if variation != "huge":
        raise ConfigError(f"models.imagebind.variations: {variation!r}; allowed values: huge")
    return ImageBindEmbedder(weights, device)
