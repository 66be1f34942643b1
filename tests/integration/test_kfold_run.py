"""A k-fold run executed in process (the task's body): every fold's epochs are stored, the
registered model carries the fold means; an interrupted k-fold run resumes after the folds
it had finished instead of training them again, and stores an epoch its worker died before storing."""

from __future__ import annotations

import shutil

import pytest

from devsupport.factories import ready_corpus
from recognition.models import ModelVersion
from training.models import EpochMetric, TrainingRun
from training.selectors.runs import epoch_payload
from training.services import execution
from training.services import runs as services

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@pytest.fixture
def kfold_run(tmp_path, user, redis_server, settings):
    settings.SER_RUNS_DIR = tmp_path / "runs"
    settings.SER_FEATURE_CACHE_DIR = tmp_path / "cache"
    settings.SER_TRAIN_THREADS = 1
    corpus = ready_corpus(tmp_path / "corpus", speakers=4, per_class=2)
    recipe = services.recipe_build(model_size="small", epochs=2, batch_size=8, augment=False, patience=0, members=1)
    run = TrainingRun.objects.create(
        name="kfold", labels=["happy", "sad", "angry"], protocol="kfold", folds=2, hyperparameters=recipe.to_dict(),
        created_by=user,
    )
    run.corpora.set([corpus])
    return run


def test_kfold_run_stores_every_fold_and_registers_the_means(kfold_run):
    assert execution.run_execute(kfold_run.pk) == "succeeded"
    run = TrainingRun.objects.get(pk=kfold_run.pk)
    assert list(EpochMetric.objects.filter(run=run).values_list("fold", "epoch")) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert run.progress == 1.0 and run.status == "succeeded"
    assert "2-fold leave-speakers-out" in run.test_metrics["protocol"] and "ua_std" in run.test_metrics
    version = ModelVersion.objects.get()
    assert run.model_version == version and version.metrics["ua"] == run.test_metrics["ua"]
    assert "best validation UA" in version.metrics["note"]
    registered = max(run.report["folds"], key=lambda f: f["validation_ua"])
    assert run.best_ua == pytest.approx(registered["validation_ua"]) and f"fold {registered['fold']}" in version.metrics["note"]
    assert "tta" not in run.test_metrics  # trained without speed changes: asked at one speed
    assert len(run.report["folds"]) == 2


def test_interrupted_kfold_run_resumes_after_its_finished_folds(kfold_run):
    assert execution.run_execute(kfold_run.pk) == "succeeded"
    run = TrainingRun.objects.get(pk=kfold_run.pk)
    fold1 = run.report["folds"][0]
    first_fold_rows = set(EpochMetric.objects.filter(run=run, fold=1).values_list("id", flat=True))
    # As if the worker had died early in fold 2: fold 1 is on record, fold 2 left nothing.
    EpochMetric.objects.filter(run=run, fold=2).delete()
    shutil.rmtree(services.run_dir(run) / "fold2")
    ModelVersion.objects.all().delete()
    TrainingRun.objects.filter(pk=run.pk).update(
        status="interrupted", report={"completed_folds": {"1": fold1}}, model_version=None, progress=0.5
    )
    services.run_resume(run=TrainingRun.objects.get(pk=run.pk))
    assert execution.run_execute(run.pk) == "succeeded"
    run.refresh_from_db()
    assert set(EpochMetric.objects.filter(run=run, fold=1).values_list("id", flat=True)) == first_fold_rows  # not retrained
    assert list(EpochMetric.objects.filter(run=run, fold=2).values_list("epoch", flat=True)) == [1, 2]
    assert run.report["folds"][0] == fold1 and len(run.report["folds"]) == 2
    assert ModelVersion.objects.count() == 1


def test_resume_stores_the_epoch_a_killed_worker_had_checkpointed_but_not_stored(kfold_run):
    """The trainer writes last.pt, then reports the epoch: a worker killed in between leaves
    the epoch in the checkpoint only. The resumed run must store it, not leave a gap."""
    assert execution.run_execute(kfold_run.pk) == "succeeded"
    run = TrainingRun.objects.get(pk=kfold_run.pk)
    lost = EpochMetric.objects.get(run=run, fold=2, epoch=2)
    expected = epoch_payload(lost)
    lost.delete()
    ModelVersion.objects.all().delete()
    TrainingRun.objects.filter(pk=run.pk).update(
        status="interrupted", report={"completed_folds": {"1": run.report["folds"][0]}}, model_version=None
    )
    services.run_resume(run=TrainingRun.objects.get(pk=run.pk))
    assert execution.run_execute(run.pk) == "succeeded"
    assert list(EpochMetric.objects.filter(run=run, fold=2).values_list("epoch", flat=True)) == [1, 2]
    assert epoch_payload(EpochMetric.objects.get(run=run, fold=2, epoch=2)) == expected


def test_a_run_with_speed_augmentation_records_and_shows_the_scores_as_the_app_classifies(kfold_run, auth_client):
    from django.urls import reverse

    recipe = services.recipe_build(features="logmel", model_size="small", epochs=1, batch_size=8, augment=True, patience=0, members=1)
    TrainingRun.objects.filter(pk=kfold_run.pk).update(hyperparameters=recipe.to_dict())
    assert execution.run_execute(kfold_run.pk) == "succeeded"
    run = TrainingRun.objects.get(pk=kfold_run.pk)
    # Fold means, as for the headline scores; the default recipe is per speaker, so "alone" too.
    for key in ("tta", "alone"):
        assert {"wa", "ua", "macro_f1", "ua_std"} <= set(run.test_metrics[key])
        assert run.test_metrics[key]["ua"] == pytest.approx(sum(f[key]["ua"] for f in run.report["folds"]) / 2)
    version = ModelVersion.objects.get()
    assert version.metrics["tta"] == run.test_metrics["tta"]
    for url in (reverse("runs:detail", args=[run.pk]), reverse("recognition:model", args=[version.pk])):
        page = auth_client.get(url).content.decode()
        assert "UA as the app classifies" in page and f"{run.test_metrics['tta']['ua']:.3f}" in page
        assert "UA, recording alone" in page


def test_a_distilled_run_registers_the_student_and_shows_its_teacher(kfold_run, auth_client):
    from django.urls import reverse

    recipe = services.recipe_build(model_size="small", epochs=1, batch_size=8, augment=False, patience=0, members=2, distil=True)
    TrainingRun.objects.filter(pk=kfold_run.pk).update(hyperparameters=recipe.to_dict())
    assert execution.run_execute(kfold_run.pk) == "succeeded"
    run = TrainingRun.objects.get(pk=kfold_run.pk)
    # Each fold: two models, then the student (model 3), each with its epoch stored.
    assert list(EpochMetric.objects.filter(run=run).values_list("fold", "member", "epoch")) == [
        (f, m, 1) for f in (1, 2) for m in (1, 2, 3)
    ]
    assert run.distilled and run.trained_models == 3 and run.saved_models == 1
    assert run.test_metrics["teacher"]["ua"] == pytest.approx(sum(f["teacher"]["ua"] for f in run.report["folds"]) / 2)
    version = ModelVersion.objects.get()
    assert version.inference["members"] == 1 and version.metrics["teacher"] == run.test_metrics["teacher"]
    run_page = auth_client.get(reverse("runs:detail", args=[run.pk]))
    assert run_page.context["config"]["members"] == 3  # the student's epochs draw as a third series
    html = run_page.content.decode()
    assert "2 models (seed ensemble), distilled into one model (the one saved)" in html and "(the distilled model)" in html
    for url in (reverse("runs:detail", args=[run.pk]), reverse("recognition:model", args=[version.pk])):
        page = auth_client.get(url).content.decode()
        assert "UA of the ensemble it learnt from" in page and f"{run.test_metrics['teacher']['ua']:.3f}" in page
