"""Extraction speed per model on the demo collection: clips per second and real-time factor.

    .venv/bin/python benchmarks/bench_extract.py [--manifest results/demo/manifest.csv]
                                                [--models aisfx freesound musicnn] [--clips 60]

Each model runs in its own environment (soundsim.envs.python_for), as in the
workflow: this script re-runs itself there with ``--worker``. Model loading is
timed apart from embedding. Real-time factor = seconds of audio embedded per
second of wall time (higher is faster). Needs the manifest (``make demo``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def worker(manifest: str, model: str, n: int) -> dict:
    from soundsim import models
    from soundsim.extract import embed_clip
    from soundsim.manifest import read_manifest

    man = read_manifest(manifest).iloc[:n]
    t0 = time.perf_counter()
    m = models.load(model)
    m.embed(warmup_tone(m.info))  # warm-up, not timed
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    rows = 0
    for path in man["path"]:
        rows += embed_clip(m, path).shape[0]
    wall = time.perf_counter() - t1
    audio_s = float(man["duration"].sum())
    return {"model": model, "clips": len(man), "audio_s": audio_s, "wall_s": wall, "load_s": load_s,
            "clips_per_s": len(man) / wall, "rtf": audio_s / wall, "rows": rows}


def warmup_tone(info) -> "object":
    """A 3 s, -20 dBFS tone at the model's rate (silence would be rejected by freesound)."""
    import numpy as np

    t = np.arange(int(max(info.min_duration, 3.0) * info.sample_rate)) / info.sample_rate
    return (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", default="results/demo/manifest.csv")
    p.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    p.add_argument("--clips", type=int, default=60, help="clips to embed per model (default 60)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.manifest, a.worker, a.clips)))
        return
    from soundsim import models
    from soundsim.envs import python_for

    if not Path(a.manifest).is_file():
        sys.exit(f"{a.manifest} not found: run `make demo` first")
    names = a.models or list(models.available())
    print(f"{'model':<10} {'env':<10} {'clips':>5} {'audio s':>8} {'wall s':>7} {'load s':>6} {'clips/s':>8} {'RTF':>7}")
    for name in names:
        env = models.info(name).env
        cmd = [python_for(env), __file__, "--worker", name, "--manifest", a.manifest, "--clips", str(a.clips)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{name:<10} {env:<10} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{name:<10} {env:<10} {d['clips']:>5} {d['audio_s']:>8.1f} {d['wall_s']:>7.1f} {d['load_s']:>6.1f} "
              f"{d['clips_per_s']:>8.2f} {d['rtf']:>7.1f}")


if __name__ == "__main__":
    main()
