"""Code versions: which code (and which package versions) an output was made with.

Every output that depends on code records a *code version*, and the workflow
passes it as a rule parameter, so that changing the code re-runs exactly the
jobs whose results it can change (Snakemake re-runs a job when a parameter
changes), and nothing else.

A code version is ``<16 hex digits>``: the sha256 of the *normalised source*
of the code involved plus the versions of the packages it runs on. Normalised
source = the module's syntax tree (``ast.dump``) without docstrings and
without the descriptive ``ModelInfo(...)`` fields (:data:`METADATA_FIELDS`:
texts, paper, training data), so comments, blank lines, formatting,
docstrings and metadata do not count; any change to what the code does does
(a renamed variable too: the check is conservative).

* :func:`model_code_version`: a model's module, the private helper modules it
  imports (``soundsim.models._*``, transitively; for a plugin package's model, the
  modules of its own package it imports and the distribution's name and version;
  for a model of a kind, what the kind module's ``code_parts`` adds, e.g. the HEAR
  module's distribution, version and source digest), the extraction functions
  that shape every model's input and output (:data:`EXTRACTION_FUNCTIONS`:
  decode, downmix, resample, pad, checks), and the versions of the packages the
  model declares (``ModelInfo.packages``) plus those of decoding
  (:data:`DECODE_PACKAGES`), read from the model's environment.
* :func:`evaluation_code_version`: the modules that turn embeddings into
  metrics (:data:`EVALUATION_MODULES`) and the numeric packages they use.

Functions are read from source files, never imported, so the planning process
(which has only the main environment) can version a model of another
environment.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import logging
import re
import subprocess
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

#: the functions every extraction runs, as ``module:function``
EXTRACTION_FUNCTIONS = (
    "soundsim.audio:load",
    "soundsim.extract:prepare",
    "soundsim.extract:embed_clip",
    "soundsim.models:LoadedModel",
)
#: packages that decode and resample audio for every model
DECODE_PACKAGES = ("numpy", "soundfile", "soxr")
#: modules that turn embeddings into metrics
EVALUATION_MODULES = ("soundsim.process", "soundsim.search", "soundsim.metrics", "soundsim.evaluate",
                      "soundsim.panel", "soundsim.relevance", "soundsim.measures")
#: what the tables, figures and maps are computed with: a change re-runs those rules
REPORT_MODULES = ("soundsim.measures", "soundsim.stats", "soundsim.tables", "soundsim.training_data",
                  "soundsim.figures", "soundsim.maps")
EVALUATION_PACKAGES = ("numpy", "scipy", "scikit-learn", "pandas", "pyarrow")


def _source_path(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(f"cannot find the source of {module}")
    return Path(spec.origin)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _tree(module: str) -> ast.Module:
    path = _source_path(module)
    return _parse(path.read_text(), str(path))


@lru_cache(maxsize=256)
def _parse(source: str, filename: str) -> ast.Module:
    """The syntax tree of a source text (cached by the text itself)."""
    return ast.parse(source, filename=filename)


#: ``ModelInfo(...)`` keywords that describe a model without changing what it computes (its
#: paper, training data, texts, scheduling hint): left out of a model module's digest, so that
#: declaring them does not re-embed a collection
METADATA_FIELDS = frozenset({"description", "weights_hint", "long_clips", "paper", "trained_on",
                             "trained_on_notes", "needs_gpu"})


def _strip_metadata(tree: ast.AST) -> ast.AST:
    """Drop the :data:`METADATA_FIELDS` keywords of every ``ModelInfo(...)`` call."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "ModelInfo":
            node.keywords = [k for k in node.keywords if k.arg not in METADATA_FIELDS]
    return tree


def _normalised(node: ast.AST) -> str:
    tree = _strip_metadata(_strip_docstrings(ast.parse(ast.unparse(node))))
    return ast.dump(tree, include_attributes=False)


def _references(node: ast.AST) -> set[str]:
    """Names ``node`` uses, leaving out type annotations (hints, never run: with
    ``from __future__ import annotations`` not even evaluated)."""
    out: set[str] = set()
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name):
            out.add(n.id)
        for field, value in ast.iter_fields(n):
            if field in ("annotation", "returns"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    todo.append(child)
    return out


def module_digest(module: str) -> str:
    """sha256 of a module's normalised source (see the module docstring)."""
    return hashlib.sha256(_normalised(_tree(module)).encode()).hexdigest()


def _top_level(tree: ast.Module) -> dict[str, ast.stmt]:
    out: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node
    return out


def function_digest(module: str, name: str) -> str:
    """sha256 of a top-level function (or class) of ``module`` and of every other
    top-level definition of that module it refers to by name (outside type
    annotations), transitively."""
    defs = _top_level(_tree(module))
    if name not in defs:
        raise ImportError(f"{module} has no top-level {name!r}")
    seen: list[str] = []
    todo = [name]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.append(n)
        todo += [r for r in _references(defs[n]) if r in defs and r not in seen]
    parts = [f"{n}\n{_normalised(defs[n])}" for n in sorted(seen)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _imported_modules(module: str) -> set[str]:
    """Modules ``module`` imports anywhere (also inside functions), absolute names."""
    package = module.rsplit(".", 1)[0] if not _source_path(module).name == "__init__.py" else module
    out: set[str] = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return out


def _is_module(name: str) -> bool:
    """Whether ``name`` is an importable module (not a function or class imported from one)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def private_helpers(module: str, package: str = "soundsim.models", private: bool = True) -> list[str]:
    """The private helper modules (``<package>._*``) ``module`` imports, transitively;
    ``private=False``: every module of ``package`` it imports (a plugin's own package)."""
    tail = r"\._[A-Za-z0-9_]+$" if private else r"(\.[A-Za-z0-9_]+)*$"
    pattern = re.compile(rf"^{re.escape(package)}{tail}")
    found: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        for imp in _imported_modules(m):
            if pattern.match(imp) and imp not in found and _is_module(imp):
                found.add(imp)
                todo.append(imp)
    return sorted(found)


# --------------------------------------------------------------------------- package versions


def _site_packages(env: str, root: Path | None = None) -> list[str] | None:
    from soundsim.envs import MAIN_ENV, venv_python

    if env == MAIN_ENV:
        return None  # this interpreter's own
    py = venv_python(env, root)
    libs = sorted((py.parent.parent / "lib").glob("python*/site-packages"))
    return [str(p) for p in libs] if libs else []


def _pinned_versions(env: str, names: Sequence[str], root: Path | None = None) -> dict[str, str]:
    """Versions pinned for ``env`` in ``envs/<env>.txt`` / ``.nodeps.txt`` (pip) or ``envs/<env>.yaml``
    (conda): what a conda run gets, where no local virtual environment exists."""
    from soundsim.envs import project_root

    folder = (root or project_root()) / "envs"
    pins: dict[str, str] = {}
    for f in (folder / f"{env}.txt", folder / f"{env}.nodeps.txt"):
        if f.is_file():
            for line in f.read_text().splitlines():
                m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
                if m:
                    pins[m.group(1).lower()] = m.group(2)
    y = folder / f"{env}.yaml"
    if y.is_file():
        for m in re.finditer(r"^\s*-\s*([A-Za-z0-9_.\-]+)(?:==|=)([0-9][^\s#]*)", y.read_text(), re.M):
            pins.setdefault(m.group(1).lower(), m.group(2))
    aliases = {"soundfile": "pysoundfile", "soxr": "soxr-python", "essentia": "essentia-tensorflow"}
    out = {}
    for n in names:
        v = pins.get(n.lower()) or pins.get(aliases.get(n.lower(), ""))
        if v:
            out[n] = v
    return out


def env_versions(env: str, names: Sequence[str], root: Path | None = None) -> dict[str, str]:
    """Installed versions of ``names`` in model environment ``env``: this
    interpreter's for the main env, ``.venvs/<env>``'s site-packages (read
    without running it) where that exists, else the versions pinned in
    ``envs/<env>.*`` (a conda run). Packages not found are left out."""
    paths = _site_packages(env, root)
    if paths == []:
        return _pinned_versions(env, names, root)
    out: dict[str, str] = {}
    for n in names:
        try:
            if paths is None:
                out[n] = metadata.version(n)
            else:
                dists = list(metadata.distributions(name=n, path=paths))
                if dists:
                    out[n] = dists[0].version
        except metadata.PackageNotFoundError:
            continue
    return out


def env_distributions(env: str, root: Path | None = None) -> list[str]:
    """``name==version`` of every distribution installed in environment ``env``, sorted: this
    interpreter's for the main env, else read from ``.venvs/<env>``'s site-packages without
    running it (empty when it is not built)."""
    paths = _site_packages(env, root)
    dists = metadata.distributions() if paths is None else metadata.distributions(path=paths)
    return sorted({f"{d.metadata['Name']}=={d.version}" for d in dists})


# --------------------------------------------------------------------------- code versions


def _digest(parts: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def model_code_parts(name: str, root: Path | None = None, cfg: Mapping[str, object] | None = None
                     ) -> dict[str, object]:
    """What :func:`model_code_version` hashes, by name (for logs and debugging). ``cfg``: the
    model's config section; for a model of a kind, the kind module's code is hashed, plus what
    the kind module's ``code_parts(name, cfg, root)`` adds (e.g. the wrapped module's version)."""
    from soundsim import models

    mod = models.get(name, cfg)
    inf = models.info(name, cfg)
    module = mod.__name__
    parts: dict[str, object] = {module: module_digest(module)}
    for helper in private_helpers(module):
        parts[helper] = module_digest(helper)
    plugin = models.plugins().models.get(name) if models.kind_of(cfg) is None else None
    if plugin is not None:  # a plugin package's model: its version and its package's modules it imports
        parts["plugin"] = {"distribution": plugin.distribution, "version": plugin.version}
        for helper in private_helpers(module, module.split(".")[0], private=False):
            if helper != module:
                parts[helper] = module_digest(helper)
    for ref in EXTRACTION_FUNCTIONS:
        m, f = ref.split(":")
        parts[ref] = function_digest(m, f)
    parts["packages"] = env_versions(inf.env, tuple(dict.fromkeys((*DECODE_PACKAGES, *inf.packages))), root)
    if models.kind_of(cfg) is not None and hasattr(mod, "code_parts"):
        parts.update(mod.code_parts(name, cfg, root))
    return parts


def model_code_version(name: str, root: Path | None = None, cfg: Mapping[str, object] | None = None) -> str:
    """A model's code version (see the module docstring); ``cfg`` as :func:`model_code_parts`."""
    return _digest(model_code_parts(name, root, cfg))


def evaluation_code_version() -> str:
    """The code version of processing, search, metrics and evaluation."""
    parts: dict[str, object] = {m: module_digest(m) for m in EVALUATION_MODULES}
    parts["packages"] = env_versions("soundsim", EVALUATION_PACKAGES)
    return _digest(parts)


def report_code_version() -> str:
    """The code version of the tables, statistics, figures and maps (:data:`REPORT_MODULES`)."""
    parts: dict[str, object] = {m: module_digest(m) for m in REPORT_MODULES}
    parts["packages"] = env_versions("soundsim", ("numpy", "scipy", "pandas", "matplotlib", "seaborn", "openTSNE"))
    return _digest(parts)


def git_commit(root: Path | None = None) -> str:
    """``<commit>`` (``<commit>+dirty`` with uncommitted changes) of the soundsim
    checkout, or '' outside a git checkout."""
    from soundsim.envs import project_root

    root = root or project_root()
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def describe(parts: Mapping[str, object]) -> str:
    """One line per part, for a log."""
    return "\n".join(f"  {k}: {v}" for k, v in parts.items())
