"""Benchmark a new clip queried end to end against the model's own embedding time.

    .venv/bin/python benchmarks/bench_query_audio.py INDEX_DIR            # a 10 s clip, 20 repeats
    .venv/bin/python benchmarks/bench_query_audio.py INDEX_DIR --seconds 30 --repeats 10

``INDEX_DIR``: an index built by ``soundsim index`` (e.g. of the demo's best
aisfx system). Writes one real audio file (a seeded chirp with noise, 44.1 kHz
WAV) of ``--seconds`` seconds, then measures, in ``--repeats`` interleaved rounds after one
warm-up:

* **embed**: the model alone, in this process: ``soundsim.extract.embed_clip``
  (decode, resample, pad, embed: exactly what the service's worker does), with
  the model loaded once beforehand (only for models of the main environment;
  others: the worker's embedding time is measured through the protocol);
* **query**: ``SimilarityIndex.similar_to_audio`` end to end: the request to the
  model's worker (already started), embedding there, reading the frames back,
  the stored processing, the faiss search and exact re-ranking, the results.

Printed: median and p90 of both, the ratio query / embed (target <= 1.1), and
what the overhead consists of (worker round trip, processing + search).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def write_clip(path: Path, seconds: float, sr: int = 44100, seed: int = 0) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * (300 + 40 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    sf.write(path, (x + 0.02 * rng.standard_normal(len(t))).astype(np.float32), sr)
    return path


def interleaved(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Each function once as warm-up, then ``repeats`` rounds calling each in turn (so that
    load from other processes hits all of them alike)."""
    for fn in fns.values():
        fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[k].append(time.perf_counter() - t0)
    return out


def p(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("index", help="an index folder built by soundsim index")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the new clip (default 10)")
    ap.add_argument("--repeats", type=int, default=20, help="timed repeats after one warm-up (default 20)")
    ap.add_argument("-k", type=int, default=15)
    args = ap.parse_args()

    from soundsim import models
    from soundsim.extract import embed_clip
    from soundsim.service.index import SimilarityIndex

    with tempfile.TemporaryDirectory() as tmp, SimilarityIndex(args.index) as idx:
        clip = write_clip(Path(tmp) / "new.wav", args.seconds)
        m = idx.manifest
        print(f"index {args.index}: {m['system']}, {m['index']['type']}, {m['counts']['active']} sounds; "
              f"clip {args.seconds:g} s")
        t0 = time.perf_counter()
        idx.embedder()
        print(f"model worker started in {time.perf_counter() - t0:.2f} s (once per process)")
        client = idx.embedder()
        fns = {"worker": lambda: client.embed(clip), "query": lambda: idx.similar_to_audio([clip], args.k)}
        if (m.get("env") or "soundsim") == "soundsim":
            model = models.load(m["model"], m["variation"], m.get("weights"), "cpu", m.get("options") or {},
                                m.get("model_config") or None)
            fns["embed"] = lambda: embed_clip(model, str(clip))
        times = interleaved(fns, args.repeats)
        embed, worker, query = times.get("embed"), times["worker"], times["query"]
        rows = [("embed (model alone, in process)", embed), ("embed via the worker", worker),
                ("query end to end", query)]
        print(f"{'':34} {'median ms':>10} {'p90 ms':>10}")
        for name, xs in rows:
            if xs is not None:
                print(f"{name:34} {1e3 * statistics.median(xs):10.1f} {1e3 * p(xs, 90):10.1f}")
        base = embed if embed is not None else worker
        ratio = statistics.median(query) / statistics.median(base)
        print(f"query / embed = {ratio:.3f} (target <= 1.1); processing + search + results: "
              f"{1e3 * (statistics.median(query) - statistics.median(worker)):.1f} ms")


if __name__ == "__main__":
    main()
