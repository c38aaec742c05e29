"""Families from the AudioSet ontology: hand-made cases and FSD50K against ../shared."""

from __future__ import annotations

import json

import pytest

from soundsim.datasets.ontology import Ontology, derive_families, fsd50k_name, load_ontology
from soundsim.errors import CollectionError

from conftest import shared_or_skip


@pytest.mark.parametrize(
    "name,expected",
    [
        ("Vehicle horn, car horn, honking", "Vehicle_horn_and_car_horn_and_honking"),
        ("Dishes, pots, and pans", "Dishes_and_pots_and_pans"),
        ("Roaring cats (lions, tigers)", "Roaring_cats_(lions_and_tigers)"),
        ("Human sounds", "Human_sounds"),
        ("Music", "Music"),
    ],
)
def test_fsd50k_name(name, expected):
    assert fsd50k_name(name) == expected


def node(i, name, children=()):
    return {"id": i, "name": name, "child_ids": list(children)}


TINY = [
    node("/r1", "Animal", ["/dog", "/cat"]),
    node("/r2", "Sounds of things", ["/bell", "/car"]),
    node("/r3", "Music", ["/bell"]),
    node("/dog", "Dog", ["/growl", "/bark"]),
    node("/cat", "Cat", ["/growl"]),
    node("/bark", "Bark"),
    node("/growl", "Growling"),
    node("/bell", "Bell", ["/chime"]),
    node("/chime", "Chime"),
    node("/car", "Car horn, honking"),
]


def test_derive_families_tiny():
    onto = Ontology.from_nodes(TINY)
    labels = ["Animal", "Dog", "Bark", "Growling", "Bell", "Chime", "Car_horn_and_honking", "Music"]
    fams, multi = derive_families(onto, labels)
    # Growling: two parents in one family; Bell: two families; Chime: one parent, but Bell has two
    assert sorted(multi) == ["Bell", "Chime", "Growling"]
    assert fams == {"Animal": ["Animal", "Dog", "Bark"], "Sounds_of_things": ["Car_horn_and_honking"], "Music": ["Music"]}
    assert onto.n_paths("/chime") == 2 and onto.n_paths("/growl") == 2 and onto.n_paths("/bark") == 1


def test_derive_families_by_mid():
    onto = Ontology.from_nodes(TINY)
    fams, multi = derive_families(onto, ["Woof"], {"Woof": "/bark"})
    assert fams == {"Animal": ["Woof"]} and multi == []


def test_unknown_label_and_bad_files(tmp_path):
    onto = Ontology.from_nodes(TINY)
    with pytest.raises(CollectionError, match="'Meow' is not in the ontology"):
        derive_families(onto, ["Meow"])
    with pytest.raises(CollectionError, match="/nope is not in the ontology"):
        derive_families(onto, ["Dog"], {"Dog": "/nope"})
    bad = tmp_path / "o.json"
    bad.write_text(json.dumps({"id": "x"}))
    with pytest.raises(CollectionError, match="expected a JSON list"):
        load_ontology(bad)
    bad.write_text(json.dumps([node("/a", "A", ["/missing"])]))
    with pytest.raises(CollectionError, match="child ids without a node: /missing"):
        load_ontology(bad)


def _walk(tree, out):
    out.append(tree["name"])
    for c in tree.get("children", []):
        _walk(c, out)
    return out


def fsd50k_labels(shared):
    return _walk(json.loads((shared / "FSD50K_ontology.json").read_text()), [])[1:]


def test_fsd50k_families_match_the_paper():
    """Families derived from ontology_crowd.json == FSD50K_taxonomy-families.json minus multi_parents.txt."""
    shared = shared_or_skip()
    labels = fsd50k_labels(shared)
    assert len(labels) == 200
    fams, multi = derive_families(load_ontology(shared / "ontology_crowd.json"), labels)
    expected_multi = {
        ln.strip() for ln in (shared / "multi_parents.txt").read_text().splitlines() if ln.strip() and not ln.startswith("[")
    }
    assert set(multi) == expected_multi and len(multi) == 22
    reference = json.loads((shared / "FSD50K_taxonomy-families.json").read_text())
    label_set = set(labels)
    # the reference also lists family roots that are not FSD50K labels (e.g. Human_sounds)
    expected = {f: [lab for lab in labs if lab in label_set] for f, labs in reference.items()}
    assert {f: sorted(v) for f, v in fams.items()} == {f: sorted(v) for f, v in expected.items()}
    assert sum(map(len, fams.values())) == 178
    assert len(fams) == 6
