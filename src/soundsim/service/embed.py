"""Embed new audio files with an index's model, in that model's environment, loaded once.

:class:`EmbedClient` starts one worker process, ``<env python> -m
soundsim.service.embed --spec JSON`` (the interpreter of the model's environment,
:func:`soundsim.envs.python_for`: ``.venvs/<env>/bin/python``, or this one for
the main env), which loads the model once and then embeds one file per request,
exactly as ``soundsim extract`` does (:func:`soundsim.extract.embed_clip`:
decode, downmix, resample with soxr VHQ, pad to the model's minimum duration,
embed). So the index's process never imports torch or TensorFlow, and a model
with incompatible dependencies answers from its own environment.

Protocol (one JSON object per line): the worker first prints
``{"ready": true, "dim": D, "level": ...}`` (or ``{"ready": false, "error": ...}``);
then for each request ``{"id": n, "path": P, "out": O}`` on its stdin it writes the
frames (F, D) float32 to ``O`` (``.npy``) and answers ``{"id": n, "ok": true,
"frames": F}``, or ``{"id": n, "ok": false, "error": "<path>: <reason>"}`` for audio it
cannot embed. Anything the model prints goes to stderr, never into the protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from soundsim.errors import AudioError, SoundsimError


class EmbedWorkerError(SoundsimError):
    """The model's worker process could not start or died (the message says why)."""


def spec_of(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the worker needs from an index manifest: model, variation, weights, options, cfg, env."""
    return {k: manifest.get(k) for k in ("model", "variation", "weights", "options", "model_config", "env")}


class EmbedClient:
    """One worker process for one model (see the module docstring); thread-safe, one request
    at a time. Use as a context manager, or call :meth:`close`."""

    def __init__(self, spec: Mapping[str, Any], python: str | None = None, timeout_s: float = 600.0) -> None:
        from soundsim.envs import python_for

        self.spec = dict(spec)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="soundsim-embed-")
        self._n = 0
        py = python or python_for(str(self.spec.get("env") or "soundsim"))
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self._proc = subprocess.Popen(
                [py, "-m", "soundsim.service.embed", "--spec", json.dumps(self.spec)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1,
            )
        except OSError as e:
            raise EmbedWorkerError(f"cannot start the embedding worker for {self.spec.get('model')} ({py}): {e}") from e
        hello = self._read_line()
        if not hello.get("ready"):
            self.close()
            raise EmbedWorkerError(f"model {self.spec.get('model')} could not be loaded: {hello.get('error')}")
        self.dim = int(hello["dim"])

    def _read_line(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait()
            raise EmbedWorkerError(f"the embedding worker of model {self.spec.get('model')} exited "
                                   f"(status {code}); its messages are above")
        return json.loads(line)

    def embed(self, path: str | Path) -> np.ndarray:
        """The frames (F, D) float32 of one file; :class:`AudioError` naming it when it cannot."""
        p = Path(path)
        if not p.is_file():
            raise AudioError(str(path), "no such file")
        with self._lock:
            self._n += 1
            out = Path(self._tmp.name) / f"{self._n}.npy"
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(json.dumps({"id": self._n, "path": str(p.resolve()), "out": str(out)}) + "\n")
                self._proc.stdin.flush()
            except BrokenPipeError:
                raise EmbedWorkerError(f"the embedding worker of model {self.spec.get('model')} is gone") from None
            reply = self._read_line()
            if not reply.get("ok"):
                raise AudioError(str(path), str(reply.get("error", "could not be embedded")).split(": ", 1)[-1])
            try:
                return np.load(out)
            finally:
                out.unlink(missing_ok=True)

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        self._tmp.cleanup()

    def __enter__(self) -> EmbedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- the worker


def _serve(spec: Mapping[str, Any], inp: IO[str], out: IO[str]) -> int:
    from soundsim import models

    def say(obj: Mapping[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        cfg = spec.get("model_config") or None
        options = spec.get("options") or {}
        if isinstance(options, str):
            options = json.loads(options)
        model = models.load(str(spec["model"]), spec.get("variation"), spec.get("weights") or None, "cpu",
                            options, cfg)
    except Exception as e:  # noqa: BLE001 - reported to the client, which raises it
        say({"ready": False, "error": f"{type(e).__name__}: {e}"})
        return 2
    dim = getattr(model.embedder, "dim", None) or model.info.dim_of(model.variation)
    try:
        say({"ready": True, "dim": int(dim), "level": model.info.level})
        _answer(model, inp, say)
    except BrokenPipeError:  # the client is gone (e.g. killed): nothing left to answer
        return 0
    return 0


def _answer(model: Any, inp: IO[str], say: Any) -> None:
    """One reply per request line until stdin closes (module docstring)."""
    from soundsim.extract import embed_clip

    for line in inp:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            frames = embed_clip(model, req["path"])
            np.save(req["out"], np.asarray(frames, dtype=np.float32))
            say({"id": req["id"], "ok": True, "frames": int(frames.shape[0])})
        except AudioError as e:
            say({"id": req["id"], "ok": False, "error": str(e)})
        except BrokenPipeError:
            raise
        except Exception as e:  # noqa: BLE001 - any decoder/model failure is the file's, the worker goes on
            say({"id": req["id"], "ok": False, "error": f"{req['path']}: {type(e).__name__}: {e}"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m soundsim.service.embed",
                                 description="embedding worker of a soundsim index (JSON lines on stdin/stdout)")
    ap.add_argument("--spec", required=True, help="JSON: model, variation, weights, options, model_config, env")
    args = ap.parse_args(argv)
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # model prints go to stderr
    try:
        return _serve(json.loads(args.spec), sys.stdin, proto)
    finally:
        try:
            proto.close()
        except OSError:  # the client is gone
            pass


if __name__ == "__main__":
    raise SystemExit(main())
