"""Logging helpers: native libraries' output summarised per clip, timestamps."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from soundsim import logutil

from conftest import write_manifest


def test_summarise_native_counts_essentia_warnings_and_keeps_the_rest():
    text = ("[ WARNING  ] clipping oddtoevenharmonicenergyratio to maximum allowed value\n" * 3
            + "[   INFO   ] MusicExtractorSVM: no classifier models were configured by default\n"
            + "[ WARNING  ] another thing\n" + "plain line\n")
    warnings, rest = logutil.summarise_native(text)
    assert warnings == {"clipping oddtoevenharmonicenergyratio to maximum allowed value": 3, "another thing": 1}
    assert rest == ("[   INFO   ] MusicExtractorSVM: no classifier models were configured by default\n"
                    "plain line\n")


def test_native_output_summarises_real_essentia_warnings(capfd, caplog):
    essentia = pytest.importorskip("essentia")
    caplog.set_level(logging.WARNING)
    was = essentia.log.warningActive
    essentia.log.warningActive = True
    try:
        with logutil.native_output("clip.wav"):
            for _ in range(7):
                essentia.log.warning("clipping oddtoevenharmonicenergyratio to maximum allowed value")
            os.write(2, b"a native line that is not Essentia's\n")
    finally:
        essentia.log.warningActive = was
    out, err = capfd.readouterr()
    assert "[ WARNING  ]" not in out + err
    assert "a native line that is not Essentia's" in err
    assert caplog.messages == ["clip.wav: 7 Essentia warning(s): 'clipping oddtoevenharmonicenergyratio to "
                               "maximum allowed value' x7"]
    os.write(2, b"after\n")  # the descriptors are back
    assert capfd.readouterr().err == "after\n"


def test_freesound_extraction_log_has_one_summary_line_per_clip_and_timestamps(tmp_path):
    """A real `soundsim extract` of demo clips with Freesound's extractor: Essentia's
    repeated warnings become one line per clip; every log line has a timestamp."""
    from soundsim.datasets import demo

    demo.generate(tmp_path / "src", seed=0, clips_per_class=1, progress=False)
    clips = sorted((tmp_path / "src" / "audio").iterdir())[:4]
    man = write_manifest(tmp_path, clips)
    r = subprocess.run([sys.executable, "-m", "soundsim.cli", "-q", "extract", "--manifest", str(man), "--model",
                        "freesound", "--out", str(tmp_path / "fs.h5")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines() + r.stderr.splitlines()
    assert not [ln for ln in lines if ln.startswith("[ WARNING  ]")]
    summaries = [ln for ln in lines if "Essentia warning(s): 'clipping oddtoevenharmonicenergyratio" in ln]
    assert 1 <= len(summaries) <= len(clips) and all(str(tmp_path) in ln for ln in summaries)
    logged = [ln for ln in r.stderr.splitlines() if " soundsim" in ln and (" INFO " in ln or " WARNING " in ln)]
    assert logged and all(ln[:4].isdigit() and ln[4] == "-" for ln in logged)  # 2026-12-01 10:20:30,123 ...
