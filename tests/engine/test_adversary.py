"""Speaker-adversarial training: the gradient reversal, its schedule, speaker targets, and a
training run with the adversary (what it changes, what it saves, exact resume)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from recognition.engine.checkpoint import load_checkpoint
from tests.engine.test_trainer import (
    assert_resume_after_one_epoch_matches,
    assert_same_weights,
    small_trainer,
)
from training.engine.adversary import (
    SpeakerAdversary,
    reversal_strength,
    speaker_index,
    speaker_targets,
)
from training.engine.data import Example
from training.engine.trainer import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_reversal_passes_forward_and_turns_the_gradient_back():
    torch.manual_seed(0)
    head = SpeakerAdversary(6, 3, hidden=5)
    context = torch.randn(4, 6, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 1])
    # What the head sees is the context itself...
    plain = head.net(context)
    assert torch.equal(head(context, 0.5), plain)
    # ... and the context's gradient is the plain one negated and scaled by the strength.
    (plain_grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(plain, targets), context)
    (reversed_grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(head(context, 0.5), targets), context)
    assert torch.allclose(reversed_grad, -0.5 * plain_grad)
    # The head's own weights learn as usual (the reversal is below it).
    head.zero_grad()
    torch.nn.functional.cross_entropy(head(context, 0.5), targets).backward()
    own = [p.grad.clone() for p in head.parameters()]
    head.zero_grad()
    torch.nn.functional.cross_entropy(head.net(context), targets).backward()
    assert all(torch.allclose(a, p.grad) for a, p in zip(own, head.parameters(), strict=True))


def test_reversal_strength_ramps_from_zero_to_the_weight():
    assert reversal_strength(0.3, 0.0) == 0.0
    ramp = [reversal_strength(0.3, p / 10) for p in range(11)]
    assert ramp == sorted(ramp) and ramp[-1] == pytest.approx(0.3, abs=1e-4)
    assert reversal_strength(0.3, 2.0) == reversal_strength(0.3, 1.0)


def test_speaker_targets_are_per_corpus_and_ignore_unknown_speakers():
    wave = torch.zeros(10).numpy()
    examples = [Example(wave, 0, "b", "1"), Example(wave, 1, "a", "1"), Example(wave, 0, "a", "2"), Example(wave, 1, "a", None)]
    index = speaker_index(examples)
    assert index == {("a", "1"): 0, ("a", "2"): 1, ("b", "1"): 2}
    assert speaker_targets(examples, index).tolist() == [2, 0, 1, -100]
    # A speaker the index has never seen is ignored too, not given another's class.
    assert speaker_targets([Example(wave, 0, "c", "9")], index).tolist() == [-100]


def test_train_config_bounds_the_adversary():
    for bad in (-0.1, 11.0):
        with pytest.raises(ValueError, match="speaker_adversarial"):
            TrainConfig(speaker_adversarial=bad)
    assert TrainConfig.from_dict({"speaker_adversarial": 0.3}).speaker_adversarial == 0.3


def test_adversarial_training_changes_the_model_saves_no_head_and_resumes_exactly(tmp_path, small_data):
    train, valid = small_data
    plain = small_trainer(tmp_path / "plain", epochs=3).fit(train, valid)
    reference = small_trainer(tmp_path / "ref", epochs=3, speaker_adversarial=1.0).fit(train, valid)
    best, base = load_checkpoint(reference.best_path), load_checkpoint(plain.best_path)
    # The saved model is a plain EmotionNet (the head is training-only) ...
    assert best.state_dict.keys() == base.state_dict.keys()
    assert best.extra["train_config"]["speaker_adversarial"] == 1.0
    # ... trained differently: the reversed speaker gradient reached the network.
    assert any(not torch.equal(best.state_dict[k], base.state_dict[k]) for k in base.state_dict if base.state_dict[k].is_floating_point())
    # The emotion loss is what the events report, so it stays comparable with a plain run's.
    assert all(h["train_loss"] < 5 for h in reference.history)
    # The head's state is kept for resume, and a cancelled run resumes to the same history.
    head = load_checkpoint(reference.last_path).extra["trainer"]["adversary"]
    assert head["net.2.weight"].shape[0] == 4  # the four synthetic speakers s0..s3
    assert_resume_after_one_epoch_matches(tmp_path / "cut", small_data, reference, speaker_adversarial=1.0)


def test_one_known_speaker_trains_as_without_the_adversary(tmp_path, small_data):
    train, valid = small_data
    alone = [dataclasses.replace(e, speaker="only") for e in train]
    plain = small_trainer(tmp_path / "plain", epochs=2).fit(alone, valid)
    adversarial = small_trainer(tmp_path / "adv", epochs=2, speaker_adversarial=1.0).fit(alone, valid)
    assert_same_weights(load_checkpoint(adversarial.best_path).state_dict, load_checkpoint(plain.best_path).state_dict)
    assert "adversary" not in load_checkpoint(adversarial.last_path).extra["trainer"]


def test_resume_refuses_to_add_or_drop_training_only_state(tmp_path, small_data):
    """A run resumed with the adversary (or weight averaging) switched on or off is refused
    with a clear message, and its last checkpoint is left as it was."""
    train, valid = small_data
    small_trainer(tmp_path / "plain", epochs=1).fit(train, valid)
    small_trainer(tmp_path / "adv", epochs=1, speaker_adversarial=1.0).fit(train, valid)
    for folder, change, message in (
        ("plain", {"speaker_adversarial": 1.0}, "without speaker_adversarial"),
        ("adv", {}, "with speaker_adversarial"),
        ("plain", {"ema_decay": 0.9}, r"without weight averaging"),
    ):
        before = (tmp_path / folder / "last.pt").read_bytes()
        with pytest.raises(ValueError, match=message):
            small_trainer(tmp_path / folder, epochs=2, **change).fit(train, valid, resume=True)
        assert (tmp_path / folder / "last.pt").read_bytes() == before
