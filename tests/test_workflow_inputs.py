"""The tables and figures read exactly their declared inputs: a real Snakemake run of the
`tables` and `figures` rules, and `soundsim tables` / `soundsim figures`, over a results tree
that also holds metrics the config does not ask for."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from soundsim import layout as L
from soundsim.evaluate import evaluate_grid
from soundsim.fileutil import write_csv_atomic
from soundsim.manifest import MANIFEST_COLUMNS
from soundsim.store import read_embeddings, write_embeddings

from conftest import ROOT

# PCA 100 (the paper's fixed setting of models.csv, so families.csv and labels.csv have rows)
GRID = {"aggregations": ["mean", "max"], "pca": [100, "none"], "searches": ["mcss", "nns"]}
N_CLIPS, DIM = 120, 128
COLLECTION = {"name": "demo", "kind": "demo", "clips_per_class": 6}  # 114 clips planned: PCA 100 is kept
MODELS = {"aisfx": {"variations": ["x-sequential-ce"]}, "freesound": {"variations": ["freesound-extractor"]}}
LABELS = ["Bark", "Rain", "Bell", "Wind"]
EXTRA_SETTING = "agg-mean_pca-7_search-mcss"  # a PCA size the config does not ask for


def configured() -> set[tuple[str, str, str]]:
    """(model, variation, setting) of every setting the config asks for."""
    out = set()
    for a in GRID["aggregations"]:
        for p in GRID["pca"]:
            for s in GRID["searches"]:
                out.add(("aisfx", "x-sequential-ce", L.setting_name(a, p, s)))
    for p in GRID["pca"]:
        for s in GRID["searches"]:
            out.add(("freesound", "freesound-extractor", L.setting_name("none", p, s)))
    return out


def build_tree(workdir: Path) -> L.Layout:
    """config.yaml and results/demo/metrics/ of the configured settings (evaluated for real on
    random embeddings, 120 clips) and its manifest.csv (the clips' labels, for precision@k),
    plus two undeclared folders: a setting of aisfx the config does
    not ask for whose summary.json claims MAP@15 0.999 (it would be the best if it were read), and
    a model that is not enabled."""
    (workdir / "config.yaml").write_text(yaml.safe_dump({
        "collection": COLLECTION, "models": MODELS, "grid": GRID, "evaluation": {"n_resamples": 200},
    }))
    lay = L.Layout(workdir / "results", "demo")
    rng = np.random.default_rng(0)
    fnames = [f"c{i:03d}" for i in range(N_CLIPS)]
    labels = [[LABELS[i % 4]] for i in range(N_CLIPS)]
    clips = pd.DataFrame({"fname": fnames, "labels": labels})
    manifest = pd.DataFrame({"fname": fnames, "path": [f"audio/{f}.wav" for f in fnames], "duration": 1.0,
                             "sample_rate": 16000, "channels": 1, "frames": 16000, "format": "WAV",
                             "subtype": "PCM_16", "fingerprint": "", "labels": [",".join(x) for x in labels]})
    write_csv_atomic(manifest[MANIFEST_COLUMNS], lay.manifest, na_rep="")
    for (model, variation), frames, aggs in ((("aisfx", "x-sequential-ce"), 3, ["mean", "max"]),
                                              (("freesound", "freesound-extractor"), 1, ["none"])):
        centres = {lab: rng.standard_normal(DIM) * 0.3 for lab in LABELS}
        data = [(centres[labs[0]] + rng.standard_normal((frames, DIM))).astype(np.float32) for labs in labels]
        h5 = write_embeddings(workdir / f"{model}.h5", fnames, data,
                              {"model": model, "variation": variation, "level": "frame" if frames > 1 else "clip"})
        evaluate_grid(read_embeddings(h5), clips, {"Animal": ["Bark"], "Nature": ["Rain", "Wind"]}, aggregations=aggs,
                      pcas=GRID["pca"], searches=GRID["searches"], out_dir=lay.metrics_variation_dir(model, variation))
    src = lay.setting_files("aisfx", "x-sequential-ce", "agg-mean_pca-100_search-mcss")
    extra = lay.setting_files("aisfx", "x-sequential-ce", EXTRA_SETTING)
    shutil.copytree(src.dir, extra.dir)
    s = json.loads(extra.summary.read_text())
    s["setting"].update(pca="7", name=EXTRA_SETTING)
    s["macro"]["map@15"] = 0.999
    extra.summary.write_text(json.dumps(s))
    L.read_summary(extra.summary)  # a valid summary.json
    shutil.copytree(src.dir, lay.setting_files("musicnn", "MTT_musicnn", src.setting).dir)
    return lay


def check_outputs_ignore_the_extra_folders(lay: L.Layout) -> None:
    from soundsim.tables import read_table

    grid = read_table(lay.table("all_settings"))
    assert set(zip(grid["model"], grid["variation"], grid["setting"], strict=True)) == configured()
    assert len(grid) == len(configured()) == 12
    best = read_table(lay.table("best_settings")).set_index("model")
    assert list(best.index) == ["aisfx", "freesound"]
    assert best.loc["aisfx", "setting"] != EXTRA_SETTING and best.loc["aisfx", "map@15"] < 0.999
    assert best.loc["aisfx", "map@15"] == grid.loc[grid.model == "aisfx", "map@15"].max()
    for key in ("models", "families", "labels"):
        assert set(read_table(lay.table(key))["model"]) == {"aisfx", "freesound"}, key
    pw = read_table(lay.table("pairwise"))
    assert len(pw) and set(pw["a"]) | set(pw["b"]) == {"aisfx", "freesound"}
    assert "musicnn" not in lay.table("models_md").read_text()
    figures = sorted(str(p.relative_to(lay.figures_dir)) for p in lay.figures_dir.rglob("*") if p.is_file())
    grids = [f(m, v) for m, v in (("aisfx", "x-sequential-ce"), ("freesound", "freesound-extractor"))
             for f in (L.grid_figure_name, L.grid_heatmap_name)]
    assert grids == ["grid/aisfx__x-sequential-ce", "grid/aisfx__x-sequential-ce_heatmap",
                     "grid/freesound__freesound-extractor", "grid/freesound__freesound-extractor_heatmap"]
    assert figures == sorted(f"{n}.{ext}" for n in [*grids, "families", "models", "per_label", "significance",
                                                     "precision_at_k", "ranks"] for ext in ("png", "pdf"))


@pytest.mark.slow
def test_tables_and_figures_rules_read_only_their_declared_inputs(venv_bin, tmp_path):
    lay = build_tree(tmp_path)
    cmd = [str(venv_bin / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--cores", "1"]
    # upstream rules are left out: the metrics files are the given sources of this run
    r = subprocess.run([*cmd, "--allowed-rules", "tables", "figures", "--", "tables", "figures"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rule tables:" in r.stdout + r.stderr and "rule figures:" in r.stdout + r.stderr
    check_outputs_ignore_the_extra_folders(lay)
    # the rule's declared inputs are exactly the configured settings' four files
    n = len(configured())
    dry = subprocess.run([*cmd, "-n", "--forcerun", "tables", "--allowed-rules", "tables", "--", "tables"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    line = next(ln for ln in dry.stdout.splitlines() if ln.strip().startswith("input:"))
    inputs = [Path(p.strip()) for p in line.split("input:", 1)[1].split(",")]
    assert len(inputs) == 4 * n
    keys = {(L.setting_files_of(p).key, p.name) for p in inputs}
    assert keys == {(k, f) for k in configured() for f in ("summary.json", "per_label.csv", "per_family.csv",
                                                            "per_query.parquet")}
    # the figures rule: the tables, the configured settings' rankings.h5 (precision@k) and the manifest
    dry = subprocess.run([*cmd, "-n", "--forcerun", "figures", "--allowed-rules", "figures", "--", "figures"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    line = next(ln for ln in dry.stdout.splitlines() if ln.strip().startswith("input:"))
    inputs = [Path(p.strip()) for p in line.split("input:", 1)[1].split(",")]
    rankings = [p for p in inputs if p.name == "rankings.h5"]
    assert {L.setting_files_of(p).key for p in rankings} == configured() and len(rankings) == n
    assert sorted(p for p in inputs if p.name != "rankings.h5") == sorted(
        [lay.manifest.relative_to(tmp_path)] + [lay.table(k).relative_to(tmp_path) for k in
                                                 ("all_settings", "best_settings", "models", "families", "labels",
                                                  "pairwise")])

    # soundsim tables / figures call the same functions on the same settings: the same files
    before = {k: lay.table(k).read_bytes() for k in L.SUMMARY_TABLES}
    for command in ("tables", "figures"):
        c = subprocess.run([str(venv_bin / "soundsim"), "-q", command, "--config", "config.yaml"],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert c.returncode == 0, c.stderr[-3000:]
    assert {k: lay.table(k).read_bytes() for k in L.SUMMARY_TABLES} == before
    check_outputs_ignore_the_extra_folders(lay)


def test_tables_and_figures_commands(venv_bin, tmp_path):
    """`soundsim tables` and `soundsim figures` outside Snakemake, and their errors (exit 2, one message)."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"collection": COLLECTION, "models": MODELS, "grid": GRID}))

    def soundsim(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv_bin / "soundsim"), "-q", *args], capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)

    r = soundsim("tables", "--config", "config.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "soundsim tables: error: results/demo/metrics/aisfx/x-sequential-ce/agg-mean_pca-100_search-mcss/" \
           "summary.json not found (48 of the 48 metrics files of the 12 configured settings are missing)" in r.stderr
    r = soundsim("figures", "--config", "config.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "soundsim figures: error: results/demo/tables/all_settings.csv not found: write the tables first" in r.stderr

    lay = build_tree(tmp_path)
    r = soundsim("tables", "--config", "config.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.splitlines()[0] == f"all_settings: {Path('results/demo/tables/all_settings.csv')}"
    r = soundsim("figures", "--config", "config.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "20 figure file(s) -> results/demo/figures"
    check_outputs_ignore_the_extra_folders(lay)
