"""Training engine: the experiment layer (datasets, hold-out, cross-validation, evaluation)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from devsupport.synth import make_folder_corpus
from recognition.engine.checkpoint import load_checkpoint
from recognition.engine.features import FeatureConfig, FeatureExtractor
from tests.engine.training_support import tiny_recipe
from training.engine.corpora import scan_corpus
from training.engine.data import AugmentConfig, WaveformCache
from training.engine.events import EpochReport
from training.engine.experiment import (
    Recipe,
    build_dataset,
    cross_validate,
    evaluate_checkpoint,
    merge_fold_reports,
    train_holdout,
)
from training.engine.splits import TRAIN_SPEAKER_VALIDATION
from training.engine.trainer import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


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
    assert [e.epoch for e in events if isinstance(e, EpochReport)] == [1, 2]
    # One row per test speaker: the run page's per-speaker table.
    assert sorted(report["per_speaker"]) == sorted(test_speakers)
    assert sum(p["correct"] for p in report["per_speaker"].values()) == round(report["wa"] * report["n"])
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

    # The same folds run one at a time (as bench/accuracy.py --jobs does in separate processes)
    # and merged give the same report.
    ds = build_dataset(scans)
    parts = [cross_validate(scans, tmp_path / f"part{f}", folds=2, only_folds=[f], recipe=tiny_recipe(epochs=1), dataset=ds) for f in (1, 0)]
    assert parts[0]["protocol"].endswith("; folds run: [2]")
    merged = merge_fold_reports(parts)
    assert merged["protocol"] == report["protocol"]
    for key in ("wa", "ua", "macro_f1", "wa_std", "ua_std", "macro_f1_std"):
        assert merged[key] == pytest.approx(report[key])
    assert merged["confusion"] == report["confusion"] and merged["pooled"] == report["pooled"]
    assert [f["fold"] for f in merged["folds"]] == [1, 2] and merged["per_corpus"] == report["per_corpus"]
    assert merge_fold_reports(parts[:1])["protocol"].endswith("; folds run: [2]")
    # The protocol is rebuilt from the folds, so a note only the second process's fold carries survives.
    noted = {**parts[1], "folds": [{**parts[1]["folds"][0], "protocol": parts[1]["folds"][0]["protocol"] + "; " + TRAIN_SPEAKER_VALIDATION}]}
    assert TRAIN_SPEAKER_VALIDATION in merge_fold_reports([parts[0], noted])["protocol"]
    with pytest.raises(ValueError, match="share folds"):
        merge_fold_reports([parts[0], parts[0]])
    with pytest.raises(ValueError, match="differ"):
        merge_fold_reports([parts[0], {**parts[1], "labels": ["x"]}])


def test_speaker_normalised_holdout_evaluates_alike(tmp_path, scans):
    """Speaker means reach training, the hold-out test and a later evaluation alike."""
    base = tiny_recipe()
    recipe = Recipe(features=FeatureConfig(trim="none", n_mels=32, speaker_cmn=True), model_size=base.model_size,
                    model_overrides=base.model_overrides, train=base.train)
    ds = build_dataset(scans)
    examples = ds.examples(WaveformCache(recipe.features))
    by_speaker = {}
    for e in examples:
        by_speaker.setdefault((e.corpus, e.speaker), []).append(e)
    extractor = FeatureExtractor(recipe.features)
    for members in by_speaker.values():
        expected = extractor.speaker_mean([e.waveform for e in members]).numpy()
        for e in members:
            np.testing.assert_allclose(e.centre, expected, atol=1e-5)
    assert all(e.centre is None for e in build_dataset(scans).examples(WaveformCache(tiny_recipe().features)))

    out = tmp_path / "spk.pt"
    report = train_holdout(scans, out, recipe=recipe, dataset=ds, work_dir=tmp_path / "work")
    assert load_checkpoint(out).feature_config.speaker_cmn
    # The report also scores each test recording alone, centred on itself.
    assert set(report["alone"]) == {"wa", "ua", "macro_f1"} and 0.0 <= report["alone"]["ua"] <= 1.0
    cv = cross_validate(scans, tmp_path / "cv", folds=2, recipe=recipe, dataset=ds)
    assert [set(f["alone"]) for f in cv["folds"]] == [{"wa", "ua", "macro_f1"}] * 2
    assert cv["alone"]["ua"] == pytest.approx(np.mean([f["alone"]["ua"] for f in cv["folds"]]))
    assert "scored alone" in cv["alone"]["note"]
    assert "alone" not in cross_validate(scans, tmp_path / "cv2", folds=2, recipe=tiny_recipe(epochs=1), dataset=ds)
    evaluation = evaluate_checkpoint(out, scans, speakers=report["split"]["test_speakers"])
    assert evaluation["confusion"] == report["confusion"]


def test_reports_score_test_time_augmentation_when_the_model_was_trained_with_speeds(tmp_path, scans):
    from training.cli import summary_line

    base = tiny_recipe(epochs=1)
    recipe = Recipe(features=base.features, model_size=base.model_size, model_overrides=base.model_overrides,
                    train=TrainConfig(**{**base.train.__dict__, "augment": AugmentConfig(speed=(0.9, 1.0, 1.1), noise_prob=0.0)}))
    ds = build_dataset(scans)
    cv = cross_validate(scans, tmp_path / "cv", folds=2, recipe=recipe, dataset=ds)
    for fold in cv["folds"]:
        assert set(fold["tta"]) == {"wa", "ua", "macro_f1", "speeds"} and fold["tta"]["speeds"] == [0.9, 1.0, 1.1]
    assert cv["tta"]["ua"] == pytest.approx(np.mean([f["tta"]["ua"] for f in cv["folds"]]))
    assert "every model at every speed it was trained at" in cv["tta"]["note"]
    assert "with test-time augmentation" in summary_line(cv)
    merged = merge_fold_reports([{**cv, "folds": [f]} for f in cv["folds"]])
    assert merged["tta"] == cv["tta"]
    model = tmp_path / "cv" / "fold1" / "best.pt"
    evaluation = evaluate_checkpoint(model, scans, speakers=cv["folds"][0]["split"]["test_speakers"])
    assert evaluation["tta"]["ua"] == pytest.approx(cv["folds"][0]["tta"]["ua"])
    assert evaluation["ua"] == pytest.approx(cv["folds"][0]["ua"])
    # The checkpoint carries the scores as the app asks it, for the model registry.
    assert load_checkpoint(model).metrics["tta"] == cv["folds"][0]["tta"]
    # Without speed augmentation there is nothing to average over.
    assert "tta" not in cross_validate(scans, tmp_path / "plain", folds=2, only_folds=[0], recipe=base, dataset=ds)


def test_recipe_round_trips_and_reads_stored_recipes_as_they_were_meant():
    assert Recipe.from_dict(Recipe().to_dict()) == Recipe()
    # Nothing stored: a recipe from before the Whisper front end, the CNN's, with one model.
    assert Recipe.from_dict({}) == Recipe(features=FeatureConfig(kind="logmel", speaker_cmn=True), train=TrainConfig())
    # A recipe stored before ensembles existed trains what it trained then.
    old = Recipe().to_dict()
    del old["train"]["members"]
    read = Recipe.from_dict(old)
    assert read.train.members == 1 and read.features == Recipe().features
    # One stored while the measured-and-rejected options existed holds them off: it reads as the default.
    old = Recipe().to_dict()
    old["features"]["periodicity_bands"] = 0
    old["train"].update(mixup_alpha=0.0, ema_decay=0.0, speed_centres=False, rotate_validation=False, speaker_adversarial=0.0)
    old["train"]["augment"]["freq_warp"] = 0.0
    assert Recipe.from_dict(old) == Recipe()
