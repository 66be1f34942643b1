"""Corpus pages: list, upload (zip or folder), detail with charts and samples, delete, audio.

The upload view answers JSON to the page's XMLHttpRequest (``Accept: application/json``) and
HTML to a plain form post. Its size limit is checked while the request body is parsed (and, when
served through ``ser_site.asgi``, from Content-Length before Django reads the body).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from recognition.services.uploads import UploadLimit
from recognition.views.decorators import upload_limited
from training import selectors
from training.engine.corpora import FORMATS
from training.models import Corpus
from training.permissions import may_change, require_change
from training.services import corpora as corpora_service
from training.services.corpora import CorpusImportError

FORMAT_NAMES = {
    "csv": "CSV manifest (path,label[,speaker])",
    "iemocap": "IEMOCAP",
    "nemo": "nEMO (Polish)",
    "ravdess": "RAVDESS",
    "crema-d": "CREMA-D",
    "tess": "TESS",
    "emodb": "EmoDB (Berlin)",
    "savee": "SAVEE",
    "folders": "One folder per emotion",
}
AUDIO_TYPES = {
    ".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".opus": "audio/ogg",
    ".webm": "audio/webm", ".m4a": "audio/mp4", ".mp4": "audio/mp4", ".aac": "audio/aac",
}
_MAX_PATHS_BYTES = 64 * 1024**2


class CorpusUploadForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    format = forms.ChoiceField(
        required=False, initial="",
        choices=[("", "Detect automatically"), *((f, FORMAT_NAMES.get(f, f)) for f in FORMATS)],
    )
    archive = forms.FileField(required=False, label="Zip archive",
                              widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}))


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _too_large() -> str:
    return (f"The upload is larger than the limit of {filesizeformat(settings.SER_MAX_UPLOAD_BYTES)}. Import large "
            "corpora from a server path with the import_corpus command.")


def _form_response(request: HttpRequest, form: CorpusUploadForm, status: int = 200, error: str = "") -> HttpResponse:
    """The upload form again (HTML), or ``{"ok": false, "error", "errors"}`` for the page's script."""
    if _wants_json(request) and request.method == "POST":
        errors = {field: [str(e) for e in errs] for field, errs in form.errors.items()}
        if error:
            errors.setdefault("__all__", []).insert(0, error)
        first = next((e[0] for e in errors.values()), "The upload was refused.")
        return JsonResponse({"ok": False, "error": first, "errors": errors}, status=status)
    context = {
        "form": form,
        "error": error,
        "max_upload_bytes": settings.SER_MAX_UPLOAD_BYTES,
        "max_unzipped_bytes": settings.SER_MAX_UNZIPPED_BYTES,
        "max_files": settings.SER_MAX_ARCHIVE_FILES,
    }
    return render(request, "training/corpus_upload.html", context, status=status)


def _refused(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return _form_response(request, CorpusUploadForm(), status=status, error=message)


def _unreadable(request: HttpRequest, guard: UploadLimit) -> HttpResponse | None:
    """Parse the body now, counted by ``guard``: a refusal with a message when it cannot be read
    or is over the limit, None to go on to the CSRF check."""
    # A body over corpus_request_limit() was refused before Django read it (UploadSizeGuard in
    # ser_site.asgi). ``guard`` counts the bytes of all files as they arrive, so a wrong or
    # missing Content-Length cannot fill the disk either; a malformed one fails the parse (400).
    try:
        request.POST, request.FILES  # noqa: B018 — parse now, with the guard in place
    except TooManyFilesSent:
        return _refused(request, f"The folder holds more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files (the limit).", 400)
    except (RequestDataTooBig, TooManyFieldsSent, MultiPartParserError) as exc:
        return _refused(request, f"The upload could not be read: {exc}", 400)
    if guard.exceeded:
        return _refused(request, _too_large(), status=413)
    return None


@upload_limited(limit=lambda: settings.SER_MAX_UPLOAD_BYTES, refuse=_unreadable)
def corpus_upload(request: HttpRequest, upload_limit: UploadLimit | None) -> HttpResponse:
    if request.method != "POST":
        return _form_response(request, CorpusUploadForm())
    form = CorpusUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            corpus = corpora_service.corpus_upload_create(
                name=form.cleaned_data["name"], format=form.cleaned_data["format"], user=request.user,
                archive=form.cleaned_data["archive"], files=_folder_files(request),
            )
        except CorpusImportError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            url = reverse("corpora:detail", args=[corpus.pk])
            if _wants_json(request):
                return JsonResponse({"ok": True, "corpus": corpus.pk, "url": url}, status=201)
            messages.success(request, f"Uploaded {corpus.name}; the import is running.")
            return redirect(url)
    return _form_response(request, form, status=400)


def _folder_files(request: HttpRequest) -> list[tuple[str, UploadedFile]]:
    """A folder upload's (relative path, file) pairs. The page sends the paths as a JSON list in
    the file field ``paths`` (Django keeps only base names of uploaded files), in file order."""
    files = request.FILES.getlist("files")
    if not files:
        return []
    manifest = request.FILES.get("paths")
    if manifest is None:
        raise CorpusImportError("A folder upload needs its list of relative paths; enable JavaScript and retry.")
    try:
        if manifest.size > _MAX_PATHS_BYTES:
            raise ValueError("too large")
        paths = json.loads(manifest.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorpusImportError("The list of relative paths of the folder is not readable.") from exc
    if not isinstance(paths, list) or len(paths) != len(files) or not all(isinstance(p, str) for p in paths):
        raise CorpusImportError("The list of relative paths does not match the uploaded files.")
    return list(zip(paths, files, strict=True))


def duration_text(seconds: float | None) -> str:
    """18.6 s, 12.3 min or 2.35 h: corpora range from a test folder to days of speech."""
    if not seconds:
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


@require_GET
def corpus_list(request: HttpRequest) -> HttpResponse:
    corpora = list(selectors.corpus_list())
    for corpus in corpora:
        corpus.duration_text = duration_text(corpus.summary.get("total_duration"))
        corpus.can_change = may_change(request.user, corpus.uploaded_by_id)
        corpus.label_list = selectors.canonical_order(corpus.summary.get("labels", {}))
    return render(request, "training/corpus_list.html", {"corpora": corpora})


@require_GET
def corpus_detail(request: HttpRequest, pk: int) -> HttpResponse:
    corpus = get_object_or_404(Corpus.objects.select_related("uploaded_by"), pk=pk)
    samples: dict[str, list[dict[str, Any]]] = {}
    if corpus.status == Corpus.Status.READY:
        samples = selectors.corpus_samples(corpus)
        for rows in samples.values():
            for row in rows:
                row["url"] = reverse("corpora:audio", args=[row["pk"]])
    data = {
        "id": corpus.pk, "status": corpus.status, "progress": corpus.progress, "error": corpus.error,
        "summary": corpus.summary, "ws": f"/ws/corpora/{corpus.pk}/import/",
    }
    context = {
        "corpus": corpus,
        "can_change": may_change(request.user, corpus.uploaded_by_id),
        "data": data,
        "samples": samples,
        "blocking_runs": list(selectors.corpus_blocking_runs(corpus)),
        "in_place": corpus.root.startswith("/"),
        "duration_text": duration_text(corpus.summary.get("total_duration")),
        "skipped_more": max(0, int(corpus.summary.get("skipped", 0)) - len(corpus.skipped)),
    }
    return render(request, "training/corpus_detail.html", context)


@require_POST
def corpus_delete(request: HttpRequest, pk: int) -> HttpResponse:
    corpus = get_object_or_404(Corpus, pk=pk)
    require_change(request.user, corpus.uploaded_by_id, "corpus")
    name = corpus.name
    try:
        corpora_service.corpus_delete(corpus=corpus)
    except CorpusImportError as exc:
        messages.error(request, str(exc))
        return redirect("corpora:detail", pk=pk)
    messages.success(request, f"Deleted the corpus {name}.")
    return redirect("corpora:list")


@require_GET
def utterance_audio(request: HttpRequest, pk: int) -> FileResponse:
    """Stream one stored utterance. Files are found by Utterance id only, never by a path."""
    path = selectors.utterance_audio_path(pk)
    if path is None:
        raise Http404("No such utterance.")
    return FileResponse(open(path, "rb"), content_type=AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream"))
