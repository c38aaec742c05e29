"""The table every collection adapter produces, and readers shared by adapters."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from soundsim.audio import AUDIO_EXTENSIONS, UNSUPPORTED_EXTENSIONS
from soundsim.errors import CollectionError


@dataclass
class Collection:
    """A labelled set of sounds, whatever its source.

    ``clips``: one row per clip with columns ``fname`` (str, unique id),
    ``path`` (str, or None when no audio file was found) and ``labels``
    (list of str, at least one). ``vocabulary``: the allowed labels, or None
    when the source defines none (then any label is accepted).
    ``families``: family -> member labels; ``multi_parent``: labels that belong
    to no family and are left out of family averages.
    """

    name: str
    clips: pd.DataFrame
    vocabulary: list[str] | None = None
    families: dict[str, list[str]] = field(default_factory=dict)
    multi_parent: list[str] = field(default_factory=list)
    source: str = ""

    def label_family(self) -> dict[str, str | None]:
        """Label -> family name (None: multi-parent or in no family), for every label in use."""
        fam = {lab: f for f, labs in self.families.items() for lab in labs}
        used = sorted({lab for labs in self.clips["labels"] for lab in labs})
        return {lab: fam.get(lab) for lab in used}


def split_labels(value: str) -> list[str]:
    """``"Bark,Dog"`` -> ``["Bark", "Dog"]`` (FSD50K's comma-separated labels field)."""
    return [s.strip() for s in str(value).split(",") if s.strip()]


def read_ground_truth(path: str | Path) -> pd.DataFrame:
    """Read a ground-truth CSV with columns ``fname,labels`` (and optionally
    ``mids``, ``path``, ``split``...). Returns columns fname (str), labels (list)
    plus any optional ones kept as strings."""
    path = Path(path)
    if not path.is_file():
        raise CollectionError(f"{path}: ground-truth file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise CollectionError(f"{path}: cannot parse as CSV: {e}") from e
    missing = [c for c in ("fname", "labels") if c not in df.columns]
    if missing:
        raise CollectionError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(df.columns) or 'none'} "
            "(expected a header line 'fname,labels')"
        )
    df["fname"] = df["fname"].str.strip()
    df["labels"] = df["labels"].map(split_labels)
    empty = df.loc[df["labels"].map(len) == 0, "fname"].tolist()
    if empty:
        raise CollectionError(f"{path}: {len(empty)} clip(s) without labels, e.g. {', '.join(empty[:5])}")
    return df


def read_vocabulary(path: str | Path) -> tuple[list[str], dict[str, str]]:
    """Read a vocabulary: FSD50K's headerless ``index,label,mid`` rows, or a CSV
    with a ``label`` column (and optionally ``mid``), or one label per line.
    Returns (labels in file order, label -> mid where known)."""
    path = Path(path)
    if not path.is_file():
        raise CollectionError(f"{path}: vocabulary file not found")
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows:
        raise CollectionError(f"{path}: empty vocabulary")
    header = [c.strip().lower() for c in rows[0]]
    labels: list[str] = []
    mids: dict[str, str] = {}
    if "label" in header:
        li, mi = header.index("label"), header.index("mid") if "mid" in header else None
        for r in rows[1:]:
            labels.append(r[li].strip())
            if mi is not None and len(r) > mi and r[mi].strip():
                mids[r[li].strip()] = r[mi].strip()
    elif len(rows[0]) >= 2 and rows[0][0].strip().isdigit():  # FSD50K: index,label,mid
        for r in rows:
            labels.append(r[1].strip())
            if len(r) > 2 and r[2].strip():
                mids[r[1].strip()] = r[2].strip()
    else:  # one label per line
        labels = [r[0].strip() for r in rows]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise CollectionError(f"{path}: duplicate labels in vocabulary: {', '.join(dup[:5])}")
    return labels, mids


def read_families(path: str | Path) -> dict[str, list[str]]:
    """Read a JSON object family -> list of labels (FSD50K_taxonomy-families.json format)."""
    path = Path(path)
    if not path.is_file():
        raise CollectionError(f"{path}: families file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CollectionError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()
    ):
        raise CollectionError(f"{path}: expected a JSON object mapping each family to a list of labels")
    seen: dict[str, str] = {}
    for fam, labs in data.items():
        for lab in labs:
            if lab in seen and seen[lab] != fam:
                raise CollectionError(f"{path}: label {lab!r} is in two families ({seen[lab]!r} and {fam!r})")
            seen[lab] = fam
    return {str(k): list(v) for k, v in data.items()}


def locate_audio(audio_dir: str | Path, fnames: list[str]) -> list[str | None]:
    """Find each clip's file in ``audio_dir``: ``<fname>`` itself when it has an
    audio extension, else ``<fname>.<ext>`` for the known extensions, those
    libsndfile decodes first (``AUDIO_EXTENSIONS``), else a file in a format it
    cannot decode (``UNSUPPORTED_EXTENSIONS``: found, so that the manifest
    reports it as an unusable clip rather than a missing one). One directory
    listing, so it scales to large folders. None where nothing is found; a clip
    with several candidate files is an error (ambiguous)."""
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise CollectionError(f"{audio_dir}: audio folder not found")
    known = AUDIO_EXTENSIONS + UNSUPPORTED_EXTENSIONS
    by_stem: dict[str, list[str]] = {}
    unsupported: dict[str, list[str]] = {}
    names: set[str] = set()
    with os.scandir(audio_dir) as it:
        for e in it:
            if not e.is_file():
                continue
            names.add(e.name)
            stem, ext = os.path.splitext(e.name)
            if ext.lower() in AUDIO_EXTENSIONS:
                by_stem.setdefault(stem, []).append(e.name)
            elif ext.lower() in UNSUPPORTED_EXTENSIONS:
                unsupported.setdefault(stem, []).append(e.name)
    out: list[str | None] = []
    for f in fnames:
        if os.path.splitext(f)[1].lower() in known:
            out.append(str((audio_dir / f).resolve()) if f in names else None)
            continue
        cands = by_stem.get(f) or unsupported.get(f, [])
        if len(cands) > 1:
            raise CollectionError(f"{audio_dir}: clip {f!r} is ambiguous: {', '.join(sorted(cands))}")
        out.append(str((audio_dir / cands[0]).resolve()) if cands else None)
    return out
