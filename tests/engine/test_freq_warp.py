"""Frequency warping (vocal tract length perturbation) of log-Mel features: where it moves a
band, what it leaves alone, its bounds, and a training run with it (changed, exactly resumable)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from recognition.engine.features import FeatureConfig, mel_points
from tests.engine.test_trainer import (
    LABELS2,
    assert_resume_after_one_epoch_matches,
    small_trainer,
    tiny_model,
)
from training.engine.data import AugmentConfig, warp_frequencies
from training.engine.trainer import TrainConfig, Trainer

CONFIG = FeatureConfig()  # 64 Mel bands, 0-8 kHz


def test_factor_one_changes_nothing():
    feats = torch.randn(2, 30, 64)
    assert torch.equal(warp_frequencies(feats, [1.0, 1.0], CONFIG), feats)


@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_a_peak_moves_to_alpha_times_its_frequency(alpha):
    """Below the knee (0.6 of the top frequency) a component at f reappears at alpha × f."""
    centres = mel_points(CONFIG.sample_rate, CONFIG.n_mels)[1:-1]
    band = 30
    feats = torch.zeros(1, 1, 64)
    feats[0, 0, band] = 1.0
    out = warp_frequencies(feats, [alpha], CONFIG)[0, 0].numpy()
    # The output's centre of mass, in Hz, lies near alpha × the input band's frequency.
    moved = float((out * centres).sum() / out.sum())
    assert moved == pytest.approx(alpha * centres[band], rel=0.02)
    assert abs(int(out.argmax()) - band) >= 1


def test_a_flat_spectrum_stays_flat_the_top_stays_near_the_top_and_padding_stays_zero():
    feats = torch.full((2, 20, 64), 3.0)
    feats[:, 15:] = 0  # padded frames
    for alpha in (0.8, 1.2):
        out = warp_frequencies(feats, [alpha, alpha], CONFIG)
        # Each output band interpolates between two input bands, so a flat spectrum (a
        # speaker's own mean, once centred: all zeros) is left as it is.
        assert torch.allclose(out[:, :15], feats[:, :15], atol=1e-5)
        assert torch.count_nonzero(out[:, 15:]) == 0
        # The piecewise-linear warp keeps the top of the band at the top: the last band
        # reads from the last two.
        peak = torch.zeros(1, 1, 64)
        peak[0, 0, 62:] = 1.0
        assert float(warp_frequencies(peak, [alpha], CONFIG)[0, 0, -1]) == pytest.approx(1.0)


def test_each_example_gets_its_own_factor_and_extra_columns_are_kept():
    extra = dataclasses.replace(CONFIG, periodicity_bands=4)
    feats = torch.randn(3, 10, 68)
    out = warp_frequencies(feats, [1.0, 0.9, 1.1], extra)
    assert out.shape == feats.shape
    assert torch.equal(out[0], feats[0])
    assert not torch.allclose(out[1, :, :64], feats[1, :, :64])
    assert not torch.allclose(out[1], out[2])
    assert torch.equal(out[..., 64:], feats[..., 64:])


def test_bounds_and_feature_kind_are_checked(tmp_path):
    with pytest.raises(ValueError, match="freq_warp"):
        AugmentConfig(freq_warp=0.5)
    with pytest.raises(ValueError, match="freq_warp"):
        AugmentConfig(freq_warp=-0.1)
    with pytest.raises(ValueError, match="log-Mel"):
        warp_frequencies(torch.zeros(1, 1, 13), [1.0], FeatureConfig(kind="mfcc", n_mfcc=13))
    mfcc = FeatureConfig(kind="mfcc", n_mfcc=13, n_mels=32, trim="none")
    with pytest.raises(ValueError, match="log-Mel"):
        Trainer(labels=LABELS2, feature_config=mfcc, model_config=tiny_model(mfcc.n_features, 2),
                train_config=TrainConfig(augment=AugmentConfig(freq_warp=0.1)), out_dir=tmp_path)
    # With augmentation off the warp is off too, so any feature kind trains.
    Trainer(labels=LABELS2, feature_config=mfcc, model_config=tiny_model(mfcc.n_features, 2),
            train_config=TrainConfig(augment=AugmentConfig(enabled=False, freq_warp=0.1)), out_dir=tmp_path)


def test_warped_training_differs_and_resumes_exactly(tmp_path, small_data, one_thread):
    train, valid = small_data
    warp = {"augment": AugmentConfig(freq_warp=0.1)}
    reference = small_trainer(tmp_path / "ref", epochs=3, **warp).fit(train, valid)
    plain = small_trainer(tmp_path / "plain", epochs=3).fit(train, valid)
    assert [h["train_loss"] for h in reference.history] != [h["train_loss"] for h in plain.history]
    # The factors come from the trainer's saved generator, so a cancelled run resumes identically.
    assert_resume_after_one_epoch_matches(tmp_path / "cut", small_data, reference, **warp)
