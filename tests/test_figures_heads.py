"""Figures of the learned similarity heads (soundsim.figures.heads_comparison, head_training)
from a heads table over settings written by the real evaluator, and training logs as the
workflow writes them (heads/<head>/training.csv)."""

from __future__ import annotations

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
from soundsim.fileutil import write_csv_atomic  # noqa: E402
from test_tables_heads import HEADS, RESAMPLES, build_heads_tree  # noqa: E402


@pytest.fixture(scope="module")
def heads_csv(tmp_path_factory) -> Path:
    """tables/heads.csv of two heads (one class-disjoint) over a real evaluated tree."""
    root = tmp_path_factory.mktemp("heads_figs")
    settings, tables = build_heads_tree(root)
    models = T.read_table(tables / "models.csv")
    return write_csv_atomic(T.heads_table(settings, models, HEADS, n_resamples=RESAMPLES),
                            L.table_file(tables, "heads"))


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Training logs as written to heads/<head>/training.csv and read back from the files."""
    root = tmp_path_factory.mktemp("heads_logs")
    out = {}
    for k, head in enumerate(HEADS):
        epoch = np.arange(1, 21)
        val = 0.4 + 0.3 * (1 - np.exp(-epoch / (4 + k))) - 0.004 * np.maximum(epoch - 12, 0)
        df = pd.DataFrame({"epoch": epoch, "train_loss": 3.0 * np.exp(-epoch / 6) + 0.5 + 0.1 * k,
                           "val_map@15": val, "seconds": 0.1 * epoch, "best": epoch == epoch[np.argmax(val)]})
        path = write_csv_atomic(df, root / "heads" / head / "training.csv")
        out[head] = pd.read_csv(path)
    return out


def _check_files(paths: list[Path]) -> None:
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    png, pdf = paths
    img = mpimg.imread(png)
    assert 200 <= img.shape[0] <= 6000 and 200 <= img.shape[1] <= 6000 and img.std() > 0.01
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    assert not list(png.parent.glob(".*tmp*"))
    assert plt.get_fignums() == []


def test_heads_comparison_saves_png_and_pdf(heads_csv, tmp_path):
    df = T.read_table(heads_csv)
    paths = F.heads_comparison(df, tmp_path / "heads", "demo")
    assert paths == [tmp_path / "heads.png", tmp_path / "heads.pdf"]
    _check_files(paths)


def test_heads_comparison_bars_intervals_and_marks(heads_csv):
    df = T.read_table(heads_csv)
    fig = F.heads_comparison_figure(df, "demo")
    axes = fig.axes
    assert [ax.get_xlabel().split("\n")[0] for ax in axes] == ["MAP@5", "MAP@15", "MR1: mean rank of 1st relevant clip"]
    groups = list(dict.fromkeys(zip(df["head"], df["subset"], strict=True)))
    assert len(groups) == 4  # head-basey: all; head-basey-cd: all, seen, unseen
    ticks = [t.get_text().split("\n") for t in axes[0].get_yticklabels()]
    first = df.iloc[0]
    assert ticks[0] == [f"head-basey: {T.setting_label(first['head_setting'])}",
                        f"vs basey / v1: {T.setting_label(first['base_setting'])}", "all labels (4 labels)"]
    assert [t[1].split(":")[0] for t in ticks] == ["vs basey / v1"] + ["vs basey / v2"] * 3
    assert [t[2] for t in ticks] == ["all labels (4 labels)", "all labels (4 labels)", "training labels (2 labels)",
                                     "held-out labels (2 labels)"]
    ax = axes[1]  # MAP@15
    bars = {c.get_label(): [p.get_width() for p in c.patches] for c in ax.containers if isinstance(c, BarContainer)}
    rows = df[df["metric"] == "map@15"]
    np.testing.assert_allclose(bars["learned head"], rows["head_value"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(bars["frozen base model"], rows["base_value"], rtol=0, atol=1e-12)
    assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == 2  # intervals on both
    texts = [t.get_text().strip() for t in ax.texts]
    want = [f"Δ {d:+.3f} " + (F._stars(p) or "*" if s else "n.s.")
            for d, p, s in zip(rows["diff"], rows["p_holm"], rows["significant"], strict=True)]
    assert texts == want
    head_bars = next(c for c in ax.containers if isinstance(c, BarContainer) and c.get_label() == "learned head")
    outlined = [p.get_linewidth() > 1 for p in head_bars.patches]
    assert outlined == list(rows["significant"])


def test_heads_comparison_marks_a_significant_difference_only_when_significant(heads_csv):
    df = T.read_table(heads_csv)
    flipped = df.assign(significant=~df["significant"])
    fig = F.heads_comparison_figure(flipped)
    texts = [t.get_text() for t in fig.axes[1].texts]
    rows = flipped[flipped["metric"] == "map@15"]
    assert [("n.s." in t) for t in texts] == list(~rows["significant"])


def test_head_training_saves_png_and_pdf(logs, tmp_path):
    _check_files(F.head_training(logs, tmp_path / "heads_training", "demo-train"))


def test_head_training_lines_and_kept_epoch(logs):
    fig = F.head_training_figure(logs, "demo-train")
    loss_ax, val_ax = fig.axes[:2]
    assert loss_ax.get_shared_x_axes().joined(loss_ax, val_ax)
    for ax, col in ((loss_ax, "train_loss"), (val_ax, "val_map@15")):
        lines = [ln for ln in ax.get_lines() if ln.get_linestyle() != "None"]
        stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
        assert len(lines) == len(logs) and len(stars) == len(logs)
        for ln, star, (head, df) in zip(lines, stars, logs.items(), strict=True):
            np.testing.assert_array_equal(ln.get_ydata(), df[col].to_numpy())
            kept = df[df["best"]]
            assert list(star.get_xdata()) == list(kept["epoch"]) and list(star.get_ydata()) == list(kept[col])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    for head, df in logs.items():
        k = df[df["best"]].iloc[0]
        assert f"{head} (kept epoch {k['epoch']:g}, validation MAP@15 {k['val_map@15']:.3f})" in legend


def test_empty_input_raises_a_clear_error(heads_csv, logs, tmp_path):
    df = T.read_table(heads_csv)
    with pytest.raises(F.FiguresError, match="heads_comparison: no data"):
        F.heads_comparison(df.iloc[0:0], tmp_path / "a")
    with pytest.raises(F.FiguresError, match="heads_comparison: no data"):
        F.heads_comparison(pd.DataFrame(columns=T.HEADS_COLUMNS), tmp_path / "b")
    with pytest.raises(F.FiguresError, match="lacks column"):
        F.heads_comparison(df.drop(columns="diff"), tmp_path / "c")
    with pytest.raises(F.FiguresError, match="head_training: no data"):
        F.head_training({}, tmp_path / "d")
    with pytest.raises(F.FiguresError, match=r"head_training \(head-basey\): no data"):
        F.head_training({**logs, "head-basey": logs["head-basey"].iloc[0:0]}, tmp_path / "e")
    with pytest.raises(F.FiguresError, match=r"head_training \(head-basey\): input lacks column\(s\) best"):
        F.head_training({"head-basey": logs["head-basey"].drop(columns="best")}, tmp_path / "f")
    assert not list(tmp_path.iterdir())


def test_figure_names_are_the_layouts(tmp_path, heads_csv, logs):
    tree = L.Layout(tmp_path, "demo")
    tree.figures_dir.mkdir(parents=True)
    written = F.heads_comparison(T.read_table(heads_csv), tree.figures_dir / L.HEAD_FIGURES[0])
    written += F.head_training(logs, tree.figures_dir / L.HEAD_FIGURES[1])
    assert written == [p for name in L.HEAD_FIGURES for p in tree.figure_files(name)]
