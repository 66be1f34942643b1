"""Fixtures shared by the engine's training tests."""

from __future__ import annotations

import pytest

from devsupport.synth import make_folder_corpus
from tests.engine.training_support import LABELS2, synthetic_examples
from training.engine.corpora import scan_corpus


@pytest.fixture(scope="module")
def small_data():
    """Two classes, 12 short training utterances from four speakers, 4 validation utterances."""
    return synthetic_examples(LABELS2, 6, 0, 0.4, lead_silence=0.05), synthetic_examples(LABELS2, 2, 500, 0.4, lead_silence=0.05)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """One folder corpus, four classes, four speakers, one utterance each (test_experiment.py
    overrides it with two corpora)."""
    root = tmp_path_factory.mktemp("corpora")
    make_folder_corpus(root / "alpha", ["neutral", "happy", "sad", "angry"], speakers=4, per_class=1, seed=1)
    return [scan_corpus(root / "alpha", format="folders", speaker_regex=r"^(?P<speaker>spk\d+)_")]
