"""A learned similarity head on frozen embeddings: a small network trained with a training
collection's labels to map a base model's clip vectors to a space where clips that share a
label are close (the paper's future work, Araz et al. 2024, Sec. V).

**Input** ``X`` (n, d): clip vectors of the training collection, already aggregated (and, for
deep models, L2-normalised) by the caller (:func:`soundsim.heads.head_inputs`). They are
standardised with the training split's mean and standard deviation, ``x' = (x - mu) / sigma``
(``sigma`` < 1e-8 -> 1), both stored in the head.

**Network** (:class:`HeadSpec`): ``linear``: ``z = W x'``; ``mlp``: ``z = W2 relu(W1 x' + b1) + b2``
(``hidden`` units, optional dropout); the output is L2-normalised, ``f(x) = z / ||z||``, so
inner product, cosine and Euclidean search rank alike on it.

**Loss** (``loss``):

* ``supcon`` (default): multi-label supervised contrastive loss (Khosla et al. 2020, "Supervised
  Contrastive Learning", NeurIPS; the L_out form). In a batch B, with s_ij = f_i . f_j / tau
  and P(i) the other clips of B that share at least one label with i,

      L = (1/|A|) sum_{i in A} -(1/|P(i)|) sum_{p in P(i)} [ s_ip - log sum_{a in B, a != i} exp(s_ia) ]

  over the anchors A with P(i) non-empty. Chosen because it optimises exactly what
  query-by-example retrieval asks: for every query, clips sharing a label ranked above all
  others in the batch; "shares a label" is FSD50K's relevance, so multi-label clips need no
  special case.
* ``proxy-anchor`` (Kim et al. 2020, "Proxy Anchor Loss for Deep Metric Learning", CVPR): one
  learnable proxy per label, ``s(x, p)`` the cosine, P+ the proxies with a positive in the batch,

      L = (1/|P+|) sum_{p in P+} log(1 + sum_{x in X+_p} exp(-alpha (s(x,p) - margin)))
        + (1/|P|)  sum_{p in P}  log(1 + sum_{x in X-_p} exp( alpha (s(x,p) + margin)))

  multi-label by construction (a clip is positive for each of its labels); its proxies learn
  100x faster than the network, as in the paper.

**Batches**: every training clip has a *primary* label (its rarest label among the training
clips, ties by name). Each epoch the clips of each primary label are shuffled and cut into
chunks of up to 4, the chunks are shuffled and concatenated, and the sequence is cut into
batches of ``batch_size``: every clip once per epoch, and nearly every anchor has positives
(its chunk), which random batches over 200 labels would not give.

**Validation and early stopping** (:func:`split_validation`): a share ``val_fraction`` of the
training collection is held out; after each epoch the validation clips are searched among
themselves by cosine (the query excluded) and scored with soundsim's own metric code
(:func:`soundsim.metrics.metrics_from_scores`): macro MAP@15 over the labels, AP@15 normalised by
min(15, relevant), as the paper defines it. The weights of the best epoch are kept; training
stops after ``patience`` epochs without a better one, or after ``epochs``.

**Determinism**: one seed, bit-identical weights. Initialisation uses torch's RNG seeded inside
``torch.random.fork_rng`` (the caller's RNG state is restored), batches and dropout masks a
seeded numpy generator and torch generator, ``torch.use_deterministic_algorithms(True)`` and
``spec.threads`` torch threads while training (both restored afterwards). The same seed on the
same machine and library versions gives the same :attr:`TrainedHead.fingerprint`.

**What it is not**: a new audio model; it cannot add what the base did not encode, and its
numbers on a collection of the training collection's dataset are not zero-shot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundsim.errors import ConfigError, SoundsimError
from soundsim.fileutil import atomic_path

ARCHITECTURES = ("linear", "mlp")
LOSSES = ("supcon", "proxy-anchor")
#: the checkpoint's format tag
FORMAT = "soundsim-head/1"
#: training-log columns (one row per epoch)
HISTORY_COLUMNS = ["epoch", "train_loss", "val_map@15", "seconds", "best"]
#: clips per label chunk in a batch (see the module docstring)
CHUNK = 4
#: proxies learn this much faster than the network (proxy-anchor, Kim et al. 2020)
PROXY_LR_FACTOR = 100.0


class HeadError(SoundsimError):
    """A head cannot be trained, saved or loaded (the message names the file or the problem)."""


@dataclass(frozen=True)
class HeadSpec:
    """A head's architecture and training hyperparameters (the keys of a ``heads:`` entry)."""

    architecture: str = "mlp"
    dim: int = 256
    hidden: int = 512
    dropout: float = 0.0
    loss: str = "supcon"
    temperature: float = 0.1
    margin: float = 0.1
    alpha: float = 32.0
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    patience: int = 10
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.architecture not in ARCHITECTURES:
            problems.append(("architecture", f"{self.architecture!r} is not allowed; allowed values: "
                                             f"{', '.join(ARCHITECTURES)}"))
        if self.loss not in LOSSES:
            problems.append(("loss", f"{self.loss!r} is not allowed; allowed values: {', '.join(LOSSES)}"))
        for key, lo in (("dim", 2), ("hidden", 1), ("epochs", 1), ("batch_size", 2), ("patience", 1), ("threads", 1)):
            if getattr(self, key) < lo:
                problems.append((key, f"{getattr(self, key)!r} is below {lo}"))
        if self.seed < 0:
            problems.append(("seed", f"{self.seed!r} is negative"))
        for key in ("temperature", "alpha", "lr"):
            if not getattr(self, key) > 0:
                problems.append((key, f"{getattr(self, key)!r} is not > 0"))
        for key in ("margin", "weight_decay"):
            if getattr(self, key) < 0:
                problems.append((key, f"{getattr(self, key)!r} is negative"))
        for key in ("val_fraction", "dropout"):
            v = getattr(self, key)
            if not (0 < v < 1 if key == "val_fraction" else 0 <= v < 1):
                problems.append((key, f"{v!r} is not in {'(0, 1)' if key == 'val_fraction' else '[0, 1)'}"))
        if problems:
            raise ConfigError("; ".join(f"{k}: {m}" for k, m in problems))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, where: str = "heads.<name>") -> HeadSpec:
        """The spec of a config entry's hyperparameters (missing keys: the defaults). An
        unknown key or a bad value is a ConfigError naming ``<where>.<key>``."""
        cfg = dict(cfg or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                              f"allowed keys: {', '.join(known)}")
        values = {}
        for key, v in cfg.items():
            want = type(known[key].default)
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, want) or isinstance(v, bool) != (want is bool):
                raise ConfigError(f"{where}.{key}: {v!r} is not {'a number' if want is float else 'an integer' if want is int else 'a string'}")
            values[key] = v
        try:
            return cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{where}.{e}") from e

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- labels, split


def _multi_hot(labels: Sequence[Sequence[str]], names: Sequence[str]) -> np.ndarray:
    pos = {n: i for i, n in enumerate(names)}
    Y = np.zeros((len(labels), len(names)), dtype=np.float32)
    for i, ls in enumerate(labels):
        for lab in ls:
            if lab in pos:
                Y[i, pos[lab]] = 1.0
    return Y


def primary_labels(labels: Sequence[Sequence[str]]) -> list[str]:
    """Each clip's rarest label among ``labels`` (ties by name): what batches and the
    validation split are stratified by."""
    counts: dict[str, int] = {}
    for ls in labels:
        for lab in set(ls):
            counts[lab] = counts.get(lab, 0) + 1
    return [min(set(ls), key=lambda lab: (counts[lab], lab)) for ls in labels]


def draw_per_group(groups: Mapping[str, Sequence[Any]], fraction: float, seed: int, at_least: int, leave: int
                   ) -> list[Any]:
    """A seeded share of each group's members: groups in name order, one
    ``numpy.random.default_rng(seed)``; a group of n >= ``at_least + leave`` members gives
    ``min(n - leave, max(at_least, round(fraction * n)))`` of them (a random permutation's
    first), a smaller group none."""
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for name in sorted(groups):
        members = list(groups[name])
        n = len(members)
        if n < at_least + leave:
            continue
        k = min(n - leave, max(at_least, int(round(fraction * n))))
        out += [members[j] for j in rng.permutation(n)[:k]]
    return out


def split_validation(labels: Sequence[Sequence[str]], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), sorted, deterministic from ``seed``: the clips are grouped by
    primary label (:func:`primary_labels`), groups in name order; a group of n >= 4 clips
    gives ``max(2, round(fraction * n))`` (at most n - 2) clips, drawn by one
    ``numpy.random.default_rng(seed)``, to validation, so every such label keeps >= 2
    clips on each side; smaller groups stay in training."""
    if not 0 < fraction < 1:
        raise HeadError(f"val_fraction {fraction!r} is not in (0, 1)")
    groups: dict[str, list[int]] = {}
    for i, lab in enumerate(primary_labels(labels)):
        groups.setdefault(lab, []).append(i)
    val_idx = np.array(sorted(draw_per_group(groups, fraction, seed, at_least=2, leave=2)), dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def _batches(prim: Sequence[str], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    groups: dict[str, list[int]] = {}
    for i, lab in enumerate(prim):
        groups.setdefault(lab, []).append(i)
    chunks = []
    for lab in sorted(groups):
        idx = np.asarray(groups[lab])[rng.permutation(len(groups[lab]))]
        chunks += [idx[j:j + CHUNK] for j in range(0, len(idx), CHUNK)]
    order = rng.permutation(len(chunks))
    seq = np.concatenate([chunks[j] for j in order])
    return [seq[j:j + batch_size] for j in range(0, len(seq), batch_size)]


# --------------------------------------------------------------------------- torch parts


def _network(spec: HeadSpec, d: int) -> Any:
    import torch

    if spec.architecture == "linear":
        return torch.nn.Sequential(torch.nn.Linear(d, spec.dim))
    layers: list[Any] = [torch.nn.Linear(d, spec.hidden), torch.nn.ReLU()]
    if spec.dropout > 0:
        layers.append(torch.nn.Dropout(spec.dropout))
    layers.append(torch.nn.Linear(spec.hidden, spec.dim))
    return torch.nn.Sequential(*layers)


def supcon_loss(z: Any, y: Any, temperature: float) -> Any:
    """Multi-label supervised contrastive loss of a batch (module docstring): ``z`` (b, dim)
    L2-normalised, ``y`` (b, L) multi-hot; positives share a label. 0 when no anchor has one."""
    import torch

    b = z.shape[0]
    s = z @ z.T / temperature
    eye = torch.eye(b, dtype=torch.bool)
    s = s.masked_fill(eye, float("-inf"))
    log_prob = s - torch.logsumexp(s, dim=1, keepdim=True)
    pos = ((y @ y.T) > 0) & ~eye
    n_pos = pos.sum(dim=1)
    anchors = n_pos > 0
    if not bool(anchors.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(dim=1)[anchors] / n_pos[anchors])
    return per_anchor.mean()


def proxy_anchor_loss(z: Any, y: Any, proxies: Any, margin: float, alpha: float) -> Any:
    """Proxy-anchor loss of a batch (module docstring): ``z`` (b, dim) L2-normalised, ``y`` (b, L)
    multi-hot, ``proxies`` (L, dim)."""
    import torch

    cos = z @ torch.nn.functional.normalize(proxies, dim=1).T  # (b, L)
    pos = y > 0
    pos_exp = torch.exp(-alpha * (cos - margin)).masked_fill(~pos, 0.0).sum(dim=0)
    neg_exp = torch.exp(alpha * (cos + margin)).masked_fill(pos, 0.0).sum(dim=0)
    with_pos = pos.any(dim=0)
    n_with = with_pos.sum().clamp(min=1)
    return torch.log1p(pos_exp[with_pos]).sum() / n_with + torch.log1p(neg_exp).sum() / proxies.shape[0]


@contextlib.contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    import torch

    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(prev_det)
            torch.set_num_threads(prev_threads)


def _val_map15(Zv: np.ndarray, val_labels: Sequence[Sequence[str]]) -> float:
    from soundsim import metrics as M

    index = M.build_label_index(val_labels)
    res = M.metrics_from_scores(Zv @ Zv.T, index, [15])
    return float(res.macro()["map@15"])


# --------------------------------------------------------------------------- the trained head


@dataclass
class TrainedHead:
    """A trained head: its spec, input standardisation, weights (float32 numpy), training log."""

    spec: HeadSpec
    input_dim: int
    mean: np.ndarray
    scale: np.ndarray
    state: dict[str, np.ndarray]
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HISTORY_COLUMNS))
    best_epoch: int = 0
    n_train: int = 0
    n_val: int = 0
    labels: list[str] = field(default_factory=list)

    def _module(self) -> Any:
        import torch

        net = _network(self.spec, self.input_dim)
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.state.items()})
        return net.eval()

    def apply(self, X: np.ndarray, batch: int = 8192) -> np.ndarray:
        """``(n, input_dim)`` -> ``(n, spec.dim)`` float32, rows L2-normalised, in batches of ``batch``."""
        import torch

        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise HeadError(f"the head takes (n, {self.input_dim}) vectors, got {X.shape}")
        net = self._module()
        out = np.empty((X.shape[0], self.spec.dim), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, X.shape[0], batch):
                xb = torch.from_numpy(((X[s:s + batch] - self.mean) / self.scale).astype(np.float32))
                out[s:s + batch] = torch.nn.functional.normalize(net(xb), dim=1).numpy()
        return out

    @property
    def fingerprint(self) -> str:
        """``sha256:<hex>`` over the spec, the input dimension, the standardisation and the weights
        (names and bytes, in name order): equal for bit-identical heads."""
        h = hashlib.sha256(json.dumps({"spec": self.spec.as_dict(), "input_dim": self.input_dim},
                                      sort_keys=True).encode())
        for a in (self.mean, self.scale):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        for k in sorted(self.state):
            h.update(k.encode())
            h.update(np.ascontiguousarray(self.state[k], dtype=np.float32).tobytes())
        return "sha256:" + h.hexdigest()

    def save(self, path: str | Path) -> Path:
        """One checkpoint file (torch.save of tensors, numbers, strings, lists; loadable with
        ``weights_only=True``), written atomically."""
        import torch

        obj = {
            "format": FORMAT,
            "spec": self.spec.as_dict(),
            "input_dim": int(self.input_dim),
            "mean": torch.from_numpy(np.asarray(self.mean, dtype=np.float64)),
            "scale": torch.from_numpy(np.asarray(self.scale, dtype=np.float64)),
            "state": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.state.items()},
            "history": {c: [v.item() if hasattr(v, "item") else v for v in self.history[c]]
                        for c in self.history.columns},
            "best_epoch": int(self.best_epoch),
            "n_train": int(self.n_train),
            "n_val": int(self.n_val),
            "labels": list(self.labels),
        }
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> TrainedHead:
        """Read a checkpoint written by :meth:`save`; :class:`HeadError` naming the file otherwise."""
        import torch

        p = Path(path)
        if not p.is_file():
            raise HeadError(f"{p}: head checkpoint not found")
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
            if not isinstance(obj, dict) or obj.get("format") != FORMAT:
                raise HeadError(f"{p}: not a soundsim head checkpoint ({FORMAT})")
            return cls(
                spec=HeadSpec(**obj["spec"]),
                input_dim=int(obj["input_dim"]),
                mean=obj["mean"].numpy(),
                scale=obj["scale"].numpy(),
                state={k: v.numpy() for k, v in obj["state"].items()},
                history=pd.DataFrame(obj["history"], columns=HISTORY_COLUMNS),
                best_epoch=int(obj["best_epoch"]),
                n_train=int(obj["n_train"]),
                n_val=int(obj["n_val"]),
                labels=list(obj["labels"]),
            )
        except HeadError:
            raise
        except Exception as e:  # noqa: BLE001 - any unreadable file: one message naming it
            raise HeadError(f"{p}: not a readable head checkpoint: {type(e).__name__}: {e}") from e


# --------------------------------------------------------------------------- training


def _check_inputs(X: np.ndarray, labels: Sequence[Sequence[str]], fnames: Sequence[str] | None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise HeadError(f"no clips to train on (got an array of shape {X.shape})")
    if len(labels) != X.shape[0]:
        raise HeadError(f"{X.shape[0]} clip vectors but {len(labels)} label lists")
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        names = [fnames[i] for i in bad[:5]] if fnames is not None else [str(i) for i in bad[:5]]
        raise HeadError(f"{bad.size} clip vector(s) with NaN or inf: {', '.join(names)}")
    return X


def train_head(X: np.ndarray, labels: Sequence[Sequence[str]], spec: HeadSpec, fnames: Sequence[str] | None = None,
               progress: bool = False, log: Callable[[str], None] | None = None) -> TrainedHead:
    """Train a head on clip vectors ``X`` (n, d) with each clip's ``labels`` (module docstring:
    standardisation, loss, batches, validation split and early stopping, determinism)."""
    import torch

    from soundsim.logutil import progress as progress_bar

    X = _check_inputs(X, labels, fnames)
    labels = [sorted(set(map(str, ls))) for ls in labels]
    if any(not ls for ls in labels):
        raise HeadError("every training clip needs at least one label")
    counts: dict[str, int] = {}
    for ls in labels:
        for lab in ls:
            counts[lab] = counts.get(lab, 0) + 1
    if sum(c >= 2 for c in counts.values()) < 2:
        raise HeadError(f"fewer than 2 labels with >= 2 clips among {len(labels)} training clips")
    tr, va = split_validation(labels, spec.val_fraction, spec.seed)
    val_labels = [labels[i] for i in va]
    vcounts: dict[str, int] = {}
    for ls in val_labels:
        for lab in ls:
            vcounts[lab] = vcounts.get(lab, 0) + 1
    if sum(c >= 2 for c in vcounts.values()) < 1:
        raise HeadError(f"too few clips for a validation split: {len(labels)} clips, none of whose labels has "
                        f">= 4 clips (validation needs >= 2 clips of a label)")
    names = sorted({lab for i in tr for lab in labels[i]})
    Xtr = X[tr]
    mean = Xtr.mean(axis=0)
    scale = Xtr.std(axis=0)
    scale = np.where(scale < 1e-8, 1.0, scale)
    Xs = torch.from_numpy(((X - mean) / scale).astype(np.float32))
    Y = torch.from_numpy(_multi_hot(labels, names))
    prim = primary_labels([labels[i] for i in tr])
    rng = np.random.default_rng(spec.seed)
    say = log or (lambda m: None)
    rows = []
    with _deterministic(spec.threads):
        torch.manual_seed(spec.seed)
        net = _network(spec, X.shape[1])
        params = [{"params": net.parameters(), "lr": spec.lr}]
        proxies = None
        if spec.loss == "proxy-anchor":
            proxies = torch.nn.Parameter(torch.randn(len(names), spec.dim) * 0.01)
            torch.nn.init.kaiming_normal_(proxies, mode="fan_out")
            params.append({"params": [proxies], "lr": spec.lr * PROXY_LR_FACTOR})
        opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
        best, best_state, since = -math.inf, None, 0
        bar = progress_bar(range(1, spec.epochs + 1), desc="head epochs", unit="epoch", disable=not progress)
        for epoch in bar:
            t0 = time.perf_counter()
            net.train()
            total, n_seen = 0.0, 0
            for b in _batches(prim, spec.batch_size, rng):
                idx = torch.from_numpy(tr[b])
                z = torch.nn.functional.normalize(net(Xs[idx]), dim=1)
                yb = Y[idx]
                loss = (supcon_loss(z, yb, spec.temperature) if proxies is None
                        else proxy_anchor_loss(z, yb, proxies, spec.margin, spec.alpha))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
                n_seen += len(b)
            net.eval()
            with torch.no_grad():
                Zv = torch.nn.functional.normalize(net(Xs[torch.from_numpy(va)]), dim=1).numpy().astype(np.float64)
            val = _val_map15(Zv, val_labels)
            improved = val > best
            if improved:
                best, since = val, 0
                best_state = {k: v.detach().clone().numpy() for k, v in net.state_dict().items()}
            else:
                since += 1
            rows.append({"epoch": epoch, "train_loss": total / max(1, n_seen), "val_map@15": val,
                         "seconds": time.perf_counter() - t0, "best": False})
            say(f"epoch {epoch}: loss {rows[-1]['train_loss']:.4f}, validation MAP@15 {val:.4f}"
                + (" (best)" if improved else ""))
            if since >= spec.patience:
                break
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    best_epoch = int(history.loc[history["val_map@15"].idxmax(), "epoch"])
    history["best"] = history["epoch"] == best_epoch
    if best_state is None:
        raise HeadError("validation MAP@15 was never defined: no epoch's weights to keep")
    return TrainedHead(spec=spec, input_dim=int(X.shape[1]), mean=mean, scale=scale, state=best_state,
                       history=history, best_epoch=best_epoch, n_train=int(tr.size), n_val=int(va.size),
                       labels=names)
