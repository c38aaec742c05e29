"""Result tables (soundsim.tables) over metrics folders written by the real evaluator."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soundsim import layout as L
from soundsim import tables as T
from soundsim.evaluate import evaluate_grid
from soundsim.models import ModelInfo, PaperInfo
from soundsim.store import read_embeddings, write_embeddings

LABELS = ["Bark", "Meow", "Rain", "Wind"]
FAMILIES = {"Animal": ["Bark", "Meow"], "Natural_sounds": ["Rain", "Wind"]}
PCAS = [5, "none"]  # PCA 100 deliberately absent: the paper's fixed setting is missing


def _registry() -> dict[str, ModelInfo]:
    common = dict(sample_rate=16000, env="soundsim", description="toy")
    return {
        "framey": ModelInfo(name="framey", variations=("v1", "v2"), default_variation="v1", level="frame", hop=0.5,
                            dim={"v1": 8, "v2": 8}, **common),
        "clippy": ModelInfo(name="clippy", variations=("only",), default_variation="only", level="clip", hop=None,
                            dim=8, paper=PaperInfo("A & L", "Contrastive alignment", "31M", "2.5M", 512), **common),
    }


def build_metrics(root: Path, panel: bool = False) -> Path:
    """<root>/metrics/<model>/<variation>/<setting>/ for a frame-level model with
    two variations (3 aggregations) and a clip-level one, 40 clips, 4 labels, 2
    families, PCA 5 and none, every search, cutoffs 5 and 15."""
    rng = np.random.default_rng(0)
    fnames = [f"c{i:02d}" for i in range(40)]
    labels = [[LABELS[i % 4]] + (["Rain"] if i % 9 == 0 and i % 4 != 2 else []) for i in range(40)]
    clips = pd.DataFrame({"fname": fnames, "labels": labels})
    metrics = root / "metrics"
    for model, variation, noise, frames in (("framey", "v1", 1.0, 3), ("framey", "v2", 3.0, 3),
                                            ("clippy", "only", 2.0, 1)):
        centres = {lab: rng.standard_normal(8) * 2 for lab in LABELS}
        data = [
            (sum(centres[lab] for lab in labs) + noise * rng.standard_normal((int(rng.integers(1, frames + 1)), 8)))
            .astype(np.float32)
            for labs in labels
        ]
        h5 = write_embeddings(root / f"{model}-{variation}.h5", fnames, data,
                              {"model": model, "variation": variation,
                               "level": "frame" if frames > 1 else "clip"})
        evaluate_grid(read_embeddings(h5), clips, FAMILIES, pcas=PCAS, cutoffs=[5, 15],
                      out_dir=metrics / model / variation, write_rankings_files=False, panel=panel)
    return metrics


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory) -> Path:
    return build_metrics(tmp_path_factory.mktemp("tables"))


@pytest.fixture(scope="module")
def settings(metrics_dir) -> list[L.SettingFiles]:
    return L.find_settings(metrics_dir)


@pytest.fixture(scope="module")
def df(settings) -> pd.DataFrame:
    return T.collect(settings)


def _summary(metrics_dir: Path, model: str, variation: str, setting: str) -> dict:
    return json.loads((metrics_dir / model / variation / setting / "summary.json").read_text())


def _same(a, b) -> bool:
    a = math.nan if a is None else float(a)
    b = math.nan if b is None else float(b)
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-15)


# --------------------------------------------------------------------------- collect


def test_collect_every_value_traces_back_to_its_summary(metrics_dir, df):
    assert len(df) == 2 * 3 * 2 * 3 + 1 * 2 * 3  # framey: 2 var x 3 agg x 2 pca x 3 search; clippy: none x 2 x 3
    metric_cols = ["map@5", "map@15", "mr1"]
    assert list(df.columns[-9:]) == metric_cols + [f"family_{m}" for m in metric_cols] + [
        f"micro_{m}" for m in metric_cols]
    for _, r in df.iterrows():
        s = _summary(metrics_dir, r["model"], r["variation"], r["setting"])
        assert (r["aggregation"], r["pca"], r["search"]) == (
            s["setting"]["aggregation"], s["setting"]["pca"], s["setting"]["search"])
        assert r["n_clips"] == s["counts"]["n_clips"] == 40
        assert r["level"] == s["embeddings"]["level"] and r["dim"] == s["embeddings"]["dim"]
        for prefix, key in (("", "macro"), ("family_", "family_mean"), ("micro_", "micro")):
            for m in metric_cols:
                assert _same(r[prefix + m], s[key][m]), (r["setting"], prefix + m)


def test_collect_is_sorted_in_grid_order(df):
    fr = df[(df["model"] == "framey") & (df["variation"] == "v1")]
    assert list(dict.fromkeys(fr["aggregation"])) == ["mean", "median", "max"]
    assert list(fr["pca"].iloc[:6]) == ["5"] * 3 + ["none"] * 3  # numeric PCA first, none last
    assert list(fr["search"].iloc[:3]) == ["mips", "mcss", "nns"]
    assert list(dict.fromkeys(df["model"])) == ["clippy", "framey"]
    assert set(df.loc[df["model"] == "clippy", "aggregation"]) == {"none"}
    pd.testing.assert_frame_equal(T.all_settings(df), df)


def test_collect_errors_name_the_file(tmp_path, metrics_dir):
    with pytest.raises(T.TablesError, match="no evaluated settings given"):
        T.collect([])
    nowhere = L.setting_files(tmp_path / "nowhere", "clippy", "only", "agg-none_pca-5_search-mcss")
    with pytest.raises(L.SummaryError, match=r"nowhere/clippy/only/agg-none_pca-5_search-mcss/summary\.json: "
                                             "summary.json not found"):
        T.collect([nowhere])
    bad = tmp_path / "bad"
    shutil.copytree(metrics_dir / "clippy", bad / "clippy")
    target = bad / "clippy" / "only" / "agg-none_pca-5_search-mcss" / "summary.json"
    target.write_text("{ not json")
    with pytest.raises(L.SummaryError, match=r"agg-none_pca-5_search-mcss/summary\.json: malformed"):
        T.collect(L.find_settings(bad))
    target.write_text(json.dumps({"setting": {"aggregation": "none", "pca": "5", "search": "mcss"},
                                  "counts": {"n_clips": 3}}))
    with pytest.raises(L.SummaryError, match="no 'macro' object"):
        T.collect(L.find_settings(bad))
    s = _summary(metrics_dir, "clippy", "only", "agg-none_pca-5_search-mcss")
    s["macro"]["map@5"] = "high"
    target.write_text(json.dumps(s))
    with pytest.raises(L.SummaryError, match=r"summary\.json: malformed.*'high'"):
        T.collect(L.find_settings(bad))
    s["macro"]["map@5"] = 0.5
    s["setting"]["pca"] = "7"  # a summary copied into another setting's folder
    target.write_text(json.dumps(s))
    with pytest.raises(L.SummaryError, match="its setting agg-none_pca-7_search-mcss does not match its folder"):
        T.collect(L.find_settings(bad))


def test_collect_reads_only_the_given_settings(tmp_path, metrics_dir, settings, df):
    """Settings not given are not read, even when their folders sit beside the given ones."""
    d = tmp_path / "m"
    shutil.copytree(metrics_dir, d)
    (d / "clippy" / "only" / "agg-none_pca-5_search-nns" / "summary.json").write_text("{ broken")
    given = [s for s in L.find_settings(d) if s.setting != "agg-none_pca-5_search-nns" and s.model == "clippy"]
    out = T.collect(given)
    assert sorted(out["setting"]) == sorted(s.setting for s in given) and set(out["model"]) == {"clippy"}
    want = df[(df.model == "clippy") & (df.setting != "agg-none_pca-5_search-nns")].reset_index(drop=True)
    pd.testing.assert_frame_equal(out, want)


def test_collect_mixed_cutoffs_give_nan(tmp_path, metrics_dir):
    d = tmp_path / "m"
    shutil.copytree(metrics_dir / "clippy", d / "clippy")
    f = d / "clippy" / "only" / "agg-none_pca-5_search-mips" / "summary.json"
    s = json.loads(f.read_text())
    s["macro"]["map@150"] = 0.5
    f.write_text(json.dumps(s))
    out = T.collect(L.find_settings(d))
    assert T.metric_columns(out) == ["map@5", "map@15", "map@150", "mr1"]
    assert out["map@150"].notna().sum() == 1


# --------------------------------------------------------------------------- best settings


def test_best_settings_picks_the_max_map15(df):
    best = T.best_settings(df)
    assert list(best["model"]) == ["clippy", "framey"]
    for _, r in best.iterrows():
        g = df[df["model"] == r["model"]]
        assert r["map@15"] == g["map@15"].max()
        hit = g[(g["variation"] == r["variation"]) & (g["setting"] == r["setting"])]
        assert len(hit) == 1 and hit["map@15"].iloc[0] == r["map@15"]
        assert r["n_settings"] == len(g) and r["n_variations"] == g["variation"].nunique()


def test_best_settings_tie_rule():
    rows = []
    for v, a, p, s, m15, m150, mr1 in [
        ("b", "mean", "none", "nns", 0.5, 0.3, 2.0),
        ("b", "mean", "100", "mcss", 0.5, 0.3, 2.0),  # full tie with the row above: earlier in grid order wins
        ("a", "max", "100", "mips", 0.5, 0.2, 1.0),  # lower MAP@150 loses
        ("a", "median", "200", "mcss", 0.5, 0.3, 3.0),  # higher MR1 loses
        ("a", "mean", "100", "mcss", math.nan, 0.9, 0.0),  # NaN MAP@15 last
    ]:
        rows.append({"model": "m", "variation": v, "aggregation": a, "pca": p, "search": s,
                     "setting": T.setting_name(a, p, s), "map@15": m15, "map@150": m150, "mr1": mr1})
    df = pd.DataFrame(rows)
    for _ in range(3):  # input order does not matter
        best = T.best_settings(df.sample(frac=1.0, random_state=_)).iloc[0]
        assert (best["variation"], best["setting"]) == ("b", "agg-mean_pca-100_search-mcss")


# --------------------------------------------------------------------------- models (Table II)


def test_models_table_fixed_setting_missing_is_nan_with_note(df):
    models = T.models_table(df, _registry())
    assert list(models["model"]) == ["clippy", "framey"]
    assert models[["map@5", "map@15", "mr1"]].isna().all().all()
    for _, r in models.iterrows():
        assert "was not evaluated" in r["note"] and "pca-100" in r["note"]
    assert list(models["setting"]) == ["agg-none_pca-100_search-mcss", "agg-mean_pca-100_search-mcss"]
    assert models[["best_map@15", "best_mr1"]].notna().all().all()


def test_models_table_values_equal_the_fixed_setting_summary(metrics_dir, df):
    models = T.models_table(df, _registry(), pca="5").set_index("model")
    best = T.best_settings(df).set_index("model")
    for model, agg in (("framey", "mean"), ("clippy", "none")):
        r = models.loc[model]
        assert r["variation"] == best.loc[model, "variation"]  # the model's best variation
        assert r["setting"] == f"agg-{agg}_pca-5_search-mcss" and r["note"] == ""
        s = _summary(metrics_dir, model, r["variation"], r["setting"])
        for m in ("map@5", "map@15", "mr1"):
            assert _same(r[m], s["macro"][m])
        b = _summary(metrics_dir, model, r["variation"], best.loc[model, "setting"])
        assert r["best_setting"] == best.loc[model, "setting"]
        for m in ("map@5", "map@15", "mr1"):
            assert _same(r[f"best_{m}"], b["macro"][m])
    # registry metadata: PaperInfo for clippy, '-' for framey; dims from the registry
    assert tuple(models.loc["clippy", ["modality", "objective", "params", "data_size"]]) == (
        "A & L", "Contrastive alignment", "31M", "2.5M")
    assert tuple(models.loc["framey", ["modality", "objective", "params", "data_size"]]) == ("-",) * 4
    assert models.loc["clippy", "dims"] == 8 and models.loc["framey", "dims"] == 8
    assert not any(c.startswith("paper_") for c in models.columns)


def test_models_table_unregistered_models_and_paper_columns(df):
    paper = pd.DataFrame({"modality": ["A"], "model": ["CLIPPY"], "objective": ["-"], "params": ["-"],
                          "data_size": ["-"], "dims": [1], "map@15": [0.42], "map@150": [0.2], "mr1": [12.0]})
    models = T.models_table(df, registry={}, paper=paper).set_index("model")
    assert models.loc["clippy", "paper_map@15"] == 0.42 and models.loc["clippy", "paper_mr1"] == 12.0
    assert math.isnan(models.loc["framey", "paper_map@15"])
    assert models.loc["framey", "modality"] == "-" and models.loc["framey", "dims"] == 8  # from the summaries
    assert list(models.columns)[-1] == "note"


# --------------------------------------------------------------------------- families / labels


def test_families_table_equals_per_family_csv(metrics_dir, settings, df):
    models = T.models_table(df, _registry(), pca="5")
    fam = T.families_table(settings, models)
    assert list(fam.columns) == ["model", "variation", "setting", "family", "n_labels", "map@5", "map@15", "mr1"]
    assert sorted(set(fam["model"])) == ["clippy", "framey"]
    for _, r in models.iterrows():
        got = fam[fam["model"] == r["model"]].drop(columns=["model", "variation", "setting"]).reset_index(drop=True)
        want = pd.read_csv(metrics_dir / r["model"] / r["variation"] / r["setting"] / "per_family.csv")
        want = want.sort_values("family").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
        assert set(fam.loc[fam["model"] == r["model"], "variation"]) == {r["variation"]}
    labels = T.labels_table(settings, models)
    assert len(labels) == 2 * len(LABELS) and set(labels["label"]) == set(LABELS)
    # a model whose setting is not among the given settings is left out (its files are not read)
    only_framey = [s for s in settings if s.model == "framey"]
    assert set(T.families_table(only_framey, models)["model"]) == {"framey"}
    assert set(T.labels_table(only_framey, models)["model"]) == {"framey"}


def test_families_table_without_fixed_setting_is_empty(settings, df):
    models = T.models_table(df, _registry())  # PCA 100 was not evaluated
    fam = T.families_table(settings, models)
    assert len(fam) == 0 and {"model", "family"} <= set(fam.columns)


# --------------------------------------------------------------------------- files


def test_write_tables(settings, df, tmp_path):
    paper = tmp_path / "table2.csv"
    paper.write_text("modality,model,objective,params,data_size,dims,map@15,map@150,mr1\nA,Clippy,-,-,-,8,0.1,0.05,40\n")
    paths = T.write_tables(settings, tmp_path / "tables", paper_table2=paper, registry=_registry())
    assert set(paths) == {"all_settings", "best_settings", "models", "models_md", "families", "labels",
                          "pairwise"}
    assert all(p.is_file() for p in paths.values())
    assert not list((tmp_path / "tables").glob(".*tmp*"))  # atomic writes leave no temporaries
    back = T.read_table(paths["all_settings"])
    # every macro metric is followed by its interval; the training-data flag is appended; nothing else changes
    assert len(back) == len(df) and [c for c in back.columns if not c.endswith(("_lo", "_hi"))] == list(
        df.columns) + ["trained_on_collection"]
    assert set(back["trained_on_collection"]) == {"unknown"}  # no dataset given, toy models declare nothing
    assert list(back.columns[back.columns.get_loc("map@5"):][:9]) == [
        "map@5", "map@5_lo", "map@5_hi", "map@15", "map@15_lo", "map@15_hi", "mr1", "mr1_lo", "mr1_hi"]
    assert (back["map@15_lo"] <= back["map@15"]).all() and (back["map@15"] <= back["map@15_hi"]).all()
    assert list(back["pca"].unique()) == ["5", "none"]
    for col in ("map@15", "family_mr1", "micro_map@5"):
        np.testing.assert_allclose(back[col].to_numpy(float), df[col].to_numpy(float), rtol=1e-12)
    models = T.read_table(paths["models"])
    assert models["note"].str.contains("was not evaluated").all()
    assert models.loc[models["model"] == "clippy", "paper_map@15"].iloc[0] == 0.1
    best = T.read_table(paths["best_settings"])
    assert list(best["model"]) == ["clippy", "framey"]
    md = paths["models_md"].read_text()
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 2  # header, separator, one row per model
    assert "| Model |" in rows[0] and "MAP@15" in rows[0] and "MR1" in rows[0]
    assert set(rows[1]) <= set("|-: ")
    assert rows[2].startswith("| clippy |") and rows[3].startswith("| framey |")
    assert "n/a" in rows[2] and "Notes:" in md  # NaN fixed-setting values and the reason
    assert T.read_table(paths["families"]).empty


def test_models_markdown_formats_values(df):
    md = T.models_markdown(T.models_table(df, _registry(), pca="5"), "toy")
    assert md.startswith("# ") and "(toy)" in md
    row = next(line for line in md.splitlines() if line.startswith("| clippy"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:6] == ["clippy", "A & L", "Contrastive alignment", "31M", "2.5M", "8"]
    assert all(len(c.split(".")[1]) in (2, 3) for c in cells if c.replace(".", "").isdigit() and "." in c)


# --------------------------------------------------------------------------- intervals and pairwise tests


def test_add_intervals_brackets_the_summary_values(settings, df):
    ci = T.add_intervals(df, settings, n_resamples=200, seed=3)
    for m in ("map@5", "map@15", "mr1"):
        lo, hi = ci[f"{m}_lo"].to_numpy(float), ci[f"{m}_hi"].to_numpy(float)
        v = ci[m].to_numpy(float)
        assert np.isfinite(lo).all() and (lo <= v + 1e-12).all() and (v <= hi + 1e-12).all(), m
        assert (hi > lo).any()
    again = T.add_intervals(df, settings, n_resamples=200, seed=3)
    pd.testing.assert_frame_equal(ci, again)  # same seed, same intervals
    other = T.add_intervals(df, settings, n_resamples=200, seed=4)
    assert not np.array_equal(ci["map@15_lo"].to_numpy(), other["map@15_lo"].to_numpy())


def test_add_intervals_without_per_query_files_is_nan(tmp_path, metrics_dir, df):
    copy = tmp_path / "metrics"
    shutil.copytree(metrics_dir, copy)
    for f in copy.rglob("per_query.parquet"):
        f.unlink()
    ci = T.add_intervals(df, L.find_settings(copy), n_resamples=50)
    assert ci["map@15_lo"].isna().all() and ci["mr1_hi"].isna().all()
    np.testing.assert_array_equal(ci["map@15"].to_numpy(), df["map@15"].to_numpy())
    # settings not given get no interval either (their per_query files are not read)
    ci = T.add_intervals(df, [s for s in L.find_settings(metrics_dir) if s.model == "clippy"], n_resamples=50)
    assert ci.loc[ci.model == "framey", "map@15_lo"].isna().all()
    assert ci.loc[ci.model == "clippy", "map@15_lo"].notna().all()


def test_models_and_best_tables_carry_intervals(settings, df):
    ci = T.add_intervals(df, settings, n_resamples=100)
    models = T.models_table(ci, _registry(), pca="5")
    best = T.best_settings(ci)
    for _, r in models.iterrows():
        hit = ci[(ci.model == r.model) & (ci.variation == r.variation) & (ci.setting == r.setting)].iloc[0]
        assert r["map@15_lo"] == hit["map@15_lo"] and r["mr1_hi"] == hit["mr1_hi"]
        b = best.set_index("model").loc[r.model]
        assert r["best_map@15_lo"] == b["map@15_lo"] and r["best_map@15_hi"] == b["map@15_hi"]
    md = T.models_markdown(models, "toy", 0.95)
    assert "95 % bootstrap confidence interval" in md
    row = next(line for line in md.splitlines() if line.startswith("| clippy"))
    assert row.count("[") == 6  # 3 metrics x (fixed, best)
    assert "_lo" not in md


def test_pairwise_table(settings, df):
    ci = T.add_intervals(df, settings, n_resamples=100)
    models = T.models_table(ci, _registry(), pca="5")  # PCA 5 as the fixed setting: every model has it
    pw = T.pairwise_table(settings, models, n_resamples=300, seed=1)
    assert list(pw["comparison"].unique()) == ["fixed", "best"]
    assert len(pw) == 2 * 3 * 1  # 2 models -> 1 pair, 3 metrics, 2 comparisons
    assert set(pw["metric"]) == {"map@5", "map@15", "mr1"}
    for r in pw.itertuples(index=False):
        side = models.set_index("model")
        col = "" if r.comparison == "fixed" else "best_"
        assert r.a_value == pytest.approx(side.loc[r.a, col + r.metric], rel=1e-9)  # same queries: the table values
        assert r.b_value == pytest.approx(side.loc[r.b, col + r.metric], rel=1e-9)
        assert r.diff == pytest.approx(r.a_value - r.b_value)
        assert r.diff_lo <= r.diff <= r.diff_hi and 0 <= r.p <= r.p_holm <= 1 and r.same_queries
    assert pw["p_holm"].equals(pw["p"])  # one pair per family: Holm changes nothing
    # the default models table (PCA 100 missing): only the best comparison remains
    pw2 = T.pairwise_table(settings, T.models_table(ci, _registry()), n_resamples=50)
    assert list(pw2["comparison"].unique()) == ["best"]
    assert T.pairwise_table(settings, T.models_table(ci[ci.model == "clippy"], _registry())).empty
    assert T.pairwise_table([s for s in settings if s.model == "clippy"], models).empty  # framey's files not given


def test_write_tables_pairwise_file(settings, tmp_path):
    paths = T.write_tables(settings, tmp_path / "tables", registry=_registry(), n_resamples=100, seed=2)
    pw = T.read_table(paths["pairwise"])
    assert list(pw.columns[:8]) == ["comparison", "metric", "a", "a_variation", "a_setting", "b", "b_variation",
                                    "b_setting"]
    assert set(pw["comparison"]) == {"best"} and len(pw) == 3
    assert pw["significant"].dtype == bool
    models = T.read_table(paths["models"])
    assert {"map@15_lo", "map@15_hi", "best_mr1_lo", "best_mr1_hi"} <= set(models.columns)
    best = T.read_table(paths["best_settings"])
    assert {"map@15_lo", "mr1_hi"} <= set(best.columns)


# --------------------------------------------------------------------------- ranks and tied groups


def test_write_tables_ranks_in_models_csv_and_md(settings, tmp_path):
    paths = T.write_tables(settings, tmp_path / "tables", registry=_registry(), n_resamples=200, seed=2)
    models = T.read_table(paths["models"])
    plain = T.models_table(T.add_intervals(T.collect(settings), settings, 200, seed=2), _registry())
    new = T.rank_columns("best") + T.rank_columns("fixed")
    assert new == ["rank", "rank_lo", "rank_hi", "p_first", "group",
                   "fixed_rank", "fixed_rank_lo", "fixed_rank_hi", "fixed_p_first", "fixed_group"]
    # every existing column unchanged and in its order, the rank columns before the note (still last)
    assert [c for c in models.columns if c not in new] == list(plain.columns)
    assert list(models.columns)[-1] == "note" and list(models.columns)[-11:-1] == new
    # best setting: framey (MAP@15 0.8) is clearly ahead of clippy (0.5) on these 40 clips
    m = models.set_index("model")
    order = m["best_map@15"].sort_values(ascending=False).index.tolist()
    assert [int(m.loc[x, "rank"]) for x in order] == [1, 2]
    for x in order:
        assert m.loc[x, "rank_lo"] <= m.loc[x, "rank"] <= m.loc[x, "rank_hi"] and 0 <= m.loc[x, "p_first"] <= 1
    pw = T.read_table(paths["pairwise"])
    sig = bool(pw[(pw.comparison == "best") & (pw.metric == "map@15")]["significant"].iloc[0])
    assert (m.loc[order[0], "group"] != m.loc[order[1], "group"]) == sig and m.loc[order[0], "group"] == "a"
    # the fixed setting (PCA 100) was not evaluated: no rank there
    assert m["fixed_rank"].isna().all() and (m["fixed_group"] == "").all()
    assert ",1,1,1," in paths["models"].read_text() or ",2,2,2," in paths["models"].read_text()  # integers
    md = paths["models_md"].read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Model"))
    assert "| best rank | best P(1st) | best group |" in header and "| Rank |" not in header
    row = next(line for line in md.splitlines() if line.startswith(f"| {order[0]} "))
    assert f"| {int(m.loc[order[0], 'rank'])} [{int(m.loc[order[0], 'rank_lo'])}, " in row
    assert "Group: models that share a letter are not significantly different" in md
    assert "rank_lo" not in md


def test_add_ranks_identical_models_share_a_group(tmp_path, metrics_dir):
    """A copy of clippy's results as another model: the two tie (same rank, the
    same interval, the same letter); the ranks use the same seed as the intervals."""
    copy = tmp_path / "metrics"
    shutil.copytree(metrics_dir, copy)
    shutil.copytree(copy / "clippy", copy / "clone")
    settings = L.find_settings(copy)
    df = T.add_intervals(T.collect(settings), settings, n_resamples=150, seed=5)
    models = T.models_table(df, _registry(), pca="5")  # PCA 5 as the fixed setting: both comparisons ranked
    pw = T.pairwise_table(settings, models, n_resamples=150, seed=5)
    ranked = T.add_ranks(models, settings, pw, n_resamples=150, seed=5).set_index("model")
    for prefix in ("", "fixed_"):
        a, b = ranked.loc["clippy"], ranked.loc["clone"]
        for f in ("rank", "rank_lo", "rank_hi", "p_first", "group"):
            assert a[prefix + f] == b[prefix + f], (prefix, f)
        assert a[prefix + "rank_lo"] <= b[prefix + "rank_hi"]  # overlapping intervals
        assert set(ranked[prefix + "rank"]) <= {1, 2, 3} and ranked[prefix + "group"].str.len().gt(0).all()
    # computed here when no pairwise table is given: the same
    pd.testing.assert_frame_equal(T.add_ranks(models, settings, None, n_resamples=150, seed=5).set_index("model"),
                                  ranked)
    md = T.models_markdown(ranked.reset_index(), "toy", 0.95)
    header = next(line for line in md.splitlines() if line.startswith("| Model"))
    # fixed ranks beside the fixed metrics, best ranks after the best metrics
    assert header.index("| Rank |") < header.index("Best setting") < header.index("best rank")
