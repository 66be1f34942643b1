"""Who may change what: the person who created a corpus or run, or staff. Everyone logged in
may look at everything and train on any ready corpus."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied

__all__ = ["may_change", "require_change"]


def may_change(user: AbstractBaseUser | AnonymousUser, owner_id: int | None) -> bool:
    if not user.is_authenticated:
        return False
    return bool(user.is_staff) or (owner_id is not None and owner_id == user.pk)


def require_change(user: AbstractBaseUser | AnonymousUser, owner_id: int | None, what: str) -> None:
    if not may_change(user, owner_id):
        raise PermissionDenied(f"Only the person who created this {what}, or staff, may change it.")
