"""Graded gains between labels (soundsim.relevance): hand-computed Wu-Palmer gains on a
small ontology the test writes (a multi-parent label included), the FSD50K ontology from
../shared when present, family gains, and the relevance.csv round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soundsim.datasets.ontology import load_ontology
from soundsim.metrics import build_label_index
from soundsim.relevance import (
    RelevanceError,
    clip_gains,
    family_gains,
    ontology_gains,
    read_gains,
    wu_palmer,
    write_gains,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsd50k-ontology" / "ontology_crowd.json"

#   Animal (1) - Pets (2) - Dog (3) - Bark (4)
#                         \         \ Growling (4)   <- also under Cat: multi-parent
#                          \ Cat (3) - Meow (4)
#                                   \ Growling (4)
#   Music (1) - Guitar (2)
NODES = [
    {"id": "/a", "name": "Animal", "child_ids": ["/p"]},
    {"id": "/p", "name": "Pets", "child_ids": ["/dog", "/cat"]},
    {"id": "/dog", "name": "Dog", "child_ids": ["/bark", "/growl"]},
    {"id": "/cat", "name": "Cat", "child_ids": ["/meow", "/growl"]},
    {"id": "/bark", "name": "Bark", "child_ids": []},
    {"id": "/meow", "name": "Meow", "child_ids": []},
    {"id": "/growl", "name": "Growling", "child_ids": []},
    {"id": "/m", "name": "Music", "child_ids": ["/g"]},
    {"id": "/g", "name": "Guitar", "child_ids": []},
]


@pytest.fixture
def onto(tmp_path):
    p = tmp_path / "ontology.json"
    p.write_text(json.dumps(NODES))
    return load_ontology(p)


def test_paths_of_a_multi_parent_label(onto):
    assert onto.paths("/bark") == (("/a", "/p", "/dog", "/bark"),)
    assert set(onto.paths("/growl")) == {("/a", "/p", "/dog", "/growl"), ("/a", "/p", "/cat", "/growl")}


def test_wu_palmer_gains_hand_computed(onto):
    labels = ["Bark", "Growling", "Meow", "Dog", "Animal", "Guitar"]
    G = ontology_gains(onto, labels)
    g = {(a, b): G[i, j] for i, a in enumerate(labels) for j, b in enumerate(labels)}
    assert np.allclose(np.diag(G), 1) and np.allclose(G, G.T)
    assert g["Bark", "Growling"] == pytest.approx(2 * 3 / 8)  # siblings under Dog: lcp Animal-Pets-Dog
    assert g["Bark", "Meow"] == pytest.approx(2 * 2 / 8)  # cousins: lcp Animal-Pets
    # multi-parent: Growling's Cat path makes it a sibling of Meow (0.75), not a cousin (0.5)
    assert g["Growling", "Meow"] == pytest.approx(0.75)
    assert g["Bark", "Dog"] == pytest.approx(2 * 3 / 7)  # parent: 0.857
    assert g["Bark", "Animal"] == pytest.approx(2 * 1 / 5)
    assert g["Bark", "Guitar"] == 0.0 and g["Animal", "Guitar"] == 0.0  # different roots
    assert (G[~np.eye(len(labels), dtype=bool)] < 1).all()
    assert wu_palmer([("x", "y")], [("x", "y")]) == 1.0


def test_unknown_label_is_named(onto):
    with pytest.raises(Exception, match="Purr"):
        ontology_gains(onto, ["Bark", "Purr"])


@pytest.mark.skipif(not SHARED.is_file(), reason="../shared/data/fsd50k-ontology not present")
def test_fsd50k_ontology_gains():
    onto = load_ontology(SHARED)
    labels = ["Bark", "Growling", "Meow", "Roar", "Vehicle_horn_and_car_horn_and_honking", "Dog"]
    G = ontology_gains(onto, labels)
    i = {lab: k for k, lab in enumerate(labels)}
    # Animal > Domestic animals, pets > Dog > Bark / Growling
    assert G[i["Bark"], i["Growling"]] == pytest.approx(0.75)
    assert G[i["Growling"], i["Roar"]] == pytest.approx(0.75)  # via Wild animals > Roaring cats
    assert G[i["Bark"], i["Vehicle_horn_and_car_horn_and_honking"]] == 0.0
    assert G[i["Bark"], i["Dog"]] == pytest.approx(6 / 7)


def test_family_gains_and_clip_gains():
    labels = ["a", "b", "c", "d"]
    G = family_gains(labels, {"a": "f", "b": "f", "c": "g", "d": None}, 0.25)
    assert G.tolist() == [[1, 0.25, 0, 0], [0.25, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    with pytest.raises(RelevanceError, match="family_gain"):
        family_gains(labels, {}, 1.0)
    ix = build_label_index([["a"], ["b", "c"], ["d"]])
    C = clip_gains(G, ix.Y)
    # for label a: clip0 carries a (1), clip1 b,c (max 0.25, 0), clip2 d (0)
    assert C[0].tolist() == [1, 0.25, 0]
    assert C[2].tolist() == [0, 1, 0]  # label c


def test_relevance_csv_round_trip(tmp_path, onto):
    labels = ["Bark", "Growling", "Guitar"]
    G = ontology_gains(onto, labels)
    p = write_gains(labels, G, tmp_path / "relevance.csv")
    assert read_gains(p, labels).tolist() == G.tolist()
    # another label order, and a label the file does not know (gain 0 except itself)
    H = read_gains(p, ["Guitar", "Bark", "New"])
    assert H.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    bad = tmp_path / "bad.csv"
    bad.write_text("label_a,label_b,gain\nBark,Growling,1.5\n")
    with pytest.raises(RelevanceError, match=r"bad.csv: row 2"):
        read_gains(bad, labels)
    (tmp_path / "cols.csv").write_text("a,b\n")
    with pytest.raises(RelevanceError, match="lacks column"):
        read_gains(tmp_path / "cols.csv", labels)


# --------------------------------------------------------------------------- the relevance rule (real Snakemake)


def _snakemake(workdir: Path, *args: str):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    exe = Path(sys.executable).parent / "snakemake"
    return subprocess.run([str(exe), "-s", str(root / "Snakefile"), "-d", str(workdir), "--cores", "1", *args],
                          capture_output=True, text=True, timeout=600, cwd=workdir)


@pytest.mark.slow
def test_relevance_rule_uses_the_fsd50k_ontology_and_falls_back_to_families(tmp_path, write_audio):
    import pandas as pd
    import yaml

    from test_datasets import write_fsd50k

    p = write_fsd50k(tmp_path / "data", write_audio)
    cfg = {"collection": {"name": "fsd", "kind": "fsd50k", **{k: str(v) for k, v in p.items()}},
           "models": {"freesound": {"enabled": False}}, "grid": {"indexes": []}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(tmp_path, "results/fsd/relevance.csv")
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(tmp_path / "results" / "fsd" / "relevance.csv")
    g = {(a, b): v for a, b, v in df.itertuples(index=False)}
    # the test ontology: Animal > Dog > Bark; Growling under Dog and (multi-parent) elsewhere
    assert g["Bark", "Dog"] == pytest.approx(2 * 2 / 5) and g["Bark", "Bark"] == 1.0
    assert ("Bark", "Vehicle_horn_and_car_horn_and_honking") not in g  # different roots: gain 0, not listed
    # relevance: families on the same collection -> family gains
    cfg["evaluation"] = {"relevance": "families", "family_gain": 0.25}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(tmp_path, "results/fsd/relevance.csv")
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(tmp_path / "results" / "fsd" / "relevance.csv")
    assert set(df["gain"]) == {1.0, 0.25} and len(df[df["gain"] == 0.25]) == 6  # Animal, Bark, Dog: 3 x 2 pairs
    # 'ontology' on a csv collection is refused, naming the fix
    cfg = {"collection": {"name": "c", "kind": "csv", "audio_dir": str(p["audio_dir"]),
                          "ground_truth": str(p["ground_truth"])},
           "models": {"freesound": {"enabled": False}}, "evaluation": {"relevance": "ontology"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(tmp_path, "-n", "results/c/relevance.csv")
    assert r.returncode != 0 and "use families or auto" in r.stdout + r.stderr
