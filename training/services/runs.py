"""Training runs: create and enqueue, cancel, resume, delete, reap runs whose worker died.

The Celery task (``training.tasks.runs``) only calls :func:`run_execute`; everything a run
does, and every state change, is here.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from recognition.engine.features import FeatureConfig
from ser_site.channels_util import group_send
from training.engine.experiment import Recipe
from training.engine.labels import resolve_label_set
from training.models import Corpus, TrainingRun
from training.selectors.run_details import run_split
from training.selectors.runs import run_status_payload

from .datasets import label_counts
from .groups import run_group
from .queue import run_enqueue, task_revoke
from .splits import split_plan

log = logging.getLogger(__name__)

__all__ = [
    "RunError",
    "recipe_build",
    "run_create",
    "run_cancel",
    "run_resume",
    "run_delete",
    "runs_reap_stale",
    "run_dir",
    "run_notify_status",
    "parse_label_mapping",
]


class RunError(ValueError):
    """A run cannot be created or changed as asked; the message is for the user."""


def run_dir(run: TrainingRun) -> Path:
    return Path(settings.SER_RUNS_DIR) / f"run-{run.pk}"


def parse_label_mapping(text: str) -> dict[str, str | None]:
    """``"calm=neutral, boredom="`` → ``{"calm": "neutral", "boredom": None}`` (empty = drop)."""
    mapping: dict[str, str | None] = {}
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise RunError(f"Label mapping entries look like 'calm=neutral'; got {part!r}.")
        source, target = (p.strip().lower() for p in part.split("=", 1))
        if not source:
            raise RunError(f"Label mapping entry {part!r} has no source label.")
        mapping[source] = target or None
    return mapping


# The engine's recipe is the one source of the defaults; the form's initial values read it too.
_TRAIN_DEFAULTS = Recipe().train
# The soft targets' share of the student's loss when the form asks for distillation.
DISTIL_WEIGHT = 0.9


def recipe_build(
    *,
    features: str = "whisper",
    mean_norm: str = "speaker",
    model_size: str = "medium",
    epochs: int = _TRAIN_DEFAULTS.epochs,
    batch_size: int = _TRAIN_DEFAULTS.batch_size,
    lr: float = _TRAIN_DEFAULTS.lr,
    dropout: float | None = None,
    augment: bool = True,
    patience: int = _TRAIN_DEFAULTS.patience,
    seed: int = _TRAIN_DEFAULTS.seed,
    members: int = _TRAIN_DEFAULTS.members,
    distil: bool = False,
) -> Recipe:
    """The front end's default recipe with the form's choices applied; engine errors become RunError."""
    try:
        base = Recipe.for_front_end(features)
        train = replace(
            base.train, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed, members=members,
            augment=replace(base.train.augment, enabled=augment),
            distil_weight=DISTIL_WEIGHT if distil else 0.0,
        )
        overrides = {} if dropout is None else {"dropout": dropout}
        feature_config = replace(base.features, **FeatureConfig.mean_norm_fields(mean_norm))
        recipe = Recipe(features=feature_config, model_size=model_size, model_overrides=overrides, train=train)
        recipe.model_config(2)  # validates the model size and overrides
    except (TypeError, ValueError) as exc:
        raise RunError(str(exc)) from exc
    return recipe


def front_end_defaults() -> dict[str, dict]:
    """Per front end, the form fields whose defaults differ (the run form swaps them)."""
    out = {}
    for kind in ("whisper", "logmel", "mfcc"):
        recipe = Recipe.for_front_end(kind)
        t = recipe.train
        out[kind] = {"epochs": t.epochs, "lr": t.lr, "patience": t.patience, "members": t.members,
                     "dropout": recipe.model_config(2).dropout}
    return out


def run_create(
    *,
    name: str,
    corpora: Sequence[Corpus],
    recipe: Recipe,
    label_mode: str = "common",
    label_mapping: dict[str, str | None] | None = None,
    protocol: str = TrainingRun.Protocol.HOLDOUT,
    folds: int = 5,
    created_by: AbstractBaseUser | None = None,
    test_speakers: Sequence[str] = (),
) -> TrainingRun:
    """Validate, store and enqueue (after the transaction commits) a training run.

    ``test_speakers`` (``corpus/speaker`` keys, hold-out only) are held out for testing;
    empty: the engine chooses. The planned split is stored with the run."""
    corpora = list(corpora)
    if not corpora:
        raise RunError("Choose at least one corpus.")
    not_ready = [c.name for c in corpora if c.status != Corpus.Status.READY]
    if not_ready:
        raise RunError(f"Corpora not ready: {', '.join(not_ready)}.")
    if protocol not in TrainingRun.Protocol.values:
        raise RunError(f"Unknown protocol {protocol!r}.")
    if protocol == TrainingRun.Protocol.KFOLD and not 2 <= folds <= 20:
        raise RunError("k-fold needs between 2 and 20 folds.")
    try:
        label_set = resolve_label_set(label_counts(corpora), label_mode, label_mapping or {})
    except ValueError as exc:
        raise RunError(str(exc)) from exc
    try:
        plan = split_plan(corpora=corpora, label_mode=label_mode, label_mapping=label_mapping, protocol=protocol,
                          folds=folds, seed=recipe.train.seed, test_speakers=list(test_speakers))
    except ValueError as exc:
        raise RunError(str(exc)) from exc
    with transaction.atomic():
        run = TrainingRun.objects.create(
            name=name.strip()[:100] or "run",
            label_mode=label_mode,
            label_mapping={k: v for k, v in (label_mapping or {}).items()},
            labels=list(label_set.labels),
            protocol=protocol,
            folds=folds if protocol == TrainingRun.Protocol.KFOLD else 1,
            hyperparameters=recipe.to_dict(),
            phase="waiting for a worker",
            created_by=created_by,
            test_speakers=list(test_speakers),
            planned_split=plan,
        )
        run.corpora.set(corpora)
        _enqueue_on_commit(run)
    return run


def _enqueue_on_commit(run: TrainingRun) -> None:
    def enqueue() -> None:
        TrainingRun.objects.filter(pk=run.pk).update(celery_task_id=run_enqueue(run.pk))

    transaction.on_commit(enqueue)


def run_notify_status(run: TrainingRun) -> None:
    group_send(run_group(run.pk), {"type": "run.status", **run_status_payload(run)})


def run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Queued: revoke the message and mark cancelled. Running: set the flag; the worker stops
    at the next batch and marks the run cancelled. Interrupted: cancelled at once.

    Decided on the row's current status, not the caller's copy: a run a worker claimed a
    moment ago is cancelled through its flag."""
    run.refresh_from_db()
    if run.status == TrainingRun.Status.QUEUED:
        # The status is the guard: even if the revoke does not reach the worker in time,
        # the task finds the run no longer queued and does nothing.
        changed = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.CANCELLED, phase="cancelled before it started", finished_at=timezone.now()
        )
        if changed and run.celery_task_id:
            try:
                task_revoke(run.celery_task_id)
            except Exception:  # noqa: BLE001 — the status guard above already wins
                log.warning("could not revoke task %s", run.celery_task_id, exc_info=True)
        if not changed:
            run.refresh_from_db()  # a worker claimed it meanwhile: cancel it as a running run
    if run.status == TrainingRun.Status.RUNNING:
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(
            cancel_requested=True, phase="cancelling…"
        )
    elif run.status == TrainingRun.Status.INTERRUPTED:
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.INTERRUPTED).update(
            status=TrainingRun.Status.CANCELLED, phase="cancelled", finished_at=timezone.now()
        )
    elif run.status != TrainingRun.Status.QUEUED and run.status != TrainingRun.Status.CANCELLED:
        raise RunError(f"A {run.status} run cannot be cancelled.")
    run.refresh_from_db()
    run_notify_status(run)
    return run


def run_resume(*, run: TrainingRun) -> TrainingRun:
    """Requeue an interrupted (or cancelled) run; it continues from its last checkpoint."""
    resumable = (TrainingRun.Status.INTERRUPTED, TrainingRun.Status.CANCELLED)
    if run.status not in resumable:
        raise RunError(f"Only an interrupted or cancelled run can be resumed; this one is {run.status}.")
    with transaction.atomic():
        changed = TrainingRun.objects.filter(pk=run.pk, status__in=resumable).update(
            status=TrainingRun.Status.QUEUED, resume_requested=True, cancel_requested=False,
            error="", phase="waiting for a worker (resume)", finished_at=None,
        )
        if not changed:
            raise RunError("The run changed state meanwhile; reload the page.")
        run.refresh_from_db()
        _enqueue_on_commit(run)
    run_notify_status(run)
    return run


def run_delete(*, run: TrainingRun) -> None:
    """Delete a run that is not running, with its metrics and files. A model version it
    produced stays in the registry (its lineage keeps the run's description).

    Decided on the locked row, not the caller's copy: a queued run is cancelled first, and a
    run a worker claimed meanwhile is refused."""
    run.refresh_from_db()
    if run.status == TrainingRun.Status.QUEUED:
        run_cancel(run=run)
    folder = run_dir(run)
    with transaction.atomic():
        current = TrainingRun.objects.select_for_update().filter(pk=run.pk).first()
        if current is None:
            return
        if current.status == TrainingRun.Status.RUNNING:
            raise RunError("Cancel the run before deleting it.")
        current.delete()
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


def runs_reap_stale(*, timeout: float | None = None) -> list[int]:
    """Mark running runs whose heartbeat is older than ``timeout`` seconds as interrupted
    (their worker was killed or the machine restarted). Returns the ids it changed."""
    timeout = settings.SER_HEARTBEAT_TIMEOUT if timeout is None else timeout
    limit = timezone.now() - timedelta(seconds=timeout)
    stale = list(
        TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=limit).values_list("pk", flat=True)
    )
    changed = []
    for pk in stale:
        # Conditional update: a heartbeat that arrived meanwhile keeps the run running.
        n = TrainingRun.objects.filter(pk=pk, status=TrainingRun.Status.RUNNING, heartbeat_at__lt=limit).update(
            status=TrainingRun.Status.INTERRUPTED,
            phase="interrupted: its worker stopped (resume continues from the last checkpoint)",
        )
        if n:
            changed.append(pk)
            log.warning("run %s: no heartbeat for %.0f s, marked interrupted", pk, timeout)
            run_notify_status(TrainingRun.objects.get(pk=pk))
    return changed


def recipe_of(run: TrainingRun) -> Recipe:
    recipe = Recipe.from_dict(run.hyperparameters)
    threads = int(getattr(settings, "SER_TRAIN_THREADS", 0))
    return replace(recipe, train=replace(recipe.train, num_threads=threads)) if threads else recipe


def summary_for(run: TrainingRun) -> dict[str, Any]:
    """Lineage snapshot stored with the ModelVersion a run produces."""
    return {
        "source": "training run",
        "run_id": run.pk,
        "run_name": run.name,
        "corpora": [c.name for c in run.corpora.all()],
        "protocol": run.test_metrics.get("protocol", run.get_protocol_display()),
        "labels": run.labels,
        "hyperparameters": run.hyperparameters,
        # Who the scores were measured on: [{"fold", "test_speakers", "valid_speakers"}].
        "split": run_split(run)["folds"],
    }
