"""Training engine: length-bucketed batches, collation, waveform and spectrogram augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from devsupport.synth import speech_like
from recognition.engine.feature_stats import pad_batch
from training.engine.data import (
    AugmentConfig,
    augment_waveform,
    bucket_batches,
    spec_augment,
)
from training.engine.trainer import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(("n", "batch_size", "seed"), [(1, 4, 0), (9, 4, 1), (10, 3, 2), (33, 8, 3), (16, 16, 4), (17, 16, 5)])
def test_bucket_batches_cover_every_index_once(n, batch_size, seed):
    lengths = np.random.default_rng(seed).integers(100, 5000, n)
    for rng in (None, np.random.default_rng(seed)):
        for drop in (False, True):
            batches = bucket_batches(lengths, batch_size, rng, drop_singletons=drop)
            flat = [i for b in batches for i in b]
            assert sorted(flat) == list(range(n))
            assert all(len(b) <= batch_size + (1 if drop else 0) for b in batches)
            if drop and len(batches) > 1:
                assert all(len(b) > 1 for b in batches)
    assert bucket_batches([5, 1, 3, 2, 4], 2, None) == [[1, 3], [2, 4], [0]]
    assert bucket_batches([5, 1, 3, 2, 4], 2, None, drop_singletons=True) == [[1, 3], [2, 4, 0]]


def test_augment_waveform_speed_changes_length():
    wav = speech_like("happy", 0.5, seed=0)
    rng = np.random.default_rng(0)
    for factor in (0.5, 0.9, 1.1, 2.0):
        cfg = AugmentConfig(speed=(factor,), gain_db=0.0, noise_prob=0.0)
        out = augment_waveform(wav, cfg, rng)
        assert out.size == int(round(wav.size / factor))
        assert out.dtype == np.float32
    same = augment_waveform(wav, AugmentConfig(speed=(1.0,), gain_db=0.0, noise_prob=0.0), rng)
    np.testing.assert_array_equal(same, wav)
    # Gain only: same shape, scaled by at most +-6 dB.
    loud = augment_waveform(wav, AugmentConfig(speed=(1.0,), gain_db=6.0, noise_prob=0.0), rng)
    ratio = np.abs(loud).max() / np.abs(wav).max()
    assert 10 ** (-6 / 20) - 1e-6 <= ratio <= 10 ** (6 / 20) + 1e-6


def test_disabled_augmentation_is_identity():
    wav = speech_like("sad", 0.3, seed=1)
    cfg = AugmentConfig(enabled=False)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert augment_waveform(wav, cfg, rng) is wav
    assert rng.bit_generator.state == state  # no randomness consumed
    feats = torch.randn(2, 30, 8)
    assert spec_augment(feats, torch.tensor([30, 12]), cfg, torch.Generator().manual_seed(0)) is feats


def test_spec_augment_keeps_padding_zero():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 50, 16) + 5.0
    lengths = torch.tensor([50, 31, 7])
    for i, n in enumerate(lengths.tolist()):
        feats[i, n:] = 0
    cfg = AugmentConfig(freq_masks=2, freq_mask_width=6, time_masks=2, time_mask_fraction=0.3)
    out = spec_augment(feats, lengths, cfg, gen)
    assert out is not feats and out.shape == feats.shape
    for i, n in enumerate(lengths.tolist()):
        assert torch.count_nonzero(out[i, n:]) == 0
    assert (out == 0).sum() > (feats == 0).sum()  # something was masked
    changed = out != feats
    assert torch.all(out[changed] == 0)  # masks only zero values, never invent them


def test_pad_batch_pads_with_zeros():
    waves = [np.ones(5, np.float32), np.full(3, 2.0, np.float32)]
    x, lengths = pad_batch(waves)
    assert x.shape == (2, 5) and lengths.tolist() == [5, 3]
    assert x[1].tolist() == [2.0, 2.0, 2.0, 0.0, 0.0]


def test_augment_config_round_trip():
    cfg = AugmentConfig(speed=(0.8, 1.2), noise_snr_db=(10.0, 30.0), enabled=False)
    assert AugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError):
        AugmentConfig.from_dict({"pitch": 2})
    tc = TrainConfig(epochs=3, augment=cfg)
    assert TrainConfig.from_dict(json.loads(json.dumps(tc.to_dict()))) == tc
