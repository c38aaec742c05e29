"""Small random-weight frozen TensorFlow graphs with the node names and the input and
output signatures of Essentia's official ``.pb`` models (VGGish, YAMNet, FSD-SINet,
OpenL3), plus ``.json`` metadata shaped like Essentia's, for the essentia-tf tests.

The frozen ``GraphDef`` is written here with a few lines of protobuf wire encoding
(pure Python + NumPy): the test needs no Python TensorFlow (which must never share a
process with essentia-tensorflow, and would add ~600 MB to the environment). Only
ops that TensorFlow 2.5 (the C library inside essentia-tensorflow) knows are used:
Placeholder, Const, Identity, Reshape, Conv2D, BiasAdd, Relu, Mean, Max, MatMul,
Sigmoid, with their required attributes (the importer fills in the defaults). That
essentia's libtensorflow imports and runs these files is what the tests check.

Graphs (weights: NumPy's default_rng(seed), small; conv 3x3, 4 channels):

* VGGish ``audioset-vggish-3``: ``model/Placeholder`` float [?, 96, 64] ->
  conv -> mean over time and frequency -> dense -> ``model/vggish/embeddings`` [?, 128]
  (an Identity, as the official graph's output node), plus a ``model/Sigmoid`` head.
* YAMNet ``audioset-yamnet-1``: ``melspectrogram`` [?, 96, 64] -> ... ->
  ``embeddings`` [?, 1024]; ``activations`` [?, 521] (Sigmoid head).
* FSD-SINet ``fsd-sinet-*``: ``x`` [?, 101, 96, 1] (Essentia feeds [batch, time,
  freq, 1]) -> conv -> mean over frequency -> dense per frame -> ``model/global_max_pooling1d/Max``
  (max over time) [?, 512] (VGG42; [?, 256] for VGG41); ``model/predictions/Sigmoid`` [?, 200].
* OpenL3 ``openl3-*``: ``melspectrogram`` [?, n_mels, 199, 1] -> conv -> max over
  frequency and time -> dense -> ``embeddings`` [?, 512 | 6144].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DT_FLOAT, DT_INT32 = 1, 3
PRODUCER = 134  # GraphDef version of TF 1.15, which made Essentia's models; TF 2.5 consumes it


# --- protobuf wire encoding -------------------------------------------------------------

def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _int(field: int, n: int) -> bytes:
    return _key(field, 0) + _varint(n)


def _bytes(field: int, data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return _key(field, 2) + _varint(len(data)) + data


def _shape(dims) -> bytes:  # TensorShapeProto: dim = 2 (Dim: size = 1)
    return b"".join(_bytes(2, _int(1, int(d))) for d in dims)


def _tensor(arr: np.ndarray) -> bytes:  # TensorProto: dtype 1, tensor_shape 2, tensor_content 4
    dtype = {np.dtype(np.float32): DT_FLOAT, np.dtype(np.int32): DT_INT32}[arr.dtype]
    return _int(1, dtype) + _bytes(2, _shape(arr.shape)) + _bytes(4, np.ascontiguousarray(arr).tobytes())


def _attr(name: str, value: bytes) -> bytes:  # map<string, AttrValue> entry
    return _bytes(5, _bytes(1, name) + _bytes(2, value))


def attr_type(t: int) -> bytes:
    return _int(6, t)


def attr_shape(dims) -> bytes:
    return _bytes(7, _shape(dims))


def attr_tensor(arr: np.ndarray) -> bytes:
    return _bytes(8, _tensor(arr))


def attr_s(s: str) -> bytes:
    return _bytes(2, s)


def attr_ints(values) -> bytes:  # ListValue.i = 3 (packed)
    packed = b"".join(_varint(int(v)) for v in values)
    return _bytes(1, _bytes(3, packed))


class Graph:
    """A GraphDef under construction: nodes in order, inputs by name."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.names: set[str] = set()

    def node(self, name: str, op: str, inputs=(), **attrs: bytes) -> str:
        assert name not in self.names, name
        self.names.add(name)
        body = _bytes(1, name) + _bytes(2, op) + b"".join(_bytes(3, i) for i in inputs)
        body += b"".join(_attr(k, v) for k, v in sorted(attrs.items()))
        self.nodes.append(_bytes(1, body))
        return name

    def const(self, name: str, arr: np.ndarray) -> str:
        dtype = DT_FLOAT if arr.dtype == np.float32 else DT_INT32
        return self.node(name, "Const", value=attr_tensor(arr), dtype=attr_type(dtype))

    def placeholder(self, name: str, dims) -> str:
        return self.node(name, "Placeholder", dtype=attr_type(DT_FLOAT), shape=attr_shape(dims))

    def op(self, name: str, op: str, *inputs: str, **attrs: bytes) -> str:
        return self.node(name, op, inputs, T=attr_type(DT_FLOAT), **attrs)

    def reshape(self, name: str, x: str, dims) -> str:
        shape = self.const(name + "/shape", np.asarray(dims, dtype=np.int32))
        return self.node(name, "Reshape", (x, shape), T=attr_type(DT_FLOAT), Tshape=attr_type(DT_INT32))

    def reduce(self, name: str, op: str, x: str, axes) -> str:
        axes_node = self.const(name + "/reduction_indices", np.asarray(axes, dtype=np.int32))
        return self.node(name, op, (x, axes_node), T=attr_type(DT_FLOAT), Tidx=attr_type(DT_INT32))

    def conv(self, scope: str, x: str, cin: int, cout: int, rng) -> str:
        w = self.const(scope + "/kernel", (rng.standard_normal((3, 3, cin, cout)) * 0.5).astype(np.float32))
        b = self.const(scope + "/bias", (rng.standard_normal(cout) * 0.1).astype(np.float32))
        y = self.op(scope + "/Conv2D", "Conv2D", x, w, strides=attr_ints([1, 1, 1, 1]), padding=attr_s("SAME"))
        y = self.op(scope + "/BiasAdd", "BiasAdd", y, b)
        return self.op(scope + "/Relu", "Relu", y)

    def dense(self, scope: str, x: str, cin: int, cout: int, rng) -> str:
        w = self.const(scope + "/kernel", (rng.standard_normal((cin, cout)) / np.sqrt(cin)).astype(np.float32))
        b = self.const(scope + "/bias", (rng.standard_normal(cout) * 0.1).astype(np.float32))
        y = self.op(scope + "/MatMul", "MatMul", x, w)
        return self.op(scope + "/BiasAdd", "BiasAdd", y, b)

    def tobytes(self) -> bytes:
        versions = _bytes(4, _int(1, PRODUCER) + _int(2, 12))  # VersionDef: producer, min_consumer
        return b"".join(self.nodes) + versions


# --- the four model families --------------------------------------------------------------

CH = 4  # conv channels (small)


def vggish_like(input_name: str, emb_name: str, emb_dim: int, head: tuple[str, int], scope: str,
                seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.placeholder(input_name, [-1, 96, 64])
    y = g.reshape(f"{scope}/Reshape", x, [-1, 96, 64, 1])
    y = g.conv(f"{scope}/conv1", y, 1, CH, rng)
    y = g.reduce(f"{scope}/Mean", "Mean", y, [1, 2])
    y = g.dense(f"{scope}/fc", y, CH, emb_dim, rng)
    emb = g.op(emb_name, "Identity", y)
    logits = g.dense(f"{scope}/head", emb, emb_dim, head[1], rng)
    g.op(head[0], "Sigmoid", logits)
    return g.tobytes()


def fsd_sinet(seed: int, emb_dim: int = 512, n_classes: int = 200) -> bytes:
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.placeholder("x", [-1, 101, 96, 1])
    y = g.conv("model/conv1", x, 1, CH, rng)
    y = g.reduce("model/freq_mean", "Mean", y, [2])  # [?, 101, CH]
    y = g.reshape("model/frames", y, [-1, CH])
    y = g.dense("model/dense1", y, CH, emb_dim, rng)
    y = g.op("model/dense1/Relu", "Relu", y)
    y = g.reshape("model/frames_back", y, [-1, 101, emb_dim])
    emb = g.reduce("model/global_max_pooling1d/Max", "Max", y, [1])  # [?, 512]
    logits = g.dense("model/predictions", emb, emb_dim, n_classes, rng)
    g.op("model/predictions/Sigmoid", "Sigmoid", logits)
    return g.tobytes()


def openl3(n_mels: int, emb_dim: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.placeholder("melspectrogram", [-1, n_mels, 199, 1])
    y = g.conv("conv2d_1", x, 1, CH, rng)
    y = g.reduce("max_pooling2d_4/Max", "Max", y, [1, 2])
    y = g.dense("dense", y, CH, emb_dim, rng)
    g.op("embeddings", "Identity", y)
    return g.tobytes()


def metadata(name: str, pb_name: str, algorithm: str | None, sample_rate: int, inputs: list[dict],
             outputs: list[dict]) -> dict:
    """A metadata dict with the keys of Essentia's model ``.json`` files."""
    return {
        "name": name,
        "type": "test model with random weights",
        "link": f"https://essentia.upf.edu/models/test/{pb_name}",
        "version": "1",
        "description": "random weights, real node names and shapes (soundsim test)",
        "author": "soundsim tests",
        "email": "",
        "release_date": "2024-01-01",
        "framework": "tensorflow",
        "framework_version": "2.5.0",
        "classes": [],
        "model_types": ["frozen_model"],
        "dataset": {"name": "none", "citation": "", "size": "", "metrics": {}},
        "schema": {"inputs": inputs, "outputs": outputs},
        "citation": "",
        "inference": {"sample_rate": sample_rate, **({"algorithm": algorithm} if algorithm else {})},
    }


def _out(name: str, shape, op: str, purpose: str) -> dict:
    return {"name": name, "type": "float", "shape": list(shape), "op": op, "output_purpose": purpose}


def write_model(folder: Path, model: str, variation: str, seed: int = 0, with_json: bool = True) -> Path:
    """Write ``<folder>/<official name>.pb`` (+ ``.json``) for a soundsim model/variation; returns the .pb."""
    folder.mkdir(parents=True, exist_ok=True)
    if model == "vggish":
        stem = "audioset-vggish-3"
        pb = vggish_like("model/Placeholder", "model/vggish/embeddings", 128, ("model/Sigmoid", 527),
                         "model/vggish", seed)
        meta = metadata("VGGish", stem + ".pb", "TensorflowPredictVGGish", 16000,
                        [{"name": "model/Placeholder", "type": "float", "shape": [96, 64]}],
                        [_out("model/vggish/embeddings", [1, 128], "Identity", "embeddings")])
    elif model == "yamnet":
        stem = "audioset-yamnet-1"
        pb = vggish_like("melspectrogram", "embeddings", 1024, ("activations", 521), "yamnet", seed)
        meta = metadata("YAMNet", stem + ".pb", "TensorflowPredictVGGish", 16000,
                        [{"name": "melspectrogram", "type": "float", "shape": [96, 64]}],
                        [_out("activations", [1, 521], "Sigmoid", "predictions"),
                         _out("embeddings", [1, 1024], "Identity", "embeddings")])
    elif model == "fsd-sinet":
        stem = f"fsd-sinet-{variation}"
        dim = 256 if variation.startswith("vgg41") else 512  # width factor 1 (VGG41) or 2 (VGG42)
        pb = fsd_sinet(seed, dim)
        meta = metadata("FSD-SINet", stem + ".pb", "TensorflowPredictFSDSINet", 22050,
                        [{"name": "x", "type": "float", "shape": [1, 101, 96, 1]}],
                        [_out("model/predictions/Sigmoid", [1, 200], "Sigmoid", "predictions"),
                         _out("model/global_max_pooling1d/Max", [1, dim], "Max", "embeddings")])
    elif model == "openl3":
        stem = f"openl3-{variation}-3"
        n_mels = int(variation.split("-mel")[1].split("-")[0])
        dim = int(variation.split("-emb")[1])
        pb = openl3(n_mels, dim, seed)
        meta = metadata("OpenL3", stem + ".pb", None, 48000,
                        [{"name": "melspectrogram", "type": "float", "shape": [199, n_mels]}],
                        [_out("embeddings", [1, dim], "Identity", "embeddings")])
    else:
        raise ValueError(model)
    path = folder / f"{stem}.pb"
    path.write_bytes(pb)
    if with_json:
        (folder / f"{stem}.json").write_text(json.dumps(meta, indent=4))
    return path


def forward_openl3(pb_seed: int, n_mels: int, emb_dim: int, batch: np.ndarray) -> np.ndarray:
    """NumPy forward pass of :func:`openl3` (same weights): batch [B, n_mels, 199, 1] -> [B, emb_dim]."""
    rng = np.random.default_rng(pb_seed)
    w = (rng.standard_normal((3, 3, 1, CH)) * 0.5).astype(np.float32)
    b = (rng.standard_normal(CH) * 0.1).astype(np.float32)
    wd = (rng.standard_normal((CH, emb_dim)) / np.sqrt(CH)).astype(np.float32)
    bd = (rng.standard_normal(emb_dim) * 0.1).astype(np.float32)
    x = np.pad(batch[..., 0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))  # SAME padding, 3x3
    h, t = batch.shape[1], batch.shape[2]
    conv = np.zeros((batch.shape[0], h, t, CH))
    for i in range(3):
        for j in range(3):
            conv += x[:, i:i + h, j:j + t, None] * w[i, j, 0][None, None, None, :]
    conv = np.maximum(conv + b, 0.0)
    pooled = conv.max(axis=(1, 2))
    return (pooled @ wd + bd).astype(np.float32)

