"""The evaluation grid and the ``soundsim evaluate`` command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from soundsim import measures
from soundsim import panel as PN
from soundsim import process as P
from soundsim import search as S
from soundsim.cli import main
from soundsim.errors import CollectionError
from soundsim.evaluate import PartialEvaluationError, evaluate_grid, evaluate_setting, setting_name
from soundsim.metrics import build_label_index, metrics_from_scores
from soundsim.relevance import family_gains
from soundsim.store import Embeddings, read_embeddings, read_rankings, write_embeddings

LABELS = ["Bark", "Meow", "Rain", "Thunder", "Guitar", "Solo"]
FAMILIES = {"Animal": ["Bark", "Meow"], "Natural": ["Rain", "Thunder"], "Music": ["Guitar", "Ghost_label"]}


def _collection(n: int = 60, d: int = 12, seed: int = 0):
    """Frame-level toy collection with class structure; 'Solo' has one clip."""
    rng = np.random.default_rng(seed)
    centres = {lab: rng.standard_normal(d) * 3 for lab in LABELS}
    fnames, labels, frames = [], [], []
    for i in range(n):
        labs = [LABELS[i % 5]] + (["Rain"] if i % 7 == 0 and LABELS[i % 5] != "Rain" else [])
        if i == n - 1:
            labs = ["Solo"]
        base = sum(centres[lab] for lab in labs)
        frames.append((base + rng.standard_normal((int(rng.integers(1, 5)), d))).astype(np.float32))
        fnames.append(f"{1000 + i}")
        labels.append(labs)
    return fnames, labels, frames


@pytest.fixture
def files(tmp_path):
    fnames, labels, frames = _collection()
    emb = write_embeddings(tmp_path / "emb.h5", fnames, frames, {"model": "toy", "variation": "v", "hop": 0.5})
    gt = tmp_path / "gt.csv"
    pd.DataFrame({"fname": fnames, "labels": [",".join(ls) for ls in labels]}).to_csv(gt, index=False)
    fam = tmp_path / "families.json"
    fam.write_text(json.dumps(FAMILIES))
    return emb, gt, fam, fnames, labels


def test_cli_full_grid(files, tmp_path, capsys):
    emb, gt, fam, fnames, labels = files
    out = tmp_path / "out"
    rc = main([
        "-q", "evaluate", str(emb), "--ground-truth", str(gt), "--families", str(fam),
        "--aggregation", "mean", "median", "max", "--pca", "5", "10", "none",
        "--search", "mcss", "mips", "nns", "--cutoffs", "15", "150", "--out", str(out), "--seed", "0",
    ])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "27 setting(s)" in printed and "agg-median_pca-10_search-nns" in printed
    dirs = sorted(p.name for p in out.iterdir())
    assert len(dirs) == 27 and "agg-max_pca-none_search-mips" in dirs
    d = out / "agg-mean_pca-5_search-mcss"
    per_label = pd.read_csv(d / "per_label.csv")
    panel = [measures.average_of(c) for c in PN.columns()]
    assert list(per_label.columns) == ["label", "n_clips", "map@15", "map@150", "mr1", *panel]
    assert per_label.set_index("label")["n_clips"].to_dict() == {
        "Bark": 12, "Guitar": 11, "Meow": 12, "Rain": 12 + 7, "Solo": 1, "Thunder": 12,
    }
    solo = per_label.set_index("label").loc["Solo"]
    assert np.isnan(solo["map@15"]) and np.isnan(solo["mr1"])  # single-clip label policy
    per_family = pd.read_csv(d / "per_family.csv")
    assert list(per_family.columns) == ["family", "n_labels", "map@15", "map@150", "mr1", *panel]
    assert per_family.set_index("family")["n_labels"].to_dict() == {"Animal": 2, "Natural": 2, "Music": 1}
    summary = json.loads((d / "summary.json").read_text())
    assert summary["setting"] == {
        "name": "agg-mean_pca-5_search-mcss", "aggregation": "mean", "pca": "5", "search": "mcss",
        "cutoffs": [15, 150], "seed": 0, "block_size": summary["setting"]["block_size"],
    }
    ok = per_label[per_label["n_clips"] >= 2]
    assert summary["macro"]["map@15"] == pytest.approx(ok["map@15"].mean(), abs=1e-6)
    assert summary["macro"]["mr1"] == pytest.approx(ok["mr1"].mean(), abs=1e-6)
    assert summary["family_mean"]["map@150"] == pytest.approx(per_family["map@150"].mean(), abs=1e-6)
    assert set(summary["micro"]) == {"map@15", "map@150", "mr1", *panel}
    assert summary["counts"]["single_clip_labels"] == ["Solo"] and summary["counts"]["n_micro_queries"] == 59
    assert summary["counts"]["n_labels_in_no_family"] == 1  # Solo
    assert {"aggregation_s", "pca_s", "gram_s", "search_s", "metrics_s", "write_s"} <= set(summary["timings"])
    assert summary["embeddings"]["model"] == "toy" and summary["processing"]["svd_solver"] == "covariance_eigh"
    r = read_rankings(d / "rankings.h5")
    assert r.fnames == fnames and r.indices.shape == (60, 59) and r.attrs["search"] == "mcss"
    assert all(q not in r.indices[q] for q in range(60))
    # the well-separated toy classes are retrieved well by every setting
    for name in dirs:
        s = json.loads((out / name / "summary.json").read_text())
        assert s["macro"]["map@15"] > 0.5, name


def test_cli_mismatch_is_an_error_unless_intersect(files, tmp_path, capsys):
    emb, gt, fam, fnames, labels = files
    df = pd.read_csv(gt, dtype=str).iloc[3:]  # drop 1000, 1001, 1002 from the ground truth
    df = pd.concat([df, pd.DataFrame({"fname": ["9999"], "labels": ["Bark"]})])
    gt2 = tmp_path / "gt2.csv"
    df.to_csv(gt2, index=False)
    args = ["evaluate", str(emb), "--ground-truth", str(gt2), "--aggregation", "mean", "--pca", "none",
            "--search", "mcss", "--out", str(tmp_path / "o")]
    assert main(["-q", *args]) == 2
    err = capsys.readouterr().err
    assert "3 clip(s) in" in err and "'1000', '1001', '1002'" in err and "'9999'" in err and "--intersect" in err
    assert main(["-q", *args, "--intersect"]) == 0
    s = json.loads((tmp_path / "o" / "agg-mean_pca-none_search-mcss" / "summary.json").read_text())
    assert s["counts"]["n_clips"] == 57 and s["counts"]["n_dropped_not_in_ground_truth"] == 3
    assert s["counts"]["n_dropped_without_embedding"] == 1 and s["counts"]["restricted_to_intersection"]


def test_cli_input_errors(files, tmp_path, capsys):
    emb, gt, fam, *_ = files
    base = ["-q", "evaluate", str(emb), "--ground-truth", str(gt), "--out", str(tmp_path / "o")]
    assert main([*base, "--pca", "13"]) == 2  # dim 12
    assert "PCA with 13 components is impossible" in capsys.readouterr().err
    assert main([*base, "--aggregation", "none", "--pca", "none"]) == 2
    assert "aggregation 'none' needs exactly one row per clip" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # no setting could run: nothing written


def test_a_failing_setting_does_not_discard_the_others(files, tmp_path, capsys):
    emb, gt, *_ = files
    out = tmp_path / "o"
    rc = main(["-q", "evaluate", str(emb), "--ground-truth", str(gt), "--aggregation", "mean",
               "--pca", "5", "13", "--out", str(out)])
    assert rc == 2
    cap = capsys.readouterr()
    assert "3 of 6 setting(s) could not be evaluated (the other 3 were evaluated and written)" in cap.err
    assert "agg-mean_pca-13_search-mips, agg-mean_pca-13_search-mcss, agg-mean_pca-13_search-nns: PCA with 13" in cap.err
    assert "3 setting(s) ->" in cap.out and "agg-mean_pca-5_search-nns" in cap.out
    for s in ("mips", "mcss", "nns"):
        assert (out / f"agg-mean_pca-5_search-{s}" / "summary.json").is_file()
        assert not (out / f"agg-mean_pca-13_search-{s}").exists()


def test_a_zero_vector_under_cosine_spares_the_other_settings_with_one_search(tmp_path):
    """A search that cannot run on one processing setting (a zero vector has no cosine) is a
    failure of that setting only, also when it is the only search asked for."""
    fnames, labels, frames = _collection()
    frames[3] = np.full_like(frames[3], -100.0)  # the minimum in every dimension: all zero after min-max
    emb = write_embeddings(tmp_path / "z.h5", fnames, frames,
                           {"model": "m", "variation": "v", "processing": "minmax-pca"})
    out = tmp_path / "o"
    with pytest.raises(PartialEvaluationError) as info:
        evaluate_grid(read_embeddings(emb), (fnames, labels), None, ["mean"], ["none", 5], ["mcss"], [15],
                      out_dir=out)
    e = info.value
    assert [name for name, _ in e.failures] == ["agg-mean_pca-none_search-mcss"]
    assert "all-zero vector" in e.failures[0][1] and "'1003'" in e.failures[0][1]
    assert [s["setting"]["name"] for s in e.summaries] == ["agg-mean_pca-5_search-mcss"]
    assert sorted(p.name for p in out.iterdir()) == ["agg-mean_pca-5_search-mcss"]
    with pytest.raises(S.SearchError, match="all-zero vector"):  # one setting: its own error
        evaluate_setting(read_embeddings(emb), (fnames, labels), None, "mean", "none", "mcss", [15])


def test_evaluate_out_naming_a_file_is_one_clear_error(files, tmp_path, capsys):
    emb, gt, *_ = files
    out = tmp_path / "taken.txt"
    out.write_text("mine")
    assert main(["-q", "evaluate", str(emb), "--ground-truth", str(gt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"soundsim evaluate: error: --out {out}: exists and is not a folder; give "
                                        "a folder (one subfolder per setting is written there)"]
    assert out.read_text() == "mine"
    with pytest.raises(CollectionError, match="exists and is not a folder"):
        evaluate_grid(read_embeddings(emb), pd.read_csv(gt), out_dir=out)


def test_grid_matches_direct_metrics(files):
    emb_path, gt, fam, fnames, labels = files
    emb = read_embeddings(emb_path)
    clips = pd.DataFrame({"fname": fnames, "labels": labels})
    summaries = evaluate_grid(emb, clips, FAMILIES, ["median"], [4], ["nns", "mcss"], [5, 20])
    assert [s["setting"]["name"] for s in summaries] == ["agg-median_pca-4_search-nns", "agg-median_pca-4_search-mcss"]
    # the same metrics from a full score matrix of the processed vectors
    Z, _ = P.process(P.aggregate(emb.embeddings, emb.offsets, "median"), 4)
    Zd = Z.astype(np.float64)
    cos = (Zd @ Zd.T) / np.outer(np.linalg.norm(Zd, axis=1), np.linalg.norm(Zd, axis=1))
    dist = -np.linalg.norm(Zd[:, None, :] - Zd[None, :, :], axis=2)
    ix = build_label_index(labels)
    for s, scores in zip(summaries, [dist, cos], strict=True):
        fam_of = {lab: f for f, labs in FAMILIES.items() for lab in labs}
        r = metrics_from_scores(scores, ix, [5, 20], gains=family_gains(ix.labels, fam_of))
        assert s["macro"] == pytest.approx(r.macro(), rel=1e-6)
        assert s["micro"] == pytest.approx(r.micro(), rel=1e-6)
    one = evaluate_setting(emb, clips, FAMILIES, "median", 4, "mcss", [5, 20])
    assert one["macro"] == summaries[1]["macro"]


def test_clip_level_defaults_and_processed_output(tmp_path):
    fnames, labels, frames = _collection(n=30, d=6, seed=1)
    clip_rows = [f[:1] for f in frames]
    e = read_embeddings(write_embeddings(tmp_path / "c.h5", fnames, clip_rows, {"model": "m", "variation": "v"}))
    out = tmp_path / "out"
    summaries = evaluate_grid(e, (fnames, labels), None, pcas=["none", 3], searches=["mips"], cutoffs=[15],
                              out_dir=out, save_processed=True, write_rankings_files=False)
    assert [s["setting"]["name"] for s in summaries] == [
        setting_name("none", None, "mips"), setting_name("none", 3, "mips")]
    assert not (out / "agg-none_pca-3_search-mips" / "rankings.h5").exists()
    assert pd.read_csv(out / "agg-none_pca-3_search-mips" / "per_family.csv").empty
    proc = read_embeddings(out / "processed" / "agg-none_pca-3.h5")
    assert proc.embeddings.shape == (30, 3) and proc.attrs["aggregation"] == "none"


def test_label_strings_and_bad_ground_truth():
    e = Embeddings(["a", "b", "c"], np.eye(3, dtype=np.float32), np.arange(4), {"level": "clip"})
    s = evaluate_setting(e, (["a", "b", "c"], ["X,Y", "X", "Y"]), None, "none", "none", "mips", [2])
    assert s["counts"]["n_labels"] == 2
    with pytest.raises(CollectionError, match="duplicate fname"):
        evaluate_setting(e, (["a", "b", "c", "a"], ["X", "X", "Y", "Y"]), None, "none", "none", "mips", [2])
    with pytest.raises(CollectionError, match=r"without labels: 'b'"):
        evaluate_setting(e, (["a", "b", "c"], ["X", "", "Y"]), None, "none", "none", "mips", [2])


def test_zero_clip_vector_is_named(tmp_path, capsys):
    fnames, labels, frames = _collection(n=20, d=4)
    frames[5] = np.zeros((3, 4), np.float32)  # a silent clip: every frame zero
    emb = write_embeddings(tmp_path / "z.h5", fnames, frames, {"model": "m", "variation": "v"})
    gt = tmp_path / "gt.csv"
    pd.DataFrame({"fname": fnames, "labels": [",".join(ls) for ls in labels]}).to_csv(gt, index=False)
    rc = main(["-q", "evaluate", str(emb), "--ground-truth", str(gt), "--aggregation", "max",
               "--pca", "none", "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "1 clip(s) have an all-zero vector (aggregation max)" in err and "'1005'" in err
    with pytest.raises(P.ProcessingError, match=r"'1005'"):
        evaluate_setting(read_embeddings(emb), (fnames, labels), None, "mean", "none", "mips", [5])


def test_per_query_parquet_matches_summary_and_per_label(files, tmp_path):
    """per_query.parquet: one row per (clip, label) pair -- a clip with two labels is
    a query of each -- whose label means are per_label.csv and whose macro is summary.json."""
    emb_path, gt, fam, fnames, labels = files
    out = tmp_path / "pq"
    evaluate_grid(read_embeddings(emb_path), pd.DataFrame({"fname": fnames, "labels": labels}), FAMILIES,
                  ["mean"], [5, "none"], ["mcss", "nns"], [15, 150], out_dir=out, write_rankings_files=False)
    for d in sorted(out.iterdir()):
        pq = pd.read_parquet(d / "per_query.parquet")
        assert list(pq.columns) == ["fname", "label", "ap@15", "ap@150", "r1", *PN.columns()]
        assert len(pq) == sum(len(ls) for ls in labels)  # 60 clips, some with 2 labels
        assert set(zip(pq["fname"], pq["label"], strict=True)) == {
            (f, lab) for f, ls in zip(fnames, labels, strict=True) for lab in ls}
        per_label = pd.read_csv(d / "per_label.csv").set_index("label")
        summary = json.loads((d / "summary.json").read_text())
        solo = pq[pq["label"] == "Solo"]
        assert len(solo) == 1 and solo[["ap@15", "ap@150", "r1"]].isna().all(axis=None)  # single-clip label
        means = pq.dropna().groupby("label")[["ap@15", "ap@150", "r1"]].mean()
        for col, metric in (("ap@15", "map@15"), ("ap@150", "map@150"), ("r1", "mr1")):
            np.testing.assert_allclose(means[col], per_label.loc[means.index, metric], atol=1e-6)  # csv: 6 decimals
            assert means[col].mean() == pytest.approx(summary["macro"][metric], rel=1e-12)
        assert (pq["r1"].dropna() == pq["r1"].dropna().round()).all() and (pq["r1"].dropna() >= 0).all()
        # the bootstrap's point estimates are the summary's macro values
        from soundsim import stats as St

        ci = St.intervals({"x": pq}, n_resamples=100).set_index("metric")
        for metric in ("map@15", "map@150", "mr1"):
            assert ci.loc[metric, "estimate"] == pytest.approx(summary["macro"][metric], rel=1e-12)
