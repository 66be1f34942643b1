"""Leading/trailing silence trimming by energy or by webrtcvad."""

from __future__ import annotations

import numpy as np
import pytest

from devsupport.synth import SR, speech_like, voiced_burst
from recognition.engine.trim import TRIM_METHODS, trim_bounds, trim_silence


def _padded_utterance(
    lead: float = 0.7, tail: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, float, float]:
    """Silence (with a faint hiss), a 1.2 s voiced burst, silence. Returns the waveform and
    the burst's true start and end in seconds."""
    rng = np.random.default_rng(seed)
    burst = voiced_burst(1.2, 180.0, 20.0, 0.5, rng)
    wave = np.concatenate(
        [np.zeros(int(lead * SR), np.float32), burst, np.zeros(int(tail * SR), np.float32)]
    )
    wave += rng.normal(0, 0.001, wave.size).astype(np.float32)
    return wave, lead, lead + burst.size / SR


@pytest.mark.parametrize(("method", "tolerance"), [("energy", 0.05), ("vad", 0.12)])
def test_removes_leading_and_trailing_silence(method: str, tolerance: float) -> None:
    wave, start, end = _padded_utterance()
    lo, hi = trim_bounds(wave, method=method, margin_s=0.0)
    assert lo / SR == pytest.approx(start, abs=tolerance)
    assert hi / SR == pytest.approx(end, abs=tolerance)
    # The margin widens the range on both sides.
    lo_m, hi_m = trim_bounds(wave, method=method, margin_s=0.1)
    assert lo_m == lo - int(0.1 * SR) and hi_m == hi + int(0.1 * SR)
    trimmed = trim_silence(wave, method=method, margin_s=0.1)
    assert np.array_equal(trimmed, wave[lo_m:hi_m])


def test_keeps_inner_pauses() -> None:
    wave = speech_like("happy", duration=2.0, seed=4, lead_silence=0.6)
    loud = np.flatnonzero(np.abs(wave) > 0.02)
    lo, hi = trim_bounds(wave, margin_s=0.0)
    assert lo <= loud[0] + int(0.03 * SR) and hi >= loud[-1] - int(0.03 * SR)
    assert lo > int(0.4 * SR) and hi < wave.size - int(0.4 * SR)


def test_margin_is_clamped() -> None:
    wave, _, _ = _padded_utterance(lead=0.05, tail=0.05)
    assert trim_bounds(wave, margin_s=0.5) == (0, wave.size)


def test_top_db_decides_what_counts_as_silence() -> None:
    rng = np.random.default_rng(1)
    quiet = voiced_burst(0.5, 150.0, 0.0, 0.005, rng)  # about 40 dB below the loud part
    loud = voiced_burst(1.0, 150.0, 0.0, 0.5, rng)
    wave = np.concatenate([quiet, loud, np.zeros(SR // 2, np.float32)])
    lo_35, _ = trim_bounds(wave, top_db=35.0, margin_s=0.0)
    lo_60, _ = trim_bounds(wave, top_db=60.0, margin_s=0.0)
    assert lo_35 >= int(0.45 * SR)
    assert lo_60 <= int(0.05 * SR)


@pytest.mark.parametrize("method", TRIM_METHODS)
def test_silence_and_short_inputs_return_the_whole_range(method: str) -> None:
    for wave in (np.zeros(SR, np.float32), np.zeros(100, np.float32), np.full(50, 0.3, np.float32)):
        assert trim_bounds(wave, method=method) == (0, wave.size)
        assert trim_silence(wave, method=method).size == wave.size
    assert trim_bounds(np.zeros(0, np.float32), method=method) == (0, 0)


def test_none_returns_everything() -> None:
    wave, _, _ = _padded_utterance()
    assert trim_bounds(wave, method="none") == (0, wave.size)
    assert trim_silence(wave, method="none").size == wave.size


def test_never_empty_for_a_lone_click() -> None:
    wave = np.zeros(SR, np.float32)
    wave[SR // 2] = 0.9
    for method in TRIM_METHODS:
        lo, hi = trim_bounds(wave, method=method, margin_s=0.0)
        assert 0 <= lo < hi <= wave.size


def test_energy_matches_a_frame_by_frame_reference() -> None:
    rng = np.random.default_rng(7)
    envelope = np.concatenate(
        [np.full(3000, 1e-4), np.linspace(0.01, 1, 9000), np.full(7000, 1e-3)]
    )
    wave = (envelope * rng.standard_normal(envelope.size)).astype(np.float32)
    frame, hop, top_db = 400, 160, 30.0
    padded = np.concatenate([wave, np.zeros(frame, np.float32)]).astype(np.float64)
    starts = list(range(0, wave.size - frame + hop, hop))
    db = np.array([10 * np.log10(np.mean(padded[s : s + frame] ** 2) + 1e-20) for s in starts])
    keep = np.flatnonzero(db > db.max() - top_db)
    expected = (starts[keep[0]], min(wave.size, starts[keep[-1]] + frame))
    assert trim_bounds(wave, top_db=top_db, margin_s=0.0) == expected


def test_validation() -> None:
    wave = np.zeros(SR, np.float32)
    with pytest.raises(ValueError, match="energy, vad, none"):
        trim_bounds(wave, method="rms")
    with pytest.raises(ValueError, match="energy, vad, none"):
        trim_silence(wave, method="librosa")
    with pytest.raises(ValueError, match="shape"):
        trim_bounds(np.zeros((2, SR), np.float32))
    with pytest.raises(ValueError, match="sample rate"):
        trim_bounds(wave, method="vad", sample_rate=44100)
    with pytest.raises(ValueError, match="top_db"):
        trim_bounds(wave, top_db=0.0)
