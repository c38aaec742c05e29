"""Learned similarity heads in the workflow, run for real: a training demo collection (its own seed and
clip names) and the evaluated demo, aisfx embeddings of both, train_head, apply_head, the grid over the
head model, tables/models.csv rows head-*, tables/heads.csv and the figures; re-runs; the overlap refusal."""

from __future__ import annotations

import json
import shutil

import h5py
import pandas as pd
import pytest
import yaml
from test_workflow import job_counts, snakemake

pytestmark = pytest.mark.slow

GRID = {"aggregations": ["mean"], "pca": [8, "none"], "searches": ["mcss", "nns"], "indexes": []}
MODELS = {"aisfx": {"variations": ["x-sequential-ce"]}}
HEADS = {
    "head-aisfx": {"base": "aisfx", "dim": 16, "hidden": 32, "epochs": 8, "patience": 4},
    "head-aisfx-disjoint": {"base": "aisfx", "architecture": "linear", "dim": 16, "epochs": 8, "patience": 4,
                            "class_disjoint": True},
}


def write_config(workdir, heads=None, train=None, collection=None):
    cfg = {
        "collection": collection or {"name": "demo", "kind": "demo", "clips_per_class": 2},
        "train_collection": train or {"name": "demo-train", "kind": "demo", "seed": 3, "fname_prefix": "tr",
                                      "clips_per_class": 5},
        "models": MODELS,
        "grid": GRID,
        "evaluation": {"n_resamples": 100},
        "heads": heads if heads is not None else HEADS,
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_heads_are_trained_applied_and_evaluated_like_models(venv_bin, tmp_path):
    write_config(tmp_path)
    plan = snakemake(venv_bin, tmp_path, "-n")
    assert plan.returncode == 0, plan.stderr
    counts = job_counts(plan.stdout)
    assert (counts["train_head"], counts["apply_head"], counts["heads_report"]) == (2, 2, 1)
    assert counts["manifest"] == 2 and counts["demo_data"] == 2  # both collections, same rules

    run = snakemake(venv_bin, tmp_path, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    res, train = tmp_path / "results" / "demo", tmp_path / "results" / "demo-train"
    assert (train / "embeddings" / "aisfx" / "x-sequential-ce.h5").is_file()
    assert pd.read_csv(train / "manifest.csv")["fname"].str.startswith("tr").all()

    models = pd.read_csv(res / "tables" / "models.csv").set_index("model")
    assert {"aisfx", "head-aisfx", "head-aisfx-disjoint"} <= set(models.index)
    assert models.loc["head-aisfx", "variation"] == "x-sequential-ce"
    assert models.loc["head-aisfx", "best_map@15_lo"] <= models.loc["head-aisfx", "best_map@15"]

    with h5py.File(res / "embeddings" / "head-aisfx" / "x-sequential-ce.h5") as f:
        attrs = dict(f.attrs)
        assert f["embeddings"].shape == (38, 16)
    meta = json.loads((res / "heads" / "head-aisfx" / "head.json").read_text())
    assert attrs["base_model"] == "aisfx" and attrs["base_aggregation"] == "mean"
    assert attrs["head_fingerprint"] == meta["fingerprint"] and meta["heldout_labels"] == []
    assert meta["n_train"] + meta["n_val"] == 95 and meta["train_collection"] == "demo-train"

    vocabulary = set(pd.read_csv(res / "labels.csv")["label"])
    assert set(meta["train_labels"]) == vocabulary  # the demo's labels, as the manifest has them
    disjoint = json.loads((res / "heads" / "head-aisfx-disjoint" / "head.json").read_text())
    assert disjoint["heldout_labels"] and not set(disjoint["heldout_labels"]) & set(disjoint["train_labels"])
    assert set(disjoint["heldout_labels"]) | set(disjoint["train_labels"]) <= vocabulary
    assert "Music" in disjoint["train_labels"]  # a parent label is never held out

    heads = pd.read_csv(res / "tables" / "heads.csv")
    assert set(heads["head"]) == {"head-aisfx", "head-aisfx-disjoint"}
    subsets = heads.groupby("head")["subset"].agg(lambda s: sorted(set(s)))
    assert subsets["head-aisfx"] == ["all"] and subsets["head-aisfx-disjoint"] == ["all", "seen", "unseen"]
    row = heads[(heads["head"] == "head-aisfx") & (heads["subset"] == "all") & (heads["metric"] == "map@15")].iloc[0]
    assert row["head_value"] == pytest.approx(models.loc["head-aisfx", "best_map@15"])
    assert row["base_value"] == pytest.approx(models.loc["aisfx", "best_map@15"])
    training = pd.read_csv(res / "heads" / "head-aisfx" / "training.csv")
    assert list(training.columns[:3]) == ["epoch", "train_loss", "val_map@15"] and training["best"].sum() == 1
    for fig in ("heads", "heads_training"):
        assert (res / "figures" / f"{fig}.png").stat().st_size > 10_000 and (res / "figures" / f"{fig}.pdf").is_file()

    again = snakemake(venv_bin, tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # a changed entry re-trains that head only; the training collection is not extracted again
    changed = {**HEADS, "head-aisfx-disjoint": {**HEADS["head-aisfx-disjoint"], "seed": 7}}
    write_config(tmp_path, heads=changed)
    plan = snakemake(venv_bin, tmp_path, "-n")
    assert plan.returncode == 0, plan.stderr
    counts = job_counts(plan.stdout)
    assert counts["train_head"] == 1 and counts["apply_head"] == 1
    assert "extract_shard" not in counts and "merge_embeddings" not in counts
    assert "head=head-aisfx-disjoint" in plan.stdout and "head=head-aisfx\n" not in plan.stdout

    # the same seed trains the same head, bit for bit (here: through the workflow, forced)
    before = meta["fingerprint"]
    write_config(tmp_path)
    forced = snakemake(venv_bin, tmp_path, "--forcerun", "train_head", "--until", "train_head")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert json.loads((res / "heads" / "head-aisfx" / "head.json").read_text())["fingerprint"] == before


def test_a_training_collection_sharing_clips_is_refused(venv_bin, tmp_path, csv_collection):
    """Two csv collections: the training one holds a copy of an evaluated clip under another name.
    Rule train_head stops, its log lists the clip; nothing is trained."""
    ev = csv_collection(folder=tmp_path / "ev")
    tr = csv_collection(rows=[("x1", "Dog"), ("x2", "Rain"), ("x3", "Bark"), ("x4", "Dog")], folder=tmp_path / "tr")
    for f in tr["audio_dir"].iterdir():
        f.unlink()
    for i, src in enumerate(["a1.wav", "b1.wav", "c1.wav"]):
        shutil.copy(ev["audio_dir"] / src, tr["audio_dir"] / f"x{i + 1}.wav")
    shutil.copy(ev["audio_dir"] / "a2.flac", tr["audio_dir"] / "x4.flac")

    def section(c, name):
        return {"name": name, "kind": "csv", **{k: str(c[k]) for k in ("audio_dir", "ground_truth", "vocabulary",
                                                                       "families")}}

    write_config(tmp_path, heads={"head-aisfx": {"base": "aisfx", "epochs": 2}},
                 collection=section(ev, "ev"), train=section(tr, "tr"))
    r = snakemake(venv_bin, tmp_path, "results/ev/heads/head-aisfx/head.pt", timeout=900)
    assert r.returncode != 0
    log = (tmp_path / "results" / "ev" / "logs" / "train_head" / "head-aisfx.log").read_text()
    assert "share 4 clip(s)" in log
    for i, f in enumerate(["a1", "b1", "c1", "a2"]):
        assert f"x{i + 1} = collection" in log and f" {f} (same audio content" in log
    assert not (tmp_path / "results" / "ev" / "heads" / "head-aisfx" / "head.pt").exists()
