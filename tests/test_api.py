"""The Python API (soundsim.evaluate_embeddings, soundsim.compare): hand-checked
values, equality with a real `soundsim evaluate` run on the same vectors in an
HDF5 file, list-of-frames input, labels from a CSV, errors, and the README's
example run as it stands."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import soundsim
from soundsim import api, measures
from soundsim import panel as PN
from soundsim.errors import InputError
from soundsim.store import read_rankings, write_embeddings

from conftest import ROOT

README = ROOT / "README.md"
EXAMPLE_START, EXAMPLE_END = "<!-- api-example:start -->", "<!-- api-example:end -->"


def _env() -> dict[str, str]:
    """The environment of a subprocess that imports this checkout's soundsim."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# --------------------------------------------------------------------------- hand-checked


# Four unit vectors on a circle: a1 0 deg, b1 30, a2 50, b2 120. Every search ranks by angle.
# AP@N = (1/D) sum of precision@k at the relevant positions, D = min(N, n_L) with n_L = 2 (the
# query included, as the paper's code: soundsim.metrics), so one relevant clip at position k gives 1/(2k):
#   a1: b1, a2, b2 -> first relevant at position 2: AP 1/4, R1 1
#   a2: b1 (20), a1 (50), b2 (70) -> AP 1/4, R1 1
#   b1: a2 (20), a1 (30), b2 (90) -> AP 1/6, R1 2
#   b2: a2 (70), b1 (90), a1 (120) -> AP 1/4, R1 1
# label a: MAP 1/4, MR1 1; label b: MAP 5/24, MR1 3/2; macro MAP 11/48, MR1 5/4.
CIRCLE = np.array([_unit(0), _unit(30), _unit(50), _unit(120)])
CIRCLE_FNAMES = ["a1", "b1", "a2", "b2"]
CIRCLE_LABELS = [["a"], ["b"], ["a"], ["b"]]


@pytest.mark.parametrize("search", ["mips", "mcss", "nns"])
def test_hand_checked_values(search):
    res = soundsim.evaluate_embeddings(CIRCLE, CIRCLE_FNAMES, CIRCLE_LABELS, pca="none", search=search)
    paper = {k: res.summary[k] for k in ("map@15", "map@150", "mr1")}
    assert paper == pytest.approx({"map@15": 11 / 48, "map@150": 11 / 48, "mr1": 5 / 4}, abs=1e-12)
    # the panel from the same rankings: RR = 1/(R1+1): label a 1/2, 1/2; label b 1/3, 1/2 -> MRR (1/2 + 5/12)/2
    assert res.summary["mrr"] == pytest.approx(11 / 24, abs=1e-12)
    # R = 1 other relevant clip, never first: R-precision 0; recall@5 1 (every list holds it)
    assert res.summary["rprec"] == 0.0 and res.summary["recall@5"] == 1.0
    per_label = res.per_label.set_index("label")
    assert per_label.loc["a", "map@15"] == pytest.approx(1 / 4) and per_label.loc["b", "map@15"] == pytest.approx(5 / 24)
    assert per_label.loc["a", "mr1"] == 1 and per_label.loc["b", "mr1"] == 1.5
    assert list(per_label["n_clips"]) == [2, 2]
    q = res.per_query.set_index("fname")
    assert q["ap@15"].to_dict() == pytest.approx({"a1": 1 / 4, "b1": 1 / 6, "a2": 1 / 4, "b2": 1 / 4})
    assert q["r1"].to_dict() == {"a1": 1, "b1": 2, "a2": 1, "b2": 1}
    # rankings: row q lists the other clips, nearest first
    assert [[res.fnames[j] for j in row] for row in res.indices] == [
        ["b1", "a2", "b2"], ["a2", "a1", "b2"], ["b1", "a1", "b2"], ["a2", "b1", "a1"]]
    assert res.setting == f"agg-mean_pca-none_search-{search}"
    assert res.details["macro"] == res.summary and res.details["counts"]["n_clips"] == 4


def test_multi_label_clip_is_a_query_per_label():
    # c is labelled a and b: a query of a and of b; label b = {c, d}
    X = np.array([_unit(0), _unit(10), _unit(20), _unit(100)])
    res = soundsim.evaluate_embeddings(X, ["x", "y", "c", "d"], [["a"], ["a"], ["a", "b"], ["b"]], pca="none")
    assert len(res.per_query) == 5
    pq = res.per_query.set_index(["fname", "label"])
    # query c, label b (n_L 2): ranking y (10), x (20), d (80) -> d at position 3: AP (1/2)(1/3), R1 2
    assert pq.loc[("c", "b"), "ap@15"] == pytest.approx(1 / 6) and pq.loc[("c", "b"), "r1"] == 2
    # query d, label b: ranking c (80), y, x -> AP (1/2)(1/1), R1 0
    assert pq.loc[("d", "b"), "ap@15"] == pytest.approx(1 / 2) and pq.loc[("d", "b"), "r1"] == 0
    assert res.per_label.set_index("label").loc["b", "map@15"] == pytest.approx((1 / 6 + 1 / 2) / 2)


# --------------------------------------------------------------------------- same numbers as the CLI


def _frames_data(n: int = 36, d: int = 12, seed: int = 3) -> tuple[list[np.ndarray], list[str], list[list[str]]]:
    """n clips with 1-5 float32 frames each, 4 labels (clusters), some clips with two labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, d))
    fnames = [f"clip{i:02d}" for i in range(n)]
    labels = [[f"L{i % 4}"] + ([f"L{(i + 1) % 4}"] if i % 5 == 0 else []) for i in range(n)]
    frames = [(centres[i % 4] + rng.normal(scale=1.5, size=(int(rng.integers(1, 6)), d))).astype(np.float32)
              for i in range(n)]
    return frames, fnames, labels


def _write_inputs(tmp_path: Path, frames, fnames, labels) -> tuple[Path, Path, Path]:
    h5 = write_embeddings(tmp_path / "emb.h5", fnames, frames, {"model": "mine", "variation": "v1"})
    gt = tmp_path / "gt.csv"
    pd.DataFrame({"fname": fnames, "labels": [",".join(ls) for ls in labels]}).to_csv(gt, index=False)
    fam = tmp_path / "families.json"
    fam.write_text(json.dumps({"even": ["L0", "L2"], "odd": ["L1", "L3"]}))
    return h5, gt, fam


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A real `soundsim evaluate` run (subprocess) over 3 aggregations x 2 PCA x 3 searches."""
    tmp = tmp_path_factory.mktemp("cli")
    frames, fnames, labels = _frames_data()
    h5, gt, fam = _write_inputs(tmp, frames, fnames, labels)
    out = tmp / "out"
    r = subprocess.run([sys.executable, "-m", "soundsim.cli", "-q", "evaluate", str(h5), "--ground-truth", str(gt),
                        "--families", str(fam), "--pca", "8", "none", "--out", str(out)],
                       capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    return frames, fnames, labels, fam, out


@pytest.mark.parametrize("aggregation", ["mean", "median", "max"])
@pytest.mark.parametrize("pca", [8, "none"])
@pytest.mark.parametrize("search", ["mips", "mcss", "nns"])
def test_same_numbers_as_soundsim_evaluate(cli_run, aggregation, pca, search):
    frames, fnames, labels, fam, out = cli_run
    res = soundsim.evaluate_embeddings(frames, fnames, labels, aggregation=aggregation, pca=pca, search=search,
                                       families=fam)
    folder = out / res.setting
    summary = json.loads((folder / "summary.json").read_text())
    for part in ("macro", "micro", "family_mean"):
        assert res.details[part] == summary[part], part  # exactly: json keeps every float64 digit
    assert res.summary == summary["macro"]
    assert res.details["counts"] == summary["counts"]
    assert res.details["setting"] == summary["setting"]
    pd.testing.assert_frame_equal(res.per_query, pd.read_parquet(folder / "per_query.parquet"), check_exact=True)
    # per_label.csv and per_family.csv keep 6 decimals
    pd.testing.assert_frame_equal(res.per_label, pd.read_csv(folder / "per_label.csv"), check_exact=False,
                                  atol=5e-7, rtol=0)
    pd.testing.assert_frame_equal(res.per_family, pd.read_csv(folder / "per_family.csv"), check_exact=False,
                                  atol=5e-7, rtol=0)
    rk = read_rankings(folder / "rankings.h5")
    assert np.array_equal(rk.indices, res.indices) and np.array_equal(rk.scores, res.scores)
    assert rk.fnames == res.fnames


def test_write_gives_the_files_of_the_cli(cli_run, tmp_path):
    frames, fnames, labels, fam, out = cli_run
    res = soundsim.evaluate_embeddings(frames, fnames, labels, aggregation="median", pca=8, search="nns",
                                       families=fam)
    written = res.write(tmp_path / res.setting)
    assert sorted(p.name for p in (tmp_path / res.setting).iterdir()) == sorted(
        p.name for p in (out / res.setting).iterdir())
    for name in ("per_label.csv", "per_family.csv"):
        assert (tmp_path / res.setting / name).read_text() == (out / res.setting / name).read_text()
    assert written["macro"] == json.loads((out / res.setting / "summary.json").read_text())["macro"]


# --------------------------------------------------------------------------- input forms


@pytest.mark.parametrize("aggregation", ["mean", "median", "max"])
def test_frames_of_one_repeated_row_equal_the_vectors(aggregation):
    """A clip whose frames are copies of one row aggregates to that row (mean, median, max alike)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 6)).astype(np.float32)
    fnames = [f"c{i}" for i in range(24)]
    labels = [[f"L{i % 3}"] for i in range(24)]
    frames = [np.repeat(x[None, :], 1 + i % 4, axis=0) for i, x in enumerate(X)]
    ref = soundsim.evaluate_embeddings(X, fnames, labels, pca=4)
    res = soundsim.evaluate_embeddings(frames, fnames, labels, aggregation=aggregation, pca=4)
    assert res.summary == ref.summary
    pd.testing.assert_frame_equal(res.per_query, ref.per_query)
    assert res.details["embeddings"]["level"] == "frame" and ref.details["embeddings"]["level"] == "clip"


def test_three_d_array_list_of_frames_and_one_d_rows_agree():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(20, 3, 5)).astype(np.float32)  # (N, F, D)
    fnames = [f"c{i}" for i in range(20)]
    labels = [[f"L{i % 2}"] for i in range(20)]
    a = soundsim.evaluate_embeddings(A, fnames, labels, aggregation="max", pca=3)
    b = soundsim.evaluate_embeddings(list(A), fnames, labels, aggregation="max", pca=3)
    assert a.summary == b.summary
    rows = rng.normal(size=(20, 5))
    c = soundsim.evaluate_embeddings(list(rows), fnames, labels, pca="none")  # (D,) per clip
    d = soundsim.evaluate_embeddings(rows, fnames, labels, pca="none")
    assert c.summary == d.summary


def test_float64_input_is_evaluated_as_float32():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 6))
    fnames = [f"c{i}" for i in range(20)]
    labels = [[f"L{i % 2}"] for i in range(20)]
    a = soundsim.evaluate_embeddings(X, fnames, labels, pca=4)
    b = soundsim.evaluate_embeddings(X.astype(np.float32), fnames, labels, pca=4)
    assert a.summary == b.summary


def test_labels_from_a_ground_truth_csv(tmp_path):
    frames, fnames, labels = _frames_data(n=24)
    gt = tmp_path / "gt.csv"
    # FSD50K style (fname,labels,mids), rows in another order than X
    df = pd.DataFrame({"fname": fnames, "labels": [",".join(ls) for ls in labels], "mids": ""})
    df.iloc[::-1].to_csv(gt, index=False)
    a = soundsim.evaluate_embeddings(frames, fnames, gt, aggregation="mean", pca=6)
    b = soundsim.evaluate_embeddings(frames, fnames, labels, aggregation="mean", pca=6)
    c = soundsim.evaluate_embeddings(frames, fnames, str(gt), aggregation="mean", pca=6)
    assert a.summary == b.summary == c.summary
    pd.testing.assert_frame_equal(a.per_query, b.per_query)
    # comma-separated strings per clip are label lists too
    s = soundsim.evaluate_embeddings(frames, fnames, [",".join(ls) for ls in labels], aggregation="mean", pca=6)
    assert s.summary == b.summary


def test_csv_mismatch_names_the_clips_and_restrict_evaluates_the_rest(tmp_path):
    frames, fnames, labels = _frames_data(n=24)
    gt = tmp_path / "gt.csv"
    pd.DataFrame({"fname": fnames[:-2], "labels": [",".join(ls) for ls in labels[:-2]]}).to_csv(gt, index=False)
    with pytest.raises(ValueError, match=r"2 clip\(s\) in embeddings are not in the ground truth: 'clip22', 'clip23'"):
        soundsim.evaluate_embeddings(frames, fnames, gt, pca=6)
    res = soundsim.evaluate_embeddings(frames, fnames, gt, pca=6, restrict=True)
    ref = soundsim.evaluate_embeddings(frames[:-2], fnames[:-2], labels[:-2], pca=6)
    assert res.summary == ref.summary and res.details["counts"]["n_dropped_not_in_ground_truth"] == 2
    with pytest.raises(ValueError, match="ground-truth file not found"):
        soundsim.evaluate_embeddings(frames, fnames, tmp_path / "nope.csv")


def test_minmax_processing_differs_and_is_recorded():
    rng = np.random.default_rng(4)
    X = rng.uniform(size=(30, 8)) * np.arange(1, 9)
    fnames = [f"c{i}" for i in range(30)]
    labels = [[f"L{i % 3}"] for i in range(30)]
    res = soundsim.evaluate_embeddings(X, fnames, labels, pca="none", search="mips", processing="minmax-pca")
    assert res.details["processing"]["order"] == "minmax-pca"
    l2 = soundsim.evaluate_embeddings(X, fnames, labels, pca="none", search="mips")
    assert l2.details["processing"]["order"] == "l2-pca" and res.summary != l2.summary


# --------------------------------------------------------------------------- errors


def _small() -> tuple[np.ndarray, list[str], list[list[str]]]:
    X = np.random.default_rng(0).normal(size=(10, 4))
    return X, [f"c{i}" for i in range(10)], [[f"L{i % 2}"] for i in range(10)]


@pytest.mark.parametrize("change, message", [
    (lambda X, f, lab: (X[:9], f, lab, {}), r"X has 9 clip\(s\) but fnames has 10"),
    (lambda X, f, lab: (X, f, lab[:8], {}), r"labels has 8 entries but fnames has 10"),
    (lambda X, f, lab: ([*list(X[:9]), np.ones(5)], f, lab, {}),
     r"ragged D\): 'c0' has D=4, 'c9' has D=5"),
    (lambda X, f, lab: (np.where(np.arange(10)[:, None] == 3, np.nan, X), f, lab, {}),
     r"NaN or infinite values .* in 1 clip\(s\): 'c3'"),
    (lambda X, f, lab: (X, f, lab, {"aggregation": "sum"}), r"aggregation='sum': unknown; allowed: 'mean', 'median'"),
    (lambda X, f, lab: (X, f, lab, {"search": "cosine"}), r"search='cosine': unknown; allowed: 'mips', 'mcss', 'nns'"),
    (lambda X, f, lab: (X, f, lab, {"pca": 5}), r"pca=5 is larger than the dimension D=4"),
    (lambda X, f, lab: (np.hstack([X, X, X]), f, lab, {"pca": 11}), r"pca=11 is larger than the number of clips N=10"),
    (lambda X, f, lab: (X, f, lab, {"pca": "half"}), r"pca='half': .*positive integer or 'none'"),
    (lambda X, f, lab: (X, [*f[:9], "c0"], lab, {}), r"fnames: 1 repeated name\(s\): 'c0'"),
    (lambda X, f, lab: ([np.ones((2, 4))] * 10, f, lab, {"aggregation": "none"}),
     r"aggregation='none' takes one row per clip, but 10 clip\(s\) have several"),
    (lambda X, f, lab: ([np.zeros((0, 4))] + list(X[1:]), f, lab, {}), r"1 clip\(s\) without rows: 'c0'"),
    (lambda X, f, lab: (X, f, lab, {"processing": "zscore"}), r"processing='zscore': unknown"),
    (lambda X, f, lab: (X, f, [[]] + lab[1:], {}), r"1 clip\(s\) without labels: 'c0'"),
    (lambda X, f, lab: (X, f, [[1]] + lab[1:], {}), r"labels of 'c0': expected a list of label strings"),
    (lambda X, f, lab: (X, "c0", lab, {}), r"fnames: expected a sequence of N clip names"),
    (lambda X, f, lab: (X[None], f, lab, {}), r"X: expected an \(N, D\) array .* got shape \(1, 10, 4\)"
     r"|X has 1 clip"),
])
def test_errors_are_value_errors_naming_the_problem(change, message):
    X, f, lab = _small()
    X2, f2, lab2, kw = change(X, f, lab)
    with pytest.raises(ValueError, match=message) as e:
        soundsim.evaluate_embeddings(X2, f2, lab2, **{"pca": "none", **kw})
    assert isinstance(e.value, InputError)


def test_a_zero_vector_under_cosine_is_an_error_naming_it():
    X, f, lab = _small()
    X[2] = 0
    with pytest.raises(ValueError, match="'c2'"):
        soundsim.evaluate_embeddings(X, f, lab, pca="none")


# --------------------------------------------------------------------------- compare


def test_compare_estimates_are_the_summaries_and_paths_work(cli_run):
    frames, fnames, labels, fam, out = cli_run
    # the families set the panel's graded gains (same label 1, same family 0.5), as the CLI run's --families
    a = soundsim.evaluate_embeddings(frames, fnames, labels, aggregation="mean", pca=8, search="mcss", families=fam)
    b = soundsim.evaluate_embeddings(frames, fnames, labels, aggregation="max", pca="none", search="nns",
                                     families=fam)
    cmp = soundsim.compare({"a": a, "b": b}, n_resamples=300, seed=1)
    t = cmp.table.set_index("system")
    for name, r in (("a", a), ("b", b)):
        for m, v in r.summary.items():
            assert t.loc[name, m] == pytest.approx(v, abs=1e-12)
            assert t.loc[name, f"{m}_lo"] <= t.loc[name, m] <= t.loc[name, f"{m}_hi"]
    assert list(cmp.pairwise["metric"])[:3] == ["map@15", "map@150", "mr1"]
    assert list(cmp.pairwise["metric"])[3:] == [measures.average_of(c) for c in PN.columns()]
    row = cmp.pairwise.iloc[0]
    assert (row["a"], row["b"]) == ("a", "b") and row["diff"] == pytest.approx(a.summary["map@15"] - b.summary["map@15"])
    assert bool(row["same_queries"])
    # the same systems given as the CLI's setting folders / per_query.parquet files: the same statistics
    paths = soundsim.compare({"a": out / a.setting, "b": out / b.setting / "per_query.parquet"}, n_resamples=300,
                             seed=1)
    pd.testing.assert_frame_equal(paths.intervals, cmp.intervals)
    pd.testing.assert_frame_equal(paths.pairwise, cmp.pairwise)


def test_compare_equals_soundsim_stats():
    from soundsim import stats

    X, f, lab = _small()
    a = soundsim.evaluate_embeddings(X, f, lab, pca="none")
    b = soundsim.evaluate_embeddings(X[:, :2], f, lab, pca="none")
    cmp = soundsim.compare({"a": a, "b": b}, n_resamples=200, confidence=0.9, seed=5)
    systems = {"a": a.per_query, "b": b.per_query}
    pd.testing.assert_frame_equal(cmp.intervals, stats.intervals(systems, 200, 0.9, 5))
    pd.testing.assert_frame_equal(cmp.pairwise, stats.pairwise(systems, 200, 0.9, 5))
    same = soundsim.compare({"a": a, "again": a}, n_resamples=200)
    assert (same.pairwise["diff"] == 0).all() and (same.pairwise["p"] == 1).all()
    one = soundsim.compare({"a": a}, n_resamples=50)
    assert len(one.table) == 1 and one.pairwise.empty


def test_compare_errors():
    with pytest.raises(ValueError, match="non-empty mapping"):
        soundsim.compare({})
    with pytest.raises(ValueError, match=r"systems\['x'\]: .*not found"):
        soundsim.compare({"x": "/nonexistent/folder"})
    X, f, lab = _small()
    a = soundsim.evaluate_embeddings(X, f, lab, pca="none")
    with pytest.raises(ValueError, match="n_resamples must be >= 1"):
        soundsim.compare({"a": a}, n_resamples=0)


# --------------------------------------------------------------------------- the package's top level


def test_import_soundsim_is_cheap_and_the_api_is_lazy():
    code = ("import sys, soundsim; heavy = [m for m in ('numpy', 'pandas', 'sklearn', 'scipy', 'h5py') "
            "if m in sys.modules]; assert not heavy, heavy; "
            "f = soundsim.evaluate_embeddings; assert 'pandas' in sys.modules; "
            "import soundsim.api; assert f is soundsim.api.evaluate_embeddings; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert set(soundsim.__all__) >= {"evaluate_embeddings", "compare", "EvaluationResult", "Comparison"}
    assert soundsim.compare is api.compare and "evaluate_embeddings" in dir(soundsim)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        soundsim.nope  # noqa: B018


# --------------------------------------------------------------------------- the README's example


def readme_example() -> str:
    """The Python code block between the README's api-example markers."""
    text = README.read_text()
    block = text[text.index(EXAMPLE_START) + len(EXAMPLE_START):text.index(EXAMPLE_END)]
    m = re.fullmatch(r"\s*```python\n(.*)```\s*", block, flags=re.S)
    assert m, "the README's api-example markers must enclose one ```python block"
    return m.group(1)


def test_readme_example_runs(tmp_path):
    (tmp_path / "example.py").write_text(readme_example())
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    assert re.search(r"\{'map@15': 0\.\d+, 'map@150': 0\.\d+, 'mr1': \d", r.stdout), r.stdout
    assert "frames, max" in r.stdout and "significant" in r.stdout
    summary = json.loads((tmp_path / "metrics" / "vectors" / "summary.json").read_text())
    assert summary["setting"]["name"] == "agg-mean_pca-16_search-mcss"
    assert (tmp_path / "metrics" / "vectors" / "per_query.parquet").is_file()
