"""Training engine: confusion matrix, scores and fold summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.engine.metrics import confusion_matrix, scores, summarise_folds


def test_confusion_rows_are_true_labels():
    cm = confusion_matrix([0, 0, 1, 2], [1, 0, 1, 1], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert cm.dtype == np.int64


def test_scores_hand_computed():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    s = scores(cm, ["a", "b", "c"])
    # recall 2/3, 1/2, 1; precision 1, 1/2, 1/2; F1 0.8, 0.5, 2/3
    assert s["wa"] == pytest.approx(4 / 6)
    assert s["ua"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert s["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert s["n"] == 6
    assert s["per_class"]["a"] == pytest.approx({"recall": 2 / 3, "precision": 1.0, "f1": 0.8, "support": 3})
    assert s["per_class"]["c"]["precision"] == pytest.approx(0.5)
    assert s["absent_classes"] == []
    assert s["confusion"] == cm.tolist()
    json.dumps(s)  # plain JSON types only


def test_scores_absent_classes_are_left_out():
    # Class "d" never occurs in the truth but is predicted once.
    cm = confusion_matrix([0, 0, 1, 1, 2, 2], [0, 3, 1, 1, 2, 2], 4)
    s = scores(cm, ["a", "b", "c", "d"])
    assert s["absent_classes"] == ["d"]
    assert s["wa"] == pytest.approx(5 / 6)
    assert s["ua"] == pytest.approx((0.5 + 1 + 1) / 3)  # mean over the three present classes
    f1_a = 2 * 1.0 * 0.5 / 1.5
    assert s["macro_f1"] == pytest.approx((f1_a + 1 + 1) / 3)
    assert s["per_class"]["d"] == {"recall": 0.0, "precision": 0.0, "f1": 0.0, "support": 0}


def test_scores_empty_and_summary():
    s = scores(np.zeros((2, 2), int), ["a", "b"])
    assert (s["wa"], s["ua"], s["macro_f1"], s["n"]) == (0.0, 0.0, 0.0, 0)
    summary = summarise_folds([{"wa": 0.5, "ua": 0.4, "macro_f1": 0.3}, {"wa": 0.7, "ua": 0.6, "macro_f1": 0.5}])
    assert summary["wa"] == pytest.approx(0.6) and summary["wa_std"] == pytest.approx(0.1)
    assert summary["ua"] == pytest.approx(0.5) and summary["ua_std"] == pytest.approx(0.1)
    assert summary["macro_f1_std"] == pytest.approx(0.1)
    assert summarise_folds([])["ua"] == 0.0


def test_per_speaker_scores_key_speakers_by_corpus_and_skip_unknown_ones():
    from training.engine.metrics import per_speaker_scores

    y_true = [0, 1, 0, 1, 0, 1]
    y_pred = [0, 1, 1, 1, 0, 0]
    corpora = ["a", "a", "a", "b", "b", "b"]
    speakers = ["s1", "s1", "s2", "s1", "s1", None]  # b/s1 is another person than a/s1
    out = per_speaker_scores(y_true, y_pred, corpora, speakers, 2)
    assert list(out) == ["a/s1", "a/s2", "b/s1"]
    assert out["a/s1"] == {"wa": 1.0, "ua": 1.0, "n": 2, "correct": 2}
    assert out["a/s2"] == {"wa": 0.0, "ua": 0.0, "n": 1, "correct": 0}  # UA over the classes it has
    assert out["b/s1"]["n"] == 2 and out["b/s1"]["correct"] == 2
