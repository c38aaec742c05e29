"""Approximate search in the evaluation (soundsim.index_eval): a real clustered, labelled
collection evaluated by soundsim.evaluate, then its best setting under real faiss indexes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("faiss")

from soundsim import ann as A  # noqa: E402
from soundsim import index_eval as IE  # noqa: E402
from soundsim import tables as T  # noqa: E402
from soundsim.errors import ConfigError  # noqa: E402
from soundsim.evaluate import evaluate_grid  # noqa: E402
from soundsim.figures import index_plot  # noqa: E402
from soundsim.layout import Layout  # noqa: E402
from soundsim.metrics import build_label_index  # noqa: E402
from soundsim.store import read_embeddings, read_rankings, write_embeddings  # noqa: E402

LABELS = [f"L{i}" for i in range(8)]
# L7 sits in two families: a multi-parent label, left out of the families (as the manifest does)
FAMILIES = {"A": ["L0", "L1", "L2", "L3"], "B": ["L4", "L5", "L6"]}
CUTOFFS = [15, 150]


def _collection(n: int = 420, d: int = 24, seed: int = 0):
    """Frame-level clips around one centre per label (some clips carry two labels; the
    last clip's label 'Solo' has one clip: NaN, left out of every average)."""
    rng = np.random.default_rng(seed)
    centres = {lab: rng.standard_normal(d) * 2.0 for lab in LABELS}
    fnames, labels, frames = [], [], []
    for i in range(n - 1):
        labs = [LABELS[i % 8]] + ([LABELS[(i + 3) % 8]] if i % 9 == 0 else [])
        base = sum(centres[lab] for lab in labs)
        frames.append((base + 2.0 * rng.standard_normal((int(rng.integers(1, 4)), d))).astype(np.float32))
        fnames.append(f"c{i:04d}")
        labels.append(labs)
    frames.append(rng.standard_normal((2, d)).astype(np.float32))
    fnames.append("solo")
    labels.append(["Solo"])
    return fnames, labels, frames


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """The collection evaluated on a small grid into a results tree, as the workflow lays it out."""
    root = tmp_path_factory.mktemp("idx")
    lay = Layout(root / "results", "toy")
    fnames, labels, frames = _collection()
    emb = write_embeddings(root / "emb.h5", fnames, frames, {"model": "toy", "variation": "v"})
    man = root / "manifest.csv"
    from soundsim.manifest import MANIFEST_COLUMNS

    rows = {c: [""] * len(fnames) for c in MANIFEST_COLUMNS}
    rows.update(fname=fnames, labels=[",".join(ls) for ls in labels], duration=1.0, sample_rate=16000, channels=1,
                frames=16000)
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(man, index=False)
    fam = root / "families.json"
    fam.write_text(json.dumps(FAMILIES))
    out = lay.metrics_variation_dir("toy", "v")
    evaluate_grid(read_embeddings(emb), (fnames, labels), FAMILIES, ["mean", "max"], [8, "none"], ["mcss", "nns"],
                  CUTOFFS, out_dir=out)
    summaries = sorted(str(p) for p in out.glob("*/summary.json"))
    return {"lay": lay, "emb": emb, "manifest": man, "families": fam, "summaries": summaries, "labels": labels,
            "fnames": fnames}


def _job(ev, indexes, params=None, out_name="indexes.csv"):
    return IE.evaluate_indexes_job(ev["emb"], ev["manifest"], ev["families"], ev["summaries"], CUTOFFS, indexes,
                                   params, out=ev["lay"].metrics_variation_dir("toy", "v") / out_name, seed=0)


def test_exact_reproduces_the_evaluation_and_approximate_indexes_are_compared_with_it(evaluated):
    ev = evaluated
    table = _job(ev, ["hnsw", "ivf-pq"], {"ivf-pq": {"nlist": 8, "nprobe": 2, "pq_m": 4, "rerank": 1}})
    # the best setting of best_settings.csv (the tie rule of soundsim.tables)
    best = T.best_settings(T.collect([ev["lay"].setting_files("toy", "v", p.split("/")[-2])
                                      for p in ev["summaries"]]))
    assert set(table["setting"]) == {best["setting"].iloc[0]}
    assert list(table["index"]) == ["exact", "hnsw", "ivf-pq"]  # exact added first
    assert list(table.columns) == IE.columns(CUTOFFS, 150)
    assert (table["n_clips"] == 420).all() and (table["k"] == 150).all()
    # exact: the evaluation's own macro and family-mean MAP@15 / MAP@150, to 1e-9
    setting = best["setting"].iloc[0]
    summary = json.loads((ev["lay"].metrics_variation_dir("toy", "v") / setting / "summary.json").read_text())
    exact = table.iloc[0]
    for c in CUTOFFS:
        assert abs(exact[f"map@{c}"] - summary["macro"][f"map@{c}"]) < 1e-9
        assert abs(exact[f"family_map@{c}"] - summary["family_mean"][f"map@{c}"]) < 1e-9
    assert IE.check_exact(table, summary, CUTOFFS) == []
    assert exact["recall@15"] == 1.0 and exact["delta_map@15"] == 0.0
    # mr1@K is at most the evaluation's MR1 (the whole collection ranked)
    assert exact["mr1@150"] <= summary["macro"]["mr1"] + 1e-12
    # a coarse ivf-pq (2 of 8 cells, no extra candidates to re-rank) loses neighbours
    pq = table.iloc[2]
    assert 0.0 < pq["recall@15"] < 1.0
    assert abs(pq["delta_map@15"] - (pq["map@15"] - exact["map@15"])) < 1e-12
    # memory: PQ codes are smaller than flat float32 vectors; measured values are positive
    assert pq["memory_bytes_per_sound"] < exact["memory_bytes_per_sound"]
    assert (table[["build_s", "latency_ms_p50", "latency_ms_p99"]] > 0).all().all()
    assert (table["latency_ms_p99"] >= table["latency_ms_p50"]).all()
    assert json.loads(pq["params"])["nprobe"] == 2
    # written where the workflow expects it, read back the same
    back = IE.read_index_table(ev["lay"].index_eval("toy", "v"))
    assert list(back["index"]) == ["exact", "hnsw", "ivf-pq"]
    assert np.allclose(back["map@15"], table["map@15"], rtol=0, atol=1e-12)


def test_exact_lists_are_the_evaluations_rankings_and_score_the_same_per_query(evaluated):
    """list_metrics on the exact index's lists: the evaluation's rankings.h5 and per-query AP@N."""
    ev = evaluated
    lay = ev["lay"]
    setting = "agg-mean_pca-8_search-mcss"
    files = lay.setting_files("toy", "v", setting)
    emb = read_embeddings(ev["emb"])
    Z = IE.processed_matrix(emb, "mean", "8", 0)
    run = IE.run_index("exact", Z, "mcss", 150)
    r = read_rankings(files.rankings)
    assert np.array_equal(run.ids, r.indices.astype(np.int64))
    index = build_label_index(ev["labels"], ev["fnames"])
    res, k = IE.list_metrics(run.ids, index, CUTOFFS)
    assert k == 150
    pq = pd.read_parquet(files.per_query)
    for c in CUTOFFS:
        assert np.allclose(res.pair_ap[c], pq[f"ap@{c}"].to_numpy(), rtol=0, atol=1e-12, equal_nan=True)
    # mr1@K equals the evaluation's R1 wherever that is within the list, and is K elsewhere
    r1 = pq["r1"].to_numpy()
    within = r1 < k
    assert np.array_equal(res.pair_r1[within], r1[within])
    assert np.all(res.pair_r1[~within & ~np.isnan(r1)] == k)


def test_mr1_at_k_is_censored_at_the_list_length():
    """Hand-built lists: A = {0, 1, 2}, B = {3, 4}, C = {5}; K = 2."""
    index = build_label_index([["A"], ["A"], ["A"], ["B"], ["B"], ["C"]])
    ids = np.array([
        [1, 3],   # q0 (A): relevant at 0
        [3, 0],   # q1 (A): relevant at 1
        [4, 5],   # q2 (A): none retrieved -> censored at K = 2
        [4, -1],  # q3 (B): relevant at 0; the second slot empty
        [0, 1],   # q4 (B): none -> 2
        [0, 1],   # q5 (C): single-clip label -> NaN
    ])
    res, k = IE.list_metrics(ids, index, [1, 2])
    assert k == 2
    assert res.pair_r1[:5].tolist() == [0, 1, 2, 0, 2] and np.isnan(res.pair_r1[5])
    lab = dict(zip(res.labels, res.label_mr1, strict=True))
    assert lab["A"] == pytest.approx(1.0) and lab["B"] == pytest.approx(1.0) and np.isnan(lab["C"])
    # AP@2, D = min(2, n_L): A: q0 1/2, q1 (1/2)/2, q2 0; B: q3 1/2, q4 0
    assert res.pair_ap[2][:5] == pytest.approx([0.5, 0.25, 0.0, 0.5, 0.0])
    assert res.macro()["map@2"] == pytest.approx(((0.5 + 0.25) / 3 + 0.5 / 2) / 2)
    # AP@1, D = 1
    assert res.pair_ap[1][:5] == pytest.approx([1.0, 0.0, 0.0, 1.0, 0.0])


def test_recall_against_exact_ignores_padding():
    exact = np.array([[1, 2, 3], [4, 5, -1]])
    approx = np.array([[3, 1, 9], [5, -1, -1]])
    assert IE.recall_at(approx, exact, 3) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert IE.recall_at(exact, exact, 3) == 1.0


def test_freesound_preset_drops_results_below_its_similarity(evaluated):
    emb = read_embeddings(evaluated["emb"])
    Z = IE.processed_matrix(emb, "mean", "none", 0)
    run = IE.run_index("freesound", Z, "mips", 15)
    for q in range(0, Z.shape[0], 37):
        row = run.ids[q][run.ids[q] >= 0]
        assert q not in row
        assert np.all(A.cosine_to(Z, Z[q], row) >= 0.7)


def test_index_config_errors_name_the_key():
    assert IE.check_index_config({"indexes": []}) == []
    assert IE.check_index_config({}) == []
    assert IE.check_index_config({"indexes": ["hnsw", "ivf-pq"]}) == ["exact", "hnsw", "ivf-pq"]
    with pytest.raises(ConfigError, match=r"grid\.index_params\.hnsw: index type 'hnsw' has no parameter\(s\) nprobe"):
        IE.check_index_config({"indexes": ["hnsw"], "index_params": {"hnsw": {"nprobe": 3}}})
    with pytest.raises(ConfigError, match=r"grid\.index_params\.ivf-pq: index parameter rerank must be a positive"):
        IE.check_index_config({"indexes": ["ivf-pq"], "index_params": {"ivf-pq": {"rerank": 0}}})
    with pytest.raises(ConfigError, match=r"grid\.index_params: parameters for 'ivf', which grid\.indexes does not"):
        IE.check_index_config({"indexes": ["hnsw"], "index_params": {"ivf": {"nprobe": 3}}})


def test_gathered_table_page_and_figure(evaluated, tmp_path):
    ev = evaluated
    a = _job(ev, ["hnsw", "ivf-pq"], out_name="a.csv")
    b = a.assign(model="other")
    IE.write_index_table([ev["lay"].metrics_variation_dir("toy", "v") / "a.csv"], tmp_path / "one.csv")
    (tmp_path / "b.csv").write_text(b.to_csv(index=False))
    df = IE.write_index_table([tmp_path / "b.csv", ev["lay"].metrics_variation_dir("toy", "v") / "a.csv"],
                              tmp_path / "indexes.csv", tmp_path / "indexes.html", collection="toy")
    assert list(df["model"]) == ["other"] * 3 + ["toy"] * 3  # sorted by model, exact first within
    assert list(df["index"]) == ["exact", "hnsw", "ivf-pq"] * 2
    page = (tmp_path / "indexes.html").read_text()
    assert "mr1@150" in page and "recall@15" in page and "(toy)" in page
    paths = index_plot(IE.read_index_table(tmp_path / "indexes.csv"), tmp_path / "indexes", collection="toy")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].stat().st_size > 10_000
