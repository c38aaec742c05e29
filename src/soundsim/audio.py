"""Audio files: probe headers, check that a file decodes, load as float32.

Every failure is an :class:`~soundsim.errors.AudioError` carrying the file's
path and a short reason (``empty file``, ``truncated: ...``, ``cannot decode:
...``); callers decide whether to skip or stop (``extraction.on_bad_audio``).

Reading and decoding is libsndfile's (via ``soundfile``): WAV, FLAC, OGG/Vorbis,
Ogg Opus (``.opus``), AIFF, MP3 (libsndfile >= 1.1). Formats libsndfile cannot
decode (:data:`UNSUPPORTED_EXTENSIONS`: M4A/AAC, WMA, ...) are still found by
the collection adapters and reported as unusable clips, "format not supported
by libsndfile (convert it, e.g. with ffmpeg)". Resampling is ``soxr``
(deterministic, VHQ).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from soundsim.errors import AudioError

#: File extensions the collection adapters look for, in order of preference.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
#: Audio formats libsndfile cannot decode: found as clips, then reported (see :data:`UNSUPPORTED_REASON`).
UNSUPPORTED_EXTENSIONS = (".m4a", ".aac", ".mp4", ".m4b", ".alac", ".wma", ".webm", ".mka", ".ac3", ".amr",
                          ".ape", ".3gp")
UNSUPPORTED_REASON = "format not supported by libsndfile (convert it, e.g. with ffmpeg)"


@dataclass(frozen=True)
class AudioInfo:
    """What the header (and, after :func:`check`, the decoder) says about a file."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Seconds: ``frames / sample_rate``."""
        return self.frames / self.sample_rate


def _riff_data_shortfall(path: str) -> str | None:
    """For RIFF/WAVE files, compare the ``data`` chunk size the header declares
    with the bytes the file holds. libsndfile silently shortens such files, so
    this check is ours. Returns a reason when the file is truncated, else None."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # not a plain RIFF/WAVE (RF64, W64, ...): leave it to the decoder
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            cid, csize = struct.unpack("<4sI", fh.read(8))
            if cid == b"data":
                held = size - (pos + 8)
                if csize != 0xFFFFFFFF and csize > held:
                    return f"truncated: header declares {csize} bytes of audio data, the file holds {held}"
                return None
            pos += 8 + csize + (csize & 1)
        return "truncated: no 'data' chunk in the WAV file"


def probe(path: str | Path) -> AudioInfo:
    """Read the header of ``path``. Raises AudioError for a missing, empty,
    unrecognised or zero-length file."""
    p = str(path)
    if not os.path.exists(p):
        raise AudioError(p, "file not found")
    if os.path.getsize(p) == 0:
        raise AudioError(p, "empty file (0 bytes)")
    try:
        info = sf.info(p)
    except (sf.LibsndfileError, RuntimeError) as e:
        if os.path.splitext(p)[1].lower() in UNSUPPORTED_EXTENSIONS:
            raise AudioError(p, UNSUPPORTED_REASON) from e
        raise AudioError(p, f"cannot read audio header: {e}") from e
    if info.frames <= 0:
        raise AudioError(p, "no audio frames (zero-length audio)")
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(p, f"invalid header (sample rate {info.samplerate}, channels {info.channels})")
    return AudioInfo(p, int(info.samplerate), int(info.channels), int(info.frames), info.format, info.subtype)


def check(path: str | Path, full: bool = True, blocksize: int = 1 << 16) -> AudioInfo:
    """:func:`probe` the file, then (``full``) decode it to the end.

    Finds truncated WAV data (header longer than data), decoder errors
    (corrupt FLAC/OGG frames), fewer decoded frames than the header promises,
    and non-finite samples. Returns the header info when all is well.
    """
    info = probe(path)
    short = _riff_data_shortfall(info.path)
    if short:
        raise AudioError(info.path, short)
    if not full:
        return info
    decoded = 0
    try:
        with sf.SoundFile(info.path) as f:
            for block in f.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    raise AudioError(info.path, _first_non_finite(block, decoded, info.sample_rate))
                decoded += block.shape[0]
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(info.path, f"cannot decode (corrupt or truncated) after {decoded} frames: {e}") from e
    if decoded < info.frames:
        raise AudioError(info.path, f"truncated: header says {info.frames} frames, decoded {decoded}")
    return info


#: Frames decoded per block by :func:`load` (64 Ki frames: 256 KiB per channel of float32).
LOAD_BLOCK = 1 << 16


def _first_non_finite(block: np.ndarray, start: int, sr: int) -> str:
    """The reason naming the first non-finite sample of ``block`` (frames x channels),
    whose first frame is frame ``start`` of the file."""
    frame, channel = (int(i) for i in np.argwhere(~np.isfinite(block))[0])
    value = block[frame, channel]
    return (f"non-finite sample ({value}) at frame {start + frame} ({(start + frame) / sr:.3f} s), "
            f"channel {channel}")


def load(path: str | Path, sample_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Decode ``path`` as float32 in [-1, 1]; truncated WAV data is an error (as in :func:`check`).

    ``mono``: average the channels (explicit downmix) -> shape ``(frames,)``;
    otherwise ``(frames, channels)``. ``sample_rate``: resample with soxr (VHQ)
    when the file's rate differs. Returns ``(samples, sample_rate)``.

    Streaming, so that memory stays about the size of the returned array
    whatever the clip's length: the file is decoded in blocks of
    :data:`LOAD_BLOCK` frames, each block is checked for NaN/Inf (an
    AudioError ``non-finite sample (nan) at frame F (T s), channel C`` names
    the first one: frame counted from 0 at the file's rate, channel 0 = the
    first), downmixed to mono (the channel mean, float32) and fed to soxr's
    streaming resampler (``soxr.ResampleStream``, VHQ, float32), which writes
    into one preallocated output array. The result is **bit-identical** to
    decoding the whole file at once, downmixing with ``x.mean(axis=1,
    dtype=float32)`` and resampling with the one-shot ``soxr.resample(x, sr,
    sample_rate, quality="VHQ")`` (what soundsim did before; same length,
    ``round(frames x sample_rate / sr)``, same samples; checked in
    ``tests/test_audio.py`` for several rates, channel counts and lengths):
    soxr's one-shot call runs the same resampler over chunks of the input,
    and the per-frame channel mean does not depend on the block. One
    exception: MP3, whose decoding by libsndfile (mpg123) itself differs by
    up to one float32 step (1.2e-7) with the size of the reads, so MP3 files
    match the one-shot path to that precision only.
    """
    p = str(path)
    info = probe(p)
    short = _riff_data_shortfall(p)
    if short:
        raise AudioError(p, short)
    sr, channels = info.sample_rate, info.channels
    resample = sample_rate is not None and sr != sample_rate
    width = () if mono else (channels,)
    if resample:
        stream = soxr.ResampleStream(sr, sample_rate, 1 if mono else channels, dtype="float32", quality="VHQ")
        capacity = int(np.ceil(info.frames * sample_rate / sr)) + 16
    else:
        capacity = info.frames
    out = np.empty((capacity, *width), dtype=np.float32)
    done = 0  # frames written to out
    decoded = 0  # frames decoded from the file

    def put(y: np.ndarray) -> None:
        nonlocal out, done
        if done + len(y) > len(out):  # soxr gave more than its ratio says: cannot happen, but be safe
            out = np.concatenate([out[:done], np.empty((done + len(y) - len(out) + 1024, *width), np.float32)])
        out[done : done + len(y)] = y
        done += len(y)

    block = np.empty((min(LOAD_BLOCK, info.frames), channels), dtype=np.float32)
    try:
        with sf.SoundFile(p) as f:
            while decoded < info.frames:
                got = f.read(out=block[: min(LOAD_BLOCK, info.frames - decoded)])
                if len(got) == 0:
                    break
                if not np.isfinite(got).all():
                    raise AudioError(p, _first_non_finite(got, decoded, sr))
                decoded += len(got)
                y = got.mean(axis=1, dtype=np.float32) if mono else got
                if resample:
                    y = stream.resample_chunk(np.ascontiguousarray(y))
                put(y)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(p, f"cannot decode: {e}") from e
    if resample:
        put(stream.resample_chunk(np.zeros((0, *width), dtype=np.float32), last=True))
        sr = int(sample_rate)
    return out[:done], int(sr)
