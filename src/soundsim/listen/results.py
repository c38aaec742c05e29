"""Read-only access to a collection's workflow results for the listening page.

Everything comes from ``results/<collection>/`` (paths: :class:`soundsim.layout.Layout`):

* ``manifest.csv``: the clips (fname -> audio path, labels); the only files the
  page will ever serve are the paths listed there, looked up by fname;
* ``metrics/<model>/<variation>/<setting>/rankings.h5``: one *system* per
  folder that has a rankings file (top-K results of every query, see
  :func:`soundsim.store.read_rankings`), with its ``summary.json`` (MAP@15);
* ``tables/best_settings.csv``: each model's best setting (the default systems).

A system is named by its id ``<model>/<variation>/<setting>``
(:func:`soundsim.layout.parse_system_id`). The page shows whatever has been
evaluated, so it looks for the rankings files that are there
(:func:`soundsim.layout.find_settings`).
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundsim import layout as L
from soundsim import metrics as M
from soundsim.errors import SoundsimError

log = logging.getLogger(__name__)

#: results shown per system, and the cutoff of the AP shown beside them
TOP_N = 15
MAX_SYSTEMS = 4
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

#: audio content types by the manifest's ``format`` column (libsndfile major format)
AUDIO_TYPES = {
    "WAV": "audio/wav", "WAVEX": "audio/wav", "RF64": "audio/wav", "W64": "audio/wav",
    "FLAC": "audio/flac", "OGG": "audio/ogg", "MP3": "audio/mpeg", "MPEG": "audio/mpeg",
    "AIFF": "audio/aiff", "AU": "audio/basic", "CAF": "audio/x-caf",
}
_EXT_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg",
              ".aif": "audio/aiff", ".aiff": "audio/aiff", ".opus": "audio/ogg"}


class ResultsMissing(SoundsimError):
    """The workflow's results needed by the page are not there; ``hint`` says what to run."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class BadRequest(SoundsimError):
    """A page parameter is invalid (unknown class, clip or system, bad number); -> HTTP 400."""


@dataclass(frozen=True)
class System:
    """One evaluated setting of one model variation."""

    model: str
    variation: str
    setting: str
    aggregation: str
    pca: str
    search: str

    @property
    def id(self) -> str:
        return f"{self.model}/{self.variation}/{self.setting}"

    @property
    def label(self) -> str:
        return f"{self.model} / {self.variation} / {self.aggregation}, PCA {self.pca}, {self.search.upper()}"

    def as_dict(self) -> dict[str, str]:
        return {"system": self.id, "model": self.model, "variation": self.variation, "setting": self.setting,
                "aggregation": self.aggregation, "pca": self.pca, "search": self.search}


@dataclass
class Ranking:
    """One system's top results for one query."""

    system: System
    fnames: list[str]
    scores: list[float]
    relevant: list[bool]
    ap: float  # AP@TOP_N for the query's class (NaN when the class has a single evaluated clip)
    score_meaning: str
    n_class: int  # evaluated clips carrying the class (query included)


@dataclass
class _RankCache:
    mtime: float
    fnames: list[str]
    row_of: dict[str, int]
    indices: np.ndarray
    scores: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    label_counts: dict[str, int] = field(default_factory=dict)  # evaluated clips per label


def parse_system_id(sid: str) -> tuple[str, str, str]:
    """``model/variation/setting`` -> its three parts (:func:`soundsim.layout.parse_system_id`,
    model and variation plain names); :class:`BadRequest` when malformed."""
    try:
        model, variation, setting = L.parse_system_id(sid)
    except L.LayoutError as e:
        raise BadRequest(str(e)) from None
    if not (_NAME_RE.match(model) and _NAME_RE.match(variation)):
        raise BadRequest(f"system {sid!r} is not of the form <model>/<variation>/{L.SETTING_PATTERN}")
    return model, variation, setting


class Results:
    """A collection's results, read lazily; rankings files are cached (re-read when they change)."""

    def __init__(self, results_dir: str | Path, collection: str) -> None:
        if not _NAME_RE.match(collection):
            raise BadRequest(f"collection name {collection!r} is not a plain folder name")
        self.results_dir = Path(results_dir)
        self.collection = collection
        self.layout = L.Layout(results_dir, collection)
        self.dir = self.layout.dir
        self._lock = threading.Lock()
        self._manifest: tuple[float, pd.DataFrame, dict[str, int], dict[str, list[str]]] | None = None
        self._rank_cache: dict[str, _RankCache] = {}

    # ------------------------------------------------------------------ paths
    @property
    def manifest_path(self) -> Path:
        return self.layout.manifest

    @property
    def metrics_dir(self) -> Path:
        return self.layout.metrics_dir

    @property
    def best_settings_path(self) -> Path:
        return self.layout.table("best_settings")

    @property
    def ratings_path(self) -> Path:
        return self.layout.listening_db

    # ------------------------------------------------------------------ manifest
    def manifest(self) -> pd.DataFrame:
        """The manifest (fname, path, format, labels as lists), cached until the file changes."""
        p = self.manifest_path
        if not p.is_file():
            raise ResultsMissing(
                f"{p} not found: the collection {self.collection!r} has no results yet (rule manifest writes "
                "the manifest; rule evaluate the rankings this page shows).",
                "snakemake --cores all",
            )
        mtime = p.stat().st_mtime
        with self._lock:
            if self._manifest is None or self._manifest[0] != mtime:
                df = pd.read_csv(p, dtype={"fname": str, "labels": str, "path": str, "format": str},
                                 keep_default_na=False)
                missing = [c for c in ("fname", "path", "labels") if c not in df.columns]
                if missing:
                    raise ResultsMissing(f"{p} is not a soundsim manifest (no column {', '.join(missing)}).",
                                         "snakemake --cores 1 --forcerun manifest")
                df["labels"] = df["labels"].map(lambda s: [x for x in s.split(",") if x])
                self._manifest = (mtime, df, {f: i for i, f in enumerate(df["fname"])},
                                  dict(zip(df["fname"], df["labels"], strict=True)))
                self._rank_cache.clear()  # label counts depend on the manifest
            return self._manifest[1]

    def clip(self, fname: str) -> pd.Series | None:
        """The manifest row of ``fname`` (exact match), or None."""
        df = self.manifest()
        assert self._manifest is not None
        i = self._manifest[2].get(fname)
        return None if i is None else df.iloc[i]

    def labels_of(self, fname: str) -> list[str]:
        self.manifest()
        assert self._manifest is not None
        return list(self._manifest[3].get(fname, []))

    def classes(self) -> list[tuple[str, int]]:
        """(label, number of clips) of every label in the manifest, sorted by label."""
        counts: dict[str, int] = {}
        for labs in self.manifest()["labels"]:
            for lab in labs:
                counts[lab] = counts.get(lab, 0) + 1
        return sorted(counts.items())

    def clips_of(self, label: str) -> list[str]:
        df = self.manifest()
        return [f for f, labs in zip(df["fname"], df["labels"], strict=True) if label in labs]

    def audio_file(self, fname: str) -> tuple[Path, str] | None:
        """(path, content type) of a clip the manifest lists, or None. Only exact fnames of
        the manifest are looked up; the path is the manifest's, never one built from the request."""
        row = self.clip(fname)
        if row is None:
            return None
        path = Path(str(row["path"]))
        if not path.is_absolute():
            path = Path.cwd() / path
        if not path.is_file():
            return None
        ctype = AUDIO_TYPES.get(str(row.get("format", "")).upper()) or _EXT_TYPES.get(path.suffix.lower(), "audio/wav")
        return path, ctype

    # ------------------------------------------------------------------ systems
    def systems(self) -> list[System]:
        """Every evaluated setting that has a rankings file, sorted by model, variation, setting."""
        out = []
        for f in self.layout.find_settings("rankings"):
            if _NAME_RE.match(f.model) and _NAME_RE.match(f.variation):
                st = L.parse_setting(f.setting)
                out.append(System(f.model, f.variation, f.setting, st.aggregation, st.pca, st.search))
        return out

    def require_systems(self) -> list[System]:
        self.manifest()
        systems = self.systems()
        if not systems:
            raise ResultsMissing(
                f"no rankings under {self.metrics_dir}: no model has been evaluated on {self.collection!r} yet.",
                "snakemake --cores all   # rule evaluate writes metrics/<model>/<variation>/<setting>/rankings.h5",
            )
        return systems

    def system(self, sid: str) -> System:
        model, variation, setting = parse_system_id(sid)
        for s in self.systems():
            if s.id == sid:
                return s
        raise BadRequest(f"unknown system {sid!r}: no rankings.h5 under {self.metrics_dir}/{model}/{variation}/{setting}")

    def default_systems(self) -> list[System]:
        """Each model's best setting (tables/best_settings.csv), at most :data:`MAX_SYSTEMS`;
        without that table, each model's first evaluated setting."""
        available = {s.id: s for s in self.systems()}
        out: list[System] = []
        if self.best_settings_path.is_file():
            best = pd.read_csv(self.best_settings_path, dtype=str, keep_default_na=False)
            if {"model", "variation", "setting"} <= set(best.columns):
                for r in best.itertuples(index=False):
                    s = available.get(f"{r.model}/{r.variation}/{r.setting}")
                    if s is not None:
                        out.append(s)
        if not out:
            seen = set()
            for s in available.values():
                if s.model not in seen:
                    seen.add(s.model)
                    out.append(s)
        return out[:MAX_SYSTEMS]

    def files(self, system: System) -> L.SettingFiles:
        """The files of ``system``'s setting folder."""
        return self.layout.setting_files(system.model, system.variation, system.setting)

    def summary(self, system: System) -> L.Summary | None:
        """The system's summary.json (:func:`soundsim.layout.read_summary`), or None when it is
        missing or malformed (logged: the page still shows the rankings)."""
        try:
            return L.read_summary(self.files(system).summary)
        except L.SummaryError as e:
            log.warning("%s", e)
            return None

    def map_at(self, system: System, n: int = TOP_N) -> float:
        s = self.summary(system)
        return s.macro.get(f"map@{n}", math.nan) if s is not None else math.nan

    # ------------------------------------------------------------------ rankings
    def _rankings(self, system: System) -> _RankCache:
        from soundsim.store import read_rankings

        p = self.files(system).rankings
        mtime = p.stat().st_mtime
        with self._lock:
            c = self._rank_cache.get(system.id)
            if c is None or c.mtime != mtime:
                r = read_rankings(p)
                assert self._manifest is not None
                counts: dict[str, int] = {}
                for f in r.fnames:
                    for lab in self._manifest[3].get(f, []):
                        counts[lab] = counts.get(lab, 0) + 1
                c = _RankCache(mtime, r.fnames, {f: i for i, f in enumerate(r.fnames)}, r.indices, r.scores,
                               r.attrs, counts)
                self._rank_cache[system.id] = c
            return c

    def evaluated(self, system: System) -> dict[str, int]:
        self.manifest()
        return self._rankings(system).row_of

    def ranking(self, system: System, query: str, label: str, n: int = TOP_N) -> Ranking:
        """Top ``n`` results of ``query`` under ``system``, relevance for ``label`` (the result
        carries it) and the query's AP@n for that label (:func:`soundsim.metrics.average_precision_at_n`,
        denominator min(n, n_L) with n_L the evaluated clips carrying the label, as the evaluator)."""
        self.manifest()
        c = self._rankings(system)
        q = c.row_of.get(query)
        if q is None:
            raise BadRequest(f"clip {query!r} was not evaluated by system {system.id!r}")
        idx = c.indices[q, :n]
        names = [c.fnames[int(i)] for i in idx]
        labels_of = {f: self.labels_of(f) for f in names}
        rel = np.array([label in labels_of[f] for f in names], dtype=bool)
        n_l = c.label_counts.get(label, 0)
        if n_l >= 2 and rel.size:
            ap = float(M.average_precision_at_n(rel[None, :], n, min(n, n_l))[0])
        else:
            ap = math.nan
        return Ranking(system, names, [float(s) for s in c.scores[q, :n]], rel.tolist(), ap,
                       str(c.attrs.get("score", "")), n_l)

    # ------------------------------------------------------------------ drawing a query
    def draw_query(self, label: str, seed: int, systems: list[System]) -> str:
        """A clip of ``label`` that every system evaluated, drawn with ``seed`` (same seed, same clip)."""
        pool = self.clips_of(label)
        for s in systems:
            ev = self.evaluated(s)
            pool = [f for f in pool if f in ev]
        if not pool:
            raise BadRequest(f"no clip of class {label!r} was evaluated by all chosen systems")
        return random.Random(f"{self.collection}:{label}:{seed}").choice(sorted(pool))


def shown_order(systems: list[System], blind: bool, seed: int, query: str) -> list[System]:
    """The order the systems are shown in: as chosen, or shuffled (seeded by seed and query) when blind."""
    if not blind:
        return list(systems)
    out = list(systems)
    random.Random(f"blind:{seed}:{query}").shuffle(out)
    return out
