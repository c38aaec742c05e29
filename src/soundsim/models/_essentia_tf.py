"""Shared loading code for Essentia's frozen TensorFlow models (VGGish, YAMNet,
FSD-SINet, OpenL3), run by essentia-tensorflow in the ``essentia-tf`` environment.

Not a registry module (leading underscore). Nothing heavy is imported at module
import time; :func:`essentia_standard` imports ``essentia.standard`` on first use.

Official layout (https://essentia.upf.edu/models/): each model is a frozen
``GraphDef`` ``<name>.pb`` with a metadata file ``<name>.json`` beside it. The
metadata's ``schema.inputs[0].name`` is the input node and the output whose
``output_purpose`` is ``"embeddings"`` is the embedding node (Essentia's own example
scripts are generated from these fields); ``inference.sample_rate`` is the input
rate. :func:`graph_spec` reads them when the ``.json`` is there and falls back to
documented defaults (the values of Essentia's metadata) when it is not. Mismatches
with the configured variation (another rate, another embedding size, another mel
size, or a ``link`` naming another variation's file) are ConfigErrors.

Process hazards: essentia-tensorflow bundles TensorFlow 2.5's C library; a process
that imported the Python ``tensorflow`` package first dies when essentia loads
it, so :func:`essentia_standard` refuses to go on in that case. Plain ``essentia``
(PyPI ``essentia``, no TensorFlow) installs the same module name without the
``TensorflowPredict*`` algorithms: that is reported with the environment to use.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from soundsim.errors import ConfigError

log = logging.getLogger(__name__)

ENV = "essentia-tf"
PACKAGES = ("essentia-tensorflow",)
MODELS_SITE = "https://essentia.upf.edu/models"


def essentia_standard(device: str = "cpu") -> Any:
    """``essentia.standard`` from essentia-tensorflow, with Essentia's info logs off.

    ``device="cpu"`` hides GPUs from TensorFlow (``CUDA_VISIBLE_DEVICES=-1``) when
    essentia is not imported yet and the variable is unset; any other device leaves
    the environment alone (libtensorflow then uses the visible GPUs if CUDA 11 is
    installed, else the CPU)."""
    if "tensorflow" in sys.modules and "essentia" not in sys.modules:
        raise RuntimeError(
            "the Python 'tensorflow' package is already imported in this process: loading "
            "essentia-tensorflow's TensorFlow library next to it kills the process; run Essentia's "
            f"TensorFlow models in their own process (environment {ENV!r})"
        )
    if "essentia" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if device == "cpu":
            os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    try:
        import essentia
        import essentia.standard as es
    except ImportError as e:
        raise ImportError(
            f"essentia-tensorflow is not installed (run in the {ENV!r} environment: make envs ENVS={ENV}, "
            f"envs/{ENV}.txt)"
        ) from e
    if not hasattr(es, "TensorflowPredict"):
        raise ImportError(
            f"this essentia has no TensorFlow support (plain PyPI 'essentia'?); these models need "
            f"essentia-tensorflow: run them in the {ENV!r} environment (envs/{ENV}.txt)"
        )
    essentia.log.infoActive = False
    essentia.log.warningActive = False
    return es


@dataclass(frozen=True)
class GraphSpec:
    """Where a frozen graph is and which of its nodes soundsim uses."""

    pb: Path
    metadata: Path | None  # the .json beside the .pb, when there is one
    input: str
    output: str
    input_shape: tuple[int, ...] | None  # schema.inputs[0].shape (without batch), when given


def where(model: str, variation: str) -> str:
    return f"models.{model}.weights.{variation}"


def graph_file(model: str, variation: str, weights: str | os.PathLike | None, official: str, hint: str) -> Path:
    """The ``.pb`` to load: ``weights`` itself, or ``<weights>/<official>`` for a folder."""
    if weights is None or str(weights) == "":
        raise ConfigError(f"{where(model, variation)}: no weights path given; this model needs local weights ({hint})")
    path = Path(weights)
    if path.is_dir():
        inside = path / official
        if not inside.is_file():
            raise ConfigError(f"{where(model, variation)}: {path} is a folder without {official} ({hint})")
        path = inside
    elif not path.exists():
        raise ConfigError(f"{where(model, variation)}: {path} does not exist ({hint})")
    elif not path.is_file():
        raise ConfigError(f"{where(model, variation)}: {path} is not a file ({hint})")
    return path


def read_metadata(model: str, variation: str, pb: Path) -> tuple[Path | None, dict[str, Any]]:
    """The ``.json`` beside ``pb`` (same stem) and its content; (None, {}) when absent."""
    meta_path = pb.with_suffix(".json")
    if not meta_path.is_file():
        return None, {}
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{where(model, variation)}: {meta_path} is not Essentia model metadata (JSON): {e}") from e
    if not isinstance(meta, dict):
        raise ConfigError(f"{where(model, variation)}: {meta_path} is not Essentia model metadata (a JSON object)")
    return meta_path, meta


def graph_spec(
    model: str,
    variation: str,
    weights: str | os.PathLike | None,
    *,
    official: dict[str, str],
    default_input: str,
    default_output: str,
    sample_rate: int,
    dim: int,
    hint: str,
) -> GraphSpec:
    """Resolve the graph file and node names for ``variation`` (see module docstring).

    ``official``: variation -> official ``.pb`` name, for every variation of the model
    (a metadata ``link`` naming another variation's file is an error)."""
    pb = graph_file(model, variation, weights, official[variation], hint)
    meta_path, meta = read_metadata(model, variation, pb)
    if meta_path is None:
        log.info("%s: no %s beside it; using Essentia's node names %s -> %s", pb, pb.with_suffix(".json").name,
                 default_input, default_output)
        return GraphSpec(pb, None, default_input, default_output, None)
    here = f"{where(model, variation)}: {meta_path}"
    schema = meta.get("schema") or {}
    inputs = schema.get("inputs") or []
    outputs = schema.get("outputs") or []
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise ConfigError(f"{here}: 'schema.inputs' and 'schema.outputs' must be lists")
    inp = inputs[0] if inputs and isinstance(inputs[0], dict) else {}
    input_name = str(inp.get("name") or default_input)
    emb = [o for o in outputs if isinstance(o, dict) and o.get("output_purpose") == "embeddings"]
    output_name = str(emb[0].get("name") or default_output) if emb else default_output
    rate = (meta.get("inference") or {}).get("sample_rate")
    if rate is not None and int(rate) != sample_rate:
        raise ConfigError(f"{here} is for {rate} Hz audio; {model} {variation} takes {sample_rate} Hz "
                          f"(metadata of another model?)")
    if emb and isinstance(emb[0].get("shape"), list) and emb[0]["shape"]:
        got = int(emb[0]["shape"][-1])
        if got != dim:
            raise ConfigError(f"{here}: its embeddings ({output_name}) have {got} dimensions; {model} {variation} "
                              f"has {dim} (a file of another model or variation?)")
    link = str(meta.get("link") or "")
    if link:
        linked = link.rsplit("/", 1)[-1]
        others = {name: v for v, name in official.items() if v != variation}
        if linked in others:
            raise ConfigError(f"{here} describes {linked} (variation {others[linked]!r}), not {official[variation]} "
                              f"(variation {variation!r})")
    shape = tuple(int(d) for d in inp.get("shape") or ()) or None
    return GraphSpec(pb, meta_path, input_name, output_name, shape)


def tf_error(model: str, variation: str, spec: GraphSpec, e: Exception) -> ConfigError:
    """A ConfigError for an Essentia/TensorFlow failure to load or run ``spec``'s graph."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    msg = lines[0] if lines else type(e).__name__
    if "not a valid node name" in msg:
        msg += f" (the graph lacks node {spec.input!r} or {spec.output!r}: a file of another model?)"
    elif "Invalid GraphDef" in msg:
        msg += " (not a frozen TensorFlow graph)"
    return ConfigError(f"{where(model, variation)}: cannot use {spec.pb} as {model} {variation}: {msg}")


def probe_signal(seconds: float, sample_rate: int) -> np.ndarray:
    """A fixed, quiet test signal (two tones and a little noise) to try a loaded graph once."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    noise = np.random.default_rng(0).standard_normal(len(t))
    x = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1500 * t) + 0.01 * noise
    return x.astype(np.float32)


def check_probe(model: str, variation: str, spec: GraphSpec, embed, seconds: float, sample_rate: int,
                dim: int) -> None:
    """Embed :func:`probe_signal` once: a graph that does not run on this input, or gives
    another embedding size, is reported at load time, naming the file."""
    try:
        out = embed(probe_signal(seconds, sample_rate))
    except (RuntimeError, ValueError) as e:
        raise tf_error(model, variation, spec, e) from e
    if out.ndim != 2 or out.shape[1] != dim:
        raise ConfigError(
            f"{where(model, variation)}: {spec.pb} gives embeddings of shape {tuple(out.shape[1:])} at node "
            f"{spec.output!r}; {model} {variation} has {dim} dimensions (a file of another model or variation?)"
        )


def frame_count(n: int, frame_size: int, hop_size: int) -> int:
    """Frames Essentia's FrameCutter cuts from ``n`` samples with its defaults
    (``startFromZero=False``: the first frame is centred on sample 0, zero-padded on
    the left; the last frame is the first whose centre reaches the end;
    ``validFrameThresholdRatio=0``), for an even ``frame_size``."""
    if n <= 0:
        return 0
    last_centre = -(-n // hop_size)  # frames k = 0..ceil(n / hop) (centre k*hop >= n stops)
    starts_inside = -(-(n + frame_size // 2) // hop_size)  # frames whose start -frame/2 + k*hop < n
    return min(last_centre + 1, starts_inside)


def centred_frames(x: np.ndarray, first: int, count: int, frame_size: int, hop_size: int) -> np.ndarray:
    """(count, frame_size) float32: frames ``first .. first + count - 1`` of ``x`` as Essentia's
    ``FrameCutter`` cuts them with its defaults (frame k centred on sample ``k * hop_size``, zeros
    outside the clip), copied from those samples only (``FrameGenerator`` copies the whole clip)."""
    out = np.zeros((count, frame_size), dtype=np.float32)
    for i in range(count):
        start = (first + i) * hop_size - frame_size // 2
        lo, hi = max(start, 0), min(start + frame_size, len(x))
        if hi > lo:
            out[i, lo - start : hi - start] = x[lo:hi]
    return out


def fsd_sinet_normalisation(x: np.ndarray, block: int = 1 << 20) -> tuple[np.float32, np.float32]:
    """(mean, divisor) of ``TensorflowPredictFSDSINet``'s clip normalisation (standard mode,
    ``normalize=True``: ``x -= mean(x)``, then ``normalizeAbs(x, 0.005)``, i.e. ``x /= max|x| +
    0.005``), computed in blocks as Essentia does it: the mean a sequential float32 sum divided by
    the length; ``(x - mean) / divisor`` in float32 is then Essentia's normalised signal bit for bit
    (checked in ``tests/test_models_essentia_tf.py``)."""
    total = np.float32(0.0)
    for i in range(0, len(x), block):
        part = np.concatenate([np.array([total], dtype=np.float32), x[i : i + block]])
        total = np.cumsum(part, dtype=np.float32)[-1]
    mean = np.float32(total / np.float32(len(x)))
    peak = np.float32(0.0)
    for i in range(0, len(x), block):
        peak = max(peak, np.float32(np.abs(x[i : i + block] - mean).max()))
    return mean, np.float32(peak + np.float32(0.005))


def patch_count(frames: int, patch: int, hop: int) -> int:
    """Patches of ``patch`` frames every ``hop`` frames, the trailing partial patch discarded
    (Essentia's ``lastPatchMode="discard"``)."""
    return 0 if frames < patch else 1 + (frames - patch) // hop


def as_rows(out: Any, dim: int | None = None) -> np.ndarray:
    """Essentia's output (list of vectors or a 4-D tensor) -> (rows, dim) float32."""
    arr = np.asarray(out, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, dim or 0), dtype=np.float32)
    return arr.reshape(arr.shape[0], -1)


#: TensorFlow batch of the TensorflowPredict* composites (Essentia's default ``batchSize``): the
#: CNN sees 64 patches at a time, whatever the clip's length
BATCH_SIZE = 64
#: patches per call of the composite on a long clip (see :class:`PatchEmbedder`)
CHUNK_PATCHES = 256


class PatchEmbedder:
    """An Essentia ``TensorflowPredict<Model>`` composite (``TensorflowPredictVGGish`` or
    ``TensorflowPredictFSDSINet``): its own mel front end, patches of ``patch`` frames
    every ``patch_hop`` frames (trailing partial patch discarded), one embedding row per
    patch, :data:`BATCH_SIZE` patches per TensorFlow run. Built once at load; each
    :meth:`embed` runs it on one clip.

    Bounded memory: the composite (standard mode) copies its input two or three times and
    keeps every frame and patch of it until the end (about 5 x the waveform for
    FSD-SINet), so a clip of more than :data:`CHUNK_PATCHES` patches is embedded in calls
    of that many patches: each call gets the samples of its patches plus the patch before
    (whose first two frames would otherwise see the call's zero padding; its row is
    dropped), and the last call runs to the clip's end, so the composite frames and pads
    exactly as on the whole clip. FSD-SINet's clip normalisation (mean and peak of the
    whole clip) is then computed here, as Essentia does (:func:`fsd_sinet_normalisation`),
    and each call runs with ``normalize=False`` on its normalised samples. Clips up to
    :data:`CHUNK_PATCHES` patches (4 min for VGGish and YAMNet, 2.1 min for FSD-SINet) are
    one call, as before; longer ones give the rows of a single call up to float rounding
    (TensorFlow batches are cut elsewhere; ``tests/test_models_essentia_tf.py``)."""

    def __init__(self, model: str, variation: str, spec: GraphSpec, algorithm: str, *, sample_rate: int,
                 dim: int, frame_size: int, hop_size: int, patch: int, patch_hop: int, device: str = "cpu",
                 min_duration: float = 1.0, **params: Any) -> None:
        es = essentia_standard(device)
        self.model, self.variation, self.spec = model, variation, spec
        self.sample_rate, self.dim = sample_rate, dim
        self.frame_size, self.hop_size, self.patch, self.patch_hop = frame_size, hop_size, patch, patch_hop
        self.normalize = bool(params.get("normalize", False))  # FSD-SINet's clip normalisation
        make = getattr(es, algorithm)
        common = dict(graphFilename=str(spec.pb), input=spec.input, output=spec.output, patchHopSize=patch_hop,
                      lastPatchMode="discard", batchSize=BATCH_SIZE)
        try:
            self.algo = make(**common, **params)
            # long clips: normalised here, chunk by chunk
            self.algo_chunks = make(**common, **dict(params, normalize=False)) if self.normalize else self.algo
        except RuntimeError as e:
            raise tf_error(model, variation, spec, e) from e
        check_probe(model, variation, spec, self.embed, min_duration, sample_rate, dim)

    def n_rows(self, n_samples: int) -> int:
        return patch_count(frame_count(n_samples, self.frame_size, self.hop_size), self.patch, self.patch_hop)

    def embed(self, waveform: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ValueError(f"{self.model} expects {self.sample_rate} Hz audio, got {sample_rate}")
        x = np.ascontiguousarray(waveform, dtype=np.float32)
        total = self.n_rows(len(x))
        if total == 0:
            raise ValueError(f"clip too short for {self.model}: {len(x)} samples give no whole patch of "
                             f"{self.patch} frames (pad clips to the model's min_duration)")
        if total <= CHUNK_PATCHES:
            return as_rows(self.algo(x), self.dim)
        return self._embed_in_chunks(x, total)

    def _embed_in_chunks(self, x: np.ndarray, total: int) -> np.ndarray:
        if self.normalize:
            mean, divisor = fsd_sinet_normalisation(x)
        rows = np.empty((total, self.dim), dtype=np.float32)
        for p0 in range(0, total, CHUNK_PATCHES):
            p1 = min(p0 + CHUNK_PATCHES, total)
            lead = 1 if p0 else 0  # the patch before: its first frames see the call's zero padding
            f0 = self.patch_hop * (p0 - lead)  # the call's first frame = a global patch start
            start = self.hop_size * f0
            if p1 == total:
                end = len(x)  # the last call: the composite ends (pads, discards) as on the whole clip
            else:
                last_frame = self.patch_hop * (p1 - 1) + self.patch - 1
                end = min(len(x), self.hop_size * last_frame + self.frame_size // 2)
            seg = x[start:end]
            if self.normalize:
                seg = (seg - mean) / divisor
            out = as_rows(self.algo_chunks(np.ascontiguousarray(seg, dtype=np.float32)), self.dim)
            if len(out) < lead + p1 - p0:
                raise RuntimeError(f"{self.model}: Essentia gave {len(out)} rows for patches {p0}-{p1 - 1}")
            rows[p0:p1] = out[lead : lead + p1 - p0]
        return rows
