"""Sharded, resumable extraction on real audio with a real model (aisfx, bundled weights)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from soundsim import extract, store
from soundsim.errors import AudioError

from conftest import write_manifest

MODEL, VAR = "aisfx", "x-sequential-ce"




@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """12 real clips of 1-4 s, mixed rates and channels."""
    from conftest import tone

    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for i in range(12):
        sr = [16000, 22050, 44100, 48000][i % 4]
        p = folder / f"c{i:02d}.wav"
        sf.write(p, tone(1.0 + (i % 4), sr, 1 + i % 2, freq=150 + 60 * i, seed=i), sr)
        paths.append(p)
    return paths


def test_shard_slice_partitions():
    for n in (0, 1, 7, 10, 11):
        for shards in (1, 2, 3, 4):
            parts = [extract.shard_slice(n, shards, k) for k in range(shards)]
            assert [i for s in parts for i in range(n)[s]] == list(range(n))
            sizes = [len(range(n)[s]) for s in parts]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError):
        extract.shard_slice(5, 2, 2)


def test_shards_merge_to_the_same_as_one_run(tmp_path, clips):
    man = write_manifest(tmp_path, clips[:5])
    one = extract.extract_shard(man, MODEL, VAR, 0, 1, tmp_path / "one.shard.h5", progress=False)
    merged_one = extract.merge_shards([one], tmp_path / "one.h5")
    parts = [extract.extract_shard(man, MODEL, VAR, k, 3, tmp_path / f"p{k}.h5", progress=False) for k in range(3)]
    merged = extract.merge_shards(parts, tmp_path / "three.h5")
    a, b = store.read_embeddings(merged_one), store.read_embeddings(merged)
    assert a.fnames == b.fnames == [p.stem for p in clips[:5]]
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.embeddings, b.embeddings)
    assert a.dim == 512 and a.embeddings.dtype == np.float32
    assert a.attrs["model"] == MODEL and a.attrs["level"] == "frame" and a.attrs["sample_rate"] == 44100
    assert "aisfx" in a.attrs["versions"] and a.attrs["shards"] == 1 and b.attrs["shards"] == 3
    # blocks of 100 spectrogram frames (hop 1024 at 44.1 kHz), block hop 50, partial blocks dropped:
    # 1 s and 2 s are padded to 2.4 s (~104 frames) -> 1 block; 3 s (~130 frames) -> 1; 4 s (~173) -> 2
    assert a.frame_counts.tolist() == [1, 1, 1, 2, 1]
    assert not list(tmp_path.glob("*.partial")), "journals are removed once a shard is written"


def test_same_clip_same_vector(tmp_path, clips):
    man = write_manifest(tmp_path, [clips[3], clips[3]])
    # the same file twice: fnames would clash in one file, so embed in two shards
    e0 = store.read_embeddings(extract.extract_shard(man, MODEL, VAR, 0, 2, tmp_path / "a.h5", progress=False))
    e1 = store.read_embeddings(extract.extract_shard(man, MODEL, VAR, 1, 2, tmp_path / "b.h5", progress=False))
    assert np.array_equal(e0.embeddings, e1.embeddings)


@pytest.fixture
def broken(tmp_path, make_bad_audio):
    bad = make_bad_audio(tmp_path / "bad")
    silent = tmp_path / "bad" / "silent.wav"
    sf.write(silent, np.zeros(44100), 44100)
    short = tmp_path / "bad" / "ten_ms.wav"
    sf.write(short, 0.1 * np.sin(np.arange(160) / 3.0), 16000)
    stereo = tmp_path / "bad" / "stereo48k.flac"
    sf.write(stereo, 0.1 * np.random.default_rng(0).standard_normal((48000 * 3, 2)), 48000)
    return {**bad, "silent": silent, "ten_ms": short, "stereo48k": stereo}


def test_broken_audio_matrix_skip(tmp_path, broken):
    order = ["empty", "random", "truncated_wav", "truncated_flac", "zero_length", "silent", "ten_ms", "stereo48k"]
    man = write_manifest(tmp_path, [broken[k] for k in order])
    e = store.read_embeddings(extract.extract_shard(man, MODEL, VAR, 0, 1, tmp_path / "x.h5", progress=False))
    failed = dict(e.failed)
    assert set(failed) == {"empty", "random", "truncated_wav", "truncated_flac", "zero_length"}
    assert failed["empty"] == "empty file (0 bytes)"
    assert failed["random"].startswith("cannot read audio header")
    assert failed["truncated_wav"].startswith("truncated: header declares")
    assert failed["truncated_flac"].startswith("cannot decode")
    assert failed["zero_length"].startswith("no audio frames")
    # silent: a valid (constant) embedding; 10 ms: padded to 2.4 s -> one block; stereo 48 kHz: downmixed, resampled
    assert e.fnames == ["silent", "ten_ms", "stereo48k"]
    assert e.frame_counts.tolist() == [1, 1, 1]


def test_broken_audio_fail_names_the_file(tmp_path, broken):
    man = write_manifest(tmp_path, [broken["silent"], broken["truncated_wav"], broken["stereo48k"]])
    with pytest.raises(AudioError) as exc:
        extract.extract_shard(man, MODEL, VAR, 0, 1, tmp_path / "x.h5", on_bad_audio="fail", progress=False)
    assert exc.value.path == str(broken["truncated_wav"])
    # the clip done before the failure is kept in the journal
    index = (tmp_path / "x.h5.partial" / "index.jsonl").read_text().splitlines()
    assert len(index) == 1 and '"silent"' in index[0]
    assert not (tmp_path / "x.h5").exists()


def test_journal_survives_a_torn_record(tmp_path, clips, caplog):
    man = write_manifest(tmp_path, clips[:4])
    out = tmp_path / "s.h5"
    # embed two clips through the real code path, then simulate a crash mid-record
    ref = store.read_embeddings(extract.extract_shard(man, MODEL, VAR, 0, 1, tmp_path / "ref.h5", progress=False))
    j = extract.Journal(extract.journal_path(out), meta := _meta())
    j.add(ref.fnames[0], ref.clip_rows(0), ref.keys[0])
    j.add(ref.fnames[1], ref.clip_rows(1), ref.keys[1])
    with open(j.rows_path, "ab") as fh:
        fh.write(b"\x00" * 1000)  # rows of a clip whose index line never got written
    with open(j.index_path, "a") as fh:
        fh.write('{"fname": "c02", "sta')  # torn index line
    j2 = extract.Journal(j.folder, meta)
    assert [r.fname for r in j2.records] == ["c00", "c01"]
    assert j2.rows_path.stat().st_size == (ref.offsets[2]) * 512 * 4
    caplog.set_level("INFO")
    got = store.read_embeddings(extract.extract_shard(man, MODEL, VAR, 0, 1, out, progress=False))
    assert np.array_equal(got.embeddings, ref.embeddings) and got.fnames == ref.fnames
    assert "4 clips: 0 reused from no previous file, 2 already done (journal), 2 to embed" in caplog.text


def _meta():
    from soundsim.provenance import model_code_version

    from soundsim.models import check_options

    # the journal is for the options the shard runs with: every declared one, defaults filled
    return extract.journal_meta(MODEL, VAR, None, "bundled", check_options(MODEL, {}), model_code_version(MODEL))


def test_journal_for_other_settings_is_discarded(tmp_path, clips, caplog):
    folder = tmp_path / "x.h5.partial"
    j = extract.Journal(folder, {"model": "other"})
    j.fail("c00", "whatever")
    j2 = extract.Journal(folder, {"model": MODEL})
    assert j2.records == []
    assert "journal was made for other settings" in caplog.text


def test_kill_minus_9_then_resume_equals_uninterrupted(tmp_path, clips):
    """SIGKILL a real `soundsim extract` process mid-shard; the re-run resumes and
    the result equals an uninterrupted run."""
    man = write_manifest(tmp_path, clips)
    ref = store.read_embeddings(extract.extract_shard(man, MODEL, VAR, 0, 1, tmp_path / "ref.h5", progress=False))
    out = tmp_path / "killed.h5"
    cmd = [sys.executable, "-m", "soundsim.cli", "-q", "extract", "--manifest", str(man), "--model", MODEL,
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    index = tmp_path / "killed.h5.partial" / "index.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if index.exists() and len(index.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(index.read_text().splitlines())
    assert 3 <= done_before < len(clips), "the process was killed mid-shard"
    assert not out.exists()
    r = subprocess.run(cmd[:3] + cmd[4:], capture_output=True, text=True, timeout=300)  # without -q
    assert r.returncode == 0, r.stderr
    assert f"{done_before} already done" in r.stderr
    got = store.read_embeddings(out)
    assert got.fnames == ref.fnames
    assert np.array_equal(got.offsets, ref.offsets) and np.array_equal(got.embeddings, ref.embeddings)
    assert got.failed == ref.failed


def test_prepare_pads_short_clips():
    assert len(extract.prepare(np.ones(100, np.float32), 1000, 0.5)) == 500
    assert len(extract.prepare(np.ones(800, np.float32), 1000, 0.5)) == 800


# --------------------------------------------------------------------------- content keys and reuse


def _run(man, out, **kw):
    return store.read_embeddings(extract.extract_shard(man, MODEL, VAR, 0, 1, out, progress=False, **kw))


def test_only_changed_and_new_clips_are_embedded_the_rest_is_reused_bit_for_bit(tmp_path, clips, caplog):
    import shutil

    from conftest import tone

    folder = tmp_path / "audio"
    folder.mkdir()
    paths = [folder / p.name for p in clips[:6]]
    for src, dst in zip(clips[:6], paths, strict=True):
        shutil.copy(src, dst)
    first = _run(write_manifest(tmp_path, paths), tmp_path / "first.h5")
    assert first.keys is not None and len(set(first.keys)) == 6 and first.attrs["n_reused"] == 0
    # one clip's audio changes (same name), one clip leaves, one arrives
    sf.write(paths[2], tone(3.0, 22050, 1, freq=997, seed=99), 22050)
    new = folder / "new.wav"
    sf.write(new, tone(2.0, 16000, 1, freq=333, seed=7), 16000)
    man = write_manifest(tmp_path, [p for p in paths if p.name != "c04.wav"] + [new])
    caplog.set_level("INFO")
    second = _run(man, tmp_path / "second.h5", reuse=tmp_path / "first.h5")
    assert "6 clips: 4 reused from" in caplog.text and "2 to embed" in caplog.text
    assert second.fnames == ["c00", "c01", "c02", "c03", "c05", "new"]
    assert second.attrs["n_reused"] == 4 and second.attrs["n_embedded"] == 2
    for f in ("c00", "c01", "c03", "c05"):  # unchanged: the same bits
        i, j = first.fnames.index(f), second.fnames.index(f)
        assert np.array_equal(first.clip_rows(i), second.clip_rows(j)) and first.keys[i] == second.keys[j]
    i, j = first.fnames.index("c02"), second.fnames.index("c02")
    assert first.keys[i] != second.keys[j] and not np.array_equal(first.clip_rows(i), second.clip_rows(j))
    fresh = _run(man, tmp_path / "fresh.h5")  # what a run without reuse gives
    assert np.array_equal(fresh.embeddings, second.embeddings) and fresh.keys == second.keys


def test_keys_change_with_code_version_weights_and_options(tmp_path, clips, caplog):
    man = write_manifest(tmp_path, clips[:3])
    first = _run(man, tmp_path / "a.h5")
    caplog.set_level("INFO")
    again = _run(man, tmp_path / "b.h5", reuse=tmp_path / "a.h5")
    assert again.attrs["n_reused"] == 3 and again.attrs["n_embedded"] == 0
    assert np.array_equal(again.embeddings, first.embeddings)
    other_code = _run(man, tmp_path / "c.h5", reuse=tmp_path / "a.h5", code_version="0123456789abcdef")
    assert other_code.attrs["n_reused"] == 0 and other_code.attrs["code_version"] == "0123456789abcdef"
    other_weights = _run(man, tmp_path / "d.h5", reuse=tmp_path / "a.h5", weights_fingerprint="xxh3-128:00")
    assert other_weights.attrs["n_reused"] == 0
    k = extract.clip_key("xxh3-128:ab", MODEL, VAR, "bundled", "c1", {})
    assert k != extract.clip_key("xxh3-128:ab", MODEL, VAR, "bundled", "c1", {"batch_size": 2})
    assert extract.clip_key("", MODEL, VAR, "bundled", "c1", {}) is None  # no fingerprint: no key


def test_failed_clips_with_an_unchanged_key_are_not_retried(tmp_path, clips, make_bad_audio, caplog):
    bad = make_bad_audio(tmp_path / "bad")
    man = write_manifest(tmp_path, [clips[0], bad["truncated_wav"]])
    first = _run(man, tmp_path / "a.h5")
    assert [f for f, _ in first.failed] == ["truncated_wav"] and first.failed_keys and first.failed_keys[0]
    caplog.set_level("INFO")
    again = _run(man, tmp_path / "b.h5", reuse=tmp_path / "a.h5")
    assert again.failed == first.failed and again.attrs["n_embedded"] == 0 and again.attrs["n_reused"] == 2


def test_a_previous_file_of_another_model_or_without_keys_is_not_used(tmp_path, clips):
    man = write_manifest(tmp_path, clips[:2])
    first = _run(man, tmp_path / "a.h5")
    other = store.write_embeddings(tmp_path / "other.h5", first.fnames, (first.embeddings, first.offsets),
                                   {**first.attrs, "model": "musicnn"}, keys=first.keys)
    assert _run(man, tmp_path / "b.h5", reuse=other).attrs["n_reused"] == 0
    keyless = store.write_embeddings(tmp_path / "keyless.h5", first.fnames, (first.embeddings, first.offsets),
                                     first.attrs)
    assert _run(man, tmp_path / "c.h5", reuse=keyless).attrs["n_reused"] == 0
    assert _run(man, tmp_path / "d.h5", reuse=tmp_path / "missing.h5").attrs["n_reused"] == 0


# --------------------------------------------------------------------------- one writer


def test_a_second_writer_fails_at_once_and_the_first_finishes_correctly(tmp_path, clips):
    """Two real `soundsim extract` processes on one --out: the second exits non-zero
    naming the file and the first's process; the first's output equals an
    uninterrupted run's."""
    man = write_manifest(tmp_path, clips)
    ref = _run(man, tmp_path / "ref.h5")
    out = tmp_path / "shared.h5"
    cmd = [sys.executable, "-m", "soundsim.cli", "-q", "extract", "--manifest", str(man), "--model", MODEL,
           "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lock = tmp_path / "shared.h5.lock"
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.exists() and lock.read_text()):
        time.sleep(0.02)
    assert first.poll() is None, "the first writer is still running when the second starts"
    t0 = time.time()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert time.time() - t0 < 30 and first.poll() is None  # at once, while the first still works
    assert second.returncode == 2
    assert f"{out}: this embeddings file is being written by process {first.pid} on host" in second.stderr
    assert "a second writer would corrupt it" in second.stderr
    assert "never use it while another run is alive" in second.stderr  # about `snakemake --unlock`
    assert first.wait(timeout=300) == 0, first.stderr.read()
    got = store.read_embeddings(out)
    assert got.fnames == ref.fnames and np.array_equal(got.embeddings, ref.embeddings)
    assert np.array_equal(got.offsets, ref.offsets) and got.keys == ref.keys
    assert not lock.exists()


def test_options_are_checked_before_anything_is_read_or_written(tmp_path, clips):
    from soundsim.errors import ConfigError

    man = write_manifest(tmp_path, clips[:2])
    for options, message in (
        ({"nosuch": 1}, "models.aisfx.options.nosuch: unknown option; allowed options: batch_size"),
        ({"batch_size": "8"}, "models.aisfx.options.batch_size: '8' is not an integer; allowed values: an integer >= 1"),
    ):
        with pytest.raises(ConfigError) as exc:
            extract.extract_shard(man, MODEL, VAR, 0, 1, tmp_path / "x.h5", options=options, progress=False)
        assert str(exc.value) == message
        assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv"]  # no output, lock or journal


def test_options_are_recorded_with_defaults_and_a_default_given_is_the_same_key(tmp_path, clips):
    """The file's ``options`` attribute lists every declared option; leaving an option out or giving
    its default value is the same key (reused, not embedded again); another value is another key."""
    import json

    man = write_manifest(tmp_path, clips[:3])
    first = _run(man, tmp_path / "a.h5")
    assert json.loads(first.attrs["options"]) == {"batch_size": 32}
    same = _run(man, tmp_path / "b.h5", reuse=tmp_path / "a.h5", options={"batch_size": 32})
    assert same.attrs["n_reused"] == 3 and same.keys == first.keys
    other = _run(man, tmp_path / "c.h5", reuse=tmp_path / "a.h5", options={"batch_size": 2})
    assert other.attrs["n_reused"] == 0 and json.loads(other.attrs["options"]) == {"batch_size": 2}
    np.testing.assert_allclose(other.embeddings, first.embeddings, rtol=1e-5, atol=1e-6)  # batch size: memory only


def test_cli_unknown_or_bad_option_is_one_line_and_exit_status_2(venv_bin, tmp_path, clips):
    """`soundsim extract --option nosuch=1`, as a real process: one line naming the option and the
    allowed ones, exit status 2, nothing written."""
    man = write_manifest(tmp_path, clips[:1])
    for option, message in (
        ("nosuch=1", "models.aisfx.options.nosuch: unknown option; allowed options: batch_size"),
        ("batch_size=0", "models.aisfx.options.batch_size: 0 is out of range; allowed values: an integer >= 1"),
    ):
        r = subprocess.run([venv_bin / "soundsim", "-q", "extract", "--manifest", man, "--model", MODEL,
                            "--option", option, "--out", tmp_path / "x.h5"], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 2
        assert r.stderr.splitlines() == [f"soundsim extract: error: {message}"]
        assert r.stdout == "" and not (tmp_path / "x.h5").exists()
