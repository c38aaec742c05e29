"""The AudioSet ontology and the sound families derived from it.

The ontology JSON is a list of nodes ``{"id": "/m/...", "name": "...",
"child_ids": [...], ...}`` (AudioSet's ``ontology.json`` or FSD50K's curated
``ontology_crowd.json``). Nodes without a parent are the roots ("Animal",
"Music", "Human sounds", ...).

Families, as in the paper (section III-A):

* the family of a label is the root it descends from, named the FSD50K way
  (``"Human sounds"`` -> ``"Human_sounds"``);
* a label with more than one ancestor path to a root (several parents, or a
  parent that has several) is *multi-parent*: it belongs to no family and is
  left out of family averages. On FSD50K this gives exactly the 22 labels the
  paper lists, including e.g. ``Chime`` whose single parent ``Bell`` has two.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soundsim.errors import CollectionError


def fsd50k_name(name: str) -> str:
    """AudioSet display name -> FSD50K label name.

    ``"Vehicle horn, car horn, honking"`` -> ``"Vehicle_horn_and_car_horn_and_honking"``,
    ``"Dishes, pots, and pans"`` -> ``"Dishes_and_pots_and_pans"``.
    """
    return re.sub(r",\s*(?:and\s+)?", "_and_", name.strip()).replace(" ", "_")


@dataclass(eq=False)
class Ontology:
    """Nodes by id, parents by id, and an FSD50K-style name index."""

    names: dict[str, str]  # id -> display name
    parents: dict[str, tuple[str, ...]]  # id -> parent ids
    by_label: dict[str, str]  # FSD50K-style name -> id
    _roots: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _n_paths: dict[str, int] = field(default_factory=dict, repr=False)
    _paths: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_nodes(cls, nodes: list[dict[str, Any]], source: str = "ontology") -> Ontology:
        names: dict[str, str] = {}
        parents: dict[str, list[str]] = {}
        for i, node in enumerate(nodes):
            try:
                nid, name, children = node["id"], node["name"], node.get("child_ids", [])
            except (KeyError, TypeError) as e:
                raise CollectionError(f"{source}: node #{i} lacks 'id' or 'name' (AudioSet ontology format expected)") from e
            names[nid] = name
            for c in children:
                parents.setdefault(c, []).append(nid)
        dangling = sorted(c for c in parents if c not in names)
        if dangling:
            raise CollectionError(f"{source}: child ids without a node: {', '.join(dangling[:5])}")
        by_label: dict[str, str] = {}
        for nid, name in names.items():
            by_label.setdefault(fsd50k_name(name), nid)
        return cls(names, {k: tuple(v) for k, v in parents.items()}, by_label)

    def roots(self, nid: str) -> frozenset[str]:
        """Ids of the roots ``nid`` descends from (memoised)."""
        if nid not in self._roots:
            ps = self.parents.get(nid, ())
            self._roots[nid] = frozenset([nid]) if not ps else frozenset().union(*(self.roots(p) for p in ps))
        return self._roots[nid]

    def n_paths(self, nid: str) -> int:
        """Number of distinct ancestor paths from ``nid`` up to a root (memoised)."""
        if nid not in self._n_paths:
            ps = self.parents.get(nid, ())
            self._n_paths[nid] = 1 if not ps else sum(self.n_paths(p) for p in ps)
        return self._n_paths[nid]

    def paths(self, nid: str) -> tuple[tuple[str, ...], ...]:
        """Every ancestor path of ``nid``, each from its root down to ``nid`` itself
        (one path for a single-parent node, :meth:`n_paths` of them in all; memoised)."""
        if nid not in self._paths:
            ps = self.parents.get(nid, ())
            if not ps:
                self._paths[nid] = ((nid,),)
            else:
                self._paths[nid] = tuple(p + (nid,) for par in ps for p in self.paths(par))
        return self._paths[nid]

    def resolve(self, label: str, mid: str | None = None) -> str:
        """Node id of a label: its ``mid`` when given, else its FSD50K-style name."""
        if mid:
            if mid not in self.names:
                raise CollectionError(f"label {label!r}: id {mid} is not in the ontology")
            return mid
        if label in self.by_label:
            return self.by_label[label]
        if label in self.names:
            return label
        raise CollectionError(f"label {label!r} is not in the ontology (no node with that name or id)")


def load_ontology(path: str | Path) -> Ontology:
    """Read an AudioSet-format ontology JSON file."""
    path = Path(path)
    if not path.is_file():
        raise CollectionError(f"{path}: ontology file not found")
    try:
        nodes = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CollectionError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(nodes, list):
        raise CollectionError(f"{path}: expected a JSON list of nodes (AudioSet ontology format)")
    return Ontology.from_nodes(nodes, source=str(path))


def derive_families(
    onto: Ontology, labels: list[str], mids: dict[str, str] | None = None
) -> tuple[dict[str, list[str]], list[str]]:
    """Family -> member labels, and the multi-parent labels left out.

    ``labels`` are the collection's labels; ``mids`` optionally maps a label to
    its ontology id (FSD50K's vocabulary gives them), else labels are matched by
    FSD50K-style name. Family names are FSD50K-style root names. Member lists
    keep the order of ``labels``.
    """
    mids = mids or {}
    families: dict[str, list[str]] = {}
    multi: list[str] = []
    for label in labels:
        nid = onto.resolve(label, mids.get(label))
        if onto.n_paths(nid) > 1:
            multi.append(label)
            continue
        (root,) = onto.roots(nid)
        families.setdefault(fsd50k_name(onto.names[root]), []).append(label)
    return families, multi
