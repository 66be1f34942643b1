"""Distillation: a seed ensemble teaching one model (the student) with its class
probabilities; the loss, what the run saves, cancellation and exact resume, the reports."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from recognition.engine.checkpoint import load_checkpoint
from recognition.engine.features import FeatureConfig
from recognition.engine.model import EmotionNet, EnsembleNet
from tests.engine.training_support import (
    LABELS4,
    assert_same_weights,
    small_trainer,
    synthetic_examples,
    tiny_model,
    tiny_recipe,
)
from training.engine import trainer as trainer_module
from training.engine.data import AugmentConfig
from training.engine.ensemble import distillation_loss
from training.engine.events import BatchProgress, EpochReport
from training.engine.experiment import Recipe, cross_validate
from training.engine.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def distilled_run(tmp_path_factory, small_data):
    """Two models of three epochs each, then their student, with every event kept."""
    train, valid = small_data
    events = []
    out = tmp_path_factory.mktemp("distil")
    result = small_trainer(out, epochs=3, members=2, distil_weight=0.9, callback=events.append).fit(train, valid)
    return result, events


def test_distillation_loss_vanishes_only_where_the_student_agrees():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    for temperature in (1.0, 2.0):
        agreeing = torch.softmax(logits / temperature, dim=1)
        assert distillation_loss(logits, agreeing, temperature, None) == pytest.approx(0.0, abs=1e-6)
        other = torch.softmax(-logits / temperature, dim=1)
        assert distillation_loss(logits, other, temperature, None) > 0.1
    # Class weights (by hard label) weigh the examples as the cross-entropy does.
    soft = torch.softmax(torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]), dim=1)
    each = [float(distillation_loss(logits[i : i + 1], soft[i : i + 1], 2.0, None)) for i in range(2)]
    weighted = distillation_loss(logits, soft, 2.0, torch.tensor([3.0, 1.0]))
    assert float(weighted) == pytest.approx((3 * each[0] + each[1]) / 4, rel=1e-5)


def test_train_config_bounds_distillation():
    for bad in ({"distil_weight": -0.1}, {"distil_weight": 1.5}, {"distil_temperature": 0.0}):
        with pytest.raises(ValueError, match="distil"):
            TrainConfig(**bad)
    assert TrainConfig.from_dict({"distil_weight": 0.9}).distil_weight == 0.9


def test_distilled_ensemble_saves_the_student_alone_and_its_teacher_beside_it(tmp_path, small_data, distilled_run):
    train, valid = small_data
    result, events = distilled_run
    student = load_checkpoint(result.best_path)
    assert student.n_members == 1 and isinstance(student.build_model(), EmotionNet)
    assert student.extra["train_config"]["distil_weight"] == 0.9 and student.extra["student"] == {"seed": 2}
    assert [m["seed"] for m in student.extra["teacher"]["members"]] == [0, 1]
    teacher = load_checkpoint(result.teacher_path)
    assert result.teacher_path == result.best_path.parent / "teacher.pt"
    assert teacher.n_members == 2 and isinstance(teacher.build_model(), EnsembleNet)
    # The teacher is the plain two-model ensemble: its models train as they would without distillation.
    plain = load_checkpoint(small_trainer(tmp_path / "plain", epochs=3, members=2).fit(train, valid).best_path)
    for a, b in zip((teacher.state_dict, *teacher.member_states), (plain.state_dict, *plain.member_states), strict=True):
        assert_same_weights(a, b)
    # The student saw the teacher: it ends elsewhere than the same seed trained on the labels alone.
    alone = load_checkpoint(small_trainer(tmp_path / "seed2", epochs=3, seed=2).fit(train, valid).best_path)
    assert any(not torch.equal(student.state_dict[k], alone.state_dict[k]) for k in alone.state_dict)
    assert student.metrics["validation"]["ua"] == pytest.approx(result.best_metrics["ua"])
    # Events: the student is model 3 of 3, and progress spans all three.
    epochs = [e for e in events if isinstance(e, EpochReport)]
    assert [(e.member, e.epoch) for e in epochs] == [(m, k) for m in (1, 2, 3) for k in (1, 2, 3)]
    assert all(e.members == 3 for e in events)
    progress = [e.progress for e in events if isinstance(e, BatchProgress)]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    assert [(h.member, h.epoch) for h in result.history] == [(e.member, e.epoch) for e in epochs]


def test_cancelled_student_leaves_the_ensemble_and_resumes_exactly(tmp_path, small_data, distilled_run):
    train, valid = small_data
    reference, _ = distilled_run
    done = []

    def remember(event):
        if isinstance(event, EpochReport):
            done.append((event.member, event.epoch))

    first = small_trainer(tmp_path, epochs=3, members=2, distil_weight=0.9, callback=remember,
                          should_stop=lambda: (3, 1) in done).fit(train, valid)
    assert first.stopped == "cancelled"
    assert load_checkpoint(first.best_path).n_members == 2  # usable: the whole ensemble
    resumed_events = []
    second = small_trainer(tmp_path, epochs=3, members=2, distil_weight=0.9, callback=resumed_events.append).fit(train, valid, resume=True)
    assert second.stopped == "completed"
    assert [(e.member, e.epoch) for e in resumed_events if isinstance(e, EpochReport)] == [(3, 2), (3, 3)]
    assert [h.val_loss for h in second.history] == [h.val_loss for h in reference.history]
    assert_same_weights(load_checkpoint(second.best_path).state_dict, load_checkpoint(reference.best_path).state_dict)


def test_the_student_follows_its_teacher_over_the_labels(tmp_path):
    """A teacher that learnt every label swapped (0<->1, 2<->3) teaches a student, trained on the
    true labels with the soft targets alone (weight 1): the student answers as the teacher does."""
    train = synthetic_examples(LABELS4, 24, 0, 0.8)
    valid = synthetic_examples(LABELS4, 8, 500, 0.8)

    def trainer(out, **overrides):
        config = TrainConfig(epochs=12, batch_size=16, lr=3e-3, seed=0, device="cpu", num_threads=1, patience=0,
                             augment=AugmentConfig(enabled=False), **overrides)
        return Trainer(labels=LABELS4, feature_config=FeatureConfig(trim="none"), model_config=tiny_model(64, 4),
                       train_config=config, out_dir=out)

    def swapped(examples):
        return [dataclasses.replace(e, label=e.label ^ 1) for e in examples]

    taught = trainer(tmp_path / "teacher").fit(swapped(train), swapped(valid))
    assert taught.best_metrics["ua"] >= 0.9
    teacher = load_checkpoint(taught.best_path)
    # Selected on validation against the teacher's (swapped) labels, as it was taught.
    student = trainer(tmp_path / "student", distil_weight=1.0, distil_temperature=1.0).fit(train, swapped(valid), teacher=teacher)
    assert student.best_metrics["ua"] >= 0.9, [round(h.ua, 3) for h in student.history]


def test_a_teacher_must_share_labels_and_features_and_needs_a_one_model_distilling_run(tmp_path, small_data, distilled_run):
    train, valid = small_data
    teacher = load_checkpoint(distilled_run[0].teacher_path)
    with pytest.raises(ValueError, match="teacher needs"):
        small_trainer(tmp_path / "a", epochs=1).fit(train, valid, teacher=teacher)
    with pytest.raises(ValueError, match="teacher needs"):
        small_trainer(tmp_path / "b", epochs=1, members=2, distil_weight=0.5).fit(train, valid, teacher=teacher)
    for other in (dataclasses.replace(teacher, labels=["calm", "angry"]),
                  dataclasses.replace(teacher, feature_config=dataclasses.replace(teacher.feature_config, trim="energy"))):
        with pytest.raises(ValueError, match="other labels or features"):
            small_trainer(tmp_path / "c", epochs=1, distil_weight=0.5).fit(train, valid, teacher=other)


def test_distilling_one_model_without_a_teacher_is_refused_not_trained_plainly(tmp_path, small_data):
    """A one-model run that asks to distil has nothing to learn from: an error, before any
    epoch, instead of a plain model that silently ignores the setting."""
    train, valid = small_data
    events = []
    with pytest.raises(ValueError, match="needs a teacher"):
        small_trainer(tmp_path, epochs=1, distil_weight=0.5, callback=events.append).fit(train, valid)
    assert events == [] and not (tmp_path / "best.pt").exists()
    # A recipe never carries a teacher, so there the rule is: distilling needs an ensemble.
    with pytest.raises(ValueError, match="at least two models"):
        Recipe(train=TrainConfig(members=1, distil_weight=0.9))
    assert Recipe(train=TrainConfig(members=2, distil_weight=0.9)).train.members == 2


def test_reports_score_the_student_and_its_teacher(tmp_path, scans):  # noqa: F811
    recipe = tiny_recipe(epochs=1)
    recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, members=2, distil_weight=0.9))
    report = cross_validate(scans, tmp_path / "cv", folds=2, only_folds=[0], recipe=recipe)
    fold = report["folds"][0]
    assert load_checkpoint(tmp_path / "cv" / "fold1" / "best.pt").n_members == 1
    assert 0 <= fold["teacher"]["ua"] <= 1 and report["teacher"]["ua"] == pytest.approx(fold["teacher"]["ua"])
    assert [m["seed"] for m in fold["members"]] == [0, 1] and report["member_mean"]["n"] == 2
    # Resumed, a finished run trains nothing again and reports the same.
    again = cross_validate(scans, tmp_path / "cv", folds=2, only_folds=[0], recipe=recipe, resume=True)
    assert again["folds"][0]["ua"] == fold["ua"] and again["folds"][0]["teacher"] == fold["teacher"]


def test_the_teacher_sees_the_students_masked_input(tmp_path, small_data, distilled_run, monkeypatch):
    """Function matching: with SpecAugment masks, the teacher is asked about exactly the
    features the student learns from (the same masks)."""
    train, valid = small_data
    teacher = load_checkpoint(distilled_run[0].teacher_path)
    seen: dict[str, list[torch.Tensor]] = {"student": [], "teacher": []}
    original = trainer_module.teacher_targets

    def recording_teacher(ck, student, device):
        extractor, soft_targets = original(ck, student, device)

        def recorded(feats, lengths):
            seen["teacher"].append(feats.clone())
            return soft_targets(feats, lengths)

        return extractor, recorded

    forward = EmotionNet.forward

    def recording_forward(self, feats, lengths):
        if self.training:
            seen["student"].append(feats.clone())
        return forward(self, feats, lengths)

    monkeypatch.setattr(trainer_module, "teacher_targets", recording_teacher)
    monkeypatch.setattr(EmotionNet, "forward", recording_forward)
    augment = AugmentConfig(speed=(0.9, 1.0, 1.1), freq_masks=2, time_masks=2, noise_prob=0.5)
    small_trainer(tmp_path, epochs=1, distil_weight=0.5, augment=augment).fit(train, valid, teacher=teacher)
    assert len(seen["student"]) == len(seen["teacher"]) >= 2
    for student, taught in zip(seen["student"], seen["teacher"], strict=True):
        torch.testing.assert_close(student, taught)  # the same statistics: the same features exactly
    assert any((f == 0).any() for f in seen["student"])  # the masks were there
