"""Config validation: the shipped configs are valid; wrong values name the key and the allowed values."""

from __future__ import annotations

import copy

import pytest
import yaml

from soundsim.config import load_config, load_yaml, validate_config
from soundsim.errors import ConfigError

from conftest import ROOT, SCHEMA


@pytest.fixture(scope="module")
def schema():
    return load_yaml(SCHEMA)


@pytest.fixture
def base():
    return {"collection": {"name": "demo", "kind": "demo"}}


def errors_for(cfg, schema) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg, schema, source="test.yaml")
    return str(exc.value)


def test_shipped_config_is_valid_and_gets_defaults():
    cfg = load_config(ROOT / "config.yaml", SCHEMA)
    assert cfg["collection"]["kind"] == "demo"
    assert cfg["grid"]["searches"] == ["mips", "mcss", "nns"]
    assert cfg["evaluation"]["cutoffs"] == [15, 150]
    assert cfg["grid"]["indexes"] == ["exact", "hnsw", "ivf-pq"]


@pytest.mark.parametrize("name", ["fsd50k.yaml", "csv-folder.yaml"])
def test_example_configs_are_valid(name):
    cfg = load_config(ROOT / "configs" / name, SCHEMA)
    assert cfg["collection"]["kind"] in ("fsd50k", "csv")


def test_minimal_config_gets_every_default(base, schema):
    cfg = validate_config(base, schema)
    assert cfg["results"] == "results"
    assert cfg["collection"]["seed"] == 0 and cfg["collection"]["clips_per_class"] == 16
    assert cfg["grid"] == {"aggregations": ["mean", "median", "max"], "pca": [100, 200, "none"],
                           "searches": ["mips", "mcss", "nns"], "indexes": [], "index_params": {}}
    assert cfg["extraction"] == {"shards": 1, "reuse": True, "on_bad_audio": "skip"}
    assert cfg["models"] == {}


def test_wrong_kind_names_key_and_allowed_values(base, schema):
    base["collection"]["kind"] = "freesound"
    msg = errors_for(base, schema)
    assert "collection.kind: 'freesound' is not allowed; allowed values: 'demo', 'fsd50k', 'csv'" in msg
    assert msg.startswith("invalid configuration") and "test.yaml" in msg


def test_wrong_list_item_names_index(base, schema):
    base["grid"] = {"searches": ["mips", "cosine"]}
    msg = errors_for(base, schema)
    assert "grid.searches[1]: 'cosine' is not allowed; allowed values: 'mips', 'mcss', 'nns'" in msg


def test_pca_value_explains_alternatives(base, schema):
    base["grid"] = {"pca": [100, "all"]}
    msg = errors_for(base, schema)
    assert "grid.pca[1]: 'all' is not allowed; use an integer >= 1 or 'none'" in msg


def test_bad_audio_policy(base, schema):
    base["extraction"] = {"on_bad_audio": "ignore"}
    assert "extraction.on_bad_audio: 'ignore' is not allowed; allowed values: 'skip', 'fail'" in errors_for(base, schema)


def test_unknown_key_lists_allowed_keys(base, schema):
    base["grid"] = {"searchs": ["mips"]}
    msg = errors_for(base, schema)
    assert "grid: unknown key(s) 'searchs'; allowed keys: aggregations, index_params, indexes, pca, searches" in msg


def test_index_types_and_their_parameters_are_checked(base, schema):
    base["grid"] = {"indexes": ["exact", "hnsw2"], "index_params": {"annoy": {"m": 3}, "hnsw": {"m": "many"}}}
    msg = errors_for(base, schema)
    assert "grid.indexes[1]: 'hnsw2' is not allowed; allowed values: 'exact', 'flat', 'hnsw', 'ivf'" in msg
    assert "grid.index_params: 'annoy' is not allowed" in msg
    assert "grid.index_params.hnsw.m: 'many' is not of type 'number'" in msg


def test_fsd50k_requires_its_paths(schema):
    msg = errors_for({"collection": {"name": "f", "kind": "fsd50k", "audio_dir": "/x"}}, schema)
    for key in ("ground_truth", "vocabulary", "ontology"):
        assert f"collection: '{key}' is a required property (needed when collection.kind is 'fsd50k')" in msg
    assert "'audio_dir' is a required" not in msg


def test_several_errors_reported_together(base, schema):
    cfg = copy.deepcopy(base)
    cfg["extraction"] = {"shards": 0}
    cfg["evaluation"] = {"cutoffs": [15, "150"]}
    msg = errors_for(cfg, schema)
    assert "extraction.shards: 0 is less than the minimum of 1" in msg
    assert "evaluation.cutoffs[1]: '150' is not of type 'integer'" in msg


def test_collection_name_pattern(schema):
    msg = errors_for({"collection": {"name": "my sounds", "kind": "demo"}}, schema)
    assert "collection.name: 'my sounds' does not match" in msg


def test_yaml_syntax_error_names_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("collection: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad, SCHEMA)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_config(tmp_path / "nope.yaml", SCHEMA)


def test_model_entry_shape(base, schema):
    base["models"] = {"aisfx": {"enabled": True, "variations": ["default"], "weights": {"default": "/w.pt"}}}
    cfg = validate_config(base, schema)
    assert cfg["models"]["aisfx"]["options"] == {}
    base2 = {"collection": {"name": "d", "kind": "demo"}, "models": {"aisfx": {"variations": "default"}}}
    assert "models.aisfx.variations: 'default' is not of type 'array'" in errors_for(base2, schema)


def test_schema_is_yaml_loadable_and_documents_every_top_level_key():
    data = yaml.safe_load(SCHEMA.read_text())
    for key in ("collection", "models", "grid", "evaluation", "extraction"):
        assert key in data["properties"]
