"""Executing a training run inside a Celery worker.

- The run is claimed with a conditional UPDATE (queued → running): a redelivered message,
  a duplicate enqueue or a run cancelled before it started finds nothing to claim and does
  nothing, so a run never starts twice.
- A heartbeat thread (:mod:`.heartbeat`) stamps ``heartbeat_at`` every ``SER_HEARTBEAT_SECONDS``
  and reads the cancel flag; the training loop only checks an in-memory event.
- Every epoch is stored (EpochMetric) *then* pushed to the group ``run-<id>``, so a page that
  reconnects always finds in the table what it may have missed on the wire.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from recognition.services import model_version_register
from ser_site.channels_util import group_send
from training.engine.data import WaveformCache
from training.engine.events import BatchProgress, EpochReport, Event, Place, Resumed
from training.engine.experiment import build_dataset, cross_validate, train_holdout
from training.models import EpochMetric, TrainingRun

from .datasets import corpus_scans
from .groups import run_group
from .heartbeat import Heartbeat
from .runs import recipe_of, run_dir, run_notify_status, summary_for

log = logging.getLogger(__name__)

__all__ = ["run_execute", "RunCancelled", "RunReporter"]

PROGRESS_INTERVAL = 0.25  # seconds between progress messages: smooth bar, little traffic


class RunCancelled(Exception):
    pass


def _claim(run_id: int) -> bool:
    now = timezone.now()
    return bool(
        TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.RUNNING,
            heartbeat_at=now,
            worker=f"{socket.gethostname()}:{os.getpid()}",
            phase="loading audio",
            error="",
        )
    )


def run_execute(run_id: int) -> str:
    """Run a training run to its end. Returns the final status (or "skipped")."""
    if not _claim(run_id):
        log.info("run %s is not queued; nothing to do", run_id)
        return "skipped"
    run = TrainingRun.objects.get(pk=run_id)
    if run.started_at is None:
        TrainingRun.objects.filter(pk=run_id).update(started_at=timezone.now())
    run.refresh_from_db()
    run_notify_status(run)
    cancel = threading.Event()

    def beat() -> None:
        TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(heartbeat_at=timezone.now())
        if TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists():
            cancel.set()

    with Heartbeat(f"run-{run_id}", settings.SER_HEARTBEAT_SECONDS, beat):
        try:
            return _train(run, cancel)
        except RunCancelled:
            return _finish(run_id, TrainingRun.Status.CANCELLED, phase="cancelled")
        except Exception as exc:  # noqa: BLE001 — any failure becomes the run's error, shown to the user
            log.exception("run %s failed", run_id)
            return _finish(run_id, TrainingRun.Status.FAILED, phase="failed", error=f"{type(exc).__name__}: {exc}")


def _finish(run_id: int, status: str, **fields: object) -> str:
    TrainingRun.objects.filter(pk=run_id).update(
        status=status, finished_at=timezone.now(), resume_requested=False, cancel_requested=False, **fields
    )
    run_notify_status(TrainingRun.objects.get(pk=run_id))
    return status


class RunReporter:
    """Turns trainer events into rows, run fields and group messages. Each event says where it
    is in the run (fold, model) and how far the run has come; nothing here rescales it."""

    def __init__(self, run: TrainingRun) -> None:
        self.run = run
        self.group = run_group(run.pk)
        self.last_progress = 0.0

    def phase(self, where: Place) -> str:
        parts = [f"fold {where.fold}/{where.folds}"] if where.folds > 1 else []
        if where.members > 1:
            # A distilled ensemble's events count its student as one more model.
            ensemble = where.members - int(self.run.distilled)
            parts += ["distilled model"] if where.member > ensemble else [f"model {where.member}/{ensemble}"]
        return f"training {', '.join(parts)}" if parts else "training"

    def __call__(self, event: Event) -> None:
        phase = self.phase(event)
        if isinstance(event, BatchProgress):
            now = time.monotonic()
            if now - self.last_progress < PROGRESS_INTERVAL and event.batch != event.batches:
                return
            self.last_progress = now
            TrainingRun.objects.filter(pk=self.run.pk).update(
                progress=event.progress, current_fold=event.fold, current_epoch=event.epoch - 1, phase=phase
            )
            group_send(self.group, {"type": "run.progress", "phase": phase, **event.to_payload()})
        elif isinstance(event, Resumed):
            # A worker killed between writing last.pt and storing an epoch left that epoch only
            # in the checkpoint: store the restored epochs that have no row yet.
            for report in event.history:
                if self._store(report, overwrite=False):
                    group_send(self.group, {"type": "run.epoch", "replay": False, **report.to_payload()})
        elif isinstance(event, EpochReport):
            ended_at = time.time()  # "at": the page's log shows when the epoch ended, as for stored ones
            self._store(event, overwrite=True)
            TrainingRun.objects.filter(pk=self.run.pk).update(
                progress=event.progress, current_fold=event.fold, current_epoch=event.epoch,
                best_ua=Greatest(Coalesce(F("best_ua"), Value(0.0)), Value(float(event.ua))),
                phase=phase,
            )
            # The phase rides along: the page's bars move with every epoch, not only with batch
            # messages (which a fast epoch may not send at all).
            group_send(self.group, {"type": "run.epoch", "replay": False, "at": ended_at, "phase": phase,
                                    **event.to_payload()})

    def _store(self, report: EpochReport, *, overwrite: bool) -> bool:
        """The epoch's EpochMetric row from its payload; True when it was not stored before."""
        values = report.to_payload()
        del values["progress"]  # derived from the stored fields
        lookup = {"run_id": self.run.pk, **{k: values.pop(k) for k in ("fold", "member", "epoch")}}
        store = EpochMetric.objects.update_or_create if overwrite else EpochMetric.objects.get_or_create
        _, created = store(**lookup, defaults=values)
        return created


def _train(run: TrainingRun, cancel: threading.Event) -> str:
    recipe = recipe_of(run)
    scans = corpus_scans(run.corpora.all())
    label_set_dict = {"mode": run.label_mode, "mapping": run.label_mapping}
    dataset = build_dataset(scans, mode=run.label_mode, mapping=run.label_mapping or None)
    if list(dataset.labels) != list(run.labels):
        raise ValueError(f"the corpora's labels changed since the run was created: {dataset.labels} != {run.labels}")
    folder = run_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    cache = WaveformCache(recipe.features, settings.SER_FEATURE_CACHE_DIR)
    folds = run.folds if run.protocol == TrainingRun.Protocol.KFOLD else 1
    reporter = RunReporter(run)
    resume = run.resume_requested

    step, current = 0, ""

    def loading(done: int, total: int, phase: str) -> None:
        nonlocal step
        nonlocal current
        if phase != current:
            current, step = phase, 0
        if done == total or done * 20 // max(total, 1) > step:  # a twentieth at a time: the bar moves, the log stays short
            step = done * 20 // max(total, 1)
            text = f"{phase} {done}/{total}"
            TrainingRun.objects.filter(pk=run.pk).update(phase=text)
            group_send(run_group(run.pk), {"type": "run.phase", "phase": text, "done": done, "total": total})
            if done == total:
                group_send(run_group(run.pk), {"type": "run.log", "message": f"{phase}: {total} utterances done"})
        if cancel.is_set():
            raise RunCancelled

    should_stop = cancel.is_set
    if run.protocol == TrainingRun.Protocol.KFOLD:
        done = {int(k) - 1: v for k, v in (run.report.get("completed_folds") or {}).items()} if resume else {}

        def on_fold(index: int, result: dict) -> None:
            completed = {**(TrainingRun.objects.get(pk=run.pk).report.get("completed_folds") or {}), str(index + 1): result}
            TrainingRun.objects.filter(pk=run.pk).update(report={"completed_folds": completed})
            group_send(run_group(run.pk), {"type": "run.log", "message": f"fold {index + 1}: test UA {result['ua']:.3f}"})
            if cancel.is_set() or result.get("stopped") == "cancelled":
                raise RunCancelled

        report = cross_validate(
            scans, folder, folds=folds, recipe=recipe, dataset=dataset, cache=cache, callback=reporter,
            should_stop=should_stop, progress=loading, on_fold=on_fold, completed=done, resume=resume,
        )
        registered = max(report["folds"], key=lambda f: f.get("validation_ua") or 0.0)
        checkpoint = folder / f"fold{registered['fold']}" / "best.pt"
        metrics = {
            "wa": report["wa"], "ua": report["ua"], "macro_f1": report["macro_f1"],
            "wa_std": report.get("wa_std"), "ua_std": report.get("ua_std"),
            "per_class": report.get("pooled", {}).get("per_class", {}),
            "split": "test", "protocol": report["protocol"],
            "note": f"k-fold means; the registered model is fold {registered['fold']} (best validation UA)",
            **_other_scores(report),
        }
        confusion = report["confusion"]
    else:
        report = train_holdout(
            scans, folder / "model.pt", recipe=recipe, dataset=dataset, work_dir=folder / "work", cache=cache,
            callback=reporter, should_stop=should_stop, resume=resume, progress=loading,
            test_speakers=run.test_speakers or None,
        )
        if report["folds"][0].get("stopped") == "cancelled" or cancel.is_set():
            raise RunCancelled
        registered = report["folds"][0]
        checkpoint = folder / "model.pt"
        metrics = {k: report[k] for k in ("wa", "ua", "macro_f1") if k in report}
        metrics.update(per_class=report.get("per_class", {}), split="test", protocol=report["protocol"], **_other_scores(report))
        confusion = report["confusion"]

    # During training best_ua follows the epochs of single models; the registered model's own
    # validation UA replaces it (for a seed ensemble, the averaged models', not the best member's).
    validation_ua = registered.get("validation_ua")
    TrainingRun.objects.filter(pk=run.pk).update(
        phase="registering the model", test_metrics=metrics, report=_slim(report),
        **({"best_ua": float(validation_ua)} if validation_ua is not None else {}),
    )
    run.refresh_from_db()
    version = model_version_register(
        name=run.name, checkpoint_path=checkpoint, lineage={**summary_for(run), "label_set": label_set_dict},
        metrics=metrics, confusion=confusion, created_by=run.created_by,
    )
    TrainingRun.objects.filter(pk=run.pk).update(model_version=version, progress=1.0)
    return _finish(run.pk, TrainingRun.Status.SUCCEEDED, phase="done")


def _other_scores(report: dict) -> dict:
    """The report's scores as the app classifies (``tta``: test-time augmentation), of each
    test recording alone (``alone``) and of the ensemble a distilled model learnt from
    (``teacher``), when it has them: ``{"tta": {"wa", "ua", "macro_f1", ...}}``."""
    keep = ("wa", "ua", "macro_f1", "wa_std", "ua_std", "macro_f1_std", "speeds")
    return {key: {k: report[key][k] for k in keep if k in report[key]} for key in ("tta", "alone", "teacher") if report.get(key)}


def _slim(report: dict) -> dict:
    """The report without bulky per-utterance parts, for the run row."""
    drop = {"model", "recipe"}
    return {k: v for k, v in report.items() if k not in drop}


