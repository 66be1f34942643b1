"""The size limit on uploaded audio files (``SER_API_MAX_UPLOAD_BYTES``).

The upload page and ``POST /api/classify`` apply the same limit, then classify through
:func:`recognition.services.classify.uploaded_file_classify`.

The limit is enforced twice: from ``Content-Length`` before anything is read, and by an
upload handler that counts the bytes while Django parses the multipart body, so a client
that lies about the length (or sends none) is stopped too.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

__all__ = [
    "UploadLimit",
    "max_upload_bytes",
    "max_request_bytes",
    "version_id_parse",
    "format_bytes",
]

# Room for the multipart boundaries, part headers and the small "model" field around the
# file: a request is refused from its Content-Length only when it cannot possibly hold an
# allowed file.
_MULTIPART_OVERHEAD = 64 * 1024


def max_upload_bytes() -> int:
    """The largest audio file accepted, in bytes (setting ``SER_API_MAX_UPLOAD_BYTES``)."""
    return int(settings.SER_API_MAX_UPLOAD_BYTES)


def max_request_bytes(limit: int | None = None) -> int:
    """The largest request body that can hold an allowed file (the file plus multipart framing)."""
    return (max_upload_bytes() if limit is None else limit) + _MULTIPART_OVERHEAD


def format_bytes(count: int) -> str:
    """``10000`` -> ``"9.8 KB"``: Django's ``filesizeformat`` with a plain space instead of its
    no-break space, for messages that go out as JSON or plain text."""
    return filesizeformat(count).replace("\xa0", " ")


class UploadLimit(FileUploadHandler):
    """Counts the uploaded file bytes while Django parses the body; stops the parse past the limit.

    It must be the first handler so it sees every chunk before the others store it
    (:func:`recognition.views.decorators.upload_limited` puts it there).
    After parsing, ``exceeded`` tells whether the file was cut off (it is then absent
    from ``request.FILES``), and ``declared_too_large()`` checks Content-Length up front.
    """

    def __init__(self, request: HttpRequest | None = None, limit: int | None = None) -> None:
        super().__init__(request)
        self.limit = max_upload_bytes() if limit is None else limit
        self.received = 0
        self.exceeded = False

    def declared_too_large(self) -> bool:
        """True when the request's Content-Length alone proves the file is over the limit."""
        try:
            length = int(self.request.META.get("CONTENT_LENGTH") or 0)
        except (TypeError, ValueError):
            return False
        return length > max_request_bytes(self.limit)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            # connection_reset: do not read the rest of the body just to throw it away.
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler builds the UploadedFile

    @property
    def message(self) -> str:
        return f"The file is too large: the limit is {format_bytes(self.limit)}."


def version_id_parse(raw: Any) -> int | None:
    """A model version id from a form field: None when empty. Raises ValueError when not a number."""
    if raw is None or str(raw).strip() == "":
        return None
    value = int(str(raw).strip())
    if value < 1:
        raise ValueError("a version id is a positive number")
    return value
