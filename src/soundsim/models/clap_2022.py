"""CLAP 2022 (Elizalde et al., ICASSP 2023, "CLAP: Learning audio concepts from natural
language supervision"): Microsoft's first CLAP, PyPI ``msclap`` 1.3.4, version '2022'.
The paper's row "CLAP2022" (Table II: A & L, contrastive alignment, 81M, 128K pairs,
1024 dims); one variation, ``2022``.

Audio encoder only (nothing is downloaded; no text encoder): PANNs' Cnn14 (msclap's
``msclap.models.audio.Cnn14``) with ``config_2022.yml``'s values (44.1 kHz; torchlibrosa
STFT, window 1024, hop 320; 64 mel bands, 50-14000 Hz; ``out_emb`` 2048) and msclap's
projection head (2048 -> 1024, ``d_proj``). **Layer used**: the projection output, what
msclap's ``CLAPWrapper.get_audio_embeddings`` returns (``clap.audio_encoder(x)[0]``,
not normalised): 1024 dims, the paper's native dimension. The paper's authors' code for
this model is not in their public repository; msclap's documented audio embedding is used.

Framing: 5-second windows (``duration: 5``), hop 5 s, one row each (frame level);
clips up to 5 s are repeated to 5 s as msclap does; longer clips are cut into
consecutive windows, the last one ending at the clip's end, instead of msclap's random
5 s crop (deterministic; see :mod:`soundsim.models._msclap`). A clip of ``n`` samples
gives ``max(1, ceil(n / 220500))`` rows: 1 s -> 1, 10 s -> 2, 25 s -> 5.

Weights: ``CLAP_weights_2022.pth`` (Hugging Face ``microsoft/msclap`` or Zenodo record
8378278): ``torch.save({'model': state_dict})`` of the whole CLAP; soundsim loads the
``audio_encoder.*`` tensors strictly (a Cnn14 encoder is required: an HTS-AT checkpoint,
a Pengi checkpoint or another file is a ConfigError naming the path).

Verified (tests/test_models_msclap.py, run in the ``msclap`` env): with the same random
Cnn14 checkpoint saved in the official format, soundsim's rows equal what msclap's own
code gives (msclap's ``CLAP`` model loaded with msclap's ``load_state_dict(strict=False)``
and msclap's ``CLAPWrapper.get_audio_embeddings`` path: ``load_audio_into_tensor``,
``default_collate``, ``_get_audio_embeddings``; file decoding replaced, no torchaudio)
for a 1 s clip (repeat-padded), both 5 s windows of a 10 s clip and the last window of
a 25 s clip, to float32 rounding: max abs difference 2.2e-6 (0.0 for the 1 s clip,
where both compute the very same single-window batch).

Options: ``batch_size`` (windows per forward pass, default 8), ``normalize`` (L2-normalise
rows; default False, as msclap).
"""

from __future__ import annotations

from soundsim.models import ModelInfo, PaperInfo
from soundsim.models._msclap import ENV, PACKAGES, SAMPLE_RATE, SPECS, options, weights_hint

SPEC = SPECS["clap-2022"]

INFO = ModelInfo(
    name="clap-2022",
    variations=("2022",),
    default_variation="2022",
    sample_rate=SAMPLE_RATE,
    level="frame",
    hop=float(SPEC.duration),
    dim=SPEC.d_proj,
    env=ENV,
    description="Microsoft CLAP 2022 (msclap): Cnn14 audio encoder + projection, 1024-dim audio embedding "
    "per 5 s window",
    weights="required",
    weight_files={"2022": "CLAP_weights_2022.pth"},
    weights_hint=weights_hint(SPEC),
    min_duration=0.0,
    long_clips="consecutive 5 s windows (hop 5 s), the last one ending at the clip's end; clips up to 5 s are "
    "repeated to 5 s (msclap's padding); no random crop",
    paper=PaperInfo(modality="A & L", objective="Contrastive alignment", params="81M", data_size="128K", dims=1024),
    packages=PACKAGES,
    needs_gpu=True,
    options=options(SPEC),
    # Elizalde et al., ICASSP 2023 (MS-CLAP 2022), Sec. 3: 128K audio-text pairs from FSD50K, ClothoV2,
    # AudioCaps and MACS; its Cnn14 audio encoder starts from PANNs (AudioSet)
    trained_on=("FSD50K", "Clotho", "AudioCaps", "MACS", "AudioSet"),
    trained_on_notes={"FSD50K": "part of its 128K audio-text pairs", "AudioSet": "PANNs Cnn14 initialisation"},
)


def load(variation: str, weights: str | None, device: str = "cpu", *, batch_size: int, normalize: bool):
    from soundsim.models import _msclap

    return _msclap.load(INFO.name, variation, weights, device, batch_size=batch_size, normalize=normalize)
