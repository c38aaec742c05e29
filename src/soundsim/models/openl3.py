"""OpenL3 (Cramer et al., ICASSP 2019, "Look, listen and learn more"): L3-Net audio
CNNs trained by audio-visual correspondence on AudioSet subsets (environmental
videos or music performances), through Essentia's frozen graphs ``openl3-<variation>-3``.

The paper's row "OpenL3" (Table II: audio & image, audiovisual correspondence, 5M
parameters, 296K training videos, 512 dimensions), best variation
``env-mel256-emb512`` (Table I). Variations: content ``env`` | ``music`` x input
``mel128`` | ``mel256`` (mel bands) x embedding ``emb512`` | ``emb6144``; ``INFO.dim``
per variation. Runs in the ``essentia-tf`` environment; nothing heavy is imported
at module import time.

Essentia has no dedicated OpenL3 algorithm: its model page points to a script (a
gist by P. Alonso) that computes the mel input with Essentia and runs the graph
with the generic ``TensorflowPredict``; the paper's authors used that script
(``code/lib/openl3.py``, ``openl3-embedding_extractor.py`` in
raraz15/semantic-sound-similarity) with its defaults, and soundsim computes the
same input (re-implemented here, same Essentia algorithms and parameters):

* 48 kHz mono, cut into **1 s windows with a 1 s hop** (the script's default
  ``hop_time=1``) by Essentia's FrameCutter defaults: the first window is centred on
  sample 0 (window k covers [k - 0.5 s, k + 0.5 s), zero-padded at the clip's ends),
  and windows continue until one's centre reaches the end. A clip of ``n`` samples
  gives ``min(ceil(n / 48000) + 1, ceil((n + 24000) / 48000))`` rows (:func:`n_rows`):
  1 s -> 2 rows (centred at 0 s and 1 s), 10 s -> 11, 25 s -> 26. ``INFO.hop`` = 1 s.
  (The ``openl3`` package's ``center=True`` also centres its first window on 0 s;
  its default hop is 0.1 s.)
* Per window: 2048-sample Hann frames (``Windowing(normalized=False)``), hop 242
  samples, first frame centred on the window's start, frames with less than half
  their samples inside the window dropped (``validFrameThresholdRatio=0.5``): 199
  frames; ``Spectrum`` magnitude; ``MelBands`` with 128 or 256 bands, 0-24 kHz,
  Slaney mel scale, ``unit_tri`` normalisation, linear weighting, magnitude.
  Then, per window: ``10 log10(max(mel, 1e-10))`` dB (reference 1), floored at
  80 dB below the window's maximum, minus the maximum (so the loudest bin is 0 dB).
* The [199, bands] patch is fed transposed as [batch, bands, 199, 1] to node
  ``melspectrogram`` (batches of 60 windows, the script's; other batch sizes change
  the values at float32 rounding level only, ~1e-7 relative); output node
  ``embeddings``: the max-pooled, flattened last conv layer (512 or 6144).
  Frame-level: one row per window. The windows are cut from the clip one at a
  time and the mel patches of one batch exist at a time (a whole hour's patches
  would take 0.7 GB, and as much again transposed; ``FrameGenerator`` would copy
  the whole clip), so memory per clip is bounded; same windows, same batches,
  same rows as before.
* Short and long clips: zero-padded to 1 s by extraction (as the authors did);
  every window of the whole clip is embedded; deterministic.

Weights: ``openl3-<variation>-3.pb`` + ``.json`` from
https://essentia.upf.edu/models/feature-extractors/openl3/ (``weights`` = the ``.pb``
or a folder holding it). Node names and the input shape [199, bands] come from the
``.json`` when present (else ``melspectrogram`` -> ``embeddings``); a ``.json`` for
another mel size, embedding size, rate or variation file, and a graph that is not
frozen, lacks the nodes or gives another embedding size (checked by running it once
at load) are ConfigErrors naming the file. The ``openl3`` package's Keras weights
are not supported.

Verification: tests build random-weight frozen graphs with these node names and
shapes and check the embeddings against a NumPy forward pass of the same graph on
the mel input computed here (so the input layout is right), plus dims, float32,
determinism and rows per duration. Once, outside the repository: the paper
authors' ``MelSpectrogramOpenL3`` + ``EmbeddingsOpenL3`` code, run in this
environment on the same random graphs (env-mel256-emb512, music-mel128-emb6144)
for 1, 3.3, 10 and 61.7 s clips (61.7 s: 63 windows, two batches), gave mel
patches and embeddings bit-identical to this module's (max |diff| 0.0).
"""

from __future__ import annotations

import numpy as np

from soundsim.errors import ConfigError
from soundsim.models import ModelInfo, PaperInfo
from soundsim.models import _essentia_tf as etf

SAMPLE_RATE = 48000
WINDOW, WINDOW_HOP = 48000, 48000  # 1 s windows, 1 s hop (hop_time=1)
FRAME, HOP = 2048, 242  # STFT frames inside a window
N_FRAMES = 199  # frames per window (the graphs' input length)
A_MIN, DB_RANGE = 1e-10, 80.0
BATCH = 60
VARIATIONS = (
    "env-mel256-emb512", "env-mel128-emb512", "env-mel128-emb6144", "env-mel256-emb6144",
    "music-mel128-emb512", "music-mel128-emb6144", "music-mel256-emb512", "music-mel256-emb6144",
)
DIMS = {v: int(v.rsplit("-emb", 1)[1]) for v in VARIATIONS}
N_MELS = {v: int(v.split("-mel", 1)[1].split("-", 1)[0]) for v in VARIATIONS}
WEIGHT_FILES = {v: f"openl3-{v}-3.pb" for v in VARIATIONS}
INPUT, OUTPUT = "melspectrogram", "embeddings"
HINT = (f"openl3-<variation>-3.pb and .json from {etf.MODELS_SITE}/feature-extractors/openl3/ "
        "(Essentia's frozen graphs)")

INFO = ModelInfo(
    name="openl3",
    variations=VARIATIONS,
    default_variation="env-mel256-emb512",
    sample_rate=SAMPLE_RATE,
    level="frame",
    hop=WINDOW_HOP / SAMPLE_RATE,
    dim=DIMS,
    env=etf.ENV,
    description="OpenL3 (Cramer et al. 2019), audio-visual correspondence L3-Net audio CNN; Essentia's frozen "
    "graphs, one embedding per 1 s window",
    weights="required",
    weights_hint=HINT,
    weight_files=WEIGHT_FILES,
    min_duration=1.0,
    long_clips="every 1 s window with a 1 s hop over the whole clip, the first centred on 0 s, the last "
    "zero-padded",
    paper=PaperInfo(modality="A & I", objective="Audiovisual correspondence", params="5M", data_size="296K",
                    dims=512),
    packages=etf.PACKAGES,
    # Cramer et al. 2019 (OpenL3) / paper Sec. II-B: audio-visual correspondence on AudioSet videos
    trained_on=("AudioSet",),
    trained_on_notes={"AudioSet": "its music (music-*) or environmental (env-*) video subset"},
)


def n_rows(n_samples: int) -> int:
    """Rows OpenL3 returns for a clip of ``n_samples`` at 48 kHz (1 s windows, 1 s hop, centred)."""
    return etf.frame_count(n_samples, WINDOW, WINDOW_HOP)


class OpenL3Embedder:
    """Essentia mel input (see module docstring) + ``TensorflowPredict`` on the frozen graph."""

    def __init__(self, variation: str, spec: etf.GraphSpec, device: str = "cpu") -> None:
        es = etf.essentia_standard(device)
        import essentia

        self.es, self.pool_type, self.variation, self.spec = es, essentia.Pool, variation, spec
        self.n_mels, self.dim = N_MELS[variation], DIMS[variation]
        self.window = es.Windowing(size=FRAME, normalized=False)
        self.spectrum = es.Spectrum(size=FRAME)
        self.mel = es.MelBands(
            highFrequencyBound=SAMPLE_RATE / 2, inputSize=FRAME // 2 + 1, log=False, lowFrequencyBound=0,
            normalize="unit_tri", numberBands=self.n_mels, sampleRate=SAMPLE_RATE, type="magnitude",
            warpingFormula="slaneyMel", weighting="linear",
        )
        try:
            self.model = es.TensorflowPredict(graphFilename=str(spec.pb), inputs=[spec.input], outputs=[spec.output],
                                              squeeze=False)
        except RuntimeError as e:
            raise etf.tf_error("openl3", variation, spec, e) from e
        etf.check_probe("openl3", variation, spec, self.embed, INFO.min_duration, SAMPLE_RATE, self.dim)

    def window_mel(self, chunk: np.ndarray) -> np.ndarray:
        """(199, bands) float32 dB mel patch of one 1 s window, normalised to max 0 dB."""
        frames = self.es.FrameGenerator(chunk, frameSize=FRAME, hopSize=HOP, startFromZero=False,
                                        validFrameThresholdRatio=0.5)
        mel = np.array([self.mel(self.spectrum(self.window(f))) for f in frames], dtype=np.float32)
        mel = np.float32(10.0) * np.log10(np.maximum(np.float32(A_MIN), mel))
        mel = np.maximum(mel, mel.max() - np.float32(DB_RANGE))
        return mel - mel.max()

    def iter_patches(self, waveform: np.ndarray):
        """The (199, bands) mel patches of a 48 kHz clip, one window at a time (the windows of
        Essentia's ``FrameGenerator(x, 48000, 48000, startFromZero=False)``, cut from the clip's
        samples without copying the whole clip as ``FrameGenerator`` does)."""
        x = np.asarray(waveform, dtype=np.float32).reshape(-1)
        for k in range(n_rows(len(x))):
            patch = self.window_mel(etf.centred_frames(x, k, 1, WINDOW, WINDOW_HOP)[0])
            assert patch.shape == (N_FRAMES, self.n_mels), patch.shape
            yield patch

    def patches(self, waveform: np.ndarray) -> np.ndarray:
        """(windows, 199, bands) mel patches of a 48 kHz clip."""
        out = list(self.iter_patches(waveform))
        if not out:
            raise ValueError("empty clip")
        return np.stack(out)

    def _run(self, patches: list[np.ndarray]) -> np.ndarray:
        batch = np.ascontiguousarray(np.transpose(np.stack(patches), (0, 2, 1))[..., None])  # [n, bands, 199, 1]
        pool = self.pool_type()
        pool.set(self.spec.input, batch)
        return etf.as_rows(self.model(pool)[self.spec.output])

    def embed(self, waveform: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Rows of the windows, :data:`BATCH` per TensorFlow run; the mel patches of one batch
        at a time (memory independent of the clip's length)."""
        if sample_rate is not None and sample_rate != SAMPLE_RATE:
            raise ValueError(f"openl3 expects {SAMPLE_RATE} Hz audio, got {sample_rate}")
        if len(waveform) == 0:
            raise ValueError("empty clip")
        rows, pending = [], []
        for patch in self.iter_patches(waveform):
            pending.append(patch)
            if len(pending) == BATCH:
                rows.append(self._run(pending))
                pending = []
        if pending:
            rows.append(self._run(pending))
        if not rows:
            raise ValueError("empty clip")
        return np.concatenate(rows, axis=0)


def load(variation: str, weights: str | None, device: str = "cpu") -> OpenL3Embedder:
    """Essentia's TensorflowPredict on the frozen OpenL3 graph ``weights``; no options."""
    spec = etf.graph_spec("openl3", variation, weights, official=WEIGHT_FILES, default_input=INPUT,
                          default_output=OUTPUT, sample_rate=SAMPLE_RATE, dim=DIMS[variation], hint=HINT)
    want = (N_FRAMES, N_MELS[variation])
    if spec.input_shape is not None and tuple(spec.input_shape[-2:]) != want:
        raise ConfigError(f"{etf.where('openl3', variation)}: {spec.metadata} gives the input shape "
                          f"{list(spec.input_shape)}; {variation} takes {list(want)} (frames, mel bands): a file of "
                          f"another variation?")
    return OpenL3Embedder(variation, spec, device)
