"""CLAP 2023 (Elizalde, Deshmukh & Wang, ICASSP 2024, "Natural language supervision
for general-purpose audio representations"): Microsoft CLAP, PyPI ``msclap`` 1.3.4,
version '2023'. The paper's row "CLAP2023" (Table II: A & L, contrastive alignment,
31M, 4.6M pairs, 1024 dims); one variation, ``2023``.

Audio encoder only (nothing is downloaded; the GPT-2 text encoder is not built):
msclap's HTS-AT (``msclap.models.audio.HTSATWrapper``; its hyper-parameters and
spectrogram front end come from ``msclap.models.config``: Swin-T, embed dim 96, depths
2-2-6-2, 256 x 256 input, STFT window 1024, hop 320, 64 mel bands; the STFT and mel
matrices are loaded from the checkpoint) and msclap's projection head (768 -> 1024).
Input: 44.1 kHz (``config_2023.yml``). **Layer used**: the projection output, what
msclap's ``CLAPWrapper.get_audio_embeddings`` returns (not normalised): 1024 dims, the
paper's native dimension. The paper's authors' code for this model is not in their
public repository; msclap's documented audio embedding is used.

Framing: 7-second windows (``duration: 7``; 965 STFT frames, which HTS-AT stretches to
its 1024-frame input as in msclap), hop 7 s, one row each (frame level); clips up to
7 s are repeated to 7 s as msclap does; longer clips are cut into consecutive windows,
the last one ending at the clip's end, instead of msclap's random 7 s crop
(deterministic; see :mod:`soundsim.models._msclap`). Rows: ``max(1, ceil(n / 308700))``:
1 s -> 1, 10 s -> 2, 25 s -> 4.

Weights: ``CLAP_weights_2023.pth`` (Hugging Face ``microsoft/msclap`` or Zenodo record
8378278; not ``clapcap_weights_2023.pth``): ``torch.save({'model': state_dict})`` of the
whole CLAP; soundsim loads the ``audio_encoder.*`` tensors strictly (an HTS-AT encoder
without Pengi's ``caption_decoder.*`` is required; anything else is a ConfigError
naming the path).

Verified (tests/test_models_msclap.py, ``msclap`` env): with the same random HTS-AT
checkpoint in the official format, soundsim's rows equal msclap's own
``CLAPWrapper.get_audio_embeddings`` path on msclap's ``CLAP`` model (file decoding
replaced, no torchaudio) for a 1 s clip, both 7 s windows of a 10 s clip and the last
window of a 25 s clip, to float32 rounding: max abs difference 1.7e-6 (0.0 for the 1 s
clip, where both compute the very same single-window batch).

Options: ``batch_size`` (windows per forward pass, default 8), ``normalize`` (L2-normalise
rows; default False, as msclap).
"""

from __future__ import annotations

from soundsim.models import ModelInfo, PaperInfo
from soundsim.models._msclap import ENV, PACKAGES, SAMPLE_RATE, SPECS, options, weights_hint

SPEC = SPECS["clap-2023"]

INFO = ModelInfo(
    name="clap-2023",
    variations=("2023",),
    default_variation="2023",
    sample_rate=SAMPLE_RATE,
    level="frame",
    hop=float(SPEC.duration),
    dim=SPEC.d_proj,
    env=ENV,
    description="Microsoft CLAP 2023 (msclap): HTS-AT audio encoder + projection, 1024-dim audio embedding "
    "per 7 s window",
    weights="required",
    weight_files={"2023": "CLAP_weights_2023.pth"},
    weights_hint=weights_hint(SPEC),
    min_duration=0.0,
    long_clips="consecutive 7 s windows (hop 7 s), the last one ending at the clip's end; clips up to 7 s are "
    "repeated to 7 s (msclap's padding); no random crop",
    paper=PaperInfo(modality="A & L", objective="Contrastive alignment", params="31M", data_size="4.6M", dims=1024),
    packages=PACKAGES,
    needs_gpu=True,
    options=options(SPEC),
    # Elizalde, Deshmukh & Wang, ICASSP 2024 (MS-CLAP 2023), Table 1: 4.6M audio-text pairs from sound-event,
    # music and speech datasets, FSD50K among them (the speech / emotion sets are not listed here)
    trained_on=("FSD50K", "Clotho", "AudioCaps", "MACS", "WavText5K", "SoundDescs", "WavCaps", "FreeSound",
                "AudioSet", "NSynth", "FMA"),
    trained_on_notes={"FSD50K": "part of its 4.6M audio-text pairs"},
)


def load(variation: str, weights: str | None, device: str = "cpu", *, batch_size: int, normalize: bool):
    from soundsim.models import _msclap

    return _msclap.load(INFO.name, variation, weights, device, batch_size=batch_size, normalize=normalize)
