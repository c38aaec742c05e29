"""Figures (soundsim.figures) over metrics folders written by the real evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("seaborn")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402

from soundsim import figures as F  # noqa: E402
from soundsim import layout as L  # noqa: E402
from soundsim import tables as T  # noqa: E402
from soundsim.evaluate import evaluate_grid  # noqa: E402
from soundsim.fileutil import write_csv_atomic  # noqa: E402
from soundsim.store import read_embeddings, write_embeddings, write_rankings  # noqa: E402

LABELS = ["Bark", "Meow", "Rain", "Wind"]
FAMILIES = {"Animal": ["Bark", "Meow"], "Natural_sounds": ["Rain", "Wind"]}


@pytest.fixture(scope="module")
def clips() -> pd.DataFrame:
    """40 clips, 10 per label; every fifth clip also carries the next label."""
    fnames = [f"c{i:02d}" for i in range(40)]
    labels = [[LABELS[i % 4]] + ([LABELS[(i + 1) % 4]] if i % 5 == 0 else []) for i in range(40)]
    return pd.DataFrame({"fname": fnames, "labels": labels})


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory, clips) -> Path:
    """A frame-level model with two variations and a clip-level one; 40 clips,
    PCA 5 and none (no PCA 100), every search, cutoffs 5 and 15, rankings.h5 written."""
    root = tmp_path_factory.mktemp("figures")
    rng = np.random.default_rng(1)
    fnames, labels = clips["fname"].tolist(), clips["labels"].tolist()
    for model, variation, frames in (("framey", "v1", 3), ("framey", "v2", 3), ("clippy", "only", 1)):
        centres = {lab: rng.standard_normal(8) * 2 for lab in LABELS}
        data = [(centres[labs[0]] + 2.0 * rng.standard_normal((int(rng.integers(1, frames + 1)), 8)))
                .astype(np.float32) for labs in labels]
        h5 = write_embeddings(root / f"{model}-{variation}.h5", fnames, data,
                              {"model": model, "variation": variation, "level": "frame" if frames > 1 else "clip"})
        evaluate_grid(read_embeddings(h5), clips, FAMILIES, pcas=[5, "none"], cutoffs=[5, 15],
                      out_dir=root / "metrics" / model / variation)
    return root / "metrics"


@pytest.fixture(scope="module")
def settings(metrics_dir) -> list[L.SettingFiles]:
    return L.find_settings(metrics_dir)


@pytest.fixture(scope="module")
def tabs(settings) -> dict[str, pd.DataFrame]:
    """Every table make_figures draws from (PCA 5 as the fixed setting, so all figures have data)."""
    df = T.add_intervals(T.collect(settings), settings, n_resamples=100)
    models = T.models_table(df, registry={}, pca="5")
    pairwise = T.pairwise_table(settings, models, n_resamples=100)
    models = T.add_ranks(models, settings, pairwise, n_resamples=100)
    return {"all_settings": df, "best_settings": T.best_settings(df), "models": models,
            "families": T.families_table(settings, models), "labels": T.labels_table(settings, models),
            "pairwise": pairwise}


def _check_files(paths: list[Path], min_px: int = 200, max_px: int = 12000) -> None:
    assert sorted(p.suffix for p in paths) == [".pdf"] * (len(paths) // 2) + [".png"] * (len(paths) // 2)
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000, p
        if p.suffix == ".png":
            img = mpimg.imread(p)
            h, w = img.shape[:2]
            assert min_px <= h <= max_px and min_px <= w <= max_px, (p, img.shape)
            assert img.std() > 0.01  # not blank
        else:
            assert p.read_bytes()[:5] == b"%PDF-"
    assert not list(paths[0].parent.glob(".*tmp*"))
    assert plt.get_fignums() == []  # nothing left in pyplot's registry


def _red_pixels(img: np.ndarray) -> int:
    """Pixels of the red frame (viridis has no pure red)."""
    return int(((img[..., 0] > 0.9) & (img[..., 1] < 0.1) & (img[..., 2] < 0.1)).sum())


def test_grid_heatmap(tabs, tmp_path):
    df = tabs["all_settings"]
    one = df[(df["model"] == "framey") & (df["variation"] == "v1")]
    paths = F.grid_heatmap(one, tmp_path / "grid.png", "toy", best="agg-max_pca-5_search-nns")
    assert paths == [tmp_path / "grid.png", tmp_path / "grid.pdf"]
    _check_files(paths)
    unframed = F.grid_heatmap(one, tmp_path / "grid_unframed", "toy")  # no best setting given: no red box
    framed_png, unframed_png = mpimg.imread(paths[0]), mpimg.imread(unframed[0])
    assert framed_png.shape == unframed_png.shape
    assert _red_pixels(framed_png) > 100 and _red_pixels(unframed_png) == 0
    table = F.grid_table(one)
    assert list(table.index) == ["MIPS", "MCSS", "NNS"]
    assert list(table.columns) == ["mean / PCA 5", "mean / no PCA", "median / PCA 5", "median / no PCA",
                                   "max / PCA 5", "max / no PCA"]
    r = one[(one["aggregation"] == "median") & (one["pca"] == "5") & (one["search"] == "nns")].iloc[0]
    assert table.loc["NNS", "median / PCA 5"] == r["map@15"]
    clip = df[df["model"] == "clippy"]
    assert list(F.grid_table(clip).columns) == ["PCA 5", "no PCA"]
    _check_files(F.grid_heatmap(clip, tmp_path / "clip", "toy"))
    with pytest.raises(F.FiguresError, match="one model and variation"):
        F.grid_heatmap(df[df["model"] == "framey"], tmp_path / "x")


def test_family_heatmap(tabs, tmp_path):
    fam = tabs["families"]
    assert len(fam) == 4  # 2 models x 2 families
    _check_files(F.family_heatmap(fam, tmp_path / "families", "toy"))


def test_model_comparison(tabs, tmp_path):
    models = tabs["models"][[c for c in tabs["models"].columns if not c.endswith(("_lo", "_hi"))]].copy()
    _check_files(F.model_comparison(models, tmp_path / "models", "toy"))
    models.loc[0, ["map@5", "map@15", "mr1"]] = np.nan  # fixed setting not evaluated: drawn as n/a
    models["paper_map@15"] = [0.3, np.nan]
    _check_files(F.model_comparison(models, tmp_path / "models_nan", "toy"))


def test_per_label_small_and_large(tabs, tmp_path):
    small = F.per_label(tabs["labels"], tmp_path / "labels", "toy")
    _check_files(small)
    path = write_csv_atomic(tabs["labels"], tmp_path / "labels.csv")  # as the tables rule writes it
    via_file = F.per_label(path, tmp_path / "labels_file", "toy")
    _check_files(via_file)
    table = F.per_label_table(tabs["labels"])
    assert set(table.index) == set(LABELS) and list(table.columns) == ["clippy", "framey"]
    means = table.mean(axis=1).to_numpy()
    assert np.all(np.diff(means) <= 1e-12)  # best label first
    # many labels (FSD50K has 200; 100 keeps the test fast): a tall figure, >= 20 px per label row at 150 dpi
    rng = np.random.default_rng(0)
    many = pd.DataFrame([{"model": m, "label": f"Label_{i:03d}", "map@15": rng.random()}
                         for m in ("a", "b") for i in range(100)])
    big = F.per_label(many, tmp_path / "labels100", "toy")
    _check_files(big)
    h, w = mpimg.imread(big[0]).shape[:2]
    assert h > 3 * w and h / 100 >= 20


def test_empty_input_raises_a_clear_error(tabs, tmp_path):
    empty = tabs["all_settings"].iloc[0:0]
    with pytest.raises(F.FiguresError, match="grid_heatmap: no data"):
        F.grid_heatmap(empty, tmp_path / "a")
    with pytest.raises(F.FiguresError, match="family_heatmap: no data"):
        F.family_heatmap(tabs["families"].iloc[0:0], tmp_path / "b")
    with pytest.raises(F.FiguresError, match="model_comparison: no data"):
        F.model_comparison(tabs["models"].iloc[0:0], tmp_path / "c")
    with pytest.raises(F.FiguresError, match="per_label: no data"):
        F.per_label(pd.DataFrame(columns=["model", "label", "map@15"]), tmp_path / "d")
    with pytest.raises(F.FiguresError, match="lacks column"):
        F.family_heatmap(pd.DataFrame({"model": ["m"]}), tmp_path / "e")
    assert not list(tmp_path.iterdir())


FIGURE_NAMES = ["grid/clippy__only", "grid/framey__v1", "grid/framey__v2", "grid/clippy__only_heatmap",
                "grid/framey__v1_heatmap", "grid/framey__v2_heatmap", "models", "families", "per_label",
                "significance", "precision_at_k", "ranks"]


def test_figure_names_are_the_layouts():
    want = [L.grid_figure_name(m, v) for m, v in (("clippy", "only"), ("framey", "v1"), ("framey", "v2"))]
    want += [L.grid_heatmap_name(m, v) for m, v in (("clippy", "only"), ("framey", "v1"), ("framey", "v2"))]
    assert sorted(FIGURE_NAMES) == sorted(want + list(L.FIGURES))


def _rankings(settings) -> list[Path]:
    """The rankings.h5 of every setting (what the figures rule declares)."""
    return [s.rankings for s in settings]


def test_make_figures(tabs, settings, clips, tmp_path):
    paths = F.make_figures(tabs, tmp_path / "figs", collection="toy", rankings=_rankings(settings), manifest=clips)
    names = sorted(str(p.relative_to(tmp_path / "figs")) for p in paths)
    assert names == sorted(f"{n}.{ext}" for n in FIGURE_NAMES for ext in ("png", "pdf"))
    _check_files(paths)


def test_make_figures_needs_every_table_and_recomputes_none(tabs, settings, clips, tmp_path):
    inputs = {"rankings": _rankings(settings), "manifest": clips}
    for key in F.FIGURE_TABLES:
        partial = {k: v for k, v in tabs.items() if k != key}
        with pytest.raises(F.FiguresError, match=f"table '{key}' not given"):
            F.make_figures(partial, tmp_path / "figs", **inputs)
    with pytest.raises(F.FiguresError, match=r"nowhere/pairwise\.csv: table not found"):
        F.make_figures({**tabs, "pairwise": tmp_path / "nowhere" / "pairwise.csv"}, tmp_path / "figs", **inputs)
    assert not (tmp_path / "figs").exists()


def test_make_figures_marks_the_best_setting_of_best_settings_csv(tabs, settings, clips, tmp_path):
    """The star of Fig. 1 and the red box of its heatmap are the setting best_settings.csv
    names (figures do not choose it)."""
    best = tabs["best_settings"].copy()
    i = best.index[best["model"] == "clippy"][0]
    other = "agg-none_pca-5_search-mips" if best.loc[i, "setting"] != "agg-none_pca-5_search-mips" else \
        "agg-none_pca-none_search-nns"
    grid = tabs["all_settings"]
    clip = grid[grid["model"] == "clippy"]
    F.make_figures({**tabs, "best_settings": best.assign(setting=best["setting"].where(best.index != i, other))},
                   tmp_path / "a", collection="toy", rankings=_rankings(settings), manifest=clips)
    top = grid["map@15_hi"].max() * 1.1
    F.grid_bars(clip, tmp_path / "want", "toy", ymax=top, best=other)
    np.testing.assert_array_equal(mpimg.imread(tmp_path / "a" / "grid" / "clippy__only.png"),
                                  mpimg.imread(tmp_path / "want.png"))
    F.grid_heatmap(clip, tmp_path / "want_heatmap", "toy", best=other, vmin=0.0, vmax=grid["map@15"].max())
    np.testing.assert_array_equal(mpimg.imread(tmp_path / "a" / "grid" / "clippy__only_heatmap.png"),
                                  mpimg.imread(tmp_path / "want_heatmap.png"))


def test_make_figures_from_table_files_with_placeholders(settings, clips, tmp_path):
    # the paper's fixed setting (PCA 100) was not evaluated: no family / label data -> placeholder figures
    tables = T.write_tables(settings, tmp_path / "tables", registry={}, n_resamples=100)
    paths = F.make_figures(tables, tmp_path / "figs", confidence=0.95, rankings=_rankings(settings),
                           manifest=clips)
    assert len(paths) == 2 * len(FIGURE_NAMES)  # the significance matrix compares the models at their best settings
    _check_files(paths, min_px=100)


def test_model_comparison_error_bars_and_significance_matrix(settings, tabs, tmp_path):
    models = tabs["models"]
    assert {"map@15_lo", "best_mr1_hi"} <= set(models.columns)
    _check_files(F.model_comparison(models, tmp_path / "models", "toy"))
    pw = T.pairwise_table(settings, models, n_resamples=100)
    _check_files(F.significance_matrix(pw, tmp_path / "sig", "toy", confidence=0.95))
    diff, p, sig = F.significance_tables(pw, "fixed", "map@15")
    assert list(diff.index) == list(diff.columns) and len(diff) == 2
    a, b = pw.iloc[0]["a"], pw.iloc[0]["b"]
    row = pw[(pw.comparison == "fixed") & (pw.metric == "map@15")].iloc[0]
    assert diff.loc[a, b] == row["diff"] and diff.loc[b, a] == -row["diff"] and p.loc[a, b] == row["p_holm"]
    assert np.isnan(diff.loc[a, a])
    with pytest.raises(F.FiguresError, match="no data"):
        F.significance_matrix(pw.iloc[:0], tmp_path / "none")


# --------------------------------------------------------------------------- Fig. 1 as bars, shared scales


def _bars(ax) -> dict[str, list]:
    """Search label -> the bars (Rectangles) of that search's BarContainer."""
    return {c.get_label(): list(c.patches) for c in ax.containers
            if isinstance(c, BarContainer) and c.get_label() in ("MIPS", "MCSS", "NNS")}


def test_grid_bars_groups_intervals_and_best(tabs, tmp_path):
    ci = tabs["all_settings"]  # with intervals
    one = ci[(ci["model"] == "framey") & (ci["variation"] == "v1")]
    b = T.best_settings(one).iloc[0]  # as best_settings.csv would name it, were v1 framey's best variation
    fig = F.grid_bars_figure(one, "toy", ymax=0.9, confidence=0.95, best=b["setting"])
    ax = fig.axes[0]
    groups = ["mean / PCA 5", "mean / no PCA", "median / PCA 5", "median / no PCA", "max / PCA 5", "max / no PCA"]
    assert [t.get_text() for t in ax.get_xticklabels()] == groups  # one group per processing setting
    bars = _bars(ax)
    assert list(bars) == ["MIPS", "MCSS", "NNS"] and all(len(b) == len(groups) for b in bars.values())
    r = one[(one["aggregation"] == "median") & (one["pca"] == "5") & (one["search"] == "nns")].iloc[0]
    assert bars["NNS"][2].get_height() == pytest.approx(r["map@15"])
    # each bar sits inside its group, MIPS left of MCSS left of NNS
    for g in range(len(groups)):
        xs = [bars[s][g].get_x() + bars[s][g].get_width() / 2 for s in ("MIPS", "MCSS", "NNS")]
        assert g - 0.4 < xs[0] < xs[1] < xs[2] < g + 0.4
    # error bars are the table's interval: the NNS container's segment for median / PCA 5
    err = next(c for c in ax.containers if isinstance(c, BarContainer) and c.get_label() == "NNS").errorbar
    assert isinstance(err, ErrorbarContainer)
    seg = err.lines[2][0].get_segments()[2]
    assert seg[0][1] == pytest.approx(r["map@15_lo"]) and seg[1][1] == pytest.approx(r["map@15_hi"])
    assert ax.get_ylabel() == "macro MAP@15 (higher is better)"
    assert ax.get_xlabel() == "embedding processing (aggregation / PCA)"
    assert ax.get_ylim() == (0.0, 0.9)  # the shared top
    # the best setting given carries the star, at its bar
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 1
    g = groups.index(F.processing_label(b["aggregation"], b["pca"]))
    bar = bars[F.SEARCH_LABELS[b["search"]]][g]
    assert stars[0].get_xdata()[0] == pytest.approx(bar.get_x() + bar.get_width() / 2)
    assert f"= {b['map@15']:.3f}" in ax.get_title() and "95 % bootstrap confidence intervals" in ax.get_title()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["MIPS", "MCSS", "NNS", "best setting"]
    _check_files(F.grid_bars(one, tmp_path / "bars", "toy"))
    unmarked = F.grid_bars_figure(one, "toy")  # no best setting given (not the model's best variation): no star
    assert not [ln for ln in unmarked.axes[0].get_lines() if ln.get_marker() == "*"]
    assert "best" not in unmarked.axes[0].get_title()
    with pytest.raises(F.FiguresError, match="best setting: 'best' is not a setting name"):
        F.grid_bars_figure(one, best="best")
    clip = ci[ci["model"] == "clippy"]  # clip-level: no aggregation, two groups
    assert [t.get_text() for t in F.grid_bars_figure(clip).axes[0].get_xticklabels()] == ["PCA 5", "no PCA"]
    with pytest.raises(F.FiguresError, match="grid_bars: expected the settings of one model and variation"):
        F.grid_bars_figure(ci[ci["model"] == "framey"])


def test_grid_heatmap_on_a_shared_colour_range(tabs):
    df = tabs["all_settings"]
    one = df[(df["model"] == "clippy")]
    mesh = F.grid_heatmap_figure(one, "toy", vmin=0.0, vmax=0.8).axes[0].collections[0]
    assert mesh.get_clim() == (0.0, 0.8)
    assert "the same range for every model" in F.grid_heatmap_figure(one, vmin=0.0, vmax=0.8).axes[0].get_title()
    own = F.grid_heatmap_figure(one).axes[0].collections[0].get_clim()
    assert own == pytest.approx((one["map@15"].min(), one["map@15"].max()))


def test_make_figures_share_one_scale_across_models(settings, tabs, clips, tmp_path, monkeypatch):
    """The real drawing functions, watched: every model's bars get one y range, every heatmap one colour range."""
    ci = tabs["all_settings"]
    bars, heat = [], []
    real_bars, real_heat = F.grid_bars_figure, F.grid_heatmap_figure
    monkeypatch.setattr(F, "grid_bars_figure", lambda df, *a: bars.append(a[2]) or real_bars(df, *a))
    monkeypatch.setattr(F, "grid_heatmap_figure", lambda df, *a: heat.append(a[2:4]) or real_heat(df, *a))
    F.make_figures({**tabs, "all_settings": ci}, tmp_path / "figs", rankings=_rankings(settings), manifest=clips)
    assert bars == [pytest.approx(ci["map@15_hi"].max() * 1.1)] * 3  # three variations, one y range
    assert heat == [(0.0, pytest.approx(ci["map@15"].max()))] * 3  # and one colour range


# --------------------------------------------------------------------------- subtitles, significance axes


def test_families_subtitle_says_which_setting_applies_to_which_model(tabs):
    fam = tabs["families"].copy()
    title = F.family_heatmap_figure(fam, "toy").axes[0].get_title()
    assert "setting per model:" in title
    # clippy is clip-level (no aggregation), framey frame-level (mean): two settings, each naming its model
    assert "clippy: no aggregation / PCA 5 / MCSS" in title and "framey: mean / PCA 5 / MCSS" in title
    fam["setting"] = "agg-mean_pca-5_search-mcss"
    assert "every model: mean / PCA 5 / MCSS" in F.family_heatmap_figure(fam).axes[0].get_title()


def test_model_comparison_names_both_settings_per_model(tabs):
    fig = F.model_comparison_figure(tabs["models"], "toy")
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    m = tabs["models"].set_index("model")
    assert ticks[1] == (f"framey / {m.loc['framey', 'variation']}\nfixed: mean / PCA 5 / MCSS\n"
                        f"best: {T.setting_label(m.loc['framey', 'best_setting'])}")


def test_significance_axes_are_labelled_in_words(settings, tabs):
    pw = T.pairwise_table(settings, tabs["models"], n_resamples=50)
    fig = F.significance_matrix_figure(pw, "toy", confidence=0.95)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 2 * 3  # fixed and best x MAP@5, MAP@15, MR1
    for ax in panels:
        assert ax.get_ylabel() == "model A (row)" and ax.get_xlabel() == "model B (column)"
        assert "A minus B" in ax.get_title()


# --------------------------------------------------------------------------- rank stability


def test_rank_stability_figure_and_file(tabs, tmp_path):
    models = tabs["models"]
    fig = F.rank_stability_figure(models, "toy", confidence=0.95)
    panels = [ax for ax in fig.axes if ax.get_title() in F.RANK_PANELS.values()]
    assert [ax.get_title() for ax in panels] == [F.RANK_PANELS["best"], F.RANK_PANELS["fixed"]]
    for ax, prefix, col in zip(panels, ("", "fixed_"), ("best_setting", "setting"), strict=True):
        want = models.sort_values([prefix + "rank", prefix + "p_first", "model"], ascending=[True, False, True])
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        assert ticks == [f"{r.model} / {r.variation}\n{T.setting_label(getattr(r, col))}"
                         for r in want.itertuples(index=False)]  # best first
        dots = ax.collections[1].get_offsets()
        np.testing.assert_array_equal(np.asarray(dots)[:, 0], want[prefix + "rank"].to_numpy(float))
        bars = ax.collections[0].get_segments()  # rank_lo .. rank_hi (a little wider: visible when lo = hi)
        np.testing.assert_allclose([b[0][0] + 0.18 for b in bars], want[prefix + "rank_lo"].to_numpy(float))
        np.testing.assert_allclose([b[1][0] - 0.18 for b in bars], want[prefix + "rank_hi"].to_numpy(float))
        right = [t.get_text().split() for t in ax.child_axes[0].get_yticklabels()]
        assert [r[0] for r in right] == list(want[prefix + "group"])
        assert [float(r[1]) for r in right] == pytest.approx(want[prefix + "p_first"].to_numpy(float), abs=0.005)
    assert "95 % bootstrap interval of the rank" in fig._suptitle.get_text()
    _check_files(F.rank_stability(models, tmp_path / "ranks", "toy", 0.95))
    # without ranks (a models table not written by write_tables): a clear error
    with pytest.raises(F.FiguresError, match="no model has a rank"):
        F.rank_stability_figure(models.drop(columns=T.rank_columns("best") + T.rank_columns("fixed")))


def test_make_figures_ranks_placeholder_without_ranks(tabs, settings, clips, tmp_path):
    bare = tabs["models"].drop(columns=T.rank_columns("best") + T.rank_columns("fixed"))
    paths = F.make_figures({**tabs, "models": bare}, tmp_path / "a", rankings=_rankings(settings), manifest=clips)
    F.make_figures(tabs, tmp_path / "b", rankings=_rankings(settings), manifest=clips)
    assert (tmp_path / "a" / "ranks.png") in paths
    small, full = mpimg.imread(tmp_path / "a" / "ranks.png"), mpimg.imread(tmp_path / "b" / "ranks.png")
    assert small.shape[0] < full.shape[0]  # the placeholder is one line of text


# --------------------------------------------------------------------------- precision@k


def test_precision_at_k_equals_the_hand_computed_values(tmp_path):
    # a: X, b: X, c: X and Y, d: Y, e: Z (a single clip: left out); top-3 lists by hand
    fnames = ["a", "b", "c", "d", "e"]
    labels = {"a": ["X"], "b": ["X"], "c": ["X", "Y"], "d": ["Y"], "e": ["Z"]}
    top = np.array([[2, 3, 1], [3, 4, 0], [0, 3, 1], [2, 0, 4], [0, 1, 2]])
    path = write_rankings(tmp_path / "rankings.h5", fnames, top, -np.arange(15, dtype=np.float32).reshape(5, 3),
                          {"model": "m", "variation": "v", "aggregation": "none", "pca": "none", "search": "nns"})
    curve = F.precision_at_k(path, labels)
    # X: queries a [1,0,1], b [0,0,1], c [1,0,1] -> P@1..3 = 2/3, 1/3, 5/9; Y: c [0,1,0], d [1,0,0] -> 1/2, 1/2, 1/3
    assert curve["k"].tolist() == [1, 2, 3]
    assert curve["precision"].tolist() == pytest.approx([7 / 12, 5 / 12, 4 / 9], abs=1e-15)
    # best possible: X has 2 other clips (1, 1, 2/3), Y one (1, 1/2, 1/3)
    assert curve["ideal"].tolist() == pytest.approx([1.0, 0.75, 0.5], abs=1e-15)
    assert curve.attrs == {"n_labels": 2, "n_queries": 5}
    manifest = pd.DataFrame({"fname": fnames, "labels": ["X", "X", "X,Y", "Y", "Z"]})  # as manifest.csv has them
    assert F.precision_at_k(path, manifest, k_max=2)["precision"].tolist() == pytest.approx([7 / 12, 5 / 12])
    with pytest.raises(F.FiguresError, match=r"rankings.h5: 1 ranked clip\(s\) have no labels in the manifest: 'e'"):
        F.precision_at_k(path, {f: labels[f] for f in fnames[:4]})


def test_precision_at_1_is_the_evaluators_macro_map_at_1(tmp_path, clips):
    rng = np.random.default_rng(3)
    centres = {lab: rng.standard_normal(6) for lab in LABELS}
    data = [(centres[labs[0]] + 1.5 * rng.standard_normal((1, 6))).astype(np.float32) for labs in clips["labels"]]
    h5 = write_embeddings(tmp_path / "e.h5", clips["fname"].tolist(), data,
                          {"model": "m", "variation": "v", "level": "clip"})
    evaluate_grid(read_embeddings(h5), clips, FAMILIES, pcas=["none"], cutoffs=[1, 15], out_dir=tmp_path / "m")
    for d in sorted((tmp_path / "m").iterdir()):
        summary = json.loads((d / "summary.json").read_text())
        curve = F.precision_at_k(d / "rankings.h5", clips)
        # the lists are as long as the longest cutoff read: the panel's recall@150 (at most N - 1 = 39 here)
        assert len(curve) == summary["counts"]["k"] == 39
        assert curve["precision"].iloc[0] == pytest.approx(summary["macro"]["map@1"], abs=1e-12)


def test_precision_figure_from_the_models_settings(metrics_dir, settings, tabs, clips, tmp_path):
    rankings = _rankings(settings)  # each named by its setting folder
    curves = F.precision_curves(tabs["models"], rankings, clips)
    models = tabs["models"].set_index("model")
    assert set(curves["which"]) == {"best", "fixed"}  # PCA 5 is the fixed setting here: both evaluated
    best = curves[(curves["which"] == "best") & (curves["model"] == "framey")]
    assert best["setting"].iloc[0] == models.loc["framey", "best_setting"]
    path = metrics_dir / "framey" / models.loc["framey", "variation"] / models.loc["framey", "best_setting"]
    assert best["precision"].tolist() == F.precision_at_k(path / "rankings.h5", clips)["precision"].tolist()
    fig = F.precision_figure(curves, "toy")
    axes = [ax for ax in fig.axes if ax.get_lines()]
    assert [ax.get_title() for ax in axes] == ["each model's best setting", "the paper's fixed setting"]
    for ax in axes:
        names = [t.get_text() for t in ax.get_legend().get_texts()]
        assert len(names) == 3 and names[-1] == "best possible (every relevant clip first)"  # 2 models + ceiling
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "k (number of results looked at)"
    assert "P@15" in axes[0].get_legend().get_texts()[0].get_text()
    assert axes[0].get_ylabel().startswith("macro precision@k")
    _check_files(F.precision_plot(curves, tmp_path / "prec", "toy"))
    with pytest.raises(F.FiguresError, match="no rankings.h5 of clippy/only/.* among the 0 rankings file"):
        F.precision_curves(tabs["models"], [], clips)
    with pytest.raises(F.FiguresError, match=r"precision@k: .*elsewhere\.h5: not a metrics file of a setting folder"):
        F.precision_curves(tabs["models"], [tmp_path / "elsewhere.h5"], clips)
