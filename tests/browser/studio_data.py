"""A studio with something on every page, for the layout, theme and page tests.

A real imported corpus (synthetic RAVDESS-style files), two registered tiny models, and
runs in the states a user meets: succeeded (with epochs, test report and a registered
model), running, cancelled part-way. The runs' numbers are written as a worker writes them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from devsupport.tiny_model import register_tiny
from tests.web.corpora_helpers import ravdess_folder

LABELS = ["neutral", "happy", "sad", "angry"]


def _epoch(epoch: int, *, member: int = 1, best: bool = False) -> dict:
    ua = 0.30 + 0.04 * epoch
    return {
        "fold": 1, "member": member, "epoch": epoch, "train_loss": 1.4 - 0.1 * epoch, "train_acc": 0.3 + 0.05 * epoch,
        "val_loss": 1.3 - 0.06 * epoch, "wa": ua + 0.01, "ua": ua, "macro_f1": ua - 0.02,
        "confusion": [[3, 1, 0, 0], [1, 2, 1, 0], [0, 1, 3, 0], [0, 0, 1, 3]],
        "per_class_recall": {"neutral": 0.75, "happy": 0.5, "sad": 0.75, "angry": 0.75},
        "lr": 1e-3, "duration": 2.5 + 0.1 * epoch, "is_best": best,
    }


def _report(test_speakers: list[str], valid_speakers: list[str]) -> dict:
    confusion = [[4, 1, 0, 0], [1, 3, 1, 0], [0, 1, 4, 0], [0, 0, 1, 4]]
    per_speaker = {
        "synth-ravdess/Actor_03": {"wa": 0.8, "ua": 0.8, "n": 10, "correct": 8},
        "synth-ravdess/Actor_04": {"wa": 0.7, "ua": 0.7, "n": 10, "correct": 7},
    }
    return {
        "protocol": "speaker-independent hold-out: 2 test speakers, 1 validation speaker",
        "split": {"test_speakers": test_speakers, "valid_speakers": valid_speakers,
                  "sizes": {"train": 8, "valid": 8, "test": 20}},
        "wa": 0.75, "ua": 0.7485, "macro_f1": 0.74, "n": 20, "confusion": confusion, "per_speaker": per_speaker,
        "best_epoch": 4, "epochs_run": 5, "labels": LABELS,
        "folds": [{"split": {"test_speakers": test_speakers, "valid_speakers": valid_speakers}, "best_epoch": 4,
                   "train_seconds": 14.0, "confusion": confusion, "per_speaker": per_speaker}],
    }


def populate(tmp_path: Path, user) -> dict:
    """Create the studio's content; returns the objects by name."""
    from training.models import EpochMetric, TrainingRun
    from training.services.corpora import corpus_import_path

    corpus = corpus_import_path(path=ravdess_folder(tmp_path / "ravdess", actors=4, statements=1), name="synth-ravdess",
                                user=user)
    first = register_tiny(tmp_path / "models", name="synth model", seed=1, activate=True)
    second = register_tiny(tmp_path / "models", name="synth model", seed=2, activate=False)
    for version, ua, confusion in ((first, 0.7485, [[4, 1, 0, 0], [1, 3, 1, 0], [0, 1, 4, 0], [0, 0, 1, 4]]),
                                   (second, 0.65, [[3, 2, 0, 0], [1, 3, 1, 0], [0, 2, 3, 0], [0, 0, 1, 4]])):
        version.metrics = {**version.metrics, "ua": ua, "wa": ua + 0.01, "macro_f1": ua - 0.01, "n": 20}
        version.confusion = confusion
        version.save()
    now = timezone.now()
    hyper = {"features": {"kind": "logmel", "speaker_cmn": True}, "model_size": "small", "model_overrides": {},
             "train": {"epochs": 5, "batch_size": 8, "lr": 0.001, "patience": 0, "members": 1, "augment": {"enabled": False}}}
    test_speakers, valid_speakers = ["synth-ravdess/Actor_03", "synth-ravdess/Actor_04"], ["synth-ravdess/Actor_02"]
    report = _report(test_speakers, valid_speakers)
    done = TrainingRun.objects.create(
        name="baseline with a rather long descriptive name", labels=LABELS, status="succeeded", phase="done", progress=1.0,
        hyperparameters=hyper, best_ua=0.46, created_by=user, started_at=now - timedelta(minutes=3, seconds=20),
        finished_at=now - timedelta(minutes=1), test_metrics={"wa": 0.75, "ua": 0.7485, "macro_f1": 0.74,
                                                              "protocol": report["protocol"], "split": "test"},
        report=report, model_version=first, current_epoch=5,
    )
    running = TrainingRun.objects.create(
        name="still training", labels=LABELS, status="running", phase="training", progress=0.4, hyperparameters=hyper,
        best_ua=0.38, created_by=user, started_at=now - timedelta(seconds=30), heartbeat_at=now + timedelta(hours=1),
        current_epoch=2, planned_split={"folds": [{"test_speakers": test_speakers, "valid_speakers": valid_speakers}]},
    )
    cancelled = TrainingRun.objects.create(
        name="stopped early", labels=LABELS, status="cancelled", phase="cancelled", progress=0.6, hyperparameters=hyper,
        best_ua=0.42, created_by=user, started_at=now - timedelta(minutes=10), finished_at=now - timedelta(minutes=8),
        current_epoch=3,
    )
    for run in (done, running, cancelled):
        run.corpora.set([corpus])
    for run, count in ((done, 5), (running, 2), (cancelled, 3)):
        for e in range(1, count + 1):
            EpochMetric.objects.create(run=run, **_epoch(e, best=e == min(count, 4)))
    return {"corpus": corpus, "first": first, "second": second, "done": done, "running": running, "cancelled": cancelled}


def pages(data: dict) -> dict[str, str]:
    """Every page of the studio a logged-in user reaches, by a short name."""
    return {
        "runs": "/runs/",
        "run_new": "/runs/new/",
        "run_done": f"/runs/{data['done'].pk}/",
        "run_running": f"/runs/{data['running'].pk}/",
        "run_compare": f"/runs/compare/?run={data['done'].pk}&run={data['cancelled'].pk}",
        "corpora": "/corpora/",
        "corpus_upload": "/corpora/upload/",
        "corpus": f"/corpora/{data['corpus'].pk}/",
        "runs_filtered": "/runs/?q=baseline&sort=-duration",
        "models": "/models/",
        "model_compare": f"/models/compare/?a={data['first'].pk}&b={data['second'].pk}",
        "model": f"/models/{data['first'].pk}/",
        "record": "/record/",
        "classify": "/classify/",
        "profile": "/profile/",
    }
