"""The SLURM profile, tested on a real single-node cluster on localhost.

Root only (the cluster is started by .ci/slurm-up.sh: apt packages + daemons); skipped
cleanly otherwise. The run is wrapped in a timeout: a mis-set status command makes
Snakemake wait forever."""

from __future__ import annotations

import os
import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("the SLURM test starts a cluster and needs root")
    if shutil.which("apt-get") is None and shutil.which("sinfo") is None:
        pytest.skip("neither apt-get nor SLURM available")
    r = subprocess.run([ROOT / ".ci" / "slurm-up.sh"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"could not start a local SLURM cluster: {r.stderr.strip()[-500:]}")
    assert "idle" in r.stdout, r.stdout
    return True


def test_demo_workflow_through_the_slurm_profile(cluster, tmp_path, venv_bin):
    cfg = {
        "collection": {"name": "demo", "kind": "demo", "clips_per_class": 2},
        "models": {"aisfx": {"variations": ["x-sequential-ce"]}},
        "extraction": {"shards": 2},
        "grid": {"aggregations": ["mean"], "pca": [10, "none"], "searches": ["mcss", "nns"]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = ["timeout", "-k", "10", "900", str(venv_bin / "snakemake"), "-s", str(ROOT / "Snakefile"),
           "-d", str(tmp_path), "--profile", str(ROOT / "profiles" / "slurm")]
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=960)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    submitted = [ln for ln in out.splitlines() if "submitted with SLURM jobid" in ln]
    # demo_data, manifest, 2 shards, merge and the evaluate group go through sbatch
    assert len(submitted) >= 5, out[-4000:]
    assert any("group_evaluate" in ln for ln in submitted), "evaluate jobs are bundled in one group job"
    res = tmp_path / "results" / "demo"
    assert len(pd.read_csv(res / "manifest.csv")) == 38
    summaries = sorted(res.glob("metrics/aisfx/x-sequential-ce/*/summary.json"))
    assert [p.parent.name for p in summaries] == [
        "agg-mean_pca-10_search-mcss", "agg-mean_pca-10_search-nns",
        "agg-mean_pca-none_search-mcss", "agg-mean_pca-none_search-nns",
    ]
