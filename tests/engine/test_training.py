"""Training engine: metrics, speaker-independent splits, batching and augmentation, the
trainer (learning, events, determinism, cancellation, exact resume, early stopping) and the
experiment layer (datasets, hold-out, cross-validation, evaluation)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recognition.engine.checkpoint import load_checkpoint
from recognition.engine.features import FeatureConfig
from recognition.engine.model import ModelConfig
from tests.synth import make_folder_corpus, speech_like
from training.engine import trainer as trainer_module
from training.engine.corpora import scan_corpus
from training.engine.data import (
    AugmentConfig,
    Example,
    augment_waveform,
    bucket_batches,
    collate,
    spec_augment,
)
from training.engine.experiment import (
    Recipe,
    build_dataset,
    cross_validate,
    evaluate_checkpoint,
    train_holdout,
)
from training.engine.metrics import confusion_matrix, scores, summarise_folds
from training.engine.splits import SplitError, holdout_split, kfold_splits, natural_key
from training.engine.trainer import TrainConfig, Trainer

EPOCH_KEYS = {
    "type",
    "epoch",
    "epochs",
    "train_loss",
    "train_acc",
    "val_loss",
    "wa",
    "ua",
    "macro_f1",
    "confusion",
    "per_class_recall",
    "lr",
    "duration",
    "best_ua",
    "best_epoch",
    "is_best",
}
PROGRESS_KEYS = {"type", "epoch", "epochs", "batch", "batches", "progress", "train_loss"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one thread is fastest, and the machine's cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# === metrics ================================================================================


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


# === splits =================================================================================


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


# === batching and augmentation ==============================================================


@pytest.mark.parametrize(("n", "batch_size", "seed"), [(1, 4, 0), (9, 4, 1), (10, 3, 2), (33, 8, 3), (16, 16, 4), (17, 16, 5)])
def test_bucket_batches_cover_every_index_once(n, batch_size, seed):
    lengths = np.random.default_rng(seed).integers(100, 5000, n)
    for rng in (None, np.random.default_rng(seed)):
        for drop in (False, True):
            batches = bucket_batches(lengths, batch_size, rng, drop_singletons=drop)
            flat = [i for b in batches for i in b]
            assert sorted(flat) == list(range(n))
            assert all(len(b) <= batch_size + (1 if drop else 0) for b in batches)
            if drop and len(batches) > 1:
                assert all(len(b) > 1 for b in batches)
    assert bucket_batches([5, 1, 3, 2, 4], 2, None) == [[1, 3], [2, 4], [0]]
    assert bucket_batches([5, 1, 3, 2, 4], 2, None, drop_singletons=True) == [[1, 3], [2, 4, 0]]


def test_augment_waveform_speed_changes_length():
    wav = speech_like("happy", 0.5, seed=0)
    rng = np.random.default_rng(0)
    for factor in (0.5, 0.9, 1.1, 2.0):
        cfg = AugmentConfig(speed=(factor,), gain_db=0.0, noise_prob=0.0)
        out = augment_waveform(wav, cfg, rng)
        assert out.size == int(round(wav.size / factor))
        assert out.dtype == np.float32
    same = augment_waveform(wav, AugmentConfig(speed=(1.0,), gain_db=0.0, noise_prob=0.0), rng)
    np.testing.assert_array_equal(same, wav)
    # Gain only: same shape, scaled by at most +-6 dB.
    loud = augment_waveform(wav, AugmentConfig(speed=(1.0,), gain_db=6.0, noise_prob=0.0), rng)
    ratio = np.abs(loud).max() / np.abs(wav).max()
    assert 10 ** (-6 / 20) - 1e-6 <= ratio <= 10 ** (6 / 20) + 1e-6


def test_disabled_augmentation_is_identity():
    wav = speech_like("sad", 0.3, seed=1)
    cfg = AugmentConfig(enabled=False)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert augment_waveform(wav, cfg, rng) is wav
    assert rng.bit_generator.state == state  # no randomness consumed
    feats = torch.randn(2, 30, 8)
    assert spec_augment(feats, torch.tensor([30, 12]), cfg, torch.Generator().manual_seed(0)) is feats


def test_spec_augment_keeps_padding_zero():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 50, 16) + 5.0
    lengths = torch.tensor([50, 31, 7])
    for i, n in enumerate(lengths.tolist()):
        feats[i, n:] = 0
    cfg = AugmentConfig(freq_masks=2, freq_mask_width=6, time_masks=2, time_mask_fraction=0.3)
    out = spec_augment(feats, lengths, cfg, gen)
    assert out is not feats and out.shape == feats.shape
    for i, n in enumerate(lengths.tolist()):
        assert torch.count_nonzero(out[i, n:]) == 0
    assert (out == 0).sum() > (feats == 0).sum()  # something was masked
    changed = out != feats
    assert torch.all(out[changed] == 0)  # masks only zero values, never invent them


def test_collate_pads_with_zeros():
    waves = [np.ones(5, np.float32), np.full(3, 2.0, np.float32)]
    x, lengths = collate(waves)
    assert x.shape == (2, 5) and lengths.tolist() == [5, 3]
    assert x[1].tolist() == [2.0, 2.0, 2.0, 0.0, 0.0]


def test_augment_config_round_trip():
    cfg = AugmentConfig(speed=(0.8, 1.2), noise_snr_db=(10.0, 30.0), enabled=False)
    assert AugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError):
        AugmentConfig.from_dict({"pitch": 2})
    tc = TrainConfig(epochs=3, augment=cfg)
    assert TrainConfig.from_dict(json.loads(json.dumps(tc.to_dict()))) == tc


# === trainer ================================================================================

LABELS4 = ["neutral", "happy", "sad", "angry"]
LABELS2 = ["neutral", "angry"]


def synthetic_examples(labels, per_class, seed, duration, corpus="synth", lead_silence=0.1):
    out = []
    for c, label in enumerate(labels):
        for i in range(per_class):
            wave = speech_like(label, duration, seed=seed + 1000 * c + i, lead_silence=lead_silence)
            out.append(Example(wave, c, corpus, f"s{i % 4}"))
    return out


def tiny_model(n_features, n_classes):
    return ModelConfig(n_features=n_features, n_classes=n_classes, conv_channels=(4, 8, 8), lstm_hidden=16, attention_dim=16)


@pytest.fixture(scope="module")
def small_data():
    """Two classes, 12 short training utterances, 4 validation utterances."""
    return synthetic_examples(LABELS2, 6, 0, 0.4, lead_silence=0.05), synthetic_examples(LABELS2, 2, 500, 0.4, lead_silence=0.05)


SMALL_FEATURES = FeatureConfig(trim="none", n_mels=32)


def small_trainer(out_dir, *, epochs=4, callback=None, should_stop=None, **train_overrides) -> Trainer:
    settings = {"batch_size": 4, "lr": 3e-3, "seed": 0, "device": "cpu", "patience": 0, "num_threads": 1, "progress_every": 1}
    config = TrainConfig(epochs=epochs, **{**settings, **train_overrides})
    return Trainer(
        labels=LABELS2,
        feature_config=SMALL_FEATURES,
        model_config=tiny_model(32, 2),
        train_config=config,
        out_dir=out_dir,
        callback=callback,
        should_stop=should_stop,
    )


def final_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).state_dict


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


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
    assert result.best_metrics["ua"] >= 0.9, [round(h["ua"], 3) for h in result.history]
    assert result.history[-1]["ua"] >= 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]

    epoch_events = [e for e in events if e["type"] == "epoch"]
    progress_events = [e for e in events if e["type"] == "progress"]
    assert [e["epoch"] for e in epoch_events] == list(range(1, epochs + 1))
    assert epoch_events == result.history
    for e in epoch_events:
        assert set(e) == EPOCH_KEYS
        assert e["epochs"] == epochs
        assert np.array(e["confusion"]).shape == (4, 4) and np.array(e["confusion"]).sum() == len(valid)
        assert set(e["per_class_recall"]) == set(LABELS4)
        assert 0 <= e["wa"] <= 1 and 0 <= e["ua"] <= 1 and 0 <= e["macro_f1"] <= 1
        assert e["lr"] > 0 and e["duration"] >= 0
        json.dumps(e)
    best = max(epoch_events, key=lambda e: e["ua"])  # first epoch reaching the maximum
    assert result.best_epoch == best["epoch"] == epoch_events[-1]["best_epoch"]
    assert epoch_events[-1]["best_ua"] == pytest.approx(best["ua"])
    assert sum(e["is_best"] for e in epoch_events) >= 1 and epoch_events[0]["is_best"]
    assert progress_events and all(set(e) == PROGRESS_KEYS for e in progress_events)
    fractions = [e["progress"] for e in progress_events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)

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
    assert [[h[k] for k in keys] for h in a.history] == [[h[k] for k in keys] for h in b.history]
    assert_same_weights(final_weights(a.last_path), final_weights(b.last_path))
    c = small_trainer(tmp_path / "c", epochs=3, seed=1).fit(train, valid)
    assert [h["train_loss"] for h in c.history] != [h["train_loss"] for h in a.history]


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
    waves, lengths = collate([e.waveform for e in valid])
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
        if event["type"] == "epoch":
            done.append(event["epoch"])

    first = small_trainer(tmp_path, epochs=4, callback=remember, should_stop=lambda: len(done) >= 2).fit(train, valid)
    assert first.stopped == "cancelled"
    assert [h["epoch"] for h in first.history] == [1, 2]

    resumed_events = []
    second = small_trainer(tmp_path, epochs=4, callback=resumed_events.append).fit(train, valid, resume=True)
    assert second.stopped == "completed"
    assert [h["epoch"] for h in second.history] == [1, 2, 3, 4]
    assert [e["epoch"] for e in resumed_events if e["type"] == "epoch"] == [3, 4]
    # Exactly the uninterrupted run: same losses, same weights, same best epoch.
    assert [h["train_loss"] for h in second.history] == [h["train_loss"] for h in reference.history]
    assert [h["val_loss"] for h in second.history] == [h["val_loss"] for h in reference.history]
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
    assert [h["epoch"] for h in second.history] == [1, 2, 3, 4]
    assert [h["train_loss"] for h in second.history] == [h["train_loss"] for h in reference.history]
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
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5]  # best at 2, then 3 bad epochs
    assert result.best_epoch == 2
    assert [h["is_best"] for h in result.history] == [True, True, False, False, False]
    assert result.history[-1]["best_ua"] == 0.75
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


# === experiment layer =======================================================================


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    make_folder_corpus(root / "alpha", ["neutral", "happy", "sad", "angry"], speakers=4, per_class=1, seed=1)
    make_folder_corpus(root / "beta", ["neutral", "happy", "sad", "fearful"], speakers=4, per_class=1, seed=2)
    regex = r"^(?P<speaker>spk\d+)_"
    return [
        scan_corpus(root / "alpha", format="folders", speaker_regex=regex),
        scan_corpus(root / "beta", format="folders", speaker_regex=regex, name="beta"),
    ]


def tiny_recipe(epochs=2) -> Recipe:
    features = FeatureConfig(trim="none", n_mels=32)
    return Recipe(
        features=features,
        model_size="small",
        model_overrides={"conv_channels": (4, 8, 8), "lstm_hidden": 16, "attention_dim": 16},
        train=TrainConfig(epochs=epochs, batch_size=8, lr=3e-3, seed=0, device="cpu", num_threads=1, augment=AugmentConfig(enabled=False)),
    )


def test_scans_have_speakers(scans):
    alpha, beta = scans
    assert alpha.name == "alpha" and beta.name == "beta"
    assert alpha.speakers() == ["spk0", "spk1", "spk2", "spk3"] and alpha.has_speakers
    assert len(alpha.utterances) == 16 and not alpha.skipped


def test_build_dataset_label_modes(scans):
    common = build_dataset(scans)
    assert common.labels == ["neutral", "happy", "sad"]
    assert len(common.utterances) == 24
    assert common.dropped == {"angry": 4, "fearful": 4}
    assert all(common.labels[t] == u.label for t, u in zip(common.targets, common.utterances, strict=True))
    assert set(common.corpora) == {"alpha", "beta"}

    union = build_dataset(scans, mode="all")
    assert union.labels == ["neutral", "happy", "sad", "angry", "fearful"]
    assert len(union.utterances) == 32 and union.dropped == {}

    mapped = build_dataset(scans, mapping={"fearful": "angry"})
    assert mapped.labels == ["neutral", "happy", "sad", "angry"]
    fear = [t for t, u in zip(mapped.targets, mapped.utterances, strict=True) if u.label == "fearful"]
    assert len(fear) == 4 and set(fear) == {mapped.labels.index("angry")}

    dropped = build_dataset(scans, mode="all", mapping={"sad": None})
    assert "sad" not in dropped.labels and dropped.dropped == {"sad": 8}

    chosen = build_dataset(scans, include=["happy", "angry"])
    assert chosen.labels == ["happy", "angry"] and chosen.label_set.mode == "include"
    assert len(chosen.utterances) == 12

    with pytest.raises(ValueError):
        build_dataset(scans, include=["boredom"])
    with pytest.raises(ValueError):
        build_dataset([scans[0], scans[0]])
    with pytest.raises(ValueError):
        build_dataset([])


def test_train_holdout_and_evaluate(tmp_path, scans):
    events = []
    out = tmp_path / "models" / "holdout.pt"
    report = train_holdout(scans, out, recipe=tiny_recipe(), dataset=build_dataset(scans), work_dir=tmp_path / "work", callback=events.append)
    assert out.is_file()
    for key in ("protocol", "labels", "wa", "ua", "macro_f1", "confusion", "per_corpus", "folds"):
        assert key in report, key
    assert "speaker-independent" in report["protocol"]
    assert report["labels"] == ["neutral", "happy", "sad"]
    assert len(report["folds"]) == 1
    confusion = np.array(report["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == report["n"]
    test_speakers = report["split"]["test_speakers"]
    assert {k.split("/")[0] for k in test_speakers} == {"alpha", "beta"}
    assert report["n"] == 3 * len(test_speakers)  # one utterance per class and speaker
    assert set(report["per_corpus"]) == {"alpha", "beta"}
    assert sum(p["n"] for p in report["per_corpus"].values()) == report["n"]
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2]
    json.dumps(report)

    ck = load_checkpoint(out)
    assert ck.labels == report["labels"]
    assert ck.metrics["test"]["ua"] == pytest.approx(report["ua"])
    assert ck.metrics["protocol"] == report["protocol"]

    evaluation = evaluate_checkpoint(out, scans, speakers=test_speakers)
    assert evaluation["labels"] == report["labels"]
    assert evaluation["utterances"] == report["n"]
    assert evaluation["confusion"] == report["confusion"]
    assert evaluation["ua"] == pytest.approx(report["ua"])
    assert "check that these speakers were held out" in evaluation["protocol"]
    assert evaluation["dropped_labels"] == {"angry": 4, "fearful": 4}
    with pytest.raises(ValueError):
        evaluate_checkpoint(out, scans, speakers=["spk99"])


def test_cross_validate_two_folds(tmp_path, scans):
    seen_folds = []
    report = cross_validate(
        scans, tmp_path, folds=2, recipe=tiny_recipe(epochs=1), dataset=build_dataset(scans),
        on_fold=lambda f, fold: seen_folds.append(f),
    )
    assert seen_folds == [0, 1]
    folds = report["folds"]
    assert [f["fold"] for f in folds] == [1, 2]
    assert "leave-speakers-out" in report["protocol"]
    for key in ("wa", "ua", "macro_f1"):
        values = np.array([f[key] for f in folds])
        assert report[key] == pytest.approx(values.mean())
        assert report[f"{key}_std"] == pytest.approx(values.std())
    assert np.array(report["confusion"]).tolist() == (np.array(folds[0]["confusion"]) + np.array(folds[1]["confusion"])).tolist()
    assert np.array(report["confusion"]).sum() == 24  # every utterance tested once
    tested = [set(f["split"]["test_speakers"]) for f in folds]
    assert tested[0].isdisjoint(tested[1])
    assert tested[0] | tested[1] == {f"{c}/spk{s}" for c, s in itertools.product(("alpha", "beta"), range(4))}
    assert set(report["per_corpus"]) == {"alpha", "beta"}
    for f in (1, 2):
        assert (tmp_path / f"fold{f}" / "best.pt").is_file()
    with pytest.raises(ValueError):
        cross_validate(scans, tmp_path / "x", folds=2, only_folds=[2], recipe=tiny_recipe(epochs=1))
