"""Graded relevance between labels: how close a retrieved clip's labels are to
the query's, as a gain in [0, 1] (issue 17; used by the graded nDCG of
:mod:`soundsim.panel`).

**Ontology gains** (collections with an AudioSet-style ontology: ``fsd50k``).
Each label is a node of the ontology tree; an *ancestor path* runs from a root
("Animal", "Music", ...) down to the node, so its length is the node's depth
(a root has depth 1). For labels a != b, with paths p of a and q of b, the gain
is Wu & Palmer's (1994) similarity of the best-matching pair of paths::

    gain(a, b) = max_{p in paths(a), q in paths(b)}  2 * |lcp(p, q)| / (|p| + |q|)
    gain(a, a) = 1

where ``lcp`` is the longest common prefix (the path from the root to the
lowest common ancestor along p and q). Labels under different roots have gain
0; siblings at depth 4 (``Bark`` and ``Growling`` under ``Dog``) 2*3/8 = 0.75;
a label and its parent (``Bark``, ``Dog``) 2*3/7 = 0.857. The gain of a != b is
always < 1 (a common prefix of full length would make the paths equal).
**Multi-parent labels** (several ancestor paths, e.g. ``Growling`` under ``Dog``,
``Cat``, ``Roaring cats`` and ``Canidae``) are handled explicitly by the max
over all their paths: such a label is as close to each of its parents'
subtrees as a label that belongs there only (``Growling`` vs ``Roar`` 0.75 via
``Roaring cats``, vs ``Meow`` 0.75 via ``Cat``). This differs from the family
averages, which leave multi-parent labels out.

**Family gains** (fallback for collections without an ontology: ``demo``,
``csv``): gain 1 for the same label, ``family_gain`` (default 0.5) for two
labels of the same family (the collection's ``labels.csv`` family column),
0 otherwise; a label in no family (or multi-parent) matches only itself.

**Clips.** A clip carries several labels. For a class-wise query of label L
(the paper's class-wise relevance, :mod:`soundsim.metrics`) the gain of a
retrieved clip j is ``max_{l in labels(j)} gain(L, l)``; for a micro (per
clip) query q it is ``max_{L in labels(q), l in labels(j)} gain(L, l)``: the
best-matching pair of labels in both cases. Clips carrying L have gain 1, so
binary relevance is the special case "gain == 1".

The matrix is written as ``relevance.csv`` (``label_a, label_b, gain``, every
ordered pair with gain > 0, and a comment-free header) by the ``relevance``
rule and read back by the evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from soundsim.datasets.ontology import Ontology
from soundsim.errors import SoundsimError
from soundsim.fileutil import write_csv_atomic

#: the default gain of two different labels of one family (family gains)
DEFAULT_FAMILY_GAIN = 0.5
KINDS = ("auto", "ontology", "families")
COLUMNS = ["label_a", "label_b", "gain"]


class RelevanceError(SoundsimError):
    """Gains cannot be computed or read (names the file or label at fault)."""


def wu_palmer(paths_a: Sequence[Sequence[str]], paths_b: Sequence[Sequence[str]]) -> float:
    """``max_{p, q} 2 |lcp(p, q)| / (|p| + |q|)`` over the two labels' ancestor paths."""
    best = 0.0
    for p in paths_a:
        for q in paths_b:
            n = 0
            for x, y in zip(p, q, strict=False):
                if x != y:
                    break
                n += 1
            best = max(best, 2.0 * n / (len(p) + len(q)))
    return best


def ontology_gains(onto: Ontology, labels: Sequence[str], mids: Mapping[str, str] | None = None) -> np.ndarray:
    """(L, L) gains of ``labels`` from the ontology (module docstring), symmetric,
    1 on the diagonal. ``mids``: label -> ontology id (FSD50K's vocabulary), else
    labels are matched by FSD50K-style name. A label not in the ontology raises
    :class:`soundsim.errors.CollectionError` naming it."""
    mids = mids or {}
    paths = [onto.paths(onto.resolve(lab, mids.get(lab))) for lab in labels]
    n = len(labels)
    G = np.eye(n, dtype=np.float64)
    for i in range(n):
        for j in range(i + 1, n):
            G[i, j] = G[j, i] = wu_palmer(paths[i], paths[j])
    return G


def family_gains(labels: Sequence[str], family_of: Mapping[str, str | None],
                 family_gain: float = DEFAULT_FAMILY_GAIN) -> np.ndarray:
    """(L, L) gains: 1 on the diagonal, ``family_gain`` for two labels of one
    family (``family_of``: label -> family, None/'' for none), else 0."""
    if not 0.0 <= float(family_gain) < 1.0:
        raise RelevanceError(f"family_gain must be in [0, 1), got {family_gain}")
    fam = [family_of.get(lab) or None for lab in labels]
    n = len(labels)
    G = np.eye(n, dtype=np.float64)
    for i in range(n):
        for j in range(n):
            if i != j and fam[i] is not None and fam[i] == fam[j]:
                G[i, j] = float(family_gain)
    return G


def gains_frame(labels: Sequence[str], G: np.ndarray) -> pd.DataFrame:
    """The long form of ``G``: one row per ordered pair with gain > 0."""
    i, j = np.nonzero(G > 0)
    return pd.DataFrame({"label_a": np.asarray(labels, dtype=object)[i],
                         "label_b": np.asarray(labels, dtype=object)[j], "gain": G[i, j]}, columns=COLUMNS)


def write_gains(labels: Sequence[str], G: np.ndarray, path: str | Path) -> Path:
    """Write ``relevance.csv`` atomically (full float precision)."""
    return write_csv_atomic(gains_frame(labels, G), path)


def read_gains(path: str | Path, labels: Sequence[str]) -> np.ndarray:
    """(L, L) gains of ``labels`` from a ``relevance.csv``; pairs not listed have
    gain 0, a label with itself 1. A malformed file raises :class:`RelevanceError`."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"label_a": str, "label_b": str})
    except (OSError, ValueError) as e:
        raise RelevanceError(f"{path}: unreadable relevance file ({e})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise RelevanceError(f"{path}: lacks column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})")
    g = pd.to_numeric(df["gain"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(g) | (g < 0) | (g > 1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise RelevanceError(f"{path}: row {r + 2}: gain {df['gain'].iloc[r]!r} is not a number in [0, 1]")
    pos = {lab: k for k, lab in enumerate(labels)}
    G = np.eye(len(labels), dtype=np.float64)
    a = df["label_a"].map(pos)
    b = df["label_b"].map(pos)
    ok = a.notna() & b.notna()
    G[a[ok].astype(int).to_numpy(), b[ok].astype(int).to_numpy()] = g[ok.to_numpy()]
    np.fill_diagonal(G, 1.0)
    return G


def clip_gains(G: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """(L, N) class-wise gains: ``C[L, j] = max_{l in labels(j)} G[L, l]``
    (``Y``: (N, L) bool clip-label matrix, every clip with >= 1 label)."""
    n, n_lab = Y.shape
    C = np.zeros((n_lab, n), dtype=np.float64)
    for l in range(n_lab):
        clips = np.flatnonzero(Y[:, l])
        if clips.size:
            C[:, clips] = np.maximum(C[:, clips], G[:, l : l + 1])
    return C


def resolve_kind(kind: str, collection: Mapping[str, object]) -> str:
    """``auto`` -> ``ontology`` for a collection with an ontology (the ``fsd50k``
    kind's ``ontology:``), else ``families``. ``ontology`` without one is an error."""
    if kind not in KINDS:
        raise RelevanceError(f"evaluation.relevance must be one of {', '.join(KINDS)}, got {kind!r}")
    has = collection.get("kind") == "fsd50k" and bool(collection.get("ontology"))
    if kind == "auto":
        return "ontology" if has else "families"
    if kind == "ontology" and not has:
        raise RelevanceError(
            f"evaluation.relevance: ontology needs a collection with an ontology (kind fsd50k with ontology:); "
            f"collection {collection.get('name')!r} is kind {collection.get('kind')!r}: use families or auto")
    return kind


def run(labels_csv: str | Path, out: str | Path, kind: str = "families", ontology: str | Path | None = None,
        vocabulary: str | Path | None = None, family_gain: float = DEFAULT_FAMILY_GAIN) -> Path:
    """Write the collection's ``relevance.csv`` (what the ``relevance`` rule runs):
    the labels of its ``labels.csv`` (columns ``label``, ``family``), with
    ontology gains (``kind`` 'ontology': ``ontology`` JSON, ``vocabulary``'s
    mids when given) or family gains (``kind`` 'families': the labels.csv family)."""
    from soundsim.datasets.common import read_vocabulary
    from soundsim.datasets.ontology import load_ontology

    labels_csv = Path(labels_csv)
    try:
        df = pd.read_csv(labels_csv, dtype={"label": str, "family": str}, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise RelevanceError(f"{labels_csv}: unreadable labels file ({e})") from None
    if "label" not in df.columns:
        raise RelevanceError(f"{labels_csv}: lacks column 'label'")
    labels = df["label"].tolist()
    if kind == "ontology":
        if ontology is None:
            raise RelevanceError("relevance from the ontology needs the ontology file")
        mids = read_vocabulary(vocabulary)[1] if vocabulary else None
        G = ontology_gains(load_ontology(ontology), labels, mids)
    elif kind == "families":
        fam = dict(zip(labels, df["family"] if "family" in df.columns else [""] * len(labels), strict=True))
        G = family_gains(labels, {k: (v or None) for k, v in fam.items()}, family_gain)
    else:
        raise RelevanceError(f"unknown relevance kind {kind!r} (ontology or families)")
    return write_gains(labels, G, out)
