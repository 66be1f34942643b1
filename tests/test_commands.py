"""The command-line tools end to end on a small synthetic corpus (no server, no Redis)."""

from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from devsupport.synth import make_folder_corpus, speech_silence_speech, write_wav
from training.engine.experiment import Recipe

LABELS = ["neutral", "happy", "sad", "angry"]
# The from-scratch CNN's recipe (a five-model ensemble) unless a test says otherwise.
FAST = ["--features", "logmel", "--epochs", "3", "--batch-size", "8", "--model-size", "small", "--trim", "none", "--threads", "1", "--patience", "0"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_folder_corpus(tmp_path_factory.mktemp("corpus") / "synth", LABELS, speakers=4, per_class=3)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("model")
    model, report = out / "model.pt", out / "report.json"
    stdout = StringIO()
    call_command(
        "train", "--corpus", str(corpus), "--speaker-regex", r"^(?P<speaker>spk\d+)_", "--out", str(model),
        "--test-speakers", "spk3", "--report", str(report), "--cache-dir", str(out / "cache"), "--own-centre-share", "0.3",
        *FAST, stdout=stdout,
    )
    text = stdout.getvalue()
    assert "folders, 48 utterances, 4 speakers" in text
    assert "epoch   3/3" in text
    return model, json.loads(report.read_text())


def test_train_writes_model_and_report(trained):
    model, report = trained
    assert model.is_file()
    assert report["protocol"].startswith("speaker-independent hold-out")
    assert report["recipe"]["features"]["speaker_cmn"]  # the default recipe
    assert report["recipe"]["train"]["own_centre_share"] == 0.3
    assert set(report["alone"]) == {"wa", "ua", "macro_f1"}
    assert report["labels"] == ["neutral", "happy", "sad", "angry"]
    assert report["folds"][0]["split"]["test_speakers"] == ["synth/spk3"]
    for key in ("wa", "ua", "macro_f1"):
        assert 0.0 <= report[key] <= 1.0
    assert len(report["confusion"]) == 4 and sum(map(sum, report["confusion"])) == 12


def test_train_resume_continues_from_the_work_dir(trained, corpus, tmp_path):
    model, _ = trained
    shutil.copytree(model.parent, tmp_path / "model")  # the work dir (model.pt.work/) comes along
    stdout = StringIO()
    call_command(
        "train", "--corpus", str(corpus), "--speaker-regex", r"^(?P<speaker>spk\d+)_", "--out", str(tmp_path / "model" / "model.pt"),
        "--test-speakers", "spk3", "--cache-dir", str(tmp_path / "model" / "cache"), "--own-centre-share", "0.3",
        "--resume", *FAST, stdout=stdout,
    )
    text = stdout.getvalue()
    # Every model of the ensemble (the default recipe's size) had finished: each resumes after
    # its last epoch and trains no more.
    n = Recipe.for_front_end("logmel").train.members
    assert n > 1 and [line for line in text.splitlines() if "resumed" in line] == [
        f"model {m}/{n} resumed from the last checkpoint after epoch 3" for m in range(1, n + 1)
    ]
    assert "epoch   1/3" not in text and "model written to" in text


def test_train_defaults_to_the_whisper_front_end(corpus, tmp_path):
    report_path = tmp_path / "report.json"
    stdout = StringIO()
    call_command("train", "--corpus", str(corpus), "--speaker-regex", r"^(?P<speaker>spk\d+)_", "--out", str(tmp_path / "w.pt"),
                 "--test-speakers", "spk3", "--report", str(report_path), "--cache-dir", str(tmp_path / "cache"),
                 "--epochs", "2", "--threads", "1", stdout=stdout)
    report = json.loads(report_path.read_text())
    assert report["front_end"].startswith("Whisper-base") and report["recipe"]["features"]["kind"] == "whisper"
    assert report["recipe"]["train"]["members"] == 3 and report["recipe"]["train"]["augment"]["speed"] == [1.0]
    assert "epoch   2/2" in stdout.getvalue()
    assert any((tmp_path / "cache").rglob("whisper-base-*"))  # the states were cached for the next run


def test_evaluate_on_held_out_speaker(trained, corpus, tmp_path):
    model, report = trained
    out = tmp_path / "eval.json"
    call_command("evaluate", str(model), "--corpus", str(corpus), "--speaker-regex", r"^(?P<speaker>spk\d+)_",
                 "--speakers", "spk3", "--report", str(out), "--cache-dir", str(tmp_path / "c"), stdout=StringIO())
    data = json.loads(out.read_text())
    assert data["utterances"] == 12
    # Same model, same speaker, same audio: the scores match the training report's test scores.
    assert data["ua"] == pytest.approx(report["ua"])
    assert data["confusion"] == report["confusion"]


def test_classify_text_and_json(trained, tmp_path):
    model, _ = trained
    wave, _ = speech_silence_speech("angry")
    wav = write_wav(tmp_path / "two.wav", wave)
    stdout = StringIO()
    call_command("classify", str(wav), "--model", str(model), "--segments", "--json", stdout=stdout)
    data = json.loads(stdout.getvalue())
    result = data["results"][0]
    assert result["label"] in LABELS
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert len(result["segments"]) == 2
    assert result["speech"] is True and 0 < result["speech_seconds"] < result["duration"]
    text = StringIO()
    call_command("classify", str(wav), "--model", str(model), stdout=text)
    assert str(wav) in text.getvalue() and "s of speech in" in text.getvalue()


def test_classify_says_no_speech_for_silence_and_the_whole_file_only_when_asked(tmp_path):
    from devsupport.tiny_model import tiny_checkpoint

    model = tiny_checkpoint(tmp_path / "tiny.pt")
    silence = write_wav(tmp_path / "silence.wav", np.zeros(5 * 16000, np.float32))
    speech = write_wav(tmp_path / "speech.wav", speech_silence_speech("sad")[0])
    stdout = StringIO()
    call_command("classify", str(silence), str(speech), "--model", str(model), "--json", stdout=stdout)
    quiet, spoken = json.loads(stdout.getvalue())["results"]
    assert quiet == {"file": str(silence), "speech": False, "label": None, "probabilities": None, "duration": 5.0,
                     "speech_seconds": 0.0}
    assert spoken["speech"] and "whole" not in spoken
    text = StringIO()
    call_command("classify", str(silence), str(speech), "--model", str(model), "--whole", stdout=text)
    lines = text.getvalue().splitlines()
    assert lines[0] == f"{silence}: no speech [5.00 s]"
    # Asked for, the whole-file pass is printed for each file, below its verdict.
    assert lines[1].startswith("    whole file as one utterance: ") and len(lines) == 4
    assert lines[2].startswith(f"{speech}: ") and lines[3].startswith("    whole file as one utterance: ")


def test_classify_reports_bad_files(trained, tmp_path):
    model, _ = trained
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not really audio")
    with pytest.raises(CommandError, match="no file could be classified"):
        call_command("classify", str(bad), "--model", str(model), stdout=StringIO(), stderr=StringIO())


def test_classify_rejects_foreign_model(tmp_path):
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CommandError, match="not a readable checkpoint"):
        call_command("classify", str(fake), "--model", str(fake), stdout=StringIO())


def test_crossval_two_folds(corpus, tmp_path):
    out = tmp_path / "cv.json"
    stdout = StringIO()
    call_command("crossval", "--corpus", str(corpus), "--speaker-regex", r"^(?P<speaker>spk\d+)_", "--folds", "2",
                 "--report", str(out), "--cache-dir", str(tmp_path / "c"), "--mean-norm", "utterance",
                 *FAST, stdout=stdout)
    data = json.loads(out.read_text())
    assert data["protocol"].startswith("2-fold leave-speakers-out")
    assert data["recipe"]["features"]["utterance_cmn"] and not data["recipe"]["features"]["speaker_cmn"]
    assert [f["fold"] for f in data["folds"]] == [1, 2]
    assert [f["split"]["test_speakers"] for f in data["folds"]] == [["synth/spk0", "synth/spk1"], ["synth/spk2", "synth/spk3"]]
    assert "ua_std" in data and sum(map(sum, data["confusion"])) == 48


def test_crossval_distils_an_ensemble_into_one_model(corpus, tmp_path):
    out, work = tmp_path / "cv.json", tmp_path / "work"
    stdout = StringIO()
    call_command("crossval", "--corpus", str(corpus), "--speaker-regex", r"^(?P<speaker>spk\d+)_", "--folds", "2", "--fold", "1",
                 "--members", "2", "--distil", "0.9", "--distil-temperature", "3", "--work-dir", str(work),
                 "--report", str(out), "--cache-dir", str(tmp_path / "c"), *FAST, stdout=stdout)
    data = json.loads(out.read_text())
    assert data["recipe"]["train"]["distil_weight"] == 0.9 and data["recipe"]["train"]["distil_temperature"] == 3.0
    assert set(data["teacher"]) >= {"wa", "ua", "macro_f1"} and data["member_mean"]["n"] == 2
    assert "the ensemble the model was distilled from" in stdout.getvalue()
    assert (work / "fold1" / "teacher.pt").is_file() and (work / "fold1" / "student" / "best.pt").is_file()
    with pytest.raises(CommandError, match="distil_weight"):
        call_command("crossval", "--corpus", str(corpus), "--folds", "2", "--distil", "2", *FAST, stdout=StringIO())
    # One model has no ensemble to learn from: refused, not trained plainly.
    for command, extra in (("train", ["--out", str(tmp_path / "one.pt")]), ("crossval", ["--folds", "2"])):
        with pytest.raises(CommandError, match="at least two models"):
            call_command(command, "--corpus", str(corpus), "--members", "1", "--distil", "0.9", *extra, *FAST, stdout=StringIO())
    assert not (tmp_path / "one.pt").exists()


def test_bad_corpus_path_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError):
        call_command("train", "--corpus", str(tmp_path / "missing"), "--out", str(tmp_path / "m.pt"), *FAST, stdout=StringIO())


def test_bad_recipe_option_is_a_clear_error(corpus, tmp_path):
    with pytest.raises(CommandError, match="n_mels must be a positive integer"):
        call_command("train", "--corpus", str(corpus), "--out", str(tmp_path / "m.pt"), *FAST, "--n-mels", "0", stdout=StringIO())
    with pytest.raises(CommandError, match="members must be between 1 and 8"):
        call_command("train", "--corpus", str(corpus), "--out", str(tmp_path / "m.pt"), "--members", "9",
                     *FAST, stdout=StringIO())
    with pytest.raises(CommandError, match="distil_temperature must be positive"):
        call_command("train", "--corpus", str(corpus), "--out", str(tmp_path / "m.pt"), "--distil-temperature", "0",
                     *FAST, stdout=StringIO())
    # The measured-and-rejected options are gone, not silently ignored.
    for removed in (["--mixup", "0.4"], ["--ema", "0.995"], ["--speed-centres"], ["--rotate-validation"],
                    ["--speaker-adversarial", "1"], ["--freq-warp", "0.1"], ["--periodicity-bands", "8"]):
        with pytest.raises(CommandError, match="unrecognized arguments"):
            call_command("train", "--corpus", str(corpus), "--out", str(tmp_path / "m.pt"), *removed, *FAST, stdout=StringIO())
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.django_db
def test_classify_uses_the_active_model_version(tmp_path, monkeypatch):
    from devsupport.tiny_model import register_tiny

    monkeypatch.delenv("SER_MODEL", raising=False)
    wave, _ = speech_silence_speech("sad")
    wav = write_wav(tmp_path / "two.wav", wave)
    # No model anywhere: a clear error, not a traceback.
    with pytest.raises(CommandError, match="activate a model version"):
        call_command("classify", str(wav), stdout=StringIO(), stderr=StringIO())
    register_tiny(tmp_path, name="older", labels=["neutral", "happy"], activate=False)
    with pytest.raises(CommandError, match="no model"):
        call_command("classify", str(wav), stdout=StringIO(), stderr=StringIO())
    active = register_tiny(tmp_path, name="current", labels=["neutral", "sad", "angry"], seed=1, activate=True)
    stdout, stderr = StringIO(), StringIO()
    call_command("classify", str(wav), "--json", stdout=stdout, stderr=stderr)
    data = json.loads(stdout.getvalue())
    assert data["model"] == f"current v{active.version}"
    assert data["labels"] == ["neutral", "sad", "angry"]
    assert data["results"][0]["label"] in data["labels"]
    assert "using the active model current v1" in stderr.getvalue()


def test_classify_one_speaker_centres_a_speaker_normalised_model_on_all_files(tmp_path):
    from devsupport.tiny_model import tiny_checkpoint
    from recognition.engine.audio import decode_audio
    from recognition.engine.predictor import Predictor

    model = tiny_checkpoint(tmp_path / "spk.pt", speaker_cmn=True)
    files = [str(write_wav(tmp_path / f"{lab}.wav", speech_silence_speech(lab, seed=i)[0])) for i, lab in enumerate(["sad", "angry"])]

    def run(*extra):
        stdout = StringIO()
        call_command("classify", *files, "--model", str(model), "--json", *extra, stdout=stdout)
        return [r["probabilities"] for r in json.loads(stdout.getvalue())["results"]]

    predictor = Predictor.from_checkpoint(model, device="cpu")
    waves = [decode_audio(f) for f in files]
    centre = predictor.speaker_centre(waves).value
    for probs, wave in zip(run("--one-speaker"), waves, strict=True):
        segments = predictor.predict_segments(wave, centre=centre)
        assert probs == pytest.approx(duration_weighted(segments), abs=1e-5)
    for probs, wave in zip(run(), waves, strict=True):  # each file its own speaker, centred on its speech
        segments = predictor.predict_segments(wave)
        assert probs == pytest.approx(duration_weighted(segments), abs=1e-5)
        assert probs != pytest.approx(duration_weighted(predictor.predict_segments(wave, centre=centre)), abs=1e-5)


def duration_weighted(segments) -> dict[str, float]:
    """The verdict the classify path gives: the segments' probabilities weighted by duration."""
    total = sum(s.end - s.start for s in segments)
    labels = segments[0].prediction.probabilities
    return {k: sum((s.end - s.start) * s.prediction.probabilities[k] for s in segments) / total for k in labels}


@pytest.mark.parametrize("members", [1, 3])  # every model at its three speeds, or each once at 1.0
def test_classify_asks_at_the_trained_speeds_unless_told_not_to(tmp_path, members):
    from devsupport.tiny_model import tiny_checkpoint
    from recognition.engine.audio import decode_audio
    from recognition.engine.predictor import Predictor
    from training.engine.trainer import TrainConfig

    model = tiny_checkpoint(tmp_path / "tta.pt", train_config=TrainConfig(members=members).to_dict(), members=members)
    wav = write_wav(tmp_path / "one.wav", speech_silence_speech("happy", seed=2)[0])

    def run(*extra):
        stdout = StringIO()
        call_command("classify", str(wav), "--model", str(model), "--json", *extra, stdout=stdout)
        return json.loads(stdout.getvalue())["results"][0]["probabilities"]

    wave = decode_audio(wav)
    default, flagged = Predictor.from_checkpoint(model, device="cpu"), Predictor.from_checkpoint(model, device="cpu", tta=False)
    assert (default.passes, flagged.passes) == (3 * members, members)
    assert run() == pytest.approx(duration_weighted(default.predict_segments(wave)), abs=1e-5)
    assert run("--no-tta") == pytest.approx(duration_weighted(flagged.predict_segments(wave)), abs=1e-5)
    assert run() != pytest.approx(run("--no-tta"), abs=1e-5)
