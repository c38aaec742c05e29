"""`soundsim index` on a real results tree (real aisfx embeddings of real audio, evaluated and
tabled by soundsim itself), and the workflow's rule build_index (a real Snakemake run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from soundsim import layout as L
from soundsim.service import store
from soundsim.service.index import SimilarityIndex

GRID = {"aggregations": ["mean", "max"], "pca": [4, "none"], "searches": ["mcss", "nns"]}
MODELS = {"aisfx": {"variations": ["x-sequential-ce"]}}
VAR = "x-sequential-ce"


def build_tree(workdir: Path, small_collection, venv_bin: Path, service: dict | None = None) -> L.Layout:
    """config.yaml, results/small/{manifest.csv, embeddings/aisfx/..., metrics/...} (evaluate_grid
    of the configured settings) and tables/ (the real `soundsim tables`)."""
    from soundsim.evaluate import evaluate_grid
    from soundsim.manifest import read_manifest
    from soundsim.store import read_embeddings

    cfg = {"collection": {"name": "small", "kind": "demo", "clips_per_class": 6}, "models": MODELS, "grid": GRID,
           "evaluation": {"n_resamples": 100, "families": False}}
    if service is not None:
        cfg["service"] = service
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    lay = L.Layout(workdir / "results", "small")
    lay.dir.mkdir(parents=True)
    shutil.copy(small_collection["manifest"], lay.manifest)
    lay.embeddings("aisfx", VAR).parent.mkdir(parents=True)
    shutil.copy(small_collection["embeddings"], lay.embeddings("aisfx", VAR))
    man = read_manifest(lay.manifest)
    evaluate_grid(read_embeddings(lay.embeddings("aisfx", VAR)), man[["fname", "labels"]], None, GRID["aggregations"],
                  GRID["pca"], GRID["searches"], out_dir=lay.metrics_variation_dir("aisfx", VAR), restrict=True)
    r = subprocess.run([str(venv_bin / "soundsim"), "-q", "tables", "--config", "config.yaml"], cwd=workdir,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return lay


def _soundsim(venv_bin: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv_bin / "soundsim"), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # ~60 s: seven `soundsim index` runs
def test_index_command_on_a_results_tree(small_collection, venv_bin, tmp_path):
    """Default system = the best row of best_settings.csv; --system MODEL, MODEL/VARIATION (their
    best setting by MAP@15 in all_settings.csv) and MODEL/VARIATION/SETTING; clear errors (exit 2)
    for missing tables and systems that were not evaluated. The index records the summary's
    metrics."""
    # no tables yet
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.yaml").write_text(yaml.safe_dump({
        "collection": {"name": "small", "kind": "demo"}, "models": MODELS}))
    r = _soundsim(venv_bin, tmp_path / "empty", "index", "--out", "idx")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "results/small/tables/best_settings.csv is missing: run the workflow first" in r.stderr

    lay = build_tree(tmp_path, small_collection, venv_bin)
    best = pd.read_csv(lay.table("best_settings")).iloc[0]
    grid = pd.read_csv(lay.table("all_settings"))
    r = _soundsim(venv_bin, tmp_path, "index", "--out", "idx")
    assert r.returncode == 0, r.stderr[-3000:]
    want = f"aisfx/{VAR}/{best['setting']}"
    assert r.stdout.startswith(f"index idx (gen-000001): {want}, flat over 18 sounds x ")
    info = SimilarityIndex(tmp_path / "idx").info()
    assert info["system"] == want and info["collection"] == "small"
    assert info["evaluation"]["map@15"] == pytest.approx(best["map@15"]) == pytest.approx(grid["map@15"].max())
    for system in ("aisfx", f"aisfx/{VAR}"):
        r = _soundsim(venv_bin, tmp_path, "index", "--system", system, "--out", f"idx-{system.count('/')}")
        assert r.returncode == 0, r.stderr[-3000:]
        assert SimilarityIndex(tmp_path / f"idx-{system.count('/')}").info()["system"] == want
    worst = grid.sort_values("map@15").iloc[0]
    r = _soundsim(venv_bin, tmp_path, "index", "--system", f"aisfx/{VAR}/{worst['setting']}", "--type", "hnsw",
                  "--param", "ef_search=64", "--out", "idx-worst")
    assert r.returncode == 0, r.stderr[-3000:]
    info = SimilarityIndex(tmp_path / "idx-worst").info()
    assert info["setting"] == worst["setting"] and info["index"]["params"]["ef_search"] == 64
    assert info["evaluation"]["map@15"] == pytest.approx(worst["map@15"])
    # errors
    for args, msg in (
        (["--system", "musicnn"], "no evaluated setting matches 'musicnn' in results/small/tables/all_settings.csv"),
        (["--system", f"aisfx/{VAR}/agg-median_pca-4_search-mcss"],
         f"system 'aisfx/{VAR}/agg-median_pca-4_search-mcss' was not evaluated"),
        (["--system", "a/b/c/d"], "expected MODEL, MODEL/VARIATION or MODEL/VARIATION/SETTING"),
        (["--system", f"aisfx/{VAR}", "--param", "nosuch=1"], "index type 'flat' has no parameter(s) nosuch"),
        ([], "index folder to write with --out DIR"),
    ):
        r = _soundsim(venv_bin, tmp_path, "index", *args, *(["--out", "bad"] if args else []))
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert msg in r.stderr, (args, r.stderr)
    assert not (tmp_path / "bad" / "CURRENT").exists()
    # rebuilding over the index: a new generation
    r = _soundsim(venv_bin, tmp_path, "index", "--out", "idx", "--type", "ivf")
    assert r.returncode == 0 and store.current_generation(tmp_path / "idx").name == "gen-000002"


@pytest.mark.slow
def test_rule_build_index(small_collection, venv_bin, tmp_path):
    """A real Snakemake run of rule build_index over a results tree: on request (`snakemake
    build_index`), a directory() output at results/<collection>/service/index/, with its log and
    benchmark; `rule all` asks for it only when service.enabled is true."""
    lay = build_tree(tmp_path, small_collection, venv_bin, {"type": "hnsw", "params": {"m": 8}})
    cmd = [str(venv_bin / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--cores", "1"]
    dry = subprocess.run([*cmd, "-n"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "rule build_index:" not in dry.stdout  # service.enabled is false
    r = subprocess.run([*cmd, "--allowed-rules", "build_index", "--", "build_index"], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert lay.service_index.is_dir() and lay.service_index == tmp_path / "results/small/service/index"
    best = pd.read_csv(lay.table("best_settings")).iloc[0]
    with SimilarityIndex(lay.service_index) as idx:
        info = idx.info()
        assert info["system"] == f"aisfx/{VAR}/{best['setting']}" and info["index"]["type"] == "hnsw"
        assert info["index"]["params"]["m"] == 8 and info["counts"]["active"] == 18
        assert len(idx.similar_to_fname("bird00", 5).results) == 5
    assert lay.log("build_index").is_file() and lay.service_index_benchmark.is_file()
    assert "building a hnsw index of 18 x" in lay.log("build_index").read_text()
    # the declared inputs: manifest, both tables, the settings' summaries, the embeddings
    dry = subprocess.run([*cmd, "-n", "--forcerun", "build_index", "--allowed-rules", "build_index", "--",
                          "build_index"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    line = next(ln for ln in dry.stdout.splitlines() if ln.strip().startswith("input:"))
    inputs = sorted(Path(p.strip()) for p in line.split("input:", 1)[1].split(","))
    rel = lambda p: p.relative_to(tmp_path)  # noqa: E731
    summaries = [p for p in inputs if p.name == "summary.json"]
    assert len(summaries) == 8
    assert sorted(set(inputs) - set(summaries)) == sorted(
        [rel(lay.manifest), rel(lay.table("best_settings")), rel(lay.table("all_settings")),
         rel(lay.embeddings("aisfx", VAR))])
    # enabled: rule all asks for the index
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["service"]["enabled"] = True
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    shutil.rmtree(lay.service_index)
    dry = subprocess.run([*cmd, "-n"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "rule build_index:" in dry.stdout
