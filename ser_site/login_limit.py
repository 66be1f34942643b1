"""Failed sign-in limits: at most ``SER_LOGIN_FAILURES_PER_USER`` failures per user name and
client address, and ``SER_LOGIN_FAILURES_PER_ADDRESS`` per address over all names, in a window
of ``SER_LOGIN_WINDOW_SECONDS`` that starts at the first failure.

The counters live in Django's cache (Redis, shared by every web process). Every password
check goes through :class:`RateLimitedModelBackend`, so the login page and the admin's are
both covered; the failures are counted from Django's ``user_login_failed`` signal. If the
cache cannot be reached, sign-in works unlimited (with a warning in the log) rather than not
at all.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest

log = logging.getLogger(__name__)

__all__ = ["RateLimitedModelBackend", "login_blocked", "TOO_MANY_FAILURES"]

TOO_MANY_FAILURES = "Too many failed sign-ins from your address. Wait {minutes} minutes, then try again."


def _address(request: HttpRequest | None) -> str:
    return (request.META.get("REMOTE_ADDR") or "unknown") if request is not None else "unknown"


def _keys(username: str, address: str) -> tuple[str, str]:
    name = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode()).hexdigest()
    return f"login-failures:user:{name}", f"login-failures:address:{address}"


def login_blocked(request: HttpRequest | None, username: str) -> bool:
    """Whether sign-ins for ``username`` from the request's address are refused for now."""
    user_key, address_key = _keys(username or "", _address(request))
    try:
        counts = cache.get_many([user_key, address_key])
    except Exception:  # noqa: BLE001 — the cache is down: sign-in must still work
        log.warning("login limit: the cache cannot be reached; not limiting", exc_info=True)
        return False
    return (counts.get(user_key, 0) >= settings.SER_LOGIN_FAILURES_PER_USER
            or counts.get(address_key, 0) >= settings.SER_LOGIN_FAILURES_PER_ADDRESS)


def blocked_message() -> str:
    return TOO_MANY_FAILURES.format(minutes=max(1, round(settings.SER_LOGIN_WINDOW_SECONDS / 60)))


class RateLimitedModelBackend(ModelBackend):
    """Django's password check, refused outright while the name and address are blocked.

    ``PermissionDenied`` stops Django's ``authenticate`` at once: the password is not even
    checked, so a blocked attacker learns nothing from further tries.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs: Any):  # noqa: ANN201 — Django's signature
        if username is None:
            username = kwargs.get(self.user_model_field(), "")
        if request is not None and login_blocked(request, username or ""):
            raise PermissionDenied(blocked_message())
        return super().authenticate(request, username=username, password=password, **kwargs)

    @staticmethod
    def user_model_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


@receiver(user_login_failed)
def _count_failure(sender: object, credentials: dict, request: HttpRequest | None = None, **kwargs: object) -> None:
    if request is None:
        return  # not a sign-in over HTTP (a management command, a test helper)
    window = settings.SER_LOGIN_WINDOW_SECONDS
    for key in _keys(str(credentials.get("username", "")), _address(request)):
        try:
            cache.add(key, 0, timeout=window)  # the window starts at the first failure
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, timeout=window)  # expired between add and incr
        except Exception:  # noqa: BLE001 — see login_blocked
            log.warning("login limit: could not count a failure", exc_info=True)
            return


@receiver(user_logged_in)
def _forget_failures(sender: object, request: HttpRequest | None, user: Any, **kwargs: object) -> None:
    """A successful sign-in clears that name's count (not the address's)."""
    if request is None:
        return
    try:
        cache.delete(_keys(user.get_username(), _address(request))[0])
    except Exception:  # noqa: BLE001 — see login_blocked
        log.warning("login limit: could not reset a count", exc_info=True)
