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
