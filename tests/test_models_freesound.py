"""The Freesound-style baseline (Essentia FreesoundExtractor) on real audio written by the tests."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from soundsim import extract, models, store
from soundsim.errors import ConfigError

from conftest import tone, write_manifest

pytest.importorskip("essentia")

from soundsim.models import freesound as fs  # noqa: E402

SR = 44100


def clip(seconds: float, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    return tone(seconds, SR, 1, freq=freq, seed=seed).ravel().astype(np.float32)


@pytest.fixture(scope="module")
def model() -> models.LoadedModel:
    return models.load("freesound")


def test_info_and_descriptor_layout():
    inf = models.info("freesound")
    assert (inf.name, inf.variations, inf.sample_rate, inf.level, inf.hop) == (
        "freesound", ("freesound-extractor",), 44100, "clip", None)
    assert inf.dim == fs.DIM == 846 == inf.paper.dims
    assert (inf.env, inf.weights, inf.processing, inf.packages) == ("soundsim", "bundled", "minmax-pca",
                                                                              ("essentia",))
    # 30 single descriptors + 111 bands (27 bark + 18 erb + 28 frequency + 13 gfcc + 13 mfcc + 6 + 6), 6 stats each
    assert len(fs.SINGLE_DESCRIPTORS) == 30 and sum(n for _, n in fs.MULTIBAND_DESCRIPTORS.values()) == 111
    assert len(set(fs.FEATURE_NAMES)) == 846
    assert fs.FEATURE_NAMES[:6] == tuple(f"barkbands_kurtosis.{s}" for s in ("mean", "dmean", "dmean2", "var",
                                                                              "dvar", "dvar2"))
    assert fs.FEATURE_NAMES[30 * 6] == "barkbands_0.mean" and fs.FEATURE_NAMES[-1] == "spectral_contrast_5.dvar2"


def test_module_import_is_light():
    """The registry imports every model module: no Essentia at import time."""
    code = "import sys, soundsim.models.freesound; assert 'essentia' not in sys.modules, 'essentia imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shape_dtype_and_determinism(model):
    x = clip(5.0, 330)
    a, b = model.embed(x), model.embed(x)
    assert a.shape == (1, 846) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b)
    # digital silence around a burst: with Essentia's silentFrames='noise' this differs run to run;
    # the default 'keep' is deterministic
    y = np.r_[np.zeros(SR, np.float32), clip(0.2, 700, seed=3), np.zeros(SR // 2, np.float32)]
    assert np.array_equal(model.embed(y), model.embed(y))
    assert not np.array_equal(a, model.embed(clip(5.0, 1200, seed=1)))


def test_values_are_the_named_extractor_statistics(tmp_path):
    """Each position holds the statistic its FEATURE_NAMES entry names, for a short and a long clip."""
    import essentia.standard as es

    emb = models.load("freesound").embedder
    for seconds in (0.3, 4.0):
        x = clip(seconds, 550)
        path = tmp_path / f"c{seconds}.wav"
        sf.write(path, x, SR, subtype="FLOAT")
        stats, _ = es.FreesoundExtractor(lowlevelSilentFrames="keep")(str(path))
        v = emb.embed(x, SR)[0]
        for name, key, index in [("pitch.mean", "lowlevel.pitch.mean", None),
                                 ("spectral_centroid.dvar2", "lowlevel.spectral_centroid.dvar2", None),
                                 ("mfcc_0.mean", "lowlevel.mfcc.mean", 0),
                                 ("mfcc_12.dmean", "lowlevel.mfcc.dmean", 12),
                                 ("erb_bands_17.var", "lowlevel.erbbands.var", 17),
                                 ("scvalleys_5.dvar", "lowlevel.spectral_contrast_valleys.dvar", 5),
                                 ("spectral_contrast_0.mean", "lowlevel.spectral_contrast_coeffs.mean", 0)]:
            want = stats[key] if index is None else stats[key][index]
            assert v[fs.FEATURE_NAMES.index(name)] == np.float32(want), (seconds, name)
        fb = fs.frequency_bands_stats(x)
        assert v[fs.FEATURE_NAMES.index("frequency_bands_27.dmean2")] == np.float32(
            fb["lowlevel.frequency_bands.dmean2"][27])


@pytest.mark.parametrize("n", [100, 13230, 45056, 88200 + 7])
def test_frequency_bands_use_the_extractors_frames(tmp_path, n):
    """soundsim's frames (for frequency_bands) reproduce the extractor's barkbands frames exactly,
    digital silence included."""
    import essentia.standard as es

    x = clip(n / SR + 1e-9, 260, seed=5)[:n]
    x[: n // 3] = 0.0
    path = tmp_path / "c.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    _, frames = es.FreesoundExtractor(lowlevelSilentFrames="keep")(str(path))
    bark = es.BarkBands(numberBands=27)
    assert np.array_equal(np.array([bark(s) for s in fs.spectra(x)]), frames["lowlevel.barkbands"])
    assert fs.frequency_bands_stats(x)["lowlevel.frequency_bands.mean"].shape == (28,)


def test_missing_statistics_are_filled_in_place(caplog):
    """A statistic the extractor did not give becomes 0.0 at its own position (logged); nothing shifts."""
    full = {}
    for name, key, band in fs.DESCRIPTORS:
        for s in fs.STATS:
            if band is None:
                full[f"{key}.{s}"] = np.float32(1.0 + len(full))
            elif f"{key}.{s}" not in full:
                n = fs.MULTIBAND_DESCRIPTORS[name.rsplit("_", 1)[0]][1]
                full[f"{key}.{s}"] = np.arange(n, dtype=np.float32) + 1000 + len(full)
    ref = fs.select(full)
    assert ref.shape == (846,) and (ref != 0).all()
    partial = {k: v for k, v in full.items() if not k.endswith(".dmean2") and k != "lowlevel.mfcc.dvar"}
    with caplog.at_level(logging.WARNING, logger="soundsim.models.freesound"):
        got = fs.select(partial, where="clip.wav")
    gone = [i for i, n in enumerate(fs.FEATURE_NAMES) if n.endswith(".dmean2") or
            (n.startswith("mfcc_") and n.endswith(".dvar"))]
    assert len(gone) == 141 + 13
    assert (got[gone] == 0.0).all()
    keep = np.setdiff1d(np.arange(846), gone)
    assert np.array_equal(got[keep], ref[keep])
    assert "clip.wav: 154 Freesound statistic(s) missing, set to 0.0" in caplog.text
    with pytest.raises(ValueError, match="lowlevel.mfcc.mean: expected 13 bands"):
        fs.select({**full, "lowlevel.mfcc.mean": np.zeros(12, np.float32)})


def test_silent_and_very_quiet_clips_raise_a_clear_error(model):
    with pytest.raises(RuntimeError, match="silent clip: FreesoundExtractor cannot analyse silence"):
        model.embed(np.zeros(SR, np.float32))
    quiet = (10 ** (-60 / 20) * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    with pytest.raises(RuntimeError, match="silent clip: .*ReplayGain > 40 dB.*completely silent file"):
        model.embed(quiet)


def test_clip_without_any_pitched_frame_falls_back_to_dither(model, caplog):
    """A lone click in silence: every frame has zero pitch and the extractor's SFX part aborts with
    silentFrames='keep'; soundsim re-runs it with a fixed dither: kept, deterministic, warned."""
    x = np.zeros(3000, np.float32)
    x[0] = 1.0
    with caplog.at_level(logging.WARNING, logger="soundsim.models.freesound"):
        a = model.embed(x)
    assert "no frame has a pitch" in caplog.text
    assert a.shape == (1, 846) and np.isfinite(a).all() and np.array_equal(a, model.embed(x))
    d = fs.dither(x)
    assert len(d) == 3000 and np.array_equal(d, fs.dither(x))
    assert 1.5e-5 < np.std(d[100:]) < 2.5e-5  # -94 dBFS


def test_load_rejects_weights_and_unknown_options():
    with pytest.raises(ConfigError, match="the Freesound features have no weights"):
        models.load("freesound", weights="/some/file")
    with pytest.raises(ConfigError, match="^models.freesound.options.layer: unknown option; allowed options: "
                       "silent_frames$"):
        models.load("freesound", options={"layer": "x"})
    with pytest.raises(ConfigError, match="^models.freesound.options.silent_frames: 'loud' is not allowed; "
                       "allowed values: 'keep', 'noise'$"):
        models.load("freesound", options={"silent_frames": "loud"})
    assert models.load("freesound").embedder.silent_frames == "keep"  # the declared default




def test_extraction_end_to_end_raw_rows_minmax_at_processing_and_failed(tmp_path):
    """Two shards through extract_shard, merged: the extractor's own values (a clip's rows
    never depend on other clips, so they can be reused); min-max scaling to [0, 1] over the
    collection is the first processing step (order 'minmax-pca'); the silent clip in /failed."""
    from soundsim import process as P

    audio = tmp_path / "audio"
    audio.mkdir()
    paths = []
    for i, (sec, sr, ch) in enumerate([(1.0, 16000, 1), (0.3, 48000, 2), (2.0, 44100, 1), (1.5, 22050, 1)]):
        p = audio / f"c{i}.wav"
        sf.write(p, tone(sec, sr, ch, freq=200 + 250 * i, seed=i), sr)
        paths.append(p)
    silent = audio / "silent.wav"
    sf.write(silent, np.zeros((SR // 2, 1)), SR)
    paths.insert(2, silent)
    man = write_manifest(tmp_path, paths)
    shards = [extract.extract_shard(man, "freesound", "freesound-extractor", k, 2,
                                    extract.shard_path(tmp_path / "out", "freesound-extractor", k, 2), progress=False)
              for k in range(2)]
    raw = np.concatenate([store.read_embeddings(s).embeddings for s in shards])
    out = extract.merge_shards(shards, tmp_path / "out" / "freesound-extractor.h5")
    e = store.read_embeddings(out)
    assert e.fnames == ["c0", "c1", "c2", "c3"] and e.embeddings.shape == (4, 846)
    assert e.attrs["processing"] == "minmax-pca" and e.attrs["level"] == "clip"
    assert np.array_equal(e.embeddings, raw)  # merged as extracted
    assert [f for f, _ in e.failed] == ["silent"]
    assert "silent clip: FreesoundExtractor cannot analyse silence" in e.failed[0][1]
    scaled = P.normalise(e.embeddings, P.processing_order(e.attrs))
    lo, hi = raw.min(axis=0).astype(np.float64), raw.max(axis=0).astype(np.float64)
    # features that vary over the 4 clips, however small their range: spectral_decrease.var/dvar/dvar2
    # (values ~1e-17) are scaled too (sklearn's MinMaxScaler would leave ranges below 2.2e-15 unscaled)
    varying = hi > lo
    tiny = varying & ((hi - lo) < 2e-15)
    assert varying.sum() > 700 and tiny.any()
    assert (scaled >= 0).all() and (scaled <= 1 + 1e-12).all()
    np.testing.assert_allclose(scaled[:, varying].min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled[:, varying].max(axis=0), 1.0, atol=1e-12)
    want = (raw[:, varying].astype(np.float64) - lo[varying]) / (hi[varying] - lo[varying])
    np.testing.assert_allclose(scaled[:, varying], want, atol=1e-12)
    assert (scaled[:, ~varying] == 0).all()  # constant features become 0


def test_freesound_on_the_demo_the_three_searches_differ_without_pca(tmp_path):
    """The paper's Freesound baseline (freesound-create_clip_level_embedding.py): min-max ->
    (PCA) -> search, no L2 before PCA. Without PCA the vectors have different lengths, so
    MIPS, MCSS and NNS rank differently; under the deep models' order (L2 first) the
    same vectors would make all three rank alike."""
    from soundsim.datasets import csv_folder, demo
    from soundsim.evaluate import evaluate_grid
    from soundsim.manifest import build_manifest
    from soundsim.manifest import write_manifest as write_man

    src = tmp_path / "source"
    demo.generate(src, seed=0, clips_per_class=2, progress=False)
    col = csv_folder.load("demo", src / "audio", src / "ground_truth.csv", src / "vocabulary.csv",
                          src / "families.json")
    paths = write_man(build_manifest(col, progress=False), tmp_path / "res")
    shard = extract.extract_shard(paths["manifest"], "freesound", "freesound-extractor", 0, 1, tmp_path / "s.h5",
                                  progress=False)
    e = store.read_embeddings(extract.merge_shards([shard], tmp_path / "fs.h5"))
    man = pd.read_csv(paths["manifest"])[["fname", "labels"]]
    man["fname"] = man["fname"].astype(str)
    got = {s["setting"]["search"]: s for s in evaluate_grid(e, man, pcas=["none"], out_dir=tmp_path / "m",
                                                            restrict=True, save_processed=True)}
    Z = store.read_embeddings(tmp_path / "m" / "processed" / "agg-none_pca-none.h5").embeddings
    norms = np.linalg.norm(Z.astype(np.float64), axis=1)
    assert (Z >= 0).all() and (Z <= 1 + 1e-6).all() and norms.std() > 0.1 * norms.mean()  # not unit length
    ranks = {s: store.read_rankings(tmp_path / "m" / f"agg-none_pca-none_search-{s}" / "rankings.h5").indices
             for s in ("mips", "mcss", "nns")}
    for a, b in (("mips", "mcss"), ("mips", "nns"), ("mcss", "nns")):
        assert (ranks[a][:, 0] != ranks[b][:, 0]).mean() > 0.1, (a, b)  # top results differ for many queries
    maps = [got[s]["macro"]["map@15"] for s in ("mips", "mcss", "nns")]
    assert len(set(maps)) == 3
    assert got["mcss"]["processing"]["order"] == "minmax-pca"
    # the deep models' order on the same rows: L2 first, so the three searches rank alike
    deep = store.Embeddings(e.fnames, e.embeddings, e.offsets, {**e.attrs, "processing": "l2-pca"})
    l2 = {s["setting"]["search"]: s for s in evaluate_grid(deep, man, pcas=["none"], restrict=True)}
    assert l2["mips"]["macro"] == pytest.approx(l2["mcss"]["macro"], abs=1e-12)
    assert l2["nns"]["macro"] == pytest.approx(l2["mcss"]["macro"], abs=1e-12)


def test_long_clip_in_chunks_equals_the_whole_clip(model, monkeypatch):
    """Issue 12: a clip over CHUNK_SECONDS is analysed in chunks (each two frames early, with a
    guard tone whose frames are dropped; only the used per-frame values kept): the 846 values of
    the whole-clip analysis, bit for bit, silent stretch and chunk edges included."""
    from conftest import chirp

    x = chirp(26.0, SR, 2)
    x[6 * SR : 9 * SR] = 0.0  # digital silence across a chunk boundary
    whole = model.embed(x)
    monkeypatch.setattr(fs, "CHUNK_SECONDS", 7.0)  # 4 chunks
    chunked = model.embed(x)
    assert chunked.shape == whole.shape == (1, fs.DIM)
    np.testing.assert_array_equal(chunked, whole)
    frames = model.embedder._chunked_frames(x)
    assert [len(p) for p in frames["lowlevel.pitch"]] == [280, 280, 280, 281]  # 1121 frames in 4 chunks
