"""`soundsim serve` (soundsim.service.http): a real server on a free port, real HTTP requests.

The index is real (tests/conftest.py small_collection: 18 audio clips, aisfx embeddings,
built by build_index_from); uploads are embedded by the real aisfx model in its worker
process. Requests go through http.client exactly as written (no client-side
normalisation of ../), so that traversal attempts reach the server as sent."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import chirp, tone, truncate

pytest.importorskip("flask", reason="soundsim serve needs Flask (requirements.txt)")

from soundsim.service import http as H  # noqa: E402
from soundsim.service.index import SimilarityIndex, add_sounds, build_index_from, remove_sounds  # noqa: E402

SETTING = "agg-mean_pca-8_search-mcss"
MAX_UPLOAD = 200_000  # bytes: the clips (1-2 s, 22.05 kHz, 16 bit) are 45-90 kB


# --------------------------------------------------------------------------- a server in a thread


class Server:
    """create_app + werkzeug's threaded server on 127.0.0.1:<free port>, in a thread."""

    def __init__(self, index_dir: Path, **kwargs) -> None:
        from werkzeug.serving import make_server

        self.app = H.create_app(index_dir, trusted_hosts=list(H.LOOPBACK), **kwargs)
        self.svc: H.Service = self.app.extensions["soundsim_serve"]
        self.httpd = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.svc.close()


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            host: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    """One request with ``path`` sent exactly as given; (status, headers, body)."""
    c = http.client.HTTPConnection(host, port, timeout=120)
    try:
        c.putrequest(method, path, skip_host="Host" in (headers or {}), skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders()
        if body is not None:
            try:
                c.send(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered (413) before reading it all: its answer is still there
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def get_json(port: int, path: str) -> tuple[int, dict]:
    status, headers, body = request(port, "GET", path)
    assert headers["content-type"] == "application/json", (path, status, body[:300])
    return status, json.loads(body)


def multipart(filename: str, data: bytes, field: str = "file", ctype: str = "audio/wav") -> tuple[bytes, str]:
    """A multipart/form-data body with one file part; (body, content type)."""
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


def upload(port: int, filename: str, data: bytes, query: str = "", **kw) -> tuple[int, dict]:
    body, ctype = multipart(filename, data, **kw)
    status, headers, out = request(port, "POST", "/similar" + query, body, {"Content-Type": ctype})
    assert headers["content-type"] == "application/json", (status, out[:300])
    return status, json.loads(out)


def post_raw(port: int, data: bytes, ctype: str, query: str = "") -> tuple[int, dict]:
    status, headers, out = request(port, "POST", "/similar" + query, data, {"Content-Type": ctype})
    assert headers["content-type"] == "application/json", (status, out[:300])
    return status, json.loads(out)


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: relative path -> (size, mtime_ns)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def index_dir(small_collection, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve") / "index"
    build_index_from(small_collection["embeddings"], small_collection["manifest"], SETTING, out)
    return out


@pytest.fixture(scope="module")
def server(index_dir, tmp_path_factory) -> Iterator[Server]:
    s = Server(index_dir, max_upload_bytes=MAX_UPLOAD, upload_dir=tmp_path_factory.mktemp("uploads"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def untouched(server, index_dir):
    """Asserts that a test leaves no upload file behind and changes nothing in the index
    folder or the working directory."""
    before = listing(index_dir), sorted(os.listdir(Path.cwd()))
    yield
    assert list(server.svc.upload_dir.iterdir()) == []
    assert (listing(index_dir), sorted(os.listdir(Path.cwd()))) == before


# --------------------------------------------------------------------------- GET


def test_health(server, index_dir):
    status, headers, body = request(server.port, "GET", "/health")
    assert status == 200 and headers["content-type"] == "application/json"
    h = json.loads(body)
    assert h["status"] == "ok" and h["model"] == "aisfx" and h["setting"] == SETTING
    assert h["system"] == f"aisfx/{h['variation']}/{SETTING}"
    assert h["index"]["type"] == "flat" and h["index"]["search"] == "mcss"
    assert h["counts"]["active"] == 18 and h["counts"]["removed"] == 0 and h["counts"]["dim"] == 8
    assert h["generation"] == "gen-000001" and h["min_similarity"] is None
    assert h["embedder"] in ("loaded", "not loaded")
    assert str(index_dir) not in body.decode()  # no server paths in the answer
    assert headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"


def test_similar_by_fname_is_the_library_answer(server, index_dir):
    with SimilarityIndex(index_dir) as idx:
        for fname, query, k, ms in (("bird01", "", 15, None), ("engine03", "?k=5", 5, None),
                                    ("bell00", "?k=17&min_similarity=0.5", 17, 0.5),
                                    ("bird05", "?k=1000", 1000, None)):
            status, got = get_json(server.port, f"/similar/{fname}{query}")
            assert status == 200
            assert got == idx.similar_to_fname(fname, k, ms).as_dict()
            assert got["query"] == fname and fname not in [r["fname"] for r in got["results"]]
            if ms is None:
                assert len(got["results"]) == min(k, 17)  # capped at the 17 other sounds
            else:
                assert 0 < len(got["results"]) <= 17 and all(r["similarity"] >= ms for r in got["results"])
    status, got = get_json(server.port, "/similar/bird01?k=15&min_similarity=0.99")
    assert status == 200 and all(r["similarity"] >= 0.99 for r in got["results"])


def test_unknown_fname_is_404(server):
    for fname in ("nothing", "BIRD01", "bird01.wav", "bird0"):
        status, got = get_json(server.port, f"/similar/{fname}")
        assert status == 404 and "unknown fname" in got["error"] and fname in got["error"]


@pytest.mark.parametrize("query, names", [
    ("k=0", "k"), ("k=-1", "k"), ("k=abc", "k"), ("k=1001", "k"), ("k=1.5", "k"), ("k=99999999999", "k"),
    ("k=%201", "k"), ("min_similarity=2", "min_similarity"), ("min_similarity=nan", "min_similarity"),
    ("min_similarity=abc", "min_similarity"), ("min_similarity=-inf", "min_similarity"),
    ("foo=1", "foo"), ("k=5&K=3", "K"),
])
def test_bad_parameters_are_400_naming_them(server, query, names):
    status, got = get_json(server.port, f"/similar/bird01?{query}")
    assert status == 400 and names in got["error"], (query, got)
    body, ctype = multipart("bird00.wav", b"RIFF")
    status, headers, out = request(server.port, "POST", f"/similar?{query}", body, {"Content-Type": ctype})
    assert status == 400 and names in json.loads(out)["error"]


def test_traversal_attempts_never_read_files(server, index_dir, small_collection, untouched):
    clip = small_collection["audio"] / "bird01.wav"
    paths = [
        "/similar/../../etc/passwd", "/similar/..%2F..%2Fetc%2Fpasswd", "/similar/%2e%2e/%2e%2e/etc/passwd",
        "/similar/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/similar/..", "/similar/%2e%2e", "/similar//etc/passwd",
        "/similar/%2Fetc%2Fpasswd", f"/similar/{clip}", f"/similar/{quote(str(clip), safe='')}",
        f"/similar/{index_dir}/CURRENT", "/similar/bird01%00", "/similar/%00", "/similar/bird01/../bird02",
        "/similar/..%5C..%5Cetc%5Cpasswd", "/similar/%252e%252e%252fetc%252fpasswd", "/../../etc/passwd",
        "/similar/" + "a" * 5000, "/similar/", "/similar", "/etc/passwd", "/health/../similar/bird01",
    ]
    for path in paths:
        status, headers, body = request(server.port, "GET", path)
        text = body.decode("utf-8", "replace")
        assert status in (400, 404, 405), (path, status, text[:300])
        assert headers["content-type"] == "application/json", path
        assert "error" in json.loads(body) and "root:" not in text and "Traceback" not in text
        assert "gen-0000" not in text and "RIFF" not in text


def test_unknown_route_and_method_are_json(server):
    status, got = get_json(server.port, "/nothing")
    assert status == 404 and got["error"]
    status, headers, body = request(server.port, "PUT", "/similar")
    assert status == 405 and json.loads(body)["error"]


def test_untrusted_host_is_refused(server):
    status, headers, body = request(server.port, "GET", "/health", headers={"Host": "attacker.example"})
    assert status == 400 and "not trusted" in json.loads(body)["error"]
    status, _, _ = request(server.port, "GET", "/health", headers={"Host": f"localhost:{server.port}"})
    assert status == 200


# --------------------------------------------------------------------------- POST


def test_upload_of_a_collection_clip_finds_itself(server, index_dir, small_collection, untouched):
    clip = small_collection["audio"] / "bird00.wav"
    data = clip.read_bytes()
    status, got = upload(server.port, "bird00.wav", data, "?k=5")
    assert status == 200, got
    assert got["query"] == "bird00.wav" and len(got["results"]) == 5
    assert got["results"][0]["fname"] == "bird00" and got["results"][0]["similarity"] >= 0.999
    assert got["results"][0]["labels"] == ["Bird"]
    with SimilarityIndex(index_dir) as idx:
        want = idx.similar_to_audio([clip], 5)[0].as_dict()["results"]
    assert [r["fname"] for r in got["results"]] == [r["fname"] for r in want]
    np.testing.assert_allclose([r["similarity"] for r in got["results"]], [r["similarity"] for r in want],
                               atol=1e-9)
    assert server.svc.model_loaded
    # the raw body, with an audio content type: the same answer; the name from ?filename=
    status, raw = post_raw(server.port, data, "audio/wav", "?k=5&filename=mine.wav")
    assert status == 200 and raw["query"] == "mine.wav" and raw["results"] == got["results"]
    status, raw = post_raw(server.port, data, "application/octet-stream", "?k=5")
    assert status == 200 and raw["query"] == "upload" and raw["results"] == got["results"]
    # a FLAC upload (the suffix from the name) and min_similarity
    flac = server.svc.upload_dir.parent / "engine02.flac"
    x, sr = sf.read(small_collection["audio"] / "engine02.wav")
    sf.write(flac, x, sr)
    status, got = upload(server.port, "engine02.flac", flac.read_bytes(), "?k=17&min_similarity=0.5",
                         ctype="audio/flac")
    assert status == 200 and got["results"][0]["fname"] == "engine02"
    assert all(r["similarity"] >= 0.5 for r in got["results"])


def test_uploaded_names_are_never_paths(server, small_collection, untouched, tmp_path):
    data = (small_collection["audio"] / "bell03.wav").read_bytes()
    for raw, shown in (("../../evil.wav", "evil.wav"), ("/etc/passwd", "passwd"),
                       ("..\\..\\win.wav", "win.wav"), ("../..", "upload"), ("", "upload"),
                       (f"{tmp_path}/x.wav", "x.wav"), ("%2e%2e%2fy.wav", "2e2e2fy.wav")):
        status, got = upload(server.port, raw, data, "?k=3")
        assert status == 200 and got["query"] == shown, (raw, got)
        assert got["results"][0]["fname"] == "bell03"
    status, got = post_raw(server.port, data, "audio/wav", "?k=3&filename=../../../../tmp/evil2.wav")
    assert status == 200 and got["query"] == "evil2.wav"
    assert not (tmp_path / "x.wav").exists() and not Path("/tmp/evil2.wav").exists()


def test_bad_uploads_are_400_naming_the_problem(server, small_collection, untouched, tmp_path):
    sf.write(tmp_path / "t.wav", tone(1.0, 16000), 16000, subtype="PCM_16")
    truncated = truncate(tmp_path / "t.wav", 0.02).read_bytes()
    sf.write(tmp_path / "z.wav", np.zeros((0, 1)), 16000)
    cases = {
        "text.wav": (b"this is not audio\n" * 50, ["cannot read audio"]),
        "empty.wav": (b"", ["empty"]),
        "truncated.wav": (truncated, ["truncated"]),
        "zero.wav": ((tmp_path / "z.wav").read_bytes(), ["no audio frames"]),
        "noise.mp3": (np.random.default_rng(0).bytes(5000), []),
    }
    for name, (data, words) in cases.items():
        status, got = upload(server.port, name, data)
        assert status == 400, (name, got)
        err = got["error"]
        assert err.startswith(f"{name}: ") and all(w in err for w in words), err
        assert str(server.svc.upload_dir) not in err and "up-" not in err, err  # no server paths
    status, got = post_raw(server.port, b"not audio", "audio/wav", "?filename=t.wav")
    assert status == 400 and got["error"].startswith("t.wav: ")
    # the request itself is wrong
    body, ctype = multipart("bird00.wav", b"x", field="audio")
    status, _, out = request(server.port, "POST", "/similar", body, {"Content-Type": ctype})
    assert status == 400 and "'file'" in json.loads(out)["error"]
    status, _, out = request(server.port, "POST", "/similar", b"hello", {"Content-Type": "text/plain"})
    assert status == 400 and "multipart/form-data" in json.loads(out)["error"]
    status, _, out = request(server.port, "POST", "/similar", b"", {})
    assert status == 400
    status, _, out = request(server.port, "POST", "/similar", b"--x\r\n", {"Content-Type": "multipart/form-data"})
    assert status == 400 and json.loads(out)["error"]
    # and the server still answers good uploads
    status, got = upload(server.port, "bird02.wav", (small_collection["audio"] / "bird02.wav").read_bytes(), "?k=1")
    assert status == 200 and got["results"][0]["fname"] == "bird02"


def test_oversized_bodies_are_413(server, untouched):
    big = b"\0" * (MAX_UPLOAD + 1)
    status, got = upload(server.port, "big.wav", big)
    assert status == 413 and str(MAX_UPLOAD) in got["error"] and "--max-upload-mb" in got["error"]
    status, got = post_raw(server.port, big, "audio/wav")
    assert status == 413
    # a body that claims to be small but is sent chunked is cut off at the limit too
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    c.request("POST", "/similar", body=iter([b"\0" * 65536] * 8), headers={"Content-Type": "audio/wav"},
              encode_chunked=True)
    r = c.getresponse()
    assert r.status == 413 and json.loads(r.read())["error"]
    c.close()
    status, _ = get_json(server.port, "/health")
    assert status == 200


def test_a_multipart_file_is_spooled_to_one_private_temporary_file(index_dir, tmp_path):
    """The form parser writes the file part straight into the service's upload folder
    (suffix from the name's extension), and the file is gone when the request ends."""
    from flask import request as current_request

    app = H.create_app(index_dir, upload_dir=tmp_path / "up")
    try:
        body, ctype = multipart("../../x.FLAC", b"fLaC not really")
        with app.test_request_context("/similar", method="POST", data=body, content_type=ctype):
            fh = current_request.files["file"].stream
            assert Path(fh.name).parent == tmp_path / "up" and fh.name.endswith(".flac")
            assert list((tmp_path / "up").iterdir()) == [Path(fh.name)]
        assert list((tmp_path / "up").iterdir()) == []
    finally:
        app.extensions["soundsim_serve"].close()


def test_concurrent_requests_are_answered_correctly(server, index_dir, small_collection, untouched):
    """Threaded server: uploads (one worker, its own lock) and fname queries at once."""
    with SimilarityIndex(index_dir) as idx:
        want = {f: idx.similar_to_fname(f, 4).as_dict() for f in ("bird03", "engine01", "bell04")}
    results: list = []

    def client(i: int) -> None:
        f = list(want)[i % 3]
        if i % 2:
            results.append((f, "fname", get_json(server.port, f"/similar/{f}?k=4")))
        else:
            results.append((f, "upload", upload(server.port, f"{f}.wav",
                                                (small_collection["audio"] / f"{f}.wav").read_bytes(), "?k=1")))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12
    for f, kind, (status, got) in results:
        assert status == 200
        if kind == "fname":
            assert got == want[f]
        else:
            assert got["results"][0]["fname"] == f and got["results"][0]["similarity"] >= 0.999


# --------------------------------------------------------------------------- reloads


def test_serves_the_new_generation_after_add_and_remove(small_index, small_collection, tmp_path):
    root = small_index()
    s = Server(root, upload_dir=tmp_path / "up")
    try:
        status, h = get_json(s.port, "/health")
        assert h["embedder"] == "not loaded" and h["generation"] == "gen-000001" and h["counts"]["active"] == 18
        clip = (small_collection["audio"] / "bird01.wav").read_bytes()
        status, got = upload(s.port, "q.wav", clip, "?k=3")
        assert status == 200 and got["results"][0]["fname"] == "bird01"
        worker = s.svc.embedder(s.svc.index())
        status, got = get_json(s.port, "/similar/bird02?k=17")
        assert "bird01" in [r["fname"] for r in got["results"]]

        remove_sounds(root, ["bird01"])  # another writer: a new generation, CURRENT replaced
        status, h = get_json(s.port, "/health")
        assert h["generation"] == "gen-000002" and h["counts"]["active"] == 17 and h["counts"]["removed"] == 1
        status, got = get_json(s.port, "/similar/bird02?k=17")
        assert status == 200 and "bird01" not in [r["fname"] for r in got["results"]]
        assert get_json(s.port, "/similar/bird01")[0] == 404
        status, got = upload(s.port, "q.wav", clip, "?k=3")
        assert status == 200 and got["results"][0]["fname"] != "bird01"

        new = tmp_path / "newbell.wav"
        sf.write(new, chirp(1.5, 22050, seed=6) * 0.7, 22050, subtype="PCM_16")
        add_sounds(root, pd.DataFrame({"fname": ["newbell"], "path": [str(new)], "labels": ["Bell"]}))
        status, h = get_json(s.port, "/health")
        assert h["generation"] == "gen-000003" and h["counts"]["active"] == 18 and h["counts"]["items"] == 19
        status, got = get_json(s.port, "/similar/newbell?k=3")
        assert status == 200 and got["query"] == "newbell"
        with SimilarityIndex(root) as idx:
            assert got == idx.similar_to_fname("newbell", 3).as_dict()
        status, got = upload(s.port, "newbell.wav", new.read_bytes(), "?k=1")
        assert status == 200 and got["results"][0]["fname"] == "newbell"
        assert got["results"][0]["similarity"] >= 0.999
        assert s.svc.embedder(s.svc.index()) is worker  # the model was loaded once
        assert h["embedder"] == "loaded"
        assert list((tmp_path / "up").iterdir()) == []
    finally:
        s.close()


# --------------------------------------------------------------------------- the command line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_soundsim_serve_command(index_dir, small_collection, tmp_path):
    """`soundsim serve DIR --port P` as a user starts it: prints its URL, answers /health,
    queries and uploads, refuses foreign Host names, stops cleanly on SIGTERM."""
    port = free_port()
    exe = Path(sys.executable).parent / "soundsim"
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    before = listing(index_dir)
    proc = subprocess.Popen([str(exe), "serve", str(index_dir), "--port", str(port), "--max-upload-mb", "0.1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert f"at http://127.0.0.1:{port}/" in first, first + (proc.stdout.read() if proc.poll() is not None else "")
        for _ in range(200):
            try:
                status, h = get_json(port, "/health")
                break
            except ConnectionError:
                assert proc.poll() is None
                time.sleep(0.1)
        assert status == 200 and h["model"] == "aisfx" and h["counts"]["active"] == 18
        assert get_json(port, "/similar/bell02?k=2")[1]["query"] == "bell02"
        status, got = upload(port, "bell02.wav", (small_collection["audio"] / "bell02.wav").read_bytes(), "?k=1")
        assert status == 200 and got["results"][0]["fname"] == "bell02"
        status, got = upload(port, "big.wav", b"\0" * 200_000)
        assert status == 413 and "104857 bytes" in got["error"]
        status, _, _ = request(port, "GET", "/health", headers={"Host": "attacker.example"})
        assert status == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert list((tmp_path / "tmp").iterdir()) == [], "the upload folder is removed on exit"
    assert listing(index_dir) == before and sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


def test_soundsim_serve_refuses_a_folder_that_is_no_index(tmp_path):
    exe = Path(sys.executable).parent / "soundsim"
    r = subprocess.run([str(exe), "serve", str(tmp_path / "nothing"), "--port", "0"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "no such index directory" in r.stderr
    r = subprocess.run([str(exe), "serve", str(tmp_path), "--max-upload-mb", "0"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "--max-upload-mb" in r.stderr


def test_serve_constants_match_the_cli():
    from soundsim.service import cli

    assert (cli.SERVE_MAX_K, cli.SERVE_MAX_UPLOAD_MB) == (H.MAX_K, H.DEFAULT_MAX_UPLOAD_MB)


def test_upload_names_and_suffixes():
    assert H.upload_name("../../x.wav") == "x.wav" and H.upload_name("C:\\a\\b.flac") == "b.flac"
    assert H.upload_name(None) == "upload" and H.upload_name("..") == "upload"
    assert H.upload_suffix("a.WAV") == ".wav" and H.upload_suffix("a.w/av") == ""
    assert H.upload_suffix("upload", "audio/flac; x=1") == ".flac" and H.upload_suffix("a.toolongextension1") == ""


def test_soundsim_serve_warns_when_not_on_loopback_names(index_dir, tmp_path):
    """--host other than 127.0.0.1/localhost/::1 (here 127.0.0.2, still this machine): a
    warning that anyone who can reach it can query and upload; no Host check then."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).parent / "soundsim"
    proc = subprocess.Popen([str(exe), "serve", str(index_dir), "--host", "127.0.0.2", "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert any("WARNING" in x and "anyone who can reach this address" in x for x in lines), lines
        assert any(f"at http://127.0.0.2:{port}/" in x for x in lines), lines
        status, _, body = request(port, "GET", "/health", headers={"Host": "example.org"}, host="127.0.0.2")
        assert status == 200 and json.loads(body)["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_an_index_of_precomputed_embeddings_refuses_uploads_and_answers_fnames(small_collection, tmp_path):
    """No model to embed new audio with (``kind: precomputed``): an upload is a 400 saying so,
    a query by fname is answered, and no worker is started."""
    root = tmp_path / "precomputed"
    build_index_from(small_collection["embeddings"], small_collection["manifest"], SETTING, root,
                     model_cfg={"kind": "precomputed", "path": str(small_collection["embeddings"])})
    srv = Server(root, max_upload_bytes=MAX_UPLOAD)
    try:
        status, answer = upload(srv.port, "bird00.wav", (small_collection["audio"] / "bird00.wav").read_bytes())
        assert status == 400 and "precomputed embeddings" in answer["error"], answer
        status, _, body = request(srv.port, "GET", "/similar/bird00?k=3")
        assert status == 200 and len(json.loads(body)["results"]) == 3
        assert not srv.svc.model_loaded
    finally:
        srv.close()
