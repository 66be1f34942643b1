"""Live recognition: one :class:`StreamSession` per websocket.

A session owns the incremental decoder (:class:`~recognition.engine.stream.StreamDecoder`),
the streaming VAD and the decoded audio. The consumer calls:

- :meth:`StreamSession.admit` on the event loop for every frame (byte-rate limit, cheap);
- :meth:`StreamSession.feed` in a worker thread (decode + VAD): it returns the speech
  segments that ended, each with its samples, ready to classify. Speech that runs on is cut
  at the VAD's maximum segment length, so segments keep coming while someone talks;
- :meth:`StreamSession.provisional_job` on the event loop after each chunk: about once a
  second of audio, the segment still in progress, to classify as a provisional result;
- :meth:`StreamSession.classify`, :meth:`StreamSession.classify_provisional` and
  :meth:`StreamSession.result` through :func:`recognition.services.inference.run_inference`;
- :meth:`StreamSession.finish` on stop, :meth:`StreamSession.abort` when the client left.

The limits are in :mod:`recognition.services.stream_limits`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from recognition.engine.predictor import Predictor, SegmentPrediction
from recognition.engine.stream import StreamDecoder
from recognition.engine.vad import Segment, StreamingVad, VadConfig
from recognition.models import ModelVersion

from .classify import recording_classify
from .stream_limits import ByteRateLimiter, StreamError, StreamLimits

__all__ = ["SegmentJob", "ProvisionalJob", "StreamSession", "PROVISIONAL_EVERY_SECONDS", "PROVISIONAL_MIN_SECONDS"]

# Decoded audio may pass max_seconds by this much (codec padding, a last timeslice).
LENGTH_SLACK_SECONDS = 1.0
# A provisional result for the segment in progress, at most once per this much audio ...
PROVISIONAL_EVERY_SECONDS = 1.0
# ... once it holds this much: shorter, the model has too little to go on.
PROVISIONAL_MIN_SECONDS = 0.5


@dataclass
class SegmentJob:
    """A speech segment that ended, with its samples ``(n,)``, waiting to be classified."""

    index: int
    segment: Segment
    samples: np.ndarray


@dataclass
class ProvisionalJob:
    """The segment in progress so far: ``[start, end)`` seconds and its samples ``(n,)``.

    ``index`` is the index it will have once it ends; its result is stale once a segment
    of that index was sent.
    """

    index: int
    start: float
    end: float
    samples: np.ndarray
    # The speaker mean over the speech that ended before it (None: centred on itself).
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
        self._provisional_at = 0.0  # audio seconds of the last provisional job
        self.speaker = predictor.speaker_centre()  # None unless the model is speaker-normalised

    @property
    def seconds(self) -> float:
        """Seconds of audio decoded so far."""
        return self.audio.size / self.sample_rate

    @property
    def segments_started(self) -> int:
        """Segments handed out as jobs so far (the next one gets this index)."""
        return self._segments

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

    def provisional_job(self) -> ProvisionalJob | None:
        """The segment in progress, when it holds at least :data:`PROVISIONAL_MIN_SECONDS` and
        :data:`PROVISIONAL_EVERY_SECONDS` of audio passed since the last one; else None."""
        start, now = self.vad.open_start, self.vad.position
        if start is None or now - start < PROVISIONAL_MIN_SECONDS or now - self._provisional_at < PROVISIONAL_EVERY_SECONDS:
            return None
        self._provisional_at = now
        samples = self.audio.view(int(round(start * self.sample_rate))).copy()
        centre = self.speaker.value if self.speaker is not None else None
        return ProvisionalJob(self._segments, start, round(now, 6), samples, centre)

    def classify(self, job: SegmentJob) -> SegmentPrediction:
        """Classify one ended segment (blocking: run it in the inference pool). Its attention is
        placed on the recording's time axis, as the engine places a recording's segments.

        A speaker-normalised model adds the segment to the speaker's running mean and is
        centred on it (all speech so far, this segment included), from one encoder pass."""
        [result], _ = self.predictor.predict_speech(job.samples, [(0, job.samples.size)], running=self.speaker)
        prediction = result.prediction
        prediction = dataclasses.replace(prediction, attention_offset=prediction.attention_offset + job.segment.start)
        return SegmentPrediction(job.segment.start, job.segment.end, prediction)

    def classify_provisional(self, job: ProvisionalJob) -> dict[str, Any]:
        """The ``provisional`` message's fields: ``index``, ``start``, ``end``, ``label``,
        ``probabilities`` (blocking: run it in the inference pool)."""
        prediction = self.predictor.predict(job.samples, job.centre)
        return {"index": job.index, **SegmentPrediction(job.start, job.end, prediction).to_dict()}

    def result(self, segments: list[SegmentPrediction]) -> dict[str, Any]:
        """The final result dict over the segments already classified: the verdict from them,
        and the spectrogram of the whole recording (blocking)."""
        return recording_classify(
            predictor=self.predictor, waveform=self.audio.view(), version=self.version, segments=segments,
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
            jobs.append(SegmentJob(self._segments, segment, samples.copy()))
            self._segments += 1
        return jobs
