"""webrtcvad segmentation: batch and streaming agree, segments sit where the speech is."""

from __future__ import annotations

import numpy as np
import pytest

from devsupport.synth import SR, continuous_voice, speech_silence_speech, voiced_burst
from recognition.engine.vad import Segment, StreamingVad, VadConfig, segment_speech

PAD = VadConfig().padding_ms / 1000


def _stream(
    waveform: np.ndarray, chunk_sizes: list[int] | int, config: VadConfig | None = None
) -> list[Segment]:
    vad = StreamingVad(config)
    sizes = iter(chunk_sizes) if isinstance(chunk_sizes, list) else None
    segments: list[Segment] = []
    i = 0
    while i < waveform.size:
        step = next(sizes) if sizes is not None else chunk_sizes
        segments += vad.push(waveform[i : i + step])
        i += step
    assert vad.position == pytest.approx(waveform.size / (config or VadConfig()).sample_rate)
    return segments + vad.flush()


@pytest.mark.parametrize("label", ["angry", "sad", "happy"])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_finds_both_bursts(label: str, frame_ms: int) -> None:
    waveform, truth = speech_silence_speech(label, seed=3)
    segments = segment_speech(waveform, VadConfig(frame_ms=frame_ms))
    assert len(segments) == 2, segments
    for seg, (start, end) in zip(segments, truth, strict=True):
        assert seg.start == pytest.approx(start - PAD, abs=0.15)
        assert seg.end == pytest.approx(end + PAD, abs=0.15)


def test_streaming_equals_batch_for_any_chunking() -> None:
    waveform, _ = speech_silence_speech("angry", seed=1)
    batch = segment_speech(waveform)
    assert len(batch) == 2
    for size in (1, 333, 4000, 480, waveform.size):
        assert _stream(waveform, size) == batch, size
    rng = np.random.default_rng(0)
    ragged = [int(s) for s in rng.integers(0, 6000, size=waveform.size // 100)]  # zeros included
    assert _stream(waveform, ragged) == batch


def test_segments_are_reported_once_the_pause_is_long_enough() -> None:
    waveform, truth = speech_silence_speech("angry", seed=2, silence=1.5)
    config = VadConfig()
    vad = StreamingVad(config)
    reported: list[tuple[Segment, float]] = []
    chunk = 4000  # 250 ms, what the browser sends
    for i in range(0, waveform.size, chunk):
        reported += [(seg, vad.position) for seg in vad.push(waveform[i : i + chunk])]
    assert len(reported) == 2  # both closed by trailing silence before flush()
    assert vad.flush() == []
    first, seen = reported[0]
    assert first.end <= seen
    # Known no later than min_silence (+ webrtcvad hangover, a frame, a chunk) after it ends.
    assert seen <= truth[0][1] + config.min_silence_ms / 1000 + 0.15 + 0.03 + chunk / SR
    assert seen < truth[1][0]  # before the second burst even starts


@pytest.mark.parametrize("level", [0.0, 0.001, 0.004])
def test_silence_and_faint_noise_give_nothing(level: float) -> None:
    rng = np.random.default_rng(0)
    waveform = (level * rng.standard_normal(3 * SR)).astype(np.float32)
    assert segment_speech(waveform) == []
    assert _stream(waveform, 333) == []


def test_short_pause_joins_segments_when_min_silence_is_longer() -> None:
    waveform, truth = speech_silence_speech("angry", seed=0, silence=1.0)
    assert len(segment_speech(waveform, VadConfig(min_silence_ms=300))) == 2
    joined = segment_speech(waveform, VadConfig(min_silence_ms=1500))
    assert len(joined) == 1
    assert joined[0].start == pytest.approx(truth[0][0] - PAD, abs=0.15)
    assert joined[0].end == pytest.approx(truth[1][1] + PAD, abs=0.15)


def test_short_bursts_are_dropped() -> None:
    rng = np.random.default_rng(0)
    blip = voiced_burst(0.15, 200.0, 0.0, 0.5, rng)
    waveform = np.concatenate([np.zeros(SR, np.float32), blip, np.zeros(SR, np.float32)])
    assert segment_speech(waveform, VadConfig(min_speech_ms=400)) == []
    kept = segment_speech(waveform, VadConfig(min_speech_ms=60))
    assert len(kept) == 1 and kept[0].start == pytest.approx(1.0 - PAD, abs=0.1)


def test_max_segment_cuts_long_speech() -> None:
    waveform, truth = speech_silence_speech("angry", seed=0, speech=5.0, silence=1.0)
    config = VadConfig(max_segment_s=2.0)
    segments = segment_speech(waveform, config)
    assert len(segments) >= 6
    assert all(seg.duration <= config.max_segment_s + 2 * PAD + 1e-6 for seg in segments)
    # The pieces of one utterance follow each other without gap or overlap.
    first_run = [seg for seg in segments if seg.start < truth[0][1]]
    assert 3 <= len(first_run) <= 5
    # Each cut falls in the second half of the open piece: no piece but the last is shorter.
    assert all(seg.duration >= config.max_segment_s / 2 - 1e-6 for seg in first_run[:-1])
    for a, b in zip(first_run, first_run[1:], strict=False):
        assert a.end == b.start
    assert first_run[0].start == pytest.approx(truth[0][0] - PAD, abs=0.15)
    assert first_run[-1].end == pytest.approx(truth[0][1] + PAD, abs=0.15)
    assert _stream(waveform, 4000, config) == segments
    # Streaming gets the first piece while the speaker is still talking.
    vad = StreamingVad(config)
    early = vad.push(waveform[: int(3.0 * SR)])
    assert len(early) == 1 and early[0].end <= 3.0


def test_continuous_speech_longer_than_the_maximum_gives_several_segments() -> None:
    config = VadConfig()
    assert config.max_segment_s == pytest.approx(4.0)  # results keep coming while someone talks
    wave = continuous_voice(11.0)
    segments = segment_speech(wave)
    assert len(segments) >= 3
    assert all(seg.duration <= config.max_segment_s + PAD + 1e-6 for seg in segments)
    for a, b in zip(segments, segments[1:], strict=False):
        assert a.end == b.start  # one utterance, cut without gap or overlap
    assert segments[0].start == pytest.approx(0.3 - PAD, abs=0.1)
    assert segments[-1].end == pytest.approx(11.3 + PAD, abs=0.15)
    # Streaming knows the first piece while the voice goes on.
    vad = StreamingVad()
    assert len(vad.push(wave[: int(4.5 * SR)])) == 1
    assert vad.open_start == segments[1].start


def test_a_long_segment_is_cut_at_its_quietest_point() -> None:
    # Dips in the second half of the first 4 s (2.3 s after the start and later) compete;
    # the deepest wins. A deeper dip in the first half is not a candidate.
    wave = continuous_voice(7.0, {1.0: 0.01, 2.9: 0.2, 3.3: 0.05, 3.9: 0.3})
    first, second = segment_speech(wave)[:2]
    assert first.end == second.start == pytest.approx(3.3, abs=0.06)
    assert _stream(wave, 1234) == segment_speech(wave)


def test_open_start_follows_the_open_segment() -> None:
    wave, truth = speech_silence_speech("angry", seed=0)
    vad = StreamingVad()
    assert vad.open_start is None
    vad.push(wave[: int((truth[0][0] + 0.5) * SR)])
    assert vad.open_start == pytest.approx(truth[0][0] - PAD, abs=0.1)
    done = vad.push(wave[int((truth[0][0] + 0.5) * SR) : int((truth[1][0] - 0.1) * SR)])
    assert len(done) == 1 and vad.open_start is None


def test_flush_closes_an_open_segment() -> None:
    waveform, truth = speech_silence_speech("angry", seed=0)
    cut = int((truth[1][0] + 0.6) * SR)  # stop in the middle of the second burst
    vad = StreamingVad()
    pushed = vad.push(waveform[:cut])
    assert len(pushed) == 1
    closed = vad.flush()
    assert len(closed) == 1
    assert closed[0].start == pytest.approx(truth[1][0] - PAD, abs=0.15)
    assert truth[1][0] + 0.4 < closed[0].end <= cut / SR  # padding stops at the stream end
    assert vad.flush() == []
    with pytest.raises(RuntimeError):
        vad.push(waveform[:100])


def test_other_sample_rate() -> None:
    waveform, truth = speech_silence_speech("angry", seed=0)
    upsampled = np.repeat(waveform, 3)  # crude 48 kHz copy: the voiced band survives
    segments = segment_speech(upsampled, VadConfig(sample_rate=48000))
    assert len(segments) == 2
    assert segments[0].start == pytest.approx(truth[0][0] - PAD, abs=0.15)


def test_push_validates_input() -> None:
    vad = StreamingVad()
    assert vad.push(np.zeros(0, np.float32)) == []
    with pytest.raises(ValueError, match="shape"):
        vad.push(np.zeros((100, 2), np.float32))
    with pytest.raises(ValueError, match="float"):
        vad.push(np.zeros(100, np.int16))
    # Non-finite samples do not crash the detector.
    assert vad.push(np.full(1000, np.nan, np.float32)) == []
    assert vad.position == pytest.approx(1000 / SR)  # rejected pushes consumed nothing


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frame_ms": 25},
        {"aggressiveness": 4},
        {"aggressiveness": -1},
        {"sample_rate": 44100},
        {"padding_ms": -10},
        {"min_speech_ms": -1},
        {"min_silence_ms": 0},
        {"max_segment_s": 0.0},
    ],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        VadConfig(**kwargs)


def test_config_round_trip() -> None:
    config = VadConfig(frame_ms=20, aggressiveness=3, max_segment_s=8.0)
    assert VadConfig.from_dict(config.to_dict()) == config
    assert VadConfig.from_dict({}) == VadConfig()
    with pytest.raises(ValueError, match="unknown"):
        VadConfig.from_dict({"frame_ms": 30, "hop_ms": 10})


def test_segment() -> None:
    seg = Segment(0.5, 1.25)
    assert seg.duration == pytest.approx(0.75)
    waveform = np.arange(2 * SR, dtype=np.float32)
    piece = seg.slice(waveform)
    assert piece.size == int(0.75 * SR) and piece[0] == 0.5 * SR
    assert seg.slice(waveform, sample_rate=8000).size == 6000
    with pytest.raises(ValueError):
        Segment(1.0, 0.5)
    with pytest.raises(ValueError):
        Segment(-0.1, 0.5)
