"""API tokens: the services (recognition.services.tokens, recognition.selectors.tokens) and the profile page that manages them."""

from __future__ import annotations

import hashlib
import re

import pytest

from recognition.models import ApiToken
from recognition.selectors import api_token_list
from recognition.services.tokens import (
    MAX_TOKENS_PER_USER,
    ApiTokenError,
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="bob-password-123")


def test_create_stores_only_a_hash(user):
    token, secret = api_token_create(user=user, name="  lab   laptop ")
    assert secret.startswith("ser_") and len(secret) >= 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.name == "lab laptop"
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in (stored.key_hash, stored.prefix)
    assert secret.startswith(stored.prefix) and len(stored.prefix) == 12
    assert stored.last_used_at is None
    # Two tokens never share a secret.
    _, other = api_token_create(user=user, name="second")
    assert other != secret


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_create_refuses_bad_names(user, name):
    with pytest.raises(ApiTokenError):
        api_token_create(user=user, name=name)
    assert not ApiToken.objects.exists()


def test_create_limits_the_number_of_tokens(user):
    ApiToken.objects.bulk_create(
        [ApiToken(user=user, name=f"t{i}", prefix="ser_x", key_hash=f"{i:064d}") for i in range(MAX_TOKENS_PER_USER)]
    )
    with pytest.raises(ApiTokenError, match="revoke"):
        api_token_create(user=user, name="one too many")


def test_authenticate(user):
    token, secret = api_token_create(user=user, name="script")
    found = api_token_authenticate(secret=secret)
    assert found == token and found.user == user
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None
    assert api_token_authenticate(secret=secret + " ") == token  # stray whitespace from a copy-paste
    for wrong in ("", "ser_", secret[:-1], secret[:-1] + ("A" if secret[-1] != "A" else "B"), secret.upper(), "x" * 500):
        assert api_token_authenticate(secret=wrong) is None


def test_authenticate_refuses_inactive_user(user):
    _, secret = api_token_create(user=user, name="script")
    user.is_active = False
    user.save()
    assert api_token_authenticate(secret=secret) is None


def test_revoke_only_own_tokens(user, bob):
    token, secret = api_token_create(user=user, name="script")
    assert api_token_revoke(user=bob, token_id=token.pk) is False
    assert api_token_authenticate(secret=secret) == token
    assert api_token_revoke(user=user, token_id=token.pk) is True
    assert api_token_authenticate(secret=secret) is None
    assert api_token_revoke(user=user, token_id=token.pk) is False


def test_list_is_per_user(user, bob):
    api_token_create(user=user, name="a")
    api_token_create(user=bob, name="b")
    assert [t.name for t in api_token_list(user=user)] == ["a"]


# -- the profile page ---------------------------------------------------------------------

def test_profile_needs_login(client):
    response = client.get("/profile/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_profile_creates_and_shows_the_secret_once(auth_client, user):
    page = auth_client.get("/profile/")
    assert page.status_code == 200
    assert b"You have no API tokens" in page.content
    response = auth_client.post("/profile/", {"name": "my script"})
    assert response.status_code == 302
    shown = auth_client.get("/profile/").content.decode()
    match = re.search(r'id="new-token-secret">(ser_[A-Za-z0-9_-]+)<', shown)
    assert match, shown
    secret = match.group(1)
    assert api_token_authenticate(secret=secret).user == user
    token = ApiToken.objects.get(user=user)
    assert token.prefix in shown and "my script" in shown and "never" in shown
    # Shown once: the next view of the page lists the token but not its secret.
    again = auth_client.get("/profile/").content.decode()
    assert secret not in again and token.prefix in again


def test_profile_create_error_is_shown(auth_client):
    response = auth_client.post("/profile/", {"name": "   "})
    assert response.status_code == 400
    assert "Give the token a name" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_profile_revoke(auth_client, user, bob):
    token, secret = api_token_create(user=user, name="old")
    bobs, _ = api_token_create(user=bob, name="bob's")
    assert auth_client.get(f"/profile/tokens/{token.pk}/revoke/").status_code == 405
    response = auth_client.post(f"/profile/tokens/{token.pk}/revoke/", follow=True)
    assert response.status_code == 200
    assert "The token was revoked" in response.content.decode()
    assert api_token_authenticate(secret=secret) is None
    # Someone else's token cannot be revoked through the page.
    response = auth_client.post(f"/profile/tokens/{bobs.pk}/revoke/", follow=True)
    assert "No such token" in response.content.decode()
    assert ApiToken.objects.filter(pk=bobs.pk).exists()
