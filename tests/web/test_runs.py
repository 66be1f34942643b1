"""Run services and pages without a worker: validation, state changes, reaping, claiming."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from devsupport.factories import ready_corpus
from training import selectors
from training.engine.events import BatchProgress, EpochReport
from training.models import Corpus, EpochMetric, TrainingRun
from training.services import execution
from training.services import runs as services

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(tmp_path):
    return ready_corpus(tmp_path / "c")


def small_recipe():
    return services.recipe_build(model_size="small", epochs=2, batch_size=8, augment=False, members=1)


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
    fields.setdefault("hyperparameters", small_recipe().to_dict())
    run = TrainingRun.objects.create(name="r", labels=["happy", "sad", "angry"], **fields)
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


def test_pages_never_reap_the_beat_does(corpus, auth_client, settings, redis_server):
    """GET pages only read: a run and an import whose worker went silent stay as they are
    until the reaper runs (the beat task, or a worker starting)."""
    from training.tasks import reap_stale

    old = timezone.now() - timedelta(seconds=600)
    run = make_run(corpus, status="running", heartbeat_at=old)
    importing = Corpus.objects.create(name="silent import", heartbeat_at=old)
    for page in (reverse("runs:list"), reverse("runs:detail", args=[run.pk]),
                 reverse("corpora:list"), reverse("corpora:detail", args=[importing.pk])):
        assert auth_client.get(page).status_code == 200
    run.refresh_from_db()
    importing.refresh_from_db()
    assert run.status == "running" and importing.status == Corpus.Status.IMPORTING
    settings.SER_HEARTBEAT_TIMEOUT = 60
    reaped = reap_stale()
    assert reaped["runs"] == [run.pk] and reaped["corpora"] == [importing.pk]
    run.refresh_from_db()
    importing.refresh_from_db()
    assert run.status == "interrupted" and importing.status == Corpus.Status.FAILED


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
    assert form.status_code == 200 and b"synth" in form.content and b"Models in the ensemble" in form.content
    assert b"Rotate validation speakers" not in form.content  # measured, not adopted, removed


def test_run_form_creates_a_run(auth_client, corpus, django_capture_on_commit_callbacks, redis_server):
    data = {
        "name": "from the form", "corpora": [corpus.pk], "label_mode": "common", "label_mapping": "",
        "protocol": "holdout", "folds": 5, "features": "logmel", "mean_norm": "utterance", "model_size": "small", "epochs": 3,
        "batch_size": 8, "lr": 0.003, "dropout": 0.1, "patience": 0, "augment": "on", "members": 3,
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post(reverse("runs:new"), data)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("runs:detail", args=[run.pk])
    assert run.hyperparameters["train"]["epochs"] == 3 and run.hyperparameters["model_overrides"] == {"dropout": 0.1}
    assert run.hyperparameters["features"]["utterance_cmn"] and not run.hyperparameters["features"]["speaker_cmn"]
    assert run.hyperparameters["train"]["members"] == 3 and services.recipe_of(run).train.members == 3
    bad = auth_client.post(reverse("runs:new"), {**data, "label_mapping": "nonsense"})
    assert bad.status_code == 200 and b"look like" in bad.content
    too_many = auth_client.post(reverse("runs:new"), {**data, "members": 9})  # the engine trains at most 8
    assert too_many.status_code == 200 and TrainingRun.objects.count() == 1
    distilled = auth_client.post(reverse("runs:new"), {**data, "distil": "on"})
    assert distilled.status_code == 302 and services.recipe_of(TrainingRun.objects.latest("pk")).train.distil_weight == services.DISTIL_WEIGHT
    alone = auth_client.post(reverse("runs:new"), {**data, "distil": "on", "members": 1})
    assert alone.status_code == 200 and b"Distilling needs an ensemble of at least two models" in alone.content
    assert TrainingRun.objects.count() == 2
    with pytest.raises(services.RunError, match="an ensemble of at least two models"):
        services.recipe_build(members=1, distil=True)


def test_run_form_offers_the_recipes_defaults_per_front_end(auth_client):
    from training.engine.config import MAX_MEMBERS
    from training.engine.experiment import Recipe
    from training.forms import RunForm

    form = RunForm()
    assert form.fields["features"].initial == "whisper"
    field = form.fields["members"]
    assert field.initial == Recipe().train.members == 3 and (field.min_value, field.max_value) == (1, MAX_MEMBERS) == (1, 8)
    defaults = services.front_end_defaults()
    assert defaults["whisper"]["members"] == 3 and defaults["logmel"]["members"] == 5
    assert defaults["logmel"]["epochs"] == Recipe.for_front_end("logmel").train.epochs != defaults["whisper"]["epochs"]
    page = auth_client.get(reverse("runs:new"))
    assert b'id="front-end-defaults"' in page.content  # the page swaps them when the front end changes
    # The service builds each front end's own recipe from the form's values.
    scratch = services.recipe_build(features="logmel", members=5, epochs=80, lr=3e-3)
    assert scratch.features.kind == "logmel" and scratch.train.augment.speed == (0.9, 1.0, 1.1)
    whisper = services.recipe_build(features="whisper")
    assert whisper.train.augment.speed == (1.0,) and whisper.model_config(3).encoder_layers == 6


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

    assert keys((0, 0, 0)) == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]
    assert keys((1, 1, 2)) == [(1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]
    assert keys((2, 1, 1)) == [(2, 3), (3, 1), (3, 2)]
    assert keys((3, 1, 2)) == []
    snapshot = selectors.run_snapshot(run, after=(2, 1, 3))
    assert snapshot == selectors.run_snapshot(run.pk, after=(2, 1, 3))
    assert [(e["fold"], e["epoch"]) for e in snapshot["epochs"]] == [(3, 1), (3, 2)] and snapshot["status"]["run"] == run.pk


def metric_row(run, fold, member, epoch, ua=0.5):
    return EpochMetric.objects.create(run=run, fold=fold, member=member, epoch=epoch, train_loss=1.0, train_acc=0.5, val_loss=1.0,
                                      wa=ua, ua=ua, macro_f1=0.5, confusion=[], per_class_recall={}, lr=1e-3, duration=1.0)


def test_run_history_orders_a_seed_ensembles_models_within_each_fold():
    from training import selectors

    run = TrainingRun.objects.create(name="ensemble")
    for fold, member, epoch in [(2, 1, 1), (1, 2, 1), (1, 1, 2), (1, 2, 2), (1, 1, 1), (2, 2, 1)]:
        metric_row(run, fold, member, epoch)

    def keys(after):
        return [(e["fold"], e["member"], e["epoch"]) for e in selectors.run_history(run.pk, after=after)]

    assert keys((0, 0, 0)) == [(1, 1, 1), (1, 1, 2), (1, 2, 1), (1, 2, 2), (2, 1, 1), (2, 2, 1)]
    assert keys((1, 1, 2)) == [(1, 2, 1), (1, 2, 2), (2, 1, 1), (2, 2, 1)]  # model 2 restarts at epoch 1
    assert keys((1, 2, 1)) == [(1, 2, 2), (2, 1, 1), (2, 2, 1)]
    assert [e["member"] for e in selectors.run_compare_data([run.pk])[0]["epochs"]] == [1, 1, 2, 2, 1, 2]


def epoch_event(epoch: int, ua: float, **place: int) -> EpochReport:
    return EpochReport(
        **place, epoch=epoch, epochs=4, train_loss=1.0, train_acc=0.5, val_loss=1.0, wa=ua, ua=ua, macro_f1=0.5,
        confusion=[[1, 0, 0], [0, 1, 0], [0, 0, 1]], per_class_recall={"happy": 1.0, "sad": 1.0, "angry": 1.0},
        lr=1e-3, duration=1.0, is_best=True,
    )


def test_reporter_keeps_each_ensemble_models_epochs_apart(corpus, monkeypatch):
    sent = []
    monkeypatch.setattr(execution, "group_send", lambda group, message: sent.append(message))
    run = make_run(corpus, status="running", protocol="kfold", folds=2)
    reporter = execution.RunReporter(run)
    reporter(epoch_event(1, 0.4, fold=2, folds=2, member=1, members=3))
    reporter(epoch_event(1, 0.6, fold=2, folds=2, member=2, members=3))
    reporter(epoch_event(1, 0.7, fold=2, folds=2, member=2, members=3))  # a resumed model stores its epoch again
    rows = EpochMetric.objects.filter(run=run)
    assert [(m.fold, m.member, m.epoch, m.ua) for m in rows] == [(2, 1, 1, 0.4), (2, 2, 1, 0.7)]
    assert [(m["member"], m["ua"]) for m in sent] == [(1, 0.4), (2, 0.6), (2, 0.7)]  # live messages carry it too
    run.refresh_from_db()
    assert run.phase == "training fold 2/2, model 2/3" and run.current_fold == 2 and run.current_epoch == 1
    # Fold 2 of 2, model 2 of 3 done with epoch 1 of 4: (1 + (1 + 1/4) / 3) / 2, live and stored alike.
    assert run.progress == pytest.approx((1 + 1.25 / 3) / 2) == sent[-1]["progress"]
    assert [m["progress"] for m in selectors.run_history(run.pk)] == [pytest.approx((1 + 0.25 / 3) / 2), run.progress]
    reporter(BatchProgress(fold=2, folds=2, member=3, members=3, epoch=2, epochs=4, batch=5, batches=5, train_loss=0.9))
    run.refresh_from_db()
    # Model 3 of 3 through epoch 2 of 4: (1 + (2 + 2/4) / 3) / 2.
    assert run.phase == "training fold 2/2, model 3/3" and run.progress == pytest.approx((1 + 2.5 / 3) / 2)
    assert sent[-1]["type"] == "run.progress" and (sent[-1]["member"], sent[-1]["members"]) == (3, 3)
    assert sent[-1]["progress"] == pytest.approx(run.progress)

    holdout = make_run(corpus, status="running")
    execution.RunReporter(holdout)(epoch_event(3, 0.5, member=2, members=3))
    holdout.refresh_from_db()
    assert holdout.phase == "training model 2/3"
    single = make_run(corpus, status="running")
    execution.RunReporter(single)(epoch_event(4, 0.5))  # one model
    single.refresh_from_db()
    assert single.phase == "training" and single.progress == 1.0
    assert list(EpochMetric.objects.filter(run=single).values_list("member", "epoch")) == [(1, 4)]
    # A distilled ensemble: the trainer counts the student as model 3 of 3; the phase names it.
    distilled = make_run(corpus, status="running", hyperparameters=services.recipe_build(members=2, distil=True).to_dict())
    reporter = execution.RunReporter(distilled)
    reporter(epoch_event(1, 0.5, member=2, members=3))
    distilled.refresh_from_db()
    assert distilled.phase == "training model 2/2"
    reporter(epoch_event(1, 0.5, member=3, members=3))
    distilled.refresh_from_db()
    assert distilled.phase == "training distilled model"


def test_epoch_payload_carries_the_member():
    run = TrainingRun.objects.create(name="p")
    row = metric_row(run, 1, 2, 3)
    assert selectors.epoch_payload(row)["member"] == 2
    assert selectors.run_snapshot(run)["epochs"][0]["member"] == 2


def test_an_epoch_is_stored_sent_and_replayed_as_one_payload(corpus, monkeypatch):
    """The EpochMetric row holds every field of an EpochReport; the live message and the
    replayed history carry the same payload."""
    stored = {f.name for f in EpochMetric._meta.concrete_fields} - {"id", "run", "created_at"}
    assert stored == {f.name for f in dataclasses.fields(EpochReport)}
    sent = []
    monkeypatch.setattr(execution, "group_send", lambda group, message: sent.append(message))
    run = make_run(corpus, status="running", protocol="kfold", folds=3)
    report = epoch_event(2, 0.625, fold=2, folds=3, member=2, members=3)
    execution.RunReporter(run)(report)
    live = {k: v for k, v in sent[-1].items() if k not in ("type", "replay", "at", "phase")}
    replayed = {k: v for k, v in selectors.run_history(run.pk)[0].items() if k != "at"}
    assert live == replayed == report.to_payload()
    assert EpochReport.from_payload(replayed) == report


@pytest.mark.parametrize(("members", "label"), [(3, b'<dd id="ua-tta">0.681'), (5, b'<dd id="ua-tta-every">0.681')])
def test_run_page_names_the_score_at_every_speed_by_how_this_server_asks(auth_client, members, label):
    # A five-model run scored at every speed before the pass budget: the app now asks each model once.
    tta = {"wa": 0.7, "ua": 0.6812, "macro_f1": 0.66, "speeds": [0.9, 1.0, 1.1]}
    run = TrainingRun.objects.create(name="big", labels=["happy", "sad"], status="succeeded",
                                     hyperparameters=services.recipe_build(members=members).to_dict(),
                                     test_metrics={"wa": 0.6, "ua": 0.6, "macro_f1": 0.6, "tta": tta})
    html = auth_client.get(reverse("runs:detail", args=[run.pk])).content
    assert label in html and (b"UA as the app classifies" in html) == (members == 3)


def test_run_page_shows_a_seed_ensemble(auth_client, corpus):
    recipe = services.recipe_build(model_size="small", epochs=2, batch_size=8, augment=False, members=3)
    run = TrainingRun.objects.create(name="trio", labels=["happy", "sad", "angry"], hyperparameters=recipe.to_dict(), status="running")
    run.corpora.set([corpus])
    metric_row(run, 1, 1, 1)
    metric_row(run, 1, 2, 1)
    page = auth_client.get(reverse("runs:detail", args=[run.pk]))
    assert page.status_code == 200
    assert page.context["config"]["members"] == 3  # run.js names the series "model 1", "model 2", ...
    assert [(e["member"], e["epoch"]) for e in page.context["snapshot"]["epochs"]] == [(1, 1), (2, 1)]
    assert b"3 models (seed ensemble)</dd>" in page.content
    assert b"best single model so far; the ensemble when it finishes" in page.content
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", best_ua=0.61)
    page = auth_client.get(reverse("runs:detail", args=[run.pk]))
    assert b'<span id="run-best">0.610</span> <span class="muted small" id="run-best-note">(the ensemble)</span>' in page.content
    single = make_run(corpus, status="running")
    page = auth_client.get(reverse("runs:detail", args=[single.pk]))
    assert page.context["config"]["members"] == 1 and b"seed ensemble" not in page.content and b"run-best-note" not in page.content
