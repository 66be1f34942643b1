"""Fixtures shared by the engine's training tests."""

from __future__ import annotations

import pytest

from tests.engine.test_trainer import LABELS2, synthetic_examples


@pytest.fixture(scope="module")
def small_data():
    """Two classes, 12 short training utterances from four speakers, 4 validation utterances."""
    return synthetic_examples(LABELS2, 6, 0, 0.4, lead_silence=0.05), synthetic_examples(LABELS2, 2, 500, 0.4, lead_silence=0.05)
