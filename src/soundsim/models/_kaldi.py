"""Kaldi-compatible log-mel filter banks, the input of BEATs, CAV-MAE and ImageBind.

Those models were trained on ``torchaudio.compliance.kaldi.fbank``. torchaudio's
PyPI wheels are CUDA builds that do not load beside soundsim's CPU torch, and
``kaldi-native-fbank`` (like Kaldi itself) refuses the 128 mel bins at 16 kHz
that these models use (some low bins hold no FFT bin; torchaudio keeps them at
log(eps)). So this module re-implements torchaudio's ``fbank`` in a few lines of
torch, for the options those models use, step by step as torchaudio does
(float32 throughout):

1. frames of ``L = int(sr * 0.025)`` samples every ``S = int(sr * 0.010)``
   (``snip_edges``: ``1 + (n - L) // S`` frames; none when ``n < L``);
2. per frame: subtract the mean (``remove_dc_offset``); pre-emphasis
   ``x[t] - 0.97 x[t-1]`` with ``x[-1] = x[0]``; window (``hanning``: symmetric
   Hann; ``povey``: symmetric Hann to the power 0.85); zero-pad to the next
   power of two ``P``;
3. power spectrum ``|rfft|^2``; triangular mel filters on the mel scale
   ``1127 ln(1 + f / 700)`` from 20 Hz to Nyquist, ``num_mel_bins + 2`` equally
   spaced edges, the Nyquist bin weighted 0;
4. ``log(max(eps, energies))``, ``eps`` = float32 machine epsilon.

No dither (torchaudio's default is 0; Kaldi's 1.0 would make embeddings random),
no energy term (``use_energy`` false; ``htk_compat`` then changes nothing).

Checked against torchaudio 2.9.1's ``compliance/kaldi.py`` run on torch 2.13 on
noise, tones, silence and too-short clips at 16 kHz, 128 bins, Hanning and Povey
windows, 64 and 128 bins, waveform as is and scaled by 2^15 (as BEATs does): max
abs difference 0.0 (the same float32 operations). Where torchaudio raises on a
clip shorter than one frame, this returns zero rows (models pad clips first).
``tests/test_models_kaldi.py`` checks hand-computable properties.
"""

from __future__ import annotations

import math

import numpy as np

WINDOWS = ("hanning", "povey")
LOW_FREQ = 20.0
PREEMPHASIS = 0.97


def _mel(freq):
    return 1127.0 * (1.0 + freq / 700.0).log() if hasattr(freq, "log") else 1127.0 * math.log(1.0 + freq / 700.0)


def mel_banks(num_bins: int, padded: int, sample_rate: float):
    """``(num_bins, padded // 2 + 1)`` float32 triangular filters (torchaudio's
    ``get_mel_banks`` without VTLN, padded with a zero Nyquist column)."""
    import torch

    if num_bins <= 3:
        raise ValueError("need more than 3 mel bins")
    nyquist = 0.5 * sample_rate
    low, high = _mel(LOW_FREQ), _mel(nyquist)
    delta = (high - low) / (num_bins + 1)
    b = torch.arange(num_bins).unsqueeze(1)
    left, center, right = low + b * delta, low + (b + 1.0) * delta, low + (b + 2.0) * delta
    mel = _mel(sample_rate / padded * torch.arange(padded / 2)).unsqueeze(0)
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    banks = torch.max(torch.zeros(1), torch.min(up, down)).to(torch.float32)
    return torch.nn.functional.pad(banks, (0, 1))


def fbank(
    waveform: np.ndarray,
    sample_rate: int,
    num_mel_bins: int,
    window_type: str = "povey",
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
) -> np.ndarray:
    """``(frames, num_mel_bins)`` float32 log-mel energies of a mono waveform,
    equal to ``torchaudio.compliance.kaldi.fbank(torch.from_numpy(waveform)[None],
    sample_frequency=sample_rate, num_mel_bins=num_mel_bins, window_type=window_type,
    dither=0.0, frame_length=frame_length_ms, frame_shift=frame_shift_ms)``.

    ``waveform`` is used as given: callers apply the model's own scaling first
    (BEATs multiplies by 2^15; CAV-MAE and ImageBind subtract the clip's mean)."""
    return fbank_torch(waveform, sample_rate, num_mel_bins, window_type, frame_length_ms, frame_shift_ms).numpy()


def fbank_torch(waveform, sample_rate: int, num_mel_bins: int, window_type: str = "povey",
                frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0):
    """:func:`fbank` on and to a float32 CPU torch tensor (1-D input)."""
    import torch

    if window_type not in WINDOWS:
        raise ValueError(f"window_type {window_type!r}; allowed values: {', '.join(WINDOWS)}")
    x = torch.as_tensor(np.asarray(waveform, dtype=np.float32).reshape(-1))
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    padded = 1 << (size - 1).bit_length()
    if x.numel() < size:
        return torch.zeros((0, int(num_mel_bins)), dtype=torch.float32)
    frames = x.unfold(0, size, shift)  # (m, size): 1 + (n - size) // shift rows
    frames = frames - frames.mean(dim=1, keepdim=True)
    prev = torch.nn.functional.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)[:, :-1]
    frames = frames - PREEMPHASIS * prev
    window = torch.hann_window(size, periodic=False, dtype=torch.float32)
    if window_type == "povey":
        window = window.pow(0.85)
    frames = torch.nn.functional.pad(frames * window, (0, padded - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    energies = torch.mm(power, mel_banks(int(num_mel_bins), padded, float(sample_rate)).T)
    return torch.max(energies, torch.tensor(torch.finfo(torch.float32).eps)).log()
