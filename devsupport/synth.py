"""Synthetic, labelled, speech-like audio for tests and benchmarks (no corpus needed).

Each class is a family of voiced tones whose pitch contour, loudness and syllable tempo
depend on the class, with per-utterance jitter and noise, so a small model can learn
them quickly while every file is still different.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 16000

# (base f0 Hz, f0 slope over a syllable, amplitude, syllables per second)
CLASS_STYLES = {
    "neutral": (120.0, 0.0, 0.25, 3.0),
    "happy": (260.0, 80.0, 0.45, 5.0),
    "sad": (100.0, -30.0, 0.12, 2.0),
    "angry": (200.0, -60.0, 0.7, 6.0),
    "fearful": (320.0, 40.0, 0.3, 7.0),
}


def voiced_burst(duration: float, f0: float, slope: float, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A harmonic tone with a pitch glide and a smooth envelope. Shape: (samples,)."""
    n = max(1, int(duration * SR))
    t = np.arange(n) / SR
    freq = f0 + slope * (t / max(duration, 1e-3)) + rng.normal(0, 2.0)
    phase = 2 * np.pi * np.cumsum(freq) / SR
    tone = sum((0.6**h) * np.sin((h + 1) * phase) for h in range(5))
    envelope = np.sin(np.pi * np.linspace(0, 1, n)) ** 0.5
    return (amplitude * envelope * tone / 2.0).astype(np.float32)


def speech_like(label: str, duration: float = 1.5, *, seed: int = 0, lead_silence: float = 0.2) -> np.ndarray:
    """A sequence of class-styled syllables between short gaps, with leading and trailing silence."""
    rng = np.random.default_rng(seed)
    f0, slope, amp, rate = CLASS_STYLES[label]
    f0 *= rng.uniform(0.93, 1.07)
    amp *= rng.uniform(0.85, 1.15)
    pieces = [np.zeros(int(lead_silence * SR), np.float32)]
    elapsed = 0.0
    while elapsed < duration:
        syl = rng.uniform(0.6, 1.0) / rate
        gap = rng.uniform(0.2, 0.5) / rate
        pieces.append(voiced_burst(syl, f0 * rng.uniform(0.95, 1.05), slope, amp, rng))
        pieces.append(np.zeros(int(gap * SR), np.float32))
        elapsed += syl + gap
    pieces.append(np.zeros(int(lead_silence * SR), np.float32))
    wave = np.concatenate(pieces)
    wave += rng.normal(0, 0.003, wave.size).astype(np.float32)
    return np.clip(wave, -1, 1).astype(np.float32)


def speech_silence_speech(label: str = "angry", *, seed: int = 0, speech: float = 1.0, silence: float = 1.0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Speech, a pause, speech again. Returns the waveform and the true (start, end) of each burst in seconds."""
    rng = np.random.default_rng(seed)
    f0, slope, amp, _ = CLASS_STYLES[label]
    lead = np.zeros(int(0.5 * SR), np.float32)
    a = voiced_burst(speech, f0, slope, max(amp, 0.3), rng)
    gap = np.zeros(int(silence * SR), np.float32)
    b = voiced_burst(speech, f0, slope, max(amp, 0.3), rng)
    wave = np.concatenate([lead, a, gap, b, lead])
    wave += rng.normal(0, 0.002, wave.size).astype(np.float32)
    first = (0.5, 0.5 + speech)
    second = (0.5 + speech + silence, 0.5 + 2 * speech + silence)
    return wave.astype(np.float32), [first, second]


def continuous_voice(seconds: float, dips: dict[float, float] | None = None) -> np.ndarray:
    """A voiced tone with no pause for ``seconds`` after 0.3 s of silence, then 0.5 s of silence;
    each ``{time: depth}`` of ``dips`` lowers the loudness by that factor for 60 ms around that
    time (too short for a pause). Shape: (samples,)."""
    rng = np.random.default_rng(3)
    voice = voiced_burst(seconds, 180.0, 0.0, 0.4, rng)
    envelope = np.ones(voice.size, np.float32)
    envelope[: int(0.05 * SR)] = envelope[-int(0.05 * SR) :] = 0.3  # the burst's own fade is slow: keep it loud
    for at, depth in (dips or {}).items():
        middle = int((at - 0.3) * SR)
        envelope[middle - int(0.03 * SR) : middle + int(0.03 * SR)] = depth
    wave = np.concatenate([np.zeros(int(0.3 * SR), np.float32), voice * envelope, np.zeros(int(0.5 * SR), np.float32)])
    return wave + rng.normal(0, 0.002, wave.size).astype(np.float32)


def write_wav(path: Path, waveform: np.ndarray, sample_rate: int = SR) -> Path:
    """Write 16-bit PCM mono WAV with the standard library (no codec involved)."""
    import wave

    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(waveform, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def write_ogg(path: Path, waveform: np.ndarray, sample_rate: int = SR) -> Path:
    """Write mono Ogg/Opus at 48 kHz with PyAV (as nEMO ships its audio). Shape: (samples,)."""
    from fractions import Fraction

    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.ascontiguousarray(np.clip(waveform, -1, 1).astype(np.float32)[None, :])
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = sample_rate, 0, Fraction(1, sample_rate)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


def make_folder_corpus(root: Path, labels: list[str], *, speakers: int = 4, per_class: int = 6, seed: int = 0) -> Path:
    """A RAVDESS-free "one folder per emotion" corpus with speaker ids in the file names:
    ``root/<label>/spk<S>_<label>_<i>.wav``."""
    rng = np.random.default_rng(seed)
    for label in labels:
        for s in range(speakers):
            for i in range(per_class):
                wave = speech_like(label, duration=float(rng.uniform(0.8, 1.4)), seed=int(rng.integers(1 << 30)))
                write_wav(root / label / f"spk{s}_{label}_{i}.wav", wave)
    return root
