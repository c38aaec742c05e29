"""The results layout (soundsim.layout): setting names, paths, declared inputs, the summary.json reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soundsim import layout as L
from soundsim.evaluate import evaluate_grid, setting_name
from soundsim.store import write_embeddings


def test_setting_name_round_trip():
    name = L.setting_name("mean", 100, "mcss")
    assert name == "agg-mean_pca-100_search-mcss" == L.setting_name("mean", "100", "mcss")
    assert L.setting_name("none", None, "nns") == "agg-none_pca-none_search-nns"
    st = L.parse_setting(name)
    assert (st.aggregation, st.pca, st.search) == ("mean", "100", "mcss")
    assert st.name == name and st.processing == "agg-mean_pca-100" == L.processing_name("mean", 100)
    assert setting_name("max", None, "mips") == L.setting_name("max", "none", "mips")  # evaluate delegates
    for bad in ("agg-mean_pca-100", "mean/100/mcss", "agg-mean_pca-1 0_search-mcss", "agg-../_pca-1_search-x", ""):
        assert not L.is_setting_name(bad)
        with pytest.raises(L.LayoutError, match="is not a setting name"):
            L.parse_setting(bad)


def test_layout_paths_and_wildcard_patterns():
    lay = L.Layout("res", "demo")
    assert lay.dir == Path("res/demo") and L.Layout.at("res/demo") == lay
    assert L.Layout.from_config({"results": "res", "collection": {"name": "demo"}}) == lay
    assert lay.manifest == Path("res/demo/manifest.csv") and lay.families == Path("res/demo/families.json")
    assert lay.embeddings("aisfx", "x") == Path("res/demo/embeddings/aisfx/x.h5")
    assert lay.shards("aisfx", "x", 2) == [Path("res/demo/embeddings/aisfx/x.shard-1-of-2.h5"),
                                           Path("res/demo/embeddings/aisfx/x.shard-2-of-2.h5")]
    assert lay.shard("aisfx", "x", "{scatteritem}") == Path("res/demo/embeddings/aisfx/x.shard-{scatteritem}.h5")
    assert lay.extract_log("aisfx", "x", "2-of-2") == Path("res/demo/logs/extract/aisfx/x.shard-2-of-2.log")
    assert lay.processed("aisfx", "x", "mean", None) == Path("res/demo/processed/aisfx/x/agg-mean_pca-none.h5")
    f = lay.setting_files("aisfx", "x", "agg-mean_pca-100_search-mcss")
    assert f.summary == Path("res/demo/metrics/aisfx/x/agg-mean_pca-100_search-mcss/summary.json")
    assert [f.file(k).name for k in L.METRIC_FILES] == [
        "per_label.csv", "per_family.csv", "summary.json", "rankings.h5", "per_query.parquet"]
    assert f.id == "aisfx/x/agg-mean_pca-100_search-mcss" and f.collection == "demo"
    assert lay.system_files(f.id) == f
    assert lay.table("best_settings") == Path("res/demo/tables/best_settings.csv")
    assert lay.figure(L.grid_figure_name("a b", "v/1"), "pdf") == Path("res/demo/figures/grid/a_b__v_1.pdf")
    assert lay.figure(L.grid_heatmap_name("a b", "v/1")) == Path("res/demo/figures/grid/a_b__v_1_heatmap.png")
    assert "precision_at_k" in L.FIGURES
    # the report's table pages and the CSV each one shows
    assert [lay.table_page(n).name for n in L.TABLE_PAGES] == [f"{n}.html" for n in L.TABLE_PAGES]
    assert lay.table_page("collection_labels") == Path("res/demo/tables/collection_labels.html")
    assert lay.table_page_source("collection_labels") == lay.labels == Path("res/demo/labels.csv")
    assert lay.table_page_source("labels") == Path("res/demo/tables/labels.csv")
    assert lay.table_page_source("models") == lay.table("models")
    with pytest.raises(L.LayoutError, match="'models_md' is not a table page; known pages: models, best_settings"):
        lay.table_page("models_md")
    assert lay.listening_db == Path("res/demo/listening/ratings.sqlite")
    assert lay.table("listening_metrics") == Path("res/demo/tables/listening_metrics.csv")
    assert lay.figure_files(L.LISTENING_METRICS_FIGURE) == [Path("res/demo/figures/listening_metrics.png"),
                                                           Path("res/demo/figures/listening_metrics.pdf")]
    assert lay.evaluate_log("m", "v", "max", 5) == Path("res/demo/logs/evaluate/m/v/agg-max_pca-5.log")
    assert lay.import_log("m", "v") == Path("res/demo/logs/extract/m/v.import.log")
    assert lay.import_benchmark("m", "v") == Path("res/demo/benchmarks/import/m/v.tsv")
    with pytest.raises(L.LayoutError, match="'nope' is not a table; known tables: all_settings"):
        lay.table("nope")
    # Snakemake wildcards in, rule patterns out
    pat = L.Layout("res", "{collection}")
    assert str(pat.processed("{model}", "{variation}", "{aggregation}", "{pca}")) == \
        "res/{collection}/processed/{model}/{variation}/agg-{aggregation}_pca-{pca}.h5"
    assert str(pat.setting_files("{model}", "{variation}", L.setting_name("{a}", "{p}", "mcss")).summary) == \
        "res/{collection}/metrics/{model}/{variation}/agg-{a}_pca-{p}_search-mcss/summary.json"


def test_setting_files_of_and_settings_from_inputs(tmp_path):
    lay = L.Layout(tmp_path, "c")
    a = lay.setting_files("m", "v", "agg-mean_pca-5_search-mcss")
    b = lay.setting_files("m", "v", "agg-max_pca-5_search-mcss")
    assert L.setting_files_of(a.per_query) == a
    with pytest.raises(L.LayoutError, match="not a metrics file of a setting folder"):
        L.setting_files_of(tmp_path / "c" / "metrics" / "m" / "v" / "notasetting" / "summary.json")
    with pytest.raises(L.LayoutError, match="not a metrics file"):
        L.setting_files_of(a.dir / "other.csv")
    got = L.settings_from_inputs(summary=[a.summary, b.summary], per_query=[b.per_query, a.per_query])
    assert got == [a, b]
    with pytest.raises(L.LayoutError, match=r"agg-max_pca-5_search-mcss: its per_query.parquet not given"):
        L.settings_from_inputs(summary=[a.summary, b.summary], per_query=[a.per_query])
    with pytest.raises(L.LayoutError, match="given as per_label but is not a per_label.csv"):
        L.settings_from_inputs(summary=[a.summary], per_label=[a.per_family])
    with pytest.raises(L.LayoutError, match="not a metrics file kind"):
        L.settings_from_inputs(summaries=[a.summary])
    assert L.parse_system_id(a.id) == ("m", "v", "agg-mean_pca-5_search-mcss")
    for bad in ("m/v", "m/v/x", "/v/agg-mean_pca-5_search-mcss", "a/m/v/agg-mean_pca-5_search-mcss"):
        with pytest.raises(L.LayoutError, match="is not of the form"):
            L.parse_system_id(bad)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """metrics/<model>/<variation>/ of a real evaluation: 2 settings."""
    root = tmp_path_factory.mktemp("layout")
    rng = np.random.default_rng(0)
    fnames = [f"c{i}" for i in range(12)]
    labels = [["A" if i % 2 else "B"] for i in range(12)]
    h5 = write_embeddings(root / "e.h5", fnames, rng.standard_normal((12, 4)).astype(np.float32),
                          {"model": "m", "variation": "v", "level": "clip"})
    from soundsim.store import read_embeddings

    evaluate_grid(read_embeddings(h5), pd.DataFrame({"fname": fnames, "labels": labels}), {}, aggregations=["none"],
                  pcas=["none"], searches=["mcss", "nns"], out_dir=root / "res" / "c" / "metrics" / "m" / "v")
    return root / "res"


def test_find_settings_and_read_summary(evaluated):
    lay = L.Layout(evaluated, "c")
    found = lay.find_settings()
    assert [f.setting for f in found] == ["agg-none_pca-none_search-mcss", "agg-none_pca-none_search-nns"]
    assert lay.find_settings("rankings") == found
    assert L.find_settings(evaluated / "nowhere") == []
    s = L.read_summary(found[0].summary)
    raw = json.loads(found[0].summary.read_text())
    assert s.setting == L.Setting("none", "none", "mcss") and s.counts["n_clips"] == 12
    assert s.macro == {k: float(v) for k, v in raw["macro"].items()} and "map@15" in s.macro
    assert s.embeddings["level"] == "clip" and s.data == raw and s.path == found[0].summary


def test_read_summary_errors_name_the_file(evaluated, tmp_path):
    good = json.loads(L.Layout(evaluated, "c").find_settings()[0].summary.read_text())
    path = tmp_path / "m" / "v" / "agg-none_pca-none_search-mcss" / "summary.json"
    path.parent.mkdir(parents=True)
    with pytest.raises(L.SummaryError, match=f"{path}: summary.json not found"):
        L.read_summary(path)

    def bad(content: object, why: str) -> None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(L.SummaryError, match=rf"{path}: malformed summary.json \(.*{why}"):
            L.read_summary(path)

    bad("{ nope", "Expecting")
    bad([1, 2], "expected a JSON object, got list")
    bad({**good, "macro": None}, "no 'macro' object")
    bad({**good, "counts": {}}, "'counts' lacks n_clips")
    bad({**good, "setting": {"aggregation": "none", "pca": "none"}}, "'setting' lacks search")
    bad({**good, "macro": {"n": 3}}, "'macro' has no map@N / mr1 values")
    bad({**good, "macro": {"map@15": "high"}}, "'macro.map@15': expected a number, got 'high'")
    bad({**good, "micro": [1]}, "'micro' is not an object")
    bad({**good, "setting": {**good["setting"], "search": "nns"}},
        "its setting agg-none_pca-none_search-nns does not match its folder agg-none_pca-none_search-mcss")
    path.write_text(json.dumps({**good, "macro": {**good["macro"], "mr1": None}, "family_mean": None}))
    s = L.read_summary(path)
    assert math.isnan(s.macro["mr1"]) and s.family_mean == {}


def test_shard_items_are_snakemakes_scatteritems():
    """Shard k (0-based) of n is named like Snakemake's {scatteritem}: '<k+1>-of-<n>', and parsed back."""
    assert [L.shard_item(k, 3) for k in range(3)] == ["1-of-3", "2-of-3", "3-of-3"]
    assert [L.parse_shard_item(L.shard_item(k, 3)) for k in range(3)] == [(0, 3), (1, 3), (2, 3)]
    for bad in ("0-of-2", "3-of-2", "1of2", "x-of-2"):
        with pytest.raises(L.LayoutError, match="is not a shard name"):
            L.parse_shard_item(bad)
    with pytest.raises(L.LayoutError, match=r"shard 2 is not in 0\.\.1"):
        L.shard_item(2, 2)
