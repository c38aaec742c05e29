"""Hand-checkable properties of soundsim.models._kaldi (torchaudio's Kaldi fbank without torchaudio).

The module's docstring records the comparison with torchaudio's own
``compliance/kaldi.py`` (max abs difference 0.0); these tests check what can be
worked out by hand: frame counts, silence, tones, the filters' shape, scaling.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from soundsim.models._kaldi import fbank, mel_banks  # noqa: E402

SR = 16000
EPS_LOG = math.log(float(np.finfo(np.float32).eps))  # log of float32 machine epsilon: -15.942...


def mel(f: float) -> float:
    return 1127.0 * math.log(1.0 + f / 700.0)


def inv_mel(m: float) -> float:
    return 700.0 * (math.exp(m / 1127.0) - 1.0)


def centre(b: int, bins: int, sr: int = SR) -> float:
    """Centre frequency (Hz) of mel filter ``b``: bins + 2 equally spaced mel edges from 20 Hz to Nyquist."""
    low, high = mel(20.0), mel(sr / 2)
    return inv_mel(low + (b + 1) * (high - low) / (bins + 1))


def sine(freq: float, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("n", [400, 401, 559, 560, 561, 2800, 16000, 160000])
def test_frame_count(n):
    """25 ms frames every 10 ms, whole frames only (snip_edges): 1 + (n - 400) // 160 rows."""
    out = fbank(noise(n), SR, 128)
    assert out.shape == (1 + (n - 400) // 160, 128) and out.dtype == np.float32
    assert fbank(noise(n), 8000, 23).shape == (1 + (n - 200) // 80, 23)  # 200-sample frames, 80 shift at 8 kHz


@pytest.mark.parametrize("n", [0, 1, 399])
def test_shorter_than_one_frame_gives_zero_rows(n):
    out = fbank(noise(n), SR, 128)
    assert out.shape == (0, 128) and out.dtype == np.float32


@pytest.mark.parametrize("window", ["povey", "hanning"])
def test_silence_is_log_eps_everywhere(window):
    out = fbank(np.zeros(SR, dtype=np.float32), SR, 128, window)
    assert out.shape == (98, 128)
    np.testing.assert_allclose(out, EPS_LOG, rtol=0, atol=1e-6)
    # a constant (DC) signal is silence too: each frame's mean is removed first
    np.testing.assert_allclose(fbank(np.full(SR, 0.3, dtype=np.float32), SR, 128, window), EPS_LOG, atol=1e-6)


@pytest.mark.parametrize("bins", [23, 64, 128])
def test_tone_peaks_in_the_filter_centred_on_it(bins):
    """A tone at a filter's centre frequency has its largest energy in that filter (for 128 bins only
    from filter 30 up: the lowest filters are narrower than the 31.25 Hz FFT resolution)."""
    first = 30 if bins == 128 else 0
    for b in range(first, bins, 5 if bins == 128 else 1):
        out = fbank(sine(centre(b, bins)), SR, bins)
        assert out.mean(axis=0).argmax() == b, (bins, b, centre(b, bins))


def test_mel_banks_are_triangles_on_the_mel_scale():
    banks = mel_banks(128, 512, float(SR)).numpy()
    assert banks.shape == (128, 257) and banks.dtype == np.float32
    assert (banks[:, -1] == 0).all()  # the Nyquist column is zero
    assert banks.min() >= 0 and banks.max() <= 1
    low, high = mel(20.0), mel(SR / 2)
    delta = (high - low) / 129
    for b in range(128):
        left, mid, right = low + b * delta, low + (b + 1) * delta, low + (b + 2) * delta
        m = np.array([mel(SR / 512 * k) for k in range(256)])
        expected = np.maximum(0.0, np.minimum((m - left) / (mid - left), (right - m) / (right - mid)))
        np.testing.assert_allclose(banks[b, :256], expected, rtol=0, atol=1e-4)  # float32 mel arithmetic
        row = banks[b, :256]
        k = int(row.argmax())
        # one peak: non-decreasing up to it, non-increasing after it
        assert (np.diff(row[: k + 1]) >= 0).all() and (np.diff(row[k:]) <= 0).all()
        nnz = np.count_nonzero(row)  # a filter spanning nnz + 1 FFT bin spacings has a bin near its apex (1)
        assert nnz < 4 or row.max() >= 1 - 2 / (nnz + 1), (b, nnz, row.max())  # narrow low filters: any value
    # some low filters hold no FFT bin at all (Kaldi refuses this setting; torchaudio keeps log(eps))
    empty = np.flatnonzero(banks.max(axis=1) == 0)
    assert len(empty) >= 1 and empty.max() < 10
    out = fbank(noise(SR), SR, 128)
    np.testing.assert_allclose(out[:, empty], EPS_LOG, atol=1e-6)
    assert banks.max() > 0.99  # some FFT bin falls (almost) on a filter's apex, whose value is 1


def test_scaling_adds_a_constant():
    """Power scales with the square of the amplitude: fbank(a x) = fbank(x) + 2 ln a (above the eps floor).
    BEATs scales waveforms by 2^15 first: + 20.79."""
    x = noise(SR, seed=3)
    a, b = fbank(x, SR, 128), fbank(x * np.float32(2**15), SR, 128)
    live = a > EPS_LOG + 1
    np.testing.assert_allclose((b - a)[live], 2 * math.log(2**15), rtol=0, atol=1e-3)


def test_hanning_and_povey_windows_differ():
    x = noise(SR, seed=4) + sine(1000.0)
    p, h = fbank(x, SR, 128, "povey"), fbank(x, SR, 128, "hanning")
    assert p.shape == h.shape == (98, 128) and np.isfinite(p).all() and np.isfinite(h).all()
    assert np.abs(p - h).max() > 0.01
    with pytest.raises(ValueError, match="window_type 'hamming'; allowed values: hanning, povey"):
        fbank(x, SR, 128, "hamming")
