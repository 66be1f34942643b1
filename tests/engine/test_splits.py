"""Training engine: speaker-independent hold-out and k-fold splits."""

from __future__ import annotations

import numpy as np
import pytest

from training.engine.splits import (
    SplitError,
    holdout_split,
    kfold_splits,
    natural_key,
)


def layout(rng: np.random.Generator, corpora: int, speaker_ids_shared: bool = True):
    """Random utterances: (labels, speakers, corpora). Corpora reuse the same speaker ids."""
    labels, speakers, names = [], [], []
    for c in range(corpora):
        n_spk = int(rng.integers(2, 9))
        for s in range(n_spk):
            spk = f"spk{s}" if speaker_ids_shared else f"c{c}spk{s}"
            for _ in range(int(rng.integers(1, 7))):
                labels.append(str(rng.choice(["neutral", "happy", "sad", "angry"])))
                speakers.append(spk)
                names.append(f"corpus{c}")
    return labels, speakers, names


def people(indices, speakers, corpora) -> set[tuple[str, str]]:
    return {(corpora[i], speakers[i]) for i in indices}


@pytest.mark.parametrize("seed", range(8))
def test_holdout_never_shares_a_speaker(seed):
    rng = np.random.default_rng(seed)
    labels, speakers, corpora = layout(rng, corpora=int(rng.integers(1, 4)))
    split = holdout_split(labels, speakers, corpora, seed=seed)
    assert sorted(split.train + split.valid + split.test) == list(range(len(labels)))
    train, valid, test = (people(x, speakers, corpora) for x in (split.train, split.valid, split.test))
    assert not train & test
    assert not valid & test
    if "validation drawn from training speakers" not in split.protocol:
        assert not train & valid
    assert split.speaker_independent
    assert "speaker-independent" in split.protocol
    assert split.test_speakers == sorted(split.test_speakers, key=natural_key)
    # Test speakers are named per corpus: the same id in two corpora is two people.
    assert {f"{c}/{s}" for c, s in test} == set(split.test_speakers)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("consecutive", [True, False])
def test_kfold_never_shares_a_speaker(seed, consecutive):
    rng = np.random.default_rng(100 + seed)
    labels, speakers, corpora = layout(rng, corpora=int(rng.integers(1, 4)))
    folds = int(rng.integers(2, 4))
    n_spk_min = min(len({s for s, c in zip(speakers, corpora, strict=True) if c == name}) for name in set(corpora))
    if n_spk_min < folds:
        folds = n_spk_min
    splits = kfold_splits(labels, speakers, corpora, folds=folds, seed=seed, consecutive=consecutive)
    assert len(splits) == folds
    seen_test = []
    for split in splits:
        seen_test.extend(split.test)
        assert sorted(split.train + split.valid + split.test) == list(range(len(labels)))
        train, valid, test = (people(x, speakers, corpora) for x in (split.train, split.valid, split.test))
        assert not train & test and not valid & test
        if "validation drawn from training speakers" not in split.protocol:
            assert not train & valid
    assert sorted(seen_test) == list(range(len(labels)))  # every utterance tested exactly once


def test_same_speaker_id_in_two_corpora_is_two_people():
    labels = ["happy", "sad"] * 8
    corpora = ["A"] * 8 + ["B"] * 8
    speakers = [f"spk{i // 2 % 4}" for i in range(16)]  # spk0..spk3 in both corpora
    splits = kfold_splits(labels, speakers, corpora, folds=2, seed=0)
    for split in splits:
        corpora_tested = {k.split("/")[0] for k in split.test_speakers}
        assert corpora_tested == {"A", "B"}  # each corpus contributes its own speaker group
    assert set(splits[0].test_speakers).isdisjoint(splits[1].test_speakers)
    # Shuffled groups are drawn per corpus: A/spkN and B/spkN need not share a fold.
    split_apart = False
    for seed in range(10):
        for split in kfold_splits(labels, speakers, corpora, folds=2, seed=seed, consecutive=False):
            ids = [k.split("/")[1] for k in split.test_speakers]
            split_apart |= len(set(ids)) > 2
    assert split_apart
    held = holdout_split(labels, speakers, corpora, test_speakers=["A/spk1"])
    assert {(corpora[i], speakers[i]) for i in held.test} == {("A", "spk1")}
    assert any(corpora[i] == "B" and speakers[i] == "spk1" for i in held.train + held.valid)
    assert held.protocol.startswith("speaker-independent hold-out: 1 test speaker, ")


def test_ravdess_style_consecutive_folds():
    labels, speakers, corpora = [], [], []
    for actor in range(1, 25):
        for label in ("neutral", "happy", "sad", "angry"):
            labels.append(label)
            speakers.append(f"Actor_{actor:02d}")
            corpora.append("ravdess")
    splits = kfold_splits(labels, speakers, corpora, folds=6, seed=0)
    for f, split in enumerate(splits):
        expected = [f"ravdess/Actor_{a:02d}" for a in range(4 * f + 1, 4 * f + 5)]
        assert split.test_speakers == expected
        assert len(split.test) == 16
        assert f"fold {f + 1}" in split.protocol
        assert "leave-speakers-out" in split.protocol and split.speaker_independent
        assert split.valid_speakers and set(split.valid_speakers).isdisjoint(expected)


def test_splits_are_seeded():
    rng = np.random.default_rng(7)
    labels, speakers, corpora = layout(rng, corpora=2)
    a = holdout_split(labels, speakers, corpora, seed=3)
    b = holdout_split(labels, speakers, corpora, seed=3)
    assert (a.train, a.valid, a.test) == (b.train, b.valid, b.test)
    different = [holdout_split(labels, speakers, corpora, seed=s).test for s in range(10)]
    assert len({tuple(t) for t in different}) > 1
    ka = kfold_splits(labels, speakers, corpora, folds=2, seed=3, consecutive=False)
    kb = kfold_splits(labels, speakers, corpora, folds=2, seed=3, consecutive=False)
    assert [s.test for s in ka] == [s.test for s in kb]


def test_speakerless_fallback_says_so():
    labels = [lab for lab in ("neutral", "happy", "sad") for _ in range(20)]
    speakers = [None] * len(labels)
    corpora = ["nospk"] * len(labels)
    split = holdout_split(labels, speakers, corpora, seed=0)
    assert not split.speaker_independent
    assert "no speaker information" in split.protocol
    assert sorted(split.train + split.valid + split.test) == list(range(len(labels)))
    assert {labels[i] for i in split.test} == {"neutral", "happy", "sad"}  # stratified
    folds = kfold_splits(labels, speakers, corpora, folds=3, seed=0)
    assert all("not speaker-independent" in s.protocol and not s.speaker_independent for s in folds)
    assert sorted(i for s in folds for i in s.test) == list(range(len(labels)))
    # Mixed: one corpus with speakers, one without.
    mixed = holdout_split(
        labels + ["happy", "sad"] * 6,
        speakers + [f"s{i % 3}" for i in range(12)],
        corpora + ["withspk"] * 12,
        seed=0,
    )
    assert not mixed.speaker_independent and "speakers may appear in both" in mixed.protocol


def test_test_speakers_selection():
    labels = ["happy", "sad"] * 12
    speakers = [f"spk{i % 4}" for i in range(24)]
    corpora = ["A"] * 12 + ["B"] * 12
    bare = holdout_split(labels, speakers, corpora, test_speakers=["spk1"])
    assert bare.test_speakers == ["A/spk1", "B/spk1"]
    assert {speakers[i] for i in bare.test} == {"spk1"}
    keyed = holdout_split(labels, speakers, corpora, test_speakers=["B/spk2"])
    assert keyed.test_speakers == ["B/spk2"]
    assert {(corpora[i], speakers[i]) for i in keyed.test} == {("B", "spk2")}
    with pytest.raises(SplitError, match="spk9"):
        holdout_split(labels, speakers, corpora, test_speakers=["spk9"])
    with pytest.raises(SplitError):
        kfold_splits(labels, speakers, corpora, folds=5)  # 4 speakers per corpus
    with pytest.raises(SplitError):
        kfold_splits(labels, speakers, corpora, folds=1)


