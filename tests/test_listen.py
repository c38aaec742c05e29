"""The listening page (`soundsim listen`), driven in a real headless Chromium, and the
`listening` workflow rule on a ratings database the test fills.

The results tree is real: WAV/FLAC files, a manifest, embeddings evaluated by
soundsim.evaluate (rankings.h5, summary.json) and tables by soundsim.tables. The server
is the real command line (`soundsim listen`) in a subprocess. Chromium and chromedriver
are Debian's packages (`chromium`, `chromium-driver`): installed with apt-get when missing
and running as root, else the browser tests are skipped; nothing downloads a browser."""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from conftest import ROOT, tone

pytest.importorskip("flask", reason="soundsim listen needs Flask (requirements.txt)")

from soundsim import metrics as M  # noqa: E402
from soundsim.listen import db  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
COLLECTION = "tiny"
LABELS = ["Bark", "Bell", "Bird", "Rain"]
PER_LABEL = 6  # 24 clips: every query has 23 others, so 15 results per list
SYSTEMS = {
    "alpha/v1/agg-none_pca-none_search-mcss": 0.35,
    "alpha/v1/agg-none_pca-none_search-nns": 0.35,
    "beta/v2/agg-none_pca-none_search-mcss": 1.2,
}


# --------------------------------------------------------------------------- results tree


def build_results(root: Path) -> Path:
    """results/<COLLECTION>/: audio, manifest.csv, metrics of two models (mcss, nns), tables."""
    from soundsim import store, tables
    from soundsim.evaluate import evaluate_grid
    from soundsim.fingerprint import file_fingerprint
    from soundsim.layout import find_settings
    from soundsim.manifest import MANIFEST_COLUMNS

    res = root / "results" / COLLECTION
    audio = res / "source" / "audio"
    audio.mkdir(parents=True)
    rows = []
    for li, lab in enumerate(LABELS):
        for k in range(PER_LABEL):
            fname = f"{lab.lower()}{k:02d}"
            ext, subtype = (".flac", "PCM_16") if k == 0 else (".wav", "PCM_24" if k == 1 else "PCM_16")
            path = audio / f"{fname}{ext}"
            sr = 16000 if k % 2 else 22050
            sf.write(path, tone(0.3 + 0.05 * k, sr, 1, freq=220 * (li + 1) + 15 * k, seed=li * 10 + k), sr,
                     subtype=subtype)
            info = sf.info(path)
            labels = lab if k != PER_LABEL - 1 else f"{lab},{LABELS[(li + 1) % len(LABELS)]}"
            rows.append((fname, str(path), info.duration, sr, 1, info.frames, info.format, info.subtype,
                         file_fingerprint(path), labels))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest.to_csv(res / "manifest.csv", index=False)
    fnames = manifest["fname"].tolist()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((len(LABELS), 16))
    first = [LABELS.index(s.split(",")[0]) for s in manifest["labels"]]
    for model, variation, noise in (("alpha", "v1", 0.35), ("beta", "v2", 1.2)):
        X = (centres[first] + noise * rng.standard_normal((len(fnames), 16))).astype(np.float32)
        emb_path = res / "embeddings" / model / f"{variation}.h5"
        store.write_embeddings(emb_path, fnames, (X, np.arange(len(fnames) + 1)),
                               {"model": model, "variation": variation, "level": "clip"})
        evaluate_grid(store.read_embeddings(emb_path), manifest, {}, aggregations=["none"], pcas=["none"],
                      searches=["mcss", "nns"], out_dir=res / "metrics" / model / variation)
    tables.write_tables(find_settings(res / "metrics"), res / "tables", collection=COLLECTION)
    return res


@pytest.fixture(scope="module")
def results_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("listen")
    build_results(root)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(results_root) -> Iterator[str]:
    """`soundsim listen` on a free port, as a user starts it; yields its base URL."""
    port = free_port()
    exe = Path(sys.executable).parent / "soundsim"
    log = open(results_root / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(exe), "listen", "--results", str(results_root / "results"), "--collection", COLLECTION,
         "--port", str(port)], cwd=results_root, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        else:
            pytest.fail("soundsim listen did not answer within 20 s")
        assert proc.poll() is None, (results_root / "server.log").read_text()
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def browser_or_skip() -> None:
    """Debian's chromium + chromium-driver: installed with apt-get as root when missing."""
    if CHROMIUM.is_file() and CHROMEDRIVER.is_file():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("headless Chromium is not installed (Debian packages chromium, chromium-driver: "
                    "apt-get install -y chromium chromium-driver, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
    r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "chromium-driver"],
                       capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0 or not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"could not install chromium/chromium-driver with apt-get: {r.stderr.strip()[-500:]}")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    browser_or_skip()
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (requirements.txt)")
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a browser or driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    d = webdriver.Chrome(options=opts, service=Service(executable_path=str(CHROMEDRIVER)))
    d.set_page_load_timeout(60)
    try:
        yield d
    finally:
        d.quit()


def wait_for(fn, timeout: float = 20.0, what: str = "condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def network_responses(driver) -> list[dict]:
    out = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.responseReceived":
            out.append(msg["params"]["response"])
    return out


def expected_ap(res: Path, system: str, query: str, label: str, n: int = 15) -> float:
    """AP@15 from the rankings file, computed here with the paper's formula."""
    from soundsim.store import read_rankings

    r = read_rankings(res / "metrics" / system / "rankings.h5")
    m = pd.read_csv(res / "manifest.csv", dtype=str)
    labs = dict(zip(m["fname"], m["labels"].str.split(","), strict=True))
    top = [r.fnames[i] for i in r.indices[r.fnames.index(query), :n]]
    rel = np.array([label in labs[f] for f in top])
    n_l = sum(label in labs[f] for f in r.fnames)
    prec = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    ap = float(prec[rel].sum() / min(n, n_l))
    assert ap == pytest.approx(float(M.average_precision_at_n(rel[None], n, min(n, n_l))[0]))
    return ap


# --------------------------------------------------------------------------- browser tests


def test_select_class_two_systems_play_and_rate(driver, server, results_root):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    res = results_root / "results" / COLLECTION
    driver.get(server + "/")
    assert "soundsim listen" in driver.title
    assert driver.find_element(By.ID, "intro").is_displayed()
    # the defaults are each model's best setting
    best = pd.read_csv(res / "tables" / "best_settings.csv")
    defaults = [Select(driver.find_element(By.ID, f"system-{i}")).first_selected_option.get_attribute("value")
                for i in range(4)]
    assert defaults[:2] == [f"{r.model}/{r.variation}/{r.setting}" for r in best.itertuples()] and defaults[2:] == ["", ""]

    chosen = ["alpha/v1/agg-none_pca-none_search-mcss", "beta/v2/agg-none_pca-none_search-mcss"]
    Select(driver.find_element(By.ID, "class")).select_by_value("Bird")
    for i, sid in enumerate([*chosen, "", ""]):
        Select(driver.find_element(By.ID, f"system-{i}")).select_by_value(sid)
    driver.find_element(By.ID, "show").click()
    wait_for(lambda: driver.find_elements(By.ID, "query-name"), what="the query")

    # the state is in the URL, with the seed of the draw
    q = parse_qs(urlsplit(driver.current_url).query)
    assert q["class"] == ["Bird"] and q["systems"] == chosen and q["seed"][0].isdigit()
    query = driver.find_element(By.ID, "query-name").text
    # the drawn query carries the class (the draw's seed is random: it may be the bell clip that also carries Bird)
    man = pd.read_csv(res / "manifest.csv", dtype=str).set_index("fname")
    assert "Bird" in man.loc[query, "labels"].split(",")
    cols = driver.find_elements(By.CSS_SELECTOR, "section.col")
    assert len(cols) == 2
    for col, sid in zip(cols, chosen, strict=True):
        assert col.get_attribute("data-system") == sid
        items = col.find_elements(By.CSS_SELECTOR, "li.result")
        assert len(items) == 15
        assert query not in [li.find_element(By.CSS_SELECTOR, ".fname").text.split()[0] for li in items]
        ap = float(col.find_element(By.CSS_SELECTOR, ".ap-value").text)
        assert ap == pytest.approx(expected_ap(res, sid, query, "Bird"), abs=5e-4)
        marked = len(col.find_elements(By.CSS_SELECTOR, "li.result.relevant"))
        assert 1 <= marked <= 6  # 5 other Bird clips + one clip that also carries Bird
    # the same address draws the same query (shareable)
    url = driver.current_url
    driver.get(url)
    assert driver.find_element(By.ID, "query-name").text == query

    # play a result: the browser fetches it from /audio/<fname> and decodes it
    driver.get_log("performance")  # drop earlier entries
    first = driver.find_element(By.CSS_SELECTOR, "#col-0 li.result button.play")
    src = server + first.get_attribute("data-src")
    first.click()
    wait_for(lambda: driver.execute_script(
        "var p = window.soundsimPlayer; return p.error === null && p.readyState >= 2 && p.duration > 0;"),
        what="the clip to load and decode")
    assert driver.execute_script("return window.soundsimPlayer.error") is None
    audio = [r for r in network_responses(driver) if urlsplit(r["url"]).path == urlsplit(src).path]
    assert audio, "no audio request seen"
    assert audio[0]["status"] in (200, 206) and audio[0]["mimeType"].startswith("audio/")
    with urllib.request.urlopen(src) as r:  # the plain request (no Range): 200 and an audio type
        assert r.status == 200 and r.headers["Content-Type"].startswith("audio/")
        fname = urlsplit(src).path.rsplit("/", 1)[1]
        m = pd.read_csv(res / "manifest.csv", dtype=str).set_index("fname")
        assert r.read() == Path(m.loc[fname, "path"]).read_bytes()
    # the query's own player works too
    driver.execute_script("document.getElementById('query-audio').play()")
    wait_for(lambda: driver.execute_script(
        "var a = document.getElementById('query-audio'); return a.error === null && a.readyState >= 2;"),
        what="the query clip to load")

    # rate both lists and pick the second as best
    driver.find_element(By.CSS_SELECTOR, "input[name=rating_0][value='4']").click()
    driver.find_element(By.CSS_SELECTOR, "input[name=rating_1][value='2']").click()
    driver.find_element(By.CSS_SELECTOR, "input[name=best][value='1']").click()
    driver.find_element(By.ID, "listener").send_keys("ann")
    driver.find_element(By.ID, "submit-rating").click()
    notice = wait_for(lambda: driver.find_elements(By.ID, "notice"), what="the saved notice")[0]
    assert "Saved rating #" in notice.text and "ann" in notice.text

    ratings = db.read_ratings(res / "listening" / "ratings.sqlite")
    mine = ratings[ratings["query"] == query]
    assert mine["system"].tolist() == chosen and mine["rating"].tolist() == [4, 2]
    assert mine["listener"].tolist() == ["ann", "ann"] and mine["blind"].tolist() == [0, 0]
    assert mine["best"].tolist() == [False, True] and mine["position"].tolist() == [0, 1]
    assert mine["query_class"].tolist() == ["Bird", "Bird"] and mine["seed"].iloc[0] == int(q["seed"][0])
    assert mine["ap"].iloc[0] == pytest.approx(expected_ap(res, chosen[0], query, "Bird"))
    assert len(json.loads(mine["results"].iloc[0])) == 15
    assert mine["model"].tolist() == ["alpha", "beta"] and mine["search"].tolist() == ["mcss", "mcss"]
    # the listener id is remembered for the next page
    driver.get(url)
    assert driver.find_element(By.ID, "listener").get_attribute("value") == "ann"


def test_blind_mode_hides_names_until_rated(driver, server, results_root):
    from selenium.webdriver.common.by import By

    res = results_root / "results" / COLLECTION
    chosen = list(SYSTEMS)
    url = server + "/?class=Rain&seed=7&blind=1&" + "&".join(f"systems={quote(s, safe='')}" for s in chosen)
    driver.get(url)
    cols = driver.find_elements(By.CSS_SELECTOR, "section.col")
    assert [c.find_element(By.CSS_SELECTOR, "h2").text for c in cols] == ["System A", "System B", "System C"]
    for c in cols:  # nothing in a list tells which system it is
        assert c.get_attribute("data-system") == "" and "alpha" not in c.text and "beta" not in c.text
    assert not driver.find_elements(By.CSS_SELECTOR, ".ap-value, li.relevant, .labels")
    assert all(len(c.find_elements(By.CSS_SELECTOR, "li.result")) == 15 for c in cols)
    query = driver.find_element(By.ID, "query-name").text
    for pos, r in enumerate([5, 3, 1]):
        driver.find_element(By.CSS_SELECTOR, f"input[name=rating_{pos}][value='{r}']").click()
    who = driver.find_element(By.ID, "listener")
    who.clear()
    who.send_keys("bob")
    driver.find_element(By.ID, "submit-rating").click()
    wait_for(lambda: driver.find_elements(By.ID, "notice"), what="the saved notice")
    assert "revealed" in driver.find_element(By.ID, "notice").text
    shown = [c.get_attribute("data-system") for c in driver.find_elements(By.CSS_SELECTOR, "section.col")]
    assert sorted(shown) == sorted(chosen)
    assert driver.find_elements(By.CSS_SELECTOR, ".ap-value")
    # rated: the form is closed (no second submission), the next query is one click away
    assert not driver.find_elements(By.ID, "submit-rating") and driver.find_elements(By.ID, "next")
    assert all(not e.is_enabled() for e in driver.find_elements(By.CSS_SELECTOR, "input[type=radio]"))
    ratings = db.read_ratings(res / "listening" / "ratings.sqlite")
    mine = ratings[(ratings["listener"] == "bob") & (ratings["query"] == query)]
    assert mine["system"].tolist() == shown, "the database keeps the order shown"
    assert mine["rating"].tolist() == [5, 3, 1] and set(mine["blind"]) == {1}
    assert not mine["best"].any()
    # the URL after rating still names the systems in the order chosen (same page, same shuffle)
    assert parse_qs(urlsplit(driver.current_url).query)["systems"] == chosen


# --------------------------------------------------------------------------- HTTP-level checks


def raw_get(base: str, path: str) -> tuple[int, str, str]:
    """GET ``path`` exactly as given (no client-side normalisation of ../)."""
    u = urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.putrequest("GET", path, skip_accept_encoding=True)
    c.endheaders()
    r = c.getresponse()
    body = r.read().decode("utf-8", "replace")
    c.close()
    return r.status, r.getheader("Content-Type", ""), body


def test_audio_only_serves_manifest_files(server, results_root):
    res = results_root / "results" / COLLECTION
    status, ctype, _ = raw_get(server, "/audio/bird01")
    assert status == 200 and ctype == "audio/wav"
    status, ctype, _ = raw_get(server, "/audio/bird00")
    assert status == 200 and ctype == "audio/flac"
    wav = res / "source" / "audio" / "bird01.wav"
    for path in [
        "/audio/../manifest.csv", "/audio/../../../../etc/passwd", "/audio/..%2Fmanifest.csv",
        "/audio/%2e%2e%2f%2e%2e%2fmanifest.csv", "/audio/..", "/audio/%2e%2e",
        "/audio//etc/passwd", "/audio/%2Fetc%2Fpasswd", f"/audio/{wav}", f"/audio/{quote(str(wav), safe='')}",
        "/audio/bird01.wav", "/audio/BIRD01", "/audio/", "/audio", "/source/audio/bird01.wav",
        "/results/tiny/manifest.csv", "/static/", "/audio/bird01%00",
    ]:
        status, _, body = raw_get(server, path)
        assert status == 404, (path, status)
        assert "Traceback" not in body and "root:" not in body


@pytest.mark.parametrize("query", [
    "class=Nope", "class=Bird&seed=-1", "class=Bird&seed=abc", "class=Bird&seed=99999999999",
    "class=Bird&seed=1&blind=maybe", "systems=alpha/v1/nothing", "systems=../../etc/agg-none_pca-none_search-mcss",
    "class=Bird&seed=1&systems=alpha/v1/agg-max_pca-none_search-mcss",
    "class=Bird&query=rain01", "query=nothing", "class=Bird&seed=1&foo=bar", "class=Bird&seed=1&rated=999",
    "class=Bird&seed=1&" + "&".join(["systems=alpha/v1/agg-none_pca-none_search-mcss"] * 2),
    "class=Bird&seed=1&" + "&".join(f"systems={s}" for s in [*SYSTEMS, *SYSTEMS][:5]),
    "class=Bird&seed=1&systems=&systems=",
])
def test_bad_parameters_give_400(server, query):
    status, ctype, body = raw_get(server, "/?" + query.replace("/", "%2F"))
    assert status == 400, body[-500:]
    assert ctype.startswith("text/html") and "Bad request" in body and "Traceback" not in body


def post_rating(base: str, fields: list[tuple[str, str]], headers: dict | None = None) -> tuple[int, str]:
    from urllib.parse import urlencode

    req = urllib.request.Request(base + "/rate", data=urlencode(fields).encode(), method="POST",
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_bad_ratings_are_refused(server, results_root):
    sid = "alpha/v1/agg-none_pca-none_search-mcss"
    ok = [("class", "Bird"), ("query", "bird02"), ("query_chosen", "1"), ("systems", sid), ("listener", "carl")]
    n_before = len(db.read_ratings(results_root / "results" / COLLECTION / "listening" / "ratings.sqlite")) \
        if (results_root / "results" / COLLECTION / "listening" / "ratings.sqlite").is_file() else 0
    for fields in (ok + [("rating_0", "9")], ok, ok + [("rating_0", "x")],
                   [("class", "Bird"), ("query", "rain01"), ("query_chosen", "1"), ("systems", sid),
                    ("listener", "carl"), ("rating_0", "3")],
                   [*ok[:-1], ("listener", "<script>"), ("rating_0", "3")],
                   [("class", "Bird"), ("query", "bird02"), ("systems", sid), ("listener", "carl"),
                    ("rating_0", "3")]):
        status, body = post_rating(server, fields)
        assert status == 400 and "Traceback" not in body, (fields, status)
    status, _ = post_rating(server, ok + [("rating_0", "3")], {"Origin": "http://evil.example"})
    assert status == 403
    status, _ = post_rating(server, ok + [("rating_0", "3")], {"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    path = results_root / "results" / COLLECTION / "listening" / "ratings.sqlite"
    assert (len(db.read_ratings(path)) if path.is_file() else 0) == n_before
    status, body = post_rating(server, ok + [("rating_0", "3")])  # and a good one is stored
    assert status == 200 and "Saved rating" in body
    assert len(db.read_ratings(path)) == n_before + 1


def test_untrusted_host_header_is_refused(server):
    u = urlsplit(server)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request("GET", "/", headers={"Host": "attacker.example"})
    assert c.getresponse().status == 400


def test_missing_results_say_which_rule_to_run(tmp_path):
    from soundsim.listen import create_app

    app = create_app(tmp_path / "results", "nothing")
    r = app.test_client().get("/")
    assert r.status_code == 503
    text = r.get_data(as_text=True)
    assert "manifest" in text and "snakemake" in text and "Traceback" not in text
    (tmp_path / "results" / "nothing").mkdir(parents=True)
    pd.DataFrame({"fname": ["a"], "path": ["/x.wav"], "labels": ["A"]}).to_csv(
        tmp_path / "results" / "nothing" / "manifest.csv", index=False)
    r = app.test_client().get("/")
    assert r.status_code == 503 and "rule evaluate" in r.get_data(as_text=True)
    assert app.test_client().get("/audio/a").status_code == 404  # listed, but the file is not there


# --------------------------------------------------------------------------- the listening rule


def fill_ratings(path: Path) -> pd.DataFrame:
    """Three listeners rate the three systems on a few queries; returns what was stored."""
    from soundsim.listen.results import Results

    res = Results(path.parents[2], COLLECTION)
    systems = {s.id: s for s in res.systems()}
    plan = {  # listener -> (query, class, ratings in SYSTEMS order, best position)
        "ann": [("bird01", "Bird", [5, 4, 2], 0), ("rain02", "Rain", [4, 4, 1], 1)],
        "bob": [("bell03", "Bell", [4, 3, 2], None), ("bark01", "Bark", [5, 3, 3], 0)],
        "cy": [("bird04", "Bird", [3, 5, 1], 1)],
    }
    for who, items in plan.items():
        for query, cls, ratings, best in items:
            lists = []
            for sid, r in zip(SYSTEMS, ratings, strict=True):
                rk = res.ranking(systems[sid], query, cls)
                lists.append({**systems[sid].as_dict(), "rating": r, "ap": rk.ap, "map": res.map_at(systems[sid]),
                              "results": rk.fnames})
            db.add_judgement(path, listener=who, collection=COLLECTION, query=query, query_class=cls, seed=None,
                             blind=True, lists=lists, best_position=best)
    return db.read_ratings(path)


@pytest.mark.slow
def test_listening_rule_summarises_a_filled_database(tmp_path, venv_bin):
    from scipy import stats

    build_results(tmp_path)
    res = tmp_path / "results" / COLLECTION
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"collection": {"name": COLLECTION, "kind": "demo"},
                                                          "models": {}}))

    def snakemake(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv_bin / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
                               "--cores", "1", *args], capture_output=True, text=True, cwd=tmp_path, timeout=600)

    # without ratings the default plan has no listening job; asking for it names the missing database
    plan = snakemake("-n")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "listening_summary" not in plan.stdout and "tables/listening.csv" not in plan.stdout
    r = snakemake("listening")
    assert r.returncode != 0 and "listening/ratings.sqlite" in r.stdout + r.stderr

    ratings = fill_ratings(res / "listening" / "ratings.sqlite")
    r = snakemake("listening")
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_csv(res / "tables" / "listening.csv")
    assert sorted(table["system"]) == sorted(SYSTEMS)
    assert table["mean_rating"].is_monotonic_decreasing
    for sid, g in ratings.groupby("system"):
        row = table.set_index("system").loc[sid]
        x = g["rating"].to_numpy(float)
        assert row["n_ratings"] == 5 and row["n_listeners"] == 3 and row["n_queries"] == 5
        assert row["mean_rating"] == pytest.approx(x.mean(), abs=1e-6)
        h = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        assert row["ci_low"] == pytest.approx(x.mean() - h, abs=1e-6)
        assert row["ci_high"] == pytest.approx(x.mean() + h, abs=1e-6)
        summary = json.loads((res / "metrics" / sid / "summary.json").read_text())
        assert row["map@15"] == pytest.approx(summary["macro"]["map@15"], abs=1e-6)
        assert row["mean_ap@15"] == pytest.approx(g["ap"].mean(), abs=1e-6)
    assert table.set_index("system").loc[list(SYSTEMS)[0], "n_best"] == 2
    assert table.set_index("system").loc[list(SYSTEMS)[0], "best_share"] == pytest.approx(2 / 4)
    info = json.loads((res / "tables" / "listening.json").read_text())
    rho = stats.spearmanr(table["mean_rating"], table["map@15"]).statistic
    assert info["spearman"]["systems_mean_rating_vs_map@15"]["rho"] == pytest.approx(rho)
    assert info["n_judgements"] == 5 and info["n_listeners"] == 3 and info["n_ratings"] == 15
    assert (res / "figures" / "listening.png").stat().st_size > 10_000
    assert (res / "figures" / "listening.pdf").is_file()
    # which metric agrees with listeners: every metric of the rated systems' per_query.parquet
    # (the paper's map@15, map@150, mr1, then the retrieval panel's), both levels; the per-system
    # rho of map@15 is the summary's
    from soundsim import measures
    from soundsim import panel as PN

    agree = pd.read_csv(res / "tables" / "listening_metrics.csv")
    names = ["map@15", "map@150", "mr1", *[measures.average_of(c) for c in PN.columns()]]
    assert list(agree["metric"]) == [m for m in names for _ in range(2)]
    assert list(agree["level"]) == ["system", "query"] * len(names)
    a = agree.set_index(["metric", "level"])
    assert a.loc[("map@15", "system"), "rho"] == pytest.approx(rho, abs=1e-6)
    assert a.loc[("map@15", "system"), "n"] == 3 and a.loc[("map@15", "query"), "n"] == ratings["ap"].notna().sum()
    q = info["spearman"]["ratings_vs_query_ap@15"]["rho"]
    assert a.loc[("map@15", "query"), "rho"] == pytest.approx(q, abs=1e-6)  # the stored AP@15 is the file's
    assert bool(a.loc[("mr1", "query"), "negated"]) and not bool(a.loc[("map@15", "query"), "negated"])
    assert (res / "figures" / "listening_metrics.png").stat().st_size > 10_000
    assert (res / "figures" / "listening_metrics.pdf").is_file()

    again = snakemake("listening")
    assert "Nothing to be done" in again.stdout + again.stderr
    # a new rating makes the summary out of date
    time.sleep(1)
    fill_ratings(res / "listening" / "ratings.sqlite")
    plan = snakemake("-n", "listening")
    assert "listening_summary" in plan.stdout and "listening_metrics" in plan.stdout, plan.stdout


def test_ratings_database_schema(tmp_path):
    path = tmp_path / "r.sqlite"
    lists = [{"system": "m/v/agg-none_pca-none_search-mcss", "model": "m", "variation": "v",
              "setting": "agg-none_pca-none_search-mcss", "aggregation": "none", "pca": "none", "search": "mcss",
              "rating": 3, "ap": float("nan"), "results": ["a", "b"]}]
    jid = db.add_judgement(path, listener="x", collection="c", query="q", query_class="L", seed=1, blind=False,
                           lists=lists)
    assert jid == 1 and db.rated_systems(path) == ["m/v/agg-none_pca-none_search-mcss"]
    with pytest.raises(ValueError):
        db.add_judgement(path, listener="x", collection="c", query="q", query_class="L", seed=1, blind=False,
                         lists=[{**lists[0], "rating": 6}])
    with pytest.raises(ValueError):
        db.add_judgement(path, listener="x", collection="c", query="q", query_class="L", seed=1, blind=False,
                         lists=lists, best_position=3)
    with sqlite3.connect(path) as con:
        cols = {r[1] for r in con.execute("PRAGMA table_info(judgements)")}
        assert {"listener", "created", "query", "blind", "seed", "best_position"} <= cols
        cols = {r[1] for r in con.execute("PRAGMA table_info(ratings)")}
        assert {"system", "model", "variation", "aggregation", "pca", "search", "position", "rating"} <= cols
        with pytest.raises(sqlite3.IntegrityError):  # the database itself refuses out-of-range ratings
            con.execute("INSERT INTO ratings VALUES (1, 5, 's', 'm', 'v', 's', 'a', 'p', 's', 0, NULL, NULL, '[]')")
    r = db.read_ratings(path)
    assert len(r) == 1 and math.isnan(r["ap"].iloc[0]) and r["created"].iloc[0].endswith("+00:00")


def test_listen_on_ipv6_loopback_answers_its_own_address(results_root):
    """`soundsim listen --host ::1` prints http://[::1]:P/ and that address answers
    (werkzeug's own trusted-host check refused '[::1]:P'); other Host names stay refused."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    exe = Path(sys.executable).parent / "soundsim"
    proc = subprocess.Popen(
        [str(exe), "listen", "--results", str(results_root / "results"), "--collection", COLLECTION,
         "--host", "::1", "--port", str(port)], cwd=results_root, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    try:
        first = proc.stdout.readline()
        assert f"at http://[::1]:{port}/" in first
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://[::1]:{port}/", timeout=2) as r:
                    assert r.status == 200 and "soundsim listen" in r.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.1)
        else:
            pytest.fail("soundsim listen --host ::1 did not answer within 20 s")
        c = http.client.HTTPConnection("::1", port, timeout=10)
        c.request("GET", "/", headers={"Host": "attacker.example"})
        assert c.getresponse().status == 400
        c = http.client.HTTPConnection("::1", port, timeout=10)
        c.request("GET", "/", headers={"Host": f"localhost:{port}"})
        assert c.getresponse().status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
