"""Decode any audio container the browsers and corpora use to float32 mono at 16 kHz.

PyAV (FFmpeg) demuxes and decodes; libswresample downmixes and resamples in one step.
Every failure surfaces as :class:`AudioError` with a sentence a user can act on.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from . import SAMPLE_RATE
from .wav_head import AudioSource, peek_head, wav_promised_seconds

__all__ = [
    "ALLOWED_DEMUXERS", "AudioError", "DEFAULT_MAX_SECONDS", "DEFAULT_MIN_SECONDS", "MAX_SAMPLE_MAGNITUDE",
    "UNSUPPORTED_FORMAT", "decode_audio", "native_sample_rate", "open_input", "probe_duration",
]

DEFAULT_MAX_SECONDS = 600.0
# Shorter audio holds too few analysis frames for any emotion: refused as "too short".
DEFAULT_MIN_SECONDS = 0.1

# FFmpeg demuxers (by name) that the browsers' recorders and the corpora need: WAV (and
# Wave64), FLAC, MP3, Ogg (Vorbis, Opus), Matroska/WebM, MP4/M4A/MOV, raw AAC (ADTS), AIFF, CAF.
ALLOWED_DEMUXERS = frozenset(
    {"wav", "w64", "flac", "mp3", "ogg", "matroska", "webm", "mov", "mp4", "m4a", "aac", "aiff", "caf"}
)
_FORMAT_WHITELIST = ",".join(sorted(ALLOWED_DEMUXERS))
UNSUPPORTED_FORMAT = (
    "This is not a supported audio format: send WAV, FLAC, MP3, Ogg (Vorbis or Opus), WebM, "
    "MP4/M4A, AAC, AIFF or CAF."
)

# Decoded samples lie within [-1, 1] (integer formats cannot leave it; float formats may go a
# little over). Values this far out are no recording: their squares overflow the features'
# float32 arithmetic into infinity and NaN, so such audio is refused, in files and streams alike.
MAX_SAMPLE_MAGNITUDE = 64.0

# Containers whose header states the exact length (sample counts, granule positions,
# sample tables). For raw MP3/AAC/... FFmpeg guesses the length from the first frames'
# bit rate, which is wildly off for VBR audio that starts quietly, so those guesses must
# neither reject a file as "too long" nor as "truncated".
_EXACT_DURATION_FORMATS = frozenset(
    {"wav", "w64", "flac", "ogg", "mov", "mp4", "m4a", "matroska", "webm", "aiff", "caf"}
)

# Everything FFmpeg or the Python side of PyAV raises for bad input data. AudioError is
# itself a ValueError, so callers re-raise it before reaching these handlers.
_DECODE_ERRORS = (av.FFmpegError, ValueError, OSError, EOFError, MemoryError)


# A glitch in one packet (an ID3 tag between concatenated MP3s, a bit error) costs a
# few milliseconds of audio; FFmpeg's own command line skips such packets too. More
# than this share of undecodable packets means the file is broken, not glitched.
_MAX_BAD_PACKET_SHARE = 0.02
_MIN_BAD_PACKETS_ALLOWED = 2


class AudioError(ValueError):
    """The input is not usable audio (not audio, empty, corrupt, too long, ...)."""


def open_input(
    fileobj: BinaryIO, *, format: str | None = None, options: dict[str, str] | None = None
) -> av.container.InputContainer:
    """Open a binary file object for demuxing with one of :data:`ALLOWED_DEMUXERS` only.

    FFmpeg picks a demuxer from the content, and some (concat, HLS, SDP, image2, ...) read
    other files or URLs named inside the data: an upload could make the server read its own
    files. Only the allowed demuxers may be picked, no demuxer may open any further input
    (the protocol allow-list names no protocol), and a file object is always what is read,
    never a name FFmpeg could take for a URL.

    Raises:
        AudioError: "not a supported audio format" for anything else; it never repeats
            FFmpeg's text, which can name paths.
    """
    restricted = {**(options or {}), "format_whitelist": _FORMAT_WHITELIST, "protocol_whitelist": "none"}
    try:
        container = av.open(fileobj, mode="r", format=format, metadata_errors="ignore", options=restricted)
    except _DECODE_ERRORS as exc:
        raise AudioError(UNSUPPORTED_FORMAT) from exc
    if not set((container.format.name or "").split(",")) & ALLOWED_DEMUXERS:
        container.close()  # the whitelist above already refuses these: a second look costs nothing
        raise AudioError(UNSUPPORTED_FORMAT)
    return container


@contextmanager
def _open(source: AudioSource, head: bytes = b"") -> Iterator[av.container.InputContainer]:
    """Open ``source`` for demuxing; ``head`` (its first bytes, see :func:`_head`) picks the probe size."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError("The audio data is empty.")
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"No such audio file: {path}")
        if not path.is_file():
            raise AudioError(f"Not a file: {path}")
        if path.stat().st_size == 0:
            raise AudioError(f"The audio file is empty: {path.name}")
    elif isinstance(source, io.TextIOBase) or not hasattr(source, "read"):
        # A wrong argument type is the caller's bug, not bad user data.
        raise TypeError(
            f"decode_audio needs a path, bytes or a binary file object, not {type(source).__name__}"
        )
    with ExitStack() as stack:
        if isinstance(source, (str, os.PathLike)):
            try:
                source = stack.enter_context(open(source, "rb"))  # noqa: SIM115 — closed by the stack
            except OSError as exc:
                raise AudioError(f"The audio file cannot be read: {Path(source).name}") from exc
        # FFmpeg probes up to 5 MB by default, i.e. reads a whole short WAV twice; 64 KB holds
        # the stream parameters of every audio container we accept. A WAV's are all in its
        # header, and probing 64 KB of it decodes two seconds of PCM for nothing (most of a
        # short file's decode time), so a RIFF/WAVE source gets 4 KB.
        probesize = "4096" if head[:4] == b"RIFF" and head[8:12] == b"WAVE" else "65536"
        container = open_input(source, options={"probesize": probesize})
        try:
            yield container
        finally:
            container.close()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip() or type(exc).__name__


def _audio_stream(container: av.container.InputContainer) -> av.audio.AudioStream:
    if not container.streams.audio:
        raise AudioError("The file has no audio stream.")
    return container.streams.audio[0]


def _declared_seconds(
    container: av.container.InputContainer, stream: av.audio.AudioStream
) -> float | None:
    """Length stated by the container header, or None when it states none we can trust."""
    names = set((container.format.name or "").split(","))
    if not names & _EXACT_DURATION_FORMATS:
        return None
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def _decoded_frames(
    container: av.container.InputContainer, stream: av.audio.AudioStream
) -> Iterator[av.AudioFrame]:
    """Decode packet by packet, skipping the few that the decoder rejects as invalid.

    Raises:
        AudioError: more than ``max(2, 2 %)`` of the packets are undecodable.
    """
    packets = bad = 0
    last_error: BaseException | None = None
    for packet in container.demux(stream):
        packets += 1
        try:
            frames = packet.decode()  # the final, empty packet flushes the decoder
        except av.error.InvalidDataError as exc:
            bad += 1
            last_error = exc
            continue
        yield from frames
    if bad > max(_MIN_BAD_PACKETS_ALLOWED, _MAX_BAD_PACKET_SHARE * packets):
        raise AudioError(
            f"The audio data is corrupt: {bad} of {packets} packets could not be decoded "
            f"({_reason(last_error)})."
        )


# Mono sample formats at the target rate that need no resampler, with the scale FFmpeg's
# converter applies to reach float (planar and packed are the same for one channel).
_DIRECT_SCALES = {"flt": None, "fltp": None, "s16": 1.0 / 32768, "s16p": 1.0 / 32768, "s32": 1.0 / 2**31, "s32p": 1.0 / 2**31}


def _in_range(samples: np.ndarray) -> np.ndarray:
    """``samples`` itself, after checking that every value is finite and within the range.

    Raises:
        AudioError: a NaN, an infinity, or a value beyond ``MAX_SAMPLE_MAGNITUDE``.
    """
    if samples.size:
        low, high = float(samples.min()), float(samples.max())
        if not (-MAX_SAMPLE_MAGNITUDE <= low and high <= MAX_SAMPLE_MAGNITUDE):  # NaN fails both
            if not (np.isfinite(low) and np.isfinite(high)):
                raise AudioError("The audio contains non-finite samples (NaN or infinity).")
            raise AudioError(
                f"The audio's sample values are out of range (peak {max(-low, high):.3g}; recordings lie "
                "within ±1): this is not a usable recording."
            )
    return samples


def _to_mono(frames: Iterable[av.AudioFrame], sample_rate: int) -> Iterator[np.ndarray]:
    """Resampled, downmixed and range-checked chunks of ``frames`` (see :func:`_mono_chunks`).

    Raises:
        AudioError: a chunk holds a non-finite or out-of-range sample (:func:`_in_range`).
    """
    for chunk in _mono_chunks(frames, sample_rate):
        yield _in_range(chunk)


def _mono_chunks(frames: Iterable[av.AudioFrame], sample_rate: int) -> Iterable[np.ndarray]:
    """Resample and downmix decoded frames; yields float32 chunks of shape ``(n,)``.

    A stream may change rate or channel layout mid-way (concatenated MP3s, ADTS AAC);
    PyAV's resampler refuses such frames, so a fresh one is started at each change.
    Mono frames already at ``sample_rate`` are only scaled to float: the resampler would
    do the same, at a cost of a call per frame (most of a 16 kHz WAV's decode time).
    """
    resampler: av.AudioResampler | None = None
    signature: tuple | None = None
    for frame in frames:
        if frame.sample_rate == sample_rate and frame.layout.nb_channels == 1 and frame.format.name in _DIRECT_SCALES:
            if resampler is not None:  # what the resampler still holds comes first
                for out in resampler.resample(None):
                    yield out.to_ndarray().reshape(-1)
                resampler, signature = None, None
            scale = _DIRECT_SCALES[frame.format.name]
            samples = frame.to_ndarray().reshape(-1)
            yield samples.astype(np.float32) if scale is None else (samples * np.float32(scale)).astype(np.float32)
            continue
        current = (
            frame.format.name,
            frame.layout.name,
            frame.layout.nb_channels,
            frame.sample_rate,
        )
        if current != signature:
            if resampler is not None:
                for out in resampler.resample(None):
                    yield out.to_ndarray().reshape(-1)
            # rematrix_maxval=1 scales the downmix so it cannot exceed full scale: stereo
            # becomes the channel mean instead of FFmpeg's default (L+R)/sqrt(2).
            resampler = av.AudioResampler(
                format="flt", layout="mono", rate=sample_rate, options={"rematrix_maxval": "1.0"}
            )
            signature = current
        frame.pts = None  # let the resampler count samples; broken timestamps must not drop audio
        for out in resampler.resample(frame):
            yield out.to_ndarray().reshape(-1)
    if resampler is not None:
        for out in resampler.resample(None):
            yield out.to_ndarray().reshape(-1)


def decode_audio(
    source: AudioSource,
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    min_seconds: float = DEFAULT_MIN_SECONDS,
) -> np.ndarray:
    """Decode ``source`` (path, bytes or binary file object) to mono float32 at ``sample_rate``.

    Multichannel audio is downmixed without gain (stereo becomes the channel mean).

    Returns:
        ``np.ndarray`` of shape ``(samples,)``, dtype float32, within
        ``[-MAX_SAMPLE_MAGNITUDE, MAX_SAMPLE_MAGNITUDE]`` (nominally [-1, 1]), all finite.

    Raises:
        AudioError: not a supported format, empty, truncated or corrupt, no audio stream,
            non-finite or out-of-range samples, shorter than ``min_seconds`` or longer than
            ``max_seconds``.
        TypeError: ``source`` is not a path, bytes-like object or binary file object.
    """
    head = peek_head(source)
    promised = wav_promised_seconds(head)
    with _open(source, head) as container:
        stream = _audio_stream(container)
        declared = _declared_seconds(container, stream)
        if max_seconds is not None and declared is not None and declared > max_seconds + 1.0:
            raise AudioError(f"The audio is {declared:.0f} s long; the limit is {max_seconds:g} s.")
        # Stop decoding as soon as the limit is passed: headerless streams can be endless.
        limit = None if max_seconds is None else int(max_seconds * sample_rate) + sample_rate // 10
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for chunk in _to_mono(_decoded_frames(container, stream), sample_rate):
                chunks.append(chunk)
                total += chunk.size
                if limit is not None and total > limit:
                    raise AudioError(f"The audio is longer than the limit of {max_seconds:g} s.")
        except AudioError:
            raise
        except _DECODE_ERRORS as exc:
            raise AudioError(f"The audio data is corrupt or truncated ({_reason(exc)}).") from exc

    waveform = (
        np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    )
    if waveform.size == 0:
        raise AudioError("The file contains no audio samples.")
    # The header's promise is checked after decoding, not before, so that a cut-off file
    # is reported as truncated rather than as too long.
    if promised is not None and (declared is None or promised > declared):
        declared = promised
    if declared is not None and declared > 0.5 and waveform.size < 0.9 * declared * sample_rate:
        got = waveform.size / sample_rate
        raise AudioError(
            f"The audio is truncated: the header promises {declared:.2f} s, the data holds {got:.2f} s."
        )
    if max_seconds is not None and waveform.size > max_seconds * sample_rate + sample_rate // 10:
        raise AudioError(f"The audio is longer than the limit of {max_seconds:g} s.")
    if waveform.size < min_seconds * sample_rate:
        raise AudioError(
            f"The audio is too short: {waveform.size / sample_rate:.3f} s; at least {min_seconds:g} s is needed."
        )
    return waveform


def _counted_seconds(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float:
    """Length found by decoding (no resampling): the sum of every frame's samples / rate."""
    seconds = 0.0
    try:
        for frame in _decoded_frames(container, stream):
            if frame.sample_rate > 0:
                seconds += frame.samples / frame.sample_rate
    except AudioError:
        raise
    except _DECODE_ERRORS as exc:
        raise AudioError(f"The audio data is corrupt or truncated ({_reason(exc)}).") from exc
    return seconds


def probe_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the container header, decoding when the header has no exact one.

    Raises:
        AudioError: the file cannot be opened as audio, or holds no audio samples.
    """
    with _open(path) as container:
        stream = _audio_stream(container)
        declared = _declared_seconds(container, stream)
        if declared is not None:
            return declared
        seconds = _counted_seconds(container, stream)
    if seconds <= 0:
        raise AudioError("The file contains no audio samples.")
    return seconds


def native_sample_rate(path: str | os.PathLike) -> int:
    """The sample rate of the first audio stream as stored (0 when the header has none).

    Raises:
        AudioError: the file cannot be opened as audio of a supported format.
    """
    with _open(path) as container:
        return int(_audio_stream(container).sample_rate or 0)
