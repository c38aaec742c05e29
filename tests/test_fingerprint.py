"""Content fingerprints and their cache (real files)."""

from __future__ import annotations

import os

from soundsim.fingerprint import FingerprintCache, file_fingerprint, stat_digest, tree_digest, weights_fingerprint


def test_fingerprint_is_of_the_bytes(tmp_path):
    a, b, c = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"
    a.write_bytes(b"RIFF" + bytes(range(256)) * 50000)  # > one 4 MiB block
    b.write_bytes(a.read_bytes())
    c.write_bytes(a.read_bytes()[:-1] + b"\x00")
    assert file_fingerprint(a) == file_fingerprint(b) != file_fingerprint(c)
    assert file_fingerprint(a).startswith("xxh3-128:") and len(file_fingerprint(a)) == len("xxh3-128:") + 32


def test_cache_reuses_while_size_and_mtime_are_unchanged(tmp_path):
    f = tmp_path / "x.wav"
    f.write_bytes(b"one")
    cache = FingerprintCache(tmp_path / "cache.json")
    fp1 = cache.get(f)
    cache.save()
    again = FingerprintCache(tmp_path / "cache.json")
    assert again.get(f) == fp1 and (again.hits, again.misses) == (1, 0)
    # new content, same size: a new mtime, so a new fingerprint
    st = os.stat(f)
    f.write_bytes(b"two")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert again.get(f) != fp1 and again.misses == 1
    # the cache trusts (size, mtime): same state, same answer without reading
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert again.get(f) == file_fingerprint(f)


def test_unreadable_cache_is_an_empty_cache(tmp_path, caplog):
    (tmp_path / "cache.json").write_text("{not json")
    f = tmp_path / "x.wav"
    f.write_bytes(b"data")
    cache = FingerprintCache(tmp_path / "cache.json")
    assert cache.get(f) == file_fingerprint(f)
    assert "unreadable fingerprint cache" in caplog.text


def test_weights_fingerprint_of_files_and_folders(tmp_path):
    w = tmp_path / "w.pt"
    w.write_bytes(b"weights")
    cache = tmp_path / "cache"
    assert weights_fingerprint(w, cache) == file_fingerprint(w)
    assert len(list(cache.glob("*.json"))) == 1  # one small cache file per weights file
    assert weights_fingerprint(None) == "bundled"
    folder = tmp_path / "ckpt"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"a")
    (folder / "sub" / "b.bin").write_bytes(b"b")
    fp = weights_fingerprint(folder, cache)
    (folder / "sub" / "b.bin").write_bytes(b"c")
    assert weights_fingerprint(folder, cache) != fp


def test_stat_digests_change_when_a_file_is_added_removed_or_touched(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"a")
    d0 = tree_digest(tmp_path)
    (tmp_path / "b.wav").write_bytes(b"b")
    d1 = tree_digest(tmp_path)
    st = os.stat(tmp_path / "a.wav")
    os.utime(tmp_path / "a.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 5))
    d2 = tree_digest(tmp_path)
    (tmp_path / "b.wav").unlink()
    d3 = tree_digest(tmp_path)
    assert len({d0, d1, d2, d3}) == 4
    assert tree_digest(tmp_path / "nope") == "missing"
    assert stat_digest([tmp_path / "a.wav"]) == stat_digest([tmp_path / "a.wav"]) != stat_digest([tmp_path / "x"])
