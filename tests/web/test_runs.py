"""Run services and pages without a worker: validation, state changes, reaping, claiming."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.web.factories import ready_corpus
from training.models import Corpus, EpochMetric, TrainingRun
from training.services import execution
from training.services import runs as services

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(tmp_path):
    return ready_corpus(tmp_path / "c")


def small_recipe():
    return services.recipe_build(model_size="small", epochs=2, batch_size=8, augment=False)


def test_run_create_resolves_labels_and_stores_the_recipe(corpus, user, django_capture_on_commit_callbacks, redis_server):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = services.run_create(name="first", corpora=[corpus], recipe=small_recipe(), created_by=user)
    assert len(callbacks) == 1  # enqueued only after the commit
    run.refresh_from_db()
    assert run.status == "queued" and run.celery_task_id
    assert run.labels == ["happy", "sad", "angry"]
    assert run.hyperparameters["train"]["epochs"] == 2
    assert run.hyperparameters["model_size"] == "small"


def test_run_create_refuses_bad_input(corpus, tmp_path):
    with pytest.raises(services.RunError, match="at least one corpus"):
        services.run_create(name="x", corpora=[], recipe=small_recipe())
    other = Corpus.objects.create(name="busy", status=Corpus.Status.IMPORTING)
    with pytest.raises(services.RunError, match="not ready"):
        services.run_create(name="x", corpora=[corpus, other], recipe=small_recipe())
    with pytest.raises(services.RunError, match="folds"):
        services.run_create(name="x", corpora=[corpus], recipe=small_recipe(), protocol="kfold", folds=1)
    with pytest.raises(services.RunError):
        services.run_create(name="x", corpora=[corpus], recipe=small_recipe(), label_mapping={"angry": None, "sad": None})
    with pytest.raises(services.RunError, match="model size"):
        services.recipe_build(model_size="huge")
    with pytest.raises(services.RunError, match="mean normalisation"):
        services.recipe_build(mean_norm="per-room")
    assert services.recipe_build().features.speaker_cmn  # the engine's default recipe
    assert TrainingRun.objects.count() == 0


def test_parse_label_mapping():
    assert services.parse_label_mapping("calm=neutral, boredom=") == {"calm": "neutral", "boredom": None}
    with pytest.raises(services.RunError):
        services.parse_label_mapping("calm")


def make_run(corpus, **fields) -> TrainingRun:
    run = TrainingRun.objects.create(name="r", labels=["happy", "sad", "angry"], hyperparameters=small_recipe().to_dict(), **fields)
    run.corpora.set([corpus])
    return run


def test_a_run_is_claimed_once(corpus):
    run = make_run(corpus)
    assert execution._claim(run.pk) is True
    assert execution._claim(run.pk) is False  # a redelivered message finds it running
    assert execution.run_execute(run.pk) == "skipped"
    run.refresh_from_db()
    assert run.status == "running"


def test_cancel_of_a_queued_run_wins_over_the_task(corpus):
    run = make_run(corpus)
    services.run_cancel(run=run)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert execution.run_execute(run.pk) == "skipped"


def test_cancel_of_a_running_run_sets_the_flag(corpus):
    run = make_run(corpus, status="running", heartbeat_at=timezone.now())
    services.run_cancel(run=run)
    run.refresh_from_db()
    assert run.status == "running" and run.cancel_requested


def test_cancel_of_a_run_a_worker_just_claimed_uses_the_flag(corpus):
    run = make_run(corpus)  # the page's copy says queued ...
    assert execution._claim(run.pk)  # ... but a worker claimed it meanwhile
    services.run_cancel(run=run)
    run.refresh_from_db()
    assert run.status == "running" and run.cancel_requested


def test_finished_runs_cannot_be_cancelled_or_resumed(corpus):
    run = make_run(corpus, status="succeeded")
    with pytest.raises(services.RunError):
        services.run_cancel(run=run)
    with pytest.raises(services.RunError):
        services.run_resume(run=run)


def test_reaper_marks_silent_runs_interrupted_only(corpus):
    stale = make_run(corpus, status="running", heartbeat_at=timezone.now() - timedelta(seconds=600))
    fresh = make_run(corpus, status="running", heartbeat_at=timezone.now())
    assert services.runs_reap_stale(timeout=60) == [stale.pk]
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == "interrupted" and fresh.status == "running"


def test_resume_requeues_an_interrupted_run(corpus, django_capture_on_commit_callbacks, redis_server):
    run = make_run(corpus, status="interrupted")
    with django_capture_on_commit_callbacks(execute=True):
        services.run_resume(run=run)
    run.refresh_from_db()
    assert run.status == "queued" and run.resume_requested


def test_delete_refuses_a_running_run_and_removes_metrics(corpus):
    run = make_run(corpus, status="running", heartbeat_at=timezone.now())
    with pytest.raises(services.RunError):
        services.run_delete(run=run)
    stale = TrainingRun.objects.get(pk=run.pk)
    stale.status = "failed"  # the caller's copy is out of date: the row says running
    with pytest.raises(services.RunError):
        services.run_delete(run=stale)
    assert TrainingRun.objects.filter(pk=run.pk).exists()
    run.status = "failed"
    run.save()
    EpochMetric.objects.create(run=run, epoch=1, train_loss=1, train_acc=0.5, val_loss=1, wa=0.5, ua=0.5, macro_f1=0.5, lr=0.1, duration=1)
    services.run_delete(run=run)
    assert not TrainingRun.objects.exists() and not EpochMetric.objects.exists()


def test_pages_need_login(client):
    for name in ("runs:list", "runs:new", "runs:compare"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_run_pages_render(auth_client, corpus):
    run = make_run(corpus, status="running", heartbeat_at=timezone.now())
    EpochMetric.objects.create(
        run=run, epoch=1, train_loss=1.2, train_acc=0.4, val_loss=1.1, wa=0.5, ua=0.45, macro_f1=0.4,
        confusion=[[1, 0, 0], [0, 1, 0], [1, 0, 0]], per_class_recall={"happy": 1, "sad": 1, "angry": 0}, lr=0.001, duration=3,
    )
    assert auth_client.get(reverse("runs:list")).status_code == 200
    page = auth_client.get(reverse("runs:detail", args=[run.pk]))
    assert page.status_code == 200
    assert b'"ua": 0.45' in page.content  # the stored history is embedded for the first draw
    compare = auth_client.get(reverse("runs:compare") + f"?run={run.pk}&run=abc")
    assert compare.status_code == 200 and b"compare-data" in compare.content
    form = auth_client.get(reverse("runs:new"))
    assert form.status_code == 200 and b"synth" in form.content


def test_run_form_creates_a_run(auth_client, corpus, django_capture_on_commit_callbacks, redis_server):
    data = {
        "name": "from the form", "corpora": [corpus.pk], "label_mode": "common", "label_mapping": "",
        "protocol": "holdout", "folds": 5, "features": "logmel", "mean_norm": "utterance", "model_size": "small", "epochs": 3,
        "batch_size": 8, "lr": 0.003, "dropout": 0.1, "patience": 0, "augment": "on",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post(reverse("runs:new"), data)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("runs:detail", args=[run.pk])
    assert run.hyperparameters["train"]["epochs"] == 3 and run.hyperparameters["model_overrides"] == {"dropout": 0.1}
    assert run.hyperparameters["features"]["utterance_cmn"] and not run.hyperparameters["features"]["speaker_cmn"]
    bad = auth_client.post(reverse("runs:new"), {**data, "label_mapping": "nonsense"})
    assert bad.status_code == 200 and b"look like" in bad.content


def test_cancel_view_requires_post(auth_client, corpus, user):
    run = make_run(corpus, created_by=user)
    assert auth_client.get(reverse("runs:cancel", args=[run.pk])).status_code == 405
    assert auth_client.post(reverse("runs:cancel", args=[run.pk])).status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_only_the_owner_or_staff_may_change_a_run(client, admin_client, corpus, user, django_user_model):
    run = make_run(corpus, status="failed", created_by=user)
    other = django_user_model.objects.create_user(username="bob", password="bob-password-123")
    client.force_login(other)
    page = client.get(reverse("runs:detail", args=[run.pk]))
    assert page.status_code == 200 and b"runs/%d/delete/" % run.pk not in page.content  # no buttons
    for action in ("runs:cancel", "runs:resume", "runs:delete"):
        assert client.post(reverse(action, args=[run.pk])).status_code == 403
    assert TrainingRun.objects.filter(pk=run.pk).exists()
    assert admin_client.post(reverse("runs:delete", args=[run.pk])).status_code == 302
    assert not TrainingRun.objects.filter(pk=run.pk).exists()


def test_run_history_returns_the_epochs_after_a_fold_and_epoch_in_order():
    from training import selectors

    run = TrainingRun.objects.create(name="h")
    for fold, epoch in [(2, 1), (1, 3), (1, 1), (3, 2), (2, 3), (1, 2), (3, 1)]:
        EpochMetric.objects.create(run=run, fold=fold, epoch=epoch, train_loss=1.0, train_acc=0.5, val_loss=1.0,
                                   wa=0.5, ua=0.5, macro_f1=0.5, confusion=[], per_class_recall={}, lr=1e-3, duration=1.0)
    other = TrainingRun.objects.create(name="other")
    EpochMetric.objects.create(run=other, fold=2, epoch=5, train_loss=1.0, train_acc=0.5, val_loss=1.0,
                               wa=0.5, ua=0.5, macro_f1=0.5, confusion=[], per_class_recall={}, lr=1e-3, duration=1.0)

    def keys(after):
        return [(e["fold"], e["epoch"]) for e in selectors.run_history(run.pk, after=after)]

    assert keys((0, 0)) == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]
    assert keys((1, 2)) == [(1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]
    assert keys((2, 1)) == [(2, 3), (3, 1), (3, 2)]
    assert keys((3, 2)) == []
    snapshot = selectors.run_snapshot(run, after=(2, 3))
    assert snapshot == selectors.run_snapshot(run.pk, after=(2, 3))
    assert [(e["fold"], e["epoch"]) for e in snapshot["epochs"]] == [(3, 1), (3, 2)] and snapshot["status"]["run"] == run.pk
