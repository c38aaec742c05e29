"""Sharded, resumable, content-keyed embedding extraction into HDF5.

One (collection, model, variation) is split into ``shards`` contiguous slices
of the manifest (:func:`shard_slice`); each shard job embeds its clips and
writes ``<variation>.shard-<k+1>-of-<n>.h5``; :func:`merge_shards` joins them,
in manifest order, into ``<variation>.h5`` (the format of
:mod:`soundsim.store`).

**Keys and reuse.** Every clip is keyed by :func:`clip_key`: the sha256 of
its content fingerprint (the manifest's ``fingerprint``: a hash of the audio
file's bytes), the model, variation, options (every option the model declares,
defaults filled: leaving an option out or giving its default is the same key),
the weights file's fingerprint and the model's code version
(:func:`soundsim.provenance.model_code_version`).
The key is stored with the clip's rows (``/keys``). Given the previous
embeddings file (``reuse``), a clip whose key is unchanged takes its rows from
there, bit for bit, and is not embedded again; changed or new clips are
embedded; clips no longer in the manifest are dropped (the new file lists the
manifest's clips only). Failed clips are keyed too: a clip that failed with
the same key is not retried (change the code, the weights or the audio, or pass
``reuse=None``, to retry). A manifest without fingerprints (older soundsim)
gives no keys: nothing is reused.

**One writer.** A shard job holds an exclusive lock (:func:`soundsim.fileutil.exclusive_lock`,
``<shard>.h5.lock``) from start to end; a second job asked to write the same
file fails at once, naming the file and the process that holds it, and the
first finishes undisturbed.

**Nothing is lost when a job dies** (even ``kill -9``): while it works, a shard
appends each embedded clip to a journal folder ``<shard>.h5.partial/`` beside its
output (``rows.f32``: the float32 rows, appended; ``index.jsonl``: one line per
clip with its key, written *after* its rows and fsynced; ``meta.json``: what
the journal is for). A re-run reads the journal, drops a torn last record, and
continues with the clips not yet done (a journal record counts only while its
key is the clip's current key); the finished shard is written atomically
(temporary name, then rename) and the journal removed. A journal made for
another model, variation, weights file, options or code version is discarded
with a warning.

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
from soundsim.layout import shard_file_name, shard_item
from soundsim.logutil import native_output
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
    """``<out_dir>/<variation>.shard-<k+1>-of-<shards>.h5`` (shard ``k`` counted from 0;
    the file name counts from 1, as :func:`soundsim.layout.shard_item`)."""
    return Path(out_dir) / shard_file_name(variation, shard_item(k, shards))


# ---------------------------------------------------------------------------- journal


@dataclass
class Record:
    fname: str
    start: int  # first row in rows.f32
    n_rows: int
    reason: str | None = None  # set for failed clips (n_rows == 0)
    key: str | None = None  # the clip's extraction key when it was embedded


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
                rec = Record(d["fname"], int(d["start"]), int(d["n_rows"]), d.get("reason"), d.get("key"))
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

    def done(self, keys: Mapping[str, str | None]) -> dict[str, Record]:
        """fname -> its latest record, for the clips whose record carries the
        clip's current key (``keys``: fname -> key)."""
        out: dict[str, Record] = {}
        for r in self.records:
            if r.fname in keys and r.key == keys[r.fname]:
                out[r.fname] = r
        return out

    def _append_index(self, d: dict[str, Any]) -> None:
        with open(self.index_path, "a") as fh:
            fh.write(json.dumps(d) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def add(self, fname: str, emb: np.ndarray, key: str | None = None) -> None:
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if self.dim is None:
            self.dim = int(emb.shape[1])
        start = self.n_rows
        with open(self.rows_path, "ab") as fh:
            fh.write(emb.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        self._append_index({"fname": fname, "start": start, "n_rows": int(emb.shape[0]), "dim": self.dim,
                            "key": key})
        self.records.append(Record(fname, start, int(emb.shape[0]), None, key))

    def fail(self, fname: str, reason: str, key: str | None = None) -> None:
        self._append_index({"fname": fname, "start": self.n_rows, "n_rows": 0, "reason": reason, "key": key})
        self.records.append(Record(fname, self.n_rows, 0, reason, key))

    def read(self, rec: Record) -> np.ndarray:
        """The rows of one record, read from ``rows.f32`` alone."""
        d = self.dim or 0
        return np.fromfile(self.rows_path, dtype=np.float32, count=rec.n_rows * d,
                           offset=rec.start * d * 4).reshape(rec.n_rows, d)


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
    except (RuntimeError, ValueError) as e:  # Essentia raises RuntimeError
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


def clip_key(fingerprint: str | None, model: str, variation: str, weights_fingerprint: str,
             code_version: str, options: Mapping[str, Any] | None) -> str | None:
    """The extraction key of one clip: sha256 (32 hex digits) of its content
    fingerprint, the model, variation, options, weights fingerprint and the
    model's code version; None without a fingerprint (nothing can be reused)."""
    if not fingerprint:
        return None
    text = json.dumps([fingerprint, model, variation, dict(options or {}), weights_fingerprint, code_version],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


#: the end of the message a second writer gets (see the README, "Two runs at once")
UNLOCK_ADVICE = (
    "(Under Snakemake: `snakemake --unlock` only removes Snakemake's own lock of the working directory, "
    "left by a run that was killed; never use it while another run is alive: both runs would then plan, "
    "delete and write the same files)"
)


def journal_path(out: str | Path) -> Path:
    """The journal folder of a shard output: ``<out>.partial/``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def journal_meta(model: str, variation: str, weights: str | None, weights_fingerprint: str,
                 options: Mapping[str, Any] | None, code_version: str) -> dict[str, Any]:
    """What a shard's journal is for; a journal made for anything else is discarded."""
    return {"model": model, "variation": variation, "weights": weights, "weights_fingerprint": weights_fingerprint,
            "options": dict(options or {}), "code_version": code_version}


@dataclass
class Previous:
    """Clips of a previous embeddings file, by key (what :func:`extract_shard` reuses)."""

    path: str
    rows: dict[str, tuple[int, int]]  # key -> (start, stop) in /embeddings
    failed: dict[str, str]  # key -> reason

    @classmethod
    def read(cls, path: str | Path | None, model: str, variation: str) -> Previous | None:
        """The keyed clips of ``path``; None when there is no such file, it has no
        keys, or it is for another model/variation. An unreadable file is
        reported and ignored (everything is embedded again)."""
        if path is None or not Path(path).is_file():
            return None
        try:
            fnames, keys, offsets, attrs, failed, failed_keys = store.read_keys(path)
        except store.EmbeddingError as e:
            log.warning("previous embeddings not reused: %s", e)
            return None
        if keys is None or str(attrs.get("model")) != model or str(attrs.get("variation")) != variation:
            return None
        rows = {k: (int(offsets[i]), int(offsets[i + 1])) for i, k in enumerate(keys)}
        bad = {k: r for k, (_, r) in zip(failed_keys or [], failed, strict=False)}
        return cls(str(path), rows, bad)


def extract_shard(
    manifest_path: str | Path,
    model_name: str,
    variation: str | None,
    shard: int,
    shards: int,
    out_path: str | Path,
    weights: str | None = None,
    device: str = "cpu",
    options: Mapping[str, Any] | None = None,
    on_bad_audio: str = "skip",
    progress: bool = True,
    reuse: str | Path | None = None,
    code_version: str | None = None,
    weights_fingerprint: str | None = None,
    model_cfg: Mapping[str, Any] | None = None,
) -> Path:
    """Embed shard ``shard`` of ``shards`` of the manifest into ``out_path``;
    resumable, keyed, one writer at a time (see module docstring).

    ``reuse``: a previous embeddings file of this model/variation (usually the
    merged ``<variation>.h5``) whose clips with unchanged keys are copied
    instead of embedded. ``code_version`` / ``weights_fingerprint``: as the
    workflow computed them (default: computed here). ``options`` are checked against the
    model's declaration and completed with its defaults (:func:`soundsim.models.check_options`)
    before anything is read or written: the keys, the journal and the file's ``options``
    attribute hold every option the model ran with. ``model_cfg``: the model's config section,
    for a model of a kind (``models.<name>.kind``, :func:`soundsim.models.info`). Returns ``out_path``."""
    from soundsim import provenance
    from soundsim.fileutil import exclusive_lock
    from soundsim.fingerprint import weights_fingerprint as fingerprint_of_weights
    from soundsim.manifest import read_manifest

    if on_bad_audio not in ("skip", "fail"):
        raise ValueError(f"on_bad_audio must be 'skip' or 'fail', not {on_bad_audio!r}")
    opts = models.check_options(model_name, options, model_cfg)
    out = Path(out_path)
    with exclusive_lock(out, "this embeddings file", UNLOCK_ADVICE):
        device = resolve_device(device)
        man = read_manifest(manifest_path)
        part = man.iloc[shard_slice(len(man), shards, shard)]
        fnames, paths = part["fname"].tolist(), part["path"].tolist()
        inf = models.info(model_name, model_cfg)
        variation = variation or inf.default_variation
        code_version = code_version or provenance.model_code_version(model_name, cfg=model_cfg)
        weights_fp = weights_fingerprint or fingerprint_of_weights(weights)
        keys = {f: clip_key(fp, model_name, variation, weights_fp, code_version, opts)
                for f, fp in zip(fnames, part["fingerprint"].tolist(), strict=True)}
        journal = Journal(journal_path(out), journal_meta(model_name, variation, weights, weights_fp, opts,
                                                          code_version))
        done = journal.done(keys)
        prev = Previous.read(reuse, model_name, variation)
        reused = {f for f in fnames if f not in done and prev is not None and keys[f] is not None
                  and (keys[f] in prev.rows or keys[f] in prev.failed)}
        todo = [(f, p) for f, p in zip(fnames, paths, strict=True) if f not in done and f not in reused]
        log.info(
            "%s/%s shard %s: %d clips: %d reused from %s, %d already done (journal), %d to embed "
            "(code version %s, weights %s)",
            model_name, variation, shard_item(shard, shards), len(fnames), len(reused), prev.path if prev else "no previous file",
            len(done), len(todo), code_version, weights_fp,
        )
        if todo:
            model = models.load(model_name, variation, weights, device, opts, model_cfg)
            for fname, path in progress_bar(todo, desc=f"{model_name}/{variation} [{shard}]", unit="clip",
                                            disable=not progress):
                try:
                    with native_output(path, log):
                        emb = embed_clip(model, path)
                except AudioError as e:
                    if on_bad_audio == "fail":
                        raise
                    log.warning("skipped %s: %s", e.path, e.reason)
                    journal.fail(fname, e.reason, keys[fname])
                    continue
                journal.add(fname, emb, keys[fname])
            done = journal.done(keys)
        if journal.dim is None:
            journal.dim = inf.dim_of(variation)
        ok, parts, failed, failed_keys = _collect(fnames, keys, done, journal, prev)
        dim = parts[0].shape[1] if parts else journal.dim
        emb = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([p.shape[0] for p in parts], out=offsets[1:])
        attrs = _attrs(inf, variation, weights, device, opts)
        attrs.update({"shard": f"{shard}/{shards}", "code_version": code_version, "weights_fingerprint": weights_fp,
                      "n_reused": len(reused), "n_embedded": len(todo), "soundsim_commit": provenance.git_commit()})
        store.write_embeddings(out, ok, (emb, offsets), attrs, failed=failed, keys=[keys[f] or "" for f in ok],
                               failed_keys=failed_keys)
        shutil.rmtree(journal.folder)
        log.info("%s: %d clips (%d rows): %d reused, %d embedded now, %d from the journal; %d failed",
                 out, len(ok), emb.shape[0], len(reused), len(todo), len(fnames) - len(todo) - len(reused),
                 len(failed))
    return out


def _collect(fnames: Sequence[str], keys: Mapping[str, str | None], done: Mapping[str, Record], journal: Journal,
             prev: Previous | None) -> tuple[list[str], list[np.ndarray], list[tuple[str, str]], list[str]]:
    """A shard's clips in manifest order, each from the journal (embedded by
    this or an interrupted run) or from the previous file (reused): (embedded
    fnames, their rows, failed (fname, reason), failed keys)."""
    ok: list[str] = []
    parts: list[np.ndarray] = []
    failed: list[tuple[str, str]] = []
    failed_keys: list[str] = []
    reader = store.RowReader(prev.path) if prev is not None and any(f not in done for f in fnames) else None
    try:
        for f in fnames:
            k = keys[f]
            rec = done.get(f)
            reason = rec.reason if rec is not None else (prev.failed.get(k) if prev and k else None)
            if reason is not None:
                failed.append((f, reason))
                failed_keys.append(k or "")
                continue
            if rec is not None:
                parts.append(journal.read(rec))
            elif reader is not None and prev is not None and k in prev.rows:
                parts.append(reader.rows(*prev.rows[k]))
            else:
                raise SoundsimError(f"{journal.folder}: clip {f!r} is neither embedded nor reusable (a bug)")
            ok.append(f)
    finally:
        if reader is not None:
            reader.close()
    return ok, parts, failed, failed_keys


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
        "processing": inf.processing,
        "versions": store.package_versions((*store.CORE_PACKAGES, *inf.packages)),
    }


def merge_shards(shard_paths: Sequence[str | Path], out_path: str | Path) -> Path:
    """Concatenate shard files (in the given order) into one embeddings file,
    keys included. Written atomically. The rows are the models' own: transforms
    over the whole collection (Freesound's min-max scaling) belong to
    processing (:mod:`soundsim.process`), so that every clip's rows depend on
    that clip alone and can be reused when others change."""
    parts = [store.read_embeddings(p) for p in shard_paths]
    if not parts:
        raise SoundsimError(f"{out_path}: no shard files to merge")
    first = parts[0]
    keys = ("model", "variation", "level", "sample_rate", "code_version", "weights_fingerprint")
    for p in parts[1:]:
        if any(str(p.attrs.get(k)) != str(first.attrs.get(k)) for k in keys):
            raise SoundsimError(f"{p.path}: shard settings differ from {first.path} ({', '.join(keys)})")
    fnames = [f for p in parts for f in p.fnames]
    emb = np.concatenate([p.embeddings for p in parts if p.n_clips]) if fnames else first.embeddings
    offsets = np.concatenate([[0]] + [p.offsets[1:] + base for p, base in
                                      zip(parts, np.cumsum([0] + [p.embeddings.shape[0] for p in parts[:-1]]), strict=True)])
    failed = [x for p in parts for x in p.failed]
    clip_keys = [k for p in parts for k in (p.keys or [""] * p.n_clips)]
    failed_keys = [k for p in parts for k in (p.failed_keys or [""] * len(p.failed))]
    attrs = {k: v for k, v in first.attrs.items() if k not in ("shard", "created", "dim", "n_reused", "n_embedded")}
    attrs["shards"] = len(parts)
    attrs["n_failed"] = len(failed)
    attrs["n_reused"] = int(sum(int(p.attrs.get("n_reused", 0)) for p in parts))
    attrs["n_embedded"] = int(sum(int(p.attrs.get("n_embedded", 0)) for p in parts))
    out = store.write_embeddings(out_path, fnames, (emb, offsets.astype(np.int64)), attrs, failed=failed,
                                 keys=clip_keys, failed_keys=failed_keys)
    log.info("%s: %d clips, %d rows, %d failed, from %d shard(s); %d clip(s) reused, %d embedded",
             out, len(fnames), emb.shape[0], len(failed), len(parts), attrs["n_reused"], attrs["n_embedded"])
    return out
