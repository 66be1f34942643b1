"""The model registry (ModelVersion) and personal API tokens.

Recognition never imports training: a run points at the version it produced
(``TrainingRun.model_version``), and a version keeps a ``lineage`` snapshot so it still
says where it came from after its run is deleted.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(help_text="Counts up per name: 1, 2, 3, …")
    checkpoint = models.FileField(upload_to="models/", max_length=300)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField(default=0)
    labels = models.JSONField(default=list)
    feature_config = models.JSONField(default=dict)
    model_config = models.JSONField(default=dict)
    # Test metrics: {"wa", "ua", "macro_f1", "per_class": {...}, "protocol": "..."}
    metrics = models.JSONField(default=dict, blank=True)
    confusion = models.JSONField(default=list, blank=True, help_text="Test confusion, rows = true, columns = predicted.")
    # Where it came from: {"run_id", "run_name", "corpora": [...], "protocol", "source"}
    lineage = models.JSONField(default=dict, blank=True)
    # How the checkpoint answers, read from it at registration: {"members": models averaged,
    # "speeds": the speeds it was trained at, which test-time augmentation asks it at}.
    inference = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True)
    is_active = models.BooleanField(default=False, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="model_version_name_version_unique"),
            # At most one active version, enforced by a partial unique index in the database.
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="model_version_single_active"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def ua(self) -> float | None:
        return self.metrics.get("ua")

    @property
    def wa(self) -> float | None:
        return self.metrics.get("wa")


class ApiToken(models.Model):
    """A personal token for ``POST /api/classify``. Only a hash of the secret is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="First characters of the token, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
