"""``POST /api/classify``: classify one uploaded audio file, answer JSON.

Authentication is either a personal API token (``Authorization: Bearer ser_…``, made on
the profile page) or the browser session. A session request must carry a valid CSRF token,
like any form post: otherwise any website could make a logged-in browser call the API.
Token requests need no CSRF token because a browser never attaches the header by itself.

The answer is the result dict of :mod:`recognition.services.classify` plus, at top level,
``speech`` (whether any speech was found) and the verdict's ``label`` and ``probabilities``
(both null without speech: silence has no emotion). Query parameters: ``spectrogram=0``
leaves the spectrogram out, ``whole=1`` adds the whole recording classified as one
utterance.

Every error is JSON ``{"error": message, "code": short_code}`` with a fitting status:
401 no or bad token, 403 CSRF, 400 missing file, bad model id or bad flag, 413 too large,
422 not decodable audio, 503 no model.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware

from recognition.engine.audio import AudioError
from recognition.services.classify import uploaded_file_classify
from recognition.services.inference import NoModelError, UnknownVersionError
from recognition.services.tokens import api_token_authenticate
from recognition.services.uploads import UploadLimit, version_id_parse
from recognition.views.decorators import upload_limited


def _error(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": message, "code": code}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _unauthorized(message: str) -> JsonResponse:
    return _error(401, "unauthorized", message, WWW_Authenticate='Bearer realm="api"')


class _CsrfCheck(CsrfViewMiddleware):
    """The CSRF middleware's own check, answering with the failure reason instead of a page."""

    def _reject(self, request, reason):  # noqa: ANN001 — Django's signature
        return reason


def _csrf_failure(request: HttpRequest) -> str | None:
    """None when the request passes Django's CSRF check, else the reason."""
    return _CsrfCheck(lambda r: None).process_view(request, lambda r: None, (), {})


@login_not_required
@upload_limited(csrf=False)  # session requests are checked below, answering JSON; token ones need none
def classify(request: HttpRequest, upload_limit: UploadLimit | None) -> JsonResponse:
    """Multipart ``file`` (audio) and optional ``model`` (version id) -> the result dict as JSON
    (see the module docstring)."""
    if upload_limit is None:
        return _error(405, "method_not_allowed", "Use POST with a multipart/form-data body.", Allow="POST")

    header = request.META.get("HTTP_AUTHORIZATION", "")
    session_auth = False
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return _unauthorized("Send the token as 'Authorization: Bearer <token>'.")
        token = api_token_authenticate(secret=secret)
        if token is None:
            return _unauthorized("The API token is not valid (unknown or revoked).")
        request.user = token.user
    elif request.user.is_authenticated:
        session_auth = True
    else:
        return _unauthorized("Authentication required: send an API token as 'Authorization: Bearer <token>'.")

    if upload_limit.declared_too_large():
        return _error(413, "too_large", upload_limit.message)
    try:
        uploaded = request.FILES.get("file")  # parses the body, counting bytes
    except (MultiPartParserError, RequestDataTooBig, TooManyFilesSent) as exc:
        return _error(400, "bad_request", f"The request body is not valid multipart/form-data ({exc}).")
    if upload_limit.exceeded:
        return _error(413, "too_large", upload_limit.message)
    if session_auth and (reason := _csrf_failure(request)):
        return _error(403, "csrf", f"CSRF check failed ({reason}). Session requests need the CSRF token.")
    if uploaded is None:
        return _error(400, "missing_file", "Send the audio as a multipart/form-data field named 'file'.")
    try:
        version_id = version_id_parse(request.POST.get("model"))
    except ValueError:
        return _error(400, "bad_model", "'model' must be the id of a model version (a number).")
    try:
        spectrogram, whole = _flag(request, "spectrogram", True), _flag(request, "whole", False)
    except ValueError as exc:
        return _error(400, "bad_flag", str(exc))
    try:
        result = uploaded_file_classify(uploaded=uploaded, version_id=version_id, whole=whole, spectrogram=spectrogram)
    except UnknownVersionError as exc:
        return _error(400, "bad_model", str(exc))
    except NoModelError as exc:
        return _error(503, "no_model", str(exc))
    except AudioError as exc:
        return _error(422, "bad_audio", str(exc))
    verdict = result["verdict"] or {}
    return JsonResponse(
        {"speech": bool(verdict), "label": verdict.get("label"), "probabilities": verdict.get("probabilities"), **result}
    )


def _flag(request: HttpRequest, name: str, default: bool) -> bool:
    """A yes/no query parameter: 1/true/yes or 0/false/no. Raises ValueError otherwise."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ValueError(f"'{name}' must be 0 or 1, not {raw[:20]!r}.")
