"""CAV-MAE (Gong et al., ICLR 2023, YuanGongND/cav-mae): the audio branch only.

Contrastive audio-visual masked autoencoder, pre-trained on AudioSet-2M audio +
video frames. soundsim re-implements the audio path in plain torch
(``_vit_audio.build_cavmae_audio``; no timm, torchaudio or torchvision) and loads
the official checkpoints unchanged.

Variations (the two the paper's authors evaluated, raraz15/semantic-sound-similarity
``code/embedding_extractor.py`` and ``code/notebooks/cavmae.ipynb``):

* ``as_46.6`` (default; the paper's best, Table I): CAV-MAE-Scale+ pre-trained
  on AudioSet-2M (audio + video), fine-tuned on AudioSet-2M audio only (46.6 mAP);
  official file ``as_46.6.pth`` (``CAVMAEFT(label_dim=527, modality_specific_depth=11)``);
* ``audio_model.21``: CAV-MAE-Scale++, self-supervised pre-training only (the
  README's recommended pre-trained model); official file ``audio_model.21.pth``
  (``CAVMAE(modality_specific_depth=11)``, with the MAE decoder, unused here).

Both from the cav-mae README's "Pretrained Models" tables (Dropbox links):
https://github.com/YuanGongND/cav-mae#pretrained-models . They are DataParallel
state dicts (every key prefixed ``module.``); the audio keys (``patch_embed_a``,
``pos_embed_a``, ``modality_a``, ``blocks_a.*``, ``blocks_u.*``, ``norm_a``)
are loaded, the visual, decoder and classification-head keys are ignored (but
used to check that the file is the variation asked for: ``as_46.6`` has
``mlp_head.*``, ``audio_model.21`` has ``decoder_*``). Width, depths (11
modality-specific + 1 unified block), MLP width and number of patches are read
from the tensors' shapes; heads = width / 64.

Input, exactly as the authors' extractor and CAV-MAE's ``dataloader.py``
(``_wav2fbank`` in eval mode):

* the clip at 44.1 kHz (``INFO.sample_rate``), the fbank computed at that rate
  (25 ms = 1102-sample frames every 441 samples, mel bands up to 22.05 kHz), as the
  paper's authors did: their extractor called ``torchaudio.load`` without resampling
  and passed the file's own rate (44.1 kHz for all of FSD50K) to the fbank. That is
  the default so that soundsim reproduces the paper's numbers. CAV-MAE itself was
  trained on 16 kHz audio (its ``extract_audio.py`` resamples AudioSet to 16 kHz):
  option ``native_rate: true`` resamples the clip to 16 kHz (soxr, very high quality)
  before the fbank, the model's own input;
* waveform minus its mean (over the whole clip), Kaldi fbank
  (:func:`soundsim.models._kaldi.fbank_torch` = ``torchaudio.compliance.kaldi.fbank``
  with ``htk_compat=True, use_energy=False, window_type='hanning',
  num_mel_bins=128, dither=0, frame_shift=10``): 25 ms frames every 10 ms;
* cut or zero-padded (in the fbank domain, at the end) to ``target_length`` =
  1024 frames (10.24 s), then normalised with AudioSet's statistics
  ``(fbank - (-5.081)) / 4.4849`` (CAV-MAE's ``mean``/``std``; no factor 2, unlike AST).

Output (clip-level, 768 dims): the audio tokens of ``forward_feat`` (patch
embedding 16 x 16 without overlap -> 8 x 64 = 512 patches, + positional and
modality embeddings, 11 ``blocks_a``, the unified block(s) with the audio layer
norms ``norm1_a``/``norm2_a``, then ``norm_a``), averaged over the 512 tokens,
as the authors did (``forward_feat(...).mean(dim=0)``).

Long clips: only the first 10.24 s are embedded (the fbank is cut to 1024
frames), as the authors and CAV-MAE's own evaluation do; the positional
embedding covers exactly 1024 frames, so a model-faithful alternative would be
a new choice of windows, which the paper did not make. The waveform's mean is
still taken over the whole clip (in place: only the samples of the first 1024
frames are copied, so memory does not grow with the clip's length; with
``native_rate`` a clip over 60 s is resampled in blocks, see ``features``). Clips shorter than 10.24 s are padded in the
fbank domain (log-mel value 0), as CAV-MAE does; extraction does not pad them
(``min_duration`` 0). Deterministic; float32 throughout (the authors'
``autocast()`` was a no-op on their CPU run).

Numerical check (done once, not part of the tests): a random checkpoint
(width 128, 11 + 1 blocks, 2 heads, all official keys, saved as DataParallel
state dict) was embedded by this module and by the upstream code: timm 0.4.5's
``Attention``/``Mlp`` (the installed package, which cav-mae pins) with
``PatchEmbed``, ``Block`` and ``CAVMAEFT``'s audio modules and
``forward_feat(mode='a')`` copied verbatim from ``src/models/cav_mae.py``,
loaded strictly through ``torch.nn.DataParallel``, fed by the authors' glue
(mean removal, ``ZeroPad2d``/cut to 1024, normalisation) and ``.mean(dim=0)``
over tokens, on the same fbank implementation, for 1 s, 10 s and 25 s clips:
max abs difference 0.0.
"""

from __future__ import annotations

import re

import numpy as np

from soundsim.errors import ConfigError
from soundsim.models import ModelInfo, OptionSpec, PaperInfo, check_sample_rate

SAMPLE_RATE = 44100  # the paper's input (FSD50K's own rate); see the module docstring
NATIVE_RATE = 16000  # CAV-MAE's training rate (option native_rate)
NUM_MEL_BINS = 128
FBANK_MEAN, FBANK_STD = -5.081, 4.4849  # AudioSet statistics (CAV-MAE README / dataloader)
PATCH = 16
EXACT_RESAMPLE_SECONDS = 60  # native_rate: longer clips are resampled in blocks (memory), see features()
RESAMPLE_BLOCK = 1 << 18  # samples per block
VARIATIONS = ("as_46.6", "audio_model.21")
WEIGHT_FILES = {"as_46.6": "as_46.6.pth", "audio_model.21": "audio_model.21.pth"}
HINT = ("as_46.6.pth (AudioSet-2M audio-only fine-tuned) or audio_model.21.pth (CAV-MAE-Scale++ pre-trained) "
        "from the cav-mae README's Pretrained Models tables, https://github.com/YuanGongND/cav-mae#pretrained-models")

INFO = ModelInfo(
    name="cav-mae",
    variations=VARIATIONS,
    default_variation="as_46.6",
    sample_rate=SAMPLE_RATE,
    level="clip",
    hop=None,
    dim=768,
    env="soundsim",
    description="CAV-MAE audio branch (Gong et al. 2023), AudioSet audio-visual MAE + contrastive; "
    "mean of the 512 audio tokens of forward_feat on the first 10.24 s",
    weights="required",
    weights_hint=HINT,
    weight_files=WEIGHT_FILES,
    min_duration=0.0,
    long_clips="only the first 10.24 s (1024 fbank frames) are embedded, as the authors and CAV-MAE's evaluation do",
    paper=PaperInfo(modality="A & I", objective="Audiovisual correspondence", params="85M", data_size="1.8M",
                    dims=768),
    packages=("torch",),
    needs_gpu=True,
    options={"native_rate": OptionSpec(bool, False, "true: resample to CAV-MAE's 16 kHz training rate before the "
                                       "fbank; false: the fbank at 44.1 kHz, as the paper's authors")},
    # Gong et al. 2023 (CAV-MAE) / paper Sec. II-B: pre-trained on AudioSet-2M audio-visual pairs; as_46.6
    # fine-tuned on AudioSet-2M labels (its ViT starts from ImageNet MAE weights: image data, not listed)
    trained_on=("AudioSet",),
    trained_on_notes={"AudioSet": "AS-2M; as_46.6 fine-tuned on its labels"},
)


def _strip(state: dict) -> dict:
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _depth(state: dict, prefix: str) -> int:
    idx = {int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(prefix)}\.(\d+)\.", k))}
    return max(idx) + 1 if idx else 0


def _resample_head_and_mean(y: np.ndarray, need: int) -> tuple[np.ndarray, float]:
    """The first ``need`` samples of ``y`` resampled from 44.1 to 16 kHz (soxr VHQ, streamed in
    blocks) and the mean of the whole resampled clip, without holding the resampled clip."""
    import soxr

    stream = soxr.ResampleStream(SAMPLE_RATE, NATIVE_RATE, 1, dtype="float32", quality="VHQ")
    head = np.zeros(need, dtype=np.float32)
    got, total = 0, 0.0
    for i in range(0, len(y), RESAMPLE_BLOCK):
        z = stream.resample_chunk(np.ascontiguousarray(y[i : i + RESAMPLE_BLOCK]), last=i + RESAMPLE_BLOCK >= len(y))
        total += float(np.sum(z, dtype=np.float64))
        if got < need:
            k = min(len(z), need - got)
            head[got : got + k] = z[:k]
        got += len(z)
    return head[: min(got, need)], total / max(got, 1)


class CavMaeEmbedder:
    """One loaded CAV-MAE audio branch; see module docstring."""

    def __init__(self, variation: str, weights: str | None, device: str = "cpu") -> None:
        from soundsim.models import _vit_audio as va

        where = f"models.cav-mae.weights.{variation}"
        if variation not in VARIATIONS:
            raise ConfigError(f"models.cav-mae.variations: {variation!r}; allowed values: {', '.join(VARIATIONS)}")
        state = _strip(va.load_state_dict(weights, where, HINT))
        if "pos_embed_a" not in state or "patch_embed_a.proj.weight" not in state:
            raise ConfigError(f"{where}: {weights} is not a CAV-MAE checkpoint (no pos_embed_a / patch_embed_a; "
                              f"expected {WEIGHT_FILES[variation]})")
        has_head, has_decoder = "mlp_head.1.weight" in state, "decoder_embed.weight" in state
        if variation == "as_46.6" and not has_head:
            raise ConfigError(f"{where}: {weights} has no classification head (mlp_head.*), so it is not the "
                              f"fine-tuned as_46.6.pth" + (" (it has the MAE decoder of a pre-trained CAV-MAE: "
                                                          "use variation audio_model.21)" if has_decoder else ""))
        if variation == "audio_model.21" and not has_decoder:
            raise ConfigError(f"{where}: {weights} has no MAE decoder (decoder_*), so it is not the pre-trained "
                              f"audio_model.21.pth" + (" (it has the classification head of a fine-tuned CAV-MAE: "
                                                      "use variation as_46.6)" if has_head else ""))
        _, n_patches, dim = state["pos_embed_a"].shape
        depth_a, depth_u = _depth(state, "blocks_a"), _depth(state, "blocks_u")
        if depth_a == 0 or depth_u == 0 or "blocks_a.0.mlp.fc1.weight" not in state:
            raise ConfigError(f"{where}: {weights} lacks the audio transformer blocks (blocks_a.*, blocks_u.*)")
        freq_patches = NUM_MEL_BINS // PATCH
        if n_patches % freq_patches or tuple(state["patch_embed_a.proj.weight"].shape) != (dim, 1, PATCH, PATCH):
            raise ConfigError(f"{where}: {weights}: unexpected audio patch embedding "
                              f"{tuple(state['patch_embed_a.proj.weight'].shape)} / {n_patches} patches")
        self.target_length = n_patches // freq_patches * PATCH  # 512 patches -> 1024 frames
        hidden = int(state["blocks_a.0.mlp.fc1.weight"].shape[0])

        import torch

        net = va.build_cavmae_audio(int(dim), depth_a, depth_u, hidden, va.heads_for(int(dim), where), int(n_patches))
        va.load_exact(net, state, where, str(weights))
        self.net = net.to(device).eval()
        self.device = device
        self.native_rate = False  # load(..., native_rate=True): resample to 16 kHz first
        self.dim = int(dim)
        self.torch = torch

    def features(self, waveform: np.ndarray):
        """(1, target_length, 128) normalised fbank, as CAV-MAE's ``_wav2fbank`` + normalisation.

        Only the samples of the first ``target_length`` frames are copied (the clip's mean
        is taken in place), so memory does not grow with the clip's length; with
        ``native_rate``, a clip over :data:`EXACT_RESAMPLE_SECONDS` is resampled in blocks
        (``soxr.ResampleStream``: the same samples as the one-shot resampler), keeping only
        those samples and the running sum for the mean (float64: equal to the one-shot
        float32 mean up to float rounding)."""
        torch = self.torch
        from soundsim.models._kaldi import fbank_torch

        y = np.asarray(waveform, dtype=np.float32).reshape(-1)
        rate = NATIVE_RATE if self.native_rate else SAMPLE_RATE
        # frames depend only on their own samples: cut to what the first target_length frames use
        size, shift = int(rate * 0.025), int(rate * 0.010)
        need = (self.target_length - 1) * shift + size
        if self.native_rate and len(y) > EXACT_RESAMPLE_SECONDS * SAMPLE_RATE:
            head, mean = _resample_head_and_mean(y, need)
            x = torch.as_tensor(head) - torch.tensor(mean, dtype=torch.float32)
        else:
            if self.native_rate:
                import soxr

                y = soxr.resample(y, SAMPLE_RATE, NATIVE_RATE, quality="VHQ").astype(np.float32)
            x = torch.as_tensor(y)  # no copy: the mean over the whole clip, then only the head is copied
            x = x[:need] - x.mean() if x.numel() else x
        fbank = fbank_torch(x.numpy(), rate, NUM_MEL_BINS, "hanning")
        p = self.target_length - fbank.shape[0]
        if p > 0:
            fbank = torch.nn.functional.pad(fbank, (0, 0, 0, p))
        elif p < 0:
            fbank = fbank[: self.target_length, :]
        fbank = (fbank - (FBANK_MEAN)) / (FBANK_STD)
        return fbank.unsqueeze(0)

    def tokens(self, waveform: np.ndarray):
        """(1, 512, dim) audio tokens of ``forward_feat``."""
        with self.torch.no_grad():
            return self.net(self.features(waveform).to(self.device))

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        check_sample_rate("CAV-MAE", sample_rate, SAMPLE_RATE)
        out = self.tokens(waveform).mean(dim=1)
        return out.cpu().numpy().astype(np.float32)


def load(variation: str, weights: str | None, device: str = "cpu", *, native_rate: bool) -> CavMaeEmbedder:
    """Option ``native_rate`` (default false: the fbank at 44.1 kHz, as the paper;
    true: resample to CAV-MAE's 16 kHz training rate first)."""
    emb = CavMaeEmbedder(variation, weights, device)
    emb.native_rate = native_rate
    return emb
