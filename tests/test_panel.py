"""The retrieval panel (soundsim.panel): hand-computed cases, and a cross-check of
every binary measure (and of graded nDCG with integer gains) against trec_eval
(pytrec_eval through ir-measures) on the same rankings.

The query-excluded convention made explicit for trec_eval: each class-wise query
(clip q, label L) is one trec query whose run ranks every clip but q (distinct
scores, so no tie rule of trec_eval's is involved) and whose qrels list every
other clip carrying L with relevance 1 (graded: the clip's gain), q itself absent.
"""

from __future__ import annotations

import math

import ir_measures
import numpy as np
import pytest
from ir_measures import P, R, RR, Rprec, nDCG

from soundsim import panel as PN
from soundsim.evaluate import search_and_score
from soundsim.metrics import build_label_index, make_panel, metrics_from_scores
from soundsim.relevance import family_gains


def _ranking(S: np.ndarray, q: int) -> list[int]:
    """All other clips by score descending, ties by lower index (soundsim's rule)."""
    others = [j for j in range(S.shape[0]) if j != q]
    return sorted(others, key=lambda j: (-S[q, j], j))


def _trec(S, labels, G=None, micro=False):
    """Per query id -> measure -> value from trec_eval (via ir_measures)."""
    names = sorted({lab for labs in labels for lab in labs})
    pos = {lab: i for i, lab in enumerate(names)}
    qrels, run, ids = [], [], []
    n = S.shape[0]
    for q in range(n):
        queries = [tuple(labels[q])] if micro else [(lab,) for lab in sorted(set(labels[q]))]
        for qlabs in queries:
            qid = f"{q}:{'|'.join(qlabs)}"
            rels = {}
            for j in range(n):
                if j == q:
                    continue
                if G is None:
                    g = 1 if set(qlabs) & set(labels[j]) else 0
                else:
                    g = max(G[pos[a], pos[b]] for a in qlabs for b in labels[j])
                    g = int(round(2 * g))  # family gains 0.5 / 1 -> grades 1 / 2 (nDCG is scale-free)
                if g:
                    rels[str(j)] = g
            if not rels:
                continue
            ids.append((q, qlabs, qid))
            qrels += [ir_measures.Qrel(qid, d, g) for d, g in rels.items()]
            order = _ranking(S, q)
            run += [ir_measures.ScoredDoc(qid, str(j), float(n - i)) for i, j in enumerate(order)]
    measures = [P @ 1, P @ 5, P @ 10, R @ 1, R @ 5, R @ 10, RR, Rprec, nDCG @ 10, nDCG @ 15]
    out: dict[str, dict[str, float]] = {}
    for m in ir_measures.iter_calc(measures, qrels, run):
        out.setdefault(m.query_id, {})[str(m.measure)] = m.value
    return ids, out


def _trec_run(S, labels, k):
    """trec_eval's Rprec of runs truncated at k (class-wise, one label per clip)."""
    n = S.shape[0]
    qrels, run = [], []
    for q in range(n):
        qid = f"{q}:{labels[q][0]}"
        qrels += [ir_measures.Qrel(qid, str(j), 1) for j in range(n) if j != q and labels[j] == labels[q]]
        run += [ir_measures.ScoredDoc(qid, str(j), float(n - i)) for i, j in enumerate(_ranking(S, q)[:k])]
    out: dict[str, dict[str, float]] = {}
    for m in ir_measures.iter_calc([Rprec], qrels, run):
        out.setdefault(m.query_id, {})[str(m.measure)] = m.value
    return None, out


def _collection(n=24, seed=0):
    rng = np.random.default_rng(seed)
    pool = ["a", "b", "c", "d", "e"]
    labels = []
    for i in range(n):
        k = 1 + int(rng.integers(0, 2))
        labels.append(sorted(set(rng.choice(pool, size=k, replace=True).tolist())))
    X = rng.normal(size=(n, 4))
    return labels, X @ X.T


PAIRS = {"P@1": "p@1", "P@5": "p@5", "P@10": "p@10", "R@1": "recall@1", "R@5": "recall@5",
         "R@10": "recall@10", "RR": "rr", "Rprec": "rprec", "nDCG@10": "bndcg@10"}


def test_binary_measures_equal_trec_eval_class_wise_and_micro():
    labels, S = _collection()
    ix = build_label_index(labels)
    G = np.eye(len(ix.labels))  # gains 1 for the same label only: graded = binary
    res = metrics_from_scores(S, ix, [15], gains=G)
    ids, trec = _trec(S, labels)
    pair = {(int(q), ix.labels[int(lab)]): i for i, (q, lab) in enumerate(zip(ix.pair_q, ix.pair_l, strict=True))}
    checked = 0
    for q, qlabs, qid in ids:
        i = pair[(q, qlabs[0])]
        for tm, ours in PAIRS.items():
            assert res.pair_panel[ours][i] == pytest.approx(trec[qid][tm], abs=1e-9), (qid, tm)
            checked += 1
        # with 0/1 gains the graded nDCG@15 is trec_eval's binary nDCG@15
        assert res.pair_panel["ndcg@15"][i] == pytest.approx(trec[qid]["nDCG@15"], abs=1e-9)
    assert checked > 9 * 20
    ids, trec = _trec(S, labels, micro=True)
    for q, _, qid in ids:
        for tm, ours in PAIRS.items():
            assert res.query_panel[ours][q] == pytest.approx(trec[qid][tm], abs=1e-9), (qid, tm)


def test_graded_ndcg_equals_trec_eval_with_integer_grades():
    labels, S = _collection(seed=3)
    ix = build_label_index(labels)
    fam = {"a": "x", "b": "x", "c": "y", "d": "y", "e": None}
    G = family_gains(ix.labels, fam, 0.5)
    res = metrics_from_scores(S, ix, [15], gains=G)
    pair = {(int(q), ix.labels[int(lab)]): i for i, (q, lab) in enumerate(zip(ix.pair_q, ix.pair_l, strict=True))}
    ids, trec = _trec(S, labels, G)
    n = 0
    for q, qlabs, qid in ids:
        i = pair[(q, qlabs[0])]
        if ix.counts[ix.labels.index(qlabs[0])] < 2:
            continue  # no other clip carries the label: soundsim leaves the query out (NaN)
        assert res.pair_panel["ndcg@15"][i] == pytest.approx(trec[qid]["nDCG@15"], abs=1e-9), qid
        n += 1
    assert n > 20
    ids, trec = _trec(S, labels, G, micro=True)
    for q, _, qid in ids:
        if math.isnan(res.query_panel["ndcg@15"][q]):
            continue
        assert res.query_panel["ndcg@15"][q] == pytest.approx(trec[qid]["nDCG@15"], abs=1e-9), qid


def test_graded_ndcg_hand_computed():
    # 4 clips; query 0 (label a). Others ranked 1, 2, 3 (scores 3 > 2 > 1).
    # gains for label a: clip1 (b, same family) 0.5, clip2 (a) 1, clip3 (c) 0
    labels = [["a"], ["b"], ["a"], ["c"]]
    S = np.array([[0, 3, 2, 1], [3, 0, 1, 2], [2, 1, 0, 3], [1, 2, 3, 0]], dtype=float)
    ix = build_label_index(labels)
    G = family_gains(ix.labels, {"a": "f", "b": "f", "c": None}, 0.5)
    res = metrics_from_scores(S, ix, [2], gains=G)
    i = 0  # pair (clip 0, label a)
    dcg = 0.5 / math.log2(2) + 1.0 / math.log2(3)  # 0.5 + 0.6309 = 1.1309
    idcg = 1.0 / math.log2(2) + 0.5 / math.log2(3)  # 1 + 0.3155 = 1.3155
    assert res.pair_panel["ndcg@15"][i] == pytest.approx(dcg / idcg)  # 0.8597
    assert res.pair_panel["bndcg@10"][i] == pytest.approx((1 / math.log2(3)) / 1.0)  # one relevant, at rank 2
    assert res.pair_panel["rr"][i] == pytest.approx(0.5)
    assert res.pair_panel["p@1"][i] == 0.0 and res.pair_panel["p@5"][i] == pytest.approx(1 / 5)
    assert res.pair_panel["recall@5"][i] == 1.0 and res.pair_panel["rprec"][i] == 0.0  # R = 1, top 1 is clip 1
    # label c has one clip: undefined
    j = int(np.flatnonzero((ix.pair_q == 3))[0])
    assert math.isnan(res.pair_panel["ndcg@15"][j])
    # macro = mean over labels a (2 queries) and b? b has one clip -> only label a counts
    assert res.macro()["ndcg@15"] == pytest.approx(np.nanmean(res.label_panel["ndcg@15"]))


def test_r_precision_beyond_the_stored_list_is_exact_on_float32_keys():
    # 320 clips, two labels of 160 + 160: R = 159 > K = 150, so R-precision is counted beyond the list
    rng = np.random.default_rng(5)
    n = 320
    labels = [["a"] if i < 160 else ["b"] for i in range(n)]
    centers = rng.normal(size=(2, 8))
    X = np.vstack([centers[0] + rng.normal(size=(160, 8)) * 1.5, centers[1] + rng.normal(size=(160, 8)) * 1.5])
    ix = build_label_index(labels)
    G = np.eye(2)
    exact = metrics_from_scores(X @ X.T, ix, [15, 150], gains=G, rprec_full=True)
    assert exact.pair_panel["rprec"].shape == (n,)
    fast = search_and_score(X, ix, ["mips"], [15, 150], block_size=64,
                            panel=make_panel(ix, G, [15, 150], rprec_full=True))
    fast = fast["mips"].metrics
    np.testing.assert_array_equal(fast.pair_panel["rprec"], exact.pair_panel["rprec"])
    # the brute force: top 159 of the full ranking
    S = X @ X.T
    for q in (0, 17, 200, 319):
        order = _ranking(S, q)[:159]
        want = sum(labels[j] == labels[q] for j in order) / 159
        assert exact.pair_panel["rprec"][q] == pytest.approx(want)
    assert 0.3 < np.mean(exact.pair_panel["rprec"]) < 1.0
    # the default: trec_eval's Rprec of the top-150 run (relevant clips in the top 150, over R = 159)
    run = metrics_from_scores(S, ix, [15, 150], gains=G)
    for q in (0, 17, 200, 319):
        top = _ranking(S, q)[:150]
        assert run.pair_panel["rprec"][q] == pytest.approx(sum(labels[j] == labels[q] for j in top) / 159)
    assert (run.pair_panel["rprec"] <= exact.pair_panel["rprec"] + 1e-12).all()
    _, trec = _trec_run(S, labels, 150)
    for q in range(0, n, 37):
        assert run.pair_panel["rprec"][q] == pytest.approx(trec[f"{q}:{labels[q][0]}"]["Rprec"], abs=1e-12)


def test_panel_columns_and_cutoffs():
    assert PN.columns()[:3] == ["ndcg@15", "ndcg@150", "bndcg@10"]
    assert PN.max_cutoff() == 150
    np.testing.assert_allclose(PN.discounts(3), [1.0, 1 / math.log2(3), 0.5])
