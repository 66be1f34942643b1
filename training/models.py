"""Corpora, their utterances, training runs and their per-epoch metrics.

A run's state lives here, not in Celery's result backend: the worker writes status,
progress and a heartbeat; the pages and the websocket read them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from recognition.models import ModelVersion


class Corpus(models.Model):
    class Status(models.TextChoices):
        IMPORTING = "importing"
        READY = "ready"
        FAILED = "failed"

    name = models.CharField(max_length=100, unique=True)
    format = models.CharField(max_length=30, blank=True, help_text="Detected (or chosen) corpus format.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IMPORTING, db_index=True)
    error = models.TextField(blank=True)
    progress = models.FloatField(default=0.0, help_text="Import progress, 0..1.")
    # Where the audio lives, relative to MEDIA_ROOT (uploads) or absolute (server-path imports).
    root = models.CharField(max_length=500, blank=True)
    # Counts per label / speaker, duration histogram, totals.
    summary = models.JSONField(default=dict, blank=True)
    # [{"path": ..., "reason": ...}] for files that were not imported.
    skipped = models.JSONField(default=list, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Stamped by the import task while it works; a stale one means its worker died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "corpora"

    def __str__(self) -> str:
        return self.name


class Utterance(models.Model):
    corpus = models.ForeignKey(Corpus, on_delete=models.CASCADE, related_name="utterances")
    path = models.CharField(max_length=500, help_text="Relative to the corpus root.")
    label = models.CharField(max_length=30, db_index=True, help_text="Canonical emotion.")
    source_label = models.CharField(max_length=60, blank=True, help_text="The corpus' own code.")
    speaker = models.CharField(max_length=100, blank=True)
    duration = models.FloatField()
    sample_rate = models.PositiveIntegerField(default=0)
    checksum = models.CharField(max_length=64, help_text="sha256 of the file.")

    class Meta:
        ordering = ["corpus_id", "path"]
        constraints = [models.UniqueConstraint(fields=["corpus", "path"], name="utterance_corpus_path_unique")]

    def __str__(self) -> str:
        return f"{self.corpus_id}:{self.path}"


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        INTERRUPTED = "interrupted"

    class Protocol(models.TextChoices):
        HOLDOUT = "holdout", "Speaker-independent hold-out"
        KFOLD = "kfold", "Speaker-independent k-fold"

    name = models.CharField(max_length=100)
    corpora = models.ManyToManyField(Corpus, related_name="runs")
    label_mode = models.CharField(max_length=10, default="common")  # common | all | mapping
    label_mapping = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=list, blank=True, help_text="Resolved class names, in model order.")
    protocol = models.CharField(max_length=10, choices=Protocol.choices, default=Protocol.HOLDOUT)
    folds = models.PositiveSmallIntegerField(default=5)
    # The whole recipe as the engine's Recipe.to_dict() (features, model size, train config).
    hyperparameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    phase = models.CharField(max_length=100, blank=True, help_text="What the worker is doing now.")
    progress = models.FloatField(default=0.0, help_text="Overall progress, 0..1.")
    current_fold = models.PositiveSmallIntegerField(default=0)
    current_epoch = models.PositiveIntegerField(default=0)
    best_ua = models.FloatField(null=True, blank=True)
    test_metrics = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    resume_requested = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=50, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker running it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    model_version = models.OneToOneField(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_run"
    )
    # Hold-out test speakers the user chose ("corpus/speaker" keys); empty: chosen automatically.
    test_speakers = models.JSONField(default=list, blank=True)
    # The split as planned when the run was created, from the same splitting code the worker
    # runs: {"protocol", "folds": [{"test_speakers": [...], "valid_speakers": [...]}]}. The
    # report's split replaces it once the run has one.
    planned_split = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True, help_text="Short labels to find and group runs by.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"

    @property
    def total_epochs(self) -> int:
        return int(self.hyperparameters.get("train", {}).get("epochs", 0))

    @property
    def members(self) -> int:
        """Models in the seed ensemble (1 for runs recorded before ensembles existed)."""
        return int(self.hyperparameters.get("train", {}).get("members", 1))

    @property
    def distilled(self) -> bool:
        """Whether the ensemble teaches one more model (the student), which is what the run saves."""
        return self.members > 1 and float(self.hyperparameters.get("train", {}).get("distil_weight", 0.0)) > 0

    @property
    def trained_models(self) -> int:
        """Models that train one after another: the ensemble's, and the student's."""
        return self.members + int(self.distilled)

    @property
    def saved_models(self) -> int:
        """Models in the checkpoint the run registers."""
        return 1 if self.distilled else self.members


class EpochMetric(models.Model):
    """One training.engine.events.EpochReport, stored: its columns are the report's fields."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="epochs")
    fold = models.PositiveSmallIntegerField(default=1)
    folds = models.PositiveSmallIntegerField(default=1)
    # Seed ensembles train several models per fold, each numbering its epochs from 1.
    member = models.PositiveSmallIntegerField(default=1)
    members = models.PositiveSmallIntegerField(default=1)
    epoch = models.PositiveIntegerField()
    epochs = models.PositiveIntegerField(default=0, help_text="0: stored before the count was kept.")
    train_loss = models.FloatField()
    train_acc = models.FloatField()
    val_loss = models.FloatField()
    wa = models.FloatField()
    ua = models.FloatField()
    macro_f1 = models.FloatField()
    confusion = models.JSONField(default=list)
    per_class_recall = models.JSONField(default=dict)
    lr = models.FloatField()
    duration = models.FloatField(help_text="Seconds.")
    is_best = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run_id", "fold", "member", "epoch"]
        constraints = [models.UniqueConstraint(fields=["run", "fold", "member", "epoch"], name="epoch_metric_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} fold {self.fold} model {self.member} epoch {self.epoch}"
