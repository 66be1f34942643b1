"""Decode any audio container the browsers and corpora use to float32 mono at 16 kHz.

PyAV (FFmpeg) demuxes and decodes; libswresample downmixes and resamples in one step.
Every failure surfaces as :class:`AudioError` with a sentence a user can act on.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from . import SAMPLE_RATE

__all__ = ["AudioError", "decode_audio", "probe_duration", "DEFAULT_MAX_SECONDS"]

DEFAULT_MAX_SECONDS = 600.0

AudioSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


class AudioError(ValueError):
    """The input is not usable audio (not audio, empty, corrupt, too long, ...)."""


def _open(source: AudioSource) -> av.container.InputContainer:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError("The audio data is empty.")
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AudioError(f"No such audio file: {path}")
        if path.stat().st_size == 0:
            raise AudioError(f"The audio file is empty: {path.name}")
    try:
        return av.open(source, mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise AudioError(f"Not a readable audio file ({_reason(exc)}).") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise AudioError(f"Not a readable audio file ({exc}).") from exc


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip() or type(exc).__name__


def _declared_seconds(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def decode_audio(
    source: AudioSource,
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> np.ndarray:
    """Decode ``source`` (path, bytes or binary file object) to mono float32 at ``sample_rate``.

    Returns:
        ``np.ndarray`` of shape ``(samples,)``, dtype float32, nominally in [-1, 1].

    Raises:
        AudioError: not audio, empty, truncated or corrupt, no audio stream, non-finite
            samples, or longer than ``max_seconds``.
    """
    container = _open(source)
    try:
        if not container.streams.audio:
            raise AudioError("The file has no audio stream.")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        if max_seconds is not None and declared is not None and declared > max_seconds + 1.0:
            raise AudioError(f"The audio is {declared:.0f} s long; the limit is {max_seconds:.0f} s.")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        limit = None if max_seconds is None else int(max_seconds * sample_rate) + sample_rate // 10
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples; broken timestamps must not drop audio
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if limit is not None and total > limit:
                    raise AudioError(f"The audio is longer than the limit of {max_seconds:.0f} s.")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as exc:
            raise AudioError(f"The audio data is corrupt or truncated ({_reason(exc)}).") from exc
    finally:
        container.close()

    waveform = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if waveform.size == 0:
        raise AudioError("The file contains no audio samples.")
    if not np.all(np.isfinite(waveform)):
        raise AudioError("The audio contains non-finite samples (NaN or infinity).")
    if declared is not None and declared > 0.5 and waveform.size < 0.9 * declared * sample_rate:
        got = waveform.size / sample_rate
        raise AudioError(f"The audio is truncated: the header promises {declared:.2f} s, the data holds {got:.2f} s.")
    if max_seconds is not None and waveform.size > max_seconds * sample_rate + sample_rate // 10:
        raise AudioError(f"The audio is longer than the limit of {max_seconds:.0f} s.")
    return waveform


def probe_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the container header, decoding only when the header is silent.

    Raises:
        AudioError: the file cannot be opened as audio.
    """
    container = _open(path)
    try:
        if not container.streams.audio:
            raise AudioError("The file has no audio stream.")
        declared = _declared_seconds(container, container.streams.audio[0])
    finally:
        container.close()
    if declared is not None and declared > 0:
        return declared
    return decode_audio(path, max_seconds=None).size / SAMPLE_RATE
