"""Whisper's log-Mel front end and encoder in PyTorch, read from the CTranslate2 weights.

Clip-length input (no padding to 30 s), batched with padding masks: every utterance's
states equal what it gets alone (tested). Each block's output is returned, so a model can
learn which layers to read; the last one is taken after the final layer norm, which is the
encoder output that CTranslate2's ``Whisper.encode`` gives (tested against it).

Whisper's front end: 80 Slaney Mel bands over a 400-point periodic-Hann STFT every 160
samples (25 ms / 10 ms at 16 kHz), frames centred with reflection at the edges, the last
frame dropped; ``log10`` of the power clamped at 1e-10, floored 8 below the utterance's
maximum, then ``(x + 4) / 4``. Two convolutions (the second with stride 2) give one state
per 20 ms.
"""

from __future__ import annotations

import copy
import functools
import os
import threading

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .weights import BASE_SHAPES, EncoderWeights, load_encoder_weights

__all__ = [
    "WhisperEncoder", "get_encoder", "encoder_precision", "native_bfloat16", "PRECISIONS", "state_frames", "pool_states", "pooled_frames",
    "SAMPLES_PER_STATE", "MAX_SAMPLES", "N_FFT", "HOP",
]

N_FFT = 400
HOP = 160
SAMPLES_PER_STATE = 2 * HOP  # one encoder state per 20 ms
MAX_SAMPLES = BASE_SHAPES["positions"] * SAMPLES_PER_STATE  # 30 s: the position table's length


def state_frames(samples: int | Tensor) -> int | Tensor:
    """Encoder states for an input of ``samples`` samples (inputs shorter than one FFT
    window are padded to it): ``ceil((samples // 160) / 2)`` per 30 s chunk."""
    if isinstance(samples, Tensor):
        n = samples.clamp(min=N_FFT)
        full, rest = torch.div(n, MAX_SAMPLES, rounding_mode="floor"), n % MAX_SAMPLES
        part = torch.where(rest > 0, torch.div(rest.clamp(min=N_FFT) // HOP + 1, 2, rounding_mode="floor"), torch.zeros_like(rest))
        return full * BASE_SHAPES["positions"] + part
    n = max(int(samples), N_FFT)
    full, rest = divmod(n, MAX_SAMPLES)
    return full * BASE_SHAPES["positions"] + ((max(rest, N_FFT) // HOP + 1) // 2 if rest else 0)


def pooled_frames(frames: int | Tensor, pool: int) -> int | Tensor:
    """States left after averaging groups of ``pool``: whole groups only, at least one."""
    if isinstance(frames, Tensor):
        return torch.div(frames, pool, rounding_mode="floor").clamp(min=1)
    return max(1, int(frames) // pool)


def pool_states(states: Tensor, steps: Tensor, pool: int) -> tuple[Tensor, Tensor]:
    """Average each run of ``pool`` states: ``(batch, frames, n)`` → ``(batch, frames // pool, n)``
    and steps ``(batch,)`` → :func:`pooled_frames`.

    A group never mixes in padding: only whole groups of valid states are kept (an utterance
    shorter than one group keeps the mean of what it has). Averaging commutes with the
    per-frame layer mix and with subtracting a mean, so it can run once, before caching.
    """
    if pool == 1:
        return states, steps
    batch, frames, width = states.shape
    out_steps = pooled_frames(steps, pool)
    groups = max(1, frames // pool)
    if frames < pool:
        states = F.pad(states, (0, 0, 0, pool - frames))
    pooled = states[:, : groups * pool].reshape(batch, groups, pool, width).mean(2)
    short = (steps < pool).nonzero().flatten().tolist()
    for row in short:
        n = max(1, int(steps[row]))
        pooled[row, 0] = states[row, :n].mean(0)
    keep = torch.arange(groups, device=states.device)[None, :] < out_steps[:, None]
    return pooled * keep[..., None], out_steps


# Each block's modules and their names in the CTranslate2 file.
_BLOCK_PARAMETERS = (
    ("attn_norm", "self_attention/layer_norm"),
    ("qkv", "self_attention/linear_0"),
    ("out", "self_attention/linear_1"),
    ("mlp_norm", "ffn/layer_norm"),
    ("fc1", "ffn/linear_0"),
    ("fc2", "ffn/linear_1"),
)


class _Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)  # Whisper's key has no bias: CTranslate2 stores zeros
        self.out = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        """x ``(batch, time, width)``; key_mask ``(batch, 1, 1, time)`` bool, True = attend."""
        batch, time, width = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(batch, time, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)  # (batch, heads, time, head_dim)
        x = x + self.out(att.transpose(1, 2).reshape(batch, time, width))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_norm(x))))


class WhisperEncoder(nn.Module):
    """Whisper-base encoder. ``forward(waveforms, lengths) -> (states, state_lengths)``:

    waveforms ``(batch, samples)`` float32 at 16 kHz, zero-padded; lengths ``(batch,)``.
    states ``(batch, frames, layers * 512)``: each block's output side by side (block 1
    first, the last after the final layer norm), 0 on padded frames; state_lengths
    ``(batch,)``, see :func:`state_frames`. Inputs longer than 30 s are encoded in 30 s
    chunks whose states are concatenated.
    """

    def __init__(self, weights: EncoderWeights) -> None:
        super().__init__()
        s = BASE_SHAPES
        self.encoder_id = weights.encoder_id
        self.width, self.layers = s["width"], s["layers"]
        self.conv1 = nn.Conv1d(s["n_mels"], s["width"], 3, padding=1)
        self.conv2 = nn.Conv1d(s["width"], s["width"], 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(s["positions"], s["width"]))
        self.blocks = nn.ModuleList(_Block(s["width"], weights.heads) for _ in range(s["layers"]))
        self.final_norm = nn.LayerNorm(s["width"])
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True))
        from ..features import mel_filterbank  # here: features imports this module

        self.register_buffer("mel", torch.from_numpy(mel_filterbank(16000, N_FFT, s["n_mels"])).float())
        self._load(weights.tensors)
        self.eval()
        self.requires_grad_(False)

    @property
    def n_features(self) -> int:
        """Values per state: every block's output side by side."""
        return self.layers * self.width

    def _load(self, t: dict[str, np.ndarray]) -> None:
        def put(param: Tensor, name: str) -> None:
            param.data.copy_(torch.from_numpy(np.ascontiguousarray(t[name])))

        put(self.conv1.weight, "encoder/conv1/weight")
        put(self.conv1.bias, "encoder/conv1/bias")
        put(self.conv2.weight, "encoder/conv2/weight")
        put(self.conv2.bias, "encoder/conv2/bias")
        put(self.positions, "encoder/position_encodings/encodings")
        put(self.final_norm.weight, "encoder/layer_norm/gamma")
        put(self.final_norm.bias, "encoder/layer_norm/beta")
        for i, block in enumerate(self.blocks):
            for module, name in _BLOCK_PARAMETERS:
                prefix = f"encoder/layer_{i}/{name}"
                norm = name.endswith("layer_norm")
                put(getattr(block, module).weight, f"{prefix}/{'gamma' if norm else 'weight'}")
                put(getattr(block, module).bias, f"{prefix}/{'beta' if norm else 'bias'}")
        # Whisper scales queries and keys by head_dim ** -0.25 each; scaled_dot_product_attention
        # scales their product by head_dim ** -0.5 itself, which is the same.

    def log_mel(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Whisper's log-Mel ``(batch, 80, frames)`` (0 on padded frames) and frame lengths ``(batch,)``.

        Each row is reflected at its own edges, so padding never reaches a valid frame."""
        lengths = lengths.to(waveforms.device).clamp(min=N_FFT)
        batch = waveforms.shape[0]
        half = N_FFT // 2
        width = max(int(lengths.max()), waveforms.shape[1])
        padded = waveforms.new_zeros(batch, width + 2 * half)
        for row in range(batch):
            n = int(lengths[row])
            w = waveforms[row, : min(n, waveforms.shape[1])]
            if w.shape[0] < n:  # shorter than one window: zeros up to it, as the lone input gets
                w = F.pad(w, (0, n - w.shape[0]))
            padded[row, half : half + n] = w
            padded[row, :half] = w[1 : half + 1].flip(0)
            padded[row, half + n : 2 * half + n] = w[n - half - 1 : n - 1].flip(0)
        spec = torch.stft(padded, N_FFT, HOP, window=self.window, center=False, return_complex=True)  # (batch, 201, width//160 + 1)
        power = spec[..., :-1].abs().square()  # Whisper drops the last frame
        mel = torch.matmul(self.mel, power).clamp_(min=1e-10).log10_()  # (batch, 80, frames)
        frames = torch.div(lengths, HOP, rounding_mode="floor")
        valid = torch.arange(mel.shape[2], device=mel.device)[None, :] < frames[:, None]  # (batch, frames)
        top = mel.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=(1, 2), keepdim=True)
        mel = (torch.maximum(mel, top - 8.0) + 4.0) / 4.0
        return mel * valid[:, None, :], frames

    def encode_mel(self, mel: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Log-Mel ``(batch, 80, frames <= 3000)`` → every block's output ``(batch, states, layers * 512)``,
        float32 whatever precision the encoder computes in."""
        mel = mel.to(self.conv1.weight.dtype)
        valid = torch.arange(mel.shape[2], device=mel.device)[None, :] < frames[:, None]
        x = F.gelu(self.conv1(mel)) * valid[:, None, :]  # zeros past each end, as the lone input's padding
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # (batch, states, width)
        steps = torch.div(frames + 1, 2, rounding_mode="floor")
        x = x + self.positions[: x.shape[1]]
        keep = torch.arange(x.shape[1], device=x.device)[None, :] < steps[:, None]  # (batch, states)
        key_mask = None if bool(keep.all()) else keep[:, None, None, :]
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x, key_mask)
            outputs.append(self.final_norm(x) if i == len(self.blocks) - 1 else x)
        states = torch.cat(outputs, dim=2).float()  # (batch, states, layers * width)
        return states * keep[..., None], steps

    def forward(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        lengths = lengths.to(waveforms.device)
        if int(lengths.max()) <= MAX_SAMPLES:
            return self.encode_mel(*self.log_mel(waveforms, lengths))
        rows = [self._long(waveforms[i, : int(lengths[i])]) for i in range(waveforms.shape[0])]
        steps = torch.tensor([r.shape[0] for r in rows], device=waveforms.device)
        out = waveforms.new_zeros(len(rows), int(steps.max()), self.n_features)
        for i, r in enumerate(rows):
            out[i, : r.shape[0]] = r
        return out, steps

    def _long(self, waveform: Tensor) -> Tensor:
        """One utterance over 30 s, encoded in 30 s chunks: ``(states, layers * 512)``."""
        parts = []
        for start in range(0, waveform.shape[0], MAX_SAMPLES):
            chunk = waveform[start : start + MAX_SAMPLES]
            states, steps = self.encode_mel(*self.log_mel(chunk[None], torch.tensor([chunk.shape[0]], device=chunk.device)))
            parts.append(states[0, : int(steps[0])])
        return torch.cat(parts)


_ENCODERS: dict[tuple[str, str], WhisperEncoder] = {}
_LOCK = threading.Lock()
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def native_bfloat16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU
    with AMX or AVX-512 BF16 instructions (elsewhere bfloat16 is emulated, and slower)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return _cpu_bfloat16()


@functools.cache
def _cpu_bfloat16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def encoder_precision(device: str | torch.device = "cpu") -> str:
    """``SER_ENCODER_PRECISION`` for inference: ``auto`` (default: ``bfloat16`` where
    :func:`native_bfloat16`, else ``float32``), ``float32`` or ``bfloat16`` (the encoder's
    weights and activations; the Mel front end and the states handed on stay float32)."""
    value = os.environ.get("SER_ENCODER_PRECISION", "auto").strip().lower() or "auto"
    if value == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    if value not in PRECISIONS:
        raise ValueError(f"SER_ENCODER_PRECISION must be auto or one of {sorted(PRECISIONS)}, not {value!r}")
    return value


def get_encoder(device: str | torch.device = "cpu", precision: str | None = None) -> WhisperEncoder:
    """The process's one encoder on ``device`` in ``precision`` (default :func:`encoder_precision`),
    loaded and checked on first use.

    Shared by every predictor and trainer of the process (it is read-only: eval mode, no
    gradients), so several model versions cost the encoder's memory once.

    Raises:
        WhisperWeightsError: the weights are missing or wrong (the message says how to fix it).
    """
    precision = precision or encoder_precision(device)
    key = (str(torch.device(device)), precision)
    with _LOCK:
        if key not in _ENCODERS:
            full = _ENCODERS.get((key[0], "float32"))
            if full is None:
                full = _ENCODERS[(key[0], "float32")] = WhisperEncoder(load_encoder_weights()).to(key[0])
            if precision != "float32":
                reduced = copy.deepcopy(full)
                for name, module in reduced.named_children():
                    if name != "mel":  # buffers of the Mel front end stay float32
                        module.to(PRECISIONS[precision])
                reduced.positions = reduced.positions.to(PRECISIONS[precision])
                _ENCODERS[key] = reduced
        return _ENCODERS[key]
