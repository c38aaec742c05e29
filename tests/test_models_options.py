"""Declared model options (``ModelInfo.options``): checked against the declaration, defaults filled,
errors naming ``models.<name>.options.<option>`` and the allowed options or values; the README's
option table is the declarations'."""

from __future__ import annotations

import inspect
import subprocess

import numpy as np
import pytest
import yaml

from soundsim import models
from soundsim.errors import ConfigError
from soundsim.models import OptionSpec

from conftest import ROOT, tone

MODELS = sorted(models.available())
WITH_OPTIONS = [n for n in MODELS if models.info(n).options]


def _unknown_message(name: str, option: str) -> str:
    declared = models.info(name).options
    allowed = f"allowed options: {', '.join(declared)}" if declared else f"{name} takes no options"
    return f"models.{name}.options.{option}: unknown option; {allowed}"


def _bad_values(spec: OptionSpec) -> list[object]:
    """Values a declaration must refuse: the wrong type, and outside the choices or the range."""
    bad: list[object] = {bool: ["yes", 1], int: ["8", True, 2.5], float: ["x", True, float("nan")],
                         str: [3, True]}[spec.type]
    if not spec.nullable:
        bad.append(None)
    if spec.choices:
        bad.append("no-such-value")
    if spec.min is not None:
        bad.append(spec.type(spec.min) - 1)
    if spec.max is not None:
        bad.append(spec.type(spec.max) + 1)
    return bad


def test_the_expected_models_take_options():
    """The options the README and the module docstrings describe are declared (not silently gone)."""
    declared = {n: list(models.info(n).options) for n in WITH_OPTIONS}
    assert declared == {
        "aisfx": ["batch_size"], "audioclip": ["scaling", "max_seconds"], "beats": ["chunk_seconds"],
        "cav-mae": ["native_rate"], "clap-2022": ["batch_size", "normalize"],
        "clap-2023": ["batch_size", "normalize"], "freesound": ["silent_frames"],
        "laion-clap": ["crop", "antialias", "threads"], "musicnn": ["layer", "threads"],
        "pengi": ["batch_size", "normalize"], "wav2clip": ["native_rate", "max_seconds"],
    }


@pytest.mark.parametrize("name", MODELS)
def test_load_takes_exactly_the_declared_options(name):
    """Each module's ``load`` has one keyword-only parameter per declared option, in the same order,
    without a default of its own (the declaration's is the only one), and no ``**options``."""
    params = inspect.signature(models.get(name).load).parameters.values()
    assert not [p for p in params if p.kind is p.VAR_KEYWORD], f"{name}.load still takes **options"
    keyword_only = [p for p in params if p.kind is p.KEYWORD_ONLY]
    assert [p.name for p in keyword_only] == list(models.info(name).options)
    assert all(p.default is p.empty for p in keyword_only)
    for key, spec in models.info(name).options.items():
        assert spec.help and "|" not in spec.help and "\n" not in spec.help, (name, key)


@pytest.mark.parametrize("name", MODELS)
def test_unknown_option_names_the_key_and_the_allowed_options(name):
    want = _unknown_message(name, "nosuch")
    with pytest.raises(ConfigError) as exc:
        models.check_options(name, {"nosuch": 1})
    assert str(exc.value) == want
    # models.load checks before it imports anything heavy or reads weights: the same one line
    with pytest.raises(ConfigError) as exc:
        models.load(name, options={"nosuch": 1})
    assert str(exc.value) == want


@pytest.mark.parametrize("name", WITH_OPTIONS)
def test_wrong_types_and_values_name_the_key_and_the_allowed_values(name):
    for key, spec in models.info(name).options.items():
        for bad in _bad_values(spec):
            with pytest.raises(ConfigError) as exc:
                models.check_options(name, {key: bad})
            msg = str(exc.value)
            assert msg.startswith(f"models.{name}.options.{key}: "), msg
            assert msg.endswith(f"; allowed values: {spec.allowed()}"), msg
            assert "\n" not in msg


@pytest.mark.parametrize("name", MODELS)
def test_defaults_are_filled_and_the_check_is_idempotent(name):
    declared = models.info(name).options
    defaults = {k: s.default for k, s in declared.items()}
    assert models.check_options(name, None) == models.check_options(name, {}) == defaults
    assert list(models.check_options(name, {})) == list(declared)  # declaration order
    for key, spec in declared.items():
        value = spec.choices[-1] if spec.choices else (not spec.default if spec.type is bool else spec.default)
        got = models.check_options(name, {key: value})
        assert got == {**defaults, key: value}
        assert models.check_options(name, got) == got


def test_allowed_values_and_conversions():
    assert models.check_options("beats", {"chunk_seconds": 5}) == {"chunk_seconds": 5.0}  # an int for a float
    assert isinstance(models.check_options("beats", {"chunk_seconds": 5})["chunk_seconds"], float)
    assert models.check_options("beats", {"chunk_seconds": None}) == {"chunk_seconds": None}  # nullable
    assert models.check_options("pengi", {})["normalize"] is True  # each model's own default
    assert models.check_options("clap-2023", {})["normalize"] is False
    spec = models.info("laion-clap").options["crop"]
    assert spec.allowed() == "'start', 'center', 'mean'"
    assert models.info("beats").options["chunk_seconds"].allowed() == "a number >= 0.16, or null"
    assert OptionSpec(int, 2, "h", min=1, max=4).allowed() == "an integer from 1 to 4"
    assert OptionSpec(bool, False, "h").allowed() == "true or false"
    with pytest.raises(ConfigError, match=r"^models.laion-clap.options.threads: true is not an integer; "
                       r"allowed values: an integer >= 0$"):
        models.check_options("laion-clap", {"threads": True})
    with pytest.raises(ConfigError, match=r"^models.laion-clap.options.crop: 'random' is not allowed; "
                       r"allowed values: 'start', 'center', 'mean'$"):
        models.check_options("laion-clap", {"crop": "random"})
    with pytest.raises(ConfigError, match=r"^models.aisfx.options.batch_size: 0 is out of range; "
                       r"allowed values: an integer >= 1$"):
        models.check_options("aisfx", {"batch_size": 0})
    with pytest.raises(ConfigError, match=r"^models.aisfx.options: 3 is not a mapping of option: value$"):
        models.check_options("aisfx", 3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as exc:
        models.check_options("laion-clap", {"crop": "random", "nosuch": 1})
    assert str(exc.value).splitlines() == [
        "models.laion-clap.options: 2 problems:",
        "  models.laion-clap.options.crop: 'random' is not allowed; allowed values: 'start', 'center', 'mean'",
        "  " + _unknown_message("laion-clap", "nosuch"),
    ]


def test_a_declaration_must_be_valid_itself():
    with pytest.raises(ValueError, match="OptionSpec.type must be one of bool, int, float, str"):
        OptionSpec(list, [], "h")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default 0 is not allowed by its own declaration"):
        OptionSpec(int, 0, "h", min=1)
    with pytest.raises(ValueError, match="default 'x' is not allowed"):
        OptionSpec(str, "x", "h", choices=("a", "b"))


def test_check_models_config_lists_option_problems_with_the_others():
    with pytest.raises(ConfigError) as exc:
        models.check_models_config({"aisfx": {"options": {"nosuch": 1}}, "beats": {"options": {"chunk_seconds": 0}},
                                    "musicnn": {"variations": ["v9"], "options": {"layer": "taggram"}}})
    lines = str(exc.value).splitlines()
    assert lines[0] == "invalid configuration:"
    assert lines[1:] == [
        "  models.aisfx.options.nosuch: unknown option; allowed options: batch_size",
        "  models.beats.options.chunk_seconds: 0 is out of range; allowed values: a number >= 0.16, or null",
        "  models.musicnn.variations: 'v9' is not a variation of musicnn; allowed values: MTT_musicnn, MSD_musicnn",
    ]
    models.check_models_config({"musicnn": {"options": {"layer": "taggram", "threads": 2}}, "vggish": {}})


def test_load_passes_the_checked_options_with_defaults():
    """aisfx (bundled weights, main env): the loader gets every declared option, the defaults filled."""
    m = models.load("aisfx")
    assert m.options == {"batch_size": 32} and m.embedder.batch_size == 32
    m = models.load("aisfx", options={"batch_size": 3})
    assert m.options == {"batch_size": 3} and m.embedder.batch_size == 3


def test_a_wrong_sample_rate_is_an_error_not_an_assertion():
    """Input checks raise ValueError with a message (asserts vanish under ``python -O``)."""
    with pytest.raises(ValueError, match=r"^aisfx expects 44100 Hz audio, got 16000 Hz$"):
        models.load("aisfx").embedder.embed(tone(3.0, 16000, 1).ravel().astype(np.float32), 16000)
    with pytest.raises(ValueError, match=r"^freesound expects 44100 Hz audio, got 48000 Hz$"):
        models.load("freesound").embedder.embed(tone(1.0, 48000, 1).ravel().astype(np.float32), 48000)


def test_no_assert_checks_input_in_the_library():
    """``assert`` in src/soundsim only for internal invariants: none in an ``embed`` or ``load``
    (the model modules' input checks), none in extraction."""
    import ast

    offenders = []
    for path in [*sorted((ROOT / "src" / "soundsim" / "models").glob("*.py")), ROOT / "src" / "soundsim" / "extract.py"]:
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    fn.name in ("embed", "load", "__init__") or path.name == "extract.py"):
                offenders += [f"{path.name}:{n.lineno} in {fn.name}" for n in ast.walk(fn) if isinstance(n, ast.Assert)]
    assert not offenders


def test_readme_lists_every_declared_option():
    """The README's option table is ``soundsim models --options``'s output (regenerate it with that)."""
    readme = (ROOT / "README.md").read_text()
    assert models.options_table() in readme, "README option table is stale: paste `soundsim models --options`"


def test_the_options_in_the_readme_and_the_shipped_configs_are_valid():
    """The README's example config and every shipped config pass the workflow's start check."""
    import re

    readme = (ROOT / "README.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, re.S)]
    configs = [b for b in blocks if isinstance(b, dict) and any((m or {}).get("options")
                                                                for m in (b.get("models") or {}).values())]
    configs += [yaml.safe_load(p.read_text()) for p in [ROOT / "config.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]]
    assert len(configs) >= 2
    for cfg in configs:
        models.check_models_config(cfg.get("models") or {})


def test_models_options_cli_prints_the_table(venv_bin):
    r = subprocess.run([venv_bin / "soundsim", "models", "--options"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip("\n") == models.options_table()


def test_an_unknown_option_in_the_config_stops_the_dry_run(venv_bin, tmp_path):
    """A real Snakemake dry run: the unknown option stops the workflow at start, naming the key."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "collection": {"name": "demo", "kind": "demo", "clips_per_class": 2},
        "models": {"aisfx": {"options": {"nosuch": 1}}},
    }))
    r = subprocess.run([venv_bin / "snakemake", "-s", ROOT / "Snakefile", "-d", tmp_path, "--cores", "1", "-n"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert out.count("models.aisfx.options.nosuch: unknown option; allowed options: batch_size") == 1, out
    assert "Traceback" not in out and not (tmp_path / "results").exists()


def test_check_config_names_an_unknown_option_and_exits_2(tmp_path, capsys):
    """`soundsim check-config` checks the models: section too (what the workflow checks at start)."""
    from soundsim.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"collection": {"name": "demo", "kind": "demo"},
                                   "models": {"aisfx": {"options": {"nosuch": 1}}}}))
    assert main(["check-config", "--config", str(cfg), "--schema", str(ROOT / "src/soundsim/data/config.schema.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("models.aisfx.options.nosuch: unknown option; allowed options: batch_size") == 1, err
