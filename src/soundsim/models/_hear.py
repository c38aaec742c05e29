"""Model kind ``hear``: any installed module implementing the HEAR 2021 API.

The HEAR 2021 API (https://hearbenchmark.com/hear-api.html) is three functions
and three attributes of the loaded model::

    load_model(model_file_path: str = "") -> model
    get_scene_embeddings(audio, model) -> (n_sounds, scene_embedding_size)
    get_timestamp_embeddings(audio, model) -> (embeddings (n_sounds, n_timestamps, timestamp_embedding_size),
                                               timestamps in ms (n_sounds, n_timestamps))
    model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size

A model of this kind is configured by name (the name is the user's)::

    models:
      hear-naive:
        kind: hear
        module: hearbaseline.naive   # any importable HEAR module
        weights: null                # a local path, passed to load_model(model_file_path)
        env: hear                    # the environment the module is installed in (default: soundsim)
        level: clip                  # clip: scene embeddings (default); frame: timestamp embeddings
        trained_on: []               # datasets its training data included (None when absent)

**Probe.** Sample rate, dimension and hop come from the module: :func:`probe`
loads the model in the model's environment (``python -m soundsim.models._hear
MODULE WEIGHTS`` with :func:`soundsim.envs.python_for`'s interpreter, a
subprocess, so the planning process never imports torch), reads its
attributes and embeds :data:`PROBE_SECONDS` of seeded noise with each API
function present; the hop is the median step of the timestamps (ms / 1000).
The result is cached in this process and on disk
(``<user cache dir>/hear-probe/<key>.json``, :func:`soundsim.fingerprint.user_cache_dir`),
keyed by the module, the weights' fingerprint, the environment (its
interpreter and every installed distribution with its version), ``PYTHONPATH``
and this file's code; an entry is used only while the module's source files
(recorded by the probe with their size and modification time) are unchanged.
``snakemake -n`` therefore loads a model once, not at every plan.

**Input.** Extraction resamples every clip to the module's ``sample_rate`` and
downmixes it (as for every model); no padding (``min_duration`` 0). The
waveform goes to the module as a ``(1, n_samples)`` float32 batch: a
``torch.Tensor`` on the extraction device when the model is a
``torch.nn.Module`` (put in eval mode, called under ``torch.no_grad()``), a
``tf.Tensor`` when it is a ``tf.Module`` (as the HEAR evaluation kit does), a
numpy array otherwise.

**Long clips** are embedded in bounded chunks (option ``chunk_seconds``,
default :data:`CHUNK_SECONDS`; null: the whole clip in one pass). A clip of at
most ``L = round(chunk_seconds x sample_rate)`` samples is embedded in **one
pass**, identical to calling the module directly (``tests/test_models_hear.py``).
A longer clip is cut (:func:`chunk_bounds`) at ``0, L, 2L, ...``; a last piece
shorter than ``L / 2`` joins the chunk before it (so every chunk has between
``L / 2`` and ``1.5 L`` samples). At frame level ``L`` is first rounded down
to a whole number of hops when the hop is a whole number of samples, so that
the chunks' timestamps continue the one-pass grid. Then:

* ``level: clip``: the scene embedding of each chunk, combined as the
  duration-weighted mean ``sum_k n_k e_k / sum_k n_k`` (``n_k``: the chunk's
  samples);
* ``level: frame``: the timestamp embeddings of each chunk, concatenated in
  time order (timestamps offset by the chunk's start); of every chunk but the
  last only the rows whose timestamp lies inside the chunk (``t < n_k /
  sample_rate``) are kept, so a frame centred on a boundary is taken once,
  from the chunk that starts there. A frame whose window crosses a boundary
  sees zeros past it, as at the clip's own ends; the others equal the
  one-pass rows.

**Weights.** ``weights:`` (a local path) is passed as
``load_model(model_file_path=<path>)``; without it ``load_model()`` is called
with the module's default. soundsim never downloads anything; a module that
downloads its checkpoint at first use fails offline at the probe, naming the
module and environment.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from soundsim.errors import ConfigError, SoundsimError
from soundsim.models import ModelInfo, OptionSpec, check_sample_rate

log = logging.getLogger(__name__)

#: the functions of the HEAR 2021 API
API_FUNCTIONS = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
#: the function each level calls, and the model attribute that gives its dimension
LEVEL_API = {"clip": ("get_scene_embeddings", "scene_embedding_size"),
             "frame": ("get_timestamp_embeddings", "timestamp_embedding_size")}
VARIATION = "default"
DEFAULT_ENV = "soundsim"
DEFAULT_LEVEL = "clip"
CHUNK_SECONDS = 60.0  # every FSD50K clip (at most 30 s) is one pass
PROBE_SECONDS = 4.0
PROBE_MARKER = "SOUNDSIM_HEAR_PROBE "
PROBE_TIMEOUT = 900  # seconds; a model that loads slower is not usable for planning anyway

OPTIONS = {
    "chunk_seconds": OptionSpec(
        float, CHUNK_SECONDS, "longest piece of a clip embedded in one pass, in seconds (clip level: the chunks' "
        "scene embeddings averaged by duration; frame level: their timestamp embeddings concatenated); null: "
        "the whole clip in one pass", min=1.0, nullable=True),
}


# --------------------------------------------------------------------------- the config section


@dataclass(frozen=True)
class HearSection:
    """``models.<name>`` of kind ``hear``, with its defaults."""

    name: str
    module: str
    weights: str | None
    env: str
    level: str
    trained_on: tuple[str, ...] | None

    @classmethod
    def of(cls, name: str, cfg: Mapping[str, Any]) -> HearSection:
        module = cfg.get("module")
        if not isinstance(module, str) or not module.strip():
            raise ConfigError(f"models.{name}.module: required for kind 'hear' (an importable HEAR module, "
                              "e.g. hearbaseline.naive)")
        level = cfg.get("level") or DEFAULT_LEVEL
        if level not in LEVEL_API:
            raise ConfigError(f"models.{name}.level: {level!r} is not allowed; allowed values: 'clip', 'frame'")
        weights = cfg.get("weights")
        if isinstance(weights, Mapping) and set(weights) <= {VARIATION}:  # {default: path}, as weights_of gives
            weights = weights.get(VARIATION)
        if weights is not None and not isinstance(weights, str):
            raise ConfigError(f"models.{name}.weights: a model of kind 'hear' takes one path (or null; or "
                              f"{{{VARIATION}: path}}), passed to {module}.load_model(model_file_path)")
        from soundsim.training_data import check_trained_on

        trained = check_trained_on(cfg.get("trained_on"), f"models.{name}.trained_on")
        return cls(name, module.strip(), weights or None, str(cfg.get("env") or DEFAULT_ENV), level, trained)


def load_arguments(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`load` receives besides the declared options: ``module`` and ``level``."""
    return {"module": str(cfg["module"]), "level": str(cfg.get("level") or DEFAULT_LEVEL)}


# --------------------------------------------------------------------------- probing (in the model's env)


@dataclass(frozen=True)
class Probe:
    """What a HEAR module says about itself (see the module docstring, "Probe")."""

    module: str
    functions: tuple[str, ...]  # the API functions it defines
    sample_rate: int
    scene_embedding_size: int | None
    timestamp_embedding_size: int | None
    hop: float | None  # seconds between timestamps (None without get_timestamp_embeddings)
    distribution: str | None  # the installed distribution that holds the module (None: a loose file)
    version: str | None
    source_digest: str | None  # sha256 of its package's .py files (None: not readable)
    sources: dict[str, list[int]] = field(default_factory=dict)  # hashed file -> [size, mtime_ns]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Probe:
        return cls(**{**d, "functions": tuple(d["functions"]), "sources": dict(d.get("sources") or {})})


class ProbeError(Exception):
    """A probe that failed: ``kind`` is import, api, load or run; ``message`` says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _framework(model: Any) -> str:
    """'torch', 'tf' or 'numpy': what the model takes (checked through the frameworks the module
    imported, so that none is imported here)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(model, tf.Module):
        return "tf"
    return "numpy"


def _to_numpy(x: Any) -> np.ndarray:
    """A torch / TensorFlow tensor or array as a numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x)


class HearCall:
    """A loaded HEAR model and how to call it on one mono float32 waveform."""

    def __init__(self, module: Any, weights: str | None, device: str = "cpu") -> None:
        self.module = module
        self.model = module.load_model(weights) if weights else module.load_model()
        self.framework = _framework(self.model)
        self.device = device
        if self.framework == "torch":
            self.model = self.model.to(device)
            self.model.eval()

    def _batch(self, x: np.ndarray) -> Any:
        batch = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(1, -1))
        if self.framework == "torch":
            return sys.modules["torch"].from_numpy(batch).to(self.device)
        if self.framework == "tf":
            return sys.modules["tensorflow"].convert_to_tensor(batch)
        return batch

    def _run(self, fn: Any, x: np.ndarray) -> Any:
        if self.framework == "torch":
            with sys.modules["torch"].no_grad():
                return fn(self._batch(x), self.model)
        return fn(self._batch(x), self.model)

    def scene(self, x: np.ndarray) -> np.ndarray:
        """(scene_embedding_size,) float32: ``get_scene_embeddings`` of one waveform."""
        out = _to_numpy(self._run(self.module.get_scene_embeddings, x))
        if out.ndim != 2 or out.shape[0] != 1:
            raise ValueError(f"get_scene_embeddings returned shape {out.shape}, expected (1, dim)")
        return out[0].astype(np.float32)

    def timestamps(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((T, dim) float32, (T,) float64 ms): ``get_timestamp_embeddings`` of one waveform."""
        emb, ts = self._run(self.module.get_timestamp_embeddings, x)
        emb, ts = _to_numpy(emb), _to_numpy(ts)
        if emb.ndim != 3 or emb.shape[0] != 1 or ts.shape != emb.shape[:2]:
            raise ValueError(f"get_timestamp_embeddings returned shapes {emb.shape} and {ts.shape}, expected "
                             "(1, T, dim) and (1, T)")
        return emb[0].astype(np.float32), ts[0].astype(np.float64)


def _int_attribute(model: Any, attr: str, module: str) -> int:
    value = getattr(model, attr, None)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ProbeError("api", f"{module}: the loaded model has no {attr} (a positive integer, as the HEAR 2021 "
                         f"API requires); got {value!r}")
    return int(value)


def _source_files(module: Any) -> list[Path]:
    """The .py files of ``module``'s top-level package (or the module's own file)."""
    origin = getattr(module, "__file__", None)
    if not origin:
        return []
    top = sys.modules.get(module.__name__.split(".")[0])
    top_file = getattr(top, "__file__", None)
    if top_file and Path(top_file).name == "__init__.py":
        return sorted(Path(top_file).parent.rglob("*.py"))
    return [Path(origin)]


def _distribution(module_name: str) -> tuple[str | None, str | None]:
    """(name, version) of the installed distribution that provides ``module_name``'s top-level package."""
    from importlib import metadata

    names = metadata.packages_distributions().get(module_name.split(".")[0]) or []
    for n in names:
        try:
            return n, metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def probe_here(module_name: str, weights: str | None) -> Probe:
    """The probe, in this interpreter (the model's environment): import, load, read the
    attributes, embed :data:`PROBE_SECONDS` of noise with each API function. Raises ProbeError."""
    try:
        mod = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's to see
        raise ProbeError("import", f"{type(e).__name__}: {e}") from e
    functions = tuple(f for f in API_FUNCTIONS if callable(getattr(mod, f, None)))
    if "load_model" not in functions:
        raise ProbeError("api", f"{module_name} does not implement the HEAR 2021 API: it has no function "
                         "load_model(model_file_path)")
    if len(functions) == 1:
        raise ProbeError("api", f"{module_name} does not implement the HEAR 2021 API: it has neither "
                         "get_scene_embeddings nor get_timestamp_embeddings")
    try:
        call = HearCall(mod, weights)
    except Exception as e:  # noqa: BLE001
        raise ProbeError("load", f"{module_name}.load_model({weights or ''!r}) failed: {type(e).__name__}: {e}") \
            from e
    sr = _int_attribute(call.model, "sample_rate", module_name)
    x = (0.1 * np.random.default_rng(0).standard_normal(int(PROBE_SECONDS * sr))).astype(np.float32)
    scene_dim = ts_dim = hop = None
    try:
        if "get_scene_embeddings" in functions:
            scene_dim = _int_attribute(call.model, "scene_embedding_size", module_name)
            got = call.scene(x).shape[0]
            if got != scene_dim:
                raise ProbeError("api", f"{module_name}: get_scene_embeddings returned {got} dims, the model's "
                                 f"scene_embedding_size is {scene_dim}")
        if "get_timestamp_embeddings" in functions:
            ts_dim = _int_attribute(call.model, "timestamp_embedding_size", module_name)
            emb, ts = call.timestamps(x)
            if emb.shape[1] != ts_dim:
                raise ProbeError("api", f"{module_name}: get_timestamp_embeddings returned {emb.shape[1]} dims, "
                                 f"the model's timestamp_embedding_size is {ts_dim}")
            hop = float(np.median(np.diff(ts))) / 1000.0 if len(ts) > 1 else PROBE_SECONDS
    except ValueError as e:
        raise ProbeError("api", f"{module_name}: {e}") from e
    except ProbeError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ProbeError("run", f"{module_name} failed on {PROBE_SECONDS:g} s of noise: {type(e).__name__}: {e}") \
            from e
    files = _source_files(mod)
    digest = None
    if files:
        root = Path(os.path.commonpath([f.parent for f in files]))
        h = hashlib.sha256()
        for f in files:  # relative path and bytes of every file
            h.update(f"{f.relative_to(root)}\n".encode() + f.read_bytes())
        digest = h.hexdigest()
    dist, version = _distribution(module_name)
    sources = {str(f): [f.stat().st_size, f.stat().st_mtime_ns] for f in files}
    return Probe(module_name, functions, sr, scene_dim, ts_dim, hop, dist, version, digest, sources)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m soundsim.models._hear MODULE [WEIGHTS]``: print the probe as one JSON line
    after :data:`PROBE_MARKER` (``{"error": kind, "message": ...}`` when it fails)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        out: dict[str, Any] = asdict(probe_here(args[0], args[1] if len(args) > 1 and args[1] else None))
    except ProbeError as e:
        out = {"error": e.kind, "message": e.message}
    print(PROBE_MARKER + json.dumps(out), flush=True)
    return 0


# --------------------------------------------------------------------------- probing (from the planner)


def _cache_key(module: str, weights: str | None, env: str, python: str, root: Path | None) -> str:
    """sha256 of what a probe depends on besides the module's own files (see the module docstring)."""
    from soundsim.fingerprint import weights_fingerprint
    from soundsim.provenance import env_distributions, module_digest

    parts = {"module": module, "weights": weights_fingerprint(weights), "env": env, "python": python,
             "distributions": env_distributions(env, root), "pythonpath": os.environ.get("PYTHONPATH", ""),
             "code": module_digest(__name__)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _still_valid(p: Probe) -> bool:
    """Whether every source file the probe hashed still has its size and modification time."""
    for f, (size, mtime) in p.sources.items():
        try:
            st = os.stat(f)
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            return False
    return True


def _read_cache(path: Path) -> Probe | None:
    try:
        p = Probe.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return p if _still_valid(p) else None


def _write_cache(path: Path, p: Probe) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(p), indent=1))
        os.replace(tmp, path)
    except OSError as e:  # a read-only home: the probe runs again next time
        log.debug("cannot write the HEAR probe cache %s: %s", path, e)


def _run_probe(python: str, module: str, weights: str | None, env: str) -> Probe:
    """Run :func:`main` with ``python`` (the model's environment); ProbeError when it fails."""
    cmd = [python, "-m", "soundsim.models._hear", module, weights or ""]
    run_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT, env=run_env)
    except (OSError, subprocess.SubprocessError) as e:
        raise ProbeError("run", f"cannot run {python}: {e}") from e
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(PROBE_MARKER)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ProbeError("run", f"the probe exited with status {proc.returncode} in environment {env!r} "
                         f"({python}): {tail}")
    out = json.loads(lines[-1][len(PROBE_MARKER):])
    if "error" in out:
        raise ProbeError(out["error"], out["message"])
    return Probe.from_json(out)


@lru_cache(maxsize=64)
def _probe_cached(module: str, weights: str | None, env: str, root: str | None, cache_dir: str,
                  pythonpath: str) -> Probe:
    from soundsim.envs import python_for

    root_path = Path(root) if root else None
    try:
        python = python_for(env, root_path)
    except SoundsimError as e:
        raise ProbeError("env", str(e)) from e
    path = Path(cache_dir) / f"{_cache_key(module, weights, env, python, root_path)}.json"
    cached = _read_cache(path)
    if cached is not None:
        return cached
    log.info("probing HEAR module %s in environment %r (loads the model; the result is cached in %s)", module, env,
             path)
    p = _run_probe(python, module, weights, env)
    _write_cache(path, p)
    return p


def probe(module: str, weights: str | None = None, env: str = DEFAULT_ENV, root: Path | None = None) -> Probe:
    """The probe of HEAR module ``module`` with ``weights`` in environment ``env``: from this
    process's cache, else the disk cache, else a subprocess in the environment (see the module
    docstring; either cache answers only while the module's source files are unchanged).
    Raises ProbeError (kind env, import, api, load or run)."""
    from soundsim.fingerprint import user_cache_dir

    args = (module, weights, env, str(root) if root else None, str(user_cache_dir() / "hear-probe"),
            os.environ.get("PYTHONPATH", ""))
    p = _probe_cached(*args)
    if not _still_valid(p):  # the module's source changed since this process probed it
        _probe_cached.cache_clear()
        p = _probe_cached(*args)
    return p


def clear_probe_cache() -> None:
    """Forget this process's probes (the disk cache stays)."""
    _probe_cached.cache_clear()


def _problem(sec: HearSection, e: ProbeError) -> str:
    """A probe failure as one line naming the model's config key."""
    where = f"models.{sec.name}"
    if e.kind == "env":
        return f"{where}.env: {e.message}"
    if e.kind == "import":
        return (f"{where}.module: cannot import {sec.module!r} in environment {sec.env!r}: {e.message} "
                f"(install it there, or set models.{sec.name}.env to an environment that has it)")
    if e.kind == "api":
        return f"{where}.module: {e.message}"
    if e.kind == "load":
        return (f"{where}: {e.message} (in environment {sec.env!r}; soundsim never downloads weights: give a "
                f"local checkpoint as models.{sec.name}.weights)")
    return f"{where}: probing {sec.module} failed: {e.message}"


def _checked_probe(sec: HearSection, root: Path | None = None) -> Probe:
    """The section's probe, with the level checked; a ConfigError naming the key otherwise."""
    if sec.weights is not None and not Path(sec.weights).exists():
        raise ConfigError(f"models.{sec.name}.weights: {sec.weights} does not exist")
    try:
        p = probe(sec.module, sec.weights, sec.env, root)
    except ProbeError as e:
        raise ConfigError(_problem(sec, e)) from e
    fn, _ = LEVEL_API[sec.level]
    if fn not in p.functions:
        other = "clip" if sec.level == "frame" else "frame"
        raise ConfigError(f"models.{sec.name}.level: {sec.level!r} needs {fn}, which {sec.module} does not "
                          f"define; use level: {other}")
    return p


# --------------------------------------------------------------------------- the kind's interface


def config_problems(name: str, cfg: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``models.<name>`` of kind hear beyond the schema: the module cannot be
    imported in its environment, lacks the API (or the level's function), fails to load."""
    try:
        _checked_probe(HearSection.of(name, cfg))
    except ConfigError as e:
        return [str(e)]
    return []


def model_info(name: str, cfg: Mapping[str, Any]) -> ModelInfo:
    """The ModelInfo of ``models.<name>`` (kind hear), its rate, dimension and hop from the probe."""
    sec = HearSection.of(name, cfg)
    p = _checked_probe(sec)
    frame = sec.level == "frame"
    dist = f"{p.distribution} {p.version}" if p.distribution else "a module outside any installed distribution"
    return ModelInfo(
        name=name,
        variations=(VARIATION,),
        default_variation=VARIATION,
        sample_rate=p.sample_rate,
        level="frame" if frame else "clip",
        hop=p.hop if frame else None,
        dim=int(p.timestamp_embedding_size if frame else p.scene_embedding_size),
        env=sec.env,
        description=f"HEAR 2021 API module {sec.module} ({dist}), "
                    f"{'timestamp' if frame else 'scene'} embeddings",
        weights="required" if sec.weights else "bundled",
        weights_hint=f"models.{name}.weights: a local path passed to {sec.module}.load_model(model_file_path)",
        long_clips=("timestamp embeddings of consecutive chunks of chunk_seconds, concatenated" if frame else
                    "scene embeddings of consecutive chunks of chunk_seconds, averaged by duration"),
        packages=tuple(dict.fromkeys([*([p.distribution] if p.distribution else []), "torch", "tensorflow"])),
        options=OPTIONS,
        trained_on=sec.trained_on,
    )


def code_parts(name: str, cfg: Mapping[str, Any], root: Path | None = None) -> dict[str, object]:
    """What the model's code version adds for kind hear: the module, level and environment, the
    distribution holding the module with its version, and the digest of its source."""
    sec = HearSection.of(name, cfg)
    p = _checked_probe(sec, root)
    return {"hear": {"module": sec.module, "level": sec.level, "env": sec.env, "distribution": p.distribution,
                     "version": p.version, "source": p.source_digest}}


# --------------------------------------------------------------------------- embedding


def chunk_bounds(n: int, chunk: int | None, limit: int | None = None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``0 .. n``: one piece when ``chunk`` is None or
    ``n <= limit`` (default ``chunk``); else cuts at multiples of ``chunk``, a last piece
    shorter than ``chunk / 2`` joined to the one before (every piece ``chunk / 2 .. 1.5 chunk``)."""
    if chunk is None or n <= max(chunk, limit or 0):
        return [(0, n)]
    starts = list(range(0, n, chunk))
    if len(starts) > 1 and n - starts[-1] < chunk / 2:
        starts.pop()
    return [(s, e) for s, e in zip(starts, [*starts[1:], n], strict=True)]


def chunk_samples(chunk_seconds: float | None, sample_rate: int, hop: float | None) -> int | None:
    """Samples per chunk: ``round(chunk_seconds x sample_rate)``, rounded down to a whole
    number of hops when the hop is a whole number of samples (at least one hop)."""
    if chunk_seconds is None:
        return None
    n = int(round(chunk_seconds * sample_rate))
    if hop:
        h = hop * sample_rate
        if abs(h - round(h)) < 1e-6 and round(h) > 0:
            n = max(int(round(h)), n - n % int(round(h)))
    return n


class HearEmbedder:
    """A HEAR module as a soundsim Embedder (see the module docstring, "Long clips")."""

    def __init__(self, module: str, weights: str | None, device: str, level: str,
                 chunk_seconds: float | None) -> None:
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"cannot import HEAR module {module!r} in {sys.executable}: {e}") from e
        fn, attr = LEVEL_API[level]
        for f in ("load_model", fn):
            if not callable(getattr(mod, f, None)):
                raise ConfigError(f"{module} has no function {f}, which level {level!r} needs (HEAR 2021 API)")
        self.call = HearCall(mod, weights, device)
        self.level = level
        try:
            self.sample_rate = _int_attribute(self.call.model, "sample_rate", module)
            self.dim = _int_attribute(self.call.model, attr, module)
        except ProbeError as e:
            raise ConfigError(e.message) from e
        self.name = module
        self.chunk_seconds = chunk_seconds
        self._hop: float | None = None

    def hop(self) -> float | None:
        """Seconds between timestamps (median step on :data:`PROBE_SECONDS` of silence; once)."""
        if self._hop is None:
            _, ts = self.call.timestamps(np.zeros(int(PROBE_SECONDS * self.sample_rate), dtype=np.float32))
            self._hop = float(np.median(np.diff(ts))) / 1000.0 if len(ts) > 1 else 0.0
        return self._hop or None

    def frames(self, x: np.ndarray, chunk: int | None, limit: int | None = None) -> np.ndarray:
        """(T, dim): timestamp embeddings of the chunks (:func:`chunk_bounds`), concatenated; of
        every chunk but the last only the rows with timestamp < the chunk's duration."""
        bounds = chunk_bounds(len(x), chunk, limit)
        rows = []
        for i, (s, e) in enumerate(bounds):
            emb, ts = self.call.timestamps(x[s:e])
            if i < len(bounds) - 1:
                emb = emb[ts < (e - s) / self.sample_rate * 1000.0]
            rows.append(emb)
        return np.concatenate(rows)

    def scene(self, x: np.ndarray, chunk: int | None) -> np.ndarray:
        """(1, dim): scene embedding of the clip, or the duration-weighted mean over its chunks."""
        bounds = chunk_bounds(len(x), chunk)
        if len(bounds) == 1:
            return self.call.scene(x)[None, :]
        embs = np.stack([self.call.scene(x[s:e]).astype(np.float64) for s, e in bounds])
        w = np.array([e - s for s, e in bounds], dtype=np.float64)
        return ((w[:, None] * embs).sum(axis=0) / w.sum()).astype(np.float32)[None, :]

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        check_sample_rate(self.name, sample_rate, self.sample_rate)
        x = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if self.level == "clip":
            return self.scene(x, chunk_samples(self.chunk_seconds, self.sample_rate, None))
        limit = chunk_samples(self.chunk_seconds, self.sample_rate, None)
        if limit is None or len(x) <= limit:
            return self.frames(x, None)
        return self.frames(x, chunk_samples(self.chunk_seconds, self.sample_rate, self.hop()), limit)


def load(variation: str, weights: str | None, device: str = "cpu", *, chunk_seconds: float | None,
         module: str, level: str) -> HearEmbedder:
    """Import ``module`` (a HEAR 2021 API module) and load its model, ``weights`` passed as
    ``load_model(model_file_path)``; ``level`` clip (scene) or frame (timestamp embeddings)."""
    if variation != VARIATION:
        raise ConfigError(f"a model of kind 'hear' has one variation, {VARIATION!r}, not {variation!r}")
    return HearEmbedder(module, weights, device, level, chunk_seconds)


if __name__ == "__main__":
    sys.exit(main())
