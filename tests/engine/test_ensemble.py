"""Seed ensembles: the averaging module, checkpoints holding several models, the trainer
training them in turn (events, cancellation, exact resume), the predictor, the reports."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from devsupport.synth import speech_like
from recognition.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from recognition.engine.model import EmotionNet, EnsembleNet, ModelConfig
from recognition.engine.predictor import Predictor
from recognition.engine.tta import MAX_PASSES, inference_speeds, tta_speeds
from tests.engine.training_support import LABELS2, assert_same_weights, small_trainer, tiny_recipe
from training.cli import summary_line
from training.engine.data import AugmentConfig, Example
from training.engine.evaluation import example_probabilities
from training.engine.events import BatchProgress, EpochReport
from training.engine.experiment import cross_validate, train_holdout
from training.engine.trainer import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = ModelConfig(n_features=16, n_classes=3, conv_channels=(4, 8, 8), lstm_hidden=8, attention_dim=8)


def members(n: int) -> list[EmotionNet]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(EmotionNet(CONFIG).eval())
    return out


def test_ensemble_averages_probabilities_and_attention():
    models = members(3)
    ensemble = EnsembleNet(models).eval()
    features, lengths = torch.randn(2, 40, 16), torch.tensor([40, 25])
    with torch.inference_mode():
        logits, attention = ensemble(features, lengths)
        outputs = [m(features, lengths) for m in models]
    expected = torch.stack([torch.softmax(lo, 1) for lo, _ in outputs]).mean(0)
    torch.testing.assert_close(torch.softmax(logits, 1), expected)
    torch.testing.assert_close(attention, torch.stack([a for _, a in outputs]).mean(0))
    assert torch.allclose(attention.sum(1), torch.ones(2))
    assert torch.equal(ensemble.output_lengths(lengths), models[0].output_lengths(lengths))
    assert ensemble.config == CONFIG


def test_ensemble_refuses_one_model_or_mixed_architectures():
    with pytest.raises(ValueError, match="at least two"):
        EnsembleNet(members(1))
    other = EmotionNet(dataclasses.replace(CONFIG, lstm_hidden=12))
    with pytest.raises(ValueError, match="one architecture"):
        EnsembleNet([members(1)[0], other])


def test_train_config_bounds_members():
    for bad in (0, -1, 99):
        with pytest.raises(ValueError, match="members"):
            TrainConfig(members=bad)
    assert TrainConfig.from_dict({"members": 3}).members == 3


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, small_data):
    """Two members of three epochs each, with every event kept."""
    train, valid = small_data
    events = []
    result = small_trainer(tmp_path_factory.mktemp("ens"), epochs=3, members=2, callback=events.append).fit(train, valid)
    return result, events


def test_members_train_as_their_seeds_would_alone(tmp_path, small_data, ensemble_run):
    train, valid = small_data
    result, _ = ensemble_run
    ck = load_checkpoint(result.best_path)
    assert ck.n_members == 2 and isinstance(ck.build_model(), EnsembleNet)
    assert ck.extra["train_config"]["members"] == 2
    assert [m["seed"] for m in ck.extra["members"]] == [0, 1]
    for seed, member in enumerate(result.members):
        alone = small_trainer(tmp_path / f"seed{seed}", epochs=3, seed=seed).fit(train, valid)
        assert [h.val_loss for h in member.history] == [h.val_loss for h in alone.history]
        assert_same_weights((ck.state_dict, *ck.member_states)[seed], load_checkpoint(alone.best_path).state_dict)
    # The ensemble is validated as one model; its score is what the result reports.
    assert ck.metrics["validation"]["ua"] == pytest.approx(result.best_metrics["ua"])
    assert result.best_metrics["members"] == 2


def test_ensemble_events_name_their_member_and_progress_spans_all(ensemble_run):
    result, events = ensemble_run
    epochs = [e for e in events if isinstance(e, EpochReport)]
    assert [(e.member, e.epoch) for e in epochs] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert all(e.members == 2 for e in events)
    assert [(h.member, h.epoch) for h in result.history] == [(e.member, e.epoch) for e in epochs]
    progress = [e.progress for e in events if isinstance(e, BatchProgress)]
    assert progress == sorted(progress)
    assert progress[0] < 0.5 and progress[-1] == pytest.approx(1.0)
    first_member = [e.progress for e in events if isinstance(e, BatchProgress) and e.member == 1]
    assert first_member[-1] == pytest.approx(0.5)
    # Epoch events carry the same ensemble-wide progress (model 2's epoch 1 of 3: (1 + 1/3) / 2).
    assert [e.progress for e in epochs] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0])


def test_cancelled_ensemble_keeps_its_members_and_resumes_exactly(tmp_path, small_data, ensemble_run):
    train, valid = small_data
    reference, _ = ensemble_run
    done = []

    def remember(event):
        if isinstance(event, EpochReport):
            done.append((event.member, event.epoch))

    # Stop after member 2's first epoch.
    first = small_trainer(tmp_path, epochs=3, members=2, callback=remember, should_stop=lambda: (2, 1) in done).fit(train, valid)
    assert first.stopped == "cancelled"
    assert load_checkpoint(first.best_path).n_members == 2  # usable: member 1 whole, member 2 so far
    resumed_events = []
    second = small_trainer(tmp_path, epochs=3, members=2, callback=resumed_events.append).fit(train, valid, resume=True)
    assert second.stopped == "completed"
    assert [(e.member, e.epoch) for e in resumed_events if isinstance(e, EpochReport)] == [(2, 2), (2, 3)]
    assert [h.val_loss for h in second.history] == [h.val_loss for h in reference.history]
    ours, theirs = load_checkpoint(second.best_path), load_checkpoint(reference.best_path)
    for a, b in zip((ours.state_dict, *ours.member_states), (theirs.state_dict, *theirs.member_states), strict=True):
        assert_same_weights(a, b)


def test_cancelled_in_the_first_member_leaves_one_model(tmp_path, small_data):
    train, valid = small_data
    calls = []
    result = small_trainer(tmp_path, epochs=3, members=3, should_stop=lambda: calls.append(1) or len(calls) > 2).fit(train, valid)
    assert result.stopped == "cancelled" and len(result.members) == 1
    ck = load_checkpoint(result.best_path)
    assert ck.n_members == 1 and isinstance(ck.build_model(), EmotionNet)


def test_checkpoint_round_trip_and_refusal_of_bad_members(tmp_path, ensemble_run):
    result, _ = ensemble_run
    ck = load_checkpoint(result.best_path)
    again = load_checkpoint(save_checkpoint(tmp_path / "copy.pt", ck))
    assert again.n_members == 2
    assert_same_weights(again.member_states[0], ck.member_states[0])

    payload = torch.load(result.best_path, weights_only=True)
    bad_shape = {**payload, "member_states": [{k: v[..., :1] if v.ndim else v for k, v in payload["state_dict"].items()}]}
    nan = {**payload, "member_states": [{k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in payload["state_dict"].items()}]}
    for name, broken, message in (
        ("shape", bad_shape, "do not fit"),
        ("nan", nan, "non-finite"),
        ("kind", {**payload, "member_states": {"a": 1}}, "malformed ensemble"),
        ("item", {**payload, "member_states": ["weights"]}, "no valid model weights"),
    ):
        path = tmp_path / f"{name}.pt"
        torch.save(broken, path)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)


def test_predictor_answers_with_the_mean_of_its_members(tmp_path, ensemble_run):
    result, _ = ensemble_run
    ck = load_checkpoint(result.best_path)
    wave = speech_like("angry", 0.6, seed=3)
    every, plain = Predictor(ck, device="cpu"), Predictor(ck, device="cpu", tta=False)
    # By default every model is asked at every speed; without test-time augmentation each once, at 1.0.
    assert (plain.speeds, plain.passes) == ((1.0,), 2)
    assert (every.speeds, every.passes) == ((0.9, 1.0, 1.1), 6)
    # Four models at three speeds would be twelve passes, over the budget: each is asked once.
    four = Predictor(dataclasses.replace(ck, member_states=[*ck.member_states] * 3), device="cpu")
    assert (four.speeds, four.passes) == ((1.0,), 4)
    singles = [dataclasses.replace(ck, state_dict=s, member_states=[]) for s in (ck.state_dict, *ck.member_states)]
    for predictor, tta in ((plain, False), (every, True)):
        parts = [Predictor(single, device="cpu", tta=tta).predict(wave) for single in singles]
        got = predictor.predict(wave)
        for label in LABELS2:
            assert got.probabilities[label] == pytest.approx(np.mean([p.probabilities[label] for p in parts]), abs=1e-5)
        # The attention of the 1.0 passes, averaged over the models.
        np.testing.assert_allclose(got.attention, np.mean([p.attention for p in parts], axis=0), rtol=1e-4, atol=1e-6)
        # In a batch beside a longer recording, the same answer.
        batched = predictor.predict_batch([wave, speech_like("sad", 1.1, seed=4)])[0]
        np.testing.assert_allclose(list(batched.probabilities.values()), list(got.probabilities.values()), atol=1e-5)
        # Evaluation scores the same passes.
        probs = example_probabilities(ck.build_model(), ck.build_extractor(), [Example(wave, 1, "synth", "s0")], speeds=predictor.speeds)
        np.testing.assert_allclose(probs[0].numpy(), list(got.probabilities.values()), atol=1e-5)


def test_inference_speeds_are_the_trained_ones_unless_test_time_augmentation_is_off():
    assert inference_speeds(tta_speeds(TrainConfig(members=3).to_dict())) == (0.9, 1.0, 1.1)
    assert inference_speeds(tta_speeds(TrainConfig().to_dict()), tta=False) == (1.0,)
    # Within the pass budget every model is asked at every speed; beyond it each model once.
    trained = tta_speeds(TrainConfig().to_dict())
    assert [inference_speeds(trained, members=n) for n in (1, 2, 3, 4, 5)] == [trained] * 3 + [(1.0,)] * 2
    assert MAX_PASSES == 9
    assert inference_speeds(trained, members=3, tta=False) == (1.0,)
    no_speed = TrainConfig(augment=AugmentConfig(speed=(1.0,))).to_dict()
    assert inference_speeds(tta_speeds(no_speed)) == (1.0,)


def test_reports_score_each_member_alone(tmp_path, scans):
    speeds = AugmentConfig(speed=(0.9, 1.0, 1.1), noise_prob=0.0)
    recipe = dataclasses.replace(tiny_recipe(epochs=1), train=dataclasses.replace(tiny_recipe().train, epochs=1, members=2, augment=speeds))
    report = cross_validate(scans, tmp_path / "cv", folds=2, only_folds=[0], recipe=recipe)
    fold = report["folds"][0]
    assert [m["member"] for m in fold["members"]] == [1, 2] and [m["seed"] for m in fold["members"]] == [0, 1]
    assert all(0 <= m["ua"] <= 1 and m["epochs_run"] == 1 for m in fold["members"])
    assert report["member_mean"]["n"] == 2
    assert report["member_mean"]["ua"] == pytest.approx(np.mean([m["ua"] for m in fold["members"]]), abs=1e-4)
    assert "ensemble's models alone" in summary_line(report)
    assert fold["tta"]["speeds"] == [0.9, 1.0, 1.1]  # as the app asks: every model at every speed; ua at 1.0
    assert report["tta"]["ua"] == pytest.approx(fold["tta"]["ua"])
    assert "as the app classifies" in summary_line(report)
    assert load_checkpoint(tmp_path / "cv" / "fold1" / "best.pt").n_members == 2

    holdout = train_holdout(scans, tmp_path / "model.pt", recipe=recipe)
    assert len(holdout["members"]) == 2 and holdout["member_mean"]["n"] == 2
    assert "ensemble's models alone" in summary_line(holdout)


def test_members_last_epochs_combine_into_one_ensemble(ensemble_run):
    """What build_starter ships: each member's last epoch, saved together."""
    from training.engine.ensemble import combine_checkpoints

    result, _ = ensemble_run
    lasts = [load_checkpoint(m.last_path) for m in result.members]
    ck = combine_checkpoints([m.last_path for m in result.members])
    assert ck.n_members == 2 and isinstance(ck.build_model(), EnsembleNet)
    for weights, last in zip((ck.state_dict, *ck.member_states), lasts, strict=True):
        assert_same_weights(weights, last.state_dict)
    assert combine_checkpoints([result.members[0].last_path]).n_members == 1
    with pytest.raises(ValueError, match="one-model"):
        combine_checkpoints([result.best_path, result.members[0].last_path])
