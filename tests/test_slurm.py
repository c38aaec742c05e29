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

#: the local test cluster's workarounds (no accounting), kept out of profiles/slurm
TEST_PROFILE = ROOT / "tests" / "profiles" / "local-slurm"


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
           "-d", str(tmp_path), "--profile", str(ROOT / "profiles" / "slurm"),
           "--workflow-profile", str(TEST_PROFILE)]
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


def test_gpu_model_on_a_cluster_without_gpus(cluster, tmp_path, venv_bin):
    """A model that asks for a GPU (beats: gpu=1 -> sbatch --gpus=1) runs on a GPU-less
    cluster with the documented override `--set-resources extract_shard:gpu=0`
    (a small random BEATs checkpoint in the official format, found through weights_dir)."""
    import torch

    from soundsim.models import _beats_net

    cfg_net = dict(input_patch_size=16, embed_dim=24, conv_bias=False, encoder_layers=2, encoder_embed_dim=32,
                   encoder_ffn_embed_dim=48, encoder_attention_heads=4, activation_fn="gelu",
                   layer_wise_gradient_decay_ratio=0.6, layer_norm_first=False, deep_norm=True, dropout=0.0,
                   attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.05, dropout_input=0.0,
                   conv_pos=16, conv_pos_groups=4, relative_position_embedding=True, num_buckets=32,
                   max_distance=80, gru_rel_pos=True, finetuned_model=False, predictor_dropout=0.0,
                   predictor_class=527)
    torch.manual_seed(0)
    sd = _beats_net.BEATs(_beats_net.BEATsConfig.from_dict(cfg_net)).state_dict()
    for k, v in sd.items():  # random weights (a fresh module's weight-norm direction is all zeros)
        v.copy_(torch.randn_like(v) * (0.5 if v.ndim > 1 else 0.1) + (1.0 if k.endswith("norm.weight") else 0.0))
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save({"cfg": cfg_net, "model": sd}, weights / "BEATs_iter3_plus_AS2M.pt")
    cfg = {
        "collection": {"name": "demo", "kind": "demo", "clips_per_class": 2},
        "weights_dir": str(weights),
        "models": {"beats": {"variations": ["iter3_plus_AS2M"]}},
        "extraction": {"shards": 1},
        "grid": {"aggregations": ["mean"], "pca": ["none"], "searches": ["mcss"]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = ["timeout", "-k", "10", "900", str(venv_bin / "snakemake"), "-s", str(ROOT / "Snakefile"),
           "-d", str(tmp_path), "--profile", str(ROOT / "profiles" / "slurm"),
           "--workflow-profile", str(TEST_PROFILE), "--set-resources", "extract_shard:gpu=0"]
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=960)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert any("rule_extract_shard" in ln and "submitted with SLURM jobid" in ln for ln in out.splitlines())
    best = pd.read_csv(tmp_path / "results" / "demo" / "tables" / "best_settings.csv")
    assert best["model"].tolist() == ["beats"] and best["map@15"].between(0, 1).all()
