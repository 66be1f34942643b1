"""EmotionNet: a front end → 2-layer BLSTM → attention pooling → classifier.

Two front ends: CNN blocks over the log-Mel image ("from scratch", the thesis
architecture), or, when ``encoder_layers`` is set, a learned softmax weighting of a
pretrained encoder's layers (their states arrive side by side in each feature vector,
already averaged over time by the features' ``state_pool``).

Padding never changes an utterance's output: after every CNN block the padded frames are
zeroed again (so they look exactly like the convolution's own zero padding), the BLSTM
sees only valid steps (packed sequences on CUDA; on the CPU each direction runs over the
padded batch, the backward one on each utterance reversed within its own length), and the
attention softmax covers valid frames only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import known_fields
from .layers import BatchOneConv, SlicePool, mask, padded_bilstm

__all__ = ["ModelConfig", "EmotionNet", "EnsembleNet", "MODEL_SIZES"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyperparameters; stored in the checkpoint so inference rebuilds the exact model."""

    n_features: int = 64
    n_classes: int = 8
    conv_channels: tuple[int, ...] = (16, 32, 64)
    kernel_size: int = 3
    # (frequency, time) pooling per CNN block; time stride 8 = one attention step per 80 ms.
    pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 2))
    # Linear + LayerNorm from the CNN's channels×frequency to this size before the BLSTM
    # (0 = feed the CNN output directly). Keeps the recurrence's inputs well scaled.
    lstm_input: int = 128
    lstm_hidden: int = 96
    lstm_layers: int = 2
    attention_dim: int = 96
    dropout: float = 0.1
    conv_dropout: float = 0.0
    # Encoder front end (0 = the CNN over log-Mel): each feature vector holds this many
    # layers' states side by side, mixed by learned softmax weights; no CNN blocks then.
    encoder_layers: int = 0
    # Encoder front end: "softmax" mixes the layers by one learned weight each; "concat" lets
    # the projection read every layer's states side by side (its own weights per layer).
    layer_mix: str = "softmax"

    def __post_init__(self) -> None:
        if self.encoder_layers < 0:
            raise ValueError("encoder_layers must be >= 0")
        if self.encoder_layers:
            if self.conv_channels or self.pools:
                raise ValueError("an encoder front end has no CNN blocks (conv_channels and pools must be empty)")
            if self.n_features % self.encoder_layers:
                raise ValueError("n_features must be a multiple of encoder_layers")
        if self.layer_mix not in ("softmax", "concat"):
            raise ValueError("layer_mix must be softmax or concat")
        if len(self.conv_channels) != len(self.pools):
            raise ValueError("conv_channels and pools need one entry per CNN block")
        if self.n_classes < 2:
            raise ValueError("need at least two classes")
        if self.kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd")
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        object.__setattr__(self, "pools", tuple((int(f), int(t)) for f, t in self.pools))

    @property
    def time_stride(self) -> int:
        """Input frames per output (attention) frame."""
        stride = 1
        for _, t in self.pools:
            stride *= t
        return stride

    @property
    def freq_out(self) -> int:
        if self.encoder_layers:
            return self.n_features if self.layer_mix == "concat" else self.n_features // self.encoder_layers
        size = self.n_features
        for f, _ in self.pools:
            size //= f
        return size

    def to_dict(self) -> dict:
        data = asdict(self)
        data["conv_channels"] = list(self.conv_channels)
        data["pools"] = [list(p) for p in self.pools]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        # Frame pooling moved to the features (FeatureConfig.state_pool); see checkpoint.py.
        data = known_fields(cls, data, "model settings", retired={"frame_pool": 1})
        if "conv_channels" in data:
            data["conv_channels"] = tuple(data["conv_channels"])
        if "pools" in data:
            data["pools"] = tuple(tuple(p) for p in data["pools"])
        return cls(**data)


# Named presets for the web form and the command line.
MODEL_SIZES: dict[str, dict] = {
    "small": {"conv_channels": (8, 16, 32), "lstm_hidden": 64, "attention_dim": 64},
    "medium": {},
    "large": {"conv_channels": (32, 64, 96), "lstm_hidden": 128, "attention_dim": 128},
}


class ConvBlock(nn.Module):
    """Conv2d → BatchNorm2d → ReLU → MaxPool2d → re-zero padded steps → Dropout2d.

    The ReLU runs after the pooling: max-pooling commutes with it exactly (values and
    gradients alike), and the pooled map is a quarter of the size.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, pool: tuple[int, int], dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.norm = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(pool) if pool != (1, 1) else nn.Identity()
        self.time_pool = pool[1]
        self.drop = nn.Dropout2d(dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x: ``(batch, channels, freq, time)``; lengths ``(batch,)`` valid time steps."""
        x = self.act(self.pool(self.norm(self.conv(x))))
        # Pooled steps below floor(length / pool) cover valid frames only; zero the rest so the
        # next convolution sees exactly the zeros it would see at the end of a lone utterance.
        lengths = torch.div(lengths, self.time_pool, rounding_mode="floor")
        x = x * mask(lengths, x.shape[-1])[:, None, None, :]
        return self.drop(x), lengths


class AttentionPooling(nn.Module):
    """Additive attention: score_t = vᵀ tanh(W h_t); softmax over valid frames; weighted sum."""

    def __init__(self, dim: int, attention_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, h: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """h ``(batch, time, dim)`` → context ``(batch, dim)``, weights ``(batch, time)`` (0 on padding)."""
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1)  # (batch, time)
        valid = mask(lengths, h.shape[1]).bool()
        scores = scores.masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        context = torch.bmm(weights.unsqueeze(1), h).squeeze(1)
        return context, weights


class EmotionNet(nn.Module):
    """CNN + BLSTM + attention emotion classifier.

    ``forward(features, lengths) -> (logits, attention)``
        features: ``(batch, frames, n_features)`` normalised, zero-padded.
        lengths: ``(batch,)`` valid frames per utterance.
        logits: ``(batch, n_classes)``.
        attention: ``(batch, frames // time_stride)`` weights summing to 1 over valid steps.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        blocks, c_in = [], 1
        for c_out, pool in zip(config.conv_channels, config.pools, strict=True):
            blocks.append(ConvBlock(c_in, c_out, config.kernel_size, pool, config.conv_dropout))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks).to(memory_format=torch.channels_last)
        # Encoder front end: equal weights to start with; the softmax keeps them a mixture.
        mixing = config.encoder_layers and config.layer_mix == "softmax"
        self.layer_logits = nn.Parameter(torch.zeros(config.encoder_layers)) if mixing else None
        lstm_in = c_in * config.freq_out
        if config.lstm_input:
            self.project = nn.Sequential(nn.Linear(lstm_in, config.lstm_input), nn.LayerNorm(config.lstm_input))
            lstm_in = config.lstm_input
        else:
            self.project = nn.Identity()
        self.lstm = nn.LSTM(
            lstm_in,
            config.lstm_hidden,
            num_layers=config.lstm_layers,
            batch_first=True,
            bidirectional=True,
            dropout=config.dropout if config.lstm_layers > 1 else 0.0,
        )
        self.attention = AttentionPooling(2 * config.lstm_hidden, config.attention_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * config.lstm_hidden, config.n_classes)

    def fused(self) -> EmotionNet:
        """An inference-only copy (eval mode) with each BatchNorm folded into its convolution
        (the same outputs up to float rounding, one pass over the feature maps fewer per block)
        and max-pooling taken as maxima of strided views (:class:`SlicePool`, exactly equal)."""
        copy = EmotionNet(self.config)
        copy.load_state_dict(self.state_dict())
        copy.eval()
        for block in copy.blocks:
            conv = fuse_conv_bn_eval(block.conv, block.norm)
            block.conv = (BatchOneConv(conv) if conv.in_channels == 1 else conv).to(memory_format=torch.channels_last)
            block.norm = nn.Identity()
            if isinstance(block.pool, nn.MaxPool2d):
                block.pool = SlicePool(block.pool.kernel_size)
        return copy.to(next(self.parameters()).device)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Attention steps for input frame lengths ``(batch,)``."""
        if self.config.encoder_layers:
            return lengths.clamp(min=1)
        for block in self.blocks:
            lengths = torch.div(lengths, block.time_pool, rounding_mode="floor")
        return lengths.clamp(min=1)

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        context, weights = self.embed(features, lengths)
        return self.classifier(self.dropout(context)), weights

    def embed(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The attention-pooled utterance vector ``(batch, 2 * lstm_hidden)`` the classifier
        reads, and the attention ``(batch, frames // time_stride)``; arguments as :meth:`forward`."""
        if self.config.encoder_layers:
            return self._embed_encoder(features, lengths)
        stride = self.config.time_stride
        # Whatever the caller left in the padded frames, the first convolution must see zeros
        # there (its kernel reaches one frame past the end of each utterance).
        features = features * mask(lengths, features.shape[1]).to(features.dtype)[..., None]
        # Very short inputs: pad so every utterance keeps at least one step after pooling.
        lengths = lengths.clamp(min=stride)
        if features.shape[1] < stride:
            features = nn.functional.pad(features, (0, 0, 0, stride - features.shape[1]))
        # channels_last: oneDNN convolutions, batch norm and pooling run markedly faster on CPU.
        x = features.transpose(1, 2).unsqueeze(1).contiguous(memory_format=torch.channels_last)  # (batch, 1, n_features, frames)
        steps = lengths
        for block in self.blocks:
            x, steps = block(x, steps)
        batch, channels, freq, time = x.shape
        x = x.permute(0, 3, 1, 2).reshape(batch, time, channels * freq)  # (batch, time, channels*freq)
        x = self.project(x)  # (batch, time, lstm_input); padded steps never reach a valid one
        if x.is_cuda:  # cuDNN runs packed sequences well, with its weights in one flat buffer
            packed = pack_padded_sequence(x, steps.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            h, _ = pad_packed_sequence(out, batch_first=True, total_length=time)  # (batch, time, 2*hidden)
        else:
            h = padded_bilstm(self.lstm, x, steps)  # (batch, time, 2*hidden)
        return self.attention(h, steps)

    def layer_weights(self) -> Tensor | None:
        """The encoder layers' mixing weights ``(encoder_layers,)`` summing to 1; None for the CNN."""
        return None if self.layer_logits is None else torch.softmax(self.layer_logits, 0)

    def _embed_encoder(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`embed` for the encoder front end; features ``(batch, frames, layers * width)``."""
        cfg = self.config
        width = cfg.freq_out
        # Padded frames need no zeroing here: a frame's mix reads that frame only, and the
        # projection's output is masked per step.
        weights = self.layer_weights()
        x = features
        if weights is not None:
            x = features[..., :width] * weights[0]
            for layer in range(1, cfg.encoder_layers):  # slices: no copy of the (batch, frames, layers, width) view
                x = x + features[..., layer * width : (layer + 1) * width] * weights[layer]  # (batch, frames, width)
        steps = self.output_lengths(lengths)
        x = self.project(x) * mask(steps, x.shape[1])[..., None]  # (batch, steps, lstm_input)
        x = self.dropout(x)
        if x.is_cuda:
            packed = pack_padded_sequence(x, steps.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            h, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (batch, steps, 2*hidden)
        else:
            h = padded_bilstm(self.lstm, x, steps)  # (batch, steps, 2*hidden)
        return self.attention(h, steps)


class EnsembleNet(nn.Module):
    """Several :class:`EmotionNet` of one architecture (a seed ensemble), answering as one.

    ``forward(features, lengths) -> (logits, attention)`` with the shapes of
    :class:`EmotionNet`: ``logits`` is the log of the members' mean class probabilities (so a
    softmax gives that mean exactly) and ``attention`` the members' mean weights.
    """

    def __init__(self, members: Sequence[EmotionNet]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two models")
        if any(m.config != members[0].config for m in members):
            raise ValueError("the members of an ensemble must share one architecture")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def fused(self) -> EnsembleNet:
        """Each member's :meth:`EmotionNet.fused` copy."""
        return EnsembleNet([m.fused() for m in self.members]).eval()

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return self.members[0].output_lengths(lengths)

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        probs, attention = None, None
        for member in self.members:
            logits, weights = member(features, lengths)
            p = torch.softmax(logits.float(), dim=1)
            probs = p if probs is None else probs + p
            attention = weights if attention is None else attention + weights
        n = len(self.members)
        return (probs / n).clamp_min(1e-30).log(), attention / n
