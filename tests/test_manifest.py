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


def m4a_like(path):
    """A file that begins like a real M4A (an ISO-BMFF 'ftyp' box of brand 'M4A '):
    libsndfile cannot read the container, whatever follows."""
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom\x00\x00\x00\x00" + bytes(4096))
    return path


def test_opus_is_accepted_and_m4a_is_reported_as_unsupported(tmp_path, csv_collection):
    import numpy as np
    import soundfile as sf

    p = csv_collection([("a1", "Dog"), ("op", "Dog"), ("aac", "Rain"), ("b1", "Rain")])
    sf.write(p["audio_dir"] / "op.opus", 0.2 * np.sin(np.arange(24000) / 7.0), 48000, format="OGG", subtype="OPUS")
    m4a_like(p["audio_dir"] / "aac.m4a")
    m = build(p, on_bad_audio="skip")
    row = m.clips.set_index("fname").loc["op"]
    assert (row.format, row.subtype, row.sample_rate, row.frames) == ("OGG", "OPUS", 48000, 24000)
    assert m.bad.to_dict("records") == [{"fname": "aac", "path": str((p["audio_dir"] / "aac.m4a").resolve()),
                                         "reason": "format not supported by libsndfile (convert it, e.g. with "
                                                   "ffmpeg)"}]
    with pytest.raises(CollectionError, match=r"1 unusable audio file\(s\) and extraction.on_bad_audio is 'fail':"
                                              r"\n  .*aac.m4a: format not supported by libsndfile"):
        build(p, on_bad_audio="fail")


def test_a_supported_file_is_preferred_over_an_unsupported_one_of_the_same_name(tmp_path, csv_collection):
    p = csv_collection([("a1", "Dog"), ("b1", "Rain")])
    m4a_like(p["audio_dir"] / "a1.m4a")  # beside a1.wav
    m = build(p)
    assert m.clips.set_index("fname").loc["a1", "path"].endswith("a1.wav") and m.bad.empty


def test_fingerprints_are_in_the_manifest_and_cached(tmp_path, csv_collection, caplog):
    import os

    from soundsim.fingerprint import file_fingerprint

    p = csv_collection()
    cfg = {"name": "c", "kind": "csv", "audio_dir": str(p["audio_dir"]), "ground_truth": str(p["ground_truth"]),
           "vocabulary": str(p["vocabulary"]), "families": str(p["families"])}
    caplog.set_level("INFO")
    manifest.run(cfg, tmp_path / "out", progress=False)
    assert "fingerprints: 0 reused (file unchanged), 5 computed" in caplog.text
    back = manifest.read_manifest(tmp_path / "out" / "manifest.csv").set_index("fname")
    assert back.loc["b2", "fingerprint"] == file_fingerprint(p["audio_dir"] / "b2.flac")
    state = manifest.audio_state(cfg)
    caplog.clear()
    manifest.run(cfg, tmp_path / "out", progress=False)
    assert "fingerprints: 5 reused (file unchanged), 0 computed" in caplog.text
    assert manifest.audio_state(cfg) == state
    # one clip rewritten: a new state for the workflow, one fingerprint computed again
    f = p["audio_dir"] / "c1.wav"
    st = os.stat(f)
    f.write_bytes(f.read_bytes()[:-2] + b"\x01\x02")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert manifest.audio_state(cfg) != state
    caplog.clear()
    manifest.run(cfg, tmp_path / "out", progress=False)
    assert "fingerprints: 4 reused (file unchanged), 1 computed" in caplog.text
    again = manifest.read_manifest(tmp_path / "out" / "manifest.csv").set_index("fname")
    assert again.loc["c1", "fingerprint"] != back.loc["c1", "fingerprint"]
    assert (again.drop(index="c1")["fingerprint"] == back.drop(index="c1")["fingerprint"]).all()


def test_a_manifest_without_fingerprints_still_reads(tmp_path, csv_collection):
    m = build(csv_collection())
    old = m.clips.drop(columns=["fingerprint"])  # soundsim < 0.2
    old.to_csv(tmp_path / "manifest.csv", index=False)
    back = manifest.read_manifest(tmp_path / "manifest.csv")
    assert list(back.columns) == manifest.MANIFEST_COLUMNS and (back["fingerprint"] == "").all()
