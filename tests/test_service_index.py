"""The similarity service's index (issue 15): built from real aisfx embeddings of real audio
(conftest's ``small_collection``), queried by fname, audio and through the real CLI, updated
with real new audio, and exported for a vector database."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import INDEX_LABELS, chirp, truncate
from soundsim import cli
from soundsim.service import store
from soundsim.service.index import QueryError, SimilarityIndex, add_sounds, additions, export_parquet, remove_sounds

SETTINGS = ["agg-mean_pca-8_search-mcss", "agg-max_pca-none_search-mips", "agg-median_pca-4_search-nns"]


def _evaluation_rankings(small_collection, setting: str, out: Path):
    """The evaluation's rankings.h5 of ``setting`` on the small collection (real evaluate_setting)."""
    from soundsim.evaluate import evaluate_setting
    from soundsim.layout import parse_setting
    from soundsim.manifest import read_manifest
    from soundsim.store import read_embeddings, read_rankings

    st = parse_setting(setting)
    emb = read_embeddings(small_collection["embeddings"])
    man = read_manifest(small_collection["manifest"])
    evaluate_setting(emb, man[["fname", "labels"]], None, st.aggregation, st.pca, st.search, out_dir=out,
                     restrict=True)
    return read_rankings(out / setting / "rankings.h5")


@pytest.mark.parametrize("setting", SETTINGS)
def test_flat_index_answers_the_evaluations_rankings(small_collection, small_index, tmp_path, setting):
    """For every clip as query, the flat index's top 15 (fname query, itself excluded) is the
    evaluation's top 15 from rankings.h5, in order; the reported score is the ranking's score
    (float32 in the file) and similarity the cosine of the processed vectors."""
    rk = _evaluation_rankings(small_collection, setting, tmp_path / "metrics")
    root = small_index(setting=setting)
    with SimilarityIndex(root) as idx:
        assert idx.n_active == len(rk.fnames) == 18
        Z = np.asarray(idx.vi.Z64)
        for q, fname in enumerate(rk.fnames):
            ans = idx.similar_to_fname(fname, 15)
            want = [rk.fnames[i] for i in rk.indices[q, :15]]
            assert [h.fname for h in ans.results] == want, (setting, fname)
            np.testing.assert_allclose([h.score for h in ans.results], rk.scores[q, :15], rtol=1e-5, atol=1e-5)
            r = idx.row_of[want[0]]
            zq = Z[idx.row_of[fname]]
            cos = zq @ Z[r] / np.linalg.norm(zq) / np.linalg.norm(Z[r])
            assert ans.results[0].similarity == pytest.approx(cos, abs=1e-12)
            assert fname not in [h.fname for h in ans.results]


def test_similar_to_audio_of_a_collection_file_finds_it_first(small_collection, small_index):
    """A collection file embedded anew (the model's worker, stored processing) is its own best
    match with similarity >= 0.999; one answer per file, a bad file gets its error."""
    root = small_index()
    audio = small_collection["audio"]
    with SimilarityIndex(root) as idx:
        answers = idx.similar_to_audio([audio / "bird01.wav", audio / "nosuch.wav", audio / "bell03.wav"], 5)
    assert [a.query for a in answers] == [str(audio / "bird01.wav"), str(audio / "nosuch.wav"),
                                          str(audio / "bell03.wav")]
    for a, fname in ((answers[0], "bird01"), (answers[2], "bell03")):
        assert a.error is None and a.results[0].fname == fname and a.results[0].similarity >= 0.999
        assert a.results[0].labels == [fname[:-2].capitalize()]
        sims = [h.similarity for h in a.results]
        assert sims == sorted(sims, reverse=True)
    assert answers[1].results == [] and "nosuch.wav" in answers[1].error and "no such file" in answers[1].error


def _query_json(capsys, *argv: str) -> tuple[int, list[dict], str]:
    rc = cli.main(["query", *argv, "--json"])
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_query_cli_json_shape_and_bad_audio(small_collection, small_index, tmp_path, capsys):
    """`soundsim query --json`: one object per query and line, {"query", "results": [{"fname",
    "similarity", "score", "labels"}]}, best first. Bad audio (a text file, a missing file, a
    truncated WAV) gets an error naming the file and exit status 2; the good files are answered."""
    root = small_index()
    rc, rows, err = _query_json(capsys, str(root), "--fname", "engine02", "bell00", "-k", "4")
    assert rc == 0 and [r["query"] for r in rows] == ["engine02", "bell00"]
    for r in rows:
        assert set(r) == {"query", "results"} and len(r["results"]) == 4
        assert all(set(h) == {"fname", "similarity", "score", "labels"} for h in r["results"])
        sims = [h["similarity"] for h in r["results"]]
        assert sims == sorted(sims, reverse=True) and r["query"] not in [h["fname"] for h in r["results"]]
    bad_text = tmp_path / "notes.wav"
    bad_text.write_text("this is not audio\n")
    cut = tmp_path / "cut.wav"
    sf.write(cut, chirp(1.0, 22050, seed=2), 22050, subtype="PCM_16")
    truncate(cut, 0.02)  # the header and a few samples' worth of bytes: a declared length it does not have
    missing = tmp_path / "missing.wav"
    good = small_collection["audio"] / "engine04.wav"
    rc, rows, err = _query_json(capsys, str(root), "--audio", str(bad_text), str(good), str(missing), str(cut),
                                "-k", "3")
    assert rc == 2
    assert [r["query"] for r in rows] == [str(bad_text), str(good), str(missing), str(cut)]
    assert rows[1]["results"][0]["fname"] == "engine04" and "error" not in rows[1]
    for r, name in ((rows[0], "notes.wav"), (rows[2], "missing.wav"), (rows[3], "cut.wav")):
        assert r["results"] == [] and name in r["error"], r
        assert f"soundsim query: error: {r['error']}" in err
    # the readable table names the error too
    assert cli.main(["query", str(root), "--audio", str(missing)]) == 2
    out, _ = capsys.readouterr()
    assert "missing.wav: ERROR" in out and "no such file" in out


def test_query_cli_unknown_fname_and_bad_arguments(small_index, capsys):
    root = small_index()
    assert cli.main(["query", str(root), "--fname", "bird00", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown fname 'nosuch'" in err and str(root) in err
    assert cli.main(["query", str(root)]) == 2
    assert "give either --audio FILE... or --fname NAME..." in capsys.readouterr().err
    assert cli.main(["query", str(root), "--fname", "bird00", "-k", "0"]) == 2
    assert "k must be a positive integer" in capsys.readouterr().err


def test_min_similarity_filters_and_the_freesound_default(small_index, capsys):
    """min_similarity drops results below it (exactly those); the freesound preset drops below
    0.7 by default (info and answers), and an explicit value overrides it."""
    root = small_index()
    with SimilarityIndex(root) as idx:
        assert idx.default_min_similarity() is None and idx.info()["min_similarity"] is None
        every = idx.similar_to_fname("bird00", 17).results
        assert len(every) == 17 and min(h.similarity for h in every) < 0.5
        kept = idx.similar_to_fname("bird00", 17, min_similarity=0.5).results
        assert kept == [h for h in every if h.similarity >= 0.5] and 0 < len(kept) < 17
    fs = small_index(type="freesound", name="fs")
    with SimilarityIndex(fs) as idx:
        assert idx.default_min_similarity() == 0.7 and idx.info()["min_similarity"] == 0.7
        assert idx.spec.params["m"] == 10 and idx.spec.params["ef_construction"] == 40
        got = idx.similar_to_fname("bird00", 17).results
        assert got and all(h.similarity >= 0.7 for h in got)
        assert {h.fname for h in got} == {h.fname for h in every if h.similarity >= 0.7}
        assert len(idx.similar_to_fname("bird00", 17, min_similarity=-1).results) == 17
    rc, rows, _ = _query_json(capsys, str(fs), "--fname", "bird00", "-k", "17", "--min-similarity", "0.95")
    assert rc == 0 and all(h["similarity"] >= 0.95 for h in rows[0]["results"])


# --------------------------------------------------------------------------- add / remove


def write_new_clips(folder: Path, n: int = 10, seconds: float = 1.5) -> list[Path]:
    """``n`` new real audio files (chirps of seeds the collection does not use)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for j in range(n):
        p = folder / f"new{j:02d}.wav"
        sf.write(p, chirp(seconds + 0.1 * (j % 3), 16000, seed=20 + j), 16000, subtype="PCM_16")
        out.append(p)
    return out


def _reference_vectors(root: Path, paths: list[Path]) -> np.ndarray:
    """The stored processing applied to the model's frames of ``paths``, computed here in-process
    (models.load + extract.embed_clip, as `soundsim extract` embeds a clip)."""
    from soundsim import models
    from soundsim.extract import embed_clip

    gen = store.open_generation(root)
    model = models.load(gen.manifest["model"], gen.manifest["variation"], None, "cpu")
    return gen.processing.transform([embed_clip(model, str(p)) for p in paths])


@pytest.mark.slow  # ~50 s: four model workers and the model in-process
def test_add_then_query_and_remove(small_index, tmp_path, capsys):
    """`index add` embeds new files with the stored (never refitted) processing: a new file's row
    equals the stored processing applied to its frames, processing.npz is unchanged; the new
    sounds are found by fname and by audio. Duplicates are refused; `remove` makes a fname
    unknown and it never appears in results; unknown fnames are refused and nothing changes."""
    root = small_index()
    gen1 = store.current_generation(root)
    proc1 = (gen1 / "processing.npz").read_bytes()
    new = write_new_clips(tmp_path / "new", 10)
    assert cli.main(["index", "add", str(root), "--audio", *map(str, new), "-q"]) == 0
    assert "added 10 sound(s)" in capsys.readouterr().out
    gen2 = store.current_generation(root)
    assert gen2.name == "gen-000002" and (gen2 / "processing.npz").read_bytes() == proc1
    assert (gen2 / "processing.npz").stat().st_ino == (gen1 / "processing.npz").stat().st_ino  # hard link
    with SimilarityIndex(root) as idx:
        assert idx.info()["counts"] == {**idx.info()["counts"], "items": 28, "active": 28, "removed": 0}
        rows = [idx.row_of[p.stem] for p in new]
        assert rows == list(range(18, 28))
        got = np.asarray(idx.vi.Z64)[rows]
        np.testing.assert_allclose(got, _reference_vectors(root, new), rtol=0, atol=1e-5)
        assert idx.items.loc[rows, "path"].tolist() == [str(p.resolve()) for p in new]
        ans = idx.similar_to_fname("new03", 27)
        assert len(ans.results) == 27 and "new03" not in [h.fname for h in ans.results]
        first = idx.similar_to_audio([new[3]], 3)[0]
        assert first.results[0].fname == "new03" and first.results[0].similarity >= 0.999
    rc, out, _ = _query_json(capsys, str(root), "--fname", "new03", "-k", "3")
    assert rc == 0 and out[0]["query"] == "new03" and len(out[0]["results"]) == 3

    # duplicates: already in the index, or given twice
    assert cli.main(["index", "add", str(root), "--audio", str(new[0]), "-q"]) == 2
    err = capsys.readouterr().err
    assert "1 fname(s) are already in the index" in err and "'new00'" in err
    with pytest.raises(QueryError, match="given twice"):
        additions([new[1], new[1]])
    assert store.current_generation(root).name == "gen-000002"

    # remove
    assert cli.main(["index", "remove", str(root), "--fname", "new03", "bird00"]) == 0
    assert "removed 2 sound(s)" in capsys.readouterr().out
    with SimilarityIndex(root) as idx:
        c = idx.info()["counts"]
        assert (c["items"], c["active"], c["removed"]) == (28, 26, 2)
        for fname in ("new03", "bird00"):
            with pytest.raises(QueryError, match=f"unknown fname '{fname}'"):
                idx.similar_to_fname(fname)
        for q in idx.row_of:
            names = [h.fname for h in idx.similar_to_fname(q, 25).results]
            assert len(names) == 25 and "new03" not in names and "bird00" not in names
        audio = idx.similar_to_audio([new[3]], 26)[0]
        assert len(audio.results) == 26 and "new03" not in [h.fname for h in audio.results]
    gen3 = store.current_generation(root)
    assert (gen3 / "vectors.npy").stat().st_ino == (gen2 / "vectors.npy").stat().st_ino
    # unknown fnames: refused, listed, nothing changes
    before = (gen3 / "items.parquet").read_bytes()
    assert cli.main(["index", "remove", str(root), "--fname", "bird01", "nosuch", "new03"]) == 2
    err = capsys.readouterr().err
    assert "2 fname(s) are not in the index" in err and "'nosuch'" in err and "'new03'" in err
    assert store.current_generation(root) == gen3 and (gen3 / "items.parquet").read_bytes() == before
    # a removed fname may be added again (a new row)
    add_sounds(root, additions([new[3]]))
    with SimilarityIndex(root) as idx:
        assert idx.row_of["new03"] == 28 and idx.n_active == 27


def test_add_bad_file_stops_unless_skip_bad(small_index, tmp_path, capsys):
    """A file that cannot be embedded stops the add, naming it, and the index is unchanged;
    --skip-bad reports it and adds the others."""
    root = small_index()
    new = write_new_clips(tmp_path / "new", 3)
    bad = tmp_path / "new" / "broken.wav"
    bad.write_text("not audio at all\n")
    gen1 = store.current_generation(root)
    argv = ["index", "add", str(root), "--audio", str(new[0]), str(bad), str(new[1]), "-q"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "broken.wav" in err
    assert store.current_generation(root) == gen1 and sorted(p.name for p in root.iterdir()) == sorted(
        ["CURRENT", "gen-000001"])
    with SimilarityIndex(root) as idx:
        assert idx.n_active == 18 and "new00" not in idx.row_of
    assert cli.main([*argv, "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "added 2 sound(s)" in out and "skipped 1" in out and "broken.wav" in out
    with SimilarityIndex(root) as idx:
        assert idx.n_active == 20 and {"new00", "new01"} <= set(idx.row_of) and "broken" not in idx.row_of
    # only bad files: refused, unchanged
    gen2 = store.current_generation(root)
    with pytest.raises(QueryError, match="none of the 1 file"):
        add_sounds(root, additions([bad]), skip_bad=True)
    assert store.current_generation(root) == gen2


def test_add_from_a_manifest_csv_with_labels(small_index, tmp_path):
    root = small_index()
    new = write_new_clips(tmp_path / "new", 2)
    csv = tmp_path / "new" / "more.csv"
    csv.write_text('fname,path,labels\nfirst,new00.wav,"Bird,Bell"\nsecond,new01.wav,\n')
    res = add_sounds(root, additions(manifest_csv=csv))
    assert res["added"] == 2 and res["counts"]["active"] == 20
    with SimilarityIndex(root) as idx:
        hit = idx.similar_to_audio([new[0]], 1)[0].results[0]
        assert hit.fname == "first" and hit.labels == ["Bird", "Bell"]


# --------------------------------------------------------------------------- other index types


@pytest.mark.parametrize("type", ["hnsw", "ivf", "ivf-sq8", "ivf-pq"])
def test_other_index_types_query_and_update(small_index, tmp_path, type):
    """Every type answers fname queries (top hit = flat's top hit on this tiny collection), and
    after remove the removed sound never appears."""
    flat = small_index(name="flat")
    root = small_index(type=type, name=type)
    with SimilarityIndex(flat) as f, SimilarityIndex(root) as idx:
        assert idx.spec.type == type
        for q in ("bird00", "engine03", "bell05"):
            assert idx.similar_to_fname(q, 1).results[0].fname == f.similar_to_fname(q, 1).results[0].fname
    remove_sounds(root, ["bird02"])
    with SimilarityIndex(root) as idx:
        for q in idx.row_of:
            assert "bird02" not in [h.fname for h in idx.similar_to_fname(q, 16).results]


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("setting", ["agg-mean_pca-8_search-mcss", "agg-mean_pca-8_search-nns"])
def test_export_parquet(small_index, tmp_path, setting, capsys):
    """The parquet export: id (the row), fname, vector (the search vectors: unit length for MCSS,
    the processing output otherwise; float32), labels (list), path; removed rows left out; the
    manifest's system and metric in the key-value metadata."""
    import pyarrow.parquet as pq

    root = small_index(setting=setting)
    remove_sounds(root, ["bell01", "bird05"])
    out = tmp_path / "export" / "sounds.parquet"
    assert cli.main(["index", "export", str(root), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    t = pq.read_table(out)
    assert t.column_names == ["id", "fname", "vector", "labels", "path"]
    df = t.to_pandas()
    gen = store.open_generation(root)
    items = gen.items
    active = items[~items["removed"]]
    assert df["id"].tolist() == active["row"].tolist() and len(df) == 16
    assert df["fname"].tolist() == active["fname"].tolist() and "bell01" not in set(df["fname"])
    V = np.stack(df["vector"].to_numpy()).astype(np.float64)
    Z = np.asarray(gen.vectors)[df["id"].to_numpy()]
    assert V.shape == (16, 8) and t.schema.field("vector").type.value_type.bit_width == 32
    if setting.endswith("mcss"):
        np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1, atol=1e-6)
        np.testing.assert_allclose(V, Z / np.linalg.norm(Z, axis=1, keepdims=True), atol=1e-6)
    else:
        np.testing.assert_allclose(V, Z, atol=1e-6)
    assert [list(x) for x in df["labels"]] == [[s] for s in active["labels"]]
    assert set(x for lab in df["labels"] for x in lab) == set(INDEX_LABELS)
    assert all(Path(p).is_file() for p in df["path"])
    meta = json.loads(t.schema.metadata[b"soundsim"])
    assert meta["system"].endswith(setting) and meta["dim"] == 8
    assert meta["metric"] == ("ip" if setting.endswith("mcss") else "l2") and meta["search"] == setting.rsplit("-", 1)[1]
    # the exported vectors rank as soundsim does (an engine's dot / L2 over them)
    q = df.index[df["fname"] == "bird00"][0]
    if setting.endswith("mcss"):
        key = V @ V[q]
    else:
        key = -np.linalg.norm(V - V[q], axis=1)
    key[q] = -np.inf
    want = [h.fname for h in SimilarityIndex(root).similar_to_fname("bird00", 5).results]
    assert df["fname"].to_numpy()[np.argsort(-key, kind="stable")[:5]].tolist() == want


def test_info_cli(small_index, capsys):
    root = small_index()
    assert cli.main(["index", "info", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["generation"] == "gen-000001" and info["system"] == "aisfx/x-sequential-ce/agg-mean_pca-8_search-mcss"
    assert info["counts"] == {"items": 18, "active": 18, "removed": 0, "dim_in": 512, "dim": 8}
    assert info["index"] == {"type": "flat", "search": "mcss", "params": {"margin": 32}}
    assert cli.main(["index", "info", str(root)]) == 0
    text = capsys.readouterr().out
    assert "sounds:     18 active, 0 removed, 18 rows; 512 -> 8 dims" in text
    assert info["evaluation"] is None  # built from files, not from an evaluated results tree


def test_new_audio_is_refused_when_the_model_changed_since_the_build(small_collection, small_index, capsys):
    """An index records its model's code version; when the model's code is no longer that one,
    new audio would be embedded differently from the indexed sounds: refused, naming why,
    while queries by fname still answer."""
    from soundsim.service.index import StaleIndexError

    root = small_index()
    gen = store.current_generation(root)
    manifest = json.loads((gen / "manifest.json").read_text())
    assert manifest["model_code_version"]  # recorded from the embeddings file
    manifest["model_code_version"] = "0123456789abcdef"  # as if built by another version of aisfx
    (gen / "manifest.json").write_text(json.dumps(manifest))
    clip = small_collection["audio"] / "bird00.wav"
    with SimilarityIndex(root) as idx:
        with pytest.raises(StaleIndexError, match=r"code of model aisfx changed \(0123456789abcdef when built"):
            idx.similar_to_audio([clip])
        assert idx.similar_to_fname("bird00", 3).results  # the stored vectors still answer
    assert cli.main(["query", str(root), "--audio", str(clip)]) == 2
    assert "rebuild the index" in capsys.readouterr().err
