"""One call that turns a recording into everything the app shows about it.

:func:`classify_recording` validates the waveform once, finds its speech with the VAD,
classifies the speech segments in batches with one front-end pass per segment
(:meth:`~recognition.engine.predictor.Predictor.predict_speech`: a speaker-normalised model
is centred on the mean of those same features), and derives the verdict from them
(:func:`speech_verdict`). Silence never votes: a recording without speech has no verdict.
The whole recording goes through the model as one utterance only when asked (``whole``),
and the display spectrogram (:mod:`recognition.engine.spectrogram`) only when wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from .predictor import Prediction, Predictor, SegmentPrediction
from .spectrogram import MAX_COLUMNS, spectrogram
from .vad import VadConfig

__all__ = ["Verdict", "RecordingResult", "speech_verdict", "classify_recording"]

_PROB_DECIMALS = 6
_TIME_DECIMALS = 4


@dataclass
class Verdict:
    """The emotion of a recording's speech: the segments' probabilities averaged, each
    weighted by its duration.

    Attributes:
        label: the most probable label.
        probabilities: label -> probability, in the model's label order, summing to 1.
        speech_seconds: total duration of the segments.
        segments: how many segments voted.
    """

    label: str
    probabilities: dict[str, float]
    speech_seconds: float
    segments: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict, rounded like the predictions."""
        return {
            "label": self.label,
            "probabilities": {k: round(float(v), _PROB_DECIMALS) for k, v in self.probabilities.items()},
            "speech_seconds": round(float(self.speech_seconds), _TIME_DECIMALS),
            "segments": int(self.segments),
        }


@dataclass
class RecordingResult:
    """What :func:`classify_recording` found.

    Attributes:
        duration: seconds of the recording.
        segments: the speech segments with their predictions, in time order.
        verdict: from the segments; None when there is no speech.
        whole: the whole recording classified as one utterance, only when asked.
        spectrogram: the display log-Mel (see :func:`~recognition.engine.spectrogram.spectrogram`),
            None when not asked or for empty audio.
    """

    duration: float
    segments: list[SegmentPrediction]
    verdict: Verdict | None
    whole: Prediction | None = None
    spectrogram: dict[str, Any] | None = None


def speech_verdict(segments: Sequence[SegmentPrediction], labels: Sequence[str]) -> Verdict | None:
    """The duration-weighted mean of the segments' probabilities over ``labels``; None without
    segments (no speech: no emotion)."""
    weights = np.array([max(s.end - s.start, 0.0) for s in segments], dtype=np.float64)
    if not len(segments) or weights.sum() <= 0:
        return None
    probs = np.array([[s.prediction.probabilities.get(label, 0.0) for label in labels] for s in segments])  # (S, C)
    mean = weights @ probs / weights.sum()  # (C,)
    mean = mean / mean.sum()
    return Verdict(
        label=labels[int(np.argmax(mean))],
        probabilities={label: float(p) for label, p in zip(labels, mean, strict=True)},
        speech_seconds=float(weights.sum()),
        segments=len(segments),
    )


def classify_recording(
    predictor: Predictor,
    waveform: np.ndarray,
    *,
    vad_config: VadConfig | None = None,
    centre: Tensor | None = None,
    segments: Sequence[SegmentPrediction] | None = None,
    whole: bool = False,
    with_spectrogram: bool = True,
    max_columns: int = MAX_COLUMNS,
    batch_size: int = 32,
) -> RecordingResult:
    """Classify ``waveform`` ``(samples,)`` float at ``predictor.sample_rate``, one speaker.

    Args:
        vad_config: how speech is found (default: :class:`VadConfig` at the model's rate).
        centre: the speaker mean for a speaker-normalised model (see
            :meth:`Predictor.speaker_centre`); None centres on this recording's speech.
        segments: segments already classified (a live stream has them): taken as they
            are, no VAD and no front end runs for them.
        whole: also classify the whole recording as one utterance (one more pass).
        with_spectrogram: compute the display spectrogram.

    Raises:
        ValueError: the waveform is not 1-D float audio, or holds non-finite samples.
    """
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (samples,), got shape {x.shape}")
    if x.size == 0:
        return RecordingResult(duration=0.0, segments=list(segments or []), verdict=speech_verdict(segments or [], predictor.labels))
    if segments is None:
        segments, centre = predictor.predict_speech(x, vad_config=vad_config, centre=centre, batch_size=batch_size)
        x = np.ascontiguousarray(x, dtype=np.float32)  # validated: float, finite
    else:
        segments = list(segments)
        x = x.astype(np.float32, copy=False)
    return RecordingResult(
        duration=x.size / predictor.sample_rate,
        segments=list(segments),
        verdict=speech_verdict(segments, predictor.labels),
        whole=predictor.predict(x, centre) if whole else None,
        spectrogram=spectrogram(x, predictor.feature_config, max_columns) if with_spectrogram else None,
    )
