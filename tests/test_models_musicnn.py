"""musicnn (bundled TF1 checkpoints) in its own environment, called through a subprocess.

The main .venv has no TensorFlow: these tests run code in ``.venvs/musicnn``
(``make envs``) and skip, saying why, when it is missing.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundsim import models, store

from conftest import ROOT, tone, write_manifest

pytestmark = pytest.mark.model_env("musicnn")

ENV = ROOT / ".venvs" / "musicnn"
PY = ENV / "bin" / "python"

# Run in the musicnn env: soundsim's embedder next to musicnn's own extractor, on the same files.
COMPARE = textwrap.dedent(
    """
    import sys
    import numpy as np
    from soundsim import audio, extract, models

    p10, p1, out = sys.argv[1:4]
    res = {}
    m = models.load("musicnn", "MTT_musicnn")
    y10, _ = audio.load(p10, 16000)
    res["a"], res["b"] = m.embed(y10), m.embed(y10)
    res["one_second"] = extract.embed_clip(m, p1)  # padded to 3 s by extraction
    for layer in ("taggram", "mean_pool", "max_pool"):
        res[layer] = models.load("musicnn", "MTT_musicnn", options={"layer": layer}).embed(y10)
    res["msd"] = models.load("musicnn", "MSD_musicnn").embed(y10)

    # a local checkpoint folder with the package's layout (here: a copy of the bundled one)
    import shutil
    from soundsim.errors import ConfigError
    from soundsim.models import musicnn as mn
    local = shutil.copytree(mn.bundled_checkpoint("MTT_musicnn"), out + ".ckpt")
    res["local"] = models.load("musicnn", "MTT_musicnn", weights=local).embed(y10)
    try:
        models.load("musicnn", "MTT_musicnn", weights=out + ".nope")
    except ConfigError as e:
        res["bad_weights_error"] = np.array(str(e))

    # issue 12: a 70 s clip's spectrogram in chunks of 3 patches (bounded memory) = the whole clip's
    y70 = np.tile(y10, 7)
    mn.PATCHES_PER_CHUNK = 3
    res["y70_chunked"] = m.embed(y70)
    mn.PATCHES_PER_CHUNK = 10**6
    res["y70_one_chunk"] = m.embed(y70)
    whole = mn.log_mel(y70)
    res["y70_mel_diff"] = np.array(float(np.abs(mn.log_mel_frames(y70, 187, 3 * 187) - whole[187:4 * 187]).max()))
    res["y70_patches"] = np.array(len(mn.patches(whole)))

    from musicnn import configuration
    from musicnn.extractor import extractor
    tags, _, f = extractor(p10, model="MTT_musicnn", input_length=3, input_overlap=False, extract_features=True)
    res["mn_taggram"], res["mn_mean_pool"], res["mn_max_pool"] = tags, f["mean_pool"], f["max_pool"]
    res["mn_penultimate"] = f["penultimate"]
    _, _, f = extractor(p10, model="MSD_musicnn", input_length=3, input_overlap=False, extract_features=True)
    res["mn_msd_penultimate"] = f["penultimate"]
    configuration.BATCH_SIZE = 64  # all patches in one batch: musicnn's penultimate is right for every patch
    _, _, f = extractor(p10, model="MTT_musicnn", input_length=3, input_overlap=False, extract_features=True)
    res["mn_penultimate_batched"] = f["penultimate"]
    np.savez(out, **res)
    """
)

EXTRACT = textwrap.dedent(
    """
    import sys
    from soundsim import extract
    man, out = sys.argv[1:3]
    extract.merge_shards([extract.extract_shard(man, "musicnn", "MTT_musicnn", 0, 1, out + ".shard", progress=False)],
                         out)
    """
)


def run_env(code: str, *args: str) -> None:
    if not (PY.is_file() and (ENV / ".soundsim-installed").is_file()):
        pytest.skip(f"the musicnn environment is not built ({ENV}: run `make envs`)")
    proc = subprocess.run([str(PY), "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("musicnn")
    rng = np.random.default_rng(0)
    t = np.arange(10 * 16000) / 16000
    # a tone whose pitch and loudness change over time, plus noise: the 3 patches differ
    x10 = 0.3 * np.sin(2 * np.pi * (220 + 40 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
    x10 = x10 + 0.02 * rng.standard_normal(len(t))
    files = {"ten": folder / "ten.wav", "one": folder / "one.wav", "stereo": folder / "stereo44k.wav"}
    sf.write(files["ten"], x10.astype(np.float32), 16000, subtype="FLOAT")
    sf.write(files["one"], tone(1.0, 16000, 1, freq=660), 16000)
    sf.write(files["stereo"], tone(4.0, 44100, 2, freq=300, seed=2), 44100)
    return files


@pytest.fixture(scope="module")
def compared(audio_files, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("musicnn-out") / "res.npz"
    run_env(COMPARE, str(audio_files["ten"]), str(audio_files["one"]), str(out))
    with np.load(out) as z:
        return dict(z)


def test_info():
    inf = models.info("musicnn")
    assert (inf.name, inf.variations, inf.sample_rate, inf.level, inf.env) == (
        "musicnn", ("MTT_musicnn", "MSD_musicnn"), 16000, "frame", "musicnn")
    assert inf.dim == 200 and inf.min_duration == 3.0 and inf.weights == "bundled" and inf.paper is None
    assert inf.hop == pytest.approx(187 * 256 / 16000)  # 2.992 s: one whole patch, no overlap
    assert inf.packages == ("musicnn", "tensorflow-cpu", "librosa")


def test_module_import_is_light():
    """soundsim.models imports every model module: no TensorFlow or musicnn at import time."""
    import subprocess as sp
    import sys

    code = ("import sys, soundsim.models.musicnn as m; "
            "assert not {'tensorflow', 'musicnn', 'librosa'} & set(sys.modules), 'heavy import'; "
            "assert [m.n_rows(n) for n in (47615, 47616, 48000, 160000, 480000)] == [0, 1, 1, 3, 10]")
    sp.run([sys.executable, "-c", code], check=True)


def test_shape_dtype_and_determinism(compared):
    a = compared["a"]
    # 10 s at 16 kHz = 626 spectrogram frames -> whole 187-frame patches at 0, 187, 374 (the last 65
    # frames, about 1 s, are dropped as musicnn's batch_data does)
    assert a.shape == (3, 200) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, compared["b"])
    assert not np.allclose(a[0], a[1]) and not np.allclose(a[1], a[2])
    assert compared["msd"].shape == (3, 200) and not np.allclose(compared["msd"], a)


def test_values_equal_musicnns_own_extractor(compared):
    a = compared["a"]
    # musicnn's taggram, mean_pool and max_pool are right for every patch: same values
    np.testing.assert_allclose(compared["taggram"], compared["mn_taggram"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(compared["mean_pool"], compared["mn_mean_pool"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(compared["max_pool"], compared["mn_max_pool"], rtol=0, atol=1e-5)
    assert compared["taggram"].shape == (3, 50) and compared["mean_pool"].shape == (3, 753)
    # penultimate: musicnn 0.1.0 returns the first patch's vector for every patch with its default
    # BATCH_SIZE of 1 (a bug in its batch loop); the first row agrees exactly ...
    mn = compared["mn_penultimate"]
    assert mn.shape == (3, 200) and np.array_equal(mn[0], mn[1]) and np.array_equal(mn[0], mn[2])
    assert np.array_equal(a[0], mn[0])
    assert np.array_equal(compared["msd"][0], compared["mn_msd_penultimate"][0])
    # ... and with all patches in one batch musicnn's penultimate is right for every row
    np.testing.assert_allclose(a, compared["mn_penultimate_batched"], rtol=0, atol=1e-5)


def test_local_checkpoint_folder(compared):
    assert np.array_equal(compared["local"], compared["a"])
    assert "models.musicnn.weights.MTT_musicnn: " in str(compared["bad_weights_error"])
    assert "neither a checkpoint folder nor a checkpoint prefix" in str(compared["bad_weights_error"])


def test_one_second_clip_is_padded_to_one_frame(compared):
    one = compared["one_second"]
    assert one.shape == (1, 200) and one.dtype == np.float32 and np.isfinite(one).all()


def test_extraction_through_the_musicnn_env(audio_files, compared, tmp_path):
    """extract_shard + merge_shards in the musicnn env; rows per clip, hop, and the same values
    as the other process (deterministic across processes)."""
    paths = [audio_files["ten"], audio_files["one"], audio_files["stereo"]]
    man = write_manifest(tmp_path, paths, label="Music")
    out = tmp_path / "MTT_musicnn.h5"
    run_env(EXTRACT, str(man), str(out))
    e = store.read_embeddings(out)
    assert e.fnames == ["ten", "one", "stereo44k"] and e.failed == []
    assert np.diff(e.offsets).tolist() == [3, 1, 1]  # 10 s, 1 s padded to 3 s, 4 s (44.1 kHz stereo)
    assert e.attrs["level"] == "frame" and e.attrs["env"] == "musicnn"
    assert float(e.attrs["hop"]) == pytest.approx(2.992)
    assert np.array_equal(e.embeddings[:3], compared["a"])
    assert np.array_equal(e.embeddings[3:4], compared["one_second"])


def test_long_clip_spectrogram_in_chunks(compared):
    """Issue 12: the spectrogram of a chunk of patches at a time gives the whole clip's rows."""
    assert compared["y70_chunked"].shape == (int(compared["y70_patches"]), 200) == (23, 200)
    np.testing.assert_allclose(compared["y70_chunked"], compared["y70_one_chunk"], rtol=0, atol=1e-6)
    assert float(compared["y70_mel_diff"]) == 0.0  # the chunk's frames are the whole clip's, bit for bit
