"""FSD-SINet (Fonseca, Ferraro & Serra 2021, "Improving sound event classification
by increasing shift invariance in CNNs"): VGG-like CNNs trained on FSD50K, through
Essentia's frozen graphs ``fsd-sinet-<variation>``.

The paper's row "FSD-SINet" (Table II: audio, classification, 5M parameters, 51K
training clips, 512 dimensions), best variation ``vgg42-tlpf-1`` (Table I).
Variations (Essentia's four releases): ``vgg41-tlpf-1`` (width factor 1, 1.3M
parameters, **256**-dim embeddings; trainable low-pass filters), ``vgg42-tlpf-1``
(default; width factor 2, 4.9M, 512-dim), ``vgg42-aps-1`` (adaptive polyphase
sampling), ``vgg42-tlpf_aps-1`` (both); dims from the model code (edufonseca/shift_sec
``model.py``: last block ``256 * width_factor`` filters). The paper's authors ran
Essentia's ``TensorflowPredictFSDSINet(graphFilename=<file>,
output="model/global_max_pooling1d/Max")`` with the other defaults on 22.05 kHz
audio, and so does soundsim. Runs in the ``essentia-tf`` environment; nothing heavy
is imported at module import time.

* Input: 22.05 kHz mono, **normalised per clip** by the algorithm (``normalize=True``,
  the default the authors used: mean removed, then peak-normalised with a 0.005
  headroom, as the model was trained). Essentia's ``TensorflowInputFSDSINet`` front
  end: 660-sample (30 ms) frames every 220 samples (10 ms), first frame centred on
  sample 0, 96 log-mel bands; fed as [batch, 101 frames, 96 bands, 1] to node ``x``.
* Patches: 101 frames (1.01 s) every **50 frames** (``patchHopSize`` default:
  50 x 220 / 22050 = 0.4989 s = ``INFO.hop``); trailing partial patch discarded.
  A clip of ``n`` samples has ``F = ceil(n / 220) + 1`` frames and ``1 + (F - 101) // 50``
  rows (:func:`n_rows`): 1 s -> 1 row, 10 s -> 19, 25 s -> 49.
* Layer: ``model/global_max_pooling1d/Max``: the last conv block's feature map,
  averaged over frequency and max-pooled over time (the input of the 200-class
  classifier ``model/predictions``). Frame-level: one row per patch.
* Short and long clips: zero-padded to 1 s by extraction (as the authors did; 1 s
  gives 102 frames, one patch); every patch of the whole clip is embedded;
  deterministic.

Weights: ``fsd-sinet-<variation>.pb`` + ``.json`` from
https://essentia.upf.edu/models/audio-event-recognition/fsd-sinet/ (``weights`` =
the ``.pb`` or a folder holding it). Node names from the ``.json`` when present,
else ``x`` -> ``model/global_max_pooling1d/Max``. A ``.json`` whose ``link`` names
another variation's file, a graph that is not frozen, lacks these nodes or gives
another size than the variation's (a VGG41 file for a VGG42 variation) is a
ConfigError. (The VGG42 variations have the same nodes and sizes: without the
``.json`` a VGG42 file of another VGG42 variation cannot be told apart.)

Verification: tests build random-weight frozen graphs with these node names and
shapes (``x`` [?, 101, 96, 1] -> [?, 512] / [?, 256], ``model/predictions/Sigmoid``
[?, 200]) and run them through essentia-tensorflow via this module. Once: the
authors' exact call (``TensorflowPredictFSDSINet(graphFilename=...,
output="model/global_max_pooling1d/Max")``) and this module gave bit-identical rows
on 1, 7.3, 30 and 95 s clips with a random graph.
"""

from __future__ import annotations

from soundsim.models import ModelInfo, PaperInfo
from soundsim.models import _essentia_tf as etf

SAMPLE_RATE = 22050
FRAME, HOP = 660, 220  # TensorflowPredictFSDSINet (hard-coded in Essentia)
PATCH, PATCH_HOP = 101, 50  # patch size (hard-coded) and default patchHopSize
VARIATIONS = ("vgg42-tlpf-1", "vgg41-tlpf-1", "vgg42-aps-1", "vgg42-tlpf_aps-1")
DIMS = {"vgg41-tlpf-1": 256, "vgg42-tlpf-1": 512, "vgg42-aps-1": 512, "vgg42-tlpf_aps-1": 512}
WEIGHT_FILES = {v: f"fsd-sinet-{v}.pb" for v in VARIATIONS}
INPUT, OUTPUT = "x", "model/global_max_pooling1d/Max"
HINT = (f"fsd-sinet-<variation>.pb and .json from {etf.MODELS_SITE}/audio-event-recognition/fsd-sinet/ "
        "(Essentia's frozen graphs)")

INFO = ModelInfo(
    name="fsd-sinet",
    variations=VARIATIONS,
    default_variation="vgg42-tlpf-1",
    sample_rate=SAMPLE_RATE,
    level="frame",
    hop=PATCH_HOP * HOP / SAMPLE_RATE,
    dim=DIMS,
    env=etf.ENV,
    description="FSD-SINet (Fonseca et al. 2021), shift-invariant VGG CNNs trained on FSD50K; Essentia's frozen "
    "graphs, global max pooling embedding per 1.01 s patch",
    weights="required",
    weights_hint=HINT,
    weight_files=WEIGHT_FILES,
    min_duration=1.0,
    long_clips="every 1.01 s patch with a 0.499 s hop (Essentia's default) over the whole, peak-normalised clip; "
    "the trailing partial patch is discarded",
    paper=PaperInfo(modality="A", objective="Classification", params="5M", data_size="51K", dims=512),
    packages=etf.PACKAGES,
    # Fonseca et al. 2021 (FSD-SINet) / Essentia model card: trained on FSD50K's dev set (train + validation);
    # the paper (Sec. IV) notes it "was developed and evaluated on the FSD50K dataset": its labels are seen
    trained_on=("FSD50K",),
    trained_on_notes={"FSD50K": "dev split: the eval split's 200 labels are seen"},
)


def n_rows(n_samples: int) -> int:
    """Rows FSD-SINet returns for a clip of ``n_samples`` at 22.05 kHz (0: too short)."""
    return etf.patch_count(etf.frame_count(n_samples, FRAME, HOP), PATCH, PATCH_HOP)


def load(variation: str, weights: str | None, device: str = "cpu") -> etf.PatchEmbedder:
    """Essentia's TensorflowPredictFSDSINet on the frozen graph ``weights``; no options."""
    dim = DIMS[variation]
    spec = etf.graph_spec("fsd-sinet", variation, weights, official=WEIGHT_FILES, default_input=INPUT,
                          default_output=OUTPUT, sample_rate=SAMPLE_RATE, dim=dim, hint=HINT)
    return etf.PatchEmbedder("fsd-sinet", variation, spec, "TensorflowPredictFSDSINet", sample_rate=SAMPLE_RATE,
                             dim=dim, frame_size=FRAME, hop_size=HOP, patch=PATCH, patch_hop=PATCH_HOP, device=device,
                             min_duration=INFO.min_duration, normalize=True)
