"""Personal API tokens for ``POST /api/classify``: create, authenticate, revoke (the list is
``recognition.selectors.api_token_list``).

A token is ``ser_`` followed by 43 URL-safe characters (32 random bytes). Only its SHA-256
is stored, so a leaked database does not leak usable tokens; the secret is shown to its
owner once, right after creation. SHA-256 (not a slow password hash) is enough because the
secret has 256 bits of entropy: nobody can guess it, so there is nothing to slow down.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from recognition.models import ApiToken

__all__ = [
    "TOKEN_PREFIX",
    "MAX_TOKENS_PER_USER",
    "ApiTokenError",
    "api_token_create",
    "api_token_authenticate",
    "api_token_revoke",
    "token_hash",
]

TOKEN_PREFIX = "ser_"
# The stored prefix: "ser_" plus 8 characters, enough to tell one's tokens apart.
_SHOWN_CHARS = len(TOKEN_PREFIX) + 8
MAX_TOKENS_PER_USER = 50
# Writing last_used_at on every request would make each API call a database write; a
# minute's precision is all the profile page needs.
_LAST_USED_PRECISION = timedelta(minutes=1)


class ApiTokenError(ValueError):
    """A token request the user must correct (empty name, too many tokens)."""


def token_hash(secret: str) -> str:
    """Hex SHA-256 of a token's secret (what the database stores)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def api_token_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """Create a token for ``user``. Returns the stored row and the secret (shown once).

    Raises:
        ApiTokenError: the name is empty or too long, or the user has too many tokens.
    """
    name = " ".join(name.split())
    if not name:
        raise ApiTokenError("Give the token a name, e.g. the script or machine that will use it.")
    if len(name) > 100:
        raise ApiTokenError("The name is too long (at most 100 characters).")
    if ApiToken.objects.filter(user=user).count() >= MAX_TOKENS_PER_USER:
        raise ApiTokenError(f"You already have {MAX_TOKENS_PER_USER} tokens; revoke one you no longer use.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=secret[:_SHOWN_CHARS], key_hash=token_hash(secret))
    return token, secret


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """The token whose secret this is, with its user, or None (unknown, revoked, inactive user).

    The lookup is by hash, so timing reveals nothing about the secret. Records the use.
    """
    secret = secret.strip()
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(secret)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= _LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_token_revoke(*, user: AbstractBaseUser, token_id: int) -> bool:
    """Delete one of ``user``'s tokens. Returns False when it does not exist or is not theirs."""
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    return deleted > 0
