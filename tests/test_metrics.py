"""AP@N, R1 and their class-wise / macro / family / micro averages.

Hand-computed cases (arithmetic in the comments) and a property test against
a plain per-query implementation: full sort of all other clips, loop over labels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soundsim import search as S
from soundsim.evaluate import search_and_score
from soundsim.metrics import (
    MetricsError,
    average_precision_at_n,
    build_label_index,
    family_mean,
    metrics_from_scores,
)

from conftest import brute_force_keys

# ---------------------------------------------------------------------------
# AP@N of single rankings: the reference implementation's own test vectors
# (code/lib/metrics/mAP.py, test_average_precision_at_n)


@pytest.mark.parametrize(
    ("rel", "n", "n_relevant", "expected"),
    [
        ([0, 0, 0, 0, 0, 0], 6, 10, 0.0),  # nothing relevant in the top 6
        ([1, 1, 0, 0, 0, 0], 6, 2, 1.0),  # (1/1 + 2/2) / min(6, 2)
        ([0, 0, 0, 0, 1, 1], 6, 2, (1 / 5 + 2 / 6) / 2),  # = 0.2667
        ([0, 1, 0, 1, 0, 0], 6, 2, (1 / 2 + 2 / 4) / 2),  # = 0.5
        ([1, 0, 0, 1, 0, 1], 6, 3, (1 + 2 / 4 + 3 / 6) / 3),  # = 0.6667
        ([1, 1, 1, 0, 0], 5, 8, (1 + 1 + 1) / 5),  # fewer relevant retrieved than n: / min(5, 8)
    ],
)
def test_average_precision_at_n_reference_vectors(rel, n, n_relevant, expected):
    got = average_precision_at_n(np.array([rel], dtype=bool), n, min(n, n_relevant))
    assert got[0] == pytest.approx(expected, abs=1e-12)


def test_average_precision_cutoff_shorter_than_ranking():
    # rel = 0 1 | 1 1, AP@2 looks at the first two only: (1/2) / min(2, 5) = 0.25
    assert average_precision_at_n(np.array([[0, 1, 1, 1]], bool), 2, 2)[0] == pytest.approx(0.25)


# ---------------------------------------------------------------------------
# A hand-made collection of 5 clips
#   labels: 0 {A}, 1 {A, B}, 2 {B}, 3 {A}, 4 {C}    n_A = 3, n_B = 2, n_C = 1
#   scores (row = query; the diagonal is ignored), rankings by the tie rule:
#     q0: [-, .1, .9, .5, .7]   -> 2, 4, 3, 1
#     q1: [.8, -, .3, .3, .6]   -> 0, 4, 2, 3   (2 and 3 tie at .3: lower index first)
#     q2: [.2, .2, -, .2, .2]   -> 0, 1, 3, 4   (all tie)
#     q3: [.4, .9, .1, -, .95]  -> 4, 1, 0, 2
#     q4: [.3, .2, .1, 0, -]    -> 0, 1, 2, 3

LABELS = [["A"], ["A", "B"], ["B"], ["A"], ["C"]]
SCORES = np.array(
    [
        [0, 0.1, 0.9, 0.5, 0.7],
        [0.8, 0, 0.3, 0.3, 0.6],
        [0.2, 0.2, 0, 0.2, 0.2],
        [0.4, 0.9, 0.1, 0, 0.95],
        [0.3, 0.2, 0.1, 0.0, 0],
    ]
)
# Label A (queries 0, 1, 3; D = min(N, 3)):
#   q0 rel 0 0 1 1: AP@1 = 0; AP@3 = (1/3)/3 = 1/9; AP@15 = (1/3 + 2/4)/3 = 5/18; R1 = 2
#   q1 rel 1 0 0 1: AP@1 = 1; AP@3 = 1/3;           AP@15 = (1 + 2/4)/3 = 1/2;    R1 = 0
#   q3 rel 0 1 1 0: AP@1 = 0; AP@3 = (1/2 + 2/3)/3 = 7/18; AP@15 = 7/18;          R1 = 1
#   MAP@1 = 1/3, MAP@3 = (2/18 + 6/18 + 7/18)/3 = 5/18, MAP@15 = (5+9+7)/18/3 = 7/18, MR1 = 1
# Label B (queries 1, 2; D = min(N, 2) -- fewer relevant clips than N):
#   q1 rel 0 0 1 0: AP@1 = 0; AP@3 = (1/3)/2 = 1/6; AP@15 = 1/6; R1 = 2
#   q2 rel 0 1 0 0: AP@1 = 0; AP@3 = (1/2)/2 = 1/4; AP@15 = 1/4; R1 = 1 (ties by index;
#                   ties by higher index would give 4, 3, 1, 0 and R1 = 2)
#   MAP@1 = 0, MAP@3 = MAP@15 = (1/6 + 1/4)/2 = 5/24, MR1 = 1.5
# Label C: one clip -> undefined (NaN), left out of the averages.
# Macro over A, B: MAP@1 = 1/6, MAP@3 = (5/18 + 5/24)/2 = 35/144,
#   MAP@15 = (7/18 + 5/24)/2 = 43/144, MR1 = (1 + 1.5)/2 = 1.25
# Micro (relevant = shares a label, D = N; q4 has no possible relevant clip -> left out):
#   q0 rel 0 0 1 1: AP@1 0, AP@3 (1/3)/3 = 1/9,     AP@15 (1/3 + 1/2)/15 = 1/18,        R1 2
#   q1 rel 1 0 1 1: AP@1 1, AP@3 (1 + 2/3)/3 = 5/9, AP@15 (1 + 2/3 + 3/4)/15 = 29/180, R1 0
#   q2 rel 0 1 0 0: AP@1 0, AP@3 (1/2)/3 = 1/6,     AP@15 (1/2)/15 = 1/30,             R1 1
#   q3 rel 0 1 1 0: AP@1 0, AP@3 (1/2 + 2/3)/3 = 7/18, AP@15 (7/6)/15 = 7/90,          R1 1
#   MAP@1 = 1/4, MAP@3 = (2 + 10 + 3 + 7)/18/4 = 11/36, MAP@15 = (10+29+6+14)/180/4 = 59/720, MR1 = 1

CUTOFFS = [1, 3, 15]


@pytest.mark.parametrize("block_size", [1, 2, 5])
def test_hand_computed_collection(block_size):
    ix = build_label_index(LABELS)
    assert ix.labels == ["A", "B", "C"] and ix.counts.tolist() == [3, 2, 1]
    r = metrics_from_scores(SCORES, ix, CUTOFFS, block_size=block_size)
    df = r.per_label().set_index("label")
    assert list(r.per_label().columns) == ["label", "n_clips", "map@1", "map@3", "map@15", "mr1"]
    assert df.loc["A"].tolist() == pytest.approx([3, 1 / 3, 5 / 18, 7 / 18, 1.0])
    assert df.loc["B"].tolist() == pytest.approx([2, 0.0, 5 / 24, 5 / 24, 1.5])
    assert df.loc["C", "n_clips"] == 1 and df.loc["C"][["map@1", "map@3", "map@15", "mr1"]].isna().all()
    assert r.macro() == pytest.approx({"map@1": 1 / 6, "map@3": 35 / 144, "map@15": 43 / 144, "mr1": 1.25})
    assert r.micro() == pytest.approx({"map@1": 1 / 4, "map@3": 11 / 36, "map@15": 59 / 720, "mr1": 1.0})
    assert r.n_micro_queries == 4 and math.isnan(r.query_r1[4])
    # per query, label A pairs are (0,A), (1,A), (3,A): R1 2, 0, 1
    assert r.pair_r1[(ix.pair_q == 0) & (ix.pair_l == 0)].tolist() == [2.0]


def test_hand_computed_r1_beyond_top_k():
    # cutoff 1 keeps only the top result; the other R1 values come from counting
    # over the full score rows (with the same tie rule): the same MR1 as above
    r = metrics_from_scores(SCORES, build_label_index(LABELS), [1], block_size=2)
    assert r.label_mr1[:2].tolist() == [1.0, 1.5] and math.isnan(r.label_mr1[2])
    assert r.micro_mr1 == 1.0


def test_families():
    r = metrics_from_scores(SCORES, build_label_index(LABELS), CUTOFFS)
    fam = r.per_family({"F1": ["A", "B"], "F2": ["C"], "F3": ["A", "Z"]})
    # F2: only a single-clip label -> left out; F3: Z absent -> A alone
    assert fam["family"].tolist() == ["F1", "F3"] and fam["n_labels"].tolist() == [2, 1]
    assert list(fam.columns) == ["family", "n_labels", "map@1", "map@3", "map@15", "mr1"]
    assert fam.iloc[0]["map@15"] == pytest.approx(43 / 144) and fam.iloc[0]["mr1"] == pytest.approx(1.25)
    assert fam.iloc[1]["map@3"] == pytest.approx(5 / 18) and fam.iloc[1]["mr1"] == pytest.approx(1.0)
    fm = family_mean(fam, CUTOFFS)
    assert fm["mr1"] == pytest.approx((1.25 + 1.0) / 2)


def test_no_relevant_in_top_n_and_all_relevant():
    # 4 clips: 0,1 {X}; 2,3 {Y}. Query 0 ranks 2, 3, 1: X's only other clip comes last.
    S_ = np.array([[0, 1, 3, 2], [3, 0, 2, 1], [1, 2, 0, 3], [1, 2, 3, 0]], dtype=float)
    r = metrics_from_scores(S_, build_label_index([["X"], ["X"], ["Y"], ["Y"]]), [2])
    # X: q0 rel 0 0 (1): AP@2 = 0, R1 = 2 ; q1 ranks 0, 2, 3: rel 1 0: AP@2 = (1/1)/min(2,2) = 1/2, R1 = 0
    # Y: q2 ranks 3, 1, 0: AP@2 = 1/2, R1 = 0 ; q3 ranks 2, 1, 0: AP@2 = 1/2, R1 = 0
    assert r.label_map[2].tolist() == [0.25, 0.5] and r.label_mr1.tolist() == [1.0, 0.0]


def test_errors():
    with pytest.raises(MetricsError, match=r"1 clip\(s\) have no label: 'b'"):
        build_label_index([["A"], []], ["a", "b"])
    with pytest.raises(MetricsError, match="cutoffs must be positive"):
        metrics_from_scores(SCORES, build_label_index(LABELS), [0, 15])
    with pytest.raises(MetricsError, match="score matrix must be 5 x 5"):
        metrics_from_scores(SCORES[:4, :4], build_label_index(LABELS), [1])


# ---------------------------------------------------------------------------
# Property test: the vectorised engine equals a plain per-query implementation


def plain_metrics(keys: np.ndarray, labels: list[list[str]], cutoffs: list[int]):
    """Obviously-correct metrics: for each query, sort all other clips by
    (key descending, index ascending); AP@N and R1 by the definitions."""
    n = len(labels)
    sets = [set(ls) for ls in labels]
    n_l = {lab: sum(lab in s for s in sets) for s in sets for lab in s}
    per_label: dict[str, dict[str, list[float]]] = {lab: {"r1": [], **{c: [] for c in cutoffs}} for lab in n_l}
    micro: dict = {"r1": [], **{c: [] for c in cutoffs}}
    rankings = []
    for q in range(n):
        order = sorted((j for j in range(n) if j != q), key=lambda j: (-keys[q, j], j))
        rankings.append(order)

        def ap(rel: list[bool], cutoff: int, denom: int) -> float:
            total, hits = 0.0, 0
            for k, r in enumerate(rel[:cutoff], start=1):
                if r:
                    hits += 1
                    total += hits / k
            return total / denom

        for lab in sets[q]:
            if n_l[lab] < 2:
                continue
            rel = [lab in sets[j] for j in order]
            per_label[lab]["r1"].append(rel.index(True))
            for c in cutoffs:
                per_label[lab][c].append(ap(rel, c, min(c, n_l[lab])))
        rel = [bool(sets[q] & sets[j]) for j in order]
        if any(rel):
            micro["r1"].append(rel.index(True))
            for c in cutoffs:
                micro[c].append(ap(rel, c, c))
    return per_label, micro, rankings


def near_ties(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Float64 vectors in small groups around a few base vectors: exact copies
    (ties) and copies with 1e-9 noise (near-ties float32 cannot resolve)."""
    base = rng.standard_normal((max(1, n // 4), d)) * rng.uniform(0.5, 2, size=(max(1, n // 4), 1))
    Z = base[rng.integers(0, len(base), size=n)]
    return Z + rng.standard_normal((n, d)) * 1e-9 * rng.integers(0, 2, size=(n, 1))


def assert_matches_plain(results, Z, labels, cutoffs) -> None:
    """Every search's rankings and metrics equal the plain implementation
    run on brute-force float64 keys."""
    for search, res in results.items():
        per_label, micro, rankings = plain_metrics(brute_force_keys(Z, search), labels, cutoffs)
        kk = res.indices.shape[1]
        assert kk == min(max(cutoffs), len(labels) - 1)
        assert res.indices.tolist() == [r[:kk] for r in rankings], search
        df = res.metrics.per_label().set_index("label")
        for lab, vals in per_label.items():
            if not vals["r1"]:
                assert df.loc[lab, "n_clips"] == 1 and math.isnan(df.loc[lab, "mr1"])
                continue
            assert df.loc[lab, "mr1"] == pytest.approx(np.mean(vals["r1"]), rel=1e-12), (search, lab)
            for c in cutoffs:
                assert df.loc[lab, f"map@{c}"] == pytest.approx(np.mean(vals[c]), rel=1e-12, abs=1e-15)
        mic = res.metrics.micro()
        assert res.metrics.n_micro_queries == len(micro["r1"])
        if micro["r1"]:
            assert mic["mr1"] == pytest.approx(np.mean(micro["r1"]), rel=1e-12)
            for c in cutoffs:
                assert mic[f"map@{c}"] == pytest.approx(np.mean(micro[c]), rel=1e-12, abs=1e-15)
        else:
            assert math.isnan(mic["mr1"])


@st.composite
def collections(draw):
    n = draw(st.integers(2, 24))
    d = draw(st.integers(1, 5))
    n_labels = draw(st.integers(1, 6))
    labels = [
        sorted(set(draw(st.lists(st.sampled_from("ABCDEF"[:n_labels]), min_size=1, max_size=3)))) for _ in range(n)
    ]
    kind = draw(st.sampled_from(["int", "float", "near"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "int":  # small integers: exact arithmetic and many ties
        Z = rng.integers(-2, 3, size=(n, d)).astype(np.float64)
    elif kind == "float":
        Z = rng.standard_normal((n, d))
    else:  # ties and near-ties closer than the float32 error
        Z = near_ties(n, d, rng)
    Z[np.all(Z == 0, axis=1), 0] = 1  # no zero vectors (cosine)
    cutoffs = sorted(set(draw(st.lists(st.integers(1, n + 3), min_size=1, max_size=3))))
    block = draw(st.integers(1, n))
    return Z, labels, cutoffs, block


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(collections())
def test_vectorised_equals_plain(case):
    Z, labels, cutoffs, block = case
    ix = build_label_index(labels)
    assert_matches_plain(search_and_score(Z, ix, S.SEARCHES, cutoffs, block_size=block), Z, labels, cutoffs)


@pytest.mark.parametrize("cutoffs", [[1, 3], [5, 40]])
def test_metrics_equal_float64_brute_force_for_any_block_size(cutoffs):
    # 160 clips in groups of copies and near-copies (1e-9 apart): the float32
    # keys are full of ties the float64 keys resolve; small cutoffs send most
    # R1 values beyond the top-K. Every block size gives the float64 results.
    rng = np.random.default_rng(12)
    Z = near_ties(160, 4, rng)
    labels = [sorted({"ABCDEFG"[i % 7], "ABCDEFG"[int(rng.integers(0, 7))]}) for i in range(160)]
    ix = build_label_index(labels)
    ref = None
    for bs in (1, 9, 64, 160):
        results = search_and_score(Z, ix, S.SEARCHES, cutoffs, block_size=bs)
        assert sum(r.n_rescored for r in results.values()) > 0
        assert_matches_plain(results, Z, labels, cutoffs)
        if ref is None:
            ref = results
        for s in S.SEARCHES:
            np.testing.assert_array_equal(results[s].indices, ref[s].indices)
            np.testing.assert_array_equal(results[s].metrics.pair_r1, ref[s].metrics.pair_r1)
            for c in cutoffs:
                np.testing.assert_array_equal(results[s].metrics.pair_ap[c], ref[s].metrics.pair_ap[c])
