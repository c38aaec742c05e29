"""Optional dependencies: which pip extra of soundsim installs which module.

The core (``pip install soundsim``: evaluation, statistics, tables, the Python
API, the CLI) needs none of these. A command that needs one and does not find
it stops with one message naming what to install and exit status 2, e.g.::

    soundsim extract: model aisfx needs aisfx, torch, essentia (not installed); install them with:
    pip install 'soundsim[torch,essentia]' && pip install --no-deps aisfx==0.1.2

The CLI (:func:`soundsim.cli.main`) turns any :class:`ModuleNotFoundError`
of a module outside soundsim into :class:`MissingDependency`
(:func:`from_import_error`); ``soundsim extract`` checks a model's packages
before it starts (:func:`missing_modules`), so that it writes nothing.
:data:`EXTRA_OF` must name only extras that ``pyproject.toml`` declares
(``tests/test_packaging.py`` checks it).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence

from soundsim.errors import SoundsimError

#: top-level module -> the soundsim extra that installs it
EXTRA_OF: dict[str, str] = {
    "torch": "torch",
    "torchaudio": "torch",
    "torchvision": "torch",
    "essentia": "essentia",
    "snakemake": "workflow",
    "matplotlib": "workflow",
    "seaborn": "workflow",
    "pygments": "workflow",
    "openTSNE": "workflow",
    "flask": "listen",
    "werkzeug": "listen",
    "jinja2": "listen",
    "faiss": "service",
    "pytest": "test",
    "hypothesis": "test",
    "selenium": "test",
}

#: modules no extra installs (their own pins do not install on Python 3.11) -> the command that does
SEPARATE: dict[str, str] = {
    "aisfx": "pip install --no-deps aisfx==0.1.2",
}


class MissingDependency(SoundsimError):
    """``what`` (e.g. ``model aisfx``; empty: the command) needs ``modules``,
    which are not installed; the message says how to install them (``hint``,
    default :func:`install_hint`)."""

    def __init__(self, modules: Sequence[str], what: str = "", hint: str | None = None) -> None:
        self.modules = list(dict.fromkeys(modules))
        self.what = what
        self.hint = hint if hint is not None else install_hint(self.modules)
        them = "it" if len(self.modules) == 1 else "them"
        needs = f"{what} needs" if what else "needs"
        super().__init__(f"{needs} {', '.join(self.modules)} (not installed); install {them} with: {self.hint}")


def top_module(name: str) -> str:
    """``matplotlib.pyplot`` -> ``matplotlib``."""
    return name.split(".", 1)[0]


def install_hint(modules: Iterable[str]) -> str:
    """The command(s) that install ``modules``: one ``pip install 'soundsim[a,b]'``
    for those of :data:`EXTRA_OF` (extras in first-seen order), then the
    commands of :data:`SEPARATE`, then ``pip install <module>`` for the rest,
    joined by `` && ``."""
    mods = [top_module(m) for m in modules]
    extras = list(dict.fromkeys(EXTRA_OF[m] for m in mods if m in EXTRA_OF))
    parts = [f"pip install 'soundsim[{','.join(extras)}]'"] if extras else []
    parts += list(dict.fromkeys(SEPARATE[m] for m in mods if m in SEPARATE))
    others = [m for m in dict.fromkeys(mods) if m not in EXTRA_OF and m not in SEPARATE]
    if others:
        parts.append(f"pip install {' '.join(others)}")
    return " && ".join(parts)


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path; a module blocked
    with ``sys.modules[name] = None`` counts as not installed)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(modules: Iterable[str]) -> list[str]:
    """Those of ``modules`` that are optional (:data:`EXTRA_OF`, :data:`SEPARATE`)
    and not installed. Other names (distribution names, a model environment's
    own packages) are not checked: importing them says more."""
    known = [m for m in dict.fromkeys(modules) if m in EXTRA_OF or m in SEPARATE]
    return [m for m in known if not is_installed(m)]


def from_import_error(error: ImportError, what: str = "") -> MissingDependency | None:
    """The :class:`MissingDependency` of a failed import of a module outside
    soundsim (``error.name``), or None when it is not one (a missing soundsim
    module is a broken install, not an optional dependency)."""
    name = getattr(error, "name", None)
    if not isinstance(error, ModuleNotFoundError) or not name or top_module(name) == "soundsim":
        return None
    return MissingDependency([top_module(name)], what)
