"""VGGish (Hershey et al., ICASSP 2017): a VGG-like CNN trained to classify
YouTube-100M videos, through Essentia's frozen graph ``audioset-vggish-3``.

The paper's row "VGGish" (Table II: audio, classification, 62M parameters, 80M
training clips, 128 dimensions); its authors ran Essentia's
``TensorflowPredictVGGish(graphFilename="audioset-vggish-3.pb",
output="model/vggish/embeddings")`` with the algorithm's other defaults on 16 kHz
audio (their ``tensorflow_predict-embedding_extractor.py``), and so does soundsim.
Runs in the ``essentia-tf`` environment (essentia-tensorflow, no Python
TensorFlow); nothing heavy is imported at module import time.

* Input: 16 kHz mono. Essentia's ``TensorflowInputVGGish`` front end: 400-sample
  (25 ms) frames every 160 samples (10 ms), first frame centred on sample 0
  (FrameCutter's default), Hann window zero-padded to a 512-point FFT, 64 HTK-mel
  bands 125-7500 Hz (magnitude, unit-max), ``log(mel + 0.01)``.
* Patches: 96 frames (0.96 s) every **93 frames (0.93 s)**, Essentia's default
  ``patchHopSize`` (the original VGGish code uses 96); the trailing partial patch
  is discarded (``lastPatchMode="discard"``). ``INFO.hop`` = 0.93 s. A clip of ``n``
  samples has ``F = ceil(n / 160) + 1`` frames and ``1 + (F - 96) // 93`` rows
  (:func:`n_rows`): 1 s -> 1 row, 10 s -> 10, 25 s -> 26.
* Layer: ``model/vggish/embeddings``, the 128-dim output of VGGish's last fully
  connected layer (before the AudioSet PCA/quantisation post-processing, which
  is not applied). Frame-level: one row per patch; the paper mean-aggregates.
* Short and long clips: clips under 1 s are zero-padded to 1 s by extraction (as
  the paper's authors did; 0.96 s is the least that gives a patch). Every patch of
  the whole clip is embedded (the authors cut clips at 30 s; FSD50K's are shorter).
  Deterministic: inference only, no random crops.

Weights: ``audioset-vggish-3.pb`` (frozen GraphDef) and its metadata
``audioset-vggish-3.json`` from https://essentia.upf.edu/models/feature-extractors/vggish/
(``weights`` = the ``.pb``, or a folder holding it). The node names are read from
the ``.json`` when it is beside the ``.pb`` (input ``schema.inputs[0].name``, the
output whose ``output_purpose`` is ``"embeddings"``), else Essentia's
``model/Placeholder`` -> ``model/vggish/embeddings``. Loading runs the graph once on
a 1 s test signal: a file that is not a frozen graph, lacks these nodes (e.g.
YAMNet's), or gives another size is a ConfigError naming it.

Verification: without the official weights here, the tests build small
random-weight frozen graphs with the same node names and input/output shapes
([?, 96, 64] -> [?, 128]) and check that essentia-tensorflow's TensorFlow 2.5 loads
and runs them through this module (dims, float32, determinism, rows per duration),
and that the row counts of :func:`n_rows` are Essentia's at the framing's step
points. Once: the authors' exact call (``TensorflowPredictVGGish(graphFilename=...,
output="model/vggish/embeddings")``) and this module gave bit-identical rows on
1, 7.3, 30 and 95 s clips with a random graph.
"""

from __future__ import annotations

from soundsim.models import ModelInfo, PaperInfo
from soundsim.models import _essentia_tf as etf

SAMPLE_RATE = 16000
FRAME, HOP = 400, 160  # TensorflowInputVGGish (hard-coded in Essentia)
PATCH, PATCH_HOP = 96, 93  # TensorflowPredictVGGish's patchSize and default patchHopSize
DIM = 128
VARIATIONS = ("audioset-vggish-3",)
WEIGHT_FILES = {"audioset-vggish-3": "audioset-vggish-3.pb"}
INPUT, OUTPUT = "model/Placeholder", "model/vggish/embeddings"
HINT = (f"audioset-vggish-3.pb and audioset-vggish-3.json from {etf.MODELS_SITE}/feature-extractors/vggish/ "
        "(Essentia's frozen graph)")

INFO = ModelInfo(
    name="vggish",
    variations=VARIATIONS,
    default_variation="audioset-vggish-3",
    sample_rate=SAMPLE_RATE,
    level="frame",
    hop=PATCH_HOP * HOP / SAMPLE_RATE,
    dim=DIM,
    env=etf.ENV,
    description="VGGish (Hershey et al. 2017), YouTube-100M classification CNN; Essentia's audioset-vggish-3 "
    "frozen graph, model/vggish/embeddings per 0.96 s patch",
    weights="required",
    weights_hint=HINT,
    weight_files=WEIGHT_FILES,
    min_duration=1.0,
    long_clips="every 0.96 s patch with a 0.93 s hop (Essentia's default) over the whole clip; the trailing "
    "partial patch is discarded",
    paper=PaperInfo(modality="A", objective="Classification", params="62M", data_size="80M", dims=128),
    packages=etf.PACKAGES,
    # Hershey et al. 2017 / paper Sec. II-B: trained on YouTube-100M (a preliminary YouTube-8M), not on AudioSet
    trained_on=("YouTube-100M",),
)


def n_rows(n_samples: int) -> int:
    """Rows VGGish returns for a clip of ``n_samples`` at 16 kHz (0: too short)."""
    return etf.patch_count(etf.frame_count(n_samples, FRAME, HOP), PATCH, PATCH_HOP)


def load(variation: str, weights: str | None, device: str = "cpu") -> etf.PatchEmbedder:
    """Essentia's TensorflowPredictVGGish on the frozen graph ``weights``; no options."""
    spec = etf.graph_spec("vggish", variation, weights, official=WEIGHT_FILES, default_input=INPUT,
                          default_output=OUTPUT, sample_rate=SAMPLE_RATE, dim=DIM, hint=HINT)
    return etf.PatchEmbedder("vggish", variation, spec, "TensorflowPredictVGGish", sample_rate=SAMPLE_RATE, dim=DIM,
                             frame_size=FRAME, hop_size=HOP, patch=PATCH, patch_hop=PATCH_HOP, device=device,
                             min_duration=INFO.min_duration)
