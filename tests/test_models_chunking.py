"""Bounded memory per clip (issue 12): models that embed a long clip in batches or blocks give
the rows of the single-batch computation (to float rounding) and never hold a whole-clip
intermediate. Models whose own test file holds the fixtures are tested there
(``test_models_beats.py``, ``test_models_msclap.py``, ...); this file covers the main-env
models without a test file of their own (aisfx) and the shared helpers."""

from __future__ import annotations

import numpy as np
import pytest

from soundsim import models

from conftest import chirp

pytestmark = pytest.mark.model_env("soundsim")


def test_aisfx_blocks_in_batches_equal_one_batch():
    """Blocks in batches of 3 (spectrogram frames computed per batch) = aisfx's own path:
    the whole clip's Essentia spectrogram, aisfx.preprocessing.blocking, one forward pass."""
    import torch
    from aisfx.preprocessing import blocking, compute_hopSize

    from soundsim.models import aisfx

    m = models.load("aisfx", options={"batch_size": 3})
    x = chirp(40.0, aisfx.SAMPLE_RATE, 1)
    spec = aisfx.mel_spectrogram(x)
    assert spec.shape[0] == aisfx.n_frames(len(x))
    np.testing.assert_array_equal(aisfx.mel_frames(x, 700, 300), spec[700:1000])  # bit for bit
    np.testing.assert_array_equal(aisfx.mel_frames(x, 0, 5), spec[:5])  # the first frames are zero-padded
    np.testing.assert_array_equal(aisfx.mel_frames(x, len(spec) - 5, 5), spec[-5:])  # and the last
    blocks = blocking(spec / aisfx.SPEC_MAX, aisfx.BLOCK, compute_hopSize(aisfx.BLOCK, 0.5, spec), True)
    with torch.no_grad():
        want = m.embedder.model.get_embedding(torch.from_numpy(blocks.astype(np.float32))).numpy()
    got = m.embed(x)
    assert got.shape == want.shape == (33, 512) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert aisfx.block_starts(100) == [0] and aisfx.block_starts(80) == [0] and aisfx.block_starts(215) == [0, 50, 100]


def test_aisfx_batch_size_option():
    from soundsim.errors import ConfigError

    with pytest.raises(ConfigError, match="models.aisfx.options.batch_size: 0; need an integer >= 1"):
        models.load("aisfx", options={"batch_size": 0})
    with pytest.raises(TypeError, match="aisfx takes only the option 'batch_size'"):
        models.load("aisfx", options={"chunk": 1})
