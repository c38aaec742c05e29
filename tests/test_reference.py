"""soundsim against the authors' metric definitions on an FSD50K-shaped collection.

The collection has FSD50K's evaluation-set shape: 10,231 clips and the 200
labels with their evaluation-set clip counts, read from
``FSD50K_ontology-counts.json`` (a label node is named like ``Music_[1972]``).
Labels are assigned so that every label gets *exactly* its FSD50K count and
the hierarchy is kept as in FSD50K, whose ground truth carries every ancestor
of a label: the 42 top-level labels (15,838 clip-labels in all) are laid end
to end over a random permutation of the clips, wrapping around, so every clip
gets at least one top-level label and some two; each other label takes its
count of clips at random from its parent's clips (no label has more clips than
its parent). That gives 38,596 clip-labels, 3.77 per clip, as in FSD50K
(multi-label clips and nested labels), though which labels share clips
beyond the hierarchy is random.

Embeddings: synthetic 512-d frames with label structure (1-20 frames per
clip), processed by soundsim (mean aggregation, L2 normalisation, PCA 100)
into float64 clip vectors; soundsim's ``search_and_score`` then ranks them
(float32 candidates, float64 decisions) for MCSS, MIPS and NNS.

The reference is written here from the paper (III-B) and the authors'
repository (raraz15/semantic-sound-similarity: ``code/lib/search_algorithms.py``,
``code/lib/metrics/mAP_at_n.py``, ``code/lib/metrics/MR1.py``,
``code/lib/metrics/relevance.py``, ``code/create_clip_level_embedding.py``),
on the same float64 prepared vectors, in float64 numpy:

* search: every clip is a query; it is removed from the corpus and compared
  with all the others; MIPS ranks by the dot product, descending; MCSS by the
  dot product of the L2-re-normalised vectors (the ``--normalization`` step);
  NNS by the Euclidean distance, ascending. A stable sort (ties: lower index
  first);
* relevance (class-wise): a result is relevant iff it carries the query label;
* AP@N: the sum of precision@k over the relevant positions k <= N, divided by
  ``min(N, n_relevant)`` with ``n_relevant`` the number of clips carrying the
  label, *the query included* (``len(fnames_with_label)``); 0 if none;
* R1: the 0-based index of the first relevant result in the full ranking;
* MAP@N(L), MR1(L): the means over the clips carrying L.

Per-label MAP@15, MAP@150 and MR1 must agree with soundsim to 1e-6, and the
top-150 lists must be identical.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from soundsim import process as P
from soundsim.evaluate import search_and_score
from soundsim.metrics import build_label_index

ONTOLOGY = Path("/work/shared/data/fsd50k-ontology/FSD50K_ontology-counts.json")
N_CLIPS = 10231
CUTOFFS = (15, 150)
SEARCHES = ("mcss", "mips", "nns")

if not ONTOLOGY.exists():
    pytest.skip(f"{ONTOLOGY} is absent (needs /work/shared)", allow_module_level=True)

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------
# The FSD50K-shaped collection


def label_tree(path: Path) -> list[tuple[str, int, str | None]]:
    """(label, evaluation-set clip count, parent label or None), top-down."""
    out: list[tuple[str, int, str | None]] = []

    def walk(node: dict, parent: str | None) -> None:
        for child in node.get("children", []):
            m = re.fullmatch(r"(.*)_\[(\d+)\]", child["name"])
            assert m, child["name"]
            out.append((m.group(1), int(m.group(2)), parent))
            walk(child, m.group(1))

    walk(json.loads(path.read_text()), None)
    return out


def assign_labels(n: int, tree: list[tuple[str, int, str | None]], rng: np.random.Generator) -> list[list[str]]:
    """Every label gets exactly its count of clips (module docstring)."""
    members: dict[str, np.ndarray] = {}
    perm = rng.permutation(n)
    pos = 0
    for lab, count, parent in tree:
        if parent is None:
            members[lab] = perm[(pos + np.arange(count)) % n]
            pos += count
        else:
            members[lab] = rng.choice(members[parent], size=count, replace=False)
    assert pos >= n  # the top-level labels cover every clip
    labels: list[list[str]] = [[] for _ in range(n)]
    for lab, idx in members.items():
        for i in idx:
            labels[i].append(lab)
    return labels


def synthetic_frames(labels: list[list[str]], rng: np.random.Generator, dim: int = 512):
    """float32 frames (F, dim) and clip offsets (N+1,): per clip the sum of its
    labels' random centres, clip noise, an unequal scale and a common offset;
    1-20 frames per clip, each with its own noise."""
    names = sorted({lab for ls in labels for lab in ls})
    col = {lab: j for j, lab in enumerate(names)}
    centres = rng.standard_normal((len(names), dim)) / np.sqrt(dim)
    clip = np.stack([centres[[col[lab] for lab in ls]].sum(axis=0) for ls in labels])
    clip += rng.standard_normal(clip.shape) * (0.8 / np.sqrt(dim))
    clip *= rng.uniform(0.5, 2.0, size=(len(labels), 1))
    clip += 0.3 / np.sqrt(dim)
    counts = rng.integers(1, 21, size=len(labels))
    offsets = np.zeros(len(labels) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    frames = np.repeat(clip, counts, axis=0) + rng.standard_normal((int(offsets[-1]), dim)) / np.sqrt(dim)
    return frames.astype(np.float32), offsets


# ---------------------------------------------------------------------------
# The reference: the authors' definitions, plainly


def average_precision_at_n(relevance: list[int], n: int, n_relevant: int) -> float:
    """mAP_at_n.average_precision_at_n: (sum of precision@k at the relevant
    positions of the first n) / min(n, n_relevant); 0 without a relevant one."""
    relevance = relevance[:n]
    if sum(relevance) == 0:
        return 0.0
    total = sum(sum(relevance[: k + 1]) / (k + 1) for k, rel in enumerate(relevance) if rel == 1)
    return total / min(n, n_relevant)


def r1(relevance: list[int]) -> int:
    """MR1.R1: the index of the first relevant result."""
    for i, rel in enumerate(relevance):
        if rel:
            return i
    raise AssertionError("no relevant result")


def ap_at_n_rows(rel: np.ndarray, n: int, n_relevant: np.ndarray) -> np.ndarray:
    """average_precision_at_n for each row of ``rel`` (P, >= n) at once."""
    r = rel[:, :n].astype(np.float64)
    precision_at_k = np.cumsum(r, axis=1) / np.arange(1, n + 1)
    return (precision_at_k * r).sum(axis=1) / np.minimum(n, n_relevant)


def reference_per_label(V: np.ndarray, labels: list[list[str]], distance: bool, block: int = 128):
    """Per-label MAP@15, MAP@150, MR1 and the top-150 lists of every query.

    ``V``: the final float64 vectors; ``distance``: rank by Euclidean distance
    ascending (NNS), else by dot product descending. Each query block's scores
    against every clip are sorted in full (stable); the query is removed."""
    names = sorted({lab for ls in labels for lab in ls})
    col = {lab: j for j, lab in enumerate(names)}
    n = len(labels)
    Y = np.zeros((n, len(names)), dtype=bool)
    for i, ls in enumerate(labels):
        Y[i, [col[lab] for lab in ls]] = True
    n_relevant = Y.sum(axis=0)  # len(fnames_with_label): the query included
    sq = (V * V).sum(axis=1)
    ap = {c: np.zeros(len(names)) for c in CUTOFFS}
    r1_sum = np.zeros(len(names))
    top = np.empty((n, max(CUTOFFS)), dtype=np.int64)
    checked = 0
    for b0 in range(0, n, block):
        q = np.arange(b0, min(n, b0 + block))
        dots = V[q] @ V.T
        if distance:
            score = -np.sqrt(np.maximum(sq[q, None] + sq[None, :] - 2 * dots, 0))  # -|a - b|
        else:
            score = dots
        order = np.argsort(-score, axis=1, kind="stable")
        order = order[order != q[:, None]].reshape(len(q), n - 1)  # the query removed from the corpus
        top[q] = order[:, : max(CUTOFFS)]
        pq, pl = np.nonzero(Y[q])  # each (query, label) pair of the block
        rel = Y[order[pq], pl[:, None]]  # (pairs, N-1): result carries the query label
        for c in CUTOFFS:
            np.add.at(ap[c], pl, ap_at_n_rows(rel, c, n_relevant[pl]))
        np.add.at(r1_sum, pl, rel.argmax(axis=1))
        if checked < 200:  # the vectorised formulas are the plain per-query functions
            for p in range(0, len(pq), 37):
                rl = rel[p].astype(int).tolist()
                for c in CUTOFFS:
                    assert ap_at_n_rows(rel[p : p + 1], c, n_relevant[pl[p : p + 1]])[0] == pytest.approx(
                        average_precision_at_n(rl, c, int(n_relevant[pl[p]])), abs=1e-12)
                assert rel[p].argmax() == r1(rl)
                checked += 1
    out = {f"map@{c}": ap[c] / n_relevant for c in CUTOFFS}
    out["mr1"] = r1_sum / n_relevant
    return names, out, top


# ---------------------------------------------------------------------------


def test_per_label_metrics_equal_the_authors_definitions():
    rng = np.random.default_rng(2024)
    tree = label_tree(ONTOLOGY)
    assert len(tree) == 200
    labels = assign_labels(N_CLIPS, tree, rng)
    counts = {lab: 0 for lab, _, _ in tree}
    for ls in labels:
        for lab in ls:
            counts[lab] += 1
    assert counts == {lab: c for lab, c, _ in tree}  # FSD50K's evaluation-set counts, exactly
    frames, offsets = synthetic_frames(labels, rng)

    # soundsim: mean -> L2 -> PCA 100 (float64), then the search
    t0 = time.perf_counter()
    X = P.l2_normalize(P.aggregate(frames, offsets, "mean"))
    Z, _ = P.pca_reduce(X, 100)
    assert Z.dtype == np.float64 and Z.shape == (N_CLIPS, 100)
    index = build_label_index(labels)
    results = search_and_score(Z, index, SEARCHES, CUTOFFS)
    t_soundsim = time.perf_counter() - t0

    # the reference on the same float64 prepared vectors
    final = {
        "mcss": (Z / np.linalg.norm(Z, axis=1, keepdims=True), False),  # normalised again, dot product
        "mips": (Z, False),
        "nns": (Z, True),
    }
    for search in SEARCHES:
        t0 = time.perf_counter()
        V, distance = final[search]
        names, ref, top = reference_per_label(V, labels, distance)
        t_ref = time.perf_counter() - t0
        res = results[search]
        df = res.metrics.per_label()
        assert df["label"].tolist() == names and (df["n_clips"] >= 32).all()
        diffs = {m: float(np.max(np.abs(df[m].to_numpy() - ref[m]))) for m in ref}
        n_rows_differ = int(np.any(res.indices != top, axis=1).sum())
        print(f"\n{search}: max |soundsim - reference| over 200 labels: "
              + ", ".join(f"{m} {d:.2e}" for m, d in diffs.items())
              + f"; top-150 lists differing: {n_rows_differ} of {N_CLIPS}; "
              f"re-scored pairs per query {res.n_rescored / N_CLIPS:.1f}; reference {t_ref:.1f} s")
        for m, d in diffs.items():
            assert d <= 1e-6, (search, m, d)
        assert n_rows_differ == 0
    print(f"soundsim (processing + 3 searches): {t_soundsim:.1f} s")
