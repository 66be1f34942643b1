"""The profile page: the user's API tokens (create, list, revoke)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from recognition.selectors import api_token_list
from recognition.services.tokens import ApiTokenError, api_token_create, api_token_revoke

# The new secret travels to the next page view in the session and is removed there: shown
# once, and a reload of that page does not show it again (nor create a second token).
_NEW_SECRET_KEY = "api_token_new"


def profile(request: HttpRequest) -> HttpResponse:
    """GET: the token list (and a just-created secret, once). POST: create a token."""
    error = ""
    name = ""
    if request.method == "POST":
        name = request.POST.get("name", "")
        try:
            token, secret = api_token_create(user=request.user, name=name)
        except ApiTokenError as exc:
            error = str(exc)
        else:
            request.session[_NEW_SECRET_KEY] = {"id": token.pk, "name": token.name, "secret": secret}
            return redirect("recognition:profile")
    new_token = request.session.pop(_NEW_SECRET_KEY, None)
    context = {
        "tokens": api_token_list(user=request.user),
        "new_token": new_token,
        "error": error,
        "name": name,
        "api_url": request.build_absolute_uri("/api/classify"),
    }
    return render(request, "recognition/profile.html", context, status=400 if error else 200)


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete one of the user's tokens; requests made with it fail from now on."""
    if api_token_revoke(user=request.user, token_id=pk):
        messages.success(request, "The token was revoked.")
    else:
        messages.error(request, "No such token (it may have been revoked already).")
    return redirect("recognition:profile")
