"""Training-data metadata (soundsim.training_data): every built-in model declares what it
was trained on, a collection says which dataset it is, and the tables, their pages, the
models figure and `soundsim models` flag a model evaluated on a collection it was trained
on. The acceptance check: `soundsim tables --config` on a copy of configs/fsd50k.yaml,
pointed at a tiny FSD50K-shaped collection and results tree written here by the real
evaluator, flags the MS-CLAP rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, SCHEMA
from soundsim import models as registry
from soundsim import plan
from soundsim import tables as T
from soundsim import training_data as TD
from soundsim.cli import main
from soundsim.config import load_config, load_yaml, validate_config
from soundsim.datasets import collection_dataset
from soundsim.errors import ConfigError
from soundsim.evaluate import evaluate_grid
from soundsim.layout import Layout
from soundsim.models import ModelInfo
from soundsim.store import read_embeddings, write_embeddings

# --------------------------------------------------------------------------- declarations


def test_every_builtin_model_declares_its_training_data_with_known_names():
    found = registry.available()
    assert len(found) >= 16
    for name, inf in found.items():
        assert inf.trained_on is not None, f"{name}: trained_on not declared"
        assert isinstance(inf.trained_on, tuple) and all(isinstance(d, str) for d in inf.trained_on), name
        assert TD.unknown_datasets(inf.trained_on) == [], f"{name}: unknown dataset names"
        assert all(TD.canonical_dataset(d) == d for d in inf.trained_on), f"{name}: use the canonical names"
        assert len(set(inf.trained_on)) == len(inf.trained_on), f"{name}: a dataset listed twice"
        assert set(inf.trained_on_notes) <= set(inf.trained_on), f"{name}: a note for an undeclared dataset"
    assert found["freesound"].trained_on == ()  # hand-made features: nothing learned


def test_dataset_names_and_aliases_name_one_dataset_each():
    seen: dict[str, str] = {}
    for canonical, aliases in TD.DATASETS.items():
        for n in (canonical, *aliases):
            key = TD.dataset_key(n)
            assert seen.setdefault(key, canonical) == canonical, f"{n!r} names {seen[key]} and {canonical}"
    assert TD.normalise_dataset("esc50") == "ESC-50"
    assert TD.normalise_dataset(" ClothoV2") == "Clotho"
    assert TD.normalise_dataset("fsd-50k") == "FSD50K"
    assert TD.normalise_dataset("  My studio SFX ") == "My studio SFX"  # unknown names are kept
    assert TD.canonical_dataset("My studio SFX") is None


def test_check_trained_on_from_a_config_value():
    assert TD.check_trained_on(["fsd50k", "AudioSet", "FSD-50K", "own data"], "models.x.trained_on") == (
        "FSD50K", "AudioSet", "own data")
    assert TD.check_trained_on([], "w") == ()
    assert TD.check_trained_on(None, "w") is None
    for bad in ("FSD50K", 3, [""], ["ok", 5]):
        with pytest.raises(ConfigError, match="models.x.trained_on"):
            TD.check_trained_on(bad, "models.x.trained_on")


# --------------------------------------------------------------------------- the flag


def _info(trained_on, notes=None) -> ModelInfo:
    return ModelInfo(name="toy", variations=("v",), default_variation="v", sample_rate=16000, level="clip",
                     hop=None, dim=8, env="soundsim", description="toy", trained_on=trained_on,
                     trained_on_notes=notes or {})


def test_training_overlap_hand_cases():
    dev = _info(("FSD50K", "AudioSet"), {"FSD50K": "dev split"})
    assert TD.training_overlap(dev, "FSD50K") == TD.TrainingOverlap(
        "true", "trained on FSD50K (dev split): not zero-shot")
    assert TD.training_overlap(dev, "fsd-50k").flag == "true"  # aliases match
    assert TD.training_overlap(dev, "audio set") == TD.TrainingOverlap("true", "trained on AudioSet: not zero-shot")
    assert TD.training_overlap(dev, "Clotho") == TD.TrainingOverlap("false", "")
    assert TD.training_overlap(dev, TD.DEMO_DATASET).flag == "false"
    assert TD.training_overlap(_info(()), "FSD50K") == TD.TrainingOverlap("false", "")  # no training data
    assert TD.training_overlap(_info(None), "FSD50K") == TD.TrainingOverlap(
        "unknown", "its training data is not declared")
    assert TD.training_overlap(None, "FSD50K").flag == "unknown"  # a model the registry does not know
    assert TD.training_overlap(dev, None) == TD.TrainingOverlap(
        "unknown", "the collection's dataset is not declared (collection.dataset)")
    assert TD.training_overlap(_info(("own data",)), "OWN-DATA").flag == "true"  # unknown names: by key
    assert TD.training_overlap(dev, "FSD50K").trained_on_collection
    assert TD.describe_training(dev) == "FSD50K (dev split), AudioSet"
    assert TD.describe_training(_info(())) == "none (no training)"
    assert TD.describe_training(_info(None)) == TD.describe_training(None) == "not declared"
    assert TD.short_training(_info(("A", "B", "C", "D", "E"))) == "A, B, C +2"


def test_the_registry_on_fsd50k():
    """MS-CLAP 2022/2023 and Pengi were trained on pairs that include FSD50K, FSD-SINet on its
    dev split; the other models of the paper's Table II were not."""
    flags = {n: TD.training_overlap(inf, "FSD50K") for n, inf in registry.available().items()}
    flagged = {n for n, f in flags.items() if f.flag == "true"}
    assert flagged == {"clap-2022", "clap-2023", "pengi", "fsd-sinet"}
    assert "dev split" in flags["fsd-sinet"].note and flags["clap-2023"].note.startswith("trained on FSD50K")
    assert all(f.flag == "false" for n, f in flags.items() if n not in flagged)


def test_collection_dataset_and_the_schema():
    schema = load_yaml(SCHEMA)
    fsd = {"name": "f", "kind": "fsd50k", "audio_dir": "a", "ground_truth": "g", "vocabulary": "v", "ontology": "o"}
    assert collection_dataset({"collection": fsd}) == "FSD50K"
    assert collection_dataset({**fsd, "dataset": "fsd-50k"}) == "FSD50K"
    with pytest.raises(ConfigError, match="collection.dataset: 'Clotho' contradicts collection.kind fsd50k"):
        collection_dataset({**fsd, "dataset": "Clotho"})
    csv = {"name": "c", "kind": "csv", "audio_dir": "a", "ground_truth": "g"}
    assert collection_dataset(csv) is None
    cfg = validate_config({"collection": {**csv, "dataset": "esc50"}}, schema)
    assert collection_dataset(cfg) == "ESC-50"
    assert collection_dataset({**csv, "dataset": "my own sounds"}) == "my own sounds"
    assert collection_dataset({"name": "demo", "kind": "demo"}) == TD.DEMO_DATASET
    with pytest.raises(ConfigError, match="synthetic"):
        collection_dataset({"name": "demo", "kind": "demo", "dataset": "FSD50K"})
    with pytest.raises(ConfigError, match="collection.dataset"):
        validate_config({"collection": {**csv, "dataset": 5}}, schema)


# --------------------------------------------------------------------------- tables on an FSD50K-shaped collection

LABELS = ["Bark", "Meow", "Rain", "Wind", "Guitar", "Piano"]
FAMILIES = {"Animal": ["Bark", "Meow"], "Natural_sounds": ["Rain", "Wind"], "Music": ["Guitar", "Piano"]}
N_CLIPS = 120  # > 100: the paper's fixed setting (PCA 100) runs


def _fsd50k_config(tmp_path):
    """A copy of configs/fsd50k.yaml with its 14 models (first variation each, the paper's
    best), pointed at a tiny FSD50K-shaped collection (eval.csv, vocabulary.csv, ontology)
    and a results tree under ``tmp_path``; the grid cut to the paper's fixed setting."""
    cfg = yaml.safe_load((ROOT / "configs" / "fsd50k.yaml").read_text())
    gt_dir = tmp_path / "FSD50K.ground_truth"
    gt_dir.mkdir()
    fnames = [str(100000 + i) for i in range(N_CLIPS)]
    labels = [[LABELS[i % 6]] + (["Rain"] if i % 7 == 0 and i % 6 != 2 else []) for i in range(N_CLIPS)]
    pd.DataFrame({"fname": fnames, "labels": [",".join(x) for x in labels],
                  "mids": [",".join(f"/m/{x.lower()}" for x in ls) for ls in labels]}).to_csv(
        gt_dir / "eval.csv", index=False)
    pd.DataFrame({"label": LABELS, "mid": [f"/m/{x.lower()}" for x in LABELS]}).to_csv(
        gt_dir / "vocabulary.csv", header=False)
    (tmp_path / "FSD50K.eval_audio").mkdir()
    cfg["collection"].update(audio_dir=str(tmp_path / "FSD50K.eval_audio"), ground_truth=str(gt_dir / "eval.csv"),
                             vocabulary=str(gt_dir / "vocabulary.csv"), ontology=str(tmp_path / "ontology.json"))
    cfg["results"] = str(tmp_path / "results")
    cfg["weights_dir"] = str(tmp_path / "weights")
    cfg["evaluation"] = {"n_resamples": 100, "paper_table2": str(tmp_path / "no-table2.csv")}
    cfg["grid"] = {"aggregations": ["mean"], "pca": [100], "searches": ["mcss"]}
    cfg["models"] = {n: {"variations": [m["variations"][0]]} for n, m in cfg["models"].items()}
    path = tmp_path / "fsd50k.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, pd.DataFrame({"fname": fnames, "labels": labels})


def _evaluate_configured(cfg_path, clips, tmp_path) -> list:
    """Real embeddings (HDF5, 128 dims, labels as clusters) and the real evaluator's
    metrics of every configured setting, under the config's results tree."""
    cfg = load_config(cfg_path, SCHEMA)
    settings = plan.configured_settings(cfg, N_CLIPS)
    rng = np.random.default_rng(0)
    lay = Layout.from_config(cfg)
    for model, variation in plan.model_variations(cfg):
        inf = registry.info(model)
        centres = {lab: rng.standard_normal(128) * 2 for lab in LABELS}
        frames = 1 if inf.level == "clip" else 3
        data = [(sum(centres[x] for x in ls) + rng.standard_normal((frames, 128))).astype(np.float32)
                for ls in clips["labels"]]
        h5 = write_embeddings(tmp_path / f"{model}-{variation}.h5", clips["fname"].tolist(), data,
                              {"model": model, "variation": variation, "level": inf.level})
        evaluate_grid(read_embeddings(h5), clips, FAMILIES, aggregations=["none" if inf.level == "clip" else "mean"],
                      pcas=[100], searches=["mcss"], cutoffs=[15, 150],
                      out_dir=lay.metrics_variation_dir(model, variation), write_rankings_files=False)
    return settings


@pytest.fixture(scope="module")
def fsd50k_tables(tmp_path_factory):
    """`soundsim tables --config <copy of configs/fsd50k.yaml>` on the tiny tree: its tables folder."""
    tmp_path = tmp_path_factory.mktemp("fsd50k")
    cfg_path, clips = _fsd50k_config(tmp_path)
    settings = _evaluate_configured(cfg_path, clips, tmp_path)
    assert len(settings) == 14
    assert main(["-q", "tables", "--config", str(cfg_path), "--schema", str(SCHEMA)]) == 0
    return Layout.from_config(load_config(cfg_path, SCHEMA)).tables_dir, cfg_path


def test_on_configs_fsd50k_ms_clap_rows_carry_the_training_data_flag(fsd50k_tables):
    tables_dir, _ = fsd50k_tables
    models = T.read_table(tables_dir / "models.csv").set_index("model")
    assert len(models) == 14 and not models["map@15"].isna().any()  # the fixed setting was evaluated
    flag = models[TD.FLAG_COLUMN]
    assert flag["clap-2022"] == "true" and flag["clap-2023"] == "true"
    assert set(flag[flag == "true"].index) == {"clap-2022", "clap-2023", "pengi", "fsd-sinet"}
    assert set(flag[flag != "true"]) == {"false"}  # laion-clap, beats, ... every other model
    assert models.loc["clap-2022", "training_note"] == ("trained on FSD50K (part of its 128K audio-text pairs): "
                                                        "not zero-shot")
    assert "dev split" in models.loc["fsd-sinet", "training_note"]
    assert models.loc["laion-clap", "training_note"] == ""
    assert models.loc["freesound", "trained_on"] == "none (no training)"
    assert models.loc["clap-2023", "trained_on"].startswith("FSD50K (part of its 4.6M audio-text pairs), Clotho")
    assert list(models.columns)[-1] == "note"


def test_every_table_with_a_model_row_carries_the_flag(fsd50k_tables):
    tables_dir, _ = fsd50k_tables
    expect = T.read_table(tables_dir / "models.csv").set_index("model")[TD.FLAG_COLUMN].to_dict()
    for key in ("all_settings", "best_settings", "families", "labels"):
        t = T.read_table(tables_dir / f"{key}.csv")
        assert len(t) and (t[TD.FLAG_COLUMN] == t["model"].map(expect)).all(), key
    pw = T.read_table(tables_dir / "pairwise.csv")
    assert len(pw)
    for side in ("a", "b"):
        assert (pw[f"{side}_{TD.FLAG_COLUMN}"] == pw[side].map(expect)).all()


def test_models_md_page_and_figure_mark_and_explain_the_flag(fsd50k_tables, tmp_path):
    tables_dir, _ = fsd50k_tables
    md = (tables_dir / "models.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert "clap-2022 †" in rows and "clap-2023 †" in rows and "fsd-sinet †" in rows
    assert "laion-clap" in rows and "beats" in rows and "laion-clap †" not in rows
    assert "†: trained on data that includes this collection's dataset" in md
    assert "- clap-2022: † trained on FSD50K (part of its 128K audio-text pairs): not zero-shot" in md

    from soundsim.table_pages import write_table_pages

    page = write_table_pages({"models": tables_dir / "models.csv"}, {"models": tmp_path / "models.html"},
                             collection="fsd50k_eval")["models"].read_text()
    assert "clap-2022 †" in page and "laion-clap †" not in page and "not zero-shot" in page

    from soundsim.figures import model_comparison_figure

    fig = model_comparison_figure(T.read_table(tables_dir / "models.csv"), "fsd50k_eval")
    ticks = [t.get_text().splitlines()[0] for t in fig.axes[0].get_yticklabels()]
    assert "clap-2022 / 2022 †" in ticks and "laion-clap / 630k-fusion-best" in ticks
    assert "† trained on data that includes this collection" in fig._suptitle.get_text()


def test_soundsim_models_shows_training_data(fsd50k_tables, capsys):
    _, cfg_path = fsd50k_tables
    assert main(["models", "--training-data", "--config", str(cfg_path), "--schema", str(SCHEMA)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["model", "on", "FSD50K", "trained", "on", "(paper", "/", "model", "card)"]
    lines = {line.split()[0]: line for line in out[1:]}
    assert lines["clap-2022"].split()[1:3] == ["true", "†"] and "FSD50K (part of its 128K" in lines["clap-2022"]
    assert lines["laion-clap"].split()[1] == "false" and "LAION-Audio-630K" in lines["laion-clap"]
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].rstrip().endswith("trained on")
    assert any(line.startswith("freesound") and line.rstrip().endswith("none") for line in out)


def test_undeclared_csv_dataset_gives_unknown_and_one_sentence(tmp_path):
    """A csv collection without collection.dataset: every flag unknown, said once."""
    from test_tables import build_metrics

    from soundsim.layout import find_settings

    settings = find_settings(build_metrics(tmp_path))
    reg = {n: dataclasses.replace(_info(("FSD50K",)), name=n) for n in ("framey", "clippy")}
    paths = T.write_tables(settings, tmp_path / "tables", registry=reg, n_resamples=100,
                           dataset=collection_dataset({"name": "c", "kind": "csv"}))
    models = T.read_table(paths["models"])
    assert set(models[TD.FLAG_COLUMN]) == {"unknown"}
    md = paths["models_md"].read_text()
    assert "whether a model was trained on this collection is unknown (the collection's dataset is not declared" in md
    assert "†" not in md
    paths = T.write_tables(settings, tmp_path / "tables2", registry=reg, n_resamples=100, dataset="fsd-50k")
    assert set(T.read_table(paths["models"])[TD.FLAG_COLUMN]) == {"true"}


@pytest.mark.slow
def test_rule_tables_flags_ms_clap_on_the_fsd50k_config(tmp_path, venv_bin):
    """The workflow's tables rule (the collection's dataset through its params) on the
    same tiny tree: Snakemake runs only rule tables, over the metrics written here; the
    shipped config.yaml's own models are disabled, the copy's weights are stand-in files
    (the tables read none)."""
    import subprocess

    cfg_path, clips = _fsd50k_config(tmp_path)
    _evaluate_configured(cfg_path, clips, tmp_path)
    cfg = yaml.safe_load(cfg_path.read_text())
    for name in yaml.safe_load((ROOT / "config.yaml").read_text())["models"]:
        cfg["models"].setdefault(name, {"enabled": False})
    weights = tmp_path / "weights"
    weights.mkdir()
    for name, m in cfg["models"].items():
        official = registry.info(name).weight_files.get((m.get("variations") or [""])[0])
        if official:
            (weights / official).write_bytes(b"stand-in")
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = Layout.from_config(load_config(cfg_path, SCHEMA)).table("models")
    r = subprocess.run([str(venv_bin / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--cores", "1",
                        "--configfile", str(cfg_path), "--allowed-rules", "tables", "--", str(target)],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    models = T.read_table(target).set_index("model")
    assert models.loc["clap-2022", TD.FLAG_COLUMN] == "true" and models.loc["clap-2023", TD.FLAG_COLUMN] == "true"
    assert models.loc["laion-clap", TD.FLAG_COLUMN] == "false" and models.loc["beats", TD.FLAG_COLUMN] == "false"
