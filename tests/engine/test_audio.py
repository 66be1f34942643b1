"""decode_audio / probe_duration against real encoded files made here with PyAV."""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from devsupport.synth import SR, write_wav
from recognition.engine.audio import DEFAULT_MAX_SECONDS, AudioError, decode_audio, probe_duration

TONE_HZ = 600.0
TONE_AMP = 0.5


def _tone(rate: int, channels: int, seconds: float, freq: float = TONE_HZ) -> np.ndarray:
    """Same sine on every channel. Shape: (channels, samples), float32."""
    t = np.arange(int(round(rate * seconds))) / rate
    x = (TONE_AMP * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[None, :], channels, axis=0)


def _require_encoder(codec: str) -> None:
    try:
        av.codec.Codec(codec, "w")
    except Exception:  # any failure means "this build has no such encoder"
        pytest.skip(f"this PyAV/FFmpeg build has no {codec!r} encoder")


def _encode(
    fmt: str,
    codec: str,
    *,
    rate: int,
    channels: int,
    seconds: float = 1.0,
    signal: np.ndarray | None = None,
    options: dict[str, str] | None = None,
    format_options: dict[str, str] | None = None,
) -> bytes:
    """Encode ``signal`` (channels, samples) or a test tone into ``fmt`` with ``codec``.

    PyAV converts our float planar frames to the encoder's sample format and frame size.
    """
    _require_encoder(codec)
    x = _tone(rate, channels, seconds) if signal is None else signal.astype(np.float32)
    layout = "mono" if channels == 1 else "stereo"
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt, options=format_options or {}) as out:
        stream = out.add_stream(codec, rate=rate, options=options or {})
        stream.layout = layout
        step = 1024
        for i in range(0, x.shape[1], step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[:, i : i + step]), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _dominant_hz(y: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.argmax(spectrum) * rate / y.size)


def _float_wav(samples: np.ndarray, rate: int, channels: int) -> bytes:
    """IEEE-float WAV written by hand, so NaN and inf reach the file unchanged."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * channels * 4, channels * 4, 32)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


# (container, encoder, input rate, channels, extra encoder options)
CASES = [
    ("wav", "pcm_s16le", 8000, 1, None),
    ("wav", "pcm_s24le", 22050, 2, None),
    ("wav", "pcm_s32le", 44100, 1, None),
    ("wav", "pcm_f32le", 48000, 2, None),
    ("wav", "pcm_f32le", 16000, 1, None),  # already the target format: PyAV passthrough path
    ("flac", "flac", 44100, 2, None),
    ("flac", "flac", 8000, 1, None),
    ("mp3", "libmp3lame", 44100, 2, None),
    ("mp3", "libmp3lame", 22050, 1, None),
    # No libvorbis in the PyAV wheel; FFmpeg's native encoder is experimental and stereo only.
    ("ogg", "vorbis", 48000, 2, {"strict": "experimental"}),
    ("ogg", "libopus", 48000, 1, None),
    ("webm", "libopus", 48000, 2, None),
    ("mp4", "aac", 44100, 2, None),
    ("mp4", "aac", 22050, 1, None),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]}ch")
def encoded(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    fmt, codec, rate, channels, options = request.param
    return fmt, _encode(fmt, codec, rate=rate, channels=channels, options=options)


def _check_tone(y: np.ndarray, fmt: str) -> None:
    assert y.dtype == np.float32 and y.ndim == 1
    # Codec priming and frame padding add a few tens of milliseconds at most.
    assert abs(y.size / SR - 1.0) < 0.06, y.size / SR
    assert abs(_dominant_hz(y) - TONE_HZ) < 3.0
    # Mono and "same signal on both channels" must come out at the same level:
    # the downmix is a mean, not FFmpeg's default (L+R)/sqrt(2).
    core = y[SR // 10 : -SR // 10]
    rms = float(np.sqrt(np.mean(core**2)))
    tolerance = 0.02 if fmt in {"wav", "flac"} else 0.06
    assert abs(rms - TONE_AMP / np.sqrt(2)) < tolerance, rms
    assert np.abs(y).max() <= 1.0


def test_decodes_from_bytes(encoded: tuple[str, bytes]) -> None:
    fmt, data = encoded
    _check_tone(decode_audio(data), fmt)


def test_decodes_from_path_and_file_object(encoded: tuple[str, bytes], tmp_path: Path) -> None:
    fmt, data = encoded
    path = tmp_path / f"clip.{fmt}"
    path.write_bytes(data)
    from_path = decode_audio(path)
    _check_tone(from_path, fmt)
    assert np.array_equal(from_path, decode_audio(str(path)))
    with path.open("rb") as handle:
        assert np.array_equal(from_path, decode_audio(handle))
    assert np.array_equal(from_path, decode_audio(memoryview(data)))


def test_other_target_rate() -> None:
    data = _encode("flac", "flac", rate=44100, channels=2)
    y = decode_audio(data, sample_rate=8000)
    assert abs(y.size - 8000) <= 8
    assert abs(_dominant_hz(y, 8000) - TONE_HZ) < 3.0


def test_multichannel_downmix_stays_in_range() -> None:
    # A full-scale 5.1 file: FFmpeg's default matrix would sum to ~1.7.
    full = np.ones((6, 4800), np.float32) * 0.99
    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as out:
        stream = out.add_stream("pcm_f32le", rate=48000)
        stream.layout = "5.1"
        frame = av.AudioFrame.from_ndarray(full, format="fltp", layout="5.1")
        frame.sample_rate = 48000
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    y = decode_audio(buf.getvalue())
    assert y.size == 1600
    assert np.abs(y).max() <= 1.0


def test_format_change_mid_stream_is_decoded() -> None:
    # Two MP3s glued together (the second one at another rate, with its own ID3 tag in
    # the middle): PyAV's resampler refuses the rate change, the ID3 bytes are one bad packet.
    first = _encode("mp3", "libmp3lame", rate=44100, channels=1)
    second = _encode("mp3", "libmp3lame", rate=22050, channels=2)
    y = decode_audio(first + second)
    assert abs(y.size / SR - 2.0) < 0.15
    # Raw AAC (ADTS) changing mono -> stereo.
    aac = _encode("adts", "aac", rate=44100, channels=1) + _encode(
        "adts", "aac", rate=44100, channels=2
    )
    y = decode_audio(aac)
    assert abs(y.size / SR - 2.0) < 0.15


def test_bitrate_guess_is_not_taken_as_length(tmp_path: Path) -> None:
    # ADTS AAC has no length header; FFmpeg guesses one from the first frames' bit rate,
    # which for quiet-then-loud audio is many times the real length. That guess must not
    # make the file "truncated" or "too long".
    rng = np.random.default_rng(0)
    rate = 22050
    signal = np.concatenate([np.zeros(rate * 2), 0.5 * rng.standard_normal(rate * 2)])[None, :]
    data = _encode("adts", "aac", rate=rate, channels=1, signal=signal)
    y = decode_audio(data, max_seconds=10.0)
    assert abs(y.size / SR - 4.0) < 0.1
    path = tmp_path / "clip.aac"
    path.write_bytes(data)
    assert abs(probe_duration(path) - 4.0) < 0.1


def test_probe_duration(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", np.zeros(int(1.25 * SR), np.float32))
    assert probe_duration(wav) == pytest.approx(1.25, abs=1e-3)
    mp3 = tmp_path / "a.mp3"
    mp3.write_bytes(_encode("mp3", "libmp3lame", rate=44100, channels=1, seconds=2.0))
    assert probe_duration(mp3) == pytest.approx(2.0, abs=0.08)
    with pytest.raises(AudioError, match="No such audio file"):
        probe_duration(tmp_path / "missing.wav")


# ----------------------------------------------------------------------------- errors


def test_random_bytes() -> None:
    with pytest.raises(AudioError):
        decode_audio(np.random.default_rng(0).bytes(4096))


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("These are not the samples you are looking for.\n" * 20)
    with pytest.raises(AudioError, match="(?i)not a supported audio format|no audio stream"):
        decode_audio(path)


def test_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="empty"):
        decode_audio(b"")
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioError, match="empty"):
        decode_audio(path)
    with pytest.raises(AudioError):
        decode_audio(io.BytesIO())


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="No such audio file"):
        decode_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="Not a file"):
        decode_audio(tmp_path)


def test_wrong_argument_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="binary file object"):
        decode_audio(io.StringIO("RIFF"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        decode_audio(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fmt", "codec", "must_raise"),
    [("wav", "pcm_s16le", True), ("flac", "flac", True), ("mp3", "libmp3lame", False)],
)
def test_truncated(fmt: str, codec: str, must_raise: bool, tmp_path: Path) -> None:
    data = _encode(fmt, codec, rate=44100, channels=1, seconds=2.0)
    half = data[: len(data) // 2]
    if must_raise:  # the header states the length, so the missing half is detectable
        with pytest.raises(AudioError, match="(?i)truncated|corrupt"):
            decode_audio(half)
        path = tmp_path / f"half.{fmt}"
        path.write_bytes(half)
        with pytest.raises(AudioError, match="(?i)truncated|corrupt"):
            decode_audio(path)
        with path.open("rb") as handle, pytest.raises(AudioError, match="(?i)truncated|corrupt"):
            decode_audio(handle)
        return
    try:
        y = decode_audio(half)
    except AudioError as exc:
        assert "truncated" in str(exc) or "corrupt" in str(exc)
    else:  # MP3 has no trusted length: whatever survived is returned
        assert 0.5 < y.size / SR < 1.5


@pytest.mark.parametrize("placeholder", [0, 0xFFFFFFFF])
def test_streaming_wav_placeholder_sizes(placeholder: int) -> None:
    # Recorders that never finalise the header leave 0 or 0xFFFFFFFF as sizes: not truncation.
    wave_bytes = bytearray(_float_wav(_tone(SR, 1, 1.0).T.copy(), SR, 1))
    data_at = wave_bytes.index(b"data")
    wave_bytes[4:8] = struct.pack("<I", placeholder)
    wave_bytes[data_at + 4 : data_at + 8] = struct.pack("<I", placeholder)
    y = decode_audio(bytes(wave_bytes))
    assert abs(y.size - SR) <= 1


def test_container_without_audio() -> None:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(
                np.full((32, 32, 3), 60 * i, np.uint8), format="rgb24"
            )
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(AudioError, match="no audio stream"):
        decode_audio(buf.getvalue())


def test_image_bytes() -> None:
    png = av.CodecContext.create("png", "w")
    png.width, png.height, png.pix_fmt = 8, 8, "rgb24"
    packets = png.encode(av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24"))
    data = b"".join(bytes(p) for p in packets)
    assert data.startswith(b"\x89PNG")
    with pytest.raises(AudioError, match="(?i)no audio stream|not a supported audio format"):
        decode_audio(data)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2)])
def test_non_finite_float_wav(bad: float, rate: int, channels: int) -> None:
    samples = _tone(rate, channels, 0.5).T.copy()  # interleaved (samples, channels)
    samples[rate // 4, 0] = bad
    with pytest.raises(AudioError, match="non-finite"):
        decode_audio(_float_wav(samples, rate, channels))


def test_over_max_seconds(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", np.zeros(3 * SR, np.float32))
    with pytest.raises(AudioError, match="limit"):
        decode_audio(path, max_seconds=1.0)
    assert decode_audio(path, max_seconds=3.0).size == 3 * SR
    assert decode_audio(path, max_seconds=None).size == 3 * SR
    assert DEFAULT_MAX_SECONDS >= 60
    # No trusted length in the header: the limit stops the decoder itself.
    mp3 = _encode(
        "mp3", "libmp3lame", rate=22050, channels=1, seconds=3.0, format_options={"write_xing": "0"}
    )
    with pytest.raises(AudioError, match="limit"):
        decode_audio(mp3, max_seconds=1.0)


@pytest.mark.parametrize(
    ("fmt", "codec", "rate", "channels"),
    [
        ("wav", "pcm_s16le", 16000, 1),
        ("flac", "flac", 44100, 2),
        ("webm", "libopus", 48000, 2),
        ("mp3", "libmp3lame", 44100, 1),
    ],
)
def test_fuzzed_inputs_raise_only_audio_error(
    fmt: str, codec: str, rate: int, channels: int
) -> None:
    data = _encode(fmt, codec, rate=rate, channels=channels, seconds=0.5)
    rng = np.random.default_rng(len(data))
    for trial in range(40):
        mutated = bytearray(data)
        kind = trial % 4
        if kind == 0:  # scattered byte flips anywhere
            for _ in range(int(rng.integers(1, 20))):
                mutated[rng.integers(len(mutated))] = int(rng.integers(256))
        elif kind == 1:  # damage the header only
            for _ in range(int(rng.integers(1, 5))):
                mutated[rng.integers(min(64, len(mutated)))] = int(rng.integers(256))
        elif kind == 2:  # cut anywhere
            mutated = mutated[: int(rng.integers(1, len(mutated)))]
        else:  # overwrite a run with garbage
            start = int(rng.integers(len(mutated)))
            mutated[start : start + int(rng.integers(1, 400))] = rng.bytes(
                int(rng.integers(1, 400))
            )
        try:
            y = decode_audio(bytes(mutated))
        except AudioError as exc:
            assert str(exc)
        else:
            assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0
            assert np.all(np.isfinite(y))


@pytest.mark.parametrize("fmt,dtype,peak", [("s16", np.int16, 32767), ("s16p", np.int16, 32767), ("s32", np.int32, 2**31 - 1),
                                            ("flt", np.float32, 0.9), ("fltp", np.float32, 0.9)])
def test_mono_frames_at_the_target_rate_skip_the_resampler_bit_exactly(fmt, dtype, peak):
    import av

    from recognition.engine.audio import _to_mono

    data = (np.random.default_rng(0).uniform(-1, 1, (1, 1024)) * peak).astype(dtype)

    def frames(rate):
        out = []
        for _ in range(3):
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            frame.sample_rate = rate
            out.append(frame)
        return out

    resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
    expected = [o.to_ndarray().reshape(-1) for f in frames(16000) for o in resampler.resample(f)]
    expected += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    np.testing.assert_array_equal(np.concatenate(list(_to_mono(frames(16000), 16000))), np.concatenate(expected))
    # A change of rate mid-stream goes through the resampler and back, losing nothing.
    mixed = np.concatenate(list(_to_mono(frames(16000) + frames(8000) + frames(16000), 16000)))
    assert abs(mixed.size - (3 * 1024 + 3 * 2048 + 3 * 1024)) <= 64


def test_wav_with_a_large_chunk_before_fmt_still_decodes(tmp_path):
    """A WAV gets a 4 KB probe: metadata chunks ahead of 'fmt ' must not defeat it."""
    wave = (0.3 * np.sin(np.linspace(0, 400, 16000))).astype(np.float32)
    pcm = (wave * 32767).astype("<i2").tobytes()
    junk = b"LIST" + (20000).to_bytes(4, "little") + b"INFO" + bytes(19996)
    fmt = b"fmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") \
        + (16000).to_bytes(4, "little") + (32000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    data = b"data" + len(pcm).to_bytes(4, "little") + pcm
    body = b"WAVE" + junk + fmt + data
    path = tmp_path / "meta.wav"
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    out = decode_audio(path)
    assert out.size == 16000
    np.testing.assert_allclose(out, wave, atol=1e-4)
