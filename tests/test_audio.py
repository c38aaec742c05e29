"""Audio probing, checking and loading on real files the tests write."""

from __future__ import annotations

import numpy as np
import pytest

from soundsim import audio
from soundsim.errors import AudioError


@pytest.mark.parametrize(
    "ext,sr,channels,subtype",
    [(".wav", 16000, 1, "PCM_16"), (".wav", 48000, 2, "PCM_24"), (".flac", 22050, 2, "PCM_16"), (".flac", 44100, 1, "PCM_16")],
)
def test_check_good_files(tmp_path, write_audio, ext, sr, channels, subtype):
    p = write_audio(tmp_path / f"x{ext}", 1.5, sr, channels, subtype)
    info = audio.check(p)
    assert (info.sample_rate, info.channels, info.frames) == (sr, channels, int(1.5 * sr))
    assert info.duration == pytest.approx(1.5)
    assert info.format == ("WAV" if ext == ".wav" else "FLAC")


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("empty", "empty file (0 bytes)"),
        ("random", "cannot read audio header"),
        ("truncated_wav", "truncated: header declares"),
        ("truncated_flac", "cannot decode (corrupt or truncated)"),
        ("zero_length", "no audio frames"),
    ],
)
def test_bad_files_name_path_and_reason(tmp_path, make_bad_audio, kind, reason):
    path = make_bad_audio(tmp_path)[kind]
    with pytest.raises(AudioError) as exc:
        audio.check(path)
    assert exc.value.path == str(path)
    assert reason in exc.value.reason
    assert str(path) in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        audio.probe(tmp_path / "nope.wav")


def test_header_only_check_still_finds_truncated_wav_but_not_corrupt_flac(tmp_path, make_bad_audio):
    bad = make_bad_audio(tmp_path)
    with pytest.raises(AudioError, match="truncated"):
        audio.check(bad["truncated_wav"], full=False)
    # a corrupt FLAC has a valid header: only a full decode finds it
    assert audio.check(bad["truncated_flac"], full=False).frames == 44100


def test_load_downmixes_and_resamples(tmp_path, write_audio):
    p = write_audio(tmp_path / "s.flac", 1.0, 48000, 2)
    x, sr = audio.load(p, sample_rate=16000)
    assert sr == 16000 and x.dtype == np.float32 and x.shape == (16000,)
    stereo, sr2 = audio.load(p, mono=False)
    assert sr2 == 48000 and stereo.shape == (48000, 2)
    # explicit downmix = channel mean
    np.testing.assert_allclose(audio.load(p)[0], stereo.mean(axis=1), atol=1e-7)


def test_load_is_deterministic(tmp_path, write_audio):
    p = write_audio(tmp_path / "d.wav", 0.7, 44100, 1)
    a, _ = audio.load(p, sample_rate=22050)
    b, _ = audio.load(p, sample_rate=22050)
    assert np.array_equal(a, b)


# ---------------------------------------------------------------- streaming load (issue 12)


def _one_shot_load(path, sample_rate=None, mono=True):
    """What audio.load did before it streamed: decode all, downmix, one-shot soxr."""
    import soundfile as sf
    import soxr

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if mono:
        x = x.mean(axis=1, dtype=np.float32)
    if sample_rate is not None and sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate, quality="VHQ").astype(np.float32, copy=False)
        sr = sample_rate
    return np.ascontiguousarray(x), sr


@pytest.mark.parametrize("ext,subtype", [(".wav", "PCM_16"), (".wav", "FLOAT"), (".flac", "PCM_24"), (".ogg", "VORBIS")])
@pytest.mark.parametrize("sr,channels,seconds", [(44100, 2, 1.37), (48000, 1, 0.9), (22050, 3, 0.25), (16000, 2, 1e-4)])
def test_streaming_load_is_bit_identical_to_one_shot(tmp_path, monkeypatch, ext, subtype, sr, channels, seconds):
    import soundfile as sf

    monkeypatch.setattr(audio, "LOAD_BLOCK", 4096)  # many blocks, a partial last one
    rng = np.random.default_rng(sr + channels)
    p = tmp_path / f"x{ext}"
    sf.write(p, np.clip(0.3 * rng.standard_normal((max(1, int(seconds * sr)), channels)), -1, 1), sr, subtype=subtype)
    for target in (None, 16000, 44100, 48000):
        for mono in (True, False):
            got, got_sr = audio.load(p, sample_rate=target, mono=mono)
            want, want_sr = _one_shot_load(p, target, mono)
            assert got_sr == want_sr and got.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_array_equal(got, want)  # bit-identical, not just close


@pytest.mark.parametrize("value,name", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_load_names_the_first_non_finite_sample(tmp_path, monkeypatch, value, name):
    import soundfile as sf

    monkeypatch.setattr(audio, "LOAD_BLOCK", 1000)
    x = np.zeros((5000, 2), dtype=np.float32)
    x[2345, 1] = value  # in the third block
    x[3000, 0] = np.nan  # a later one is not named
    p = tmp_path / "bad.wav"
    sf.write(p, x, 8000, subtype="FLOAT")
    for target in (None, 16000):
        with pytest.raises(AudioError) as exc:
            audio.load(p, sample_rate=target)
        assert exc.value.path == str(p)
        assert exc.value.reason == f"non-finite sample ({name}) at frame 2345 (0.293 s), channel 1"


def test_check_names_the_first_non_finite_sample(tmp_path):
    import soundfile as sf

    x = np.zeros((70000, 2), dtype=np.float32)
    x[66000, 1] = np.inf  # past the first block of 65536 frames
    p = tmp_path / "inf.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError) as exc:
        audio.check(p, full=True)
    assert exc.value.reason == "non-finite sample (inf) at frame 66000 (4.125 s), channel 1"


def test_streaming_load_of_mp3_matches_one_shot_within_a_float_step(tmp_path, monkeypatch):
    """MP3: libsndfile's own decoding differs by up to one float32 step with the read size."""
    import soundfile as sf

    monkeypatch.setattr(audio, "LOAD_BLOCK", 4096)
    p = tmp_path / "x.mp3"
    sf.write(p, 0.3 * np.random.default_rng(0).standard_normal((70000, 2)), 44100, format="MP3")
    for target in (None, 16000):
        got, sr = audio.load(p, sample_rate=target)
        want, want_sr = _one_shot_load(p, target)
        assert sr == want_sr and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
