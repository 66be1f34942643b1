"""Reads for the model registry."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import ModelVersion

__all__ = ["model_version_active", "model_version_list"]


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.all()
