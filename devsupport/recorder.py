"""A browser's MediaRecorder, for tests and benchmarks: a waveform encoded as a live
WebM/Ogg/MP4 byte stream cut into timeslices, as :class:`~recognition.engine.stream.StreamDecoder`
receives it."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from recognition.engine import SAMPLE_RATE

__all__ = ["encode_chunks"]


def encode_chunks(
    waveform: np.ndarray,
    *,
    container: str = "webm",
    sample_rate: int = SAMPLE_RATE,
    timeslice: float = 0.25,
) -> list[bytes]:
    """Encode ``waveform`` ``(samples,)`` like a MediaRecorder and cut the bytes into timeslices.

    Chunk ``k`` holds every byte the muxer had written once the audio up to
    ``(k + 1) * timeslice`` seconds was encoded, so a chunk completes its slice of audio.

    Args:
        container: ``"webm"`` (Opus), ``"ogg"`` (Opus) or ``"mp4"`` (fragmented, AAC).
    """
    codec, options = {
        "webm": ("libopus", {"live": "1", "cluster_time_limit": "0"}),
        "ogg": ("libopus", {"page_duration": "20000"}),
        "mp4": ("aac", {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": "20000"}),
    }[container]
    written = bytearray()

    class _Sink:
        def write(self, data: bytes) -> int:
            written.extend(data)
            return len(data)

    out = av.open(_Sink(), mode="w", format=container, options={"flush_packets": "1", **options})
    stream = out.add_stream(codec, rate=48000)
    stream.layout = "mono"
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=48000)
    pcm = (np.clip(np.asarray(waveform, np.float32), -1, 1) * 32767).astype(np.int16)[None]
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = sample_rate
    marks: list[tuple[float, int]] = []  # (seconds of audio fully muxed, bytes written)
    position = 0

    def mux(packets) -> None:
        for packet in packets:
            out.mux(packet)
            end = (packet.pts + (packet.duration or 0)) * packet.time_base if packet.pts is not None else 0
            marks.append((float(end), len(written)))

    for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
        chunk.pts, chunk.time_base = position, Fraction(1, 48000)
        position += chunk.samples
        mux(stream.encode(chunk))
    mux(stream.encode(None))
    out.close()
    marks.append((float("inf"), len(written)))
    total = waveform.size / sample_rate
    chunks, start = [], 0
    for k in range(int(np.ceil(total / timeslice))):
        t = min((k + 1) * timeslice, total)
        # Bytes once every packet up to t was muxed (the last chunk takes the trailer too).
        stop = len(written) if t >= total else next(n for end, n in marks if end >= t)
        chunks.append(bytes(written[start:stop]))
        start = stop
    return chunks
