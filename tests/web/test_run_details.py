"""Splits and time on the run pages: chosen or automatic test speakers (planned with the
engine's own split code, refused when they cannot work), the speakers named on the run page,
elapsed time, ETA and the form's estimate, the finished run's labelled confusion matrices,
per-speaker scores and CSV downloads."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from devsupport.factories import ready_corpus
from training.engine.experiment import build_dataset
from training.engine.splits import holdout_split
from training.models import EpochMetric, TrainingRun
from training.selectors import run_details
from training.services import runs as services
from training.services.datasets import corpus_scans

pytestmark = pytest.mark.django_db

LABELS = ["happy", "sad", "angry"]


@pytest.fixture
def corpus(tmp_path):
    return ready_corpus(tmp_path / "c", speakers=5)


def recipe():
    return services.recipe_build(model_size="small", epochs=3, batch_size=8, augment=False, members=1)


def test_automatic_test_speakers_are_planned_as_the_engine_splits(corpus):
    run = services.run_create(name="auto", corpora=[corpus], recipe=recipe())
    ds = build_dataset(corpus_scans([corpus]))
    engine = holdout_split([ds.labels[t] for t in ds.targets], [u.speaker for u in ds.utterances], ds.corpora,
                           seed=recipe().train.seed)
    assert run.test_speakers == []
    assert run.planned_split["folds"] == [{"test_speakers": engine.test_speakers, "valid_speakers": engine.valid_speakers}]
    split = run_details.run_split(run)
    assert split["planned"] and not split["chosen"]


def test_chosen_test_speakers_are_kept_and_bad_choices_refused(corpus):
    run = services.run_create(name="chosen", corpora=[corpus], recipe=recipe(), test_speakers=["synth/spk0", "synth/spk3"])
    assert run.test_speakers == ["synth/spk0", "synth/spk3"]
    (fold,) = run.planned_split["folds"]
    assert fold["test_speakers"] == ["synth/spk0", "synth/spk3"]
    assert fold["valid_speakers"] and not set(fold["valid_speakers"]) & {"synth/spk0", "synth/spk3"}
    with pytest.raises(services.RunError, match="Not a speaker of the chosen corpora: synth/spk9"):
        services.run_create(name="x", corpora=[corpus], recipe=recipe(), test_speakers=["synth/spk9"])
    with pytest.raises(services.RunError, match="Every speaker of synth"):
        services.run_create(name="x", corpora=[corpus], recipe=recipe(), test_speakers=[f"synth/spk{i}" for i in range(5)])
    with pytest.raises(services.RunError, match="hold-out"):
        services.run_create(name="x", corpora=[corpus], recipe=recipe(), protocol="kfold", folds=2, test_speakers=["synth/spk0"])
    assert TrainingRun.objects.count() == 1


def test_the_form_offers_the_speakers_and_posts_the_choice(auth_client, corpus):
    page = auth_client.get(reverse("runs:new")).content.decode()
    assert 'name="test_speakers" value="synth/spk0"' in page and f'data-corpus="{corpus.pk}"' in page
    post = {"name": "chosen", "corpora": [corpus.pk], "label_mode": "common", "protocol": "holdout", "folds": 5,
            "features": "logmel", "mean_norm": "speaker", "model_size": "small", "epochs": 2, "batch_size": 8, "lr": 0.001,
            "dropout": 0.1, "patience": 0, "members": 1, "test_speakers": ["synth/spk1"]}
    response = auth_client.post(reverse("runs:new"), post)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and run.test_speakers == ["synth/spk1"]
    page = auth_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert '<dd class="test-speakers">synth/spk1 <span class="muted small">(chosen)</span>' in page
    assert "valid-speakers" in page and "queued-note" in page  # the flash note the page removes once it starts
    assert "return confirm('Cancel this run?" in page
    bad = auth_client.post(reverse("runs:new"), {**post, "test_speakers": [f"synth/spk{i}" for i in range(5)]})
    assert bad.status_code == 200 and "Every speaker of synth is a test speaker" in bad.content.decode()
    assert TrainingRun.objects.count() == 1


def test_elapsed_and_eta_follow_the_progress(corpus):
    now = timezone.now()
    run = TrainingRun(status="running", started_at=now - timedelta(seconds=100), progress=0.25)
    assert run_details.run_timing(run, now=now) == {"elapsed": 100.0, "eta": 300.0, "running": True}
    run.progress = 0.01  # still loading audio: no ETA yet
    assert run_details.run_timing(run, now=now)["eta"] is None
    done = TrainingRun(status="cancelled", started_at=now - timedelta(seconds=100), finished_at=now - timedelta(seconds=40), progress=0.5)
    assert run_details.run_timing(done, now=now) == {"elapsed": 60.0, "eta": None, "running": False}
    assert run_details.run_timing(TrainingRun(status="queued"), now=now)["elapsed"] is None


def test_the_form_estimates_from_measured_epochs(auth_client, corpus):
    assert run_details.duration_estimate_data([corpus])["rates"] == {}
    run = TrainingRun.objects.create(name="measured", labels=LABELS, hyperparameters=recipe().to_dict())
    run.corpora.set([corpus])
    for epoch, seconds in ((1, 3.0), (2, 5.0)):
        EpochMetric.objects.create(run=run, epoch=epoch, train_loss=1, train_acc=0.5, val_loss=1, wa=0.5, ua=0.5,
                                   macro_f1=0.5, lr=0.1, duration=seconds)
    data = run_details.duration_estimate_data([corpus])
    n = corpus.utterances.count()
    assert data["utterances"] == {corpus.pk: n} and data["epochs"] == 2
    kind = recipe().features.kind
    assert set(data["rates"]) == {f"{kind}/small", f"{kind}/*", "*"}
    assert data["rates"][f"{kind}/small"] == pytest.approx(4.0 / n) and data["rates"]["*"] == pytest.approx(4.0 / n)
    page = auth_client.get(reverse("runs:new")).content.decode()
    assert 'id="run-estimate-data"' in page and 'id="run-estimate"' in page


def _finished_run(corpus) -> TrainingRun:
    confusion = [[3, 1, 0], [0, 4, 0], [1, 0, 3]]
    report = {"confusion": confusion, "split": {"test_speakers": ["synth/spk3"], "valid_speakers": ["synth/spk1"]},
              "folds": [{"split": {"test_speakers": ["synth/spk3"], "valid_speakers": ["synth/spk1"]},
                         "per_speaker": {"synth/spk3": {"wa": 0.8333, "ua": 0.8125, "n": 12, "correct": 10}}}]}
    run = TrainingRun.objects.create(name="done run", labels=LABELS, status="succeeded", report=report,
                                     test_metrics={"ua": 0.8}, hyperparameters=recipe().to_dict())
    run.corpora.set([corpus])
    for epoch, best in ((1, False), (2, True), (3, False)):
        EpochMetric.objects.create(run=run, epoch=epoch, train_loss=1, train_acc=0.5, val_loss=1, wa=0.5, ua=0.4 + epoch / 10,
                                   macro_f1=0.5, lr=0.1, duration=2, is_best=best, confusion=[[epoch, 0, 0], [0, 1, 0], [0, 0, 1]],
                                   per_class_recall={"happy": 1.0, "sad": 0.5, "angry": 0.25})
    return run


def test_a_finished_run_shows_labelled_confusions_and_per_speaker_scores(auth_client, corpus):
    run = _finished_run(corpus)
    confusions = run_details.run_confusions(run)
    assert [c["id"] for c in confusions] == ["test", "validation"]
    assert confusions[1]["matrix"] == [[2, 0, 0], [0, 1, 0], [0, 0, 1]]  # the best epoch's, not the last one's
    assert "best epoch (epoch 2; UA 0.600)" in confusions[1]["caption"]
    page = auth_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "Validation confusion, best epoch" in page and "Test confusion" in page and 'id="per-speaker"' in page
    assert "<td>spk3 <span class=\"muted small\">synth</span></td>" in page and "0.833" in page and "0.813" in page
    assert '<dd class="test-speakers">synth/spk3</dd>' in page  # from the report now, not the plan
    running = TrainingRun.objects.create(name="r", labels=LABELS, status="running")
    assert run_details.run_confusions(running) == []


def test_metrics_and_confusion_download_as_csv(auth_client, corpus):
    run = _finished_run(corpus)
    response = auth_client.get(reverse("runs:metrics_csv", args=[run.pk]))
    assert response["Content-Type"].startswith("text/csv") and "run-" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:9] == ["fold", "member", "epoch", "train_loss", "train_acc", "val_loss", "wa", "ua", "macro_f1"]
    assert rows[0][-3:] == ["recall_happy", "recall_sad", "recall_angry"] and len(rows) == 4
    assert rows[2][2] == "2" and float(rows[2][7]) == pytest.approx(0.6) and rows[2][-1] == "0.25"
    rows = list(csv.reader(io.StringIO(auth_client.get(reverse("runs:confusion_csv", args=[run.pk, "test"])).content.decode())))
    assert rows == [["true \\ predicted", *LABELS], ["happy", "3", "1", "0"], ["sad", "0", "4", "0"], ["angry", "1", "0", "3"]]
    assert auth_client.get(reverse("runs:confusion_csv", args=[run.pk, "validation"])).status_code == 200
    assert auth_client.get(reverse("runs:confusion_csv", args=[run.pk, "other"])).status_code == 404
