"""The result dict shared by the record page, the upload page and the JSON API.

One function builds it from a waveform (:func:`analyse_waveform`), one from a file or
bytes (:func:`analyse_file`). Both are plain, blocking functions: async callers run them
through :func:`recognition.inference.run_inference`. The schema::

    {"model": {"id", "name", "version", "labels"},
     "duration": seconds,
     "whole": {"label", "probabilities", "attention", "attention_hop", "attention_offset"} | None,
     "segments": [{"index", "start", "end", "label", "probabilities"}, ...],
     "spectrogram": {"db": [[...] x n_mels], "hop", "n_mels", "f_max"} | None}
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import torch
from torch import Tensor

from recognition.engine.audio import decode_audio
from recognition.engine.features import FeatureConfig, FeatureExtractor
from recognition.engine.predictor import Predictor, SegmentPrediction

if TYPE_CHECKING:  # only for annotations: the spectrogram and segment helpers need no Django
    from .models import ModelVersion

__all__ = ["analyse_waveform", "analyse_file", "model_info", "segment_dict", "spectrogram", "MAX_COLUMNS"]

# The page draws at most this many spectrogram columns: enough for a screen's width,
# small enough to send a 10-minute recording in a few hundred kB.
MAX_COLUMNS = 600
# Colour range shown: quieter than this below the loudest bin is drawn as the floor, so
# digital silence (-100 dB) does not squash the speech into one colour.
_DYNAMIC_RANGE_DB = 80.0
# Frames transformed at once: bounds the STFT's memory for long recordings (~20 MB).
_FRAMES_PER_BLOCK = 4096


def model_info(version: ModelVersion, predictor: Predictor) -> dict[str, Any]:
    """``{"id", "name", "version", "labels"}``; labels in the model's output order."""
    return {"id": version.pk, "name": version.name, "version": version.version, "labels": predictor.labels}


def segment_dict(index: int, segment: SegmentPrediction | Mapping[str, Any]) -> dict[str, Any]:
    """One segment in the contract's shape: a SegmentPrediction through its ``to_dict()`` (the
    engine's rounding), a dict already in that shape (the live stream's) taken as it is."""
    if isinstance(segment, SegmentPrediction):
        fields = segment.to_dict(include_attention=False)
    else:
        fields = {key: segment[key] for key in ("start", "end", "label", "probabilities")}
    return {"index": int(index), **fields}


@functools.lru_cache(maxsize=8)
def _logmel_extractor(config: FeatureConfig) -> FeatureExtractor:
    """A log-Mel front end on the CPU with the checkpoint's frames and Mel bands (even for MFCC
    models).

    Only read after construction (buffers, no state), so sharing it between threads is safe.
    """
    return FeatureExtractor(dataclasses.replace(config, kind="logmel", utterance_cmn=False, speaker_cmn=False)).eval()


def spectrogram(waveform: np.ndarray, config: FeatureConfig, max_columns: int = MAX_COLUMNS) -> dict[str, Any] | None:
    """Un-normalised log-Mel (dB) of ``waveform`` ``(samples,)``, pooled to at most ``max_columns`` columns.

    Column ``j`` covers the frames from ``j * hop`` seconds on (frames are not centred, so
    time 0 is the start of the recording). Adjacent frames are averaged in dB.

    Returns:
        ``{"db": n_mels rows of columns, "hop": seconds per column, "n_mels", "f_max"}``,
        or None for an empty waveform.
    """
    x = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if x.size == 0:
        return None
    extractor = _logmel_extractor(config)
    hop, n_fft = config.hop_length, config.n_fft
    frames = max(1, (x.size - n_fft) // hop + 1) if x.size >= n_fft else 1
    pool = max(1, math.ceil(frames / max_columns))
    block = max(pool, _FRAMES_PER_BLOCK - _FRAMES_PER_BLOCK % pool)  # whole pools per block
    columns: list[np.ndarray] = []
    with torch.inference_mode():
        for first in range(0, frames, block):
            count = min(block, frames - first)
            # Frames [first, first+count) need samples [first*hop, (first+count-1)*hop + n_fft).
            piece = x[first * hop : (first + count - 1) * hop + n_fft]
            wav = torch.from_numpy(np.ascontiguousarray(piece))[None]
            feats, _ = extractor.raw(wav, torch.tensor([wav.shape[1]]))  # (1, frames, n_mels)
            db = feats[0, :count].double().numpy()  # (count, n_mels)
            groups = math.ceil(count / pool)
            padded = np.full((groups * pool, db.shape[1]), np.nan)
            padded[:count] = db
            columns.append(np.nanmean(padded.reshape(groups, pool, -1), axis=1))  # (groups, n_mels)
    db = np.concatenate(columns, axis=0)  # (columns, n_mels)
    db = np.maximum(db, db.max() - _DYNAMIC_RANGE_DB)
    return {
        "db": np.round(db.T, 1).tolist(),  # n_mels rows, low frequencies first
        "hop": round(hop * pool / config.sample_rate, 6),
        "n_mels": int(config.n_mels),
        "f_max": float(config.f_max if config.f_max is not None else config.sample_rate / 2),
    }


def analyse_waveform(
    *,
    version: ModelVersion,
    predictor: Predictor,
    waveform: np.ndarray,
    segments: Iterable[SegmentPrediction | Mapping[str, Any]] | None = None,
    centre: Tensor | None = None,
) -> dict[str, Any]:
    """The result dict for ``waveform`` (float32 mono ``(samples,)`` at ``predictor.sample_rate``).

    Args:
        segments: already classified segments (the live stream has them); None finds
            them here with the engine's VAD and classifies each.
        centre: the speaker mean ``(n_features,)`` for a speaker-normalised model (the live
            stream keeps one); None takes the recording's speech segments as one speaker.

    Raises:
        ValueError: the waveform is not 1-D float audio or holds non-finite samples.
    """
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (samples,), got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    whole, duration = None, 0.0
    if x.size:
        if segments is None:
            recording = predictor.predict_recording(x, centre=centre)
            prediction, segments = recording.whole, recording.segments
        else:
            prediction = predictor.predict(x, centre)
        whole = prediction.to_dict(include_attention=True)
        duration = whole.pop("duration")  # x.size / sample rate, rounded by the engine
    return {
        "model": model_info(version, predictor),
        "duration": duration,
        "whole": whole,
        "segments": [segment_dict(i, s) for i, s in enumerate(segments or [])],
        "spectrogram": spectrogram(x, predictor.feature_config),
    }


def analyse_file(
    *,
    version: ModelVersion,
    predictor: Predictor,
    source: str | os.PathLike | bytes | bytearray | BinaryIO,
    max_seconds: float,
) -> dict[str, Any]:
    """Decode ``source`` (path, bytes or binary file) and analyse it.

    Raises:
        AudioError: not audio, empty, corrupt or longer than ``max_seconds`` (a clear message).
    """
    waveform = decode_audio(source, sample_rate=predictor.sample_rate, max_seconds=max_seconds)
    return analyse_waveform(version=version, predictor=predictor, waveform=waveform)
