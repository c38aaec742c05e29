"""Precomputed embeddings (soundsim.precomputed, kind precomputed): every reader on small
hand-made files, the import into the store format, its errors, the source fingerprint,
the registry's view of such a model, the CLI, and a real workflow run (slow)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soundsim import models, plan, precomputed, provenance, store
from soundsim.cli import main
from soundsim.config import load_yaml, validate_config
from soundsim.errors import ConfigError
from soundsim.manifest import MANIFEST_COLUMNS
from soundsim.precomputed import SourceError, source_of

from conftest import SCHEMA

D = 4


def vectors(n_frames: dict[str, int], dim: int = D, seed: int = 0) -> dict[str, np.ndarray]:
    """name -> (frames, dim) float32, deterministic."""
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal((k, dim)).astype(np.float32) for n, k in n_frames.items()}


CLIPS = {"a": 1, "b": 3, "c": 2}


def write_manifest(folder: Path, fnames: list[str], bad: list[str] = ()) -> Path:
    """A manifest.csv (and bad_audio.csv) in soundsim's format for clips ``fnames``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"fname": f, "path": str(folder / f"{f}.wav"), "duration": 1.0, "sample_rate": 16000, "channels": 1,
             "frames": 16000, "format": "WAV", "subtype": "PCM_16", "fingerprint": f"xxh3-128:{i:032x}",
             "labels": "Dog"} for i, f in enumerate(fnames)]
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(folder / "manifest.csv", index=False)
    pd.DataFrame({"fname": list(bad), "path": [""] * len(bad), "reason": ["unreadable"] * len(bad)}).to_csv(
        folder / "bad_audio.csv", index=False)
    return folder / "manifest.csv"


def table(data: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per frame: fname, d0..d{D-1}."""
    rows = [(n, *r) for n, a in data.items() for r in a]
    return pd.DataFrame(rows, columns=["fname"] + [f"d{k}" for k in range(next(iter(data.values())).shape[1])])


def write_source(fmt: str, folder: Path, data: dict[str, np.ndarray]) -> precomputed.Source:
    """``data`` written in format ``fmt`` under ``folder``; its Source."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [n for n, a in data.items() for _ in a]
    stacked = np.concatenate(list(data.values()))
    if fmt == "npy-folder":
        (folder / "vec").mkdir(exist_ok=True)
        for n, a in data.items():
            np.save(folder / "vec" / f"{n}.npy", a[0] if len(a) == 1 else a)  # (D,) for one row
        return source_of(folder / "vec")
    if fmt == "npz-matrix":
        np.savez(folder / "v.npz", X=stacked, fnames=np.array(names))
        return source_of(folder / "v.npz")
    if fmt == "npz-arrays":
        np.savez(folder / "v.npz", **data)
        return source_of(folder / "v.npz")
    if fmt == "npy":
        np.save(folder / "v.npy", stacked)
        (folder / "fnames.txt").write_text("\n".join(names) + "\n")
        return source_of(folder / "v.npy", fnames=folder / "fnames.txt")
    if fmt == "parquet":
        table(data).to_parquet(folder / "v.parquet")
        return source_of(folder / "v.parquet")
    if fmt == "parquet-list":
        pd.DataFrame({"fname": names, "embedding": list(stacked)}).to_parquet(folder / "v.parquet")
        return source_of(folder / "v.parquet")
    if fmt in ("csv", "tsv"):
        table(data).to_csv(folder / f"v.{fmt}", index=False, sep="," if fmt == "csv" else "\t")
        return source_of(folder / f"v.{fmt}")
    if fmt == "hdf5":
        store.write_embeddings(folder / "v.h5", list(data), list(data.values()), {"model": "x", "variation": "y"})
        return source_of(folder / "v.h5")
    raise AssertionError(fmt)


FORMATS = ["npy-folder", "npz-matrix", "npz-arrays", "npy", "parquet", "parquet-list", "csv", "tsv", "hdf5"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_reader_gives_back_the_vectors(fmt, tmp_path):
    data = vectors(CLIPS)
    src = write_source(fmt, tmp_path, data)
    assert precomputed.describe(src) == precomputed.Summary(src.format, D, "frame")
    vec = precomputed.read_source(src)
    assert sorted(vec.names) == sorted(data)
    for n, rows in zip(vec.names, vec.rows, strict=True):
        assert rows.dtype == np.float32 and np.array_equal(rows, data[n]), (fmt, n)


@pytest.mark.parametrize("fmt", ["npy-folder", "parquet", "csv", "npz-matrix", "hdf5"])
def test_one_row_per_clip_is_clip_level(fmt, tmp_path):
    data = vectors({"a": 1, "b": 1})
    src = write_source(fmt, tmp_path, data)
    assert precomputed.describe(src).level == "clip"


def test_a_3d_array_gives_each_clip_its_frames(tmp_path):
    X = np.arange(2 * 3 * D, dtype=np.float32).reshape(2, 3, D)
    np.save(tmp_path / "v.npy", X)
    (tmp_path / "f.txt").write_text("a\nb\n")
    src = source_of(tmp_path / "v.npy", fnames=tmp_path / "f.txt")
    assert precomputed.describe(src) == precomputed.Summary("npy", D, "frame")
    vec = precomputed.read_source(src)
    assert vec.names == ["a", "b"] and np.array_equal(vec.rows[1], X[1])


def test_import_writes_the_manifest_order_and_matches_names_without_extensions(tmp_path):
    """Collection fnames with an extension, files named by the stem; a clip without a vector is failed."""
    man = write_manifest(tmp_path / "res", ["c.wav", "a.wav", "b.flac", "z.wav"])
    data = vectors(CLIPS)
    src = write_source("npy-folder", tmp_path, data)
    out = precomputed.import_embeddings(src, man, tmp_path / "e.h5", "mine", code_version="abc")
    e = store.read_embeddings(out)
    assert e.fnames == ["c.wav", "a.wav", "b.flac"]
    for f in e.fnames:
        assert np.array_equal(e.clip_rows(e.fnames.index(f)), data[f.split(".")[0]])
    assert e.failed == [("z.wav", f"no vector in {src.path}")]
    a = e.attrs
    assert (a["model"], a["variation"], a["level"], a["dim"], a["n_failed"], a["sample_rate"]) == \
        ("mine", "precomputed", "frame", D, 1, -1)
    assert a["source_format"] == "npy-folder" and a["source_fingerprint"] == precomputed.source_fingerprint(src)
    assert a["code_version"] == "abc" and a["processing"] == "l2-pca" and np.isnan(a["hop"])


def test_source_names_with_extensions_match_fnames_without(tmp_path):
    man = write_manifest(tmp_path / "res", ["a", "b"])
    data = {"a.wav": np.ones((1, D), np.float32), "b.flac": np.zeros((1, D), np.float32)}
    src = write_source("parquet", tmp_path, data)
    e = store.read_embeddings(precomputed.import_embeddings(src, man, tmp_path / "e.h5", "m"))
    assert e.fnames == ["a", "b"] and e.attrs["level"] == "clip" and e.embeddings[0, 0] == 1


def test_missing_vectors_with_on_missing_fail_are_listed(tmp_path):
    man = write_manifest(tmp_path / "res", ["a", "b", "c", "d", "e"])
    src = write_source("csv", tmp_path, vectors({"a": 1}))
    with pytest.raises(SourceError, match=r"4 clip\(s\) of .*manifest.csv have no vector: 'b', 'c', 'd', 'e'"):
        precomputed.import_embeddings(src, man, tmp_path / "e.h5", "m", on_missing="fail")
    assert not (tmp_path / "e.h5").exists()


def test_a_source_matching_no_clip_is_an_error(tmp_path):
    """Only vectors of clips the manifest left out as bad audio: nothing to import."""
    man = write_manifest(tmp_path / "res", ["a", "b"], bad=["x"])
    src = write_source("hdf5", tmp_path, vectors({"x": 1}))
    with pytest.raises(SourceError, match=r"v.h5: no vector for any of the 2 clips of .*manifest.csv"):
        precomputed.import_embeddings(src, man, tmp_path / "e.h5", "m", bad_audio_path=man.parent / "bad_audio.csv")


def test_names_not_in_the_collection_are_listed_with_their_count(tmp_path):
    man = write_manifest(tmp_path / "res", ["a"], bad=["broken"])
    data = vectors({"a": 1, "broken": 1, **{f"x{i:02d}": 1 for i in range(12)}})
    src = write_source("npz-arrays", tmp_path, data)
    with pytest.raises(SourceError) as e:
        precomputed.import_embeddings(src, man, tmp_path / "e.h5", "m", bad_audio_path=man.parent / "bad_audio.csv")
    msg = str(e.value)
    assert msg.startswith(f"{src.path}: 12 name(s) not in the collection: 'x00', 'x01'")
    assert "'x09', ... (2 more)" in msg and "broken" not in msg


def test_bad_audio_clips_in_the_source_are_dropped(tmp_path):
    man = write_manifest(tmp_path / "res", ["a", "b"], bad=["broken.wav"])
    src = write_source("npy-folder", tmp_path, vectors({"a": 1, "b": 1, "broken": 1}))
    e = store.read_embeddings(precomputed.import_embeddings(src, man, tmp_path / "e.h5", "m",
                                                            bad_audio_path=man.parent / "bad_audio.csv"))
    assert e.fnames == ["a", "b"] and not e.failed


def test_dimension_mismatch_names_two_clips_and_their_dims(tmp_path):
    (tmp_path / "v").mkdir()
    np.save(tmp_path / "v" / "a.npy", np.zeros((2, 8), np.float32))
    np.save(tmp_path / "v" / "b.npy", np.zeros(8, np.float32))
    np.save(tmp_path / "v" / "c.npy", np.zeros((1, 5), np.float32))
    with pytest.raises(SourceError, match=r"v: dimension mismatch: a.npy has 8 columns but c.npy has 5 \(1 of 3"):
        precomputed.read_source(source_of(tmp_path / "v"))
    np.savez(tmp_path / "v.npz", a=np.zeros(3), b=np.zeros(4))
    with pytest.raises(SourceError, match="dimension mismatch: array 'a' has 3 columns but array 'b' has 4"):
        precomputed.read_source(source_of(tmp_path / "v.npz"))
    pd.DataFrame({"fname": ["a", "b"], "e": [np.zeros(3), np.zeros(2)]}).to_parquet(tmp_path / "l.parquet")
    with pytest.raises(SourceError, match="dimension mismatch: clip 'a' has 3 columns but clip 'b' has 2"):
        precomputed.read_source(source_of(tmp_path / "l.parquet"))


@pytest.mark.parametrize("fmt", ["npy-folder", "parquet", "csv", "npy"])
def test_nan_and_inf_name_the_clip(fmt, tmp_path):
    data = vectors(CLIPS)
    data["b"][2, 1] = np.nan if fmt != "npy" else np.inf
    src = write_source(fmt, tmp_path, data)
    label = "b.npy" if fmt == "npy-folder" else "clip 'b'"
    with pytest.raises(SourceError, match=rf"{label} has a non-finite value \((nan|inf)\) at row 2, column 1"):
        precomputed.read_source(src)


def test_unreadable_files_and_unknown_formats(tmp_path):
    (tmp_path / "v").mkdir()
    np.save(tmp_path / "v" / "a.npy", np.zeros(3, np.float32))
    (tmp_path / "v" / "b.npy").write_bytes(b"not an array")
    with pytest.raises(SourceError, match=r"b.npy: not a readable .npy file"):
        precomputed.describe(source_of(tmp_path / "v"))
    (tmp_path / "x.parquet").write_text("fname,a\n")
    with pytest.raises(SourceError, match=r"x.parquet: not a readable parquet source"):
        precomputed.describe(source_of(tmp_path / "x.parquet"))
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(SourceError, match=r"x.txt: unknown format .*format: \(npy-folder, npz"):
        source_of(tmp_path / "x.txt")
    with pytest.raises(SourceError, match="nope.npz: not found"):
        source_of(tmp_path / "nope.npz")
    np.save(tmp_path / "m.npy", np.zeros((2, 3)))
    with pytest.raises(SourceError, match="a single .npy needs fnames"):
        source_of(tmp_path / "m.npy")
    (tmp_path / "f.txt").write_text("a\n")
    with pytest.raises(SourceError, match=r"1 fnames for 2 rows"):
        precomputed.read_source(source_of(tmp_path / "m.npy", fnames=tmp_path / "f.txt"))
    pd.DataFrame({"fname": ["a"], "d0": [1.0], "note": ["x"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(SourceError, match=r"t.csv: column\(s\) 'note' are not numbers"):
        precomputed.read_source(source_of(tmp_path / "t.csv"))
    pd.DataFrame({"name": ["a"], "d0": [1.0]}).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(SourceError, match=r"u.csv: no 'fname' column"):
        precomputed.describe(source_of(tmp_path / "u.csv"))


def test_level_clip_with_several_rows_and_ambiguous_names(tmp_path):
    man = write_manifest(tmp_path / "res", ["a", "b", "c"])
    src = write_source("parquet", tmp_path, vectors(CLIPS))
    with pytest.raises(SourceError, match=r"level: clip but 2 clip\(s\) have several rows: 'b' \(3 rows\)"):
        precomputed.import_embeddings(src, man, tmp_path / "e.h5", "m", level="clip")
    e = store.read_embeddings(precomputed.import_embeddings(
        write_source("csv", tmp_path / "one", vectors({"a": 1, "b": 1})), man, tmp_path / "e.h5", "m",
        level="frame"))
    assert e.attrs["level"] == "frame" and [f for f, _ in e.failed] == ["c"]
    man = write_manifest(tmp_path / "res3", ["x.wav", "x.flac"])
    with pytest.raises(SourceError, match=r"'x' could be any of the clips 'x.wav', 'x.flac'"):
        precomputed.import_embeddings(write_source("csv", tmp_path / "amb", vectors({"x": 1})), man,
                                      tmp_path / "e.h5", "m")
    man = write_manifest(tmp_path / "res4", ["x.wav"])
    with pytest.raises(SourceError, match=r"'x' and 'x.wav' are both clip 'x.wav'"):
        precomputed.import_embeddings(write_source("npz-arrays", tmp_path / "two", vectors({"x": 1, "x.wav": 1})),
                                      man, tmp_path / "e.h5", "m")


def test_the_import_has_the_level_planning_sees(tmp_path):
    """An HDF5 source that says level frame, one row per clip: frame, as its ModelInfo."""
    man = write_manifest(tmp_path / "res", ["a", "b"])
    store.write_embeddings(tmp_path / "v.h5", ["a", "b"], [np.ones(D, np.float32)] * 2,
                           {"model": "x", "variation": "y", "level": "frame"})
    cfg = {"kind": "precomputed", "path": str(tmp_path / "v.h5")}
    e = store.read_embeddings(precomputed.import_embeddings(source_of(tmp_path / "v.h5"), man, tmp_path / "e.h5", "m"))
    assert e.attrs["level"] == models.info("m", cfg).level == "frame"


def test_an_hdf5_source_keeps_its_failed_clips(tmp_path):
    man = write_manifest(tmp_path / "res", ["a", "b"])
    store.write_embeddings(tmp_path / "v.h5", ["a"], [np.ones((2, D), np.float32)], {"model": "x", "variation": "y"},
                           failed=[("b", "silence")])
    e = store.read_embeddings(precomputed.import_embeddings(source_of(tmp_path / "v.h5"), man, tmp_path / "e.h5", "m"))
    assert e.fnames == ["a"] and e.failed == [("b", "silence")] and e.attrs["model"] == "m"


@pytest.mark.parametrize("fmt", ["npy-folder", "parquet", "npy"])
def test_fingerprint_changes_with_a_vector_and_only_then(fmt, tmp_path):
    data = vectors(CLIPS)
    src = write_source(fmt, tmp_path / "s", data)
    cache = tmp_path / "cache"
    fp = precomputed.source_fingerprint(src, cache)
    assert fp.startswith("xxh3-128:") and precomputed.source_fingerprint(src, cache) == fp
    for f in src.files():  # rewritten with the same bytes, later mtime: same fingerprint
        content = f.read_bytes()
        f.write_bytes(content)
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    assert precomputed.source_fingerprint(src, cache) == fp
    if fmt == "npy-folder":
        (src.path / "README.txt").write_text("notes")  # not read by the import
        assert precomputed.source_fingerprint(src, cache) == fp
    data["b"][0, 0] += 1
    assert write_source(fmt, tmp_path / "s", data) == src  # the same files, one value changed
    assert precomputed.source_fingerprint(src, cache) != fp


def test_fingerprint_of_a_folder_sees_a_renamed_file(tmp_path):
    src = write_source("npy-folder", tmp_path, vectors(CLIPS))
    fp = precomputed.source_fingerprint(src, tmp_path / "cache")
    (src.path / "a.npy").rename(src.path / "a2.npy")
    assert precomputed.source_fingerprint(src, tmp_path / "cache") != fp


# --------------------------------------------------------------------------- the model kind


def test_registry_info_of_a_precomputed_model(tmp_path):
    src = write_source("parquet", tmp_path, vectors({"a": 1, "b": 1}, dim=12))
    cfg = {"kind": "precomputed", "path": str(src.path), "trained_on": ["AudioSet"]}
    inf = models.info("mine", cfg)
    assert (inf.name, inf.dim, inf.level, inf.variations, inf.env, inf.trained_on) == \
        ("mine", 12, "clip", ("precomputed",), "soundsim", ("AudioSet",))
    assert models.info("mine", {**cfg, "level": "frame", "variations": ["v1"]}).level == "frame"
    # trained_on is normalised to the canonical dataset names, and flags an FSD50K collection
    from soundsim.training_data import training_overlap

    fsd = models.info("mine", {**cfg, "trained_on": ["fsd50k", "AudioSet"]})
    assert fsd.trained_on == ("FSD50K", "AudioSet")
    assert str(training_overlap(fsd, "FSD50K").flag) == "true" and str(training_overlap(inf, "FSD50K").flag) == "false"
    models.check_models_config({"mine": cfg})
    grid = {"aggregations": ["mean", "max"], "pca": [10, 100, "none"]}
    warned = []
    assert plan.processing_settings("mine", grid, 50, warned.append, cfg) == [("none", "10"), ("none", "none")]
    assert "100" in warned[0]
    with pytest.raises(ConfigError, match="models.mine: a model of kind 'precomputed' embeds no audio"):
        models.load("mine", cfg=cfg)
    assert "soundsim.precomputed" in provenance.model_code_parts("mine", cfg=cfg)
    assert len(provenance.model_code_version("mine", cfg=cfg)) == 16


def test_config_problems_name_the_key(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((2, 3)))
    bad = {
        "gone": {"kind": "precomputed", "path": str(tmp_path / "nope")},
        "nofn": {"kind": "precomputed", "path": str(tmp_path / "m.npy")},
        "extra": {"kind": "precomputed", "path": str(tmp_path / "m.npy"), "fnames": str(tmp_path / "f.txt"),
                  "module": "x", "options": {"a": 1}, "variations": ["a", "b"]},
    }
    (tmp_path / "f.txt").write_text("a\nb\n")
    with pytest.raises(ConfigError) as e:
        models.check_models_config(bad)
    msg = str(e.value)
    assert f"models.gone.path: {tmp_path / 'nope'}: not found" in msg
    assert "models.nofn.path: " in msg and "a single .npy needs fnames" in msg
    assert "models.extra.module: not used by kind precomputed" in msg
    assert "models.extra.options: a precomputed model takes no options" in msg
    assert "models.extra.variations: a precomputed model has one variation" in msg


def test_schema_accepts_the_precomputed_keys(tmp_path):
    schema = load_yaml(SCHEMA)
    cfg = {"collection": {"name": "d", "kind": "demo"},
           "models": {"v": {"kind": "precomputed", "path": "x.npy", "fnames": "f.txt", "format": "npy",
                            "level": "frame", "trained_on": ["FSD50K"]}}}
    validate_config(cfg, schema)
    with pytest.raises(ConfigError, match="models.v.format: 'txt' is not allowed"):
        validate_config({**cfg, "models": {"v": {"kind": "precomputed", "path": "x", "format": "txt"}}}, schema)
    with pytest.raises(ConfigError, match="'path' is a required property"):
        validate_config({**cfg, "models": {"v": {"kind": "precomputed"}}}, schema)


def test_cli_import_embeddings(tmp_path, capsys):
    man = write_manifest(tmp_path / "res", ["a", "b", "c"])
    src = write_source("npy", tmp_path, vectors(CLIPS))
    out = tmp_path / "e.h5"
    rc = main(["import-embeddings", "--source", str(src.path), "--fnames", str(src.fnames), "--manifest", str(man),
               "--out", str(out), "--model", "m", "--variation", "v"])
    assert rc == 0 and capsys.readouterr().out.strip() == str(out)
    e = store.read_embeddings(out)
    assert e.fnames == ["a", "b", "c"] and e.attrs["variation"] == "v" and e.attrs["source_format"] == "npy"
    rc = main(["import-embeddings", "--source", str(src.path), "--manifest", str(man), "--out", str(out),
               "--model", "m"])
    assert rc == 2 and "a single .npy needs fnames" in capsys.readouterr().err


# --------------------------------------------------------------------------- a real workflow run


def demo_vectors(manifest: Path, dim: int = 16) -> dict[str, np.ndarray]:
    """Deterministic vectors per demo clip: its first label's centroid plus noise, 1 to 3
    frames (so the numbers mean something, and frame-level processing runs)."""
    m = pd.read_csv(manifest, dtype={"fname": str, "labels": str})
    rng = np.random.default_rng(7)
    centroid = {lab: rng.standard_normal(dim) for lab in sorted({s.split(",")[0] for s in m["labels"]})}
    return {f: (centroid[labs.split(",")[0]] + 0.5 * rng.standard_normal((1 + i % 3, dim))).astype(np.float32)
            for i, (f, labs) in enumerate(zip(m["fname"], m["labels"], strict=True))}


@pytest.mark.slow
def test_workflow_npy_folder_parquet_and_hdf5_give_equal_numbers(venv_bin, tmp_path):
    """Three precomputed models with the same vectors (folder of .npy, parquet, soundsim HDF5) in
    one run: equal metrics; a second run does nothing; one changed .npy re-imports and
    re-evaluates that model only."""
    from test_workflow import job_counts, snakemake, write_config

    grid = {"aggregations": ["mean", "max"], "pca": [10, 100, "none"], "searches": ["mips", "mcss", "nns"]}
    write_config(tmp_path, models={}, grid=grid)
    r = snakemake(venv_bin, tmp_path, "results/demo/manifest.csv")
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "results" / "demo"
    data = demo_vectors(res / "manifest.csv")
    (tmp_path / "vec" / "npy").mkdir(parents=True)
    for f, a in data.items():
        np.save(tmp_path / "vec" / "npy" / f"{f}.npy", a)
    table(data).to_parquet(tmp_path / "vec" / "v.parquet")
    store.write_embeddings(tmp_path / "vec" / "v.h5", list(data), list(data.values()),
                           {"model": "elsewhere", "variation": "x"})
    mods = {"vec-npy": {"kind": "precomputed", "path": "vec/npy"},
            "vec-parquet": {"kind": "precomputed", "path": str(tmp_path / "vec" / "v.parquet")},
            "vec-h5": {"kind": "precomputed", "path": "vec/v.h5", "trained_on": []}}
    write_config(tmp_path, models=mods, grid=grid)
    dry = snakemake(venv_bin, tmp_path, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    # PCA 100 > D = 16 is left out: 2 aggregations x 2 PCA per model, each job serving 3 searches
    assert job_counts(dry.stdout) == {"import_embeddings": 3, "relevance": 1, "evaluate": 12, "tables": 1,
                                      "table_pages": 1, "figures": 1, "embedding_maps": 1, "all": 1, "total": 21}
    run = snakemake(venv_bin, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]

    for name in mods:
        e = store.read_embeddings(res / "embeddings" / name / "precomputed.h5")
        assert e.fnames == list(data) and e.attrs["model"] == name and e.attrs["level"] == "frame"
        assert (res / "logs" / "extract" / name / "precomputed.import.log").is_file()
        assert (res / "benchmarks" / "import" / name / "precomputed.tsv").is_file()
    settings = [p.parent.name for p in (res / "metrics" / "vec-npy" / "precomputed").glob("*/summary.json")]
    assert len(settings) == 12
    for s in settings:
        macro = {n: json.loads((res / "metrics" / n / "precomputed" / s / "summary.json").read_text())["macro"]
                 for n in mods}
        assert macro["vec-npy"] == macro["vec-parquet"] == macro["vec-h5"], s
    best = pd.read_csv(res / "tables" / "best_settings.csv").set_index("model")
    print("best MAP@15 per model:", best["map@15"].to_dict(), best["setting"].to_dict())
    assert best.loc["vec-npy", "map@15"] == best.loc["vec-h5", "map@15"] == best.loc["vec-parquet", "map@15"]
    assert best.loc["vec-npy", "map@15"] > 0.3  # label centroids: far above chance
    all_settings = pd.read_csv(res / "tables" / "all_settings.csv")
    assert len(all_settings) == 36 and (all_settings["map@15_lo"] <= all_settings["map@15"]).all()
    for f in ["grid/vec-npy__precomputed", "models", "per_label", "significance"]:
        assert (res / "figures" / f"{f}.png").stat().st_size > 10_000
    # the listening page over these results: precomputed systems rank (and show) like any other
    from soundsim.listen.app import create_app
    from soundsim.listen.results import Results

    lr = Results(tmp_path / "results", "demo")
    assert len(lr.systems()) == 36
    q = list(data)[0]
    label = lr.labels_of(q)[0]
    ids = [f"{n}/precomputed/agg-mean_pca-10_search-mcss" for n in ("vec-npy", "vec-h5")]
    r_npy, r_h5 = (lr.ranking(lr.system(i), q, label) for i in ids)
    assert r_npy.fnames == r_h5.fnames and len(r_npy.fnames) == 15 and r_npy.ap == r_h5.ap
    page = create_app(tmp_path / "results", "demo").test_client().get(
        "/", query_string={"class": label, "query": q, "systems": ids, "seed": 1})
    assert page.status_code == 200 and all(i in page.text for i in ids)

    again = snakemake(venv_bin, tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    one = tmp_path / "vec" / "npy" / f"{list(data)[5]}.npy"
    a = np.load(one)
    a[0] += 3.0
    np.save(one, a)
    plan_ = snakemake(venv_bin, tmp_path, "-n")
    assert job_counts(plan_.stdout) == {"import_embeddings": 1, "evaluate": 4, "tables": 1, "table_pages": 1,
                                        "figures": 1, "embedding_maps": 1, "all": 1, "total": 10}
    wildcards = [ln for ln in plan_.stdout.splitlines() if ln.strip().startswith("wildcards:")]
    assert all("model=vec-npy" in ln for ln in wildcards if "model=" in ln) and any("model=vec-npy" in ln
                                                                                      for ln in wildcards)
    assert "params have changed" in plan_.stdout
    before = json.loads((res / "metrics" / "vec-h5" / "precomputed" / settings[0] / "summary.json").read_text())
    assert snakemake(venv_bin, tmp_path).returncode == 0
    assert json.loads((res / "metrics" / "vec-h5" / "precomputed" / settings[0] / "summary.json").read_text()) == before
    e = store.read_embeddings(res / "embeddings" / "vec-npy" / "precomputed.h5")
    assert np.array_equal(e.clip_rows(5), a)

    # beside an extracted model: each embeddings file has its one rule
    write_config(tmp_path, models={**mods, "aisfx": {"variations": ["x-sequential-ce"]}}, grid=grid)
    mixed = snakemake(venv_bin, tmp_path, "-n")
    assert mixed.returncode == 0, mixed.stderr[-3000:]
    assert job_counts(mixed.stdout) == {"extract_shard": 1, "merge_embeddings": 1, "evaluate": 4, "tables": 1,
                                        "table_pages": 1, "figures": 1, "embedding_maps": 1, "all": 1, "total": 11}
