"""Speaker-adversarial training: a small head learns to tell the training speakers apart from
the utterance vector the emotion classifier reads, and its gradient reaches the network
reversed (a gradient reversal layer), so the network is pushed to keep who is speaking out of
that vector while it learns the emotion. Training only: the head is never saved with a model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .data import Example


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient comes back negated and scaled by ``strength``."""

    @staticmethod
    def forward(ctx, x: Tensor, strength: float) -> Tensor:  # noqa: ANN001 - autograd's signature
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        return grad.neg() * ctx.strength, None


class SpeakerAdversary(nn.Module):
    """``forward(context (batch, dim), strength) -> speaker logits (batch, speakers)``; the
    gradient into ``context`` is ``-strength`` times the speaker loss's."""

    def __init__(self, dim: int, speakers: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, speakers))

    def forward(self, context: Tensor, strength: float) -> Tensor:
        return self.net(_ReverseGradient.apply(context, strength))


def speaker_index(examples: Sequence[Example]) -> dict[tuple[str, str], int]:
    """Each known (corpus, speaker) of ``examples`` → a class index, in sorted order."""
    keys = sorted({(e.corpus, e.speaker) for e in examples if e.speaker is not None})
    return {key: i for i, key in enumerate(keys)}


def speaker_targets(examples: Sequence[Example], index: dict[tuple[str, str], int]) -> Tensor:
    """``(batch,)`` speaker classes; -100 (ignored by the loss) where the speaker is unknown."""
    return torch.tensor([index.get((e.corpus, e.speaker), -100) for e in examples])


def reversal_strength(weight: float, progress: float) -> float:
    """The reversed gradient's scale at ``progress`` (0-1) through training: ramps from 0 to
    ``weight`` along 2 / (1 + e^(-10 p)) - 1, so the classifier finds its footing before the
    network is pushed to hide the speaker (the usual schedule of domain-adversarial training)."""
    return weight * (2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0)
