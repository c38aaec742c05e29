"""Figures (soundsim.figures) over metrics folders written by the real evaluator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("seaborn")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from soundsim import figures as F  # noqa: E402
from soundsim import layout as L  # noqa: E402
from soundsim import tables as T  # noqa: E402
from soundsim.evaluate import evaluate_grid  # noqa: E402
from soundsim.fileutil import write_csv_atomic  # noqa: E402
from soundsim.store import read_embeddings, write_embeddings  # noqa: E402

LABELS = ["Bark", "Meow", "Rain", "Wind"]
FAMILIES = {"Animal": ["Bark", "Meow"], "Natural_sounds": ["Rain", "Wind"]}


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory) -> Path:
    """A frame-level model with two variations and a clip-level one; 40 clips,
    PCA 5 and none (no PCA 100), every search, cutoffs 5 and 15."""
    root = tmp_path_factory.mktemp("figures")
    rng = np.random.default_rng(1)
    fnames = [f"c{i:02d}" for i in range(40)]
    labels = [[LABELS[i % 4]] for i in range(40)]
    clips = pd.DataFrame({"fname": fnames, "labels": labels})
    for model, variation, frames in (("framey", "v1", 3), ("framey", "v2", 3), ("clippy", "only", 1)):
        centres = {lab: rng.standard_normal(8) * 2 for lab in LABELS}
        data = [(centres[labs[0]] + 2.0 * rng.standard_normal((int(rng.integers(1, frames + 1)), 8)))
                .astype(np.float32) for labs in labels]
        h5 = write_embeddings(root / f"{model}-{variation}.h5", fnames, data,
                              {"model": model, "variation": variation, "level": "frame" if frames > 1 else "clip"})
        evaluate_grid(read_embeddings(h5), clips, FAMILIES, pcas=[5, "none"], cutoffs=[5, 15],
                      out_dir=root / "metrics" / model / variation, write_rankings_files=False)
    return root / "metrics"


@pytest.fixture(scope="module")
def settings(metrics_dir) -> list[L.SettingFiles]:
    return L.find_settings(metrics_dir)


@pytest.fixture(scope="module")
def tabs(settings) -> dict[str, pd.DataFrame]:
    """Every table make_figures draws from (PCA 5 as the fixed setting, so all figures have data)."""
    df = T.add_intervals(T.collect(settings), settings, n_resamples=100)
    models = T.models_table(df, registry={}, pca="5")
    return {"all_settings": df, "best_settings": T.best_settings(df), "models": models,
            "families": T.families_table(settings, models), "labels": T.labels_table(settings, models),
            "pairwise": T.pairwise_table(settings, models, n_resamples=100)}


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


def test_make_figures(tabs, tmp_path):
    paths = F.make_figures(tabs, tmp_path / "figs", collection="toy")
    names = sorted(str(p.relative_to(tmp_path / "figs")) for p in paths)
    assert names == sorted([
        "grid/clippy__only.png", "grid/clippy__only.pdf", "grid/framey__v1.png", "grid/framey__v1.pdf",
        "grid/framey__v2.png", "grid/framey__v2.pdf", "models.png", "models.pdf", "families.png",
        "families.pdf", "per_label.png", "per_label.pdf", "significance.png", "significance.pdf"])
    _check_files(paths)


def test_make_figures_needs_every_table_and_recomputes_none(tabs, tmp_path):
    for key in F.FIGURE_TABLES:
        partial = {k: v for k, v in tabs.items() if k != key}
        with pytest.raises(F.FiguresError, match=f"table '{key}' not given"):
            F.make_figures(partial, tmp_path / "figs")
    with pytest.raises(F.FiguresError, match=r"nowhere/pairwise\.csv: table not found"):
        F.make_figures({**tabs, "pairwise": tmp_path / "nowhere" / "pairwise.csv"}, tmp_path / "figs")
    assert not (tmp_path / "figs").exists()


def test_make_figures_frames_the_best_setting_of_best_settings_csv(tabs, tmp_path):
    """The red box of Fig. 1 is the setting best_settings.csv names (figures do not choose it)."""
    best = tabs["best_settings"].copy()
    i = best.index[best["model"] == "clippy"][0]
    other = "agg-none_pca-5_search-mips" if best.loc[i, "setting"] != "agg-none_pca-5_search-mips" else \
        "agg-none_pca-none_search-nns"
    grid = tabs["all_settings"]
    clip = grid[grid["model"] == "clippy"]
    F.make_figures({**tabs, "best_settings": best.assign(setting=best["setting"].where(best.index != i, other))},
                   tmp_path / "a", collection="toy")
    F.grid_heatmap(clip, tmp_path / "want", "toy", best=other)
    np.testing.assert_array_equal(mpimg.imread(tmp_path / "a" / "grid" / "clippy__only.png"),
                                  mpimg.imread(tmp_path / "want.png"))


def test_make_figures_from_table_files_with_placeholders(settings, tmp_path):
    # the paper's fixed setting (PCA 100) was not evaluated: no family / label data -> placeholder figures
    tables = T.write_tables(settings, tmp_path / "tables", registry={}, n_resamples=100)
    paths = F.make_figures(tables, tmp_path / "figs", confidence=0.95)
    assert len(paths) == 14  # the significance matrix compares the models at their best settings
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
