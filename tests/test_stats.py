"""Bootstrap intervals, paired tests and Holm's correction (soundsim.stats)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from soundsim import stats as St


def _labels(rng: np.random.Generator, n_labels: int = 20, lo: int = 8, hi: int = 30) -> np.ndarray:
    n = rng.integers(lo, hi, n_labels)
    return np.repeat([f"lab{i:02d}" for i in range(n_labels)], n)


def _frame(labels: np.ndarray, ap: np.ndarray, r1: np.ndarray | None = None) -> pd.DataFrame:
    return pd.DataFrame({"fname": [f"c{i:05d}" for i in range(labels.size)], "label": labels, "ap@15": ap,
                         "r1": ap * 40 if r1 is None else r1})


def _macro(labels: np.ndarray, v: np.ndarray) -> float:
    return float(pd.Series(v).groupby(labels).mean().mean())


# --------------------------------------------------------------------------- Holm


def test_holm_hand_computed():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max so far 0.06
    np.testing.assert_allclose(St.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # at alpha 0.05 the step-down rejects 0.005 (< 0.05/4) and 0.01 (< 0.05/3), then stops at 0.03 (> 0.05/2)
    assert list(St.holm([0.01, 0.04, 0.03, 0.005]) < 0.05) == [True, False, False, True]
    # capped at 1; NaN ignored (m counts the finite ones); ties keep equal values
    np.testing.assert_allclose(St.holm([0.5, np.nan, 0.6]), [1.0, np.nan, 1.0])
    np.testing.assert_allclose(St.holm([0.02, 0.02]), [0.04, 0.04])
    assert St.holm([]).size == 0 and St.holm([0.3]).tolist() == [0.3]


# --------------------------------------------------------------------------- the design


def test_counts_draw_n_l_per_label_and_are_seeded():
    lab = np.repeat(["a", "b", "c"], [2, 5, 40])
    d = St.Design(lab)
    c = d.counts(300, seed=7)
    assert c.shape == (300, 47)
    sums = np.add.reduceat(c.astype(int), d.start, axis=1)
    assert (sums == [2, 5, 40]).all()  # every label keeps its size: the macro weights do not move
    assert np.array_equal(c, St.Design(lab).counts(300, seed=7))
    assert not np.array_equal(c, St.Design(lab).counts(300, seed=8))
    # each query drawn once per resample on average
    assert abs(c.mean() - 1.0) < 0.05


def test_rescaled_bootstrap_variance_matches_the_stratified_formula():
    rng = np.random.default_rng(0)
    lab = _labels(rng, 15, 2, 12)  # small labels: where the rescaling matters
    v = rng.random(lab.size)
    d = St.Design(lab)
    est, rep = d.replicates(v[:, None], 4000, seed=1)
    s2 = pd.Series(v).groupby(lab).var(ddof=1).to_numpy()
    n = pd.Series(v).groupby(lab).size().to_numpy()
    var = (s2 / n).sum() / len(n) ** 2  # Var(macro) = (1/L^2) sum_l s_l^2 / n_l
    assert est[0] == pytest.approx(_macro(lab, v), rel=1e-12)
    assert rep[:, 0].var(ddof=1) == pytest.approx(var, rel=0.08)
    assert rep[:, 0].mean() == pytest.approx(est[0], abs=3 * np.sqrt(var / 4000) + 1e-12)


def test_design_errors():
    with pytest.raises(St.StatsError, match="single query"):
        St.Design(np.array(["a", "a", "b"]))
    with pytest.raises(St.StatsError, match="sorted"):
        St.Design(np.array(["b", "a", "b"]))
    with pytest.raises(St.StatsError, match="no queries"):
        St.Design(np.array([], dtype=str))


# --------------------------------------------------------------------------- intervals


def test_intervals_contain_the_estimate_and_repeat_with_the_seed():
    rng = np.random.default_rng(1)
    lab = _labels(rng)
    df = _frame(lab, rng.beta(2, 3, lab.size))
    ci = St.intervals({"m": df}, n_resamples=1000, confidence=0.95, seed=5)
    assert list(ci["metric"]) == ["map@15", "mr1"]
    for r in ci.itertuples(index=False):
        assert r.lo < r.estimate < r.hi
    assert ci.iloc[0]["estimate"] == pytest.approx(_macro(lab, df["ap@15"].to_numpy()), rel=1e-12)
    assert ci.iloc[0]["n_labels"] == 20 and ci.iloc[0]["n_queries"] == lab.size
    again = St.intervals({"m": df}, n_resamples=1000, confidence=0.95, seed=5)
    pd.testing.assert_frame_equal(ci, again)
    other = St.intervals({"m": df}, n_resamples=1000, confidence=0.95, seed=6)
    assert not np.array_equal(ci["lo"].to_numpy(), other["lo"].to_numpy())
    wider = St.intervals({"m": df}, n_resamples=1000, confidence=0.99, seed=5)
    assert (wider["lo"] < ci["lo"]).all() and (wider["hi"] > ci["hi"]).all()


def test_intervals_leave_out_nan_rows_and_row_order_does_not_matter():
    rng = np.random.default_rng(2)
    lab = _labels(rng, 6)
    df = _frame(lab, rng.random(lab.size))
    solo = pd.DataFrame({"fname": ["s"], "label": ["Solo"], "ap@15": [np.nan], "r1": [np.nan]})
    with_solo = pd.concat([df, solo]).sample(frac=1.0, random_state=3)  # shuffled, plus a single-clip label
    a = St.intervals({"m": df}, 200, seed=0)
    b = St.intervals({"m": with_solo}, 200, seed=0)
    pd.testing.assert_frame_equal(a, b)


def test_intervals_coverage_is_near_nominal():
    """Across 200 fresh samples from a known population, the 90 % interval
    contains the true macro value about 90 % of the time."""
    rng = np.random.default_rng(3)
    n_labels = 12
    means = rng.uniform(0.2, 0.8, n_labels)
    lab = np.repeat([f"l{i:02d}" for i in range(n_labels)], 15)
    code = np.repeat(np.arange(n_labels), 15)
    truth = means.mean()
    hits = 0
    sims = 200
    for s in range(sims):
        v = means[code] + 0.2 * rng.standard_normal(code.size)
        ci = St.intervals({"m": _frame(lab, v)}, 500, confidence=0.9, seed=s).iloc[0]
        hits += ci.lo <= truth <= ci.hi
    lo, hi = binom.ppf(0.001, sims, 0.9), binom.ppf(0.999, sims, 0.9)
    assert lo <= hits <= hi, hits


# --------------------------------------------------------------------------- paired tests


def test_known_difference_is_rejected_same_system_is_not():
    rng = np.random.default_rng(4)
    lab = _labels(rng)
    a = rng.beta(2, 3, lab.size)
    b = np.clip(a + 0.04 + 0.08 * rng.standard_normal(lab.size), 0, 1)  # b is better by about 0.04
    pw = St.pairwise({"a": _frame(lab, a), "b": _frame(lab, b), "a_again": _frame(lab, a)}, 1000, seed=0)
    m = pw[pw["metric"] == "map@15"].set_index(["a", "b"])
    ab = m.loc[("a", "b")]
    assert ab["diff"] == pytest.approx(_macro(lab, a) - _macro(lab, b), rel=1e-12)
    assert ab["diff_lo"] < ab["diff"] < ab["diff_hi"] < 0
    assert ab["p_holm"] < 0.001 and ab["significant"] and ab["better"] == "b"
    same = m.loc[("a", "a_again")]
    assert same["diff"] == 0 and same["p"] == 1 and same["p_holm"] == 1 and not same["significant"]
    assert same["better"] == "" and same["diff_lo"] == 0 == same["diff_hi"]
    # MR1 (a's R1 = 40 * AP): lower is better, so a is better there
    r = pw[(pw["metric"] == "mr1") & (pw["a"] == "a") & (pw["b"] == "b")].iloc[0]
    assert r["diff"] < 0 and r["better"] == "a"
    # Holm over the 3 pairs of each metric: adjusted >= raw
    assert (pw["p_holm"] >= pw["p"] - 1e-15).all()
    assert pw.groupby("metric").size().tolist() == [3, 3]


def test_false_positive_rate_is_near_nominal():
    """200 null simulations (two systems whose per-query values differ by
    zero-mean noise): the 5 % test rejects about 5 % of the time."""
    rng = np.random.default_rng(5)
    lab = _labels(rng, 20, 8, 25)
    sims, rejected = 200, 0
    for s in range(sims):
        base = rng.beta(2, 3, lab.size)
        a = base + 0.1 * rng.standard_normal(lab.size)
        b = base + 0.1 * rng.standard_normal(lab.size)
        pw = St.pairwise({"a": _frame(lab, a), "b": _frame(lab, b)}, 500, confidence=0.95, seed=s)
        rejected += bool(pw.loc[pw["metric"] == "map@15", "significant"].iloc[0])
    lo, hi = binom.ppf(0.001, sims, 0.05), binom.ppf(0.999, sims, 0.05)  # 2 .. 21 of 200
    assert lo <= rejected <= hi, rejected


def test_systems_with_different_query_sets_are_compared_on_the_shared_queries():
    rng = np.random.default_rng(6)
    lab = _labels(rng, 8)
    a = _frame(lab, rng.random(lab.size))
    b = _frame(lab, rng.random(lab.size)).iloc[5:]  # b could not embed 5 clips
    pw = St.pairwise({"a": a, "b": b}, 200)
    r = pw.iloc[0]
    assert not r["same_queries"] and r["n_queries"] == lab.size - 5
    shared = a.iloc[5:]
    assert r["a_value"] == pytest.approx(_macro(shared["label"].to_numpy(), shared["ap@15"].to_numpy()))


def test_pairwise_identical_seeds_identical_results_and_option_errors():
    rng = np.random.default_rng(7)
    lab = _labels(rng, 10)
    systems = {k: _frame(lab, rng.random(lab.size)) for k in "xyz"}
    pd.testing.assert_frame_equal(St.pairwise(systems, 300, seed=9), St.pairwise(systems, 300, seed=9))
    assert St.pairwise({"x": systems["x"]}, 100).empty
    with pytest.raises(St.StatsError, match="confidence"):
        St.intervals(systems, 100, confidence=95)
    with pytest.raises(St.StatsError, match="n_resamples"):
        St.pairwise(systems, 0)
    with pytest.raises(St.StatsError, match="lacks column"):
        St.intervals({"x": systems["x"].drop(columns="label")})


def test_options_from_config():
    assert St.options({"evaluation": {"n_resamples": 2000, "confidence": 0.9, "seed": 3}}) == {
        "n_resamples": 2000, "confidence": 0.9, "seed": 3}
    assert St.options(None) == {"n_resamples": 1000, "confidence": 0.95, "seed": 0}
    assert St.confidence_text(0.95) == "95 %" and St.confidence_text(0.975) == "97.5 %"


def test_row_order_of_the_files_does_not_change_the_tests():
    rng = np.random.default_rng(8)
    lab = _labels(rng, 10)
    a, b = _frame(lab, rng.random(lab.size)), _frame(lab, rng.random(lab.size))
    ref = St.pairwise({"a": a, "b": b}, 200, seed=1)
    shuffled = St.pairwise({"a": a, "b": b.sample(frac=1.0, random_state=0)}, 200, seed=1)
    pd.testing.assert_frame_equal(ref, shuffled)


def test_intervals_stay_within_the_metrics_range_on_a_small_collection():
    """8 labels of 2 queries; every first relevant clip at rank 0 but one at rank 1,
    and AP near 1: MR1 = 0.0625. The rescaled replicates (factor sqrt(2) for n_l = 2)
    reach MR1 0.0625 - 0.088 < 0 and MAP above 1, which no resample can score."""
    labels = np.repeat([f"lab{i}" for i in range(8)], 2)
    r1 = np.zeros(16)
    r1[1] = 1.0
    ap = np.ones(16)
    ap[0] = 0.5
    df = _frame(labels, ap, r1)
    design = St.Design(labels)
    _, rep = design.replicates(df[["ap@15", "r1"]].to_numpy(), 1000, 0)
    assert rep[:, 1].min() < 0 and rep[:, 0].max() > 1  # what the bounds are needed for
    out = St.intervals({"sys": df}, n_resamples=1000, seed=0).set_index("metric")
    assert out.loc["mr1", "estimate"] == pytest.approx(0.0625)
    assert out.loc["mr1", "lo"] == 0.0 and out.loc["mr1", "hi"] > 0.0625
    assert out.loc["map@15", "hi"] == 1.0 and 0 <= out.loc["map@15", "lo"] < out.loc["map@15", "estimate"]
    pw = St.pairwise({"a": df, "b": _frame(labels, ap[::-1].copy(), r1[::-1].copy())}, n_resamples=200, seed=0)
    assert (pw["diff_lo"] >= -1).all() and (pw.loc[pw.metric == "map@15", "diff_hi"] <= 1).all()


# --------------------------------------------------------------------------- ranks and tied groups


def _parquet(tmp_path, name: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` written as a real per_query.parquet and read back as the tables read it."""
    path = tmp_path / name / "per_query.parquet"
    path.parent.mkdir(parents=True)
    df.to_parquet(path, index=False)
    return St.read_per_query(path)


def test_rank_intervals_of_clearly_separated_systems(tmp_path):
    rng = np.random.default_rng(20)
    lab = _labels(rng, 12)
    base = 0.05 * rng.random(lab.size)
    systems = {name: _parquet(tmp_path, name, _frame(lab, base + level))
               for name, level in (("mid", 0.45), ("best", 0.8), ("worst", 0.1))}
    r = St.rank_intervals(systems, "map@15", n_resamples=500, seed=0)
    assert list(r.columns) == St.RANK_COLUMNS and list(r["system"]) == ["mid", "best", "worst"]  # input order
    assert r["rank"].tolist() == [2, 1, 3]
    assert r["rank_lo"].tolist() == [2, 1, 3] and r["rank_hi"].tolist() == [2, 1, 3]  # [1, 1], [2, 2], [3, 3]
    assert r["p_first"].tolist() == [0.0, 1.0, 0.0]
    assert r["rank"].dtype.kind == "i" and (r["n_systems"] == 3).all() and r["same_queries"].all()
    assert r.loc[1, "estimate"] == pytest.approx(_macro(lab, base + 0.8), rel=1e-12)
    # MR1 is better when lower: R1 = 40 * AP here, so the order turns round
    m = St.rank_intervals(systems, "mr1", n_resamples=200, seed=0)
    assert m["rank"].tolist() == [2, 3, 1] and m["p_first"].tolist() == [0.0, 0.0, 1.0]


def test_rank_intervals_come_from_the_intervals_resamples():
    """Ranks are taken in the replicates the intervals are the percentiles of
    (same design, same seed): P(first) of a over b is the share of those
    replicates where a's value is higher."""
    rng = np.random.default_rng(21)
    lab = _labels(rng, 15)
    a = rng.beta(2, 3, lab.size)
    b = np.clip(a + 0.01 + 0.1 * rng.standard_normal(lab.size), 0, 1)  # close: the order is uncertain
    systems = {"a": _frame(lab, a), "b": _frame(lab, b)}
    r = St.rank_intervals(systems, n_resamples=400, confidence=0.9, seed=3).set_index("system")
    est, rep = St.Design(lab).replicates(np.column_stack([a, b]), 400, 3)
    ci = St.intervals(systems, 400, confidence=0.9, seed=3)
    ci = ci[ci.metric == "map@15"].set_index("system")
    np.testing.assert_allclose(ci["lo"], np.quantile(rep, 0.05, axis=0), rtol=1e-12)  # the same replicates
    assert r.loc["a", "p_first"] == pytest.approx((rep[:, 0] > rep[:, 1]).mean())
    assert r.loc["b", "p_first"] == pytest.approx((rep[:, 1] > rep[:, 0]).mean())
    assert 0 < r.loc["a", "p_first"] < 1 and r.loc["a", "p_first"] + r.loc["b", "p_first"] == pytest.approx(1.0)
    assert (r["rank_lo"] == 1).all() and (r["rank_hi"] == 2).all()  # overlapping: neither rank is settled
    assert r.loc["a" if est[0] > est[1] else "b", "rank"] == 1
    # deterministic with the seed; another seed, other resamples
    pd.testing.assert_frame_equal(St.rank_intervals(systems, n_resamples=400, confidence=0.9, seed=3),
                                  St.rank_intervals(systems, n_resamples=400, confidence=0.9, seed=3))
    other = St.rank_intervals(systems, n_resamples=400, confidence=0.9, seed=4)
    assert other.loc[0, "p_first"] != r.loc["a", "p_first"]


def test_identical_systems_share_ranks_and_a_group(tmp_path):
    rng = np.random.default_rng(22)
    lab = _labels(rng, 10)
    v = rng.beta(2, 3, lab.size)
    systems = {"x": _parquet(tmp_path, "x", _frame(lab, v)), "x_copy": _parquet(tmp_path, "x_copy", _frame(lab, v)),
               "poor": _parquet(tmp_path, "poor", _frame(lab, 0.3 * v))}
    r = St.rank_intervals(systems, n_resamples=300, seed=1).set_index("system")
    # tied: both first (competition ranking), the same interval, first in every resample
    assert r.loc["x", "rank"] == r.loc["x_copy", "rank"] == 1
    assert (r.loc["x", "rank_lo"], r.loc["x", "rank_hi"]) == (r.loc["x_copy", "rank_lo"], r.loc["x_copy", "rank_hi"])
    assert r.loc["x", "p_first"] == r.loc["x_copy", "p_first"] == 1.0
    assert (r.loc["poor", "rank"], r.loc["poor", "rank_lo"], r.loc["poor", "rank_hi"]) == (3, 3, 3)
    groups = St.tied_groups(St.pairwise(systems, 300, seed=1), ["x", "x_copy", "poor"])
    assert groups == {"x": "a", "x_copy": "a", "poor": "b"}


def test_rank_intervals_on_different_query_sets_use_the_shared_queries():
    rng = np.random.default_rng(23)
    lab = _labels(rng, 8)
    a = _frame(lab, rng.random(lab.size))
    b = _frame(lab, rng.random(lab.size)).iloc[5:]  # b could not embed 5 clips
    r = St.rank_intervals({"a": a, "b": b}, n_resamples=100)
    assert not r["same_queries"].any() and (r["n_queries"] == lab.size - 5).all()
    shared = a.iloc[5:]
    assert r.loc[0, "estimate"] == pytest.approx(_macro(shared["label"].to_numpy(), shared["ap@15"].to_numpy()))
    with pytest.raises(St.StatsError, match="not a metric"):
        St.rank_intervals({"a": a}, "map@nope")
    with pytest.raises(St.StatsError, match="no 'ap@150'"):
        St.rank_intervals({"a": a}, "map@150")
    assert St.rank_intervals({}).empty
    solo = St.rank_intervals({"a": a}, n_resamples=50)
    assert solo[["rank", "rank_lo", "rank_hi", "p_first"]].iloc[0].tolist() == [1, 1, 1, 1.0]


def test_compact_letters_hand_made_patterns():
    # A > C significant, A ~ B, B ~ C
    assert St.compact_letters(["A", "B", "C"], [("A", "C")]) == {"A": "a", "B": "ab", "C": "b"}
    assert St.compact_letters(["A", "B", "C"], []) == {"A": "a", "B": "a", "C": "a"}
    assert St.compact_letters(["A", "B", "C"], [("A", "B"), ("C", "A"), ("B", "C")]) == {"A": "a", "B": "b", "C": "c"}
    # ties {A, B}, {B, C, D}, {C, D, E}: A-C, A-D, A-E, B-E significant
    assert St.compact_letters("ABCDE", [("A", "C"), ("A", "D"), ("A", "E"), ("B", "E")]) == {
        "A": "a", "B": "ab", "C": "bc", "D": "bc", "E": "c"}
    # the letters follow the order given (best first gets "a"); unknown names are ignored
    assert St.compact_letters(["C", "B", "A"], [("A", "C"), ("A", "zz")]) == {"C": "a", "B": "ab", "A": "b"}
    assert St.compact_letters([], [("A", "B")]) == {}


def test_compact_letters_separate_exactly_the_significant_pairs():
    """On random significance patterns: a significant pair shares no letter,
    every other pair shares at least one."""
    rng = np.random.default_rng(24)
    for _ in range(60):
        n = int(rng.integers(2, 9))
        names = [f"m{i}" for i in range(n)]
        pairs = [(names[i], names[j]) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.5]
        letters = St.compact_letters(names, pairs)
        sig = set(pairs)
        for i in range(n):
            for j in range(i + 1, n):
                shared = set(letters[names[i]]) & set(letters[names[j]])
                assert bool(shared) == ((names[i], names[j]) not in sig), (pairs, letters)


def test_tied_groups_read_the_holm_corrected_tests():
    pw = pd.DataFrame({"a": ["A", "A", "B", "A"], "b": ["B", "C", "C", "C"],
                       "metric": ["map@15", "map@15", "map@15", "mr1"],
                       "significant": [False, True, False, False]})
    assert St.tied_groups(pw, ["A", "B", "C"]) == {"A": "a", "B": "ab", "C": "b"}
    assert St.tied_groups(pw, ["A", "B", "C"], metric="mr1") == {"A": "a", "B": "a", "C": "a"}
    # as read back from pairwise.csv: the flag may be text
    assert St.tied_groups(pw.assign(significant=pw["significant"].astype(str)), ["A", "B", "C"])["B"] == "ab"
    with pytest.raises(St.StatsError, match="significant"):
        St.tied_groups(pw.drop(columns="significant"), ["A"])
