"""Reads for the model registry."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import ModelVersion

__all__ = ["model_version_active", "model_version_list", "model_version_get"]


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.all()


def model_version_get(pk: int) -> ModelVersion:
    return ModelVersion.objects.get(pk=pk)
