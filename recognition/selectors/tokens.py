"""Reads of personal API tokens (writes: ``recognition.services.tokens``)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from recognition.models import ApiToken

__all__ = ["api_token_list"]


def api_token_list(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's tokens, newest first."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")
