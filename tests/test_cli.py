"""The soundsim command line, called in-process and as a real subprocess."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest
import yaml

from soundsim.cli import main

from conftest import SCHEMA


def test_help_lists_subcommands(venv_bin):
    out = subprocess.run([venv_bin / "soundsim", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("check-config", "demo-data", "manifest"):
        assert cmd in out


def test_check_config_reports_errors(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"collection": {"name": "d", "kind": "demo"}, "grid": {"searches": ["l2"]}}))
    assert main(["check-config", str(cfg), "--schema", str(SCHEMA)]) == 2
    err = capsys.readouterr().err
    assert "soundsim check-config: error: invalid configuration" in err
    assert "grid.searches[0]: 'l2' is not allowed; allowed values: 'mips', 'mcss', 'nns'" in err
    assert "Traceback" not in err


def test_check_config_ok(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"collection": {"name": "d", "kind": "demo"}}))
    assert main(["check-config", str(cfg), "--schema", str(SCHEMA), "--show"]) == 0
    assert '"on_bad_audio": "skip"' in capsys.readouterr().out


def test_demo_data(tmp_path, capsys):
    assert main(["-q", "demo-data", "--out", str(tmp_path / "d"), "--clips-per-class", "2"]) == 0
    out = capsys.readouterr().out
    assert "demo collection: 38 clips, 20 labels, 5 families" in out
    gt = pd.read_csv(tmp_path / "d" / "ground_truth.csv")
    assert len(gt) == 38 and len(list((tmp_path / "d" / "audio").iterdir())) == 38


def test_manifest_for_csv_collection(tmp_path, csv_collection, capsys):
    p = csv_collection()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "results": str(tmp_path / "results"),
        "collection": {"name": "mine", "kind": "csv", **{k: str(v) for k, v in p.items()}},
    }))
    assert main(["-q", "manifest", "--config", str(cfg), "--schema", str(SCHEMA), "--threads", "2"]) == 0
    m = pd.read_csv(tmp_path / "results" / "mine" / "manifest.csv")
    assert len(m) == 5


def test_manifest_error_is_one_clear_line(tmp_path, csv_collection, capsys):
    p = csv_collection([("a1", "Dog"), ("missing", "Dog")])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "results": str(tmp_path / "results"),
        "collection": {"name": "mine", "kind": "csv", **{k: str(v) for k, v in p.items()}},
    }))
    assert main(["-q", "manifest", "--config", str(cfg), "--schema", str(SCHEMA)]) == 2
    err = capsys.readouterr().err
    assert "1 clip(s) have no audio file: missing" in err and "Traceback" not in err


def test_debug_shows_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("collection: {name: d, kind: nope}\n")
    with pytest.raises(Exception, match="collection.kind"):
        main(["--debug", "check-config", str(cfg), "--schema", str(SCHEMA)])


def test_global_flags_after_the_subcommand(tmp_path, capsys):
    """--debug and -q work after the subcommand too (and before it, as above)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("collection: {name: d, kind: nope}\n")
    with pytest.raises(Exception, match="collection.kind"):
        main(["check-config", "--config", str(cfg), "--schema", str(SCHEMA), "--debug"])
    assert main(["demo-data", "-q", "--out", str(tmp_path / "d"), "--clips-per-class", "1"]) == 0
    assert "demo collection: 19 clips" in capsys.readouterr().out


def test_one_config_flag_for_every_config_reading_subcommand():
    """Every subcommand that reads a config takes it as --config (check-config too)."""
    from soundsim.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("check-config", "manifest", "models", "listen", "tables", "figures"):
        flags = {s for a in sub.choices[name]._actions for s in a.option_strings}
        assert "--config" in flags and "--schema" in flags, name
    args = parser.parse_args(["check-config", "--config", "x.yaml", "-q"])
    assert args.config == "x.yaml" and args.quiet and not args.debug
    assert parser.parse_args(["-q", "models"]).quiet
    assert not parser.parse_args(["models"]).quiet
