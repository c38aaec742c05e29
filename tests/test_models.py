"""The model registry and the aisfx model (bundled weights, and a random checkpoint of the same architecture)."""

from __future__ import annotations

import numpy as np
import pytest

from soundsim import models
from soundsim.errors import ConfigError

from conftest import ROOT, tone


def test_registry_lists_models_with_complete_info():
    avail = models.available()
    assert "aisfx" in avail
    for name, inf in avail.items():
        assert inf.name == name
        assert inf.default_variation in inf.variations
        assert inf.level in ("frame", "clip")
        assert (inf.hop is None) == (inf.level == "clip") or inf.hop is not None
        assert inf.sample_rate > 0 and all(inf.dim_of(v) > 0 for v in inf.variations)
        assert inf.weights in ("bundled", "required")
        if inf.env != "soundsim":
            assert (ROOT / "envs" / f"{inf.env}.txt").is_file(), f"{name}: envs/{inf.env}.txt missing"
        assert (ROOT / "envs" / f"{inf.env}.yaml").is_file(), f"{name}: envs/{inf.env}.yaml missing"


def test_unknown_model_and_variation():
    with pytest.raises(ConfigError, match="models.nope: unknown model; known models: .*aisfx"):
        models.get("nope")
    with pytest.raises(ConfigError, match="'v9' is not a variation of aisfx; allowed values: x-sequential-ce"):
        models.load("aisfx", "v9")
    with pytest.raises(ConfigError) as exc:
        models.check_models_config({"nope": {}, "aisfx": {"variations": ["v9"]}})
    assert "models.nope: unknown model" in str(exc.value) and "'v9' is not a variation" in str(exc.value)


def test_resolve_weights(tmp_path):
    inf = models.info("aisfx")
    assert models.resolve_weights(inf, "x-sequential-ce", None) is None  # bundled
    w = tmp_path / "w.pth"
    w.write_bytes(b"x")
    assert models.resolve_weights(inf, "x-sequential-ce", {"x-sequential-ce": str(w)}) == str(w)
    with pytest.raises(ConfigError, match="models.aisfx.weights.x-sequential-ce: .*nope.pth does not exist"):
        models.resolve_weights(inf, "x-sequential-ce", {"x-sequential-ce": str(tmp_path / "nope.pth")})
    required = models.ModelInfo("m", ("a",), "a", 16000, "clip", None, 8, "soundsim", "d", weights="required",
                                weights_hint="m.ckpt from example.org")
    with pytest.raises(ConfigError, match=r"models.m.weights.a: no weights path given.*m.ckpt from example.org"):
        models.resolve_weights(required, "a", None)


def test_weights_dir_finds_official_file_names(tmp_path):
    """weights_dir: a variation without its own path uses <weights_dir>/<official file name>."""
    inf = models.ModelInfo("m", ("a", "b"), "a", 16000, "clip", None, 8, "soundsim", "d", weights="required",
                           weights_hint="M-a.ckpt / M-b.ckpt", weight_files={"a": "M-a.ckpt", "b": "M-b.ckpt"})
    (tmp_path / "M-a.ckpt").write_bytes(b"x")
    assert models.resolve_weights(inf, "a", None, tmp_path) == str(tmp_path / "M-a.ckpt")
    own = tmp_path / "own.ckpt"
    own.write_bytes(b"y")
    assert models.resolve_weights(inf, "a", {"a": str(own)}, tmp_path) == str(own)  # an explicit path wins
    with pytest.raises(ConfigError, match=r"models.m.weights.b: no weights path given; looked for .*M-b.ckpt"):
        models.resolve_weights(inf, "b", None, tmp_path)


def test_aisfx_bundled_weights_shape_and_determinism():
    m = models.load("aisfx")
    x = tone(5.0, 44100, 1, freq=330).ravel().astype(np.float32)
    a, b = m.embed(x), m.embed(x)
    # 5 s = 215 spectrogram frames -> blocks at 0, 50, 100 (the partial 4th block is dropped)
    assert a.shape == (3, 512) and a.dtype == np.float32
    assert np.array_equal(a, b) and np.isfinite(a).all()


def test_aisfx_loads_a_local_checkpoint_in_the_official_format(tmp_path):
    """A checkpoint with the real architecture and random weights, saved as the package
    saves its own ((state_dict, datasets) pickle), loads through the weights path."""
    import torch
    from aisfx.models.cnn2d import CrossNet, EmbeddingNet

    torch.manual_seed(0)
    datasets = {"a": (0, 5), "b": (1, 3)}
    net = CrossNet(EmbeddingNet("max", 3, 1, 64), datasets, "cpu")
    ckpt = tmp_path / "random.pth"
    torch.save((net.state_dict(), datasets), ckpt)
    rand = models.load("aisfx", weights=str(ckpt))
    bundled = models.load("aisfx")
    x = tone(3.0, 44100, 1, freq=500).ravel().astype(np.float32)
    r = rand.embed(x)
    assert r.shape == (1, 512)
    assert not np.allclose(r, bundled.embed(x)), "the local weights were used, not the bundled ones"


def test_models_cli_lists_models(capsys):
    from soundsim.cli import main

    assert main(["models", "--config", str(ROOT / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["model", "variation", "env", "env", "ready", "level", "dim", "rate",
                                           "weights", "in", "config", "from", "trained", "on"]
    line = next(ln for ln in out.splitlines() if ln.startswith("aisfx"))
    assert "x-sequential-ce *" in line and "soundsim" in line and "512" in line and "bundled" in line
    assert "built in" in line and line.rstrip().endswith("UCS")  # where it comes from; its training data


def test_models_cli_weights_status(tmp_path, capsys):
    """Each variation says whether its weights were found, from the config's paths or weights_dir."""
    from soundsim.cli import main

    own = tmp_path / "mine.pth"
    own.write_bytes(b"x")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"collection: {{name: d, kind: demo}}\nweights_dir: {tmp_path}\n"
                   f"models:\n  aisfx: {{weights: {{x-sequential-ce: {own}}}}}\n"
                   f"  musicnn: {{weights: {{MSD_musicnn: {tmp_path / 'gone'}}}}}\n")
    assert main(["models", "--config", str(cfg)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"found: {own}" in next(ln for ln in lines if ln.startswith("aisfx"))
    assert f"not found: {tmp_path / 'gone'}" in next(ln for ln in lines if "MSD_musicnn" in ln)
    assert "bundled" in next(ln for ln in lines if "MTT_musicnn" in ln)
    for name, inf in models.available().items():
        if inf.weights == "required":
            line = next(ln for ln in lines if ln.startswith(name + " "))
            assert ("not found: " + str(tmp_path)) in line or "not configured" in line


def test_models_cli_paper_table(capsys):
    """--paper: one row per model of the paper's Table II, with its metadata."""
    from soundsim.cli import main

    assert main(["models", "--paper", "--config", ""]) == 0
    out = capsys.readouterr().out
    paper = {n: i for n, i in models.available().items() if i.paper is not None}
    assert f"({len(paper)} models of the paper's Table II" in out
    for name, inf in paper.items():
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert inf.paper.modality in line and str(inf.paper.dims) in line and inf.env in line


def test_registry_import_is_light():
    """Importing the registry imports every model module, but no heavy package: those load in load()."""
    import subprocess
    import sys

    code = ("import sys, soundsim.models as m; m.available(); "
            "heavy = sorted({'torch', 'tensorflow', 'essentia', 'transformers', 'laion_clap', 'msclap', "
            "'librosa', 'timm'} & set(sys.modules)); print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing soundsim.models imported {out}"


def test_registry_holds_every_row_of_the_papers_table_2():
    """The 14 rows of Table II, with the paper's metadata and best variations (../shared reference data)."""
    import re

    import pandas as pd

    from conftest import SHARED

    folder = SHARED / "data" / "paper"
    if not (folder / "table2.csv").is_file():
        pytest.skip("../shared/data/paper/table2.csv is absent")
    key = lambda s: re.sub(r"[^0-9a-z]", "", str(s).lower())  # noqa: E731
    paper = {key(n): inf for n, inf in models.available().items() if inf.paper is not None}
    table2 = pd.read_csv(folder / "table2.csv", dtype=str)
    assert sorted(paper) == sorted(key(m) for m in table2["model"]) and len(paper) == 14
    for row in table2.itertuples():
        p = paper[key(row.model)].paper
        assert key(p.modality) == key(row.modality), row.model
        assert (p.objective, p.params, p.data_size, str(p.dims)) == (row.objective, row.params, row.data_size,
                                                                      row.dims), row.model
    for row in pd.read_csv(folder / "table1_best_variations.csv", dtype=str).itertuples():
        inf = paper[key(row.model)]
        assert key(inf.default_variation) == key(row.variation), f"{row.model}: paper's best is {row.variation}"


def test_every_required_weight_has_an_official_file_name():
    """weights_dir works for every model that needs weights: each variation names its official file."""
    for name, inf in models.available().items():
        if inf.weights == "required":
            assert set(inf.weight_files) == set(inf.variations), name
            assert all(f and "/" not in f for f in inf.weight_files.values()), name
            assert inf.weights_hint, name
