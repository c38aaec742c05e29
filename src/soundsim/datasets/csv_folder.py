"""``csv`` collections: any folder of audio plus a ground-truth CSV.

Config keys (``collection:``): ``audio_dir``, ``ground_truth`` (columns
``fname,labels``; labels comma-separated; an optional ``path`` column gives
each file relative to ``audio_dir``), optional ``vocabulary`` (allowed labels)
and optional ``families`` (JSON family -> labels). Labels in no family (or in
none given) are evaluated per label only.
"""

from __future__ import annotations

from pathlib import Path

from soundsim.datasets.common import Collection, locate_audio, read_families, read_ground_truth, read_vocabulary


def load(
    name: str,
    audio_dir: str | Path,
    ground_truth: str | Path,
    vocabulary: str | Path | None = None,
    families: str | Path | None = None,
) -> Collection:
    """Read a csv collection. Files are matched by fname (see :func:`locate_audio`)."""
    df = read_ground_truth(ground_truth)
    if "path" in df.columns and (df["path"] != "").all():
        base = Path(audio_dir)
        df["path"] = [str((base / p).resolve()) if (base / p).is_file() else None for p in df["path"]]
    else:
        df["path"] = locate_audio(audio_dir, df["fname"].tolist())
    vocab = read_vocabulary(vocabulary)[0] if vocabulary else None
    fams = read_families(families) if families else {}
    return Collection(
        name=name,
        clips=df[["fname", "path", "labels"]].copy(),
        vocabulary=vocab,
        families=fams,
        multi_parent=[],
        source=str(ground_truth),
    )
