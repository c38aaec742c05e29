"""Pengi (Deshmukh, Elizalde, Singh & Wang, NeurIPS 2023, "Pengi: An audio language model
for audio tasks"), ``microsoft/Pengi`` (not on PyPI), configuration ``base``. The
paper's row "Pengi" (Table II: A & L, question answering, 31M, 3.4M pairs, 1024 dims);
one variation, ``base``.

Audio encoder only (no CLIP text encoder, no GPT-2 decoder; nothing is downloaded).
Pengi's audio encoder (``Pengi/models/pengi.py`` ``AudioEncoder``: ``HTSATWrapper`` +
``Projection`` 768 -> 1024, config ``configs/base.yml``) is line for line the code msclap
ships for CLAP 2023 (same HTS-AT from the module ``config``, same projection, same module
names), so soundsim builds it from msclap's modules (env ``msclap``; see
:mod:`soundsim.models._msclap`). Input: 44.1 kHz (``base.yml``: ``sampling_rate: 44100``,
``duration: 7``). **Layer used**: the audio embedding Pengi's wrapper returns,
``PengiWrapper.get_audio_embeddings(...)[1]``: the projection output **L2-normalised**
(``normalize_prefix: True``), 1024 dims, the paper's native dimension (not the 40 x 768
GPT-2 prefix). The paper's authors' code for this model is not in their public
repository; Pengi's documented audio embedding is used.

Framing: as CLAP 2023: 7-second windows, hop 7 s, one row each (frame level); clips up
to 7 s are repeated to 7 s as Pengi's ``load_audio_into_tensor`` does; longer clips are
cut into consecutive windows, the last one ending at the clip's end, instead of Pengi's
random 7 s crop. Rows: 1 s -> 1, 10 s -> 2, 25 s -> 4.

Weights: ``base.pth`` from Zenodo record 8387083 (the Pengi README's "Pretrained Model";
not ``base_no_text_enc.pth``): ``torch.save({'model': state_dict})`` of the whole PENGI
model (keys possibly prefixed ``module.``, stripped as Pengi's wrapper does). soundsim
loads the ``audio_encoder.*`` tensors strictly and requires Pengi's ``caption_decoder.*``
tensors to be present (a CLAP 2023 checkpoint has the same audio encoder and is refused
with a ConfigError naming the path, as is anything else).

Verified (tests/test_models_msclap.py, ``msclap`` env): with a random checkpoint in
Pengi's format, soundsim's rows equal msclap's HTS-AT ``AudioEncoder`` output divided by
its L2 norm (Pengi's ``_get_audio_embeddings``) to float32 rounding (max abs difference
5e-8); Pengi's ``models/htsat.py`` and ``models/pengi.py`` were compared with msclap's by
reading (Pengi is not on PyPI). Pengi's ``models/config.py`` (HTS-AT hyper-parameters) was
not available to compare; it is taken to be msclap's (same authors, same code; its
``base.yml`` agrees: window 1024, hop 320, 64 mel bands). A checkpoint that does not fit
the architecture is refused, never loaded partly.

Options: ``batch_size`` (windows per forward pass, default 8), ``normalize`` (default True,
as Pengi; False gives the raw projection).
"""

from __future__ import annotations

from soundsim.models import ModelInfo, PaperInfo
from soundsim.models._msclap import ENV, PACKAGES, SAMPLE_RATE, SPECS, options, weights_hint

SPEC = SPECS["pengi"]

INFO = ModelInfo(
    name="pengi",
    variations=("base",),
    default_variation="base",
    sample_rate=SAMPLE_RATE,
    level="frame",
    hop=float(SPEC.duration),
    dim=SPEC.d_proj,
    env=ENV,
    description="Pengi audio language model (base): HTS-AT audio encoder + projection, L2-normalised "
    "1024-dim audio embedding per 7 s window",
    weights="required",
    weight_files={"base": "base.pth"},
    weights_hint=weights_hint(SPEC),
    min_duration=0.0,
    long_clips="consecutive 7 s windows (hop 7 s), the last one ending at the clip's end; clips up to 7 s are "
    "repeated to 7 s (Pengi's padding); no random crop",
    paper=PaperInfo(modality="A & L", objective="Question-answering", params="31M", data_size="3.4M", dims=1024),
    packages=PACKAGES,
    needs_gpu=True,
    options=options(SPEC),
    # Deshmukh et al., NeurIPS 2023 (Pengi), Sec. 4: 3.4M audio-text pairs from the training sets of
    # AudioSet, FSD50K, CochlScene, MSP Podcast, CMU MOSI / MOSEI, MELD, NSynth, FMA, AudioCaps, ClothoV2,
    # Clotho AQA, WavText5K, SoundDescs, MACS, WavCaps, FreeSound and FindSound
    trained_on=("AudioSet", "FSD50K", "CochlScene", "MSP-Podcast", "CMU-MOSI", "CMU-MOSEI", "MELD", "NSynth", "FMA",
                "AudioCaps", "Clotho", "ClothoAQA", "WavText5K", "SoundDescs", "MACS", "WavCaps", "FreeSound",
                "FindSound"),
    trained_on_notes={"FSD50K": "its dev (training) split"},
)


def load(variation: str, weights: str | None, device: str = "cpu", *, batch_size: int, normalize: bool):
    from soundsim.models import _msclap

    return _msclap.load(INFO.name, variation, weights, device, batch_size=batch_size, normalize=normalize)
