"""Live recognition: one :class:`StreamSession` per websocket, plus the limits that guard it.

A session owns the incremental decoder (:class:`~recognition.engine.stream.StreamDecoder`),
the streaming VAD and the decoded audio. The consumer calls:

- :meth:`StreamSession.admit` on the event loop for every frame (byte-rate limit, cheap);
- :meth:`StreamSession.feed` in a worker thread (decode + VAD, ~1 ms per 250 ms chunk):
  it returns the speech segments that ended, each with its samples, ready to classify;
- :meth:`StreamSession.classify` and :meth:`StreamSession.result` through
  :func:`recognition.inference.run_inference`;
- :meth:`StreamSession.finish` on stop, :meth:`StreamSession.abort` when the client left.

Limits (settings, environment-overridable): ``SER_STREAM_MAX_SECONDS`` of audio per stream
(per-connection memory is bounded by it), ``SER_STREAM_MAX_BYTES_PER_SECOND`` (a token
bucket that allows a burst of :data:`BURST_SECONDS` seconds' worth, so a client catching
up after a network stall is not cut off), and ``SER_STREAM_MAX_PER_USER`` open streams.

Streams per user are counted in Redis, not in process memory, because several Daphne
processes serve one site: a sorted set ``ser:streams:<user id>`` whose members are stream
ids scored by an expiry time. A live stream pushes its expiry forward every
:data:`SLOT_REFRESH_SECONDS`; a stream whose process died without releasing its member
stops being counted once its expiry passes (:data:`SLOT_TTL_SECONDS`), so a crash never
locks a user out for long. Acquiring is one Lua script, so two connections racing for the
last slot cannot both win.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from torch import Tensor

from recognition.engine.predictor import Predictor, SegmentPrediction
from recognition.engine.stream import StreamDecoder
from recognition.engine.vad import Segment, StreamingVad, VadConfig

from .analysis import analyse_waveform, segment_dict
from .models import ModelVersion

__all__ = [
    "StreamError",
    "StreamLimits",
    "ByteRateLimiter",
    "StreamSlots",
    "SegmentJob",
    "StreamSession",
]

BURST_SECONDS = 4.0
# Decoded audio may pass max_seconds by this much (codec padding, a last timeslice).
LENGTH_SLACK_SECONDS = 1.0
SLOT_TTL_SECONDS = 30.0
SLOT_REFRESH_SECONDS = 10.0

_ACQUIRE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class StreamError(Exception):
    """A stream ends with ``{"type": "error", "code": code, "message": str(exc)}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StreamLimits:
    """The limits one stream runs under."""

    max_seconds: float
    max_bytes_per_second: int
    max_streams: int

    @classmethod
    def from_settings(cls) -> StreamLimits:
        return cls(
            max_seconds=float(settings.SER_STREAM_MAX_SECONDS),
            max_bytes_per_second=int(settings.SER_STREAM_MAX_BYTES_PER_SECOND),
            max_streams=int(settings.SER_STREAM_MAX_PER_USER),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``limits`` of the ``ready`` message."""
        return {
            "max_seconds": self.max_seconds,
            "max_bytes_per_second": self.max_bytes_per_second,
            "max_streams": self.max_streams,
        }


class ByteRateLimiter:
    """Token bucket: ``rate`` bytes per second on average, bursts up to ``burst_seconds`` worth.

    ``clock`` (monotonic seconds) can be replaced in tests.
    """

    def __init__(self, rate: int, *, burst_seconds: float = BURST_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(1, int(rate))
        self.capacity = self.rate * burst_seconds
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()

    def admit(self, nbytes: int) -> None:
        """Account for ``nbytes`` just received.

        Raises:
            StreamError: ``too_fast`` when the bucket cannot cover them.
        """
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if nbytes > self._tokens:
            raise StreamError(
                "too_fast",
                f"The audio arrives faster than the limit of {self.rate} bytes per second; the recording was stopped.",
            )
        self._tokens -= nbytes


class StreamSlots:
    """Per-user count of open streams in Redis (see the module docstring). One instance per stream."""

    def __init__(self, user_id: int, *, url: str | None = None, ttl: float = SLOT_TTL_SECONDS) -> None:
        self.key = f"ser:streams:{int(user_id)}"
        self.member = uuid.uuid4().hex
        self.ttl = ttl
        self._url = url or settings.SER_REDIS_URL
        self._client = None
        self.held = False

    def _redis(self):
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(self._url)
        return self._client

    async def acquire(self, limit: int) -> None:
        """Take one of the user's ``limit`` slots.

        Raises:
            StreamError: ``too_many_streams`` when all are taken; ``server_error`` when Redis
                cannot be reached (the limit must hold, so the stream is refused).
        """
        now = time.time()
        try:
            granted = await self._redis().eval(
                _ACQUIRE_SCRIPT, 1, self.key, now, now + self.ttl, int(limit), self.member, int(self.ttl) + 1
            )
        except Exception as exc:  # noqa: BLE001 — any Redis failure refuses the stream
            raise StreamError("server_error", f"The server cannot count your open recordings right now ({exc}).") from exc
        if not int(granted):
            raise StreamError(
                "too_many_streams", f"You already have {limit} recording(s) open; stop one before starting another."
            )
        self.held = True

    async def refresh(self) -> None:
        """Push this stream's expiry forward (it is alive)."""
        if self.held:
            client = self._redis()
            await client.zadd(self.key, {self.member: time.time() + self.ttl}, xx=True)
            await client.expire(self.key, int(self.ttl) + 1)

    async def release(self) -> None:
        """Give the slot back and close the connection; safe to call more than once."""
        try:
            if self.held:
                self.held = False
                await self._redis().zrem(self.key, self.member)
        finally:
            if self._client is not None:
                client, self._client = self._client, None
                await client.aclose()


@dataclass
class SegmentJob:
    """A speech segment that ended, with its samples ``(n,)``, waiting to be classified."""

    index: int
    segment: Segment
    samples: np.ndarray
    # The speaker mean over all speech so far, this segment included (speaker-normalised models).
    centre: Tensor | None = None


class _Samples:
    """A growing float32 buffer: amortised O(1) appends, slices without concatenating lists."""

    def __init__(self) -> None:
        self._data = np.zeros(16000, np.float32)
        self.size = 0

    def append(self, samples: np.ndarray) -> None:
        need = self.size + samples.size
        if need > self._data.size:
            grown = np.zeros(max(need, 2 * self._data.size), np.float32)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : need] = samples
        self.size = need

    def view(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.size if stop is None else min(stop, self.size)
        return self._data[start:stop]


class StreamSession:
    """Decoder + VAD + decoded audio of one live stream; see the module docstring for who calls what.

    Raises:
        AudioError: (from the constructor) an unsupported MIME type.
    """

    def __init__(
        self,
        *,
        version: ModelVersion,
        predictor: Predictor,
        mime: str | None,
        limits: StreamLimits,
        vad_config: VadConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.version = version
        self.predictor = predictor
        self.limits = limits
        self.sample_rate = predictor.sample_rate
        self.decoder = StreamDecoder(mime, sample_rate=self.sample_rate)
        self.vad = StreamingVad(vad_config or VadConfig(sample_rate=self.sample_rate))
        self.rate = ByteRateLimiter(limits.max_bytes_per_second, clock=clock)
        self.audio = _Samples()
        self._max_samples = int((limits.max_seconds + LENGTH_SLACK_SECONDS) * self.sample_rate)
        self._segments = 0
        self.speaker = predictor.speaker_centre()  # None unless the model is speaker-normalised

    @property
    def seconds(self) -> float:
        """Seconds of audio decoded so far."""
        return self.audio.size / self.sample_rate

    def admit(self, nbytes: int) -> None:
        """Rate-check a frame before it is decoded (event loop). Raises StreamError ``too_fast``."""
        self.rate.admit(nbytes)

    def feed(self, data: bytes) -> list[SegmentJob]:
        """Decode one chunk and run the VAD over the new audio (blocking, a worker thread).

        Raises:
            AudioError: the stream is not decodable audio.
            StreamError: ``too_long``, more than ``max_seconds`` of audio.
        """
        return self._add(self.decoder.feed(data))

    def finish(self) -> list[SegmentJob]:
        """End of stream: decode what is left and close the last segment (blocking)."""
        jobs = self._add(self.decoder.close())
        return jobs + self._jobs(self.vad.flush())

    def abort(self) -> None:
        """The client went away: stop the decoder thread, drop nothing else (no waiting)."""
        self.decoder.abort()

    def classify(self, job: SegmentJob) -> dict[str, Any]:
        """The ``segment`` message's fields for one job (blocking: run it in the inference pool)."""
        prediction = self.predictor.predict(job.samples, job.centre)
        return segment_dict(job.index, SegmentPrediction(job.segment.start, job.segment.end, prediction))

    def result(self, segments: list[dict[str, Any]]) -> dict[str, Any]:
        """The final result dict: the whole recording plus the segments already classified (blocking)."""
        return analyse_waveform(
            version=self.version,
            predictor=self.predictor,
            waveform=self.audio.view(),
            segments=segments,
            centre=self.speaker.value if self.speaker is not None else None,
        )

    def _add(self, samples: np.ndarray) -> list[SegmentJob]:
        if self.audio.size + samples.size > self._max_samples:
            self.decoder.abort()
            raise StreamError(
                "too_long", f"The recording passed the limit of {self.limits.max_seconds:g} seconds and was stopped."
            )
        if not samples.size:
            return []
        self.audio.append(samples)
        return self._jobs(self.vad.push(samples))

    def _jobs(self, segments: list[Segment]) -> list[SegmentJob]:
        jobs = []
        audio = self.audio.view()
        for segment in segments:
            samples = segment.slice(audio, self.sample_rate)
            if not samples.size:
                continue
            centre = None
            if self.speaker is not None:
                centre = self.predictor.speaker_centre([samples], self.speaker).value
            jobs.append(SegmentJob(self._segments, segment, samples.copy(), centre))
            self._segments += 1
        return jobs
