"""EmotionNet: shapes, attention, padding invariance, short inputs, configs and presets."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from recognition.engine.layers import SlicePool, padded_bilstm
from recognition.engine.model import MODEL_SIZES, EmotionNet, ModelConfig

N_FEATURES = 16


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _no_grad(request):
    """Forward passes only, except where a test asks for gradients."""
    if "needs_grad" in request.fixturenames:
        yield
        return
    with torch.no_grad():
        yield


@pytest.fixture
def needs_grad() -> None:
    """Marker fixture: run this test with autograd on."""


def tiny_config(**overrides) -> ModelConfig:
    base = {
        "n_features": N_FEATURES,
        "n_classes": 4,
        "conv_channels": (4, 8, 8),
        "lstm_hidden": 16,
        "attention_dim": 16,
    }
    return ModelConfig(**{**base, **overrides})


def trained_looking_model(config: ModelConfig | None = None, seed: int = 0) -> EmotionNet:
    """A model in eval mode whose BatchNorm statistics are not the trivial defaults."""
    torch.manual_seed(seed)
    model = EmotionNet(config or tiny_config())
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def batch(lengths: list[int], seed: int = 0, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features, zero-padded to the longest: (batch, frames, N_FEATURES), lengths."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), N_FEATURES, generator=gen, dtype=dtype)
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    return x, torch.tensor(lengths)


def test_output_shapes():
    model = trained_looking_model()
    x, lengths = batch([100, 64, 37])
    logits, attention = model(x, lengths)
    assert logits.shape == (3, 4)
    assert attention.shape == (3, 100 // model.config.time_stride)
    assert model.config.time_stride == 8
    assert model.config.freq_out == N_FEATURES // 8
    assert model.output_lengths(lengths).tolist() == [12, 8, 4]
    assert torch.isfinite(logits).all()


def test_attention_sums_to_one_over_valid_steps():
    model = trained_looking_model()
    x, lengths = batch([100, 64, 37, 9])
    _, attention = model(x, lengths)
    steps = model.output_lengths(lengths)
    for i, n in enumerate(steps.tolist()):
        assert float(attention[i, :n].sum()) == pytest.approx(1.0, abs=1e-5)
        assert (attention[i, :n] > 0).all()
        assert torch.count_nonzero(attention[i, n:]) == 0


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_padding_invariance(dtype, atol):
    model = trained_looking_model().to(dtype)
    for short_len in (50, 51, 57, 9, 3):
        x, lengths = batch([101, short_len], seed=short_len, dtype=dtype)
        logits, attention = model(x, lengths)
        alone_logits, alone_attention = model(x[1:2, :short_len], lengths[1:2])
        steps = int(model.output_lengths(lengths[1:2])[0])
        torch.testing.assert_close(logits[1], alone_logits[0], atol=atol, rtol=0)
        torch.testing.assert_close(attention[1, :steps], alone_attention[0, :steps], atol=atol, rtol=0)
        assert torch.count_nonzero(attention[1, steps:]) == 0
        # The long one is unaffected by its short neighbour too.
        long_logits, _ = model(x[:1], lengths[:1])
        torch.testing.assert_close(logits[0], long_logits[0], atol=atol, rtol=0)


def test_padded_region_values_do_not_matter():
    """Packed sequences and masking: garbage in the padding changes nothing."""
    model = trained_looking_model()
    x, lengths = batch([96, 40, 13])
    logits, attention = model(x, lengths)
    noisy = x.clone()
    for i, n in enumerate(lengths.tolist()):
        noisy[i, n:] = torch.randn(noisy.shape[1] - n, N_FEATURES) * 10 + 3
    noisy_logits, noisy_attention = model(noisy, lengths)
    torch.testing.assert_close(noisy_logits, logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(noisy_attention, attention, atol=1e-6, rtol=0)
    # Extra all-padding frames at the end of the batch change nothing either.
    wider = torch.cat([x, torch.randn(3, 24, N_FEATURES)], dim=1)
    wider_logits, wider_attention = model(wider, lengths)
    torch.testing.assert_close(wider_logits, logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(wider_attention[:, : attention.shape[1]], attention, atol=1e-6, rtol=0)


@pytest.mark.parametrize("frames", [1, 2, 7, 8])
def test_very_short_inputs(frames):
    model = trained_looking_model()
    assert frames <= model.config.time_stride
    x, lengths = batch([frames])
    logits, attention = model(x, lengths)
    assert logits.shape == (1, 4) and torch.isfinite(logits).all()
    assert attention.shape == (1, 1)
    assert float(attention[0, 0]) == pytest.approx(1.0)
    # Batched next to a longer utterance it gives the same result.
    y, ylen = batch([frames, 60], seed=1)
    y[0, :frames] = x[0]
    both, _ = model(y, ylen)
    torch.testing.assert_close(both[0], logits[0], atol=1e-5, rtol=0)


def test_train_mode_backward(needs_grad):
    model = EmotionNet(tiny_config())
    model.train()
    x, lengths = batch([80, 33, 5])
    logits, _ = model(x, lengths)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_model_config_round_trip():
    cfg = tiny_config(pools=((2, 1), (2, 2), (1, 2)), kernel_size=5, lstm_layers=1, dropout=0.0)
    data = cfg.to_dict()
    assert data["conv_channels"] == [4, 8, 8]
    assert data["pools"] == [[2, 1], [2, 2], [1, 2]]
    restored = ModelConfig.from_dict(data)
    assert restored == cfg
    assert isinstance(restored.conv_channels, tuple) and isinstance(restored.pools[0], tuple)
    assert restored.time_stride == 4
    assert restored.freq_out == N_FEATURES // 4
    with pytest.raises(ValueError, match="unknown model settings"):
        ModelConfig.from_dict({**data, "heads": 4})
    # Lists from JSON become tuples and configs stay hashable/comparable.
    assert ModelConfig(conv_channels=[4, 8, 8]) == ModelConfig(conv_channels=(4, 8, 8))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"conv_channels": (4, 8)},  # three pools by default
        {"n_classes": 1},
        {"kernel_size": 4},
    ],
)
def test_model_config_validation(kwargs):
    with pytest.raises(ValueError):
        tiny_config(**kwargs)


@pytest.mark.parametrize("size", sorted(MODEL_SIZES))
def test_model_size_presets_build(size):
    cfg = ModelConfig(n_features=64, n_classes=6, **MODEL_SIZES[size])
    model = EmotionNet(cfg).eval()
    x = torch.randn(2, 40, 64)
    logits, attention = model(x, torch.tensor([40, 17]))
    assert logits.shape == (2, 6)
    assert attention.shape == (2, 5)
    assert set(MODEL_SIZES) >= {"small", "medium", "large"}


def test_same_seed_same_model():
    torch.manual_seed(5)
    a = EmotionNet(tiny_config())
    torch.manual_seed(5)
    b = EmotionNet(tiny_config())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        assert torch.equal(va, vb)


def test_fused_copy_answers_alike_without_batch_norm():
    model = trained_looking_model()  # non-trivial running statistics
    fused = model.fused()
    x, lengths = batch([40, 23, 9])
    logits, attention = model(x, lengths)
    fused_logits, fused_attention = fused(x, lengths)
    torch.testing.assert_close(fused_logits, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused_attention, attention, atol=1e-6, rtol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules()) and not fused.training
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == len(model.blocks)  # the original is untouched


def test_fused_copy_answers_a_batch_of_one_alike():
    # A batch of one takes the fused copy's two-channel first convolution (the fast oneDNN
    # kernel); it must answer as the model itself and as the same utterance in a batch.
    model = trained_looking_model()
    fused = model.fused()
    x, lengths = batch([40, 23, 9])
    with torch.inference_mode():
        batched_logits, batched_attention = fused(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone_logits, alone_attention = fused(x[i : i + 1, :n], lengths[i : i + 1])
            reference, _ = model(x[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(alone_logits, reference, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(alone_logits[0], batched_logits[i], atol=1e-5, rtol=1e-5)
            steps = alone_attention.shape[1]
            torch.testing.assert_close(alone_attention[0], batched_attention[i, :steps], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("pool", [(2, 2), (1, 2), (2, 1), (3, 2)])
@pytest.mark.parametrize("shape", [(3, 16, 64, 331), (1, 4, 9, 8), (2, 3, 5, 2)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_the_fused_copys_pooling_equals_max_pooling_exactly(pool, shape, channels_last):
    x = torch.randn(*shape)
    x[0, 0, :2, :2] = 0.5  # ties inside one window
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = SlicePool(pool)(x)
    assert torch.equal(out, torch.nn.functional.max_pool2d(x, pool))  # odd sizes: the remainder dropped alike
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)  # the input's layout


def test_the_fused_copy_pools_with_slices():
    fused = trained_looking_model().fused()
    assert all(isinstance(block.pool, SlicePool) for block in fused.blocks)


def test_the_padded_bilstm_matches_the_packed_one_in_values_and_gradients(needs_grad):
    # On the CPU the model runs its BLSTM one layer and direction at a time over the padded
    # batch (much faster than a packed batch there); it must be the packed LSTM exactly.
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True).eval()
    lengths = torch.tensor([9, 4, 1, 7])
    x = torch.randn(4, 9, 6)
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = 100.0  # loud padding: any leak into a valid step would show
    weights = list(lstm.parameters())

    x_packed = x.clone().requires_grad_(True)
    out, _ = lstm(pack_padded_sequence(x_packed, lengths, batch_first=True, enforce_sorted=False))
    packed, _ = pad_packed_sequence(out, batch_first=True, total_length=9)
    packed_grads = torch.autograd.grad(packed.square().sum(), [x_packed, *weights])

    x_padded = x.clone().requires_grad_(True)
    padded = padded_bilstm(lstm, x_padded, lengths)
    padded_grads = torch.autograd.grad(padded.square().sum(), [x_padded, *weights])

    torch.testing.assert_close(padded, packed, atol=1e-6, rtol=1e-5)
    assert torch.equal(padded[1, 4:], torch.zeros(5, 10))  # padded steps are zero, as unpacking gives
    for got, expected in zip(padded_grads, packed_grads, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
