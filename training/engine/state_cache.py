"""Encoder states computed once per utterance and kept: in memory and as float16 ``.npy`` files.

A frozen pretrained encoder gives the same states for the same audio every epoch, so the
training head never waits for it after the first pass. Entries are keyed by a SHA-256 of
the exact samples the encoder read and by the encoder's identity (which names the weights'
own hash), so changing the audio, its trimming or the weights can never serve stale states.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from recognition.engine.whisper import WhisperEncoder, pool_states

__all__ = ["StateCache", "audio_key"]

Progress = Callable[[int, int], None]
# Utterances per encoder batch; sorted by length, so little of a batch is padding.
_BATCH = 8


def audio_key(waveform: np.ndarray) -> str:
    """SHA-256 of the float32 samples ``(samples,)``: the cache key's audio part."""
    return hashlib.sha256(np.ascontiguousarray(waveform, dtype=np.float32).tobytes()).hexdigest()


class StateCache:
    """Every block's encoder states ``(frames, n_features)`` float16 for each utterance,
    averaged over groups of ``pool`` (:func:`~recognition.engine.whisper.pool_states`).

    Args:
        encoder: the frozen encoder (its ``encoder_id`` is part of every key).
        cache_dir: where ``.npy`` files are kept across runs; None keeps states in memory only.
        pool: states averaged per cached frame (part of every key too).
    """

    def __init__(self, encoder: WhisperEncoder, cache_dir: str | os.PathLike | None = None, pool: int = 1) -> None:
        self.encoder = encoder
        self.pool = pool
        folder = encoder.encoder_id if pool == 1 else f"{encoder.encoder_id}-pool{pool}"
        self.cache_dir = Path(cache_dir) / folder if cache_dir else None
        self._memory: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.npy" if self.cache_dir else None

    def _load(self, key: str) -> np.ndarray | None:
        if key in self._memory:
            return self._memory[key]
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            states = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged entry is recomputed, never trusted
        if states.dtype != np.float16 or states.ndim != 2 or states.shape[1] != self.encoder.n_features:
            return None
        self._memory[key] = states
        return states

    def _store(self, key: str, states: np.ndarray) -> None:
        self._memory[key] = states
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, states, allow_pickle=False)
        os.replace(tmp, path)  # readers see a whole file or none

    def states(self, waveforms: Sequence[np.ndarray], progress: Progress | None = None) -> list[np.ndarray]:
        """The states of each waveform ``(samples_i,)`` float32 16 kHz, in input order,
        computing (in length-sorted batches) only those not cached yet. ``progress(done, total)``
        is called as utterances are encoded."""
        keys = [audio_key(w) for w in waveforms]
        out: list[np.ndarray | None] = [self._load(k) for k in keys]
        todo = sorted((i for i, s in enumerate(out) if s is None), key=lambda i: waveforms[i].size)
        self.hits += len(out) - len(todo)
        self.misses += len(todo)
        device = next(self.encoder.parameters()).device
        done = 0
        for first in range(0, len(todo), _BATCH):
            chunk = todo[first : first + _BATCH]
            lengths = torch.tensor([waveforms[i].size for i in chunk])
            batch = torch.zeros(len(chunk), int(lengths.max()))
            for row, i in enumerate(chunk):
                batch[row, : waveforms[i].size] = torch.from_numpy(np.ascontiguousarray(waveforms[i], dtype=np.float32))
            with torch.inference_mode():
                states, steps = pool_states(*self.encoder(batch.to(device), lengths.to(device)), self.pool)
            states = states.to("cpu", torch.float16).numpy()
            for row, i in enumerate(chunk):
                entry = np.ascontiguousarray(states[row, : int(steps[row])])
                if keys[i] not in self._memory:  # the same audio twice in one call is stored once
                    self._store(keys[i], entry)
                out[i] = self._memory[keys[i]]
            done += len(chunk)
            if progress:
                progress(done, len(todo))
        return out  # type: ignore[return-value]  # every slot is filled above
