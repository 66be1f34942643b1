"""A run that meets a non-finite loss stops with a clear error instead of storing NaN (issue 29, item 3)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.engine.training_support import small_trainer
from training.engine.trainer import NonFiniteLossError

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")]


def test_non_finite_training_loss_stops_the_run(tmp_path, small_data):
    train, valid = small_data
    # Samples no decoder lets through (it refuses them), handed to the engine directly.
    poisoned = [dataclasses.replace(e, waveform=(e.waveform * np.float32(1e20)).astype(np.float32)) for e in train]
    epochs = []
    trainer = small_trainer(tmp_path, epochs=2, callback=lambda e: epochs.append(e) if e["type"] == "epoch" else None)
    with pytest.raises(NonFiniteLossError, match=r"(?s)training loss at epoch 1, batch \d+ is nan.*Lower the learning rate"):
        trainer.fit(poisoned, valid)
    assert epochs == []  # no epoch with a NaN loss was reported (or stored)


def test_non_finite_validation_loss_stops_the_run(tmp_path, small_data):
    train, valid = small_data
    poisoned = [dataclasses.replace(e, waveform=(e.waveform * np.float32(1e20)).astype(np.float32)) for e in valid]
    with pytest.raises(NonFiniteLossError, match="validation loss at epoch 1"):
        small_trainer(tmp_path, epochs=2).fit(train, poisoned)
