"""CPU-speed layers of :mod:`.model`: drop-in replacements that give the same values as the
PyTorch layers they stand for, and the padding mask shared by the model's layers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BatchOneConv", "SlicePool", "padded_bilstm", "mask"]


class BatchOneConv(nn.Module):
    """A one-input-channel ``Conv2d`` that runs a batch of one as a two-channel convolution
    whose second channel is zero.

    On the CPU, oneDNN's channels-last convolution with one input channel takes a slow kernel
    for a batch of one (several times slower than with two input channels; bench/RESULTS.md),
    and a batch of one is what classifying one recording is. The zero channel adds exact zeros, so the output is the
    convolution's own up to float summation order.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        weight = conv.weight.detach()
        self.register_buffer("weight_two", torch.cat([weight, torch.zeros_like(weight)], dim=1))

    def forward(self, x: Tensor) -> Tensor:
        """x ``(batch, 1, freq, time)`` → ``(batch, out_channels, freq, time)``."""
        if x.shape[0] != 1:
            return self.conv(x)
        x = nn.functional.pad(x, (0, 0, 0, 0, 0, 1)).contiguous(memory_format=torch.channels_last)
        return nn.functional.conv2d(x, self.weight_two, self.conv.bias, padding=self.conv.padding)


class SlicePool(nn.Module):
    """``MaxPool2d`` with kernel = stride and no padding, as elementwise maxima of strided views.

    On the CPU, the maxima of strided views are faster than ATen's channels-last max-pooling
    (bench/RESULTS.md) and give the same values exactly (a maximum involves no rounding). Inference
    only: at ties their gradient would differ from max-pooling's.
    """

    def __init__(self, pool: tuple[int, int]) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        """x ``(batch, channels, freq, time)`` → ``(batch, channels, freq // pf, time // pt)``."""
        for dim, k in ((2, self.pool[0]), (3, self.pool[1])):
            if k == 1:
                continue
            kept = x.narrow(dim, 0, x.shape[dim] // k * k)  # the rest is dropped, as pooling does
            views = [kept[(slice(None),) * dim + (slice(i, None, k),)] for i in range(k)]
            x = views[0]
            for view in views[1:]:
                x = torch.maximum(x, view)
        return x


def _reversal_index(lengths: Tensor, time: int) -> Tensor:
    """``(batch * time,)`` row index that reverses each utterance of a ``(batch * time, ...)``
    view within its own length and leaves its padding in place; applying it twice restores
    the input."""
    t = torch.arange(time, device=lengths.device)
    within = torch.where(t[None, :] < lengths[:, None], lengths[:, None] - 1 - t[None, :], t[None, :])  # (batch, time)
    return (within + time * torch.arange(lengths.shape[0], device=lengths.device)[:, None]).reshape(-1)


def padded_bilstm(lstm: nn.LSTM, x: Tensor, lengths: Tensor) -> Tensor:
    """``lstm`` (batch-first, bidirectional, no projections) over the zero-padded batch ``x``
    ``(batch, time, input)`` with ``lengths`` ``(batch,)`` → ``(batch, time, 2*hidden)``, 0 on
    padded steps: what the packed LSTM gives, computed one layer and direction at a time.

    On the CPU a packed batch of several utterances takes PyTorch's step-by-step LSTM and a
    padded one oneDNN's, which is faster for training and inference alike (bench/RESULTS.md). Padding still
    never reaches a valid step: it comes after each utterance's valid steps in the forward
    direction, and the backward direction reads each utterance reversed within its own
    length, so there too its padding comes last.
    """
    batch, time, _ = x.shape
    lengths = lengths.to(x.device)
    index = _reversal_index(lengths, time)

    def reverse(h: Tensor) -> Tensor:
        return h.reshape(batch * time, -1).index_select(0, index).reshape(batch, time, -1)

    names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if lstm.bias else ())
    zeros = x.new_zeros(1, batch, lstm.hidden_size)
    out = x
    for layer in range(lstm.num_layers):
        if layer and lstm.dropout and lstm.training:
            out = nn.functional.dropout(out, lstm.dropout, training=True)
        ahead_weights = [getattr(lstm, f"{name}_l{layer}") for name in names]
        behind_weights = [getattr(lstm, f"{name}_l{layer}_reverse") for name in names]
        # torch.lstm is the op nn.LSTM itself calls: one layer, one direction, batch first.
        ahead = torch.lstm(out, (zeros, zeros), ahead_weights, lstm.bias, 1, 0.0, lstm.training, False, True)[0]
        behind = torch.lstm(reverse(out), (zeros, zeros), behind_weights, lstm.bias, 1, 0.0, lstm.training, False, True)[0]
        out = torch.cat([ahead, reverse(behind)], dim=2)
    return out * mask(lengths, time)[..., None]


def mask(lengths: Tensor, size: int) -> Tensor:
    """``(batch, size)`` float mask, 1 where the index is below the length."""
    return (torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]).to(torch.float32)
