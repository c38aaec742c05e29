"""soundsim.heads: the heads: config as models, held-out labels, the overlap check, a head's files
(real manifests of real audio files, real embeddings files, real trainings)."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from soundsim import heads as H
from soundsim import manifest as Mf
from soundsim import models as registry
from soundsim import plan
from soundsim.config import find_schema, load_yaml, validate_config
from soundsim.errors import ConfigError
from soundsim.store import read_embeddings, write_embeddings


def _config(**over) -> dict:
    cfg = {
        "collection": {"name": "demo", "kind": "demo"},
        "train_collection": {"name": "demo-train", "kind": "demo", "seed": 1, "fname_prefix": "train"},
        "models": {"aisfx": {"variations": ["x-sequential-ce"]}, "freesound": {}},
        "heads": {"head-aisfx": {"base": "aisfx", "epochs": 3}},
    }
    cfg.update(over)
    return validate_config(cfg, load_yaml(find_schema()))


# --------------------------------------------------------------------------- config


def test_heads_are_models_of_kind_head():
    cfg = _config(heads={"head-aisfx": {"base": "aisfx", "dim": 64, "epochs": 3},
                         "head-freesound-x": {"base": "freesound"},
                         "head-aisfx-off": {"base": "aisfx", "enabled": False}})
    models = plan.enabled_models(cfg)
    assert list(models) == ["aisfx", "freesound", "head-aisfx", "head-freesound-x"]
    h = models["head-aisfx"]
    assert (h["kind"], h["base"], h["variation"], h["aggregation"]) == ("head", "aisfx", "x-sequential-ce", "mean")
    assert h["spec"] == {"dim": 64, "epochs": 3} and h["variations"] == ["x-sequential-ce"]
    assert models["head-freesound-x"]["aggregation"] == "none"  # a clip-level base
    assert list(plan.head_models(cfg)) == ["head-aisfx", "head-freesound-x"]
    registry.check_models_config(models)
    info = registry.info("head-aisfx", h)
    assert (info.level, info.dim, info.variations, info.env) == ("clip", 64, ("x-sequential-ce",), "soundsim")
    # the grid: clip level, so aggregation none only; PCA sizes above its 64 dims left out
    grid = {"aggregations": ["mean", "max"], "pca": [16, 100, "none"]}
    assert plan.processing_settings("head-aisfx", grid, 304, lambda m: None, h) == [("none", "16"), ("none", "none")]
    # training data: the base's, plus the training collection's dataset (the demo: same dataset)
    assert info.trained_on is not None and "soundsim demo (synthetic)" in info.trained_on
    names = [s.model for s in plan.configured_settings(cfg, 304)]
    assert "head-aisfx" in names


def test_head_entries_are_checked():
    with pytest.raises(ConfigError, match=r"heads\.head-aisfx-d\.epochs"):
        _config(heads={"head-aisfx-d": {"base": "aisfx", "epochs": 0}})
    with pytest.raises(ConfigError, match=r"heads: 'bad_name'|does not match"):
        _config(heads={"bad_name": {"base": "aisfx"}})
    cfg = _config(heads={
        "head-aisfx-a": {"base": "yamnet"},
        "head-wrong": {"base": "aisfx"},
        "head-aisfx-b": {"base": "aisfx", "variation": "other"},
        "head-aisfx-c": {"base": "aisfx", "aggregation": "none"},
        "head-freesound": {"base": "freesound", "aggregation": "max"},
    })
    with pytest.raises(ConfigError) as e:
        registry.check_models_config(plan.enabled_models(cfg))
    msg = str(e.value)
    assert "heads.head-aisfx-a.base: 'yamnet' is not an enabled model of models:" in msg
    assert "heads.head-wrong: a head's name is head-aisfx or head-aisfx-<anything>" in msg
    assert "heads.head-aisfx-b.variation: 'other' is not a configured variation of aisfx" in msg
    assert "heads.head-aisfx-c.aggregation: aisfx is frame-level; allowed values: mean, median, max" in msg
    assert "heads.head-freesound.aggregation: freesound is clip-level; allowed value: 'none'" in msg


def test_collection_problems():
    assert H.collection_problems(_config()) == []
    assert H.collection_problems(_config(heads={})) == []
    no_train = _config()
    no_train.pop("train_collection")
    assert H.collection_problems(no_train) == [
        "heads: head-aisfx need a train_collection: (the labelled clips they are trained on)"]
    same_name = _config(train_collection={"name": "demo", "kind": "demo", "fname_prefix": "x"})
    assert "train_collection.name: 'demo' is the evaluated collection's name" in H.collection_problems(same_name)[0]
    same_demo = _config(train_collection={"name": "t", "kind": "demo", "seed": 5})
    assert "both are demo collections with fname_prefix 'demo'" in H.collection_problems(same_demo)[0]
    clash = _config(heads={"head-aisfx": {"base": "aisfx"}},
                    models={"aisfx": {}, "head-aisfx": {"kind": "precomputed", "path": "x.npz"}})
    assert "heads.head-aisfx: 'head-aisfx' is also a model of models:" in H.collection_problems(clash)[0]
    with pytest.raises(ConfigError, match="invalid configuration"):
        H.check_config(no_train)


def test_same_ground_truth_is_the_same_collection(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("fname,labels\n")
    a = {"name": "a", "kind": "csv", "audio_dir": str(tmp_path), "ground_truth": str(gt)}
    b = {"name": "b", "kind": "csv", "audio_dir": str(tmp_path), "ground_truth": str(tmp_path / "." / "gt.csv")}
    cfg = _config(collection=a, train_collection=b)
    assert f"both read the ground truth {gt}" in H.collection_problems(cfg)[0]


# --------------------------------------------------------------------------- held-out labels


def test_heldout_labels_per_family_by_hand():
    families = {"A": ["a1", "a2", "a3", "a4"], "B": ["b1", "b2"], "C": ["c1"], "D": ["a1", "d1", "d2"]}
    labels = ["a1", "a2", "a3", "a4", "b1", "b2", "c1", "d1", "d2", "x1", "x2", "x3"]
    out = H.heldout_labels(labels, families, 0.5, seed=0)
    assert out == sorted(out) and out == H.heldout_labels(labels[::-1], families, 0.5, seed=0)
    # A: 2 of 4, B: 1 of 2, C: none (one label), D: a1 counted in A -> {d1, d2}: 1, no family: {x1,x2,x3}: 2
    by = {g: [lab for lab in out if lab[0] == g] for g in "abcdx"}
    assert [len(by[g]) for g in "abcdx"] == [2, 1, 0, 1, 2]
    seeds = {tuple(H.heldout_labels(labels, families, 0.5, seed=s)) for s in range(8)}
    assert len(seeds) > 1  # the seed chooses
    # at least one, at most n - 1 per group
    assert [lab for lab in H.heldout_labels(labels, families, 0.01, 0) if lab[0] == "a"].__len__() == 1
    assert len([lab for lab in H.heldout_labels(labels, families, 0.99, 0) if lab[0] == "a"]) == 3
    with pytest.raises(ConfigError, match="heldout_fraction"):
        H.heldout_labels(labels, families, 1.0, 0)


# --------------------------------------------------------------------------- overlap


def _manifest(col: dict, out) -> pd.DataFrame:
    Mf.run(col, out, threads=1, progress=False)
    return Mf.read_manifest(out / "manifest.csv")


def test_overlap_is_refused_listing_the_clips(csv_collection, tmp_path):
    """A clip of the training collection with an fname of the evaluated one, and another whose audio
    is a copy of an evaluated clip under another name: both listed, nothing else."""
    ev = csv_collection()
    ev_col = {"name": "ev", "kind": "csv", "audio_dir": str(ev["audio_dir"]), "ground_truth": str(ev["ground_truth"]),
              "vocabulary": str(ev["vocabulary"]), "families": str(ev["families"])}
    tr = csv_collection(rows=[("a1", "Dog"), ("b1", "Rain")], folder=tmp_path / "train")
    # train: a1 and c1 (the evaluated fnames; listed once, as same fname) and t9, a copy of the
    # evaluated b2 under another name (same content)
    shutil.copy(ev["audio_dir"] / "b2.flac", tr["audio_dir"] / "t9.flac")
    tr["ground_truth"].write_text('fname,labels\na1,"Dog"\nt9,"Rain"\nc1,"Bark"\n')
    for f in ("a2.flac", "b1.wav", "b2.flac"):
        (tr["audio_dir"] / f).unlink()
    tr_col = {"name": "tr", "kind": "csv", "audio_dir": str(tr["audio_dir"]), "ground_truth": str(tr["ground_truth"]),
              "vocabulary": str(tr["vocabulary"])}
    em = _manifest(ev_col, tmp_path / "results" / "ev")
    tm = _manifest(tr_col, tmp_path / "results" / "tr")
    with pytest.raises(H.OverlapError) as e:
        H.check_disjoint(tm, em, "train_collection", "collection")
    msg = str(e.value)
    assert msg.startswith("train_collection and collection share 3 clip(s)")
    assert "a1 (same fname)" in msg and "c1 (same fname)" in msg
    fp = em.set_index("fname").loc["b2", "fingerprint"]
    assert f"train_collection t9 = collection b2 (same audio content, {fp})" in msg
    # disjoint: nothing raised
    H.check_disjoint(tm[tm["fname"] == "zz"], em)
    # at most `shown` listed
    with pytest.raises(H.OverlapError, match=r"\.\.\. and 2 more"):
        H.check_disjoint(tm, em, shown=1)


# --------------------------------------------------------------------------- inputs


def _frame_embeddings(path, fnames, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    clips = [rng.standard_normal((1 + i % 3, dim)).astype(np.float32) for i in range(len(fnames))]
    return write_embeddings(path, fnames, clips, {"model": "aisfx", "variation": "x-sequential-ce"})


def test_training_set_leaves_out_heldout_clips(tmp_path):
    fnames = ["t0", "t1", "t2", "t3", "t4"]
    emb = read_embeddings(_frame_embeddings(tmp_path / "e.h5", fnames))
    man = pd.DataFrame({"fname": fnames, "labels": ["Dog", "Dog,Bark", "Rain", "Bark", ""]})
    X, labels, names = H.training_set(emb, man, "mean", "l2-pca", heldout=["Bark"])
    assert names == ["t0", "t2"] and labels == [["Dog"], ["Rain"]]
    rows = emb.embeddings[emb.offsets[2]:emb.offsets[3]].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(X[1], rows / np.linalg.norm(rows))
    X2, _, names2 = H.training_set(emb, man, "max", "minmax-pca")
    assert names2 == fnames[:4]
    # the manifest as read_manifest gives it (labels as lists): the same clips and labels
    listed = man.assign(labels=man["labels"].map(lambda s: [x for x in s.split(",") if x]))
    assert H.training_set(emb, listed, "mean", "l2-pca", heldout=["Bark"])[1:] == (labels, names)
    np.testing.assert_array_equal(X2[0], emb.embeddings[0:1].max(axis=0))
    with pytest.raises(H.HeadsError, match="no clip to train on"):
        H.training_set(emb, man, "mean", "l2-pca", heldout=["Dog", "Bark", "Rain"])


def test_head_section_is_json_for_snakemake_params():
    h = plan.head_models(_config())["head-aisfx"]
    assert json.loads(json.dumps(h)) == copy.deepcopy(h)
