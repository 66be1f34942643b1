"""What the predictor answers: one utterance's :class:`Prediction`, and a speech segment's
:class:`SegmentPrediction`, both JSON-able."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Prediction", "SegmentPrediction"]

# Rounding for JSON: probabilities keep 6 decimals (tiny classes stay distinguishable),
# attention weights 5, times 4 (0.1 ms, far below one 10 ms frame).
_PROB_DECIMALS = 6
_ATTENTION_DECIMALS = 5
_TIME_DECIMALS = 4


@dataclass
class Prediction:
    """The model's verdict on one utterance.

    Attributes:
        label: the most probable label.
        probabilities: label -> probability, in the checkpoint's label order, summing to 1.
        attention: ``(steps,)`` float32 attention weights summing to 1; step ``i`` covers
            the audio from ``attention_offset + i * attention_hop`` seconds on.
        attention_hop: seconds per attention step (hop_length * time_stride / sample_rate).
        attention_offset: seconds from the start of the original waveform to the first
            analysed sample (edge silence trimmed before the features is skipped).
        duration: seconds of the input waveform, before trimming.
    """

    label: str
    probabilities: dict[str, float]
    attention: np.ndarray
    attention_hop: float
    attention_offset: float
    duration: float

    def to_dict(self, *, include_attention: bool = True) -> dict[str, Any]:
        """JSON-able dict: plain floats and lists, rounded."""
        data: dict[str, Any] = {
            "label": self.label,
            "probabilities": {k: round(float(v), _PROB_DECIMALS) for k, v in self.probabilities.items()},
            "duration": round(float(self.duration), _TIME_DECIMALS),
        }
        if include_attention:
            data["attention"] = [round(float(w), _ATTENTION_DECIMALS) for w in self.attention]
            data["attention_hop"] = round(float(self.attention_hop), _TIME_DECIMALS)
            data["attention_offset"] = round(float(self.attention_offset), _TIME_DECIMALS)
        return data


@dataclass
class SegmentPrediction:
    """A speech segment ``[start, end)`` (seconds, absolute in the input) and its prediction.

    ``prediction.attention_offset`` is absolute in the whole input too, so the attention
    can be drawn on the same time axis as ``start``/``end``; ``prediction.duration`` is the
    segment's length.
    """

    start: float
    end: float
    prediction: Prediction

    def to_dict(self, *, include_attention: bool = False) -> dict[str, Any]:
        """Flat JSON-able dict: start, end, label, probabilities (+ attention fields)."""
        data = self.prediction.to_dict(include_attention=include_attention)
        data.pop("duration")
        return {
            "start": round(float(self.start), _TIME_DECIMALS),
            "end": round(float(self.end), _TIME_DECIMALS),
            **data,
        }
