"""The manifest: one checked row per clip, the contract every later stage reads.

``build_manifest`` takes a :class:`~soundsim.datasets.Collection` and

1. stops with one message listing every structural problem: duplicate fnames,
   labels outside the vocabulary, clips whose audio file is missing (first few
   of each, with counts);
2. checks each audio file (:func:`soundsim.audio.check`: header, truncated WAV
   data, full decode when ``check='full'``) on ``threads`` threads;
3. lists unusable clips in ``bad_audio`` (fname, path, reason) and, per
   ``on_bad_audio``, leaves them out (``skip``) or stops naming them (``fail``).

``write_manifest`` writes, atomically, under the collection folder:

* ``manifest.csv``: fname, path, duration, sample_rate, channels, frames,
  format, subtype, fingerprint (``xxh3-128:<hex>`` of the file's bytes,
  :mod:`soundsim.fingerprint`: what extraction keys a clip by), labels
  (comma-separated, FSD50K style);
* ``bad_audio.csv``: fname, path, reason (header only when all is well);
* ``labels.csv``: label, n_clips, family (empty: none), multi_parent;
* ``families.json``: family -> labels present in the manifest (multi-parent
  labels left out), the format ``soundsim evaluate --families`` reads.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from soundsim.logutil import progress as progress_bar

from soundsim import audio
from soundsim.datasets.common import Collection
from soundsim.errors import AudioError, CollectionError, first_few
from soundsim.fileutil import write_csv_atomic, write_text_atomic
from soundsim.fingerprint import FingerprintCache
from soundsim.layout import Layout

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["fname", "path", "duration", "sample_rate", "channels", "frames", "format", "subtype",
                    "fingerprint", "labels"]
BAD_COLUMNS = ["fname", "path", "reason"]
LABEL_COLUMNS = ["label", "n_clips", "family", "multi_parent"]


@dataclass
class Manifest:
    clips: pd.DataFrame  # MANIFEST_COLUMNS, labels as comma-joined strings
    bad: pd.DataFrame  # BAD_COLUMNS
    labels: pd.DataFrame  # LABEL_COLUMNS
    families: dict[str, list[str]]



def structural_problems(col: Collection) -> list[str]:
    """Duplicate fnames, labels outside the vocabulary, missing audio files."""
    df = col.clips
    problems: list[str] = []
    counts = Counter(df["fname"])
    dups = [f for f, c in counts.items() if c > 1]
    if dups:
        problems.append(f"{len(dups)} duplicate fname(s) in {col.source}: {first_few(dups)}")
    used = Counter(lab for labs in df["labels"] for lab in labs)
    if col.vocabulary is not None:
        vocab = set(col.vocabulary)
        unknown = sorted(lab for lab in used if lab not in vocab)
        if unknown:
            examples = [
                f"{lab!r} (e.g. clip {df.loc[df['labels'].map(lambda ls, lab=lab: lab in ls), 'fname'].iloc[0]})"
                for lab in unknown
            ]
            problems.append(f"{len(unknown)} label(s) not in the vocabulary: {first_few(examples)}")
    missing = df.loc[df["path"].isna(), "fname"].tolist()
    if missing:
        problems.append(f"{len(missing)} clip(s) have no audio file: {first_few(missing)}")
    return problems


def build_manifest(
    col: Collection,
    on_bad_audio: str = "skip",
    check: str = "full",
    threads: int = 1,
    progress: bool = True,
    fingerprints: FingerprintCache | None = None,
) -> Manifest:
    """Check ``col`` and its audio; see the module docstring. ``fingerprints``:
    the cache the usable clips' fingerprints come from (default: none, every
    file is hashed)."""
    if on_bad_audio not in ("skip", "fail"):
        raise ValueError(f"on_bad_audio must be 'skip' or 'fail', not {on_bad_audio!r}")
    problems = structural_problems(col)
    if problems:
        raise CollectionError(f"collection {col.name!r} is not usable:\n  " + "\n  ".join(problems))

    def one(path: str) -> audio.AudioInfo | AudioError:
        try:
            return audio.check(path, full=(check == "full"))
        except AudioError as e:
            return e

    paths = col.clips["path"].tolist()
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(
            progress_bar(pool.map(one, paths), total=len(paths), desc="checking audio", unit="clip", disable=not progress)
        )
    fingerprints = fingerprints or FingerprintCache(None)
    usable = [r.path for r in results if not isinstance(r, AudioError)]
    fps = dict(zip(usable, fingerprints.many(usable, threads, lambda it: progress_bar(
        it, total=len(usable), desc="fingerprints", unit="clip", disable=not progress)), strict=True))
    if usable:
        log.info("fingerprints: %d reused (file unchanged), %d computed", fingerprints.hits, fingerprints.misses)
    rows, bad = [], []
    for (fname, labels), res in zip(col.clips[["fname", "labels"]].itertuples(index=False), results, strict=True):
        if isinstance(res, AudioError):
            bad.append((fname, res.path, res.reason))
        else:
            rows.append(
                (fname, res.path, round(res.duration, 6), res.sample_rate, res.channels, res.frames,
                 res.format, res.subtype, fps[res.path], ",".join(labels))
            )
    clips = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    bad_df = pd.DataFrame(bad, columns=BAD_COLUMNS)
    if bad and on_bad_audio == "fail":
        detail = "\n  ".join(f"{p}: {r}" for _, p, r in bad[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise CollectionError(
            f"{len(bad)} unusable audio file(s) and extraction.on_bad_audio is 'fail':\n  {detail}{more}",
        )
    if clips.empty:
        raise CollectionError(f"collection {col.name!r}: no usable clips ({len(bad)} bad)")
    label_counts = Counter(lab for s in clips["labels"] for lab in s.split(","))
    fam_of = {lab: f for f, labs in col.families.items() for lab in labs}
    multi = set(col.multi_parent)
    labels = pd.DataFrame(
        [(lab, n, fam_of.get(lab, ""), lab in multi) for lab, n in sorted(label_counts.items())],
        columns=LABEL_COLUMNS,
    )
    families = {f: [lab for lab in labs if lab in label_counts] for f, labs in col.families.items()}
    families = {f: labs for f, labs in families.items() if labs}
    return Manifest(clips, bad_df, labels, families)


def run(
    collection_cfg: dict,
    out_dir: str | Path,
    on_bad_audio: str = "skip",
    threads: int = 1,
    progress: bool = True,
    demo_dir: str | Path | None = None,
) -> dict[str, Path]:
    """Load the configured collection, build and write its manifest under
    ``out_dir`` (``results/<collection.name>``). What the ``manifest`` rule and
    ``soundsim manifest`` both call; ``demo_dir``: see :func:`load_collection`."""
    from soundsim.datasets import load_collection

    col = load_collection(collection_cfg, demo_dir)
    log.info("collection %r (%s): %d clips from %s", col.name, collection_cfg["kind"], len(col.clips), col.source)
    cache = FingerprintCache(Layout.at(out_dir).fingerprint_cache)
    m = build_manifest(col, on_bad_audio, collection_cfg.get("check_audio", "full"), threads, progress, cache)
    cache.keep_only(m.clips["path"])
    cache.save()
    for row in m.bad.itertuples(index=False):
        log.warning("bad audio, skipped: %s: %s", row.path, row.reason)
    paths = write_manifest(m, out_dir)
    log.info(
        "manifest: %d clips, %d labels, %d families, %d bad -> %s",
        len(m.clips), len(m.labels), len(m.families), len(m.bad), paths["manifest"],
    )
    return paths


def audio_state(collection_cfg: dict) -> str:
    """A digest of the sizes and mtimes of the collection's audio files
    (:func:`soundsim.fingerprint.tree_digest` of ``audio_dir``), cheap enough to
    compute whenever the workflow is planned: when it changes, the manifest is
    made again (and fingerprints of changed files computed). ``generated`` for
    the demo, whose audio is a rule's output."""
    from soundsim.fingerprint import tree_digest

    if collection_cfg["kind"] == "demo":
        return "generated"
    return tree_digest(collection_cfg["audio_dir"])


def expected_clips(collection_cfg: dict, manifest_path: str | Path) -> int | None:
    """How many clips evaluation can expect, at planning time: the rows of an
    existing manifest, else the size of the collection as configured (the
    ground truth's rows; the demo's classes x clips per class); None when
    unknown."""
    path = Path(manifest_path)
    try:
        if path.is_file():
            with path.open() as fh:
                return max(0, sum(1 for _ in fh) - 1)
        if collection_cfg["kind"] == "demo":
            from soundsim.datasets import demo

            return len(demo.plan(int(collection_cfg.get("clips_per_class", 16))))
        gt = Path(collection_cfg["ground_truth"])
        return len(pd.read_csv(gt, usecols=["fname"])) if gt.is_file() else None
    except (OSError, ValueError, KeyError):
        return None


def write_manifest(m: Manifest, out_dir: str | Path) -> dict[str, Path]:
    """Write manifest.csv, bad_audio.csv, labels.csv, families.json under ``out_dir``
    (the collection's folder, :class:`soundsim.layout.Layout`); missing values as empty cells."""
    lay = Layout.at(out_dir)
    return {
        "manifest": write_csv_atomic(m.clips, lay.manifest, na_rep=""),
        "bad_audio": write_csv_atomic(m.bad, lay.bad_audio, na_rep=""),
        "labels": write_csv_atomic(m.labels, lay.labels, na_rep=""),
        "families": write_text_atomic(lay.families, json.dumps(m.families, indent=2) + "\n"),
    }


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest.csv back; ``labels`` becomes a list per clip."""
    path = Path(path)
    if not path.is_file():
        raise CollectionError(f"{path}: manifest not found (run the 'manifest' rule or `soundsim manifest`)")
    df = pd.read_csv(path, dtype={"fname": str, "labels": str, "path": str, "fingerprint": str},
                     keep_default_na=False)
    if "fingerprint" not in df.columns:  # soundsim < 0.2: no content keys, nothing is reused
        df.insert(len(df.columns) - 1, "fingerprint", "")
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise CollectionError(f"{path}: not a soundsim manifest (missing columns {', '.join(missing)})")
    df["labels"] = df["labels"].map(lambda s: [x for x in s.split(",") if x])
    return df
