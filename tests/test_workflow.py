"""The Snakemake workflow, run for real (lint, dry run, a small demo run, re-run, errors)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from soundsim import store

from conftest import ROOT

pytestmark = pytest.mark.slow


def snakemake(venv_bin: Path, workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [str(venv_bin / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table."""
    block = output.split("Job stats:")[1]
    counts = {}
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


SMALL_GRID = {"aggregations": ["mean", "max"], "pca": [10, "none"], "searches": ["mips", "mcss", "nns"]}


def write_config(workdir: Path, models: dict | None = None, shards: int = 1, grid: dict | None = None,
                 **collection) -> Path:
    cfg = {
        "collection": {"name": "demo", "kind": "demo", "clips_per_class": 2, **collection},
        "models": models or {},
        "extraction": {"shards": shards},
        "grid": grid or SMALL_GRID,
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_lint_is_clean(venv_bin):
    r = subprocess.run([venv_bin / "snakemake", "--lint"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Lints for" not in r.stdout + r.stderr


def test_dry_run_of_the_shipped_config_plans_the_whole_dag(venv_bin):
    r = subprocess.run([venv_bin / "snakemake", "-n", "--forceall", "--cores", "1"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    # 3 default models x 1 variation x 2 shards; evaluate: (3 aggregations x 3 PCA) for the two
    # frame-level models + 3 PCA for the clip-level freesound (each job serves all 3 searches);
    # grid.indexes: one evaluate_indexes job per model variation, then the table and its figure
    # the relevance rule: the panel's graded gains (relevance.csv)
    assert job_counts(r.stdout) == {"demo_data": 1, "manifest": 1, "relevance": 1, "extract_shard": 6,
                                    "merge_embeddings": 3,
                                    "evaluate": 21, "evaluate_indexes": 3, "tables": 1, "table_pages": 1,
                                    "embedding_maps": 1, "figures": 1, "index_table": 1, "index_figure": 1, "all": 1,
                                    "total": 43}


def test_demo_run_then_nothing_to_do(venv_bin, tmp_path):
    """The demo collection, aisfx (main env) and, when .venvs/musicnn is built, musicnn
    (its own env), 2 shards each; then a second run finds nothing to do."""
    models = {"aisfx": {"variations": ["x-sequential-ce"]}}
    if (ROOT / ".venvs" / "musicnn" / "bin" / "python").exists():
        models["musicnn"] = {"variations": ["MTT_musicnn"]}
    write_config(tmp_path, models=models, shards=2)
    plan = snakemake(venv_bin, tmp_path, "-n")
    assert plan.returncode == 0, plan.stderr
    n = len(models)
    assert job_counts(plan.stdout) == {"demo_data": 1, "manifest": 1, "relevance": 1, "extract_shard": 2 * n,
                                       "merge_embeddings": n, "evaluate": 4 * n, "tables": 1, "table_pages": 1,
                                       "figures": 1, "embedding_maps": 1, "all": 1, "total": 8 + 7 * n}

    run = snakemake(venv_bin, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    m = pd.read_csv(tmp_path / "results" / "demo" / "manifest.csv")
    assert len(m) == 38 and set(m["sample_rate"]) == {16000, 22050, 44100, 48000}
    assert (tmp_path / "results" / "demo" / "logs" / "manifest.log").read_text().count("manifest: 38 clips") == 1
    from soundsim import store

    for name, mcfg in models.items():
        e = store.read_embeddings(tmp_path / "results" / "demo" / "embeddings" / name / f"{mcfg['variations'][0]}.h5")
        assert e.fnames == m["fname"].astype(str).tolist() and e.attrs["shards"] == 2
    assert not list((tmp_path / "results" / "demo" / "embeddings").rglob("*.shard-*")), "shards are temporary"
    res = tmp_path / "results" / "demo"
    # tables trace back to summary.json files
    all_settings = pd.read_csv(res / "tables" / "all_settings.csv")
    assert len(all_settings) == n * 2 * 2 * 3
    for row in all_settings.itertuples(index=False):
        s = json.loads((res / "metrics" / row.model / row.variation / row.setting / "summary.json").read_text())
        assert row.n_clips == s["counts"]["n_clips"]
        assert abs(row[all_settings.columns.get_loc("map@15")] - s["macro"]["map@15"]) < 1e-12
    models_tab = pd.read_csv(res / "tables" / "models.csv").set_index("model")
    s = json.loads((res / "metrics" / "aisfx" / "x-sequential-ce" / "agg-mean_pca-10_search-mcss" / "summary.json")
                   .read_text())
    # the grid has no PCA 100: the paper's fixed setting is missing and the table says so
    assert np.isnan(models_tab.loc["aisfx", "map@15"]) and "not evaluated" in models_tab.loc["aisfx", "note"]
    best = pd.read_csv(res / "tables" / "best_settings.csv").set_index("model")
    assert best.loc["aisfx", "map@15"] == all_settings[all_settings.model == "aisfx"]["map@15"].max()
    assert s["macro"]["map@15"] <= best.loc["aisfx", "map@15"]
    for f in ["grid/aisfx__x-sequential-ce", "grid/aisfx__x-sequential-ce_heatmap", "families", "models", "per_label",
              "precision_at_k", *(f"maps/{m}__{c['variations'][0]}" for m, c in models.items())]:
        assert (res / "figures" / f"{f}.png").stat().st_size > 10_000 and (res / "figures" / f"{f}.pdf").is_file()
    assert (res / "logs" / "embedding_maps.log").is_file() and (res / "benchmarks" / "embedding_maps.tsv").is_file()
    # per-query values beside every summary; intervals around the macro values; pairwise tests
    for row in all_settings.itertuples(index=False):
        pq = pd.read_parquet(res / "metrics" / row.model / row.variation / row.setting / "per_query.parquet")
        macro = pq.dropna().groupby("label")["ap@15"].mean().mean()
        assert abs(macro - row[all_settings.columns.get_loc("map@15")]) < 1e-12
    assert (all_settings["map@15_lo"] <= all_settings["map@15"]).all()
    assert (all_settings["map@15"] <= all_settings["map@15_hi"]).all()
    pairwise = pd.read_csv(res / "tables" / "pairwise.csv")
    # one pair x 18 metrics (the paper's 3, the panel's 15), best setting only (no PCA 100)
    assert len(pairwise) == (18 if n == 2 else 0)
    assert set(pairwise["metric"]) >= ({"map@15", "ndcg@15", "mrr", "rprec"} if n == 2 else set())
    assert (res / "figures" / "significance.png").is_file() and (res / "figures" / "significance.pdf").is_file()

    again = snakemake(venv_bin, tmp_path)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_bad_config_value_stops_the_workflow_naming_the_key(venv_bin, tmp_path):
    write_config(tmp_path)
    r = snakemake(venv_bin, tmp_path, "-n", "--config", "extraction={on_bad_audio: maybe}")
    assert r.returncode != 0
    assert "extraction.on_bad_audio: 'maybe' is not allowed; allowed values: 'skip', 'fail'" in r.stdout + r.stderr


def test_csv_collection_with_bad_audio(venv_bin, tmp_path, csv_collection, make_bad_audio):
    p = csv_collection(folder=tmp_path / "data")
    bad = make_bad_audio(p["audio_dir"])
    rows = [("a1", "Dog"), ("b1", "Rain"), ("truncated_wav", "Dog"), ("empty", "Rain")]
    csv_collection(rows, folder=tmp_path / "data")
    coll = {"name": "mine", "kind": "csv", **{k: str(v) for k, v in p.items()}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"collection": coll}))
    r = snakemake(venv_bin, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    badcsv = pd.read_csv(tmp_path / "results" / "mine" / "bad_audio.csv")
    assert sorted(badcsv["fname"]) == ["empty", "truncated_wav"]
    assert str(bad["empty"]) in set(badcsv["path"])
    log = (tmp_path / "results" / "mine" / "logs" / "manifest.log").read_text()
    assert f"bad audio, skipped: {bad['empty']}: empty file (0 bytes)" in log

    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"collection": coll, "extraction": {"on_bad_audio": "fail"}}))
    r = snakemake(venv_bin, tmp_path)  # params changed -> manifest re-runs, and now stops
    assert r.returncode != 0
    assert "2 unusable audio file(s) and extraction.on_bad_audio is 'fail'" in (
        tmp_path / "results" / "mine" / "logs" / "manifest.log"
    ).read_text()


def test_incremental_runs_plan_only_what_is_new(venv_bin, tmp_path):
    """After a full run: enabling a model plans only its jobs plus the summaries; adding a PCA
    size plans only the new settings; touching library code re-runs nothing."""
    models = {"aisfx": {"variations": ["x-sequential-ce"]}}
    write_config(tmp_path, models=models, grid={"aggregations": ["mean"], "pca": [10, "none"], "searches": ["mcss"]})
    assert snakemake(venv_bin, tmp_path).returncode == 0

    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["models"]["freesound"] = {"variations": ["freesound-extractor"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    plan = snakemake(venv_bin, tmp_path, "-n")
    assert plan.returncode == 0, plan.stderr
    assert job_counts(plan.stdout) == {"extract_shard": 1, "merge_embeddings": 1, "evaluate": 2, "tables": 1,
                                       "table_pages": 1, "figures": 1, "embedding_maps": 1, "all": 1, "total": 9}
    assert "aisfx" not in "".join(ln for ln in plan.stdout.splitlines() if ln.strip().startswith("wildcards:"))

    cfg["models"].pop("freesound")
    cfg["grid"]["pca"] = [5, 10, "none"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    plan = snakemake(venv_bin, tmp_path, "-n")
    assert job_counts(plan.stdout) == {"evaluate": 1, "tables": 1, "table_pages": 1, "figures": 1,
                                       "embedding_maps": 1, "all": 1, "total": 6}
    assert "pca=5" in plan.stdout and "pca=10" not in plan.stdout

    cfg["grid"]["pca"] = [10, "none"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    for f in ("extract.py", "evaluate.py", "models/aisfx.py"):
        (ROOT / "src" / "soundsim" / f).touch()  # shared code "edited": not a rerun trigger
    plan = snakemake(venv_bin, tmp_path, "-n")
    assert plan.returncode == 0 and "Nothing to be done" in plan.stdout + plan.stderr


@pytest.mark.slow
def test_a_paper_model_found_in_weights_dir_runs_end_to_end(venv_bin, tmp_path):
    """Enable a paper model and point weights_dir at a folder holding its official file name:
    the workflow extracts, evaluates and tabulates it (wav2clip, a small random checkpoint in
    the official format)."""
    import torch

    from soundsim.models import _wav2clip_net as net

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    enc, proj = net.ResNet((1, 1, 1, 1)), net.MLPLayers((512, 512, 512))
    sd = {"audio_encoder." + k: v for k, v in enc.state_dict().items()}
    sd.update({"audio_transform." + k: v for k, v in proj.state_dict().items()})
    torch.save(sd, weights / "Wav2CLIP.pt")
    cfg = write_config(tmp_path, {"wav2clip": {"variations": ["base"]}}, grid={**SMALL_GRID, "searches": ["mcss"]})
    cfg.write_text(cfg.read_text() + f"weights_dir: {weights}\n")
    r = snakemake(venv_bin, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert job_counts(r.stderr)["extract_shard"] == 1
    emb = store.read_embeddings(tmp_path / "results/demo/embeddings/wav2clip/base.h5")
    assert emb.embeddings.shape == (38, 512) and emb.attrs["weights"] == str(weights / "Wav2CLIP.pt")
    best = pd.read_csv(tmp_path / "results/demo/tables/best_settings.csv")
    assert best["model"].tolist() == ["wav2clip"] and best["map@15"].between(0, 1).all()
    (weights / "Wav2CLIP.pt").unlink()
    r = snakemake(venv_bin, tmp_path, "-n")
    assert r.returncode != 0 and "looked for " + str(weights / "Wav2CLIP.pt") in r.stdout + r.stderr
