"""Classify utterances with a trained checkpoint: one waveform, a batch, a file, or segments.

The :class:`Predictor` rebuilds the feature extractor and the model from a
:class:`~recognition.engine.checkpoint.Checkpoint` once, keeps both in eval mode and then
only reads them. Inference applies exactly what training applied: edge-silence trimming,
the front end (Whisper encoder states, or log-Mel/MFCC) centred and scaled with the
checkpoint's statistics, the model and a softmax. A model trained with speed augmentation
is also asked at those speeds and the answers averaged (:mod:`.tta`); the attention is the
speed-1.0 pass's.

Thread safety: one Predictor may be shared by the threads of a web server's pool. Every
call works on its own local tensors under ``torch.inference_mode()`` (a thread-local
switch), the modules are in eval mode (BatchNorm and Dropout then only read their
buffers), and nothing is stored on ``self`` per call. So no lock is needed, and none is
taken: a lock around ``predict`` would serialise the pool. The one lazily mutated piece
of torch state, the LSTM's flattened weight list, is settled by a warm-up forward in
``__init__`` before any other thread can see the object.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor

from .audio import DEFAULT_MAX_SECONDS, decode_audio
from .checkpoint import Checkpoint, load_checkpoint
from .feature_stats import pad_batch
from .features import FeatureConfig, FeatureExtractor, SpeakerCentre, trim_span
from .model import EmotionNet, EnsembleNet, ModelConfig
from .predictions import Prediction, SegmentPrediction
from .tta import change_speed, inference_speeds, tta_speeds
from .vad import VadConfig, segment_speech

__all__ = ["Prediction", "SegmentPrediction", "Predictor"]

class Predictor:
    """Inference with one checkpoint; safe to share between threads (see module docstring).

    Args:
        checkpoint: a validated checkpoint (see :func:`load_checkpoint`).
        device: torch device; ``None`` picks CUDA when available, else the CPU.
        tta: average over the speeds the model was trained at (one pass per speed and
            model of a seed ensemble, up to :data:`~recognition.engine.tta.MAX_PASSES`
            passes); False asks each model once, at speed 1.0.
    """

    def __init__(self, checkpoint: Checkpoint, device: str | torch.device | None = None, tta: bool = True) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._device = torch.device(device)
        self._checkpoint = checkpoint
        self._labels: tuple[str, ...] = tuple(checkpoint.labels)
        self._extractor: FeatureExtractor = checkpoint.build_extractor(self._device)
        self._model: EmotionNet | EnsembleNet = checkpoint.build_model(self._device).fused()
        cfg = checkpoint.feature_config
        self._hop_s = cfg.hop_length * checkpoint.model_config.time_stride / cfg.sample_rate
        trained = tta_speeds(checkpoint.extra.get("train_config"))
        self._speeds = inference_speeds(trained, members=checkpoint.n_members, tta=tta)
        # Warm-up: lets torch finish any lazy set-up (LSTM flat weights, CUDA kernels)
        # here, single-threaded, instead of inside the first concurrent calls.
        self._forward([np.zeros(cfg.n_fft, np.float32)])

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None, tta: bool = True) -> Predictor:
        """Load ``path`` with :func:`load_checkpoint` (its CheckpointError propagates)."""
        return cls(load_checkpoint(path, map_location="cpu"), device=device, tta=tta)

    # -- read-only views -----------------------------------------------------------------

    @property
    def checkpoint(self) -> Checkpoint:
        """The checkpoint this predictor was built from (metrics, extra, engine version)."""
        return self._checkpoint

    @property
    def labels(self) -> list[str]:
        """Class labels in the model's output order (a fresh list)."""
        return list(self._labels)

    @property
    def feature_config(self) -> FeatureConfig:
        return self._checkpoint.feature_config

    @property
    def model_config(self) -> ModelConfig:
        return self._checkpoint.model_config

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def sample_rate(self) -> int:
        """Rate every waveform passed in must have (16 kHz for the default features)."""
        return self._checkpoint.feature_config.sample_rate

    # -- public API ----------------------------------------------------------------------

    @property
    def speeds(self) -> tuple[float, ...]:
        """Playback speeds each utterance is classified at (``(1.0,)`` without TTA)."""
        return self._speeds

    @property
    def passes(self) -> int:
        """Model passes per utterance: every model of the checkpoint at every speed."""
        return self._checkpoint.n_members * len(self._speeds)

    @property
    def speaker_normalised(self) -> bool:
        """Whether the model's features are centred on a speaker mean (``speaker_cmn``)."""
        return self._checkpoint.feature_config.speaker_cmn

    def speaker_centre(self, waveforms: Sequence[np.ndarray] = (), running: SpeakerCentre | None = None) -> SpeakerCentre | None:
        """Add one speaker's utterances (each ``(samples,)``, trimmed here as in training) to
        ``running`` (a new running mean when None) and return it; None when the model is not
        :attr:`speaker_normalised`. Pass its ``value`` as ``centre`` to the predict methods."""
        if not self.speaker_normalised:
            return None
        running = running if running is not None else SpeakerCentre(self._extractor, self._speeds)
        kept = []
        for waveform in waveforms:
            w = self._validate(waveform)
            start, end = self._trim(w)
            if end > start:
                kept.append(w[start:end])
        if kept:
            running.add(kept)
        return running

    def predict(self, waveform: np.ndarray, centre: Tensor | None = None) -> Prediction:
        """Classify one mono waveform, shape ``(samples,)`` float at :attr:`sample_rate`.

        ``centre``: the speaker mean from :meth:`speaker_centre` (``(n_features,)``, or one row
        per speed ``(len(speeds), n_features)``), used by speaker-normalised models; without it
        such a model centres the utterance on itself.

        Raises:
            ValueError: empty, not 1-D, not floating point, or non-finite samples.
        """
        return self._forward([self._validate(waveform)], centre)[0]

    def predict_batch(self, waveforms: Sequence[np.ndarray], batch_size: int = 32, centre: Tensor | None = None) -> list[Prediction]:
        """Classify several waveforms (each ``(samples_i,)``), in input order.

        Results equal those of :meth:`predict` one by one: the features and the model
        ignore zero padding. Utterances are grouped by length to keep padding small.
        ``centre`` (see :meth:`predict`) applies to all of them: one speaker.

        Raises:
            ValueError: any waveform is invalid (message names its index), or batch_size < 1.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        checked = []
        for index, waveform in enumerate(waveforms):
            try:
                checked.append(self._validate(waveform))
            except ValueError as exc:
                raise ValueError(f"waveform {index}: {exc}") from exc
        # Sort by length so each batch pads little; results go back to input order.
        order = sorted(range(len(checked)), key=lambda i: checked[i].size)
        results: list[Prediction | None] = [None] * len(checked)
        for first in range(0, len(order), batch_size):
            chunk = order[first : first + batch_size]
            for i, prediction in zip(chunk, self._forward([checked[i] for i in chunk], centre), strict=True):
                results[i] = prediction
        return results  # type: ignore[return-value]  # every slot is filled above

    def predict_file(
        self,
        source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO,
        max_seconds: float | None = DEFAULT_MAX_SECONDS,
    ) -> Prediction:
        """Decode ``source`` (path, bytes or binary file) with :func:`decode_audio` and classify it.

        Raises:
            AudioError: (a ValueError) the input is not usable audio or is too long.
        """
        waveform = decode_audio(source, sample_rate=self.sample_rate, max_seconds=max_seconds)
        return self.predict(waveform)

    def predict_segments(
        self, waveform: np.ndarray, vad_config: VadConfig | None = None, batch_size: int = 32, centre: Tensor | None = None
    ) -> list[SegmentPrediction]:
        """Cut ``waveform`` ``(samples,)`` into speech segments (webrtcvad) and classify each:
        :meth:`predict_speech`'s segments. A speaker-normalised model without ``centre`` takes
        the recording as one speaker and centres every segment on the mean of all its segments.

        Returns:
            One :class:`SegmentPrediction` per segment, in time order; empty when no speech.

        Raises:
            ValueError: invalid waveform, or ``vad_config.sample_rate`` differs from
                :attr:`sample_rate`.
        """
        return self.predict_speech(waveform, vad_config=vad_config, centre=centre, batch_size=batch_size)[0]

    # -- internals -----------------------------------------------------------------------

    def _speech_spans(self, waveform: np.ndarray, vad_config: VadConfig | None) -> list[tuple[int, int]]:
        """``[begin, end)`` samples of each speech segment (webrtcvad) of the validated ``waveform``."""
        sr = self.sample_rate
        config = vad_config if vad_config is not None else VadConfig(sample_rate=sr)
        if config.sample_rate != sr:
            raise ValueError(f"the VAD runs at {config.sample_rate} Hz but the model needs {sr} Hz")
        spans = []
        for segment in segment_speech(waveform, config):
            # Same rounding as Segment.slice, so start/end name the exact samples classified.
            begin, stop = int(round(segment.start * sr)), int(round(segment.end * sr))
            if stop > begin:
                spans.append((begin, stop))
        return spans

    def _validate(self, waveform: np.ndarray) -> np.ndarray:
        """Check one input and return it as contiguous float32 ``(samples,)``."""
        if isinstance(waveform, Tensor):
            waveform = waveform.detach().cpu().numpy()
        x = np.asarray(waveform)
        if x.ndim != 1:
            raise ValueError(f"expected a mono waveform of shape (samples,), got shape {x.shape}")
        if x.size == 0:
            raise ValueError("the waveform is empty")
        if not np.issubdtype(x.dtype, np.floating):
            # Integer PCM would be 32768 times too loud; make the caller scale it.
            raise ValueError(f"expected float samples in [-1, 1], got dtype {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise ValueError("the waveform contains non-finite samples (NaN or infinity)")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _trim(self, waveform: np.ndarray) -> tuple[int, int]:
        """``[start, end)`` samples kept by training's trimming."""
        return trim_span(waveform, self._checkpoint.feature_config)

    def _forward(self, waveforms: list[np.ndarray], centre: Tensor | None = None) -> list[Prediction]:
        """Trim, pad, extract, classify one batch of validated ``(samples_i,)`` waveforms
        (one speaker, when ``centre`` is given), at every speed of :attr:`speeds`."""
        sr = self._checkpoint.feature_config.sample_rate
        bounds = [self._trim(w) for w in waveforms]
        pieces = [w[s:e] for w, (s, e) in zip(waveforms, bounds, strict=True)]
        n, speeds = len(pieces), self._speeds
        # All speeds in one batch, speed-major: rows [k*n, (k+1)*n) hold speed k.
        batch, lengths = pad_batch([change_speed(p, speed) for speed in speeds for p in pieces])
        with torch.inference_mode():
            batch = batch.to(self._device, non_blocking=True)
            lengths = lengths.to(self._device)
            centres = None if centre is None else self._centre_rows(centre, n)
            features, frame_lengths = self._extractor(batch, lengths, centres)  # (V*B, frames, F), (V*B,)
            logits, weights = self._model(features, frame_lengths)  # (V*B, C), (V*B, steps)
            probs = torch.softmax(logits.double(), dim=1).reshape(len(speeds), n, -1).mean(0).cpu().numpy()  # (B, C)
            # The attention of the speed-1.0 rows: their time axis is the input's.
            at_one = speeds.index(1.0)
            plain = slice(at_one * n, (at_one + 1) * n)
            steps = self._model.output_lengths(frame_lengths[plain]).cpu()  # (B,) valid attention steps
            weights = weights[plain].double().cpu().numpy()  # (B, steps_max), 0 on padding
        results = []
        for i, (start, _) in enumerate(bounds):
            p = probs[i] / probs[i].sum()
            att = weights[i, : int(steps[i])]
            att = (att / att.sum()).astype(np.float32)
            results.append(
                Prediction(
                    label=self._labels[int(np.argmax(p))],
                    probabilities={label: float(v) for label, v in zip(self._labels, p, strict=True)},
                    attention=att,
                    attention_hop=self._hop_s,
                    attention_offset=start / sr,
                    duration=waveforms[i].size / sr,
                )
            )
        return results

    def _centre_rows(self, centre: Tensor, n: int) -> Tensor:
        """The extractor's ``centres`` ``(len(speeds) * n, n_features)`` for ``n`` utterances of
        one speaker: a ``(n_features,)`` centre serves every speed, a ``(len(speeds), n_features)``
        one gives each speed its own row."""
        c = torch.as_tensor(centre, dtype=torch.float32)
        n_features = self._checkpoint.feature_config.n_features
        if c.shape == (n_features,):
            return c.expand(len(self._speeds) * n, -1)
        if c.shape == (len(self._speeds), n_features):
            return c.repeat_interleave(n, dim=0)
        raise ValueError(f"centre must have shape ({n_features},) or ({len(self._speeds)}, {n_features}), got {tuple(c.shape)}")

    # -- one front-end pass per recording (recognition.engine.classify) ------------------

    def predict_speech(
        self,
        waveform: np.ndarray,
        spans: Sequence[tuple[int, int]] | None = None,
        *,
        vad_config: VadConfig | None = None,
        centre: Tensor | None = None,
        running: SpeakerCentre | None = None,
        batch_size: int = 32,
    ) -> tuple[list[SegmentPrediction], Tensor | None]:
        """Classify the speech of one speaker's ``waveform`` ``(samples,)`` with one front-end
        pass: the waveform is validated once, the VAD finds its speech (or ``spans``, ``[begin,
        end)`` samples, say where it is), each span is trimmed once and its features at every
        speed are computed once. A speaker-normalised model without ``centre`` is centred on the
        mean of those same features, the value :meth:`speaker_centre` of the spans gives. The
        results equal :meth:`predict_segments`'. ``running`` (from :meth:`speaker_centre`, for
        a live speaker): those features are added to it and the model is centred on its new
        value, so one front-end pass serves both.

        Returns:
            One :class:`SegmentPrediction` per span, in order, and the centre used.

        Raises:
            ValueError: invalid waveform, an empty or out-of-range span, a VAD rate that
                differs from :attr:`sample_rate`, or batch_size < 1.
        """
        if running is not None and (centre is not None or running.speeds != self._speeds):
            raise ValueError("give a running speaker mean of this predictor's speeds, or a centre, not both")
        x = self._validate(waveform)
        if spans is None:
            spans = self._speech_spans(x, vad_config)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        pieces, offsets = [], []
        for begin, end in spans:
            if not 0 <= begin < end <= x.size:
                raise ValueError(f"span ({begin}, {end}) is empty or outside the {x.size} samples")
            start, stop = self._trim(x[begin:end])
            pieces.append(x[begin + start : begin + stop])
            offsets.append(begin + start)
        speeds, extractor, n_features = self._speeds, self._extractor, self._checkpoint.feature_config.n_features
        own_centre = centre is None and self.speaker_normalised
        order = sorted(range(len(pieces)), key=lambda i: pieces[i].size)
        batches = [order[first : first + batch_size] for first in range(0, len(order), batch_size)]

        def front_end(chunk: list[int]) -> tuple[Tensor, Tensor]:
            # All speeds in one batch, speed-major: rows [k*n, (k+1)*n) hold speed k.
            batch, lengths = pad_batch([change_speed(pieces[i], speed) for speed in speeds for i in chunk])
            return extractor.uncentred(batch.to(self._device), lengths.to(self._device))

        kept: list[tuple[Tensor, Tensor] | None] = [None] * len(batches)
        with torch.inference_mode():
            if own_centre and pieces:
                sums = torch.zeros(len(speeds), n_features, dtype=torch.float64)
                counts = torch.zeros(len(speeds), dtype=torch.float64)
                budget = _KEEP_BYTES
                for b, chunk in enumerate(batches):
                    feats, frame_lengths = front_end(chunk)  # (V*B, frames, F), (V*B,)
                    valid = torch.arange(feats.shape[1], device=feats.device)[None] < frame_lengths[:, None]
                    sums += (feats * valid[..., None]).sum(1).double().cpu().reshape(len(speeds), len(chunk), -1).sum(1)
                    counts += frame_lengths.double().cpu().reshape(len(speeds), -1).sum(1)
                    budget -= feats.numel() * feats.element_size()
                    if budget >= 0:  # beyond the budget (hours of encoder states) they are computed again
                        kept[b] = (feats, frame_lengths)
                if running is not None:
                    centre = running.add_totals(sums, counts)
                else:
                    mean = extractor.speaker_estimate(sums, counts)  # (V, F)
                    centre = mean[0] if len(speeds) == 1 else mean
            results: list[SegmentPrediction | None] = [None] * len(pieces)
            sr, at_one = self.sample_rate, speeds.index(1.0)
            for b, chunk in enumerate(batches):
                n = len(chunk)
                feats, frame_lengths = kept[b] or front_end(chunk)
                kept[b] = None
                rows = self._centre_rows(centre, n) if self.speaker_normalised and centre is not None else None
                feats, frame_lengths = extractor.centred(feats, frame_lengths, rows, scale=True)
                logits, weights = self._model(feats, frame_lengths)  # (V*B, C), (V*B, steps)
                probs = torch.softmax(logits.double(), dim=1).reshape(len(speeds), n, -1).mean(0).cpu().numpy()  # (B, C)
                plain = slice(at_one * n, (at_one + 1) * n)  # the speed-1.0 rows: the input's time axis
                steps = self._model.output_lengths(frame_lengths[plain]).cpu()
                weights = weights[plain].double().cpu().numpy()
                for row, i in enumerate(chunk):
                    p = probs[row] / probs[row].sum()
                    att = weights[row, : int(steps[row])]
                    begin, end = spans[i]
                    results[i] = SegmentPrediction(
                        start=begin / sr,
                        end=end / sr,
                        prediction=Prediction(
                            label=self._labels[int(np.argmax(p))],
                            probabilities={label: float(v) for label, v in zip(self._labels, p, strict=True)},
                            attention=(att / att.sum()).astype(np.float32),
                            attention_hop=self._hop_s,
                            attention_offset=offsets[i] / sr,
                            duration=(end - begin) / sr,
                        ),
                    )
        return results, centre  # type: ignore[return-value]  # every slot is filled above


# predict_speech keeps a recording's features between the speaker mean and the model up to this
# size; past it (long recordings of encoder states) the front end runs again instead.
_KEEP_BYTES = 256 * 1024 * 1024
