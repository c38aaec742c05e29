"""VGGish, YAMNet, FSD-SINet and OpenL3: Essentia's frozen TensorFlow graphs, run by
essentia-tensorflow in the ``essentia-tf`` environment (``make envs ENVS=essentia-tf``).

The official ``.pb`` files cannot be downloaded here: the tests write small
random-weight frozen graphs with the official node names, input and output shapes,
plus ``.json`` metadata shaped like Essentia's (tests/essentia_tf_graphs.py, pure
Python, no TensorFlow), load them through ``soundsim.models.load`` in the
essentia-tf environment with networking disabled, and embed real audio files.
Tests that need the environment skip, saying how to build it, when it is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundsim import models, store

import essentia_tf_graphs as graphs
from conftest import extract_offline, run_offline, write_manifest

ENV = "essentia-tf"
pytestmark = pytest.mark.model_env(ENV)

# (model, variation): each distinct graph signature; the paper's best variations included
CASES = [
    ("vggish", "audioset-vggish-3"),
    ("yamnet", "audioset-yamnet-1"),
    ("fsd-sinet", "vgg42-tlpf-1"),
    ("fsd-sinet", "vgg41-tlpf-1"),
    ("openl3", "env-mel256-emb512"),
    ("openl3", "music-mel128-emb6144"),
]
DURATIONS = {"one": 1.0, "ten": 10.0, "long": 25.0}
SEED = 3

# Run in the essentia-tf env: every case on every file, twice for determinism; then the errors.
EMBED = textwrap.dedent(
    """
    import json, shutil, sys
    from pathlib import Path
    import numpy as np
    from soundsim import audio, extract, models
    from soundsim.errors import ConfigError
    from soundsim.models import openl3 as ol3
    from soundsim.models import _essentia_tf as etf

    cases, files, folder, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    res = {}
    for name, variation, pb in cases:
        key = f"{name}/{variation}"
        m = models.load(name, variation, weights=pb)
        for label, path in files.items():
            res[f"{key}/{label}"] = extract.embed_clip(m, path)
        res[f"{key}/ten_again"] = extract.embed_clip(m, files["ten"])
        m2 = models.load(name, variation, weights=str(Path(pb).parent))  # the folder holding the official file
        res[f"{key}/ten_second_load"] = extract.embed_clip(m2, files["ten"])
        res[f"{key}/input_output"] = np.array([m.embedder.spec.input, m.embedder.spec.output])
        # rows of Essentia's own framing at sample counts around the formulas' steps
        mod = models.get(name)
        sr = m.info.sample_rate
        for n in (15040, 15041, 22050, 23000, 24000, 24001, 72000, 72001, sr * 3 + 7):
            x = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
            got = len(m.embedder.patches(x)) if name == "openl3" else len(m.embedder.algo(x))
            res[f"{key}/rows_at_{n}"] = np.array([got, mod.n_rows(n)])
        if name == "openl3":
            x, _ = audio.load(files["ten"], 48000)
            res[f"{key}/patches"] = m.embedder.patches(x)
            ol3.BATCH = 4  # 11 windows in batches of 4
            res[f"{key}/ten_batch4"] = m.embed(x)
            ol3.BATCH = 60
            # issue 12: windows cut one at a time = Essentia's FrameGenerator over the whole clip
            es = etf.essentia_standard()
            fg = es.FrameGenerator(x, frameSize=48000, hopSize=48000, startFromZero=False)
            res[f"{key}/patches_framegenerator"] = np.stack([m.embedder.window_mel(c) for c in fg])
        else:
            # issue 12: a 100 s clip in calls of 7 patches (bounded memory) = one call on the whole clip
            x = np.tile(audio.load(files["long"], sr)[0], 4)
            etf.CHUNK_PATCHES = 7
            res[f"{key}/long_chunked"] = m.embed(x)
            etf.CHUNK_PATCHES = 256
            res[f"{key}/long_one_call"] = etf.as_rows(m.embedder.algo(x), m.embedder.dim)
            if name == "fsd-sinet":  # the clip normalisation computed in blocks = Essentia's
                mean, divisor = etf.fsd_sinet_normalisation(x, block=12345)
                y = ((x - mean) / divisor).astype(np.float32)
                res[f"{key}/long_normalised_here"] = etf.as_rows(m.embedder.algo_chunks(y), m.embedder.dim)

    def error(label, *args, **kw):
        try:
            models.load(*args, **kw)
        except ConfigError as e:
            res["error/" + label] = np.array(str(e))
        else:
            res["error/" + label] = np.array("no error")

    f = folder
    error("missing_file", "vggish", weights=str(f / "nope.pb"))
    error("no_weights", "vggish", weights=None)
    error("empty_folder", "vggish", weights=str(f / "empty"))
    error("garbage", "vggish", weights=str(f / "garbage" / "audioset-vggish-3.pb"))
    error("yamnet_for_vggish_json", "vggish", weights=str(f / "yamnet" / "audioset-yamnet-1.pb"))
    error("yamnet_for_vggish_nojson", "vggish", weights=str(f / "nojson" / "audioset-yamnet-1.pb"))
    error("vgg41_for_vgg42_json", "fsd-sinet", "vgg42-tlpf-1", weights=str(f / "vgg41" / "fsd-sinet-vgg41-tlpf-1.pb"))
    error("vgg41_for_vgg42_nojson", "fsd-sinet", "vgg42-tlpf-1",
          weights=str(f / "nojson" / "fsd-sinet-vgg41-tlpf-1.pb"))
    error("tlpf_renamed_aps", "fsd-sinet", "vgg42-aps-1", weights=str(f / "renamed" / "fsd-sinet-vgg42-aps-1.pb"))
    error("mel128_for_mel256_json", "openl3", "env-mel256-emb6144",
          weights=str(f / "ol3" / "openl3-music-mel128-emb6144-3.pb"))
    error("emb6144_for_emb512_nojson", "openl3", "env-mel128-emb512",
          weights=str(f / "nojson" / "openl3-music-mel128-emb6144-3.pb"))
    error("bad_json", "yamnet", weights=str(f / "badjson" / "audioset-yamnet-1.pb"))
    error("other_rate_json", "yamnet", weights=str(f / "rate" / "audioset-yamnet-1.pb"))

    # without the .json, the documented default node names give the same embeddings
    m = models.load("yamnet", weights=str(f / "defaults" / "audioset-yamnet-1.pb"))
    res["yamnet_defaults/ten"] = extract.embed_clip(m, files["ten"])
    res["yamnet_defaults/input_output"] = np.array([m.embedder.spec.input, m.embedder.spec.output])
    try:
        m.embed(np.zeros(8000, np.float32))
    except ValueError as e:
        res["short_error"] = np.array(str(e))
    np.savez(out, **res)
    """
)



def model_dir(root: Path, name: str, variation: str) -> Path:
    return root / "models" / f"{name}-{variation}"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict:
    """The random-weight graphs (+ .json) of every case, and the broken or mismatched files of the error tests."""
    root = tmp_path_factory.mktemp("essentia-tf")
    pbs = {(n, v): graphs.write_model(model_dir(root, n, v), n, v, seed=SEED) for n, v in CASES}
    f = root / "errors"
    (f / "empty").mkdir(parents=True)
    (f / "garbage").mkdir()
    (f / "garbage" / "audioset-vggish-3.pb").write_bytes(np.random.default_rng(0).bytes(3000))
    graphs.write_model(f / "yamnet", "yamnet", "audioset-yamnet-1")
    graphs.write_model(f / "vgg41", "fsd-sinet", "vgg41-tlpf-1")
    ol3 = graphs.write_model(f / "ol3", "openl3", "music-mel128-emb6144")
    meta = json.loads(ol3.with_suffix(".json").read_text())
    del meta["link"]  # else the link check (another variation's file) fires first
    ol3.with_suffix(".json").write_text(json.dumps(meta))
    for n, v in (("yamnet", "audioset-yamnet-1"), ("fsd-sinet", "vgg41-tlpf-1"), ("openl3", "music-mel128-emb6144")):
        graphs.write_model(f / "nojson", n, v, with_json=False)
    tlpf = graphs.write_model(f / "tmp", "fsd-sinet", "vgg42-tlpf-1")
    (f / "renamed").mkdir()
    shutil.copy(tlpf, f / "renamed" / "fsd-sinet-vgg42-aps-1.pb")
    shutil.copy(tlpf.with_suffix(".json"), f / "renamed" / "fsd-sinet-vgg42-aps-1.json")
    yam = graphs.write_model(f / "badjson", "yamnet", "audioset-yamnet-1")
    yam.with_suffix(".json").write_text("{not json")
    yam = graphs.write_model(f / "rate", "yamnet", "audioset-yamnet-1")
    meta = json.loads(yam.with_suffix(".json").read_text())
    meta["inference"]["sample_rate"] = 44100
    yam.with_suffix(".json").write_text(json.dumps(meta))
    (f / "defaults").mkdir()
    shutil.copy(pbs[("yamnet", "audioset-yamnet-1")], f / "defaults" / "audioset-yamnet-1.pb")
    return {"pbs": pbs, "errors": f, "root": root}


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    """1 s, 10 s and 25 s clips (44.1 kHz; the 10 s one stereo) whose content changes over time."""
    folder = tmp_path_factory.mktemp("essentia-tf-audio")
    rng = np.random.default_rng(0)
    sr = 44100
    files = {}
    for label, seconds in DURATIONS.items():
        t = np.arange(int(seconds * sr)) / sr
        x = 0.3 * np.sin(2 * np.pi * (200 + 60 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
        x = x + 0.02 * rng.standard_normal(len(t))
        if label == "ten":
            x = np.stack([x, 0.5 * x], axis=1)
        files[label] = folder / f"{label}.wav"
        sf.write(files[label], x.astype(np.float32), sr, subtype="FLOAT")
    return files


@pytest.fixture(scope="module")
def results(weights, audio_files, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("essentia-tf-out") / "res.npz"
    cases = [[n, v, str(weights["pbs"][(n, v)])] for n, v in CASES]
    files = {k: str(p) for k, p in audio_files.items()}
    run_offline(ENV, EMBED, json.dumps(cases), json.dumps(files), str(weights["errors"]), str(out))
    with np.load(out) as z:
        return dict(z)


# --- no environment needed ------------------------------------------------------------------

def test_info_and_paper_rows():
    rows = {
        "vggish": ("A", "Classification", "62M", "80M", 128),
        "yamnet": ("A", "Classification", "4M", "2M", 1024),
        "fsd-sinet": ("A", "Classification", "5M", "51K", 512),
        "openl3": ("A & I", "Audiovisual correspondence", "5M", "296K", 512),
    }
    for name, row in rows.items():
        inf = models.info(name)
        p = inf.paper
        assert (p.modality, p.objective, p.params, p.data_size, p.dims) == row
        assert inf.env == ENV and inf.level == "frame" and inf.weights == "required" and inf.min_duration == 1.0
        assert inf.packages == ("essentia-tensorflow",)
        assert set(inf.weight_files) == set(inf.variations)
        assert inf.dim_of(inf.default_variation) == p.dims
    assert models.info("vggish").variations == ("audioset-vggish-3",)
    assert models.info("yamnet").variations == ("audioset-yamnet-1",)
    sinet = models.info("fsd-sinet")
    assert sinet.default_variation == "vgg42-tlpf-1" and sinet.sample_rate == 22050
    assert set(sinet.variations) == {"vgg41-tlpf-1", "vgg42-tlpf-1", "vgg42-aps-1", "vgg42-tlpf_aps-1"}
    assert sinet.dim_of("vgg41-tlpf-1") == 256 and sinet.weight_files["vgg42-aps-1"] == "fsd-sinet-vgg42-aps-1.pb"
    ol3 = models.info("openl3")
    assert ol3.default_variation == "env-mel256-emb512" and len(ol3.variations) == 8 and ol3.sample_rate == 48000
    assert ol3.dim_of("music-mel128-emb6144") == 6144 and ol3.hop == 1.0
    assert ol3.weight_files["env-mel256-emb512"] == "openl3-env-mel256-emb512-3.pb"
    assert models.info("vggish").hop == pytest.approx(0.93) and models.info("yamnet").hop == pytest.approx(0.93)
    assert sinet.hop == pytest.approx(50 * 220 / 22050)


def test_module_import_is_light_and_row_counts():
    """No essentia at import; the row counts of Essentia's framing for 1, 10 and 25 s (checked against
    essentia-tensorflow itself in test_rows_dims_dtype)."""
    code = (
        "import sys; from soundsim.models import vggish, yamnet, fsd_sinet, openl3; "
        "assert not {'essentia', 'tensorflow'} & set(sys.modules), 'heavy import'; "
        "assert [vggish.n_rows(16000 * s) for s in (1, 10, 25)] == [1, 10, 26]; "
        "assert yamnet.n_rows is vggish.n_rows and vggish.n_rows(15040) == 0 and vggish.n_rows(15041) == 1; "
        "assert [fsd_sinet.n_rows(22050 * s) for s in (1, 10, 25)] == [1, 19, 49]; "
        "assert [openl3.n_rows(48000 * s) for s in (1, 10, 25)] == [2, 11, 26]; "
        "assert [openl3.n_rows(n) for n in (1, 24000, 24001, 72000, 72001)] == [1, 1, 2, 2, 3]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_guards_against_tensorflow_and_plain_essentia():
    """Python tensorflow imported first would kill the process: refused with a clear error. Plain
    essentia (the main env's) has no TensorflowPredict: an ImportError naming the environment."""
    code = (
        "import sys, types; from soundsim.models import _essentia_tf as etf\n"
        "sys.modules['tensorflow'] = types.ModuleType('tensorflow')\n"
        "try:\n    etf.essentia_standard()\nexcept RuntimeError as e:\n    assert 'kills the process' in str(e)\n"
        "else:\n    raise SystemExit('no error')\n"
        "del sys.modules['tensorflow']\n"
        "try:\n    etf.essentia_standard()\nexcept ImportError as e:\n    assert \"'essentia-tf'\" in str(e), e\n"
        "else:\n    raise SystemExit('plain essentia accepted')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_graph_files_are_frozen_graphdefs(weights):
    """Sanity of the test fixtures: official file names, metadata with Essentia's keys."""
    for (name, variation), pb in weights["pbs"].items():
        assert pb.name == models.info(name).weight_files[variation]
        meta = json.loads(pb.with_suffix(".json").read_text())
        assert {"name", "link", "schema", "inference", "framework", "model_types"} <= set(meta)
        assert meta["inference"]["sample_rate"] == models.info(name).sample_rate
        emb = [o for o in meta["schema"]["outputs"] if o["output_purpose"] == "embeddings"]
        assert emb[0]["shape"][-1] == models.info(name).dim_of(variation)
        assert pb.read_bytes()[:1] == b"\n"  # GraphDef field 1 (node), length-delimited


# --- in the essentia-tf environment -------------------------------------------------------

@pytest.mark.parametrize("name,variation", CASES, ids=[f"{n}-{v}" for n, v in CASES])
def test_rows_dims_dtype(results, name, variation):
    inf = models.info(name)
    mod = models.get(name)
    dim = inf.dim_of(variation)
    for label, seconds in DURATIONS.items():
        emb = results[f"{name}/{variation}/{label}"]
        assert emb.dtype == np.float32 and np.isfinite(emb).all()
        assert emb.shape == (mod.n_rows(int(seconds * inf.sample_rate)), dim), (label, emb.shape)
    expected = {"vggish": (1, 10, 26), "yamnet": (1, 10, 26), "fsd-sinet": (1, 19, 49), "openl3": (2, 11, 26)}[name]
    assert tuple(results[f"{name}/{variation}/{k}"].shape[0] for k in DURATIONS) == expected
    ten = results[f"{name}/{variation}/ten"]
    assert not np.allclose(ten[0], ten[-1])  # rows follow the audio
    for key in [k for k in results if k.startswith(f"{name}/{variation}/rows_at_")]:
        got, formula = results[key]
        assert got == formula, (key, got, formula)  # Essentia's framing == mod.n_rows


@pytest.mark.parametrize("name,variation", CASES, ids=[f"{n}-{v}" for n, v in CASES])
def test_deterministic(results, name, variation):
    ten = results[f"{name}/{variation}/ten"]
    assert np.array_equal(ten, results[f"{name}/{variation}/ten_again"])
    assert np.array_equal(ten, results[f"{name}/{variation}/ten_second_load"])  # loaded from the folder


def test_node_names_from_metadata_and_defaults(results):
    assert results["vggish/audioset-vggish-3/input_output"].tolist() == ["model/Placeholder", "model/vggish/embeddings"]
    assert results["yamnet/audioset-yamnet-1/input_output"].tolist() == ["melspectrogram", "embeddings"]
    assert results["fsd-sinet/vgg42-tlpf-1/input_output"].tolist() == ["x", "model/global_max_pooling1d/Max"]
    assert results["openl3/env-mel256-emb512/input_output"].tolist() == ["melspectrogram", "embeddings"]
    assert results["yamnet_defaults/input_output"].tolist() == ["melspectrogram", "embeddings"]
    assert np.array_equal(results["yamnet_defaults/ten"], results["yamnet/audioset-yamnet-1/ten"])


@pytest.mark.parametrize("variation", ["env-mel256-emb512", "music-mel128-emb6144"])
def test_openl3_input_layout_and_values(results, variation):
    """The embeddings equal a NumPy forward pass of the same random graph on the mel patches
    soundsim computed, fed as [batch, bands, 199, 1]; batching changes them at rounding level only."""
    patches = results[f"openl3/{variation}/patches"]
    n_mels = int(variation.split("-mel")[1].split("-")[0])
    dim = int(variation.split("-emb")[1])
    assert patches.shape == (11, 199, n_mels) and patches.dtype == np.float32
    assert patches.max(axis=(1, 2)) == pytest.approx(0.0) and patches.min() >= -80.0 - 1e-3
    expected = graphs.forward_openl3(SEED, n_mels, dim, np.transpose(patches, (0, 2, 1))[..., None])
    ten = results[f"openl3/{variation}/ten"]
    np.testing.assert_allclose(ten, expected, rtol=1e-4, atol=1e-4)
    # other batch sizes change the values at float32 rounding level only (TensorFlow's kernels)
    np.testing.assert_allclose(results[f"openl3/{variation}/ten_batch4"], ten, rtol=1e-5, atol=1e-4)


ERRORS = {
    "missing_file": r"models\.vggish\.weights\.audioset-vggish-3: .*nope\.pb does not exist \(audioset-vggish-3\.pb",
    "no_weights": r"models\.vggish\.weights\.audioset-vggish-3: no weights path given",
    "empty_folder": r"empty is a folder without audioset-vggish-3\.pb",
    "garbage": r"cannot use .*garbage/audioset-vggish-3\.pb as vggish audioset-vggish-3: .*Invalid GraphDef",
    "yamnet_for_vggish_json": r"audioset-yamnet-1\.json: its embeddings \(embeddings\) have 1024 dimensions; "
                              r"vggish audioset-vggish-3 has 128",
    "yamnet_for_vggish_nojson": r"cannot use .*audioset-yamnet-1\.pb as vggish .*'model/Placeholder' is not a valid "
                                r"node name",
    "vgg41_for_vgg42_json": r"have 256 dimensions; fsd-sinet vgg42-tlpf-1 has 512",
    "vgg41_for_vgg42_nojson": r"fsd-sinet-vgg41-tlpf-1\.pb gives embeddings of shape \(256,\) .*has 512 dimensions",
    "tlpf_renamed_aps": r"fsd-sinet-vgg42-aps-1\.json describes fsd-sinet-vgg42-tlpf-1\.pb \(variation "
                        r"'vgg42-tlpf-1'\), not fsd-sinet-vgg42-aps-1\.pb",
    "mel128_for_mel256_json": r"gives the input shape \[199, 128\]; env-mel256-emb6144 takes \[199, 256\]",
    "emb6144_for_emb512_nojson": r"gives embeddings of shape \(6144,\) .*env-mel128-emb512 has 512 dimensions",
    "bad_json": r"audioset-yamnet-1\.json is not Essentia model metadata \(JSON\)",
    "other_rate_json": r"audioset-yamnet-1\.json is for 44100 Hz audio; yamnet audioset-yamnet-1 takes 16000 Hz",
}


@pytest.mark.parametrize("label", sorted(ERRORS))
def test_clear_errors_for_missing_or_wrong_files(results, label):
    import re

    msg = str(results[f"error/{label}"])
    assert re.search(ERRORS[label], msg), msg


def test_too_short_clip_is_a_value_error(results):
    assert "clip too short for yamnet" in str(results["short_error"])


def test_extraction_through_the_env(weights, audio_files, results, tmp_path):
    """extract_shard + merge_shards in the essentia-tf env (FSD-SINet, the paper's variation); rows per clip and
    the same values as the other process."""
    paths = [audio_files["ten"], audio_files["one"], audio_files["long"]]
    man = write_manifest(tmp_path, paths, label="Dog")
    out = tmp_path / "vgg42-tlpf-1.h5"
    extract_offline(ENV, man, "fsd-sinet", "vgg42-tlpf-1", out, weights["pbs"][("fsd-sinet", "vgg42-tlpf-1")])
    e = store.read_embeddings(out)
    assert e.fnames == ["ten", "one", "long"] and e.failed == []
    assert np.diff(e.offsets).tolist() == [19, 1, 49]
    assert e.attrs["level"] == "frame" and e.attrs["env"] == ENV and e.attrs["model"] == "fsd-sinet"
    assert float(e.attrs["hop"]) == pytest.approx(50 * 220 / 22050) and e.embeddings.shape[1] == 512
    assert np.array_equal(e.embeddings[:19], results["fsd-sinet/vgg42-tlpf-1/ten"])
    assert "essentia-tensorflow" in json.dumps(e.attrs["versions"])


@pytest.mark.parametrize("name,variation", [c for c in CASES if c[0] != "openl3"],
                         ids=[f"{n}-{v}" for n, v in CASES if n != "openl3"])
def test_long_clip_in_calls_of_a_few_patches(results, name, variation):
    """Issue 12: a long clip embedded in calls of 7 patches (each with the patch before, the last
    one to the clip's end; FSD-SINet normalised here) gives the rows of one call on the whole clip."""
    key = f"{name}/{variation}"
    chunked, whole = results[f"{key}/long_chunked"], results[f"{key}/long_one_call"]
    assert chunked.shape == whole.shape and chunked.shape[0] > 7 * 3
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-6)  # seen: bit-identical
    if name == "fsd-sinet":
        np.testing.assert_array_equal(results[f"{key}/long_normalised_here"], whole)


@pytest.mark.parametrize("variation", ["env-mel256-emb512", "music-mel128-emb6144"])
def test_openl3_windows_equal_framegenerator(results, variation):
    np.testing.assert_array_equal(results[f"openl3/{variation}/patches"],
                                  results[f"openl3/{variation}/patches_framegenerator"])
