"""The model registry: one module per model family in this package.

Adding a model = one new module here + one entry under ``models:`` in
``config.yaml`` (+ its environment in ``envs/`` if it needs its own). A model
module defines, at import time and without importing heavy packages:

* ``INFO``: a :class:`ModelInfo` (name, variations, input sample rate,
  frame/clip level, hop, dimension, environment, the paper's metadata);
* ``load(variation, weights, device, *, <option>...) -> Embedder``: builds the model
  (heavy imports happen here), from local weights only; nothing is downloaded. Its
  keyword-only parameters are the options ``INFO.options`` declares (an
  :class:`OptionSpec` each: type, default, allowed values or range, help); the
  registry checks the user's options against the declaration and fills the
  defaults (:func:`check_options`) before calling it, so ``load`` receives every
  declared option, valid, and checks only what needs more than a type or range.

Besides the modules of this package, a model comes from:

* a **plugin package**: a module with the same contract (``INFO``, ``load``),
  registered through the entry-point group :data:`ENTRY_POINT_GROUP`
  (``soundsim.models``), named after the model; found next to the built-in
  modules (:func:`plugins`, read once per process). A plugin that fails to
  import, is not a model module, or registers a built-in model's name or one
  another plugin registers too, is left out with a warning naming its
  distribution and entry point, and configuring that name is a ConfigError
  with the same message. :func:`origin` says where a model comes from;
* a **kind** the config defines (``models.<name>.kind``, :data:`KINDS`):
  ``hear`` wraps any module implementing the HEAR 2021 API
  (:mod:`soundsim.models._hear`), ``precomputed`` imports vectors computed
  elsewhere (:mod:`soundsim.models._precomputed`), ``head`` is a learned
  similarity head of ``heads:`` (:mod:`soundsim.models._head`, never written
  under ``models:``). The name is the user's; the
  model's :class:`ModelInfo` is built from its config section by the kind
  module. Every function below that takes ``cfg`` (the model's config section)
  dispatches on ``cfg["kind"]``; without a kind, ``name`` is a registered model.

A kind module defines ``model_info(name, cfg) -> ModelInfo``,
``config_problems(name, cfg) -> list[str]`` (what is wrong with the section
beyond the schema), ``load_arguments(cfg) -> dict`` (what ``load`` receives
besides the declared options) and, when it embeds audio, ``load`` as above.

An :class:`Embedder` turns a mono float32 waveform at ``INFO.sample_rate`` into a
``(frames, dim)`` float32 array (one row for clip-level models). Extraction
(:mod:`soundsim.extract`) does the resampling, downmixing and padding of short
clips before calling it, so every model sees the same, documented input.
"""

from __future__ import annotations

import importlib
import logging
import math
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol

import numpy as np

from soundsim.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PaperInfo:
    """A model's row of the paper's Table II (only the audio encoder's parameters)."""

    modality: str  # "A", "A & I", "A & L", "A & I & L", ...
    objective: str  # "Classification", "Contrastive alignment", ...
    params: str  # "62M"
    data_size: str  # training data volume, "80M"
    dims: int  # native embedding dimension


OptionType = type[bool] | type[int] | type[float] | type[str]
_TYPE_WORDS: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML: null, true/false, numbers, quoted strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


@dataclass(frozen=True)
class OptionSpec:
    """One declared model option (its name is its key in ``ModelInfo.options``).

    ``type``: bool, int, float or str (an integer is accepted for a float and
    converted; a bool is never an integer). ``choices``: the allowed values
    (empty: any value of the type within ``min``/``max``, both inclusive).
    ``nullable``: null is allowed too (and passed as None). ``help``: one line,
    for ``soundsim models --options`` and the README."""

    type: OptionType
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None
    nullable: bool = False

    def __post_init__(self) -> None:
        if self.type not in _TYPE_WORDS:
            raise ValueError(f"OptionSpec.type must be one of bool, int, float, str, not {self.type!r}")
        if self._problem(self.default) is not None:
            raise ValueError(f"OptionSpec default {self.default!r} is not allowed by its own declaration "
                             f"({self.allowed()})")

    def allowed(self) -> str:
        """The allowed values in words: ``'start', 'center', 'mean'``, ``an integer >= 1``, ``true or false``."""
        if self.choices:
            text = ", ".join(_show(c) for c in self.choices)
        else:
            text = _TYPE_WORDS[self.type]
            if self.min is not None and self.max is not None:
                text += f" from {self.min:g} to {self.max:g}"
            elif self.min is not None:
                text += f" >= {self.min:g}"
            elif self.max is not None:
                text += f" <= {self.max:g}"
        return text + (", or null" if self.nullable else "")

    def _problem(self, value: Any) -> str | None:
        """None when ``value`` is allowed, else why not (for :meth:`check`)."""
        if value is None:
            return None if self.nullable else "null is not allowed"
        if self.type is bool:
            ok = isinstance(value, bool)
        elif self.type is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, self.type) and not isinstance(value, bool)
        if not ok:
            return f"{_show(value)} is not {_TYPE_WORDS[self.type]}"
        if self.choices and value not in self.choices:
            return f"{_show(value)} is not allowed"
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            return f"{_show(value)} is out of range"
        return None

    def check(self, key: str, value: Any) -> Any:
        """``value`` as the model's loader receives it (an integer for a float option becomes a
        float); a ConfigError naming ``key`` and the allowed values if it is not allowed."""
        problem = self._problem(value)
        if problem is not None:
            raise ConfigError(f"{key}: {problem}; allowed values: {self.allowed()}")
        return float(value) if self.type is float and value is not None else value


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model before loading it."""

    name: str
    variations: tuple[str, ...]
    default_variation: str
    sample_rate: int  # Hz the model expects; audio is resampled to it
    level: Literal["frame", "clip"]  # frame: several rows per clip (aggregate later); clip: one row
    hop: float | None  # seconds between frame rows (None for clip-level)
    dim: int | Mapping[str, int]  # embedding dimension, per variation where it differs
    env: str  # environment: envs/<env>.yaml (conda), envs/<env>.txt (pip -> .venvs/<env>); 'soundsim' = main .venv
    description: str
    weights: Literal["bundled", "required"] = "required"  # bundled: shipped by a PyPI package
    weights_hint: str = ""  # official file name(s) and where to get them
    weight_files: Mapping[str, str] = field(default_factory=dict)  # variation -> official file (or folder) name
    min_duration: float = 0.0  # seconds; shorter clips are zero-padded at the end to this length
    long_clips: str = "every frame of the whole clip is embedded"  # how long clips are handled
    # processing order (soundsim.process.PROCESSING): 'l2-pca' (deep models: L2 before PCA) or
    # 'minmax-pca' (Freesound: min-max scaling over the collection before PCA, no L2 before it)
    processing: Literal["l2-pca", "minmax-pca"] = "l2-pca"
    paper: PaperInfo | None = None  # None: not in the paper's Table II
    packages: tuple[str, ...] = ()  # distributions whose versions are recorded in the HDF5 file
    needs_gpu: bool = False  # whether a GPU is worth asking for on a cluster
    # the options load() takes (its keyword-only parameters), in the order they are listed
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    # the datasets its training data included (from its paper / model card), as collection
    # dataset names ("FSD50K", "AudioSet", ...); () = trained on none of them (e.g. random
    # weights); None = not declared. An evaluation on one of them is not zero-shot.
    # Names and aliases: soundsim.training_data.DATASETS; the flag: training_data.training_overlap.
    trained_on: tuple[str, ...] | None = None
    # dataset of trained_on -> a short note the flag text shows ("dev split", "630k-audioset-* only")
    trained_on_notes: Mapping[str, str] = field(default_factory=dict)

    def dim_of(self, variation: str) -> int:
        return int(self.dim[variation]) if isinstance(self.dim, Mapping) else int(self.dim)


class Embedder(Protocol):
    """A loaded model."""

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono float32 waveform at the model's rate -> (frames, dim) float32."""
        ...


@dataclass
class LoadedModel:
    """A loaded model with its registry info and the settings it was loaded with."""

    info: ModelInfo
    variation: str
    embedder: Embedder
    weights: str | None
    options: dict[str, Any] = field(default_factory=dict)

    def embed(self, waveform: np.ndarray) -> np.ndarray:
        out = np.asarray(self.embedder.embed(waveform, self.info.sample_rate), dtype=np.float32)
        if out.ndim == 1:
            out = out[None, :]
        return out


#: entry-point group through which plugin packages register model modules
ENTRY_POINT_GROUP = "soundsim.models"
#: model kinds defined by the config (``models.<name>.kind``) -> the module that implements each
KINDS: dict[str, str] = {
    "hear": "soundsim.models._hear",
    "precomputed": "soundsim.models._precomputed",
    # not written under models: -- every heads: entry becomes a section of this kind (soundsim.heads)
    "head": "soundsim.models._head",
}


def kind_of(cfg: Mapping[str, Any] | None) -> str | None:
    """The kind of a model's config section (``models.<name>.kind``), None for a registered model."""
    return (cfg or {}).get("kind") if isinstance(cfg, Mapping) else None


def kind_module(kind: str) -> ModuleType:
    """The module implementing model kind ``kind``; a ConfigError lists the known kinds."""
    if kind not in KINDS:
        raise ConfigError(f"kind: {kind!r} is not a model kind; allowed values: {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind])


def _builtin_modules() -> dict[str, ModuleType]:
    """Model name -> module, for the public modules of this package."""
    found: dict[str, ModuleType] = {}
    for m in pkgutil.iter_modules(__path__):
        if m.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{m.name}")
        info = getattr(mod, "INFO", None)
        if isinstance(info, ModelInfo):
            found[info.name] = mod
    return found


@dataclass(frozen=True)
class Plugin:
    """A model module registered by an installed distribution through :data:`ENTRY_POINT_GROUP`."""

    distribution: str  # the distribution's name
    version: str
    entry_point: str  # ``name = value`` as the distribution declares it
    module: ModuleType | None  # None when it failed (see :attr:`Plugins.problems`)

    def where(self) -> str:
        """``plugin <dist> <version> (entry point <name = value>)``, for messages."""
        return f"plugin {self.distribution} {self.version} (entry point {self.entry_point})"


@dataclass(frozen=True)
class Plugins:
    """What the installed plugin packages offer: model name -> its plugin, and model (or entry
    point) name -> why it is not usable (failed to import, no INFO/load, name taken)."""

    models: dict[str, Plugin]
    problems: dict[str, str]


def _entry_point_distribution(ep: Any) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "(unknown distribution)", "?"
    return str(dist.metadata["Name"]), str(dist.version)


def _plugin_module(ep: Any, where: str) -> ModuleType:
    """The model module an entry point names; a ConfigError saying why it is not one."""
    try:
        mod = ep.load()
    except Exception as e:  # noqa: BLE001 - a broken plugin must not break the registry
        raise ConfigError(f"{where} failed to import: {type(e).__name__}: {e}") from e
    if not isinstance(getattr(mod, "INFO", None), ModelInfo) or not callable(getattr(mod, "load", None)):
        raise ConfigError(f"{where} is not a soundsim model module: it needs INFO (a "
                          f"soundsim.models.ModelInfo) and load(variation, weights, device, **options)")
    return mod


@lru_cache(maxsize=1)
def plugins() -> Plugins:
    """The model modules of the installed plugin packages (entry-point group
    :data:`ENTRY_POINT_GROUP`), read once per process. A plugin that fails to import, is not a
    model module, or whose model name is a built-in model's or another plugin's, is left out
    with a warning naming its distribution and entry point; using that name then gives the
    same message as a ConfigError (:func:`get`)."""
    from importlib.metadata import entry_points

    builtin = _builtin_modules()
    found: dict[str, Plugin] = {}
    problems: dict[str, str] = {}
    twice: set[str] = set()  # model names left out because of a clash
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        dist, version = _entry_point_distribution(ep)
        plugin = Plugin(dist, version, f"{ep.name} = {ep.value}", None)
        try:
            mod = _plugin_module(ep, plugin.where())
        except ConfigError as e:
            problems[ep.name] = str(e)
            log.warning("soundsim: %s; it is left out", e)
            continue
        name = mod.INFO.name
        if name in builtin:
            problems[name] = f"{plugin.where()} registers model {name!r}, the name of a built-in model"
        elif name in found:
            problems[name] = (f"model {name!r} is registered twice: by {found.pop(name).where()} and by "
                              f"{plugin.where()}; uninstall one")
        elif name in twice:
            problems[name] += f"; also by {plugin.where()}"
        else:
            found[name] = Plugin(dist, version, plugin.entry_point, mod)
            if ep.name != name:
                log.warning("soundsim: %s registers model %r under another name; name the entry point after "
                            "the model (%s = %s)", plugin.where(), name, name, ep.value)
            continue
        twice.add(name)
        log.warning("soundsim: %s; it is left out", problems[name])
    return Plugins(found, problems)


def _modules() -> dict[str, ModuleType]:
    """Model name -> module: the built-in modules of this package and those of the plugin
    packages (:func:`plugins`), sorted by name."""
    found = _builtin_modules()
    found.update({name: p.module for name, p in plugins().models.items() if p.module is not None})
    return dict(sorted(found.items()))


def available() -> dict[str, ModelInfo]:
    """Every registered model (built in or from a plugin package), by name."""
    return {name: mod.INFO for name, mod in _modules().items()}


def origin(name: str, cfg: Mapping[str, Any] | None = None) -> str:
    """Where model ``name`` comes from: ``built in``, ``plugin <dist> <version>`` or, for a model
    of a kind, ``config (kind <kind>)``."""
    kind = kind_of(cfg)
    if kind is not None:
        return f"config (kind {kind})"
    p = plugins().models.get(name)
    return f"plugin {p.distribution} {p.version}" if p is not None else "built in"


def unknown_model(name: str, known: Mapping[str, Any] | None = None) -> str:
    """The message for a model name the registry does not have: why a plugin of that name is
    left out, else the known names."""
    problem = plugins().problems.get(name)
    if problem is not None and name not in plugins().models:
        return f"models.{name}: {problem}"
    names = ", ".join(known if known is not None else _modules())
    return f"models.{name}: unknown model; known models: {names} (or give it a kind: {', '.join(KINDS)})"


def get(name: str, cfg: Mapping[str, Any] | None = None) -> ModuleType:
    """The module that loads model ``name``: its registered module (built in or a plugin's), or
    the kind module of ``cfg["kind"]``; a clear error lists the known names."""
    kind = kind_of(cfg)
    if kind is not None:
        return kind_module(kind)
    mods = _modules()
    if name not in mods:
        raise ConfigError(unknown_model(name, mods))
    return mods[name]


def info(name: str, cfg: Mapping[str, Any] | None = None) -> ModelInfo:
    """What the registry knows of model ``name`` (``cfg``: its config section; needed for a
    model of a config-defined kind, whose info the kind module builds from it)."""
    kind = kind_of(cfg)
    if kind is not None:
        return kind_module(kind).model_info(name, cfg)
    return get(name).INFO


def configured(models_cfg: Mapping[str, Any]) -> dict[str, ModelInfo]:
    """Model name -> ModelInfo of every model of a ``models:`` section (registered or of a kind)."""
    return {name: info(name, cfg) for name, cfg in models_cfg.items()}


def load_arguments(name: str, cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the loader of model ``name`` receives besides its declared options: for a model of a
    kind, what the kind takes from the config section (e.g. ``module``, ``level``); else nothing."""
    kind = kind_of(cfg)
    return dict(kind_module(kind).load_arguments(cfg)) if kind is not None else {}


def default_weights_path(info: ModelInfo, variation: str, weights_dir: str | Path | None) -> Path | None:
    """``<weights_dir>/<official file name>`` of ``variation``, or None when either is unknown."""
    name = info.weight_files.get(variation)
    return Path(weights_dir) / name if weights_dir and name else None


def resolve_weights(info: ModelInfo, variation: str, weights: Mapping[str, str] | None,
                    weights_dir: str | Path | None = None) -> str | None:
    """The local weights path of ``variation``: the config's ``models.<name>.weights.<variation>``
    if given, else ``<weights_dir>/<official file name>`` (``INFO.weight_files``) if that
    exists, else None for bundled weights. A required, missing file is a ConfigError."""
    path = (weights or {}).get(variation)
    if path is None:
        default = default_weights_path(info, variation, weights_dir)
        if default is not None and default.exists():
            return str(default)
        if info.weights == "bundled":
            return None
        looked = f"; looked for {default}" if default is not None else ""
        raise ConfigError(
            f"models.{info.name}.weights.{variation}: no weights path given{looked}; this model needs local weights "
            f"({info.weights_hint or 'see the README model table'})"
        )
    if not Path(path).exists():
        raise ConfigError(f"models.{info.name}.weights.{variation}: {path} does not exist ({info.weights_hint})")
    return str(path)


def weights_of(inf: ModelInfo, cfg: Mapping[str, Any] | None) -> dict[str, str]:
    """``models.<name>.weights`` as variation -> path: a mapping as given; a single path (or
    null), as a model of a kind takes it, applies to its one variation."""
    w = (cfg or {}).get("weights")
    if w is None:
        return {}
    if isinstance(w, Mapping):
        return dict(w)
    return {inf.default_variation: str(w)}


def resolve_all_weights(models_cfg: Mapping[str, Any], weights_dir: str | Path | None = None
                        ) -> dict[tuple[str, str], str | None]:
    """(model, variation) -> weights path (None: bundled) for every configured variation;
    one ConfigError listing every variation whose weights are missing."""
    out: dict[tuple[str, str], str | None] = {}
    problems = []
    for name, cfg in models_cfg.items():
        inf = info(name, cfg)
        for v in cfg.get("variations") or [inf.default_variation]:
            try:
                out[(name, v)] = resolve_weights(inf, v, weights_of(inf, cfg), weights_dir)
            except ConfigError as e:
                problems.append(str(e))
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"weights missing for {len(problems)} model variations:\n  " + "\n  ".join(problems))
    return out


def option_problems(name: str, options: Any, cfg: Mapping[str, Any] | None = None) -> list[str]:
    """What is wrong with the options ``options`` of model ``name`` (``models.<name>.options``):
    one line per problem, each naming ``models.<name>.options.<option>`` and the allowed
    options or values; empty when they are valid. ``cfg``: the model's section (see :func:`info`)."""
    declared = info(name, cfg).options
    where = f"models.{name}.options"
    if options is None:
        return []
    if not isinstance(options, Mapping):
        return [f"{where}: {_show(options)} is not a mapping of option: value"]
    problems = []
    for key, value in options.items():
        if key not in declared:
            allowed = f"allowed options: {', '.join(declared)}" if declared else f"{name} takes no options"
            problems.append(f"{where}.{key}: unknown option; {allowed}")
            continue
        try:
            declared[key].check(f"{where}.{key}", value)
        except ConfigError as e:
            problems.append(str(e))
    return problems


def check_options(name: str, options: Mapping[str, Any] | None, cfg: Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The options of model ``name`` checked against its declaration (``INFO.options``), with the
    defaults filled: every declared option, in declaration order, as ``load`` receives them.
    Idempotent (its result passes again unchanged). Raises ConfigError naming
    ``models.<name>.options.<option>`` and the allowed options or values (one line per problem)."""
    problems = option_problems(name, options, cfg)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"models.{name}.options: {len(problems)} problems:\n  " + "\n  ".join(problems))
    given = dict(options or {})
    return {key: spec.check(f"models.{name}.options.{key}", given[key]) if key in given else spec.default
            for key, spec in info(name, cfg).options.items()}


def options_table() -> str:
    """Every model's declared options as a Markdown table (what ``soundsim models --options``
    prints and the README's model section shows), then the models that take none."""
    lines = ["| model | option | type | default | allowed values | what it does |",
             "| --- | --- | --- | --- | --- | --- |"]
    none = []
    for name, inf in available().items():
        if not inf.options:
            none.append(f"`{name}`")
        for key, spec in inf.options.items():
            lines.append(f"| `{name}` | `{key}` | {spec.type.__name__} | `{_show(spec.default)}` | "
                         f"{spec.allowed()} | {spec.help} |")
    return "\n".join(lines) + (f"\n\nNo options: {', '.join(none)}." if none else "")


def check_sample_rate(name: str, sample_rate: int, expected: int) -> None:
    """An Embedder's input check: ValueError unless the waveform is at the model's rate."""
    if sample_rate != expected:
        raise ValueError(f"{name} expects {expected} Hz audio, got {sample_rate} Hz")


def load(
    name: str,
    variation: str | None = None,
    weights: str | None = None,
    device: str = "cpu",
    options: Mapping[str, Any] | None = None,
    cfg: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Load model ``name`` (``variation`` defaults to the model's default) with ``options``
    checked and completed by :func:`check_options` (recorded in ``LoadedModel.options``).
    ``cfg``: the model's config section, for a model of a kind (see :func:`info`)."""
    mod = get(name, cfg)
    inf = info(name, cfg)
    if not hasattr(mod, "load"):
        raise ConfigError(f"models.{name}: a model of kind {kind_of(cfg)!r} embeds no audio")
    variation = variation or inf.default_variation
    if variation not in inf.variations:
        raise ConfigError(
            f"models.{name}.variations: {variation!r} is not a variation of {name}; "
            f"allowed values: {', '.join(inf.variations)}"
        )
    opts = check_options(name, options, cfg)
    embedder = mod.load(variation, weights, device, **opts, **load_arguments(name, cfg))
    return LoadedModel(inf, variation, embedder, weights, opts)


def check_models_config(models_cfg: Mapping[str, Any]) -> None:
    """Every configured model exists, every listed variation is one of its own and every
    option is one it declares, with an allowed value; one ConfigError listing every problem."""
    known = available()
    problems = []
    for name, cfg in models_cfg.items():
        kind = kind_of(cfg)
        if kind is not None:
            try:
                kind_problems = kind_module(kind).config_problems(name, cfg)
            except ConfigError as e:
                kind_problems = [f"models.{name}.{e}" if str(e).startswith("kind:") else str(e)]
            if kind_problems:
                problems += kind_problems
                continue
            inf = info(name, cfg)
        elif name in known:
            inf = known[name]
        else:
            problems.append(unknown_model(name, known))
            continue
        for v in cfg.get("variations") or [inf.default_variation]:
            if v not in inf.variations:
                problems.append(
                    f"models.{name}.variations: {v!r} is not a variation of {name}; "
                    f"allowed values: {', '.join(inf.variations)}"
                )
        problems += option_problems(name, cfg.get("options"), cfg)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
