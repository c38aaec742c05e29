"""YAMNet (Google, TensorFlow models/research/audioset/yamnet): a MobileNet-v1 CNN
trained to classify AudioSet's 521 classes, through Essentia's frozen graph
``audioset-yamnet-1``.

The paper's row "YAMNet" (Table II: audio, classification, 4M parameters, 2M
training clips, 1024 dimensions); its authors ran Essentia's
``TensorflowPredictVGGish(graphFilename="audioset-yamnet-1.pb",
input="melspectrogram", output="embeddings")`` with the algorithm's other
defaults on 16 kHz audio (their ``tensorflow_predict-embedding_extractor.py``; the
same call as Essentia's own ``audioset-yamnet-1_embeddings.py`` example), and so
does soundsim. Runs in the ``essentia-tf`` environment; nothing heavy is imported
at module import time.

* Input: 16 kHz mono through Essentia's VGGish front end (``TensorflowInputVGGish``:
  400-sample frames every 160 samples, first frame centred on sample 0, 512-point
  FFT, 64 HTK-mel bands 125-7500 Hz, ``log(mel + 0.01)``), which is what Essentia
  feeds this graph.
* Patches: 96 frames (0.96 s) every **93 frames (0.93 s)**, ``TensorflowPredictVGGish``'s
  default ``patchHopSize`` (YAMNet's own code hops 0.48 s); trailing partial patch
  discarded. ``INFO.hop`` = 0.93 s; rows as VGGish (:func:`n_rows`): 1 s -> 1,
  10 s -> 10, 25 s -> 26.
* Layer: ``embeddings``, the 1024-dim global-average-pooled output of the last
  MobileNet layer (the input of YAMNet's classifier; ``activations`` are the 521
  class scores, not used). Frame-level: one row per patch.
* Short and long clips: zero-padded to 1 s by extraction (as the authors did);
  every patch of the whole clip is embedded; deterministic.

Weights: ``audioset-yamnet-1.pb`` + ``audioset-yamnet-1.json`` from
https://essentia.upf.edu/models/audio-event-recognition/yamnet/ (``weights`` = the
``.pb`` or a folder holding it). Node names come from the ``.json`` when present,
else ``melspectrogram`` -> ``embeddings`` (Essentia's metadata). Loading runs the
graph once on a 1 s test signal; a file that is not a frozen graph, lacks these
nodes (e.g. VGGish's ``audioset-vggish-3.pb``) or gives another size is a
ConfigError naming it.

Verification: tests build random-weight frozen graphs with YAMNet's node names
and shapes ([?, 96, 64] -> ``embeddings`` [?, 1024], ``activations`` [?, 521]) and run
them through essentia-tensorflow via this module. Once: the authors' exact call
(``input="melspectrogram", output="embeddings"``) and this module gave bit-identical
rows on 1, 7.3, 30 and 95 s clips with a random graph.
"""

from __future__ import annotations

from soundsim.models import ModelInfo, PaperInfo
from soundsim.models import _essentia_tf as etf
from soundsim.models.vggish import FRAME, HOP, PATCH, PATCH_HOP, SAMPLE_RATE
from soundsim.models.vggish import n_rows as n_rows  # same front end and patching

DIM = 1024
VARIATIONS = ("audioset-yamnet-1",)
WEIGHT_FILES = {"audioset-yamnet-1": "audioset-yamnet-1.pb"}
INPUT, OUTPUT = "melspectrogram", "embeddings"
HINT = (f"audioset-yamnet-1.pb and audioset-yamnet-1.json from {etf.MODELS_SITE}/audio-event-recognition/yamnet/ "
        "(Essentia's frozen graph)")

INFO = ModelInfo(
    name="yamnet",
    variations=VARIATIONS,
    default_variation="audioset-yamnet-1",
    sample_rate=SAMPLE_RATE,
    level="frame",
    hop=PATCH_HOP * HOP / SAMPLE_RATE,
    dim=DIM,
    env=etf.ENV,
    description="YAMNet (Google), MobileNet-v1 AudioSet classifier; Essentia's audioset-yamnet-1 frozen graph, "
    "1024-dim embeddings per 0.96 s patch",
    weights="required",
    weights_hint=HINT,
    weight_files=WEIGHT_FILES,
    min_duration=1.0,
    long_clips="every 0.96 s patch with a 0.93 s hop (Essentia's default) over the whole clip; the trailing "
    "partial patch is discarded",
    paper=PaperInfo(modality="A", objective="Classification", params="4M", data_size="2M", dims=1024),
    packages=etf.PACKAGES,
    # YAMNet model card (TF Hub, tensorflow/models research/audioset/yamnet): AudioSet classifier
    trained_on=("AudioSet",),
)


def load(variation: str, weights: str | None, device: str = "cpu") -> etf.PatchEmbedder:
    """Essentia's TensorflowPredictVGGish on YAMNet's frozen graph ``weights``; no options."""
    spec = etf.graph_spec("yamnet", variation, weights, official=WEIGHT_FILES, default_input=INPUT,
                          default_output=OUTPUT, sample_rate=SAMPLE_RATE, dim=DIM, hint=HINT)
    return etf.PatchEmbedder("yamnet", variation, spec, "TensorflowPredictVGGish", sample_rate=SAMPLE_RATE, dim=DIM,
                             frame_size=FRAME, hop_size=HOP, patch=PATCH, patch_hop=PATCH_HOP, device=device,
                             min_duration=INFO.min_duration)
