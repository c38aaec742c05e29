"""musicnn (Pons & Serra 2019): music audio tagging CNNs, PyPI ``musicnn`` 0.1.0.

Not in the paper; added as a music-trained reference. The PyPI package ships
the TF1 checkpoints (``musicnn/MTT_musicnn/``: MagnaTagATune, ``musicnn/MSD_musicnn/``:
Million Song Dataset; 50 tags each): nothing to download. Runs in its own
environment ``musicnn`` (``envs/musicnn.txt``: TensorFlow 2.15 CPU, NumPy 1.26;
under NumPy 2 musicnn's spectrogram overflows float16 and the numbers are wrong).
Nothing here imports TensorFlow or musicnn at module import time.

Input and patches, exactly as ``musicnn.extractor.batch_data`` with
``input_length=3, input_overlap=False``:

* 16 kHz mono; ``librosa.feature.melspectrogram(n_fft=512, hop_length=256,
  n_mels=96)`` (power, centred frames), cast to float16 (musicnn stores its
  spectrograms so), then ``log10(10000 x + 1)``, which NumPy 1.x computes in
  float32 (value-based casting promotes ``10000 * float16``; NumPy 2 keeps
  float16, overflows above x = 6.55 and gives wrong numbers). soundsim does
  that float32 arithmetic explicitly, so it is right under either NumPy;
* patches of ``n_frames = librosa.time_to_frames(3, sr=16000, n_fft=512,
  hop_length=256) + 1 = 187`` spectrogram frames (2.992 s), without overlap:
  patch k starts at frame 187 k; **the trailing frames that do not fill a
  whole patch are dropped** (musicnn's ``range(0, T - 187 + 1, 187)``). A clip of
  ``n`` samples has ``T = 1 + n // 256`` frames and gives ``T // 187`` rows
  (:func:`n_rows`): a 10 s clip (T = 626) gives 3 rows (0-2.99 s, 2.99-5.98 s,
  5.98-8.98 s; the last 1.0 s is not embedded), a 30 s clip (T = 1876) 10 rows;
* hop between rows: 187 x 256 / 16000 = 2.992 s (``INFO.hop``; musicnn calls it
  a 3-second input);
* clips shorter than 3 s are zero-padded at the end to 3 s by extraction
  (``min_duration``), which gives T = 188 >= 187: exactly one row (musicnn's own
  extractor crashes on them).

Memory per clip is bounded: the spectrogram is computed :data:`PATCHES_PER_CHUNK`
patches (60 s) at a time from the samples those frames cover (:func:`log_mel_frames`;
the whole clip's STFT took about 0.7 GB per hour of audio), and patches are run one
at a time. A clip up to 60 s is one chunk; the rows of a longer one equal those of
the whole clip's spectrogram up to float rounding (``tests/test_models_musicnn.py``).

Deterministic: no random crops; batch norm and dropout in inference mode. The
TF graph is built and the checkpoint restored **once**, in :func:`load` (musicnn's
own ``extractor`` rebuilds both for every file); then each clip costs one
spectrogram and one ``session.run`` per patch. Patches are run one at a time
(``batch_size`` 1, musicnn's ``BATCH_SIZE``), so a patch's embedding does not
depend on the rest of the clip and matches musicnn's own extractor bit for bit
where that is right. Beware: musicnn 0.1.0's ``extractor`` returns the *first*
patch's ``penultimate`` (and ``cnn1``-``cnn3``) for every patch when
``BATCH_SIZE`` is 1 (its loop over later batches unpacks them into other names
and re-appends the stale first-batch arrays); its ``taggram``, ``mean_pool`` and
``max_pool`` are right. The tests compare against musicnn with that in mind.

Layers (option ``layer``): ``penultimate`` (default, 200: the back-end dense
layer after batch norm, what musicnn's ``features['penultimate']`` returns),
``mean_pool`` and ``max_pool`` (753 each: temporal mean / max of the mid-end
feature maps), ``taggram`` (50 tag probabilities). Only ``penultimate`` matches
``INFO.dim``; the others need extraction to take the dimension from the loaded
embedder (``embedder.dim``).

Weights: bundled (``weights`` unset). A ``weights`` path may name a folder
with the same checkpoint layout as the package's (``<folder>/.index``,
``<folder>/.data-00000-of-00001``, as TF's ``Saver`` writes for the prefix
``<folder>/``), or a checkpoint prefix (``.../model.ckpt``); it must hold a
musicnn model of the variation's architecture.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from soundsim.errors import ConfigError
from soundsim.models import ModelInfo, OptionSpec, check_sample_rate

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FFT_SIZE, FFT_HOP, N_MELS = 512, 256, 96  # musicnn.configuration
INPUT_LENGTH = 3.0  # seconds, musicnn's recommended input_length (the models were trained on 3 s)
N_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
PATCH_HOP = N_FRAMES * FFT_HOP / SAMPLE_RATE  # 2.992 s: input_overlap=False -> hop = one patch
PATCHES_PER_CHUNK = 20  # patches whose spectrogram is computed at once (60 s; bounds memory)
LAYERS = {"penultimate": 200, "mean_pool": 753, "max_pool": 753, "taggram": 50}
DEFAULT_LAYER = "penultimate"
VARIATIONS = ("MTT_musicnn", "MSD_musicnn")

INFO = ModelInfo(
    name="musicnn",
    variations=VARIATIONS,
    default_variation="MTT_musicnn",
    sample_rate=SAMPLE_RATE,
    level="frame",
    hop=PATCH_HOP,
    dim=LAYERS[DEFAULT_LAYER],
    env="musicnn",
    description="musicnn music-tagging CNN (Pons & Serra 2019), MagnaTagATune / Million Song Dataset; "
    "penultimate layer per 3-second patch",
    weights="bundled",
    weights_hint="bundled with PyPI musicnn 0.1.0 (musicnn/<variation>/); a local checkpoint folder overrides it",
    min_duration=INPUT_LENGTH,
    long_clips="every whole, non-overlapping 3 s patch (187 frames, hop 2.992 s); the trailing partial patch is dropped",
    paper=None,
    packages=("musicnn", "tensorflow-cpu", "librosa"),
    options={
        "layer": OptionSpec(str, DEFAULT_LAYER, "the layer embedded: penultimate (200 dims), mean_pool or max_pool "
                            "(753), taggram (50 tag probabilities)", choices=tuple(LAYERS)),
        "threads": OptionSpec(int, 0, "TensorFlow intra- and inter-op threads; 0: TensorFlow's default", min=0),
    },
    # Pons & Serra 2019 (musicnn) / Essentia model card: MTT_musicnn on MagnaTagATune, MSD_musicnn on the
    # Million Song Dataset (Last.fm tags)
    trained_on=("MagnaTagATune", "MSD"),
    trained_on_notes={"MagnaTagATune": "MTT_musicnn", "MSD": "MSD_musicnn"},
)


def bundled_checkpoint(variation: str) -> Path:
    """Folder of the checkpoint shipped inside the musicnn package."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the musicnn package is not installed (run in the 'musicnn' environment, envs/musicnn.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / variation


def checkpoint_prefix(variation: str, weights: str | None) -> str:
    """The prefix ``Saver.restore`` takes: ``<folder>/`` for the package's layout."""
    path = Path(weights) if weights else bundled_checkpoint(variation)
    if path.is_dir():
        if not (path / ".index").is_file():
            raise ConfigError(f"models.musicnn.weights.{variation}: {path} has no '.index' (not a musicnn checkpoint folder)")
        return str(path) + "/"
    if Path(str(path) + ".index").is_file():
        return str(path)
    raise ConfigError(f"models.musicnn.weights.{variation}: {path} is neither a checkpoint folder nor a checkpoint prefix")


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """(T, 96) log-mel spectrogram, as musicnn.extractor.batch_data (float32 under NumPy 1.x)."""
    import librosa

    rep = librosa.feature.melspectrogram(
        y=np.asarray(waveform, dtype=np.float32), sr=SAMPLE_RATE, hop_length=FFT_HOP, n_fft=FFT_SIZE, n_mels=N_MELS
    ).T
    # float16 quantisation as musicnn, then float32 arithmetic explicitly: what NumPy 1.x
    # does for musicnn's ``np.log10(10000 * rep + 1)``, and right under NumPy 2 as well
    rep = rep.astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000) * rep + np.float32(1))


def log_mel_frames(waveform: np.ndarray, first: int, count: int) -> np.ndarray:
    """Rows ``first .. first + count - 1`` of :func:`log_mel`, computed from the samples those
    frames cover alone (librosa's centred frames: frame t centred on sample ``256 t``, zeros
    outside the clip), so memory does not depend on the clip's length."""
    import librosa

    x = np.asarray(waveform, dtype=np.float32).reshape(-1)
    lo = first * FFT_HOP - FFT_SIZE // 2
    hi = (first + count - 1) * FFT_HOP + FFT_SIZE // 2  # exclusive
    seg = np.zeros(hi - lo, dtype=np.float32)
    a, b = max(lo, 0), min(hi, len(x))
    if b > a:
        seg[a - lo : b - lo] = x[a:b]
    rep = librosa.feature.melspectrogram(
        y=seg, sr=SAMPLE_RATE, hop_length=FFT_HOP, n_fft=FFT_SIZE, n_mels=N_MELS, center=False
    ).T
    rep = rep.astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000) * rep + np.float32(1))


def patches(rep: np.ndarray) -> np.ndarray:
    """(n, 187, 96) non-overlapping whole patches; trailing frames dropped (batch_data)."""
    starts = range(0, rep.shape[0] - N_FRAMES + 1, N_FRAMES)
    if len(starts) == 0:
        raise ValueError(
            f"clip too short for musicnn: {rep.shape[0]} spectrogram frames, a patch needs {N_FRAMES} "
            f"(pad clips to {INPUT_LENGTH} s)"
        )
    return np.stack([rep[s : s + N_FRAMES] for s in starts])


def n_rows(n_samples: int) -> int:
    """Rows :meth:`MusicnnEmbedder.embed` returns for a clip of ``n_samples`` (0: too short)."""
    return (1 + n_samples // FFT_HOP) // N_FRAMES


class MusicnnEmbedder:
    """One TF graph and session per loaded model; see module docstring."""

    def __init__(self, variation: str, weights: str | None, layer: str = DEFAULT_LAYER, threads: int = 0) -> None:
        if variation not in VARIATIONS:
            raise ConfigError(f"models.musicnn.variations: {variation!r}; allowed values: {', '.join(VARIATIONS)}")
        prefix = checkpoint_prefix(variation, weights)

        import os
        import warnings

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines
        import tensorflow as tf
        from musicnn import configuration as config
        from musicnn import models as mn_models

        self.tf = tf
        self.layer = layer
        self.dim = LAYERS[layer]
        self.graph = tf.Graph()
        with self.graph.as_default(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*tf\.compat\.v1\.layers.*", category=UserWarning)
            warnings.filterwarnings("ignore", message=r".*is deprecated.*")
            # same scope and variable names as musicnn.extractor.extractor, so the checkpoint restores
            with tf.name_scope("model"):
                self.x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, config.N_MELS])
                self.is_training = tf.compat.v1.placeholder(tf.bool)
                labels = config.MTT_LABELS if variation.startswith("MTT") else config.MSD_LABELS
                out = mn_models.define_model(self.x, self.is_training, variation, len(labels))
                y, _timbral, _temporal, _cnn1, _cnn2, _cnn3, mean_pool, max_pool, penultimate = out
                taggram = tf.nn.sigmoid(y)
            self.output = {"penultimate": penultimate, "mean_pool": mean_pool, "max_pool": max_pool,
                           "taggram": taggram}[layer]
            cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=int(threads),
                                           inter_op_parallelism_threads=int(threads))
            self.sess = tf.compat.v1.Session(graph=self.graph, config=cfg)
            saver = tf.compat.v1.train.Saver()
            try:
                saver.restore(self.sess, prefix)
            except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, ValueError) as e:
                raise ConfigError(
                    f"models.musicnn.weights.{variation}: cannot restore {prefix} into a {variation} graph: "
                    f"{str(e).splitlines()[0]}"
                ) from e
            self.graph.finalize()

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        check_sample_rate("musicnn", sample_rate, SAMPLE_RATE)
        total = n_rows(len(waveform))
        if total == 0:
            patches(np.zeros((1 + len(waveform) // FFT_HOP, N_MELS), np.float32))  # raises the usual ValueError
        rows = []
        for first in range(0, total, PATCHES_PER_CHUNK):  # the spectrogram of a chunk of patches at a time
            batch = log_mel_frames(waveform, first * N_FRAMES, min(PATCHES_PER_CHUNK, total - first) * N_FRAMES)
            batch = batch.reshape(-1, N_FRAMES, N_MELS)
            rows += [self.sess.run(self.output, feed_dict={self.x: batch[i : i + 1], self.is_training: False})
                     for i in range(batch.shape[0])]  # one patch per run, as musicnn (BATCH_SIZE = 1)
        return np.concatenate(rows, axis=0).astype(np.float32)

    def close(self) -> None:
        self.sess.close()


def load(variation: str, weights: str | None, device: str = "cpu", *, layer: str, threads: int) -> MusicnnEmbedder:
    """Options: ``layer`` (see module docstring), ``threads`` (TensorFlow intra/inter-op
    threads; 0 = TensorFlow's default)."""
    if device != "cpu":
        log.info("musicnn runs on the CPU (tensorflow-cpu); device %r ignored", device)
    return MusicnnEmbedder(variation, weights, layer, threads)
