"""The index directory (soundsim.service.store): generations, CURRENT, clear errors, and atomic
updates under a real ``kill -9`` of a real writer, on real aisfx embeddings of real audio."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, chirp
from soundsim import cli
from soundsim.errors import ConfigError
from soundsim.fileutil import LockedError, exclusive_lock
from soundsim.service import store
from soundsim.service.index import SimilarityIndex, add_sounds, additions, build_index_from, remove_sounds
from soundsim.service.store import IndexDirError


def _env() -> dict[str, str]:
    src = str(ROOT / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _new_clips(folder: Path, n: int, seconds: float = 1.0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for j in range(n):
        p = folder / f"extra{j:03d}.wav"
        sf.write(p, chirp(seconds, 16000, seed=40 + j % 7) * (0.5 + 0.01 * j), 16000, subtype="PCM_16")
        out.append(p)
    return out


def _snapshot(root: Path) -> tuple[dict, dict[str, list[tuple[str, float]]]]:
    """The index's counts and every fname query's answer (fname, similarity)."""
    with SimilarityIndex(root) as idx:
        answers = {f: [(h.fname, h.similarity) for h in idx.similar_to_fname(f, 10).results] for f in idx.row_of}
        return idx.info()["counts"], answers


def _leftovers(root: Path) -> list[str]:
    live = store.current_generation(root).name
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") or (
        p.name.startswith("gen-") and p.name > live))


# --------------------------------------------------------------------------- format and errors


def test_current_names_the_live_generation_and_old_ones_are_deleted(small_index):
    root = small_index()
    assert (root / "CURRENT").read_text() == "gen-000001\n"
    assert sorted(p.name for p in (root / "gen-000001").iterdir()) == sorted(store.FILES)
    for i, fname in enumerate(["bird00", "bird01", "bird02"], start=2):
        remove_sounds(root, [fname])
        assert (root / "CURRENT").read_text() == f"gen-{i:06d}\n"
    # keep=2: the live generation and the one before it
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("gen-")) == ["gen-000003", "gen-000004"]
    gen = store.open_generation(root)
    assert gen.name == "gen-000004" and gen.manifest["counts"]["removed"] == 3
    assert gen.items["removed"].tolist() == [True] * 3 + [False] * 15


def test_a_reader_keeps_its_generation(small_index):
    """A reader resolves CURRENT once: an update after it opened leaves its answers unchanged."""
    root = small_index()
    with SimilarityIndex(root) as idx:
        remove_sounds(root, ["bird02"])
        assert idx.generation.name == "gen-000001" and "bird02" in idx.row_of
        assert idx.similar_to_fname("bird00", 1).results[0].fname == "bird02"
    with SimilarityIndex(root) as idx:
        assert "bird02" not in idx.row_of


def test_clear_errors_for_what_is_not_an_index(small_index, tmp_path):
    root = small_index()
    with pytest.raises(IndexDirError, match=f"{tmp_path / 'nowhere'}: no such index directory"):
        SimilarityIndex(tmp_path / "nowhere")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(IndexDirError, match=f"{other}: not a soundsim index \\(no CURRENT file\\)"):
        SimilarityIndex(other)
    # CURRENT naming something that is not a generation
    (root / "CURRENT").write_text("gen-000009\n")
    with pytest.raises(IndexDirError, match=f"{root / 'CURRENT'}: names 'gen-000009'"):
        SimilarityIndex(root)
    (root / "CURRENT").write_text("gen-000001\n")
    # an incomplete generation
    faiss_file = root / "gen-000001" / "faiss.index"
    data = faiss_file.read_bytes()
    faiss_file.unlink()
    with pytest.raises(IndexDirError, match=f"{root / 'gen-000001'}: incomplete index generation, missing faiss.index"):
        SimilarityIndex(root)
    # an unreadable faiss file
    faiss_file.write_bytes(data[:20])
    with pytest.raises(Exception, match=f"{faiss_file}: not a readable faiss index"):
        SimilarityIndex(root)
    faiss_file.write_bytes(data)
    # another format
    man = root / "gen-000001" / "manifest.json"
    text = man.read_text()
    man.write_text(text.replace(store.FORMAT, "soundsim-index/999"))
    with pytest.raises(IndexDirError, match="manifest.json: format 'soundsim-index/999'"):
        SimilarityIndex(root)
    man.write_text(text)
    assert SimilarityIndex(root).n_active == 18


def test_cli_errors_name_the_folder(tmp_path, capsys):
    other = tmp_path / "plain"
    other.mkdir()
    (other / "a.txt").write_text("x")
    assert cli.main(["index", "info", str(other)]) == 2
    assert f"{other}: not a soundsim index" in capsys.readouterr().err
    assert cli.main(["query", str(tmp_path / "none"), "--fname", "x"]) == 2
    assert "no such index directory" in capsys.readouterr().err


def test_build_into_an_existing_non_index_folder_is_refused(small_collection, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("someone's file")
    args = (small_collection["embeddings"], small_collection["manifest"], "agg-mean_pca-8_search-mcss")
    with pytest.raises(ConfigError, match=f"{out}: exists and is not a soundsim index"):
        build_index_from(*args, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a soundsim index"):
        build_index_from(*args, a_file)
    # an empty folder is fine, and building over an index makes a new generation
    (tmp_path / "empty").mkdir()
    build_index_from(*args, tmp_path / "empty")
    gen = build_index_from(*args, tmp_path / "empty", type="hnsw")
    assert gen.name == "gen-000002" and SimilarityIndex(tmp_path / "empty").spec.type == "hnsw"


# --------------------------------------------------------------------------- one writer; kill -9


def test_a_second_writer_fails_at_once(small_index, capsys):
    """While a writer (another process) holds DIR/writer.lock, add/remove/build fail at once,
    naming the index and the holder; nothing changes. Readers are not blocked."""
    root = small_index()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from soundsim.fileutil import exclusive_lock
            with exclusive_lock({str(root / 'writer')!r}, "the index"):
                print("locked", flush=True)
                sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"{root / 'writer'}: the index is being written by process {holder.pid} on host"):
            remove_sounds(root, ["bird00"])
        assert cli.main(["index", "remove", str(root), "--fname", "bird00"]) == 2
        err = capsys.readouterr().err
        assert f"process {holder.pid}" in err and "keep answering from the current generation" in err
        assert SimilarityIndex(root).n_active == 18 and store.current_generation(root).name == "gen-000001"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    remove_sounds(root, ["bird00"])  # free again
    with exclusive_lock(root / "writer", "the index"):  # and in-process, a second open of the lock
        with pytest.raises(LockedError):
            add_sounds(root, additions([Path("x.wav")]))


_KILL_IN_WRITE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from soundsim import ann
    from soundsim.service import index, store

    root, point, audio = sys.argv[1], sys.argv[2], sys.argv[3:]

    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "faiss":  # the new generation's folder half written
        save = ann.VectorIndex.save
        def half(self, path):
            Path(path).write_bytes(b"partial")
            die()
        ann.VectorIndex.save = half
    elif point == "current":  # generation renamed into place, CURRENT not yet replaced
        store._set_current = die
    elif point == "replace":  # CURRENT's temporary file written, not yet renamed
        real = os.replace
        def replace(src, dst):
            if Path(dst).name == "CURRENT":
                die()
            real(src, dst)
        store.os.replace = replace
    if audio:
        index.add_sounds(root, index.additions(audio))
    else:
        index.remove_sounds(root, ["bell00"])
""")


@pytest.mark.parametrize("point", ["faiss", "current", "replace"])
def test_kill_while_writing_the_generation(small_index, tmp_path, point):
    """A writer killed (SIGKILL, a real process) at each step of writing the next generation:
    the old index opens with the same counts and answers; the next writer cleans the
    leftovers and succeeds."""
    root = small_index()
    counts, answers = _snapshot(root)
    new = _new_clips(tmp_path / "new", 2) if point == "faiss" else []
    proc = subprocess.run([sys.executable, "-c", _KILL_IN_WRITE, str(root), point, *map(str, new)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    left = _leftovers(root)
    assert left, "the killed writer left nothing to clean"
    pattern = {"faiss": r"\.tmp-gen-000002-\d+", "current": r"gen-000002", "replace": r"\.CURRENT\.tmp-\d+"}[point]
    assert any(re.fullmatch(pattern, x) for x in left), left
    assert (root / "CURRENT").read_text() == "gen-000001\n"
    assert _snapshot(root) == (counts, answers)
    # the next writer cleans up and works
    res = remove_sounds(root, ["engine05"])
    assert res["counts"]["active"] == 17 and _leftovers(root) == []
    assert store.current_generation(root).name in ("gen-000002", "gen-000003")
    with SimilarityIndex(root) as idx:
        assert "engine05" not in idx.row_of and idx.n_active == 17


def test_kill_9_during_add_of_many_files(small_index, tmp_path, capsys):
    """`soundsim index add` (the real CLI, a subprocess) of 40 files, killed with SIGKILL once it
    has embedded a few: meanwhile a second writer fails at once; afterwards the old index opens,
    `info` counts and every query's answer are unchanged, and the next add works and leaves no
    leftovers."""
    root = small_index()
    counts, answers = _snapshot(root)
    files = _new_clips(tmp_path / "many", 40, seconds=2.0)
    proc = subprocess.Popen([sys.executable, "-m", "soundsim.cli", "index", "add", str(root), "--audio",
                             *map(str, files)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    done = 0
    try:
        while done < 3:  # tqdm's "embedding: ...| n/40" on stderr
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, f"the add ended before embedding 3 files: {seen[-2000:]!r}"
            seen += chunk
            done = max([int(n) for n in re.findall(rb"\| *(\d+)/40", seen)] or [0])
        # a second writer while the first holds the lock
        assert cli.main(["index", "remove", str(root), "--fname", "bird00"]) == 2
        assert f"being written by process {proc.pid}" in capsys.readouterr().err
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and done < 40
    assert (root / "CURRENT").read_text() == "gen-000001\n"
    assert _snapshot(root) == (counts, answers)
    assert cli.main(["index", "info", str(root), "--json"]) == 0
    assert '"active": 18' in capsys.readouterr().out
    # the worker exits with its client: no process left holding the lock
    deadline = time.monotonic() + 60
    while True:
        try:
            with exclusive_lock(root / "writer", "the index"):
                break
        except LockedError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert cli.main(["index", "add", str(root), "--audio", *map(str, files[:5]), "-q"]) == 0
    assert "added 5 sound(s)" in capsys.readouterr().out
    assert _leftovers(root) == [] and store.current_generation(root).name == "gen-000002"
    with SimilarityIndex(root) as idx:
        assert idx.n_active == 23 and {f.stem for f in files[:5]} <= set(idx.row_of)
        assert idx.similar_to_fname("bird00", 10).results and np.isfinite(idx.vi.Z64).all()
