"""Sharded, resumable embedding extraction into HDF5.

One (collection, model, variation) is split into ``shards`` contiguous slices
of the manifest (:func:`shard_slice`); each shard job embeds its clips and
writes ``<variation>.shard-<k>-of-<n>.h5``; :func:`merge_shards` joins them,
in manifest order, into ``<variation>.h5`` (the format of
:mod:`soundsim.store`).

Nothing is lost when a job dies (even ``kill -9``): while it works, a shard
appends each clip to a journal folder ``<shard>.h5.partial/`` beside its output
(``rows.f32``: the float32 rows, appended; ``index.jsonl``: one line per clip,
written *after* its rows and fsynced; ``meta.json``: what the journal is for).
A re-run reads the journal, drops a torn last record, and continues with the
clips not yet done; the finished shard is written atomically (temporary name,
then rename) and the journal removed. A journal made for another model,
variation, weights file or clip list is discarded with a warning.

Per clip: the audio is decoded, downmixed to mono (channel mean) and resampled
(soxr, VHQ) to the model's rate; clips shorter than the model's
``min_duration`` are zero-padded at the end; then the model embeds it. A clip
that cannot be embedded (unreadable audio, a model error such as Essentia's
RuntimeError on silence, non-finite output) is recorded with its reason in the
shard's ``/failed`` and in the log, and the job goes on (``on_bad_audio:
skip``) or stops naming the file (``fail``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from soundsim import audio, models, store
from soundsim.errors import AudioError, SoundsimError
from soundsim.logutil import progress as progress_bar

log = logging.getLogger(__name__)


def shard_slice(n: int, shards: int, k: int) -> slice:
    """Clips ``[start, stop)`` of shard ``k`` of ``shards``: contiguous, sizes
    differing by at most one (as ``numpy.array_split``)."""
    if not 0 <= k < shards:
        raise ValueError(f"shard {k} is not in 0..{shards - 1}")
    base, extra = divmod(n, shards)
    start = k * base + min(k, extra)
    return slice(start, start + base + (1 if k < extra else 0))


def shard_path(out_dir: str | Path, variation: str, k: int, shards: int) -> Path:
    return Path(out_dir) / f"{variation}.shard-{k}-of-{shards}.h5"


# ---------------------------------------------------------------------------- journal


@dataclass
class Record:
    fname: str
    start: int  # first row in rows.f32
    n_rows: int
    reason: str | None = None  # set for failed clips (n_rows == 0)


class Journal:
    """Append-only, crash-safe record of a shard's finished clips (see module docstring)."""

    def __init__(self, folder: Path, meta: Mapping[str, Any], dim: int | None = None) -> None:
        self.folder = folder
        self.meta = dict(meta)
        self.records: list[Record] = []
        self.dim = dim
        self._open(meta)

    @property
    def rows_path(self) -> Path:
        return self.folder / "rows.f32"

    @property
    def index_path(self) -> Path:
        return self.folder / "index.jsonl"

    def _open(self, meta: Mapping[str, Any]) -> None:
        meta_path = self.folder / "meta.json"
        if self.folder.exists():
            try:
                old = json.loads(meta_path.read_text())
            except (OSError, json.JSONDecodeError):
                old = None
            if old != json.loads(json.dumps(meta)):
                log.warning("%s: journal was made for other settings; starting this shard afresh", self.folder)
                shutil.rmtree(self.folder)
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            (self.folder / "meta.json.tmp").write_text(json.dumps(meta, indent=1))
            os.replace(self.folder / "meta.json.tmp", meta_path)
        self._recover()

    def _recover(self) -> None:
        """Read the index; drop a torn last line and rows past the last complete record."""
        rows_bytes = self.rows_path.stat().st_size if self.rows_path.exists() else 0
        good_lines: list[str] = []
        records: list[Record] = []
        if self.index_path.exists():
            for line in self.index_path.read_text().splitlines(keepends=True):
                if not line.endswith("\n"):
                    break  # torn write
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    break
                rec = Record(d["fname"], int(d["start"]), int(d["n_rows"]), d.get("reason"))
                if rec.n_rows and self.dim is None:
                    self.dim = int(d["dim"])
                end = (rec.start + rec.n_rows) * (self.dim or 0) * 4
                if end > rows_bytes:
                    break  # index ahead of data: cannot happen with fsync ordering, but be safe
                records.append(rec)
                good_lines.append(line)
        self.records = records
        with open(self.index_path, "w") as fh:
            fh.writelines(good_lines)
            fh.flush()
            os.fsync(fh.fileno())
        keep = self.n_rows * (self.dim or 0) * 4
        with open(self.rows_path, "ab") as fh:
            fh.truncate(keep)
        if records:
            log.info("%s: resuming after %d clip(s) already done", self.folder, len(records))

    @property
    def n_rows(self) -> int:
        return sum(r.n_rows for r in self.records)

    def done(self) -> set[str]:
        return {r.fname for r in self.records}

    def _append_index(self, d: dict[str, Any]) -> None:
        with open(self.index_path, "a") as fh:
            fh.write(json.dumps(d) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def add(self, fname: str, emb: np.ndarray) -> None:
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if self.dim is None:
            self.dim = int(emb.shape[1])
        start = self.n_rows
        with open(self.rows_path, "ab") as fh:
            fh.write(emb.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        self._append_index({"fname": fname, "start": start, "n_rows": int(emb.shape[0]), "dim": self.dim})
        self.records.append(Record(fname, start, int(emb.shape[0])))

    def fail(self, fname: str, reason: str) -> None:
        self._append_index({"fname": fname, "start": self.n_rows, "n_rows": 0, "reason": reason})
        self.records.append(Record(fname, self.n_rows, 0, reason))

    def rows(self) -> np.ndarray:
        if not self.n_rows:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        return np.fromfile(self.rows_path, dtype=np.float32).reshape(-1, self.dim)


# ---------------------------------------------------------------------------- extraction


def prepare(x: np.ndarray, sample_rate: int, min_duration: float) -> np.ndarray:
    """Zero-pad a mono waveform at the end to ``min_duration`` seconds."""
    need = int(np.ceil(min_duration * sample_rate))
    if len(x) < need:
        x = np.pad(x, (0, need - len(x)))
    return x


def embed_clip(model: models.LoadedModel, path: str) -> np.ndarray:
    """Decode, downmix, resample, pad and embed one clip. Raises AudioError
    naming the file for unreadable audio, model errors and bad output."""
    inf = model.info
    x, _ = audio.load(path, sample_rate=inf.sample_rate, mono=True)
    x = prepare(x, inf.sample_rate, inf.min_duration)
    try:
        emb = model.embed(x)
    except (RuntimeError, ValueError, AssertionError) as e:  # Essentia raises RuntimeError
        raise AudioError(path, f"{inf.name} could not embed it: {type(e).__name__}: {e}") from e
    dim = getattr(model.embedder, "dim", None) or inf.dim_of(model.variation)  # an option may pick another layer
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] != dim:
        raise AudioError(path, f"{inf.name} returned shape {emb.shape}, expected (frames >= 1, {dim})")
    if inf.level == "clip" and emb.shape[0] != 1:
        raise AudioError(path, f"{inf.name} is clip-level but returned {emb.shape[0]} rows")
    if not np.isfinite(emb).all():
        raise AudioError(path, f"{inf.name} returned non-finite values")
    return emb


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; other values unchanged."""
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def extract_shard(
    manifest_path: str | Path,
    model_name: str,
    variation: str,
    shard: int,
    shards: int,
    out_path: str | Path,
    weights: str | None = None,
    device: str = "cpu",
    options: Mapping[str, Any] | None = None,
    on_bad_audio: str = "skip",
    progress: bool = True,
) -> Path:
    """Embed shard ``shard`` of ``shards`` of the manifest into ``out_path``;
    resumable (see module docstring). Returns ``out_path``."""
    from soundsim.manifest import read_manifest

    if on_bad_audio not in ("skip", "fail"):
        raise ValueError(f"on_bad_audio must be 'skip' or 'fail', not {on_bad_audio!r}")
    out = Path(out_path)
    device = resolve_device(device)
    man = read_manifest(manifest_path)
    part = man.iloc[shard_slice(len(man), shards, shard)]
    fnames, paths = part["fname"].tolist(), part["path"].tolist()
    inf = models.info(model_name)
    meta = {
        "model": model_name,
        "variation": variation,
        "weights": weights,
        "options": dict(options or {}),
        "shard": [shard, shards],
        "clips": hashlib.sha256("\n".join(fnames).encode()).hexdigest(),
    }
    journal = Journal(out.with_name(out.name + ".partial"), meta)
    todo = [(f, p) for f, p in zip(fnames, paths, strict=True) if f not in journal.done()]
    log.info(
        "%s/%s shard %d of %d: %d clips, %d already done, %d to embed",
        model_name, variation, shard, shards, len(fnames), len(fnames) - len(todo), len(todo),
    )
    if todo:
        model = models.load(model_name, variation, weights, device, options)
        for fname, path in progress_bar(todo, desc=f"{model_name}/{variation} [{shard}]", unit="clip",
                                        disable=not progress):
            try:
                emb = embed_clip(model, path)
            except AudioError as e:
                if on_bad_audio == "fail":
                    raise
                log.warning("skipped %s: %s", e.path, e.reason)
                journal.fail(fname, e.reason)
                continue
            journal.add(fname, emb)
    if journal.dim is None:
        journal.dim = inf.dim_of(variation)
    by_name = {r.fname: r for r in journal.records}
    rows = journal.rows()
    ok = [by_name[f] for f in fnames if by_name[f].reason is None]
    failed = [(f, by_name[f].reason or "") for f in fnames if by_name[f].reason is not None]
    emb = np.concatenate([rows[r.start : r.start + r.n_rows] for r in ok]) if ok else rows[:0]
    offsets = np.concatenate([[0], np.cumsum([r.n_rows for r in ok], dtype=np.int64)]).astype(np.int64)
    attrs = _attrs(inf, variation, weights, device, options)
    attrs["shard"] = f"{shard}/{shards}"
    store.write_embeddings(out, [r.fname for r in ok], (emb, offsets), attrs, failed=failed)
    shutil.rmtree(journal.folder)
    log.info("%s: %d clips embedded (%d rows), %d failed", out, len(ok), emb.shape[0], len(failed))
    return out


def _attrs(inf: models.ModelInfo, variation: str, weights: str | None, device: str,
           options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "model": inf.name,
        "variation": variation,
        "level": inf.level,
        "sample_rate": inf.sample_rate,
        "hop": float(inf.hop) if inf.hop is not None else float("nan"),
        "weights": weights or "bundled",
        "device": device,
        "options": json.dumps(dict(options or {}), sort_keys=True),
        "env": inf.env,
        "versions": store.package_versions((*store.CORE_PACKAGES, *inf.packages)),
    }


def collection_transform(name: str | None, emb: np.ndarray) -> np.ndarray:
    """Transforms a model asks for over the whole collection at merge time.

    ``minmax``: each dimension scaled to [0, 1] by its minimum and maximum over
    all clips, ``(x - min) / (max - min)``, in float64; constant dimensions
    become 0. As Freesound does before PCA (the reference uses sklearn's
    MinMaxScaler, which also leaves ranges below ~1e-15 unscaled; some Essentia
    statistics, e.g. ``spectral_decrease.var`` ~ 1e-17, live there, so this is
    written out here).
    """
    if name is None:
        return emb
    if name == "minmax":
        x = emb.astype(np.float64)
        lo, hi = x.min(axis=0), x.max(axis=0)
        span = hi - lo
        out = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.0)
        return out.astype(np.float32)
    raise SoundsimError(f"unknown collection transform {name!r}")


def merge_shards(shard_paths: Sequence[str | Path], out_path: str | Path) -> Path:
    """Concatenate shard files (in the given order) into one embeddings file,
    applying the model's collection transform. Written atomically."""
    parts = [store.read_embeddings(p) for p in shard_paths]
    if not parts:
        raise SoundsimError(f"{out_path}: no shard files to merge")
    first = parts[0]
    keys = ("model", "variation", "level", "sample_rate")
    for p in parts[1:]:
        if any(str(p.attrs.get(k)) != str(first.attrs.get(k)) for k in keys):
            raise SoundsimError(f"{p.path}: shard settings differ from {first.path} ({', '.join(keys)})")
    fnames = [f for p in parts for f in p.fnames]
    emb = np.concatenate([p.embeddings for p in parts if p.n_clips]) if fnames else first.embeddings
    offsets = np.concatenate([[0]] + [p.offsets[1:] + base for p, base in
                                      zip(parts, np.cumsum([0] + [p.embeddings.shape[0] for p in parts[:-1]]), strict=True)])
    failed = [x for p in parts for x in p.failed]
    inf = models.info(str(first.attrs["model"]))
    emb = collection_transform(inf.collection_transform, emb)
    attrs = {k: v for k, v in first.attrs.items() if k not in ("shard", "created", "dim")}
    attrs["shards"] = len(parts)
    attrs["n_failed"] = len(failed)
    if inf.collection_transform:
        attrs["collection_transform"] = inf.collection_transform
    out = store.write_embeddings(out_path, fnames, (emb, offsets.astype(np.int64)), attrs, failed=failed)
    log.info("%s: %d clips, %d rows, %d failed, from %d shard(s)", out, len(fnames), emb.shape[0], len(failed), len(parts))
    return out
