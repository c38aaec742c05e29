"""Approximate search in the workflow (grid.indexes), run for real on the demo collection:
rule evaluate_indexes per model variation, tables/indexes.csv, its page and figures/indexes."""

from __future__ import annotations

import pandas as pd
import pytest
from test_workflow import job_counts, snakemake, write_config

pytestmark = pytest.mark.slow

GRID = {"aggregations": ["mean"], "pca": [10, "none"], "searches": ["mcss", "nns"],
        "indexes": ["exact", "hnsw", "ivf-pq"]}
# aisfx runs in the main environment and extracts the demo quickly; the three default models are run
# by the shipped config (README)
MODELS = {"aisfx": {"variations": ["x-sequential-ce"]}}


def test_demo_run_evaluates_each_models_best_setting_under_each_index(venv_bin, tmp_path):
    write_config(tmp_path, models=MODELS, grid=GRID)
    plan = snakemake(venv_bin, tmp_path, "-n")
    assert plan.returncode == 0, plan.stderr
    counts = job_counts(plan.stdout)
    assert (counts["evaluate_indexes"], counts["index_table"], counts["index_figure"]) == (1, 1, 1)

    run = snakemake(venv_bin, tmp_path, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    res = tmp_path / "results" / "demo"
    idx = pd.read_csv(res / "tables" / "indexes.csv")
    best = pd.read_csv(res / "tables" / "best_settings.csv").set_index("model")
    assert sorted(idx["model"].unique()) == ["aisfx"]
    for model, g in idx.groupby("model"):
        assert list(g["index"]) == ["exact", "hnsw", "ivf-pq"]
        assert set(g["setting"]) == {best.loc[model, "setting"]}  # the best setting of best_settings.csv
        exact = g.iloc[0]
        for c in ("map@15", "map@150", "family_map@15"):
            assert abs(exact[c] - best.loc[model, c]) < 1e-9, (model, c)
        assert exact["recall@15"] == 1.0 and exact["delta_map@15"] == 0.0
        assert (g["n_clips"] == 38).all() and (g["k"] == 37).all()  # K = min(150, N - 1)
        assert g["recall@15"].between(0, 1).all() and (g["memory_bytes_per_sound"] > 0).all()
        assert g["mr1@37"].notna().all()
    log = (res / "logs" / "evaluate_indexes" / "aisfx" / "x-sequential-ce.log").read_text()
    assert "best setting" in log and "ERROR" not in log
    assert (res / "figures" / "indexes.png").stat().st_size > 10_000 and (res / "figures" / "indexes.pdf").is_file()
    assert "recall@15" in (res / "tables" / "indexes.html").read_text()

    again = snakemake(venv_bin, tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_bad_index_parameter_stops_the_workflow_naming_the_key(venv_bin, tmp_path):
    write_config(tmp_path, models={"aisfx": {"variations": ["x-sequential-ce"]}},
                 grid={**GRID, "index_params": {"hnsw": {"nprobe": 4}}})
    r = snakemake(venv_bin, tmp_path, "-n")
    assert r.returncode == 2
    assert "grid.index_params.hnsw: index type 'hnsw' has no parameter(s) nprobe" in r.stdout + r.stderr


def test_without_indexes_no_index_jobs_are_planned(venv_bin, tmp_path):
    write_config(tmp_path, models={"aisfx": {"variations": ["x-sequential-ce"]}}, grid={**GRID, "indexes": []})
    plan = snakemake(venv_bin, tmp_path, "-n")
    assert plan.returncode == 0, plan.stderr
    assert not {"evaluate_indexes", "index_table", "index_figure"} & set(job_counts(plan.stdout))
