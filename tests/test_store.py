"""Embedding files: round trips, validation errors naming the file and clip."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from soundsim.store import (
    EmbeddingError,
    read_embeddings,
    read_rankings,
    write_embeddings,
    write_processed,
    write_rankings,
)

ATTRS = {"model": "toy", "variation": "v1", "sample_rate": 16000, "hop": 0.5}


def _frames(seed: int = 0, n: int = 4, d: int = 3) -> tuple[list[str], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    fnames = [f"clip{i}" for i in range(n)]
    return fnames, [rng.standard_normal((i + 1, d)).astype(np.float32) for i in range(n)]


def _raw_file(path: Path, fnames, emb, offsets, **attrs) -> Path:
    """Write an HDF5 file directly, bypassing write_embeddings' checks."""
    with h5py.File(path, "w") as f:
        f.create_dataset("fnames", data=np.array(fnames, dtype=object), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("embeddings", data=emb)
        f.create_dataset("offsets", data=np.asarray(offsets))
        for k, v in {"level": "frame", **ATTRS, **attrs}.items():
            f.attrs[k] = v
    return path


def test_round_trip_list_of_frames(tmp_path):
    fnames, frames = _frames()
    p = write_embeddings(tmp_path / "e.h5", fnames, frames, ATTRS, failed=[("bad.wav", "decode error")])
    e = read_embeddings(p)
    assert e.fnames == fnames
    assert e.embeddings.dtype == np.float32 and e.embeddings.shape == (1 + 2 + 3 + 4, 3)
    assert e.offsets.tolist() == [0, 1, 3, 6, 10]
    for i, fr in enumerate(frames):
        np.testing.assert_array_equal(e.clip_rows(i), fr)
    assert e.attrs["level"] == "frame" and e.attrs["dim"] == 3 and e.attrs["model"] == "toy"
    assert e.attrs["sample_rate"] == 16000 and e.attrs["hop"] == 0.5
    assert "numpy" in e.attrs["versions"] and e.attrs["created"].startswith("20")
    assert e.failed == [("bad.wav", "decode error")]


def test_round_trip_offsets_form_and_clip_level(tmp_path):
    emb = np.arange(12, dtype=np.float32).reshape(4, 3)
    p = write_embeddings(tmp_path / "c.h5", ["a", "b", "c", "d"], (emb, np.arange(5)), {"model": "m", "variation": "v"})
    e = read_embeddings(p)
    assert e.attrs["level"] == "clip"  # one row per clip -> inferred
    assert np.isnan(e.attrs["hop"]) and e.attrs["sample_rate"] == -1
    np.testing.assert_array_equal(e.embeddings, emb)
    sub = e.subset([2, 0])
    assert sub.fnames == ["c", "a"] and sub.embeddings.tolist() == [emb[2].tolist(), emb[0].tolist()]


def test_subset_of_frame_level(tmp_path):
    fnames, frames = _frames(n=4)
    e = read_embeddings(write_embeddings(tmp_path / "e.h5", fnames, frames, ATTRS))
    sub = e.subset([3, 1])
    assert sub.fnames == ["clip3", "clip1"] and sub.offsets.tolist() == [0, 4, 6]
    np.testing.assert_array_equal(sub.embeddings, np.concatenate([frames[3], frames[1]]))


def test_nan_names_clip_and_file(tmp_path):
    fnames, frames = _frames()
    frames[2][1, 0] = np.nan
    p = _raw_file(tmp_path / "nan.h5", fnames, np.concatenate(frames), [0, 1, 3, 6, 10])
    msg = r"^.*nan\.h5: non-finite value \(nan\) in clip 'clip2' \(row 1 of its 3\)"
    with pytest.raises(EmbeddingError, match=msg):
        read_embeddings(p)


def test_write_refuses_inf_and_leaves_no_file(tmp_path):
    fnames, frames = _frames()
    frames[3][0, 2] = np.inf
    out = tmp_path / "inf.h5"
    with pytest.raises(EmbeddingError, match=r"clip 'clip3'"):
        write_embeddings(out, fnames, frames, ATTRS)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_empty_clip_named(tmp_path):
    emb = np.ones((3, 2), dtype=np.float32)
    p = _raw_file(tmp_path / "empty.h5", ["a", "b", "c"], emb, [0, 1, 1, 3])
    with pytest.raises(EmbeddingError, match=r"empty\.h5: 1 empty clip\(s\) \(no embedding rows\): 'b'"):
        read_embeddings(p)


def test_duplicate_fnames_named(tmp_path):
    emb = np.ones((3, 2), dtype=np.float32)
    p = _raw_file(tmp_path / "dup.h5", ["a", "b", "a"], emb, [0, 1, 2, 3])
    with pytest.raises(EmbeddingError, match=r"dup\.h5: 1 duplicate fname\(s\): 'a'"):
        read_embeddings(p)


def test_wrong_dtype_int(tmp_path):
    p = _raw_file(tmp_path / "int.h5", ["a", "b"], np.ones((2, 2), dtype=np.int32), [0, 1, 2])
    with pytest.raises(EmbeddingError, match=r"int\.h5: /embeddings must be float32.*int32"):
        read_embeddings(p)


def test_float64_is_cast_with_note(tmp_path, caplog):
    p = _raw_file(tmp_path / "f64.h5", ["a", "b"], np.ones((2, 2), dtype=np.float64), [0, 1, 2])
    with caplog.at_level(logging.WARNING, logger="soundsim.store"):
        e = read_embeddings(p)
    assert e.embeddings.dtype == np.float32
    assert "cast to float32" in caplog.text and "f64.h5" in caplog.text


@pytest.mark.parametrize(
    ("offsets", "message"),
    [
        ([1, 2, 3, 3], r"/offsets must start at 0, starts at 1"),
        ([0, 2, 3], r"/offsets has 3 entries, expected N\+1 = 4 for 3 clips"),
        ([0, 2, 1, 3], r"/offsets decrease at clip 'b' \(index 1: 2 -> 1\)"),
        ([0, 0, 1, 3], r"1 empty clip\(s\) \(no embedding rows\): 'a'"),
        ([0, 1, 2, 4], r"/offsets must end at the number of embedding rows \(3\), ends at 4"),
    ],
)
def test_bad_offsets(tmp_path, offsets, message):
    p = _raw_file(tmp_path / "off.h5", ["a", "b", "c"], np.ones((3, 2), dtype=np.float32), offsets)
    with pytest.raises(EmbeddingError, match=r"off\.h5: .*" + message):
        read_embeddings(p)


def test_float_offsets_rejected(tmp_path):
    p = _raw_file(tmp_path / "foff.h5", ["a"], np.ones((1, 2), dtype=np.float32), np.array([0.0, 1.0]))
    with pytest.raises(EmbeddingError, match=r"/offsets must be integers"):
        read_embeddings(p)


def test_missing_dataset_and_not_hdf5(tmp_path):
    p = tmp_path / "nooff.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("embeddings", data=np.ones((1, 2), dtype=np.float32))
    with pytest.raises(EmbeddingError, match=r"nooff\.h5: missing dataset\(s\) /fnames, /offsets"):
        read_embeddings(p)
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(EmbeddingError, match=r"junk\.h5: not a readable HDF5 file"):
        read_embeddings(junk)
    with pytest.raises(EmbeddingError, match=r"absent\.h5: embeddings file not found"):
        read_embeddings(tmp_path / "absent.h5")


def test_clip_level_with_several_rows_and_dim_mismatch(tmp_path):
    p = _raw_file(tmp_path / "lvl.h5", ["a", "b"], np.ones((3, 2), dtype=np.float32), [0, 2, 3], level="clip")
    with pytest.raises(EmbeddingError, match=r"level='clip' but 1 clip\(s\) have more than one row: 'a' \(2 rows\)"):
        read_embeddings(p)
    p = _raw_file(tmp_path / "dim.h5", ["a"], np.ones((1, 2), dtype=np.float32), [0, 1], dim=5)
    with pytest.raises(EmbeddingError, match=r"dim\.h5: attribute dim=5 but /embeddings has 2 columns"):
        read_embeddings(p)


def test_write_requires_model_and_consistent_dims(tmp_path):
    with pytest.raises(EmbeddingError, match=r"missing attribute\(s\) model"):
        write_embeddings(tmp_path / "x.h5", ["a"], [np.ones(3, np.float32)], {"variation": "v"})
    with pytest.raises(EmbeddingError, match=r"different embedding dimensions: \[2, 3\]"):
        write_embeddings(tmp_path / "x.h5", ["a", "b"], [np.ones((1, 2)), np.ones((1, 3))], ATTRS)


def test_processed_and_rankings_round_trip(tmp_path):
    X = np.random.default_rng(0).standard_normal((3, 4))
    p = write_processed(tmp_path / "p.h5", ["a", "b", "c"], X, {"model": "m", "aggregation": "mean", "pca": "none"})
    e = read_embeddings(p)
    assert e.attrs["level"] == "clip" and e.attrs["aggregation"] == "mean"
    np.testing.assert_array_equal(e.embeddings, X.astype(np.float32))
    idx = np.array([[1, 2], [0, 2], [1, 0]])
    sc = np.array([[0.9, 0.1], [0.9, 0.5], [0.5, 0.1]])
    r = read_rankings(write_rankings(tmp_path / "r.h5", ["a", "b", "c"], idx, sc, {"search": "mcss", "k": 2}))
    assert r.fnames == ["a", "b", "c"] and r.indices.dtype == np.int32 and r.scores.dtype == np.float32
    np.testing.assert_array_equal(r.indices, idx)
    assert r.attrs["search"] == "mcss" and r.attrs["k"] == 2
    with pytest.raises(EmbeddingError, match=r"rankings must be \(N=3, K\)"):
        write_rankings(tmp_path / "r2.h5", ["a", "b", "c"], idx[:2], sc[:2], {})


def test_versions_attribute_is_json(tmp_path):
    fnames, frames = _frames(n=2)
    p = write_embeddings(tmp_path / "v.h5", fnames, frames, {**ATTRS, "versions": {"torch": "2.5"}})
    with h5py.File(p) as f:
        assert json.loads(f.attrs["versions"]) == {"torch": "2.5"}
    assert read_embeddings(p).attrs["versions"] == {"torch": "2.5"}


def test_file_without_clips_round_trips(tmp_path):
    # a shard where every clip failed: no rows, only /failed
    p = write_embeddings(
        tmp_path / "none.h5", [], (np.zeros((0, 4), np.float32), np.array([0])), {**ATTRS, "level": "frame"},
        failed=[("a", "too short")],
    )
    e = read_embeddings(p)
    assert e.n_clips == 0 and e.embeddings.shape == (0, 4) and e.failed == [("a", "too short")]


def test_tuple_of_clip_arrays_is_not_mistaken_for_offsets(tmp_path):
    # two clips given as a tuple; the second is one 1-D row, not an offsets array
    data = (np.ones((2, 3), np.float32), np.full(3, 2.0, np.float32))
    e = read_embeddings(write_embeddings(tmp_path / "t.h5", ["a", "b"], data, ATTRS))
    assert e.offsets.tolist() == [0, 2, 3] and e.embeddings[2].tolist() == [2.0, 2.0, 2.0]
