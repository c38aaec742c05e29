"""Content- and code-keyed re-runs of the real workflow: a changed clip re-embeds that clip
only; a changed model module re-runs that model's jobs only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from soundsim import store

from conftest import ROOT, tone
from test_workflow import job_counts

pytestmark = pytest.mark.slow

GRID = {"aggregations": ["mean"], "pca": [4, "none"], "searches": ["mcss", "nns"]}


def write_collection(folder: Path, n: int = 10) -> dict[str, str]:
    """n clips of 1-3 s in two labels, WAV/FLAC at several rates."""
    audio = folder / "audio"
    audio.mkdir(parents=True)
    rows = []
    for i in range(n):
        sr = [16000, 22050, 44100][i % 3]
        ext = ".flac" if i % 4 == 3 else ".wav"
        sf.write(audio / f"clip{i:02d}{ext}", tone(1.0 + (i % 3), sr, 1 + i % 2, freq=180 + 90 * i, seed=i), sr)
        rows.append(f'clip{i:02d},"{"Low" if i < n // 2 else "High"}"\n')
    (folder / "gt.csv").write_text("fname,labels\n" + "".join(rows))
    return {"audio_dir": str(audio), "ground_truth": str(folder / "gt.csv")}


def write_config(workdir: Path, collection: dict, models: dict, shards: int = 2) -> None:
    cfg = {"collection": {"name": "mine", "kind": "csv", **collection}, "models": models, "grid": GRID,
           "extraction": {"shards": shards}, "evaluation": {"n_resamples": 100}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def run_snakemake(snakefile: Path, workdir: Path, *args: str, env: dict | None = None):
    exe = Path(sys.executable).parent / "snakemake"
    cmd = [str(exe), "-s", str(snakefile), "-d", str(workdir), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=workdir, env=env)


def planned_wildcards(plan: str) -> list[str]:
    return [ln.strip() for ln in plan.splitlines() if ln.strip().startswith("wildcards:")]


def test_changing_one_clip_re_embeds_that_clip_only(tmp_path):
    coll = write_collection(tmp_path / "data")
    write_config(tmp_path, coll, {"aisfx": {"variations": ["x-sequential-ce"]}})
    first = run_snakemake(ROOT / "Snakefile", tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    res = tmp_path / "results" / "mine"
    before = store.read_embeddings(res / "embeddings" / "aisfx" / "x-sequential-ce.h5")
    table_before = (res / "tables" / "all_settings.csv").read_text()
    assert before.attrs["n_reused"] == 0 and before.attrs["n_embedded"] == 10
    assert "Nothing to be done" in run_snakemake(ROOT / "Snakefile", tmp_path, "-n").stdout

    # the user replaces one clip's audio (same name, other content)
    changed = Path(coll["audio_dir"]) / "clip06.wav"
    sf.write(changed, tone(2.5, 22050, 1, freq=1234, seed=77), 22050)
    plan = run_snakemake(ROOT / "Snakefile", tmp_path, "-n")
    assert plan.returncode == 0, plan.stderr
    counts = job_counts(plan.stdout)
    assert counts["manifest"] == 1 and counts["extract_shard"] == 2 and counts["merge_embeddings"] == 1
    assert "Params have changed since last execution" in plan.stdout  # the manifest's audio_state

    second = run_snakemake(ROOT / "Snakefile", tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    after = store.read_embeddings(res / "embeddings" / "aisfx" / "x-sequential-ce.h5")
    assert after.fnames == before.fnames
    assert after.attrs["n_reused"] == 9 and after.attrs["n_embedded"] == 1
    for i, f in enumerate(before.fnames):
        same = np.array_equal(before.clip_rows(i), after.clip_rows(i))
        assert same == (f != "clip06"), f  # every other clip bit for bit, the changed one anew
    logs = "".join(p.read_text() for p in (res / "logs" / "extract" / "aisfx").glob("*.shard-*.log"))
    assert "5 clips: 4 reused from" in logs and "1 to embed" in logs  # the shard holding clip06
    assert "5 clips: 5 reused from" in logs and "0 to embed" in logs  # the other shard
    assert (res / "tables" / "all_settings.csv").read_text() != table_before  # the tables follow
    assert "Nothing to be done" in run_snakemake(ROOT / "Snakefile", tmp_path, "-n").stdout


def copy_project(dst: Path) -> Path:
    """A copy of the project (code, workflow, envs, profiles) that the test may edit."""
    dst.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "envs", "profiles", "src"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, dst / name)
    return dst


def test_changing_a_models_code_plans_that_models_jobs_only(tmp_path):
    proj = copy_project(tmp_path / "project")
    env = {**os.environ, "PYTHONPATH": str(proj / "src")}  # the copy's soundsim, in every job
    work = tmp_path / "work"
    work.mkdir()
    coll = write_collection(tmp_path / "data", n=8)
    write_config(work, coll, {"aisfx": {"variations": ["x-sequential-ce"]},
                              "freesound": {"variations": ["freesound-extractor"]}}, shards=1)
    snakefile = proj / "Snakefile"
    first = run_snakemake(snakefile, work, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Nothing to be done" in run_snakemake(snakefile, work, "-n", env=env).stdout

    module = proj / "src" / "soundsim" / "models" / "aisfx.py"
    text = module.read_text()
    # a docstring or comment changes nothing
    module.write_text(text.replace('"""aiSFX', '"""(edited docstring) aiSFX', 1) + "\n# a comment\n")
    assert "Nothing to be done" in run_snakemake(snakefile, work, "-n", env=env).stdout
    # code does: aisfx's jobs and the summaries, nothing of freesound
    module.write_text(text + "\n\ndef _a_new_helper():\n    return 1\n")
    plan = run_snakemake(snakefile, work, "-n", env=env)
    assert plan.returncode == 0, plan.stderr
    assert "Params have changed since last execution" in plan.stdout  # the code_version param
    counts = job_counts(plan.stdout)
    assert counts["extract_shard"] == 1 and counts["merge_embeddings"] == 1 and counts["evaluate"] == 2
    assert "manifest" not in counts
    wild = planned_wildcards(plan.stdout)
    assert wild and all("freesound" not in w for w in wild) and any("model=aisfx" in w for w in wild)
    # the evaluation's code: every evaluate job, no extraction
    module.write_text(text)
    metrics = proj / "src" / "soundsim" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\n\n_UNUSED = 0\n")
    counts = job_counts(run_snakemake(snakefile, work, "-n", env=env).stdout)
    assert counts["evaluate"] == 4 and "extract_shard" not in counts  # 2 PCA settings x 2 models
