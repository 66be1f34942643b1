"""View decorators shared by the apps' upload views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from recognition.services.uploads import UploadLimit

__all__ = ["upload_limited"]

UploadView = Callable[..., HttpResponse]


def upload_limited(
    *,
    limit: Callable[[], int] | None = None,
    csrf: bool = True,
    refuse: Callable[[HttpRequest, UploadLimit], HttpResponse | None] | None = None,
) -> Callable[[UploadView], UploadView]:
    """Count a POST body's file bytes from the first one Django reads, then check CSRF.

    The CSRF check reads the body, so the byte-counting :class:`UploadLimit` must be in place
    before it: the view is exempt from the middleware's check, gets the limit installed and
    only then the check. The wrapped view is called as ``view(request, *args,
    upload_limit=..., **kwargs)`` with the installed limit (None for other methods).

    Args:
        limit: the file byte limit per request (default ``SER_API_MAX_UPLOAD_BYTES``).
        csrf: False for a view that checks CSRF itself (the API: token requests need none).
        refuse: runs after the limit is installed and before the CSRF check; a response it
            returns is the answer (to refuse an upload that could not be read, with a message).
    """

    def decorate(view: UploadView) -> UploadView:
        checked = csrf_protect(view) if csrf else view

        @wraps(view)
        def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            guard = None
            if request.method == "POST":
                guard = UploadLimit(request, None if limit is None else limit())
                request.upload_handlers.insert(0, guard)
                if refuse is not None and (response := refuse(request, guard)) is not None:
                    return response
            return checked(request, *args, upload_limit=guard, **kwargs)

        return csrf_exempt(wrapper)

    return decorate
