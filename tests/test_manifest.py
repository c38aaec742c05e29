"""The manifest: structural errors, bad audio per policy, outputs."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from soundsim import manifest
from soundsim.datasets import csv_folder
from soundsim.errors import CollectionError


def build(p, **kw):
    return manifest.build_manifest(csv_folder.load("c", **p), progress=False, **kw)


def test_manifest_of_a_good_collection(tmp_path, csv_collection):
    m = build(csv_collection(), threads=2)
    assert list(m.clips.columns) == manifest.MANIFEST_COLUMNS
    row = m.clips.set_index("fname").loc["a2"]
    assert (row.sample_rate, row.channels, row.format, row.labels) == (22050, 2, "FLAC", "Dog,Bark")
    assert row.frames == int(0.75 * 22050) and row.duration == pytest.approx(row.frames / 22050, abs=1e-6)
    assert m.bad.empty
    assert m.labels.to_dict("records") == [
        {"label": "Bark", "n_clips": 2, "family": "Animal", "multi_parent": False},
        {"label": "Dog", "n_clips": 2, "family": "Animal", "multi_parent": False},
        {"label": "Rain", "n_clips": 2, "family": "Natural_sounds", "multi_parent": False},
    ]
    paths = manifest.write_manifest(m, tmp_path / "out")
    back = manifest.read_manifest(paths["manifest"])
    assert back["labels"].tolist()[1] == ["Dog", "Bark"]
    assert back["fname"].tolist() == ["a1", "a2", "b1", "b2", "c1"]
    assert json.loads(paths["families"].read_text()) == {"Animal": ["Dog", "Bark"], "Natural_sounds": ["Rain"]}
    assert pd.read_csv(paths["bad_audio"]).columns.tolist() == ["fname", "path", "reason"]
    assert not list((tmp_path / "out").glob(".*tmp*")), "no temporary files left behind"


def test_missing_files_are_listed(csv_collection):
    rows = [("a1", "Dog")] + [(f"gone{i}", "Dog") for i in range(7)]
    with pytest.raises(CollectionError) as exc:
        build(csv_collection(rows))
    msg = str(exc.value)
    assert "7 clip(s) have no audio file: gone0, gone1, gone2, gone3, gone4, ... (2 more)" in msg


def test_unknown_label(csv_collection):
    with pytest.raises(CollectionError, match=r"1 label\(s\) not in the vocabulary: 'Meow' \(e.g. clip a2\)"):
        build(csv_collection([("a1", "Dog"), ("a2", "Dog,Meow")]))


def test_duplicate_fname(csv_collection):
    with pytest.raises(CollectionError, match=r"1 duplicate fname\(s\) in .*gt.csv: a1"):
        build(csv_collection([("a1", "Dog"), ("a1", "Bark"), ("b1", "Rain")]))


def test_problems_reported_together(csv_collection):
    with pytest.raises(CollectionError) as exc:
        build(csv_collection([("a1", "Dog"), ("a1", "Meow"), ("zz", "Rain")]))
    msg = str(exc.value)
    assert "duplicate fname" in msg and "not in the vocabulary" in msg and "no audio file: zz" in msg


def _with_bad_audio(csv_collection, make_bad_audio):
    p = csv_collection()
    bad = make_bad_audio(p["audio_dir"].parent / "bad")
    for kind, path in bad.items():
        shutil.move(path, p["audio_dir"] / f"{kind}{path.suffix}")
    rows = [("a1", "Dog"), ("b1", "Rain")] + [(kind, "Bark") for kind in bad]
    return csv_collection(rows), sorted(bad)


def test_bad_audio_skip(tmp_path, csv_collection, make_bad_audio):
    p, kinds = _with_bad_audio(csv_collection, make_bad_audio)
    m = build(p, on_bad_audio="skip")
    assert m.clips["fname"].tolist() == ["a1", "b1"]
    reasons = dict(zip(m.bad["fname"], m.bad["reason"], strict=True))
    assert sorted(reasons) == kinds
    assert reasons["empty"] == "empty file (0 bytes)"
    assert reasons["truncated_wav"].startswith("truncated: header declares")
    assert reasons["truncated_flac"].startswith("cannot decode")
    assert reasons["zero_length"].startswith("no audio frames")
    assert reasons["random"].startswith("cannot read audio header")
    assert all(path.endswith(f"/{f}.wav") or path.endswith(f"/{f}.flac") for f, path in zip(m.bad["fname"], m.bad["path"], strict=True))
    # labels only count usable clips: Bark was only on the bad ones
    assert m.labels["label"].tolist() == ["Dog", "Rain"]
    assert json.loads(json.dumps(m.families)) == {"Animal": ["Dog"], "Natural_sounds": ["Rain"]}
    out = manifest.write_manifest(m, tmp_path / "o")
    assert len(pd.read_csv(out["bad_audio"])) == 5


def test_bad_audio_fail_names_files(csv_collection, make_bad_audio):
    p, _ = _with_bad_audio(csv_collection, make_bad_audio)
    with pytest.raises(CollectionError) as exc:
        build(p, on_bad_audio="fail")
    msg = str(exc.value)
    assert "5 unusable audio file(s) and extraction.on_bad_audio is 'fail'" in msg
    assert "empty.wav: empty file (0 bytes)" in msg


def test_header_check_mode_is_faster_but_weaker(csv_collection, make_bad_audio):
    p, _ = _with_bad_audio(csv_collection, make_bad_audio)
    m = build(p, check="header")
    assert "truncated_flac" in m.clips["fname"].tolist()  # only a full decode finds it
    assert "truncated_wav" in m.bad["fname"].tolist()  # the RIFF size check still does


def test_read_manifest_errors(tmp_path):
    with pytest.raises(CollectionError, match="manifest not found"):
        manifest.read_manifest(tmp_path / "manifest.csv")
    (tmp_path / "m.csv").write_text("fname,labels\nx,Dog\n")
    with pytest.raises(CollectionError, match="not a soundsim manifest"):
        manifest.read_manifest(tmp_path / "m.csv")
