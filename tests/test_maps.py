"""Embedding maps (soundsim.maps) over processed files and models.csv written by the real evaluator
and the real tables code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("openTSNE")

import matplotlib.image as mpimg  # noqa: E402

from soundsim import layout as L  # noqa: E402
from soundsim import maps as MP  # noqa: E402
from soundsim import tables as T  # noqa: E402
from soundsim.evaluate import evaluate_grid  # noqa: E402
from soundsim.fileutil import write_csv_atomic  # noqa: E402
from soundsim.manifest import MANIFEST_COLUMNS  # noqa: E402
from soundsim.store import read_embeddings, write_embeddings  # noqa: E402

FAMILIES = {"Animal": ["Bark", "Meow"], "Water": ["Rain", "Stream"], "Tools": ["Drill", "Saw"]}
FAMILY_OF = {lab: f for f, labs in FAMILIES.items() for lab in labs}
LABELS = sorted(FAMILY_OF)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def clustered(n_per_label: int = 8, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Vectors of 3 families in separated clusters: each family's centre 10 apart, each label
    1.5 around its family's centre, each clip 0.5 around its label's. (X, labels, families)."""
    rng = np.random.default_rng(seed)
    centre = {f: 10.0 * np.eye(dim)[i] for i, f in enumerate(sorted(FAMILIES))}
    sub = {lab: centre[FAMILY_OF[lab]] + 1.5 * rng.standard_normal(dim) / np.sqrt(dim) for lab in LABELS}
    labels = [lab for lab in LABELS for _ in range(n_per_label)]
    X = np.stack([sub[lab] + 0.5 * rng.standard_normal(dim) / np.sqrt(dim) for lab in labels])
    return X, labels, [FAMILY_OF[lab] for lab in labels]


def test_perplexity_adapts_to_small_collections():
    assert MP.perplexity_for(10_000) == 30.0
    assert MP.perplexity_for(91) == 30.0
    assert MP.perplexity_for(61) == 20.0
    assert MP.perplexity_for(4) == 1.0
    with pytest.raises(MP.MapError, match="at least 4 clips, got 3"):
        MP.perplexity_for(3)


def test_clip_families():
    fams = {**FAMILIES, "Music": ["Bell", "Guitar"]}
    labels = [["Bark"], ["Bark", "Meow"], ["Bark", "Unfamilied"], ["Bark", "Rain"], ["Unfamilied"], [],
              ["Guitar"]]
    assert MP.clip_families(labels, fams) == ["Animal", "Animal", "Animal", MP.MIXED, MP.MIXED, MP.MIXED, "Music"]
    # a label listed under two families is in both: mixed
    assert MP.clip_families([["Bell"]], {"Music": ["Bell"], "Things": ["Bell"]}) == [MP.MIXED]


def test_map_keeps_separated_families_apart():
    X, _, fams = clustered()
    Y = MP.embedding_map(X, seed=0)
    assert Y.shape == (len(X), 2) and Y.dtype == np.float64 and np.all(np.isfinite(Y))
    f = np.asarray(fams)
    centroids = {name: Y[f == name].mean(axis=0) for name in FAMILIES}
    for i, own in enumerate(fams):
        d = {name: np.linalg.norm(Y[i] - c) for name, c in centroids.items()}
        assert min(d, key=d.get) == own, (i, own, d)
    # well apart: every family's spread is small next to the distances between centroids
    spread = max(np.linalg.norm(Y[f == name] - c, axis=1).max() for name, c in centroids.items())
    gaps = [np.linalg.norm(centroids[a] - centroids[b]) for a in FAMILIES for b in FAMILIES if a < b]
    assert min(gaps) > 2 * spread, (gaps, spread)


def test_same_seed_same_map_other_seed_another():
    X, _, _ = clustered(n_per_label=5)
    a = MP.embedding_map(X, seed=3)
    b = MP.embedding_map(X, seed=3)
    c = MP.embedding_map(X, seed=4)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_embedding_map_errors():
    X, _, _ = clustered(n_per_label=2)
    with pytest.raises(MP.MapError, match="at least 4 clips, got 3"):
        MP.embedding_map(X[:3], seed=0)
    with pytest.raises(MP.MapError, match="perplexity 5.0 is not in"):
        MP.embedding_map(X, seed=0, perplexity=5.0)  # 12 clips: at most 11/3
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(MP.MapError, match="not finite"):
        MP.embedding_map(bad, seed=0)
    with pytest.raises(MP.MapError, match=r"expected an \(n, D\) matrix"):
        MP.embedding_map(X[0], seed=0)


def test_plot_map_draws_every_clip_in_its_family_colour():
    rng = np.random.default_rng(0)
    coords = rng.standard_normal((7, 2))
    groups = ["Animal", "Water", "Animal", MP.MIXED, "Tools", "Water", "Animal"]
    fig = MP.plot_map(coords, groups, "m / v\nsetting")
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"{MP.MIXED} (1)", "Animal (3)", "Tools (1)", "Water (2)"]
    colours = MP.family_colours(groups)
    assert colours[MP.MIXED] == MP.MIXED_COLOUR and len(set(colours.values())) == 4
    drawn = {c.get_label().split(" (")[0]: c.get_offsets() for c in ax.collections}
    g = np.asarray(groups)
    for name, pts in drawn.items():
        assert np.array_equal(np.asarray(pts), coords[g == name]), name
    assert ax.get_title() == "m / v\nsetting"
    with pytest.raises(MP.MapError, match=r"expected \(7, 2\) coordinates"):
        MP.plot_map(coords[:5], groups, "t")


def test_layout_names_of_the_maps(tmp_path):
    assert L.map_figure_name("my model", "v/1") == "maps/my_model__v_1"
    lay = L.Layout(tmp_path, "demo")
    assert lay.figure_files(L.map_figure_name("aisfx", "x-sequential-ce")) == [
        tmp_path / "demo" / "figures" / "maps" / f"aisfx__x-sequential-ce.{ext}" for ext in ("png", "pdf")]
    assert L.processed_key(lay.processed("aisfx", "x", "mean", 100)) == ("aisfx", "x", "agg-mean_pca-100")
    assert L.processed_key(lay.processed("aisfx", "x", "none", None)) == ("aisfx", "x", "agg-none_pca-none")
    assert L.parse_processing("agg-max_pca-none") == ("max", "none")
    with pytest.raises(L.LayoutError, match="not a processing name"):
        L.parse_processing("agg-max_pca-none_search-mcss")
    with pytest.raises(L.LayoutError, match="not a processed file"):
        L.processed_key(tmp_path / "models.csv")
    assert lay.benchmark("embedding_maps") == tmp_path / "demo" / "benchmarks" / "embedding_maps.tsv"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> L.Layout:
    """A results tree as the workflow leaves it for rule embedding_maps: manifest.csv,
    families.json, the processed matrices of two variations of one model (rule evaluate's
    code, PCA 5 and none, mean aggregation of 1-3 frames) and tables/models.csv (the tables
    rule's code); a few clips carry labels of two families or of none."""
    lay = L.Layout(tmp_path_factory.mktemp("maps"), "demo")
    X, labels, _ = clustered(n_per_label=7)
    labs = [[lab] for lab in labels]
    labs[0].append("Rain")  # Animal + Water: mixed
    labs[1] = ["Bark", "Unfamilied"]  # Unfamilied is in no family: Animal
    labs[-1] = ["Unfamilied"]  # none: mixed
    fnames = [f"c{i:02d}" for i in range(len(labs))]
    clips = pd.DataFrame({"fname": fnames, "labels": labs})
    lay.dir.mkdir(parents=True)
    manifest = pd.DataFrame({"fname": fnames, "path": [f"audio/{f}.wav" for f in fnames], "duration": 1.0,
                             "sample_rate": 16000, "channels": 1, "frames": 16000, "format": "WAV",
                             "subtype": "PCM_16", "fingerprint": "", "labels": [",".join(x) for x in labs]})
    write_csv_atomic(manifest[MANIFEST_COLUMNS], lay.manifest, na_rep="")
    lay.families.write_text(json.dumps(FAMILIES))
    rng = np.random.default_rng(5)
    for variation, scale in (("v1", 1.0), ("v2", 3.0)):
        data = [(x + scale * 0.2 * rng.standard_normal((int(rng.integers(1, 4)), X.shape[1]))).astype(np.float32)
                for x in X]
        h5 = write_embeddings(lay.dir / f"{variation}.h5", fnames, data,
                              {"model": "framey", "variation": variation, "level": "frame"})
        evaluate_grid(read_embeddings(h5), clips, FAMILIES, aggregations=["mean"], pcas=[5, "none"],
                      searches=["mcss", "nns"], cutoffs=[5, 15], out_dir=lay.metrics_variation_dir("framey", variation),
                      save_processed=True, processed_dir=lay.processed_dir("framey", variation))
    models = T.models_table(T.collect(lay.find_settings()), registry={}, pca="5")
    lay.tables_dir.mkdir()
    write_csv_atomic(models, lay.table("models"))
    return lay


def processed_files(lay: L.Layout) -> list[Path]:
    return sorted((lay.dir / "processed").rglob("*.h5"))


def test_write_maps_draws_each_variation_at_its_models_csv_setting(tree):
    lay = tree
    models = T.read_table(lay.table("models"))
    best_variation, setting = MP.model_setting(models, "framey")
    assert setting == models.loc[0, "best_setting"] and L.is_setting_name(setting)
    files = processed_files(lay)
    assert len(files) == 4  # 2 variations x (PCA 5, none)
    written = MP.write_maps(lay.table("models"), files, lay.manifest, lay.families, lay.figures_dir, seed=7,
                            variations=[("framey", "v1"), ("framey", "v2")], collection="demo")
    expected = [p for v in ("v1", "v2") for p in lay.figure_files(L.map_figure_name("framey", v))]
    assert written == expected
    for p in written:
        assert p.is_file() and p.stat().st_size > 5000, p
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG_MAGIC
            img = mpimg.imread(p)
            assert img.shape[0] >= 300 and img.shape[1] >= 300 and img.std() > 0.01
        else:
            assert p.read_bytes()[:5] == b"%PDF-"
    # the same inputs and seed: the same picture; the default variations: models.csv's
    again = MP.write_maps(lay.table("models"), files, lay.manifest, lay.families, lay.dir / "again", seed=7,
                          collection="demo")
    assert again == [lay.dir / "again" / f"{L.map_figure_name('framey', best_variation)}.{ext}"
                     for ext in ("png", "pdf")]
    assert again[0].read_bytes() == lay.figure(L.map_figure_name("framey", best_variation)).read_bytes()


def test_map_vectors_are_the_models_csv_setting_as_its_search_sees_them(tree):
    lay = tree
    best_variation, setting = MP.model_setting(T.read_table(lay.table("models")), "framey")
    st = L.parse_setting(setting)
    path = lay.processed("framey", best_variation, st.aggregation, st.pca)
    fnames, X = MP.map_vectors(path, setting)
    emb = read_embeddings(path)
    assert fnames == emb.fnames and X.shape == emb.embeddings.shape
    if st.search == "mcss":
        assert np.allclose(np.linalg.norm(X, axis=1), 1.0)
    else:
        assert np.array_equal(X, emb.embeddings.astype(np.float64))
    _, Xc = MP.map_vectors(path, L.setting_name(st.aggregation, st.pca, "mcss"))
    assert np.allclose(np.linalg.norm(Xc, axis=1), 1.0)
    # the families of the tree's clips: two mixed (two families; none), the rest their own
    groups = MP.clip_families([lab.split(",") for lab in pd.read_csv(lay.manifest)["labels"]], FAMILIES)
    assert groups.count(MP.MIXED) == 2 and groups[1] == "Animal"


def test_write_maps_errors_name_what_is_missing(tree):
    lay = tree
    _, setting = MP.model_setting(T.read_table(lay.table("models")), "framey")
    st = L.parse_setting(setting)
    needed = lay.processed("framey", "v1", st.aggregation, st.pca)
    others = [p for p in processed_files(lay) if p != needed]
    with pytest.raises(MP.MapError, match=rf"no processed file of framey/v1/{st.processing} among the 3 given"):
        MP.write_maps(lay.table("models"), others, lay.manifest, lay.families, lay.dir / "x", seed=0,
                      variations=[("framey", "v1")])
    with pytest.raises(MP.MapError, match="models.csv has 0 rows for model 'ghost'"):
        MP.write_maps(lay.table("models"), processed_files(lay), lay.manifest, lay.families, lay.dir / "x",
                      seed=0, variations=[("ghost", "v1")])
    with pytest.raises(MP.MapError, match="given twice"):
        MP.processed_index([needed, lay.dir / "elsewhere" / "framey" / "v1" / needed.name])


def test_too_few_clips_give_a_placeholder(tmp_path):
    """A collection of 3 clips (e.g. a small CSV folder): the map is a placeholder, the outputs exist."""
    lay = L.Layout(tmp_path, "tiny")
    X, labels, _ = clustered(n_per_label=1)
    fnames = [f"t{i}" for i in range(3)]
    write_embeddings(lay.dir / "e.h5", fnames, [x[None].astype(np.float32) for x in X[:3]],
                     {"model": "m", "variation": "v", "level": "clip"})
    clips = pd.DataFrame({"fname": fnames, "labels": [[lab] for lab in labels[:3]]})
    evaluate_grid(read_embeddings(lay.dir / "e.h5"), clips, FAMILIES, aggregations=["none"], pcas=["none"],
                  searches=["nns"], cutoffs=[15], out_dir=lay.metrics_variation_dir("m", "v"), save_processed=True,
                  processed_dir=lay.processed_dir("m", "v"))
    models = T.models_table(T.collect(lay.find_settings()), registry={})
    written = MP.write_maps(models, processed_files(lay), clips, FAMILIES, lay.figures_dir, seed=0)
    assert written == lay.figure_files(L.map_figure_name("m", "v"))
    img = mpimg.imread(written[0])
    assert img.shape[0] < 400 and img.std() > 0.01  # the small text-only figure
