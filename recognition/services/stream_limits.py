"""The limits that guard live recognition streams (see :mod:`recognition.services.streaming`).

``SER_STREAM_MAX_SECONDS`` of audio per stream (per-connection memory is bounded by it),
``SER_STREAM_MAX_BYTES_PER_SECOND`` (a token bucket that allows a burst of
:data:`BURST_SECONDS` seconds' worth, so a client catching up after a network stall is not
cut off), and ``SER_STREAM_MAX_PER_USER`` open streams.

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

from django.conf import settings

__all__ = [
    "BURST_SECONDS",
    "SLOT_REFRESH_SECONDS",
    "SLOT_TTL_SECONDS",
    "StreamError",
    "StreamLimits",
    "ByteRateLimiter",
    "StreamSlots",
]

BURST_SECONDS = 4.0
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
