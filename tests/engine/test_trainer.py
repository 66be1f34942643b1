"""Training engine: the trainer (learning, events, determinism, cancellation, exact resume,
early stopping)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recognition.engine.checkpoint import load_checkpoint, save_checkpoint
from recognition.engine.feature_stats import pad_batch
from recognition.engine.features import FeatureConfig
from recognition.engine.model import ModelConfig
from tests.engine.training_support import (
    LABELS2,
    LABELS4,
    SMALL_FEATURES,
    assert_same_weights,
    small_trainer,
    synthetic_examples,
    tiny_model,
)
from training.engine import trainer as trainer_module
from training.engine.data import (
    AugmentConfig,
    assign_speaker_centres,
)
from training.engine.events import BatchProgress, EpochReport, Resumed
from training.engine.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

def final_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).state_dict


def assert_resume_after_one_epoch_matches(out_dir, data, reference, **overrides) -> None:
    """A 3-epoch run cancelled after its first epoch, then resumed, ends with ``reference``'s history."""
    train, valid = data
    done = []
    small_trainer(out_dir, epochs=3, callback=lambda e: done.append(e) if isinstance(e, EpochReport) else None,
                  should_stop=lambda: len(done) >= 1, **overrides).fit(train, valid)
    resumed = small_trainer(out_dir, epochs=3, **overrides).fit(train, valid, resume=True)
    assert [h.val_loss for h in resumed.history] == [h.val_loss for h in reference.history]


def test_trainer_learns_synthetic_emotions(tmp_path):
    train = synthetic_examples(LABELS4, 24, 0, 0.8)
    valid = synthetic_examples(LABELS4, 8, 500, 0.8)
    events = []
    epochs = 15
    trainer = Trainer(
        labels=LABELS4,
        feature_config=FeatureConfig(trim="none"),
        model_config=tiny_model(64, 4),
        train_config=TrainConfig(
            epochs=epochs, batch_size=16, lr=3e-3, seed=0, device="cpu", num_threads=1, patience=0, progress_every=2,
            augment=AugmentConfig(enabled=False),  # speed and gain would blur the pitch/loudness cues
        ),
        out_dir=tmp_path,
        callback=events.append,
    )
    result = trainer.fit(train, valid)
    assert result.stopped == "completed"
    assert result.best_metrics["ua"] >= 0.9, [round(h.ua, 3) for h in result.history]
    assert result.history[-1].ua >= 0.9
    assert result.history[-1].train_loss < result.history[0].train_loss

    epoch_events = [e for e in events if isinstance(e, EpochReport)]
    progress_events = [e for e in events if isinstance(e, BatchProgress)]
    assert [e.epoch for e in epoch_events] == list(range(1, epochs + 1))
    assert epoch_events == result.history
    for e in epoch_events:
        assert (e.fold, e.folds, e.member, e.members, e.epochs) == (1, 1, 1, 1, epochs)
        assert np.array(e.confusion).shape == (4, 4) and np.array(e.confusion).sum() == len(valid)
        assert set(e.per_class_recall) == set(LABELS4)
        assert 0 <= e.wa <= 1 and 0 <= e.ua <= 1 and 0 <= e.macro_f1 <= 1
        assert e.lr > 0 and e.duration >= 0
        assert e.progress == pytest.approx(e.epoch / epochs)
        assert EpochReport.from_payload(json.loads(json.dumps(e.to_payload()))) == e  # JSON round trip
    best = max(epoch_events, key=lambda e: e.ua)  # first epoch reaching the maximum
    assert result.best_epoch == best.epoch == max(e.epoch for e in epoch_events if e.is_best)
    assert result.best_metrics["ua"] == pytest.approx(best.ua)
    assert sum(e.is_best for e in epoch_events) >= 1 and epoch_events[0].is_best
    assert progress_events and all(e.epochs == epochs and 1 <= e.batch <= e.batches for e in progress_events)
    fractions = [e.progress for e in progress_events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    json.dumps(progress_events[0].to_payload())

    ck = load_checkpoint(result.best_path)
    assert ck.labels == LABELS4
    assert ck.metrics["validation"]["ua"] == pytest.approx(result.best_metrics["ua"])
    assert "train_config" in ck.extra
    # The saved model predicts the validation set as well as during training.
    scores_again = trainer_module.evaluate_examples(ck.build_model(), ck.build_extractor(), valid, LABELS4)
    assert scores_again["ua"] == pytest.approx(result.best_metrics["ua"])


def test_same_seed_same_history(tmp_path, small_data):
    train, valid = small_data
    a = small_trainer(tmp_path / "a", epochs=3).fit(train, valid)
    b = small_trainer(tmp_path / "b", epochs=3).fit(train, valid)
    keys = ("train_loss", "val_loss", "train_acc", "ua", "lr")
    assert [[getattr(h, k) for k in keys] for h in a.history] == [[getattr(h, k) for k in keys] for h in b.history]
    assert_same_weights(final_weights(a.last_path), final_weights(b.last_path))
    c = small_trainer(tmp_path / "c", epochs=3, seed=1).fit(train, valid)
    assert [h.train_loss for h in c.history] != [h.train_loss for h in a.history]


def test_cancellation_keeps_a_usable_model(tmp_path, small_data):
    train, valid = small_data
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 2  # two batches into the first epoch

    result = small_trainer(tmp_path, epochs=4, should_stop=should_stop).fit(train, valid)
    assert result.stopped == "cancelled"
    assert result.history == []
    assert result.best_path.is_file() and result.last_path.is_file()
    ck = load_checkpoint(result.best_path)
    model, extractor = ck.build_model(), ck.build_extractor()
    waves, lengths = pad_batch([e.waveform for e in valid])
    with torch.no_grad():
        logits, _ = model(*extractor(waves, lengths))
    assert logits.shape == (len(valid), 2) and torch.isfinite(logits).all()
    assert load_checkpoint(result.last_path).extra["trainer"]["epoch"] == 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, small_data):
    """The reference: 4 epochs in one go."""
    train, valid = small_data
    result = small_trainer(tmp_path_factory.mktemp("ref"), epochs=4).fit(train, valid)
    return result, final_weights(result.last_path)


def test_resume_after_cancellation_between_epochs(tmp_path, small_data, uninterrupted):
    train, valid = small_data
    reference, reference_weights = uninterrupted
    done = []

    def remember(event):
        if isinstance(event, EpochReport):
            done.append(event.epoch)

    first = small_trainer(tmp_path, epochs=4, callback=remember, should_stop=lambda: len(done) >= 2).fit(train, valid)
    assert first.stopped == "cancelled"
    assert [h.epoch for h in first.history] == [1, 2]

    resumed_events = []
    second = small_trainer(tmp_path, epochs=4, callback=resumed_events.append).fit(train, valid, resume=True)
    assert second.stopped == "completed"
    assert [h.epoch for h in second.history] == [1, 2, 3, 4]
    assert [e.epoch for e in resumed_events if isinstance(e, EpochReport)] == [3, 4]
    # Before any new epoch, the caller gets the restored history (to fill a gap a kill left).
    assert isinstance(resumed_events[0], Resumed) and resumed_events[0].epoch == 2
    assert list(resumed_events[0].history) == first.history
    # Exactly the uninterrupted run: same losses, same weights, same best epoch.
    assert [h.train_loss for h in second.history] == [h.train_loss for h in reference.history]
    assert [h.val_loss for h in second.history] == [h.val_loss for h in reference.history]
    assert second.best_epoch == reference.best_epoch
    assert_same_weights(final_weights(second.last_path), reference_weights)


@pytest.mark.parametrize("batches_before_stop", [7, 8])
def test_resume_after_cancellation_mid_epoch(tmp_path, small_data, uninterrupted, batches_before_stop):
    """12 utterances in batches of 4: 3 batches per epoch, so the stop falls inside epoch 3."""
    train, valid = small_data
    reference, reference_weights = uninterrupted
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > batches_before_stop

    first = small_trainer(tmp_path, epochs=4, should_stop=should_stop).fit(train, valid)
    assert first.stopped == "cancelled" and len(first.history) == 2
    assert load_checkpoint(first.last_path).extra["trainer"]["epoch"] == 2
    second = small_trainer(tmp_path, epochs=4).fit(train, valid, resume=True)
    assert [h.epoch for h in second.history] == [1, 2, 3, 4]
    assert [h.train_loss for h in second.history] == [h.train_loss for h in reference.history]
    assert_same_weights(final_weights(second.last_path), reference_weights)


def test_resume_refuses_another_configuration(tmp_path, small_data):
    train, valid = small_data
    small_trainer(tmp_path, epochs=1).fit(train, valid)
    other = Trainer(
        labels=LABELS2,
        feature_config=SMALL_FEATURES,
        model_config=ModelConfig(n_features=32, n_classes=2, conv_channels=(4, 8, 16), lstm_hidden=16, attention_dim=16),
        train_config=TrainConfig(epochs=2, device="cpu", num_threads=1),
        out_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="different configuration"):
        other.fit(train, valid, resume=True)


def test_early_stopping_with_patience(tmp_path, small_data, monkeypatch):
    train, valid = small_data
    real_evaluate = trainer_module.evaluate_examples
    scripted_ua = iter([0.5, 0.75, 0.75, 0.6, 0.7, 1.0, 1.0, 1.0])

    def scripted(*args, **kwargs):
        metrics = real_evaluate(*args, **kwargs)
        metrics["ua"] = next(scripted_ua)
        return metrics

    monkeypatch.setattr(trainer_module, "evaluate_examples", scripted)
    events = []
    result = small_trainer(tmp_path, epochs=8, patience=3, callback=events.append).fit(train, valid)
    assert result.stopped == "early_stopping"
    assert [h.epoch for h in result.history] == [1, 2, 3, 4, 5]  # best at 2, then 3 bad epochs
    assert result.best_epoch == 2
    assert [h.is_best for h in result.history] == [True, True, False, False, False]
    assert result.best_metrics["ua"] == 0.75
    assert load_checkpoint(result.best_path).metrics["validation"]["epoch"] == 2


def test_trainer_rejects_mismatched_configs(tmp_path):
    with pytest.raises(ValueError):
        Trainer(
            labels=LABELS4,
            feature_config=SMALL_FEATURES,
            model_config=tiny_model(32, 2),
            train_config=TrainConfig(device="cpu"),
            out_dir=tmp_path,
        )
    with pytest.raises(ValueError):
        small_trainer(tmp_path).fit([], [])


def test_own_centre_share_changes_speaker_normalised_training_and_resumes_exactly(tmp_path, small_data):
    """Some examples are centred on themselves (as a lone recording is); drawn from the saved generator."""
    features = dataclasses.replace(SMALL_FEATURES, speaker_cmn=True)
    train, valid = (copy.deepcopy(part) for part in small_data)
    assign_speaker_centres(train + valid, features)
    assert all(e.centre is not None for e in train + valid)
    data = (train, valid)
    reference = small_trainer(tmp_path / "ref", epochs=3, features=features, own_centre_share=0.5).fit(*data)
    plain = small_trainer(tmp_path / "plain", epochs=3, features=features, own_centre_share=0.0).fit(*data)
    assert [h.train_loss for h in reference.history] != [h.train_loss for h in plain.history]
    assert_resume_after_one_epoch_matches(tmp_path / "cut", data, reference, features=features, own_centre_share=0.5)


def test_removed_options_load_when_off_and_are_refused_when_on():
    """Recipes and checkpoints written before the measured-and-rejected options were removed
    hold them, off unless someone switched them on: off they load, on they are refused."""
    old = TrainConfig().to_dict()
    old.update(mixup_alpha=0.0, ema_decay=0.0, speed_centres=False, rotate_validation=False, speaker_adversarial=0.0)
    old["augment"]["freq_warp"] = 0.0
    assert TrainConfig.from_dict(old) == TrainConfig()
    assert FeatureConfig.from_dict({**FeatureConfig().to_dict(), "periodicity_bands": 0}) == FeatureConfig()
    for key, on in (("mixup_alpha", 0.4), ("ema_decay", 0.995), ("speed_centres", True), ("rotate_validation", True),
                    ("speaker_adversarial", 1.0)):
        with pytest.raises(ValueError, match=f"{key}={on!r} switches on an option this version no longer has"):
            TrainConfig.from_dict({**old, key: on})
    with pytest.raises(ValueError, match="freq_warp=0.1 switches on"):
        TrainConfig.from_dict({**old, "augment": {**old["augment"], "freq_warp": 0.1}})
    with pytest.raises(ValueError, match="periodicity_bands=8 switches on"):
        FeatureConfig.from_dict({**FeatureConfig().to_dict(), "periodicity_bands": 8})
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({**old, "mixup": 0.0})  # a misspelt key still fails


def test_resume_refuses_a_last_checkpoint_of_a_removed_option(tmp_path, small_data):
    """A run interrupted while training with weight averaging or the speaker adversary (both
    removed) kept their state in last.pt; it cannot continue without them."""
    train, valid = small_data
    small_trainer(tmp_path, epochs=1).fit(train, valid)
    ck = load_checkpoint(tmp_path / "last.pt")
    ck.extra["trainer"]["ema"] = {}
    save_checkpoint(tmp_path / "last.pt", ck)
    with pytest.raises(ValueError, match=r"no longer has \(ema\); it cannot be resumed"):
        small_trainer(tmp_path, epochs=2).fit(train, valid, resume=True)
