"""The log-Mel picture of a recording shown beside its result (display only).

Whatever a model reads (log-Mel, MFCC, or a pretrained encoder's states), people are shown
the recording's log-Mel spectrogram in dB, pooled to a screen's width.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
import torch

from .features import FeatureConfig, FeatureExtractor

__all__ = ["MAX_COLUMNS", "spectrogram"]

# At most this many columns: enough for a screen's width, small enough to send a 10-minute
# recording in a few hundred kB.
MAX_COLUMNS = 600
# Colour range shown: quieter than this below the loudest bin is drawn as the floor, so
# digital silence (-100 dB) does not squash the speech into one colour.
_DYNAMIC_RANGE_DB = 80.0
# Frames transformed at once: bounds the STFT's memory for long recordings (~20 MB).
_FRAMES_PER_BLOCK = 4096


@functools.lru_cache(maxsize=8)
def _logmel_extractor(config: FeatureConfig) -> FeatureExtractor:
    """A log-Mel front end on the CPU with ``config``'s frames and Mel bands (even for MFCC
    and Whisper models).

    Only read after construction (buffers, no state), so sharing it between threads is safe.
    """
    # A Whisper model's frames are averaged states; the picture keeps the encoder's 20 ms steps.
    plain = dataclasses.replace(config, kind="logmel", state_pool=1, hop_ms=config.hop_ms / config.state_pool,
                                **FeatureConfig.mean_norm_fields("none"))
    return FeatureExtractor(plain).eval()


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
    hop, n_fft = extractor.config.hop_length, extractor.config.n_fft
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
