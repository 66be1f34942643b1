"""Reads for the model registry."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from recognition.engine.tta import inference_speeds
from recognition.models import ModelVersion

__all__ = ["model_version_active", "model_version_list", "tta_is_as_asked"]


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.all()


def tta_is_as_asked(metrics: dict, members: int) -> bool:
    """Whether ``metrics["tta"]`` (every model at the speeds it lists) is how this server asks a
    checkpoint of ``members`` models now: not when test-time augmentation is off here, nor for an
    ensemble too big for the pass budget that was scored before the budget existed. Scores that
    do not list their speeds are taken as asked."""
    speeds = tuple(float(s) for s in ((metrics.get("tta") or {}).get("speeds") or ()))
    return not speeds or inference_speeds(speeds, members=members, tta=settings.SER_TEST_TIME_AUGMENTATION) == speeds
