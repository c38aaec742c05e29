"""Which metric agrees with listeners (soundsim.listen.agreement): a ratings database written
with soundsim.listen.db.add_judgement and real per_query.parquet files of three systems, with
the retrieval panel's columns, built so that the correlations can be computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from soundsim import layout as L
from soundsim import measures
from soundsim.listen import agreement as A
from soundsim.listen import db
from soundsim.listen.summary import ListeningError

SETTING = "agg-none_pca-none_search-mcss"
SYSTEMS = [f"{m}/v1/{SETTING}" for m in ("alpha", "beta", "gamma")]
# (fname, label): 3 labels x 3 rows; clip "m0" carries two labels (its two rows differ)
ROWS = [("a0", "A"), ("a1", "A"), ("m0", "A"), ("b0", "B"), ("b1", "B"), ("m0", "B"), ("c0", "C"), ("c1", "C"),
        ("c2", "C")]
# ap@15 per row (quarter steps: rating = 1 + 4 * ap@15 exactly); alpha > beta > gamma in every label mean
AP15 = {
    SYSTEMS[0]: [1.0, 1.0, 0.75, 1.0, 0.75, 1.0, 0.75, 1.0, 1.0],
    SYSTEMS[1]: [0.5, 0.75, 0.5, 0.25, 0.5, 0.75, 0.5, 0.5, 0.25],
    SYSTEMS[2]: [0.0, 0.25, 0.0, 0.25, 0.0, 0.0, 0.25, 0.0, 0.5],
}
PANEL = ["ndcg@15", "ndcg@150", "bndcg@10", "rr", "recall@1", "recall@5", "recall@10", "recall@15", "recall@150",
         "p@1", "p@5", "p@10", "p@15", "p@150", "rprec"]


def per_query_frame(sid: str, seed: int) -> pd.DataFrame:
    """ap@15 as above; ndcg@15 = ap@15 (agrees), p@1 = 1 - ap@15 (disagrees), r1 = 8 (1 - ap@15)
    (lower is better: agrees once negated), rr = 1 / (r1 + 1) (agrees); the rest random."""
    rng = np.random.default_rng(seed)
    v = np.asarray(AP15[sid])
    df = pd.DataFrame({"fname": pd.Series([f for f, _ in ROWS], dtype="string"),
                       "label": pd.Series([lab for _, lab in ROWS], dtype="string")})
    df["ap@15"] = v
    df["ap@150"] = rng.uniform(0, 1, v.size)
    df["r1"] = 8.0 * (1.0 - v)
    for c in PANEL:
        df[c] = rng.uniform(0, 1, v.size)
    df["ndcg@15"] = v
    df["p@1"] = 1.0 - v
    df["rr"] = 1.0 / (df["r1"] + 1.0)
    return df


def write_per_query(metrics: Path) -> list[Path]:
    paths = []
    for i, sid in enumerate(SYSTEMS):
        p = L.setting_files(metrics, *L.parse_system_id(sid)).per_query
        p.parent.mkdir(parents=True, exist_ok=True)
        per_query_frame(sid, i).to_parquet(p, index=False)
        paths.append(p)
    return paths


def lists_for(row: int, ratings: list[int]) -> list[dict]:
    out = []
    for sid, r in zip(SYSTEMS, ratings, strict=True):
        model, variation, setting = L.parse_system_id(sid)
        out.append({"system": sid, "model": model, "variation": variation, "setting": setting, "aggregation": "none",
                    "pca": "none", "search": "mcss", "rating": int(r), "ap": AP15[sid][row], "results": []})
    return out


def fill(path: Path) -> None:
    """One judgement per (clip, class) row, rating every system 1 + 4 * its ap@15 of that row."""
    for i, (fname, label) in enumerate(ROWS):
        ratings = [1 + round(4 * AP15[sid][i]) for sid in SYSTEMS]
        db.add_judgement(path, listener=f"l{i % 2}", collection="tiny", query=fname, query_class=label, seed=i,
                         blind=True, lists=lists_for(i, ratings))


@pytest.fixture
def tree(tmp_path) -> tuple[Path, list[Path]]:
    ratings = tmp_path / "results" / "tiny" / "listening" / "ratings.sqlite"
    fill(ratings)
    return ratings, write_per_query(tmp_path / "results" / "tiny" / "metrics")


def test_macro_values_are_the_mean_of_label_means(tree):
    _, paths = tree
    pq = A.read_per_query_files(paths)
    assert sorted(pq) == SYSTEMS
    cols = A.metric_columns(pq)
    assert cols == measures.query_columns(["ap@15", "ap@150", "r1", *PANEL])
    sv = A.system_values(pq, cols)
    for sid, df in pq.items():
        for c in ("ap@15", "rprec", "r1"):
            assert sv.loc[sid, c] == pytest.approx(df.groupby("label")[c].mean().mean())


def test_query_value_is_the_rated_class_row(tree):
    ratings_db, paths = tree
    ratings = db.read_ratings(ratings_db)
    qv = A.query_values(ratings, A.read_per_query_files(paths), ["ap@15"])
    want = [AP15[s][ROWS.index((q, c))] for s, q, c in zip(ratings["system"], ratings["query"],
                                                              ratings["query_class"], strict=True)]
    np.testing.assert_allclose(qv["ap@15"], want)
    # m0 under alpha: 0.75 for class A, 1.0 for class B (not their mean)
    m0 = ratings.index[(ratings["query"] == "m0") & (ratings["system"] == SYSTEMS[0])]
    assert sorted(qv.loc[m0, "ap@15"]) == [0.75, 1.0]
    # a class without a row for the clip: the mean over the clip's rows; an unknown clip: NaN
    odd = ratings.loc[m0[:1]].assign(query_class="Z")
    odd = pd.concat([odd, odd.assign(query="nope")], ignore_index=True)
    v = A.query_values(odd, A.read_per_query_files(paths), ["ap@15"])["ap@15"].to_numpy()
    assert v[0] == pytest.approx(0.875) and math.isnan(v[1])


def test_agreement_per_system_and_query(tree):
    ratings_db, paths = tree
    ratings = db.read_ratings(ratings_db)
    pq = A.read_per_query_files(paths)
    t = A.agreement(ratings, pq, n_resamples=200, seed=3)
    assert list(t.columns) == A.COLUMNS
    cols = A.metric_columns(pq)
    assert len(t) == 2 * len(cols) == 2 * 18
    assert list(t["metric"].drop_duplicates()) == [measures.average_of(c) for c in cols]
    assert set(zip(t["metric"], t["level"], strict=True)) == {(measures.average_of(c), lv) for c in cols
                                                              for lv in A.LEVELS}
    ti = t.set_index(["metric", "level"])
    assert (ti.xs("system", level="level")["n"] == 3).all()
    assert len(ratings) == 27 and (ti.xs("query", level="level")["n"] == 27).all()
    # ratings are 1 + 4 * ap@15: perfect agreement at both levels, in every resample
    for m in ("map@15", "ndcg@15", "mrr", "mr1"):
        for lv in A.LEVELS:
            r = ti.loc[(m, lv)]
            assert r["rho"] == pytest.approx(1.0) and r["rho_lo"] == pytest.approx(1.0)
            assert r["rho_hi"] == pytest.approx(1.0) and r["n_valid"] == 200
    # mr1 (lower is better) agrees once negated; p@1 = 1 - ap@15 disagrees
    assert ti.loc[("mr1", "system"), "negated"] and not ti.loc[("map@15", "system"), "negated"]
    for lv in A.LEVELS:
        assert ti.loc[("p@1", lv), "rho"] == pytest.approx(-1.0)
        assert ti.loc[("p@1", lv), "rho_hi"] == pytest.approx(-1.0)
    assert ti.loc[("map@15", "query"), "p"] < 1e-6
    # every interval within [-1, 1] and around its estimate where defined
    ok = t.dropna(subset=["rho_lo"])
    assert len(ok) == len(t)
    assert ((ok["rho_lo"] >= -1 - 1e-12) & (ok["rho_hi"] <= 1 + 1e-12) & (ok["rho_lo"] <= ok["rho_hi"])).all()
    # a random metric: the estimates are scipy's Spearman of the hand-computed values
    mean_rating = ratings.groupby("system")["rating"].mean()
    macro = {s: pq[s].groupby("label")["rprec"].mean().mean() for s in SYSTEMS}
    want = stats.spearmanr(mean_rating.loc[SYSTEMS], [macro[s] for s in SYSTEMS]).statistic
    assert ti.loc[("rprec", "system"), "rho"] == pytest.approx(want)
    qv = A.query_values(ratings, pq, ["rprec"])["rprec"]
    res = stats.spearmanr(ratings["rating"], qv)
    assert ti.loc[("rprec", "query"), "rho"] == pytest.approx(res.statistic)
    assert ti.loc[("rprec", "query"), "p"] == pytest.approx(res.pvalue)
    r = ti.loc[("rprec", "query")]
    assert r["rho_lo"] < r["rho"] < r["rho_hi"]
    # seeded: the same table again, another seed moves the random metric's interval
    pd.testing.assert_frame_equal(t, A.agreement(ratings, pq, n_resamples=200, seed=3))
    other = A.agreement(ratings, pq, n_resamples=200, seed=4).set_index(["metric", "level"])
    assert other.loc[("rprec", "query"), "rho_lo"] != r["rho_lo"]


def test_judgements_are_resampled_whole(tmp_path):
    """Two judgements: every resample draws judgement 1 twice, 2 twice, or one of each; at the
    system level the replicates are only ever the values these give."""
    path = tmp_path / "r.sqlite"
    db.add_judgement(path, listener="x", collection="tiny", query="a0", query_class="A", seed=0, blind=False,
                     lists=lists_for(0, [5, 3, 1]))  # agrees with map@15
    db.add_judgement(path, listener="x", collection="tiny", query="b0", query_class="B", seed=0, blind=False,
                     lists=lists_for(3, [1, 3, 5]))  # disagrees
    pq = A.read_per_query_files(write_per_query(tmp_path / "metrics"))
    t = A.agreement(db.read_ratings(path), pq, n_resamples=300, seed=0).set_index(["metric", "level"])
    r = t.loc[("map@15", "system")]
    # both once: every mean rating 3 -> undefined; one judgement twice: rho +1 or -1
    assert math.isnan(r["rho"]) and r["n"] == 3
    assert r["rho_lo"] == pytest.approx(-1.0) and r["rho_hi"] == pytest.approx(1.0)
    assert 100 < r["n_valid"] < 200  # about half the resamples draw one judgement twice


def test_write_agreement_table_and_figure(tree, tmp_path):
    ratings_db, paths = tree
    out = A.write_agreement(ratings_db, paths, tmp_path / "t" / "listening_metrics.csv",
                            tmp_path / "f" / "listening_metrics", collection="tiny", n_resamples=50)
    t = pd.read_csv(out["table"])
    assert list(t.columns) == A.COLUMNS and len(t) == 36
    assert t.groupby(["metric", "level"]).size().eq(1).all()
    assert out["png"].stat().st_size > 10_000 and out["pdf"].stat().st_size > 1_000
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out["pdf"].read_bytes()[:4] == b"%PDF"
    # only the paper's columns (the files before the panel): four metrics, same machinery
    old = []
    for p in paths:
        q = tmp_path / "old" / p.relative_to(tmp_path)
        q.parent.mkdir(parents=True)
        pd.read_parquet(p)[["fname", "label", "ap@15", "ap@150", "r1"]].to_parquet(q, index=False)
        old.append(q)
    t = A.agreement(db.read_ratings(ratings_db), A.read_per_query_files(old), n_resamples=20)
    assert list(t["metric"].drop_duplicates()) == ["map@15", "map@150", "mr1"]
    with pytest.raises(ListeningError, match="no ratings database"):
        A.write_agreement(tmp_path / "none.sqlite", paths, tmp_path / "x.csv", tmp_path / "x")
