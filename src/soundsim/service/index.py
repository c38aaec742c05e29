"""Build a similarity index from the workflow's results, and answer "which sounds are like this?".

:func:`build_index` takes one *system* (model, variation, setting: aggregation,
PCA, search) of an evaluated collection, by default the best row (MAP@15) of
``tables/best_settings.csv``, and writes a self-contained index directory
(:mod:`soundsim.service.store`): the processing fitted on the collection
(:class:`soundsim.process.FittedProcessing`), the processed vectors ``Z``
(exactly the evaluation's), the clips' fnames, labels and paths, and a faiss
index (:mod:`soundsim.ann`).

:class:`SimilarityIndex` opens it and answers queries:

* by fname (a sound already in the index, itself excluded): the query vector is
  its row of ``Z``; with ``flat`` the answer is the evaluation's top-k
  (``rankings.h5``) for that setting;
* by audio: the file is embedded by the index's model in that model's
  environment (:class:`soundsim.service.embed.EmbedClient`, loaded once for
  many files), processed with the stored processing and searched;
* by vector: a processed vector (k,) or (n, k).

Each result has the ``fname``, its ``labels``, ``score`` (the search's own
score: inner product for MIPS, cosine for MCSS, Euclidean distance for NNS)
and ``similarity``: the cosine of the two processed vectors, whatever the
search (1 for identical vectors; the quantity Freesound thresholds at 0.7).
``min_similarity`` drops results below it (default: the index type's, e.g.
``freesound``: 0.7; otherwise none).

:func:`add_sounds` and :func:`remove_sounds` update an index atomically with
its stored (never refitted) processing.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundsim import ann, audio
from soundsim import layout as L
from soundsim.errors import AudioError, CollectionError, ConfigError, SoundsimError, first_few
from soundsim.fileutil import exclusive_lock
from soundsim.service import store

log = logging.getLogger(__name__)

DEFAULT_K = 15
#: the end of the message a second writer gets (soundsim.fileutil.LockedError)
_WRITER_ADVICE = "Queries (soundsim query, soundsim serve) keep answering from the current generation meanwhile"


class QueryError(SoundsimError):
    """A query cannot be answered as asked (unknown fname, bad k, no model to embed with)."""


class StaleIndexError(QueryError):
    """The model's code or weights changed since the index was built: new audio would be
    embedded differently from the indexed sounds (rebuild the index)."""


# --------------------------------------------------------------------------- choosing a system


@dataclass(frozen=True)
class System:
    model: str
    variation: str
    setting: L.Setting

    @property
    def id(self) -> str:
        return f"{self.model}/{self.variation}/{self.setting.name}"


def _best_row(df: pd.DataFrame, what: str) -> pd.Series:
    """The best row by MAP@15 with the tables' tie rule (:data:`soundsim.tables.TIE_RULE`), so
    ``--system MODEL`` picks the setting ``best_settings.csv`` names for that model."""
    from soundsim.tables import _best_index

    if df.empty:
        raise ConfigError(f"no evaluated setting matches {what}")
    return df.loc[_best_index(df, "map@15")]


def resolve_system(layout: L.Layout, system: str | None = None) -> System:
    """``MODEL/VARIATION/SETTING`` as given; ``MODEL`` or ``MODEL/VARIATION``: its best setting
    by MAP@15 (``tables/all_settings.csv``); None: the best row of ``tables/best_settings.csv``.
    Clear errors when the tables are missing or the system was not evaluated."""
    parts = [p for p in (system or "").split("/") if p]
    if len(parts) == 3:
        L.parse_setting(parts[2])
        files = layout.setting_files(*parts, )
        if not files.summary.is_file():
            raise ConfigError(f"system {system!r} was not evaluated: {files.summary} is missing "
                              f"(run the workflow, or see tables/all_settings.csv for the evaluated systems)")
        return System(parts[0], parts[1], L.parse_setting(parts[2]))
    if len(parts) > 3:
        raise ConfigError(f"--system {system!r}: expected MODEL, MODEL/VARIATION or MODEL/VARIATION/SETTING")
    key = "best_settings" if not parts else "all_settings"
    path = layout.table(key)
    if not path.is_file():
        raise ConfigError(f"{path} is missing: run the workflow first (`snakemake --cores all`), "
                          f"or name the system with --system MODEL/VARIATION/SETTING")
    df = pd.read_csv(path)
    if parts:
        df = df[df["model"] == parts[0]]
        if len(parts) == 2:
            df = df[df["variation"] == parts[1]]
    row = _best_row(df, f"{system!r} in {path}" if system else str(path))
    return System(str(row["model"]), str(row["variation"]), L.parse_setting(str(row["setting"])))


# --------------------------------------------------------------------------- building


def _items(fnames: Sequence[str], labels: Sequence[Sequence[str]], paths: Sequence[str], start: int = 0
           ) -> pd.DataFrame:
    n = len(fnames)
    return pd.DataFrame({
        "row": np.arange(start, start + n, dtype=np.int64), "fname": list(fnames),
        "labels": [",".join(x) for x in labels], "path": list(paths),
        "removed": np.zeros(n, dtype=bool), "added": [store.now_iso()] * n,
    })


def build_index(
    config: Mapping[str, Any],
    out: str | Path,
    system: str | None = None,
    type: str = "flat",
    params: Mapping[str, Any] | None = None,
) -> Path:
    """Build the index of one system (:func:`resolve_system`) of the collection ``config``
    describes into ``out`` (:func:`build_index_from`). Returns the generation's folder."""
    layout = L.Layout.from_config(config)
    sysm = resolve_system(layout, system)
    emb_path = layout.embeddings(sysm.model, sysm.variation)
    if not emb_path.is_file():
        raise ConfigError(f"{emb_path} is missing: run the workflow for {sysm.model}/{sysm.variation} first")
    return build_index_from(
        emb_path, layout.manifest, sysm.setting.name, out, type, params,
        seed=int(config.get("evaluation", {}).get("seed", 0)),
        model_cfg=dict(config.get("models", {}).get(sysm.model) or {}),
        summary=layout.setting_files(sysm.model, sysm.variation, sysm.setting.name).summary,
        collection=layout.collection,
    )


def build_index_from(
    embeddings: str | Path,
    manifest_csv: str | Path,
    setting: str,
    out: str | Path,
    type: str = "flat",
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    model_cfg: Mapping[str, Any] | None = None,
    summary: str | Path | None = None,
    collection: str = "",
) -> Path:
    """Build an index directory (:mod:`soundsim.service.store`) from an embeddings file and a
    manifest (fname, path, labels): the clips both list (as the evaluation does), processed
    with ``setting`` (``agg-<a>_pca-<p>_search-<s>``) exactly as the evaluation processes them
    (:func:`soundsim.process.fit_processing`, seed ``seed``), indexed as ``type``. ``out``: a new
    (or empty) directory, or an existing index, replaced atomically by a new generation.
    ``summary``: the setting's ``summary.json``, whose exact-search metrics go into the manifest."""
    from soundsim import __version__
    from soundsim.evaluate import align
    from soundsim.manifest import read_manifest
    from soundsim.process import fit_processing, processing_order
    from soundsim.provenance import evaluation_code_version, git_commit
    from soundsim.store import read_embeddings

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / store.CURRENT).is_file())):
        raise ConfigError(f"{out}: exists and is not a soundsim index; choose a new folder for --out")
    st = L.parse_setting(setting)
    emb = read_embeddings(embeddings)
    man = read_manifest(manifest_csv)
    sub, labels, _ = align(emb, man[["fname", "labels"]], restrict=True)
    model, variation = str(sub.attrs.get("model", "")), str(sub.attrs.get("variation", ""))
    system_id = f"{model}/{variation}/{st.name}"
    log.info("processing %d clips of %s (%s)", sub.n_clips, system_id, processing_order(sub.attrs))
    Z, fitted = fit_processing(sub.embeddings, sub.offsets, st.aggregation, st.pca, processing_order(sub.attrs),
                               seed, sub.fnames)
    spec = ann.make_spec(type, st.search, Z.shape[0], Z.shape[1], params)
    log.info("building a %s index of %d x %d (%s)", spec.type, *Z.shape, json.dumps(spec.params))
    vi = ann.VectorIndex.build(Z, spec)
    path_of = dict(zip(man["fname"], man["path"], strict=True))
    items = _items(sub.fnames, labels, [str(path_of.get(f, "")) for f in sub.fnames])
    model_cfg = dict(model_cfg or {})
    evaluation = None
    if summary is not None:
        try:
            sm = L.read_summary(summary)
            evaluation = {k: sm.macro.get(k) for k in ("map@15", "map@150", "mr1")}
        except (L.LayoutError, OSError):
            log.info("no summary of %s at %s: the index records no evaluation", system_id, summary)
    weights = sub.attrs.get("weights")
    created = store.now_iso()
    manifest = {
        "format": store.FORMAT, "system": system_id, "model": model, "variation": variation,
        "setting": st.name, "aggregation": st.aggregation, "pca": str(st.pca), "search": st.search,
        "processing": fitted.order, "weights": None if weights in (None, "bundled") else str(weights),
        "weights_fingerprint": sub.attrs.get("weights_fingerprint"), "model_code_version": sub.attrs.get("code_version"),
        "evaluation_code_version": evaluation_code_version(), "soundsim_version": __version__,
        "soundsim_commit": git_commit(), "options": json.loads(sub.attrs.get("options") or "{}"),
        "env": sub.attrs.get("env") or "soundsim", "model_config": model_cfg if model_cfg.get("kind") else None,
        "level": sub.attrs.get("level"), "sample_rate": sub.attrs.get("sample_rate"), "embeddings": str(embeddings),
        "collection": collection, "index": spec.to_dict(), "created": created, "updated": created,
        "counts": {"items": int(Z.shape[0]), "active": int(Z.shape[0]), "removed": 0,
                   "dim_in": int(sub.dim), "dim": int(Z.shape[1])},
        "memory_bytes": vi.memory_bytes(), "seed": seed, "evaluation": evaluation,
    }
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out / "writer", "the index", _WRITER_ADVICE):
        store.clean_leftovers(out)
        return store.write_generation(out, manifest, fitted, Z, items, vi.save)


# --------------------------------------------------------------------------- querying


@dataclass
class Hit:
    fname: str
    similarity: float
    score: float
    labels: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"fname": self.fname, "similarity": self.similarity, "score": self.score, "labels": self.labels}


@dataclass
class Answer:
    """One query's results (best first), or the error that kept it from being answered."""

    query: str
    results: list[Hit] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"query": self.query, "results": [h.as_dict() for h in self.results]}
        if self.error is not None:
            d["error"] = self.error
        return d


def check_k(k: Any, n: int) -> int:
    """``k`` as a positive integer, capped at the number of other sounds."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise QueryError(f"k must be a positive integer, got {k!r}")
    return int(min(int(k), max(n, 1)))


class SimilarityIndex:
    """An opened index directory (module docstring). ``mmap``: memory-map the faiss index."""

    def __init__(self, root: str | Path, mmap: bool = False) -> None:
        self.root = Path(root)
        gen = store.open_generation(self.root)
        self.generation = gen
        self.manifest = gen.manifest
        self.processing = gen.processing
        self.items = gen.items
        self.spec = ann.IndexSpec.from_dict(gen.manifest["index"])
        self.vi = ann.VectorIndex.load(gen.path / "faiss.index", self.spec, gen.vectors, mmap=mmap)
        if self.vi.n != gen.vectors.shape[0]:
            raise store.IndexDirError(f"{gen.path}: faiss.index holds {self.vi.n} vectors, vectors.npy "
                                      f"{gen.vectors.shape[0]}")
        active = self.items[~self.items["removed"]]
        self.row_of = dict(zip(active["fname"], active["row"].astype(int), strict=True))
        self.removed = self.items.loc[self.items["removed"], "row"].to_numpy(np.int64)
        self._fnames = self.items["fname"].tolist()
        self._labels = [[x for x in s.split(",") if x] for s in self.items["labels"]]
        self._client: Any = None

    # --- facts
    @property
    def n_active(self) -> int:
        return len(self.row_of)

    def info(self) -> dict[str, Any]:
        """What the index holds (``soundsim index info``, ``GET /health``)."""
        m = self.manifest
        return {"path": str(self.root), "generation": self.generation.name, "system": m["system"],
                "model": m["model"], "variation": m["variation"], "setting": m["setting"],
                "index": m["index"], "counts": m["counts"], "created": m["created"], "updated": m["updated"],
                "weights_fingerprint": m.get("weights_fingerprint"),
                "model_code_version": m.get("model_code_version"), "memory_bytes": m.get("memory_bytes"),
                "collection": m.get("collection"), "evaluation": m.get("evaluation"),
                "min_similarity": self.default_min_similarity()}

    def default_min_similarity(self) -> float | None:
        v = self.spec.params.get("min_similarity")
        return None if v is None else float(v)

    # --- searching
    def _hits(self, q: np.ndarray, ids: np.ndarray, keys: np.ndarray, min_sim: float | None) -> list[Hit]:
        ok = ids >= 0
        ids, keys = ids[ok], keys[ok]
        if ids.size == 0:
            return []
        sims = np.clip(ann.cosine_to(self.vi.Z64, q, ids), -1.0, 1.0)  # rounding may pass 1 by an ulp
        scores = ann.score_of(keys, self.spec.search, float(np.dot(q, q)))
        hits = [Hit(self._fnames[i], float(s), float(sc), self._labels[i])
                for i, s, sc in zip(ids, sims, scores, strict=True)]
        if min_sim is not None:
            hits = [h for h in hits if h.similarity >= min_sim]
        return hits

    def _min(self, min_similarity: float | None) -> float | None:
        return self.default_min_similarity() if min_similarity is None else float(min_similarity)

    def similar_to_vectors(self, Q: np.ndarray, k: int = DEFAULT_K, min_similarity: float | None = None,
                           names: Sequence[str] | None = None) -> list[Answer]:
        """Answers for processed query vectors ``Q`` (n, dim) (or (dim,))."""
        Q = np.atleast_2d(np.asarray(Q, dtype=np.float64))
        if Q.shape[1] != self.vi.Z64.shape[1]:
            raise QueryError(f"query vectors have dimension {Q.shape[1]}, the index {self.vi.Z64.shape[1]}")
        k = check_k(k, self.n_active)
        ids, keys = self.vi.search(Q, k, exclude=self.removed if self.removed.size else None)
        names = list(names) if names is not None else [f"#{i}" for i in range(len(Q))]
        return [Answer(nm, self._hits(q, i, kk, self._min(min_similarity)))
                for nm, q, i, kk in zip(names, Q, ids, keys, strict=True)]

    def similar_to_fname(self, fname: str, k: int = DEFAULT_K, min_similarity: float | None = None) -> Answer:
        """Answer for a sound of the index, itself excluded; :class:`QueryError` for an unknown fname."""
        row = self.row_of.get(str(fname))
        if row is None:
            raise QueryError(f"unknown fname {fname!r}: not in the index {self.root} "
                             f"({self.n_active} sounds; `soundsim index info {self.root}`)")
        k = check_k(k, self.n_active - 1)
        q = np.asarray(self.vi.Z64[row], dtype=np.float64)
        exclude = np.concatenate([self.removed, [row]]).astype(np.int64)
        ids, keys = self.vi.search(q[None, :], k, exclude=exclude)
        return Answer(str(fname), self._hits(q, ids[0], keys[0], self._min(min_similarity)))

    # --- audio
    def embedder(self) -> Any:
        """The model's worker (started on first use, then kept)."""
        if self._client is None:
            from soundsim.service.embed import EmbedClient, spec_of

            check_can_embed(self.manifest, self.root)
            self._client = EmbedClient(spec_of(self.manifest))
        return self._client

    def embed_audio(self, path: str | Path) -> np.ndarray:
        """The processed vector (dim,) of one audio file; :class:`AudioError` naming it."""
        frames = self.embedder().embed(path)
        try:
            return self.processing.transform([frames], [str(path)])[0]
        except SoundsimError as e:
            raise AudioError(str(path), str(e)) from e

    def similar_to_audio(self, paths: Iterable[str | Path], k: int = DEFAULT_K,
                         min_similarity: float | None = None) -> list[Answer]:
        """One answer per file; a file that cannot be embedded gets its error, the others go on."""
        out = []
        for p in paths:
            try:
                q = self.embed_audio(p)
            except AudioError as e:
                out.append(Answer(str(p), error=str(e)))
                continue
            out.append(self.similar_to_vectors(q, k, min_similarity, [str(p)])[0])
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> SimilarityIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_can_embed(manifest: Mapping[str, Any], root: Path) -> None:
    """:class:`QueryError` unless new audio can be embedded for this index: not for precomputed
    embeddings (:func:`check_has_model`), and only with the model's code and weights unchanged
    (:func:`check_model_unchanged`)."""
    check_has_model(manifest, root)
    check_model_unchanged(manifest, root)


def check_has_model(manifest: Mapping[str, Any], root: Path) -> None:
    """:class:`QueryError` for an index of precomputed embeddings: no model to embed new audio with."""
    if (manifest.get("model_config") or {}).get("kind") == "precomputed":
        raise QueryError(f"the index {root} holds precomputed embeddings ({manifest['model']}): soundsim cannot "
                         f"embed new audio for it; query a sound of the index by its fname")


def check_model_unchanged(manifest: Mapping[str, Any], root: Path) -> None:
    """Refuse to embed new audio when the model's code or weights are no longer those the index
    was built with (the new vectors would not be comparable with the stored ones): the model
    code version (:func:`soundsim.provenance.model_code_version`) and the weights fingerprint
    must equal the manifest's."""
    from soundsim.fingerprint import weights_fingerprint
    from soundsim.provenance import model_code_version

    name = str(manifest["model"])
    problems = []
    stored_code = manifest.get("model_code_version")
    if stored_code:
        now = model_code_version(name, cfg=manifest.get("model_config") or None)
        if now != stored_code:
            problems.append(f"the code of model {name} changed ({stored_code} when built, {now} now)")
    stored_w = manifest.get("weights_fingerprint")
    if stored_w and stored_w != "bundled":
        w = manifest.get("weights")
        now_w = weights_fingerprint(w) if w and Path(w).exists() else "missing"
        if now_w != stored_w:
            problems.append(f"the weights {w} changed or are missing ({stored_w} when built, {now_w} now)")
    if problems:
        raise StaleIndexError(f"{root}: cannot embed new audio: {'; '.join(problems)}; the new vectors would not be "
                         f"comparable with the indexed ones. Re-run the workflow and rebuild the index "
                         f"(soundsim index --out {root})")


# --------------------------------------------------------------------------- updating


def _read_additions(manifest_csv: str | Path) -> pd.DataFrame:
    """``fname,path[,labels]`` rows of a CSV (labels comma-separated in one cell)."""
    p = Path(manifest_csv)
    if not p.is_file():
        raise CollectionError(f"{p}: no such file")
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = [c for c in ("fname", "path") if c not in df.columns]
    if missing:
        raise CollectionError(f"{p}: missing column(s) {', '.join(missing)} (expected fname,path[,labels])")
    if "labels" not in df.columns:
        df["labels"] = ""
    base = p.parent
    df["path"] = [str(x if Path(x).is_absolute() else base / x) for x in df["path"]]
    return df[["fname", "path", "labels"]]


def additions(audio: Sequence[str | Path] = (), manifest_csv: str | Path | None = None) -> pd.DataFrame:
    """The sounds to add: files (fname = the file's stem, no labels) and/or a CSV."""
    rows = [{"fname": Path(a).stem, "path": str(Path(a).resolve()), "labels": ""} for a in audio]
    df = pd.DataFrame(rows, columns=["fname", "path", "labels"])
    if manifest_csv is not None:
        df = pd.concat([df, _read_additions(manifest_csv)], ignore_index=True)
    if df.empty:
        raise QueryError("nothing to add: give --audio FILE... or --manifest CSV")
    dup = df["fname"][df["fname"].duplicated()].tolist()
    if dup:
        raise QueryError(f"{len(dup)} fname(s) given twice: {first_few(dup, quote=True)}")
    return df


def add_sounds(root: str | Path, new: pd.DataFrame, skip_bad: bool = False, progress: bool = False) -> dict[str, Any]:
    """Embed ``new`` (fname, path, labels) with the index's model, process them with the stored
    processing and append them (a new generation, atomically). A fname already active in the
    index is refused. A file that cannot be embedded stops the update, naming it, before
    anything is written (``skip_bad``: it is reported and left out); every header is read
    first (:func:`soundsim.audio.probe`), so an unreadable file stops it before any embedding.
    Returns counts and the skipped files."""
    from tqdm import tqdm

    root = Path(root)
    with exclusive_lock(root / "writer", "the index", _WRITER_ADVICE):
        store.clean_leftovers(root)
        with SimilarityIndex(root) as idx:
            taken = sorted(set(new["fname"]) & set(idx.row_of))
            if taken:
                raise QueryError(f"{len(taken)} fname(s) are already in the index {root}: "
                                 f"{first_few(taken, quote=True)} (remove them first to replace them)")
            vecs, keep, skipped = [], [], []
            if not skip_bad:  # unreadable headers stop the update before any file is embedded
                for p in new["path"]:
                    audio.probe(p)
            for i, r in tqdm(list(new.iterrows()), desc="embedding", disable=not progress, unit="file"):
                try:
                    vecs.append(idx.embed_audio(r["path"]))
                    keep.append(i)
                except AudioError as e:
                    if not skip_bad:
                        raise
                    log.warning("skipped: %s", e)
                    skipped.append(str(e))
            if not keep:
                raise QueryError(f"none of the {len(new)} file(s) could be embedded; the index is unchanged")
            kept = new.loc[keep]
            Znew = np.vstack(vecs)
            Z = np.concatenate([np.asarray(idx.vi.Z64), Znew], axis=0)
            idx.vi.add(Znew, Z)
            items = pd.concat([idx.items, _items(kept["fname"].tolist(),
                                                 [[x for x in s.split(",") if x] for s in kept["labels"]],
                                                 kept["path"].tolist(), start=len(idx.items))], ignore_index=True)
            manifest = _updated_manifest(idx.manifest, items, idx.vi.memory_bytes())
            store.write_generation(root, manifest, None, Z, items, idx.vi.save, base=idx.generation.path)
    return {"added": len(kept), "skipped": skipped, "counts": manifest["counts"]}


def remove_sounds(root: str | Path, fnames: Sequence[str]) -> dict[str, Any]:
    """Mark ``fnames`` removed (a new generation, atomically; vectors and faiss index linked,
    unchanged). Unknown fnames are refused, listed, and nothing changes."""
    root = Path(root)
    with exclusive_lock(root / "writer", "the index", _WRITER_ADVICE):
        store.clean_leftovers(root)
        gen = store.open_generation(root)
        items = gen.items.copy()
        active = set(items.loc[~items["removed"], "fname"])
        unknown = [f for f in fnames if f not in active]
        if unknown:
            raise QueryError(f"{len(unknown)} fname(s) are not in the index {root}: {first_few(unknown, quote=True)}")
        items.loc[items["fname"].isin(set(fnames)) & ~items["removed"], "removed"] = True
        manifest = _updated_manifest(gen.manifest, items, gen.manifest.get("memory_bytes"))
        store.write_generation(root, manifest, None, None, items, None, base=gen.path)
    return {"removed": len(set(fnames)), "counts": manifest["counts"]}


def _updated_manifest(manifest: Mapping[str, Any], items: pd.DataFrame, memory: int | None) -> dict[str, Any]:
    m = dict(manifest)
    removed = int(items["removed"].sum())
    m["counts"] = {**m["counts"], "items": len(items), "active": len(items) - removed, "removed": removed}
    m["updated"] = store.now_iso()
    m["memory_bytes"] = memory
    return m


# --------------------------------------------------------------------------- export


def export_parquet(root: str | Path, out: str | Path, include_removed: bool = False) -> Path:
    """Vectors + ids + payload as one parquet file, for a vector database (Qdrant, Milvus,
    OpenSearch k-NN all import these columns): ``id`` (int64, the row), ``fname``, ``vector``
    (list<float32>: the *search* vectors, L2-normalised for MCSS, so the engine's dot product /
    cosine / L2 ranks as soundsim does), ``labels`` (list<string>), ``path``; the index's
    manifest (system, search, metric) in the file's key-value metadata ``soundsim``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    gen = store.open_generation(root)
    items = gen.items if include_removed else gen.items[~gen.items["removed"]]
    rows = items["row"].to_numpy(np.int64)
    spec = ann.IndexSpec.from_dict(gen.manifest["index"])
    V = ann.search_vectors(np.asarray(gen.vectors[rows]), spec.search)
    d = V.shape[1]
    table = pa.table({
        "id": pa.array(rows, pa.int64()), "fname": pa.array(items["fname"].tolist(), pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(V.reshape(-1), pa.float32()), d),
        "labels": pa.array([[x for x in s.split(",") if x] for s in items["labels"]], pa.list_(pa.string())),
        "path": pa.array(items["path"].tolist(), pa.string()),
    })
    meta = {"system": gen.manifest["system"], "search": spec.search, "metric": spec.metric, "dim": d,
            "distance": {"mips": "dot", "mcss": "cosine (vectors unit-length: dot)", "nns": "euclidean"}[spec.search]}
    table = table.replace_schema_metadata({"soundsim": json.dumps(meta)})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return out


def fmt_table(answer: Answer) -> str:
    """A readable table of one answer (``soundsim query``'s default output)."""
    if answer.error:
        return f"{answer.query}: ERROR {answer.error}"
    lines = [f"query: {answer.query}", f"{'rank':>4}  {'similarity':>10}  {'score':>10}  fname  labels"]
    for i, h in enumerate(answer.results):
        sc = f"{h.score:10.4f}" if math.isfinite(h.score) else f"{'nan':>10}"
        lines.append(f"{i:>4}  {h.similarity:10.4f}  {sc}  {h.fname}  {','.join(h.labels)}")
    if not answer.results:
        lines.append("  (no results above the minimum similarity)")
    return "\n".join(lines)
