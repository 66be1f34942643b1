"""The decoded-audio cache: a cold and a warm cache give the same samples, damaged entries are
rebuilt, and a changed file is decoded again."""

from __future__ import annotations

import os

import numpy as np

from devsupport.synth import speech_like, write_wav
from recognition.engine.audio import decode_audio
from recognition.engine.features import FeatureConfig, prepare_waveform
from training.engine.data import WaveformCache

CONFIG = FeatureConfig(trim="energy")


def entries(cache_dir) -> list:
    return sorted(cache_dir.rglob("*.npy"))


def test_cold_and_warm_cache_give_identical_samples(tmp_path):
    path = write_wav(tmp_path / "a.wav", speech_like("angry", seed=3))
    cold = WaveformCache(CONFIG, tmp_path / "cache").get(path)  # decodes and writes the entry
    assert len(entries(tmp_path / "cache")) == 1
    warm = WaveformCache(CONFIG, tmp_path / "cache").get(path)  # reads the entry
    assert cold.dtype == warm.dtype == np.float32
    # Bit-identical: the first run of a seed must train on what every later run reads back.
    assert np.array_equal(cold, warm)
    # The float16 rounding is tiny next to the signal.
    decoded = prepare_waveform(decode_audio(path, sample_rate=CONFIG.sample_rate), CONFIG)
    assert cold.shape == decoded.shape and np.abs(cold - decoded).max() <= 1e-3 * np.abs(decoded).max()
    # Without a folder nothing is rounded: the memory cache holds the decoded samples.
    assert np.array_equal(WaveformCache(CONFIG).get(path), decoded.astype(np.float32))


def test_a_damaged_entry_is_rebuilt_and_a_changed_file_decoded_again(tmp_path):
    path = write_wav(tmp_path / "a.wav", speech_like("sad", seed=1))
    first = WaveformCache(CONFIG, tmp_path / "cache").get(path)
    (entry,) = entries(tmp_path / "cache")
    entry.write_bytes(b"not a numpy file")
    rebuilt = WaveformCache(CONFIG, tmp_path / "cache").get(path)
    assert np.array_equal(rebuilt, first) and np.load(entry).dtype == np.float16

    write_wav(path, speech_like("happy", seed=2, duration=1.0))  # same name, new content
    os.utime(path, ns=(entry.stat().st_mtime_ns + 10**9,) * 2)
    changed = WaveformCache(CONFIG, tmp_path / "cache").get(path)
    assert len(entries(tmp_path / "cache")) == 2 and changed.shape != first.shape
