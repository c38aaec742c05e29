"""The head-vs-base table (soundsim.tables.heads_table) over settings written by the real
evaluator and tables written by soundsim.tables.write_tables."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soundsim import layout as L
from soundsim import stats as St
from soundsim import tables as T
from soundsim.evaluate import evaluate_grid
from soundsim.fileutil import write_csv_atomic
from soundsim.store import read_embeddings, write_embeddings

LABELS = ["Bark", "Meow", "Rain", "Wind"]
FAMILIES = {"Animal": ["Bark", "Meow"], "Natural_sounds": ["Rain", "Wind"]}
SEEN, UNSEEN = ["Bark", "Meow"], ["Rain", "Wind"]
RESAMPLES = 200
#: (model, variation, noise): a frozen base with two variations, a head on each variation
#: (less noise: a better representation of the same clips), and a model without a head
SYSTEMS = (("basey", "v1", 2.0), ("basey", "v2", 3.0), ("head-basey", "v1", 0.8),
           ("head-basey-cd", "v2", 1.6), ("other", "only", 2.5))


def _meta(name: str, base: str, variation: str, class_disjoint: bool = False) -> dict:
    """A head.json dict as the workflow writes it."""
    return {"name": name, "base": base, "variation": variation, "aggregation": "mean",
            "train_collection": "demo-train", "class_disjoint": class_disjoint,
            "train_labels": SEEN if class_disjoint else LABELS, "heldout_labels": UNSEEN if class_disjoint else [],
            "spec": {"arch": "mlp", "dim": 16}, "fingerprint": f"sha256:{name}", "n_train": 30, "n_val": 8,
            "best_epoch": 3, "seconds": 0.5}


HEADS = {"head-basey": _meta("head-basey", "basey", "v1"),
         "head-basey-cd": _meta("head-basey-cd", "basey", "v2", class_disjoint=True)}


def build_heads_tree(root: Path) -> tuple[list[L.SettingFiles], Path]:
    """``<root>/demo/metrics/...`` for :data:`SYSTEMS` (48 clips, 4 labels, some clips
    with two labels; clip-level vectors, PCA 5 and none, every search, cutoffs 5 and
    15) and ``<root>/demo/tables/`` written by :func:`soundsim.tables.write_tables`."""
    rng = np.random.default_rng(3)
    fnames = [f"c{i:02d}" for i in range(48)]
    labels = [[LABELS[i % 4]] + ([LABELS[(i + 1) % 4]] if i % 7 == 0 else []) for i in range(48)]
    clips = pd.DataFrame({"fname": fnames, "labels": labels})
    tree = L.Layout(root, "demo")
    centres = {lab: rng.standard_normal(12) * 2 for lab in LABELS}
    for model, variation, noise in SYSTEMS:
        data = [(sum(centres[lab] for lab in labs) + noise * rng.standard_normal((1, 12))).astype(np.float32)
                for labs in labels]
        h5 = write_embeddings(root / f"{model}-{variation}.h5", fnames, data,
                              {"model": model, "variation": variation, "level": "clip"})
        evaluate_grid(read_embeddings(h5), clips, FAMILIES, pcas=[5, "none"], cutoffs=[5, 15],
                      out_dir=tree.metrics_variation_dir(model, variation), write_rankings_files=False)
    settings = tree.find_settings()
    T.write_tables(settings, tree.tables_dir, registry={}, n_resamples=RESAMPLES)
    return settings, tree.tables_dir


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[list[L.SettingFiles], Path]:
    return build_heads_tree(tmp_path_factory.mktemp("heads"))


@pytest.fixture(scope="module")
def settings(tree) -> list[L.SettingFiles]:
    return tree[0]


@pytest.fixture(scope="module")
def models(tree) -> pd.DataFrame:
    return T.read_table(tree[1] / "models.csv")


@pytest.fixture(scope="module")
def heads(settings, models) -> pd.DataFrame:
    return T.heads_table(settings, models, HEADS, n_resamples=RESAMPLES)


def _files(settings, model: str, variation: str, setting: str) -> L.SettingFiles:
    return next(s for s in settings if s.key == (model, variation, setting))


def test_columns_rows_and_layout(heads):
    assert list(heads.columns) == T.HEADS_COLUMNS
    assert set(T.HEADS_COLUMNS) >= {"head", "base", "variation", "subset", "metric", "head_setting", "base_setting",
                                    "head_value", "head_lo", "head_hi", "base_value", "base_lo", "base_hi", "diff",
                                    "diff_lo", "diff_hi", "p", "p_holm", "significant", "n_labels", "n_queries",
                                    "class_disjoint", "train_collection", "fingerprint"}
    # one row per head x subset x metric, in the order of the heads, subsets, metrics
    # (the paper's metrics, then the retrieval panel's)
    from soundsim import measures
    from soundsim import panel as PN

    metrics = ("map@5", "map@15", "mr1", *[measures.average_of(c) for c in PN.columns()])
    want = [("head-basey", "all", m) for m in metrics]
    want += [("head-basey-cd", s, m) for s in ("all", "seen", "unseen") for m in metrics]
    assert list(zip(heads["head"], heads["subset"], heads["metric"], strict=True)) == want
    assert set(heads["base"]) == {"basey"}
    assert heads.set_index("head")["variation"].groupby(level=0).first().to_dict() == {"head-basey": "v1",
                                                                                       "head-basey-cd": "v2"}
    cd = heads[heads["head"] == "head-basey-cd"]
    assert cd["class_disjoint"].all() and not heads[heads["head"] == "head-basey"]["class_disjoint"].any()
    assert set(heads["train_collection"]) == {"demo-train"}
    assert heads.groupby("head")["fingerprint"].first().to_dict() == {h: f"sha256:{h}" for h in HEADS}
    assert L.TABLES["heads"] == "heads.csv" and "heads" not in L.SUMMARY_TABLES
    assert L.HEAD_FIGURES == ("heads", "heads_training")


def test_all_subset_equals_models_csv(heads, models):
    """The head's all-subset value and interval are models.csv's best-setting values."""
    m = models.set_index("model")
    for head, r in heads[heads["subset"] == "all"].set_index("head").groupby(level=0):
        row = m.loc[head]
        assert (r["head_setting"] == row["best_setting"]).all()
        for _, x in r.iterrows():
            metric = x["metric"]
            assert x["head_value"] == pytest.approx(row[f"best_{metric}"], abs=1e-12), (head, metric)
            assert x["head_lo"] == pytest.approx(row[f"best_{metric}_lo"], abs=1e-9)
            assert x["head_hi"] == pytest.approx(row[f"best_{metric}_hi"], abs=1e-9)
            assert x["n_queries"] > 0 and x["n_labels"] == 4
    # the base at its best setting of models.csv: the head on the base's best variation (v1)
    one = heads[(heads["head"] == "head-basey") & (heads["subset"] == "all")].set_index("metric")
    assert m.loc["basey", "variation"] == "v1"
    assert (one["base_setting"] == m.loc["basey", "best_setting"]).all()
    assert one.loc["map@15", "base_value"] == pytest.approx(m.loc["basey", "best_map@15"], abs=1e-12)


def test_base_on_another_variation_is_compared_at_that_variations_best_setting(heads, tree):
    """head-basey-cd was trained on basey/v2, which is not basey's best variation in models.csv:
    it is compared with v2 at v2's best setting (best_settings' tie rule over v2's settings)."""
    grid = T.read_table(tree[1] / "all_settings.csv")
    v2 = grid[(grid["model"] == "basey") & (grid["variation"] == "v2")]
    best = T.best_settings(v2).iloc[0]
    r = heads[(heads["head"] == "head-basey-cd") & (heads["subset"] == "all")].set_index("metric")
    assert (r["base_setting"] == best["setting"]).all()
    assert r.loc["map@15", "base_value"] == pytest.approx(best["map@15"], abs=1e-12)
    assert r.loc["mr1", "base_value"] == pytest.approx(best["mr1"], abs=1e-12)


def test_seen_and_unseen_are_means_over_their_labels_of_per_label_csv(heads, settings):
    assert set(heads.loc[heads["head"] == "head-basey", "subset"]) == {"all"}
    cd = heads[heads["head"] == "head-basey-cd"]
    for subset, labels in (("seen", SEEN), ("unseen", UNSEEN)):
        rows = cd[cd["subset"] == subset].set_index("metric")
        assert (rows["n_labels"] == 2).all()
        for side, model in (("head", "head-basey-cd"), ("base", "basey")):
            setting = rows[f"{side}_setting"].iloc[0]
            per_label = pd.read_csv(_files(settings, model, "v2", setting).per_label).set_index("label")
            for metric in ("map@5", "map@15", "mr1"):
                want = per_label.loc[labels, metric].mean()  # per_label.csv: 6 decimals
                assert rows.loc[metric, f"{side}_value"] == pytest.approx(want, abs=6e-7), (subset, side, metric)
    # the subsets' queries are the all-subset's queries, split by label
    all_n = cd[(cd["subset"] == "all") & (cd["metric"] == "map@15")]["n_queries"].iloc[0]
    parts = cd[(cd["subset"] != "all") & (cd["metric"] == "map@15")]["n_queries"].sum()
    assert parts == all_n


def test_difference_test_and_holm_family(heads, tree):
    assert np.allclose(heads["diff"], heads["head_value"] - heads["base_value"], atol=1e-12, rtol=0)
    assert heads["same_queries"].all()
    assert (heads["diff_lo"] <= heads["diff"] + 1e-12).all() and (heads["diff"] <= heads["diff_hi"] + 1e-12).all()
    assert (heads["p_holm"] >= heads["p"] - 1e-15).all() and heads["p"].between(0, 1).all()
    # Holm over every head's test of one subset and metric
    for (_, _), g in heads.groupby(["subset", "metric"]):
        np.testing.assert_array_equal(g["p_holm"].to_numpy(), St.holm(g["p"].to_numpy()))
    assert (heads["significant"] == (heads["p_holm"] < 0.05)).all()
    # the heads are the less noisy representation: better on MAP@15 over every label
    all15 = heads[(heads["subset"] == "all") & (heads["metric"] == "map@15")]
    assert (all15["diff"] > 0).all()
    for r in heads.itertuples(index=False):
        head_better = r.diff < 0 if r.metric == "mr1" else r.diff > 0
        assert r.better == (("head" if head_better else "base") if r.significant else "")
    # the same paired test as pairwise.csv's (best comparison), another Holm family
    pw = T.read_table(tree[1] / "pairwise.csv")
    row = pw[(pw["comparison"] == "best") & (pw["metric"] == "map@15") & (pw["a"] == "basey")
             & (pw["b"] == "head-basey")].iloc[0]
    ours = all15[all15["head"] == "head-basey"].iloc[0]
    assert ours["diff"] == pytest.approx(-row["diff"], abs=1e-12)
    assert ours["p"] == pytest.approx(row["p"], rel=1e-9)
    assert ours["p_holm"] <= row["p_holm"]  # 2 tests here, every pair of 3 models there


def test_missing_base_head_or_files_are_left_out_with_a_warning(settings, models, caplog):
    ghost = {"head-ghost": _meta("head-ghost", "ghost", "v1"),
             "head-orphan": _meta("head-orphan", "basey", "v1")}  # a head that was not evaluated
    with caplog.at_level(logging.WARNING, logger="soundsim.tables"):
        out = T.heads_table(settings, models, {**ghost, "head-basey": HEADS["head-basey"]}, n_resamples=50)
    assert set(out["head"]) == {"head-basey"}
    text = caplog.text
    assert "ghost is not in models.csv; head head-ghost left out" in text
    assert "head-orphan is not in models.csv; head head-orphan left out" in text
    # the head's settings not given (or their per_query.parquet absent): left out
    caplog.clear()
    without = [s for s in settings if s.model != "head-basey"]
    with caplog.at_level(logging.WARNING, logger="soundsim.tables"):
        out = T.heads_table(without, models, {"head-basey": HEADS["head-basey"]}, n_resamples=50)
    assert out.empty and list(out.columns) == T.HEADS_COLUMNS
    assert "head-basey/v1/" in caplog.text and "head head-basey left out" in caplog.text


def test_per_query_file_missing_on_disk(tmp_path, settings, models, caplog):
    src = _files(settings, "basey", "v1", models.set_index("model").loc["basey", "best_setting"])
    copy = L.setting_files(tmp_path / "metrics", *src.key)
    shutil.copytree(src.dir, copy.dir)
    copy.per_query.unlink()
    mine = [copy if s.key == src.key else s for s in settings]
    with caplog.at_level(logging.WARNING, logger="soundsim.tables"):
        out = T.heads_table(mine, models, {"head-basey": HEADS["head-basey"]}, n_resamples=50)
    assert out.empty
    assert f"{copy.per_query} not found; head head-basey left out" in caplog.text


def test_malformed_metadata_is_a_clear_error(settings, models):
    with pytest.raises(T.TablesError, match="head 'head-x': head.json lacks base"):
        T.heads_table(settings, models, {"head-x": {"variation": "v1"}})
    with pytest.raises(T.TablesError, match="'heldout_labels' is not a list"):
        T.heads_table(settings, models, {"head-basey": {**HEADS["head-basey"], "heldout_labels": "Rain"}})
    with pytest.raises(T.TablesError, match="heads_table: input lacks column"):
        T.heads_table(settings, models.drop(columns="best_setting"), HEADS)


def test_a_subset_without_queries_is_left_out(settings, models, caplog):
    """Held-out labels the collection does not have: the unseen subset has no queries."""
    meta = {**HEADS["head-basey-cd"], "heldout_labels": ["Thunder"], "train_labels": LABELS}
    with caplog.at_level(logging.WARNING, logger="soundsim.tables"):
        out = T.heads_table(settings, models, {"head-basey-cd": meta}, n_resamples=50)
    assert list(dict.fromkeys(out["subset"])) == ["all", "seen"]
    assert "subset unseen: no comparable queries" in caplog.text


def test_written_and_read_back(heads, tmp_path):
    path = write_csv_atomic(heads, L.table_file(tmp_path, "heads"))
    back = T.read_table(path)
    assert path.name == "heads.csv"
    pd.testing.assert_frame_equal(back[["head", "base", "variation", "subset", "metric", "head_setting",
                                        "base_setting", "train_collection", "fingerprint", "better"]],
                                  heads[["head", "base", "variation", "subset", "metric", "head_setting",
                                         "base_setting", "train_collection", "fingerprint", "better"]])
    np.testing.assert_allclose(back["diff"], heads["diff"], rtol=0, atol=0)
    assert back["significant"].dtype == bool and not math.isnan(back["p_holm"].iloc[0])
