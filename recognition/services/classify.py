"""The one classify path: the upload page, ``POST /api/classify``, the live stream's final
result and the ``classify`` command all build their result here, over one engine call
(:func:`recognition.engine.classify.classify_recording`).

The verdict comes from the speech segments (their probabilities averaged, weighted by
duration); silence never votes, and a recording without speech has no verdict. The result
dict::

    {"model": {"id", "name", "version", "labels"},
     "duration": seconds,
     "verdict": {"label", "probabilities", "speech_seconds", "segments"} | None,   # None: no speech
     "whole": {"label", "probabilities", "attention", "attention_hop", "attention_offset"} | None,
     "segments": [{"index", "start", "end", "label", "probabilities",
                   "attention", "attention_hop", "attention_offset"}, ...],
     "spectrogram": {"db": [[...] x n_mels], "hop", "n_mels", "f_max"} | None}

``whole`` (the recording classified as one utterance, silences included) is there only when
asked for; ``spectrogram`` is None when not wanted. The functions block: async callers run
them through :func:`recognition.services.inference.run_inference`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from torch import Tensor

from recognition.engine.audio import decode_audio
from recognition.engine.classify import classify_recording
from recognition.engine.predictor import Predictor, SegmentPrediction
from recognition.engine.vad import VadConfig

from .inference import inference_executor, predictor_for

if TYPE_CHECKING:
    from recognition.models import ModelVersion

__all__ = ["model_info", "segment_dict", "recording_classify", "file_classify", "uploaded_file_classify"]


def model_info(version: ModelVersion | None, predictor: Predictor) -> dict[str, Any]:
    """``{"id", "name", "version", "labels"}``; labels in the model's output order. Without a
    registered version (a checkpoint file) only the labels are known."""
    if version is None:
        return {"id": None, "name": None, "version": None, "labels": predictor.labels}
    return {"id": version.pk, "name": version.name, "version": version.version, "labels": predictor.labels}


def segment_dict(index: int, segment: SegmentPrediction, *, include_attention: bool = False) -> dict[str, Any]:
    """One segment in the contract's shape (the engine's rounding)."""
    return {"index": int(index), **segment.to_dict(include_attention=include_attention)}


def recording_classify(
    *,
    predictor: Predictor,
    waveform: np.ndarray,
    version: ModelVersion | None = None,
    segments: Sequence[SegmentPrediction] | None = None,
    centre: Tensor | None = None,
    vad_config: VadConfig | None = None,
    whole: bool = False,
    spectrogram: bool = True,
) -> dict[str, Any]:
    """The result dict for ``waveform`` (float32 mono ``(samples,)`` at ``predictor.sample_rate``).

    Args:
        segments: already classified segments (the live stream's); None finds and classifies them.
        centre: the speaker mean for a speaker-normalised model; None takes the recording's
            speech as one speaker.
        whole: also classify the whole recording as one utterance.
        spectrogram: include the display spectrogram.

    Raises:
        ValueError: the waveform is not 1-D float audio or holds non-finite samples.
    """
    found = classify_recording(
        predictor, waveform, vad_config=vad_config, centre=centre, segments=segments, whole=whole,
        with_spectrogram=spectrogram,
    )
    whole_dict = None
    if found.whole is not None:
        whole_dict = found.whole.to_dict(include_attention=True)
        whole_dict.pop("duration")
    return {
        "model": model_info(version, predictor),
        "duration": round(found.duration, 4),
        "verdict": found.verdict.to_dict() if found.verdict is not None else None,
        "whole": whole_dict,
        "segments": [segment_dict(i, s, include_attention=True) for i, s in enumerate(found.segments)],
        "spectrogram": found.spectrogram,
    }


def file_classify(
    *,
    predictor: Predictor,
    source: str | os.PathLike | bytes | bytearray | BinaryIO,
    version: ModelVersion | None = None,
    whole: bool = False,
    spectrogram: bool = True,
) -> dict[str, Any]:
    """Decode ``source`` (path, bytes or binary file; at most ``SER_MAX_AUDIO_SECONDS``) and classify it.

    Raises:
        AudioError: not audio, empty, corrupt or too long (a clear message).
    """
    waveform = decode_audio(source, sample_rate=predictor.sample_rate, max_seconds=settings.SER_MAX_AUDIO_SECONDS)
    return recording_classify(predictor=predictor, waveform=waveform, version=version, whole=whole, spectrogram=spectrogram)


def uploaded_file_classify(
    *, uploaded: UploadedFile, version_id: int | None = None, whole: bool = False, spectrogram: bool = True
) -> dict[str, Any]:
    """Classify an uploaded audio file with the given model version (None: the active one).

    The work runs in the process-wide inference pool, which bounds how many models run at
    once however many requests arrive; this thread waits for it.

    Raises:
        UnknownVersionError: ``version_id`` names no version (a ``NoModelError``).
        NoModelError: no active model, or an unloadable checkpoint.
        AudioError: the file is not decodable audio, or is longer than ``SER_MAX_AUDIO_SECONDS``.
    """
    version, predictor = predictor_for(version_id)
    # Large uploads were spooled to disk by Django: decode from the path, not a copy in memory.
    path = getattr(uploaded, "temporary_file_path", None)
    if callable(path):
        source: Any = path()
    else:
        uploaded.seek(0)
        source = uploaded.read()
    future = inference_executor().submit(
        file_classify, predictor=predictor, source=source, version=version, whole=whole, spectrogram=spectrogram
    )
    return future.result()
