"""``ws/record/``: live speech emotion recognition of a MediaRecorder stream.

Protocol (client → server): ``{"type": "start", "mime", "model"}``, binary chunks, then
``{"type": "stop"}``. Server → client: ``ready``; ``segment`` (``index``, ``start``,
``end``, ``label``, ``probabilities``) each time speech pauses or runs past the VAD's
maximum segment length; ``provisional`` (the same fields, for the segment still in
progress: ``index`` is the one it will have) about once a second while someone speaks;
``progress`` about once a second; ``final`` after stop (then close 1000), or ``error`` (then
close with a 44xx code). A provisional result is never sent after the segment it previews.
The work is in :mod:`recognition.services.streaming`; this consumer only parses messages,
keeps the event loop free (decoding in a worker thread, models in the inference pool) and
cleans up however the connection ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from recognition.engine.audio import AudioError
from recognition.engine.predictor import SegmentPrediction
from recognition.engine.stream import container_for_mime

from .services.classify import model_info, segment_dict
from .services.inference import (
    NoModelError,
    inference_busy,
    model_version_resolve,
    predictor_load,
    run_inference,
)
from .services.stream_limits import SLOT_REFRESH_SECONDS, StreamError, StreamLimits, StreamSlots
from .services.streaming import ProvisionalJob, SegmentJob, StreamSession

logger = logging.getLogger(__name__)

# Close codes after an error message (the message says why; the code lets a client tell apart).
CLOSE_CODES = {
    "bad_message": 4400,
    "not_started": 4400,
    "no_model": 4404,
    "bad_audio": 4415,
    "too_long": 4413,
    "too_fast": 4429,
    "too_many_streams": 4429,
    "server_error": 4500,
}
# Wall-clock allowance past max_seconds before a stream is cut (network jitter, the stop).
WALL_CLOCK_GRACE_SECONDS = 15.0
_MAX_TEXT = 4096


class RecordConsumer(AsyncWebsocketConsumer):
    """One live recording per connection (see the module docstring)."""

    # No channel layer: nothing is ever sent to this consumer from another process, and
    # without a channel each live stream spares Redis a blocking poll.
    channel_layer_alias = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user_id: int | None = None
        self.session: StreamSession | None = None
        self.slots: StreamSlots | None = None
        self.ended = True  # until accepted; then: an error, the final result or a disconnect
        self.stopping = False
        self.results: list[SegmentPrediction] = []  # segment results, in index order
        self.last_task: asyncio.Task | None = None  # the newest segment classification
        self.provisional_task: asyncio.Task | None = None  # at most one at a time
        self.tasks: set[asyncio.Task] = set()
        self.watchdog: asyncio.Task | None = None
        self.progress_second = 0

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Also when the server cancels the consumer (a client gone for good): the
            # decoder thread, the slot and the pending tasks must not outlive it.
            await self._cleanup()

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.user_id = user.pk
        self.ended = False
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self._cleanup()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.ended or self.stopping:
            return
        try:
            if bytes_data is not None:
                await self._on_audio(bytes_data)
            elif text_data is not None:
                await self._on_text(text_data)
        except StreamError as exc:
            await self._fail(exc.code, str(exc))
        except AudioError as exc:
            await self._fail("bad_audio", str(exc))
        except NoModelError as exc:
            await self._fail("no_model", str(exc))
        except Exception as exc:  # noqa: BLE001 — a bug must still end the stream with a message
            logger.exception("live recognition failed")
            await self._fail("server_error", f"The server could not process the recording ({type(exc).__name__}).")

    # -- messages ------------------------------------------------------------------------

    async def _on_text(self, text: str) -> None:
        if len(text) > _MAX_TEXT:
            raise StreamError("bad_message", "The message is too long.")
        try:
            message = json.loads(text)
        except ValueError:
            raise StreamError("bad_message", "Messages must be JSON objects.") from None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "start":
            await self._start(message)
        elif kind == "stop":
            if self.session is None:
                raise StreamError("not_started", "Send a start message first.")
            await self._stop()
        else:
            raise StreamError("bad_message", f"Unknown message type {kind!r}: expected start or stop.")

    async def _start(self, message: dict[str, Any]) -> None:
        if self.session is not None:
            raise StreamError("bad_message", "This recording has already started.")
        mime, model = message.get("mime", ""), message.get("model")
        if not isinstance(mime, str) or len(mime) > 200:
            raise StreamError("bad_message", "mime must be a MIME type string such as audio/webm;codecs=opus.")
        if model is not None and (isinstance(model, bool) or not isinstance(model, int)):
            raise StreamError("bad_message", "model must be a model version id or null.")
        container_for_mime(mime)  # an unsupported type fails here, before any resources are taken
        limits = StreamLimits.from_settings()
        version = await database_sync_to_async(model_version_resolve)(model)
        predictor = await run_inference(predictor_load, version)
        self.slots = StreamSlots(self.user_id)
        # No check for a client gone meanwhile: the consumer handles one message at a time, so a
        # disconnect is dispatched only after this returns, and a cancellation raises here.
        await self.slots.acquire(limits.max_streams)
        self.session = StreamSession(version=version, predictor=predictor, mime=mime, limits=limits)
        self.watchdog = asyncio.create_task(self._watch(limits.max_seconds + WALL_CLOCK_GRACE_SECONDS))
        await self._send({"type": "ready", "model": model_info(version, predictor), "limits": limits.to_dict()})

    async def _on_audio(self, data: bytes) -> None:
        if self.session is None:
            raise StreamError("not_started", "Send a start message before the audio.")
        session = self.session
        session.admit(len(data))
        jobs = await asyncio.to_thread(session.feed, data)  # decoding waits on the decoder thread
        if self.ended:
            return
        self._schedule(jobs)
        provisional = session.provisional_job()
        if provisional is not None and (self.provisional_task is None or self.provisional_task.done()) and not inference_busy():
            # Skipped while the previous one still runs, or while every inference thread is busy:
            # provisional results never queue up, nor delay any stream's segment results.
            self.provisional_task = self._track(asyncio.create_task(self._provisional(provisional)))
        second = int(session.seconds)
        if second > self.progress_second:
            self.progress_second = second
            await self._send({"type": "progress", "seconds": round(session.seconds, 3)})

    async def _stop(self) -> None:
        self.stopping = True
        session = self.session
        self._schedule(await asyncio.to_thread(session.finish))
        if self.last_task is not None:
            await asyncio.wait([self.last_task])  # segments are sent in order: the last done means all done
        if self.ended:
            return
        result = await run_inference(session.result, list(self.results))
        if self.ended:
            return
        await self._send({"type": "final", "result": result})
        self.ended = True
        await self.close(code=1000)
        await self._cleanup()

    # -- segments ------------------------------------------------------------------------

    def _schedule(self, jobs: list[SegmentJob]) -> None:
        for job in jobs:
            self.last_task = self._track(asyncio.create_task(self._classify(job, self.last_task)))

    def _track(self, task: asyncio.Task) -> asyncio.Task:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _classify(self, job: SegmentJob, previous: asyncio.Task | None) -> None:
        """Classify in the pool (in parallel with earlier segments), send in index order."""
        try:
            result = await run_inference(self.session.classify, job)
        except Exception as exc:  # noqa: BLE001 — reported to the client; the stream cannot go on
            logger.exception("classifying segment %s failed", job.index)
            if previous is not None:
                await asyncio.wait([previous])
            await self._fail("server_error", f"Segment {job.index} could not be classified ({exc}).")
            return
        if previous is not None:
            await asyncio.wait([previous])
        if self.ended:
            return
        self.results.append(result)
        await self._send({"type": "segment", **segment_dict(job.index, result)})

    async def _provisional(self, job: ProvisionalJob) -> None:
        """Classify the segment in progress; send it unless that segment has ended meanwhile."""
        try:
            result = await run_inference(self.session.classify_provisional, job)
        except Exception:  # noqa: BLE001 — a provisional result is a courtesy: the segment's own result follows
            logger.exception("classifying the segment in progress failed")
            return
        session = self.session
        fresh = session.segments_started == job.index and session.vad.open_start == job.start
        if fresh and not self.ended and not self.stopping:
            await self._send({"type": "provisional", **result})

    # -- limits, errors, cleanup ---------------------------------------------------------

    async def _watch(self, wall_seconds: float) -> None:
        """Refresh the stream's slot while it lives; cut it after ``wall_seconds`` whatever it sends."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wall_seconds
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(SLOT_REFRESH_SECONDS, left))
            if self.slots is not None:
                try:
                    await self.slots.refresh()
                except Exception:  # noqa: BLE001 — a missed refresh only shortens the slot's life
                    logger.warning("could not refresh the stream slot of user %s", self.user_id, exc_info=True)
        if not self.ended and not self.stopping:
            limit = self.session.limits.max_seconds if self.session else wall_seconds
            await self._fail("too_long", f"The recording passed the limit of {limit:g} seconds and was stopped.")

    async def _fail(self, code: str, message: str) -> None:
        if self.ended:
            return
        self.ended = True
        await self._send({"type": "error", "code": code, "message": message})
        await self.close(code=CLOSE_CODES.get(code, 4400))
        await self._cleanup()

    async def _send(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload))

    async def _cleanup(self) -> None:
        """Release everything this connection holds; safe to call more than once."""
        self.ended = True
        current = asyncio.current_task()
        if self.watchdog is not None and self.watchdog is not current:
            self.watchdog.cancel()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()  # a running classification finishes in its pool thread; its result is dropped
        if self.session is not None:
            self.session.abort()
        if self.slots is not None:
            slots, self.slots = self.slots, None
            try:
                await slots.release()
            except Exception:  # noqa: BLE001 — the slot then expires on its own (SLOT_TTL_SECONDS)
                logger.warning("could not release the stream slot of user %s", self.user_id, exc_info=True)
