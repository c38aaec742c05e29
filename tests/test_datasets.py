"""Collection adapters on real files the tests write: demo, csv, fsd50k."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundsim.datasets import csv_folder, demo, fsd50k, load_collection
from soundsim.datasets.common import locate_audio, read_families, read_ground_truth, read_vocabulary
from soundsim.errors import CollectionError, ConfigError

from conftest import shared_or_skip


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- demo

@pytest.fixture(scope="module")
def demo_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    demo.generate(out, seed=0, clips_per_class=3, progress=False)
    return out


def test_demo_default_size_meets_the_spec():
    items = demo.plan(16)
    assert len(items) >= 240
    assert len(demo.CLASSES) >= 12
    assert len(demo.FAMILIES) >= 3
    assert len({f for f, _ in items}) == len(items)


def test_demo_is_deterministic(tmp_path, demo_small):
    again = tmp_path / "again"
    demo.generate(again, seed=0, clips_per_class=3, progress=False)
    assert digest(again) == digest(demo_small)
    other = tmp_path / "other"
    demo.generate(other, seed=1, clips_per_class=3, progress=False)
    assert digest(other) != digest(demo_small)


def test_demo_variety(demo_small):
    col = load_collection({"kind": "demo", "name": "demo"}, demo_small)
    assert len(col.clips) == 3 * len(demo.CLASSES)
    infos = [sf.info(p) for p in col.clips["path"]]
    durations = [i.duration for i in infos]
    assert min(durations) >= 0.5 - 1e-3 and max(durations) <= 12.0
    assert {i.samplerate for i in infos} == {16000, 22050, 44100, 48000}
    assert {i.channels for i in infos} == {1, 2}
    assert {Path(p).suffix for p in col.clips["path"]} == {".wav", ".flac"}
    # multi-label: sirens are alarms, instruments are music, some clips are mixtures
    n_labels = col.clips["labels"].map(len)
    assert (n_labels >= 2).any()
    siren = col.clips[col.clips["labels"].map(lambda ls: "Siren" in ls)]
    assert all("Alarm" in ls for ls in siren["labels"])
    # loudness varies
    peaks = [np.abs(sf.read(p)[0]).max() for p in col.clips["path"][:20]]
    assert max(peaks) / min(peaks) > 3
    # families from families.json; Bell is in none
    fam = col.label_family()
    assert fam["Bird"] == "Animal" and fam["Piano"] == "Music" and fam["Bell"] is None


def test_demo_classes_are_distinguishable_but_not_trivially(demo_small):
    """A crude spectral feature separates the classes better than chance, far from perfectly."""
    col = load_collection({"kind": "demo", "name": "demo"}, demo_small)
    feats, primary = [], []
    for path, labels in zip(col.clips["path"], col.clips["labels"], strict=True):
        x, sr = sf.read(path, always_2d=True)
        x = x.mean(axis=1)
        spec = np.abs(np.fft.rfft(x[: sr // 2] if len(x) >= sr // 2 else np.pad(x, (0, sr // 2 - len(x)))))
        bands = np.array_split(spec, 32)
        f = np.log(np.array([b.mean() for b in bands]) + 1e-9)
        feats.append(f - f.mean())
        primary.append(labels[0])
    X = np.array(feats)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    sim = X @ X.T
    np.fill_diagonal(sim, -np.inf)
    nn = sim.argmax(axis=1)
    acc = np.mean([primary[i] == primary[j] for i, j in enumerate(nn)])
    chance = 1 / len(demo.CLASSES)
    assert 2 * chance < acc < 0.95


# ---------------------------------------------------------------- csv

def test_csv_collection(csv_collection):
    p = csv_collection()
    col = csv_folder.load("c", **p)
    assert col.clips["fname"].tolist() == ["a1", "a2", "b1", "b2", "c1"]
    assert col.clips.loc[1, "labels"] == ["Dog", "Bark"]
    assert all(Path(x).is_file() for x in col.clips["path"])
    assert col.vocabulary == ["Bark", "Dog", "Rain"]
    assert col.families == {"Animal": ["Dog", "Bark"], "Natural_sounds": ["Rain"]}


def test_csv_collection_without_optional_files(csv_collection):
    p = csv_collection()
    col = load_collection({"kind": "csv", "name": "c", "audio_dir": str(p["audio_dir"]), "ground_truth": str(p["ground_truth"])})
    assert col.vocabulary is None and col.families == {}
    assert col.label_family() == {"Bark": None, "Dog": None, "Rain": None}


def test_csv_path_column(tmp_path, write_audio):
    write_audio(tmp_path / "a" / "sub" / "x.wav")
    gt = tmp_path / "gt.csv"
    gt.write_text("fname,labels,path\nx,Dog,sub/x.wav\n")
    col = csv_folder.load("c", tmp_path / "a", gt)
    assert col.clips.loc[0, "path"].endswith("sub/x.wav")


def test_locate_audio(tmp_path, write_audio):
    write_audio(tmp_path / "1.wav")
    write_audio(tmp_path / "2.flac")
    write_audio(tmp_path / "3.wav")
    write_audio(tmp_path / "3.flac")
    assert [Path(p).name if p else None for p in locate_audio(tmp_path, ["1", "2.flac", "4"])] == ["1.wav", "2.flac", None]
    with pytest.raises(CollectionError, match="clip '3' is ambiguous: 3.flac, 3.wav"):
        locate_audio(tmp_path, ["3"])
    with pytest.raises(CollectionError, match="audio folder not found"):
        locate_audio(tmp_path / "nope", ["1"])


def test_ground_truth_errors(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("name,tags\nx,Dog\n")
    with pytest.raises(CollectionError, match=r"gt.csv: missing column\(s\) fname, labels; found name, tags"):
        read_ground_truth(gt)
    gt.write_text('fname,labels\nx,Dog\ny,""\n')
    with pytest.raises(CollectionError, match=r"1 clip\(s\) without labels, e.g. y"):
        read_ground_truth(gt)
    with pytest.raises(CollectionError, match="ground-truth file not found"):
        read_ground_truth(tmp_path / "none.csv")


def test_vocabulary_formats(tmp_path):
    v = tmp_path / "v.csv"
    v.write_text("0,Accelerating_and_revving_and_vroom,/m/07q2z82\n1,Accordion,/m/0mkg\n")
    assert read_vocabulary(v) == (["Accelerating_and_revving_and_vroom", "Accordion"],
                                  {"Accelerating_and_revving_and_vroom": "/m/07q2z82", "Accordion": "/m/0mkg"})
    v.write_text("label,mid\nDog,/m/dog\nCat,\n")
    assert read_vocabulary(v) == (["Dog", "Cat"], {"Dog": "/m/dog"})
    v.write_text("Dog\nCat\n")
    assert read_vocabulary(v) == (["Dog", "Cat"], {})
    v.write_text("Dog\nDog\n")
    with pytest.raises(CollectionError, match="duplicate labels in vocabulary: Dog"):
        read_vocabulary(v)


def test_families_errors(tmp_path):
    f = tmp_path / "f.json"
    f.write_text(json.dumps({"A": ["x"], "B": ["x"]}))
    with pytest.raises(CollectionError, match="label 'x' is in two families"):
        read_families(f)
    f.write_text(json.dumps(["x"]))
    with pytest.raises(CollectionError, match="expected a JSON object"):
        read_families(f)


def test_demo_kind_needs_sources():
    with pytest.raises(ConfigError, match="no folder with the generated demo sources"):
        load_collection({"kind": "demo", "name": "demo"})


# ---------------------------------------------------------------- fsd50k

ONTO = [
    {"id": "/m/animal", "name": "Animal", "child_ids": ["/m/dog"]},
    {"id": "/m/dog", "name": "Dog", "child_ids": ["/m/bark", "/m/growl"]},
    {"id": "/m/cat", "name": "Cat", "child_ids": ["/m/growl"]},
    {"id": "/m/things", "name": "Sounds of things", "child_ids": ["/m/cat", "/m/horn"]},
    {"id": "/m/bark", "name": "Bark", "child_ids": []},
    {"id": "/m/growl", "name": "Growling", "child_ids": []},
    {"id": "/m/horn", "name": "Vehicle horn, car horn, honking", "child_ids": []},
]


def write_fsd50k(root: Path, write_audio) -> dict[str, Path]:
    audio = root / "FSD50K.eval_audio"
    for i, fname in enumerate(["37199", "175151", "253463"]):
        write_audio(audio / f"{fname}.wav", 0.5, 44100, 1, freq=300 + 50 * i)
    gt = root / "FSD50K.ground_truth"
    gt.mkdir(parents=True)
    (gt / "eval.csv").write_text(
        "fname,labels,mids\n"
        '37199,"Bark,Dog,Animal","/m/bark,/m/dog,/m/animal"\n'
        '175151,"Growling,Dog,Animal","/m/growl,/m/dog,/m/animal"\n'
        '253463,Vehicle_horn_and_car_horn_and_honking,/m/horn\n'
    )
    (gt / "vocabulary.csv").write_text(
        "0,Animal,/m/animal\n1,Bark,/m/bark\n2,Dog,/m/dog\n3,Growling,/m/growl\n4,Vehicle_horn_and_car_horn_and_honking,/m/horn\n"
    )
    onto = root / "ontology.json"
    onto.write_text(json.dumps(ONTO))
    return {"audio_dir": audio, "ground_truth": gt / "eval.csv", "vocabulary": gt / "vocabulary.csv", "ontology": onto}


def test_fsd50k_collection(tmp_path, write_audio):
    p = write_fsd50k(tmp_path, write_audio)
    col = fsd50k.load("fsd", **p)
    assert col.clips["fname"].tolist() == ["37199", "175151", "253463"]
    assert col.clips.loc[0, "labels"] == ["Bark", "Dog", "Animal"]
    assert col.families == {"Animal": ["Animal", "Bark", "Dog"], "Sounds_of_things": ["Vehicle_horn_and_car_horn_and_honking"]}
    assert col.multi_parent == ["Growling"]
    assert all(Path(x).suffix == ".wav" for x in col.clips["path"])


def test_fsd50k_adapter_with_the_real_ontology(tmp_path, write_audio):
    """The adapter's families on all 200 FSD50K labels (mids by name) equal the paper's."""
    shared = shared_or_skip()
    from test_ontology import fsd50k_labels

    labels = fsd50k_labels(shared)
    onto = json.loads((shared / "ontology_crowd.json").read_text())
    from soundsim.datasets.ontology import fsd50k_name

    mid = {fsd50k_name(n["name"]): n["id"] for n in onto}
    (tmp_path / "vocabulary.csv").write_text("".join(f"{i},{lab},{mid[lab]}\n" for i, lab in enumerate(labels)))
    write_audio(tmp_path / "audio" / "1.wav")
    (tmp_path / "eval.csv").write_text("fname,labels,mids\n1,Music,/m/04rlf\n")
    col = fsd50k.load("f", tmp_path / "audio", tmp_path / "eval.csv", tmp_path / "vocabulary.csv",
                      shared / "ontology_crowd.json")
    assert len(col.multi_parent) == 22
    ref = json.loads((shared / "FSD50K_taxonomy-families.json").read_text())
    for fam, labs in col.families.items():
        assert set(labs) <= set(ref[fam])
    assert sum(map(len, col.families.values())) == 178
