"""The record page (live microphone recognition) and the upload page (classify a file).

Both let the user pick a model version (the active one by default) and show results with
the same front-end renderer (static/js/result_view.js). The record page only renders the
controls: the audio goes over the ``ws/record/`` websocket (recognition/consumers.py).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from recognition.engine.audio import AudioError
from recognition.formatting import format_score
from recognition.models import ModelVersion
from recognition.selectors import model_version_list
from recognition.services.classify import uploaded_file_classify
from recognition.services.inference import NoModelError
from recognition.services.uploads import UploadLimit, max_upload_bytes
from recognition.views.decorators import upload_limited


def _version_label(version: ModelVersion) -> str:
    text = f"{version.name} v{version.version}"
    if version.ua is not None:
        text += f" · UA {format_score(version.ua)}"
    if version.is_active:
        text += " (active)"
    return text


def _versions() -> tuple[list[ModelVersion], ModelVersion | None]:
    """All versions, the active one first, and the active one (the default choice)."""
    versions = sorted(model_version_list(), key=lambda v: not v.is_active)
    active = versions[0] if versions and versions[0].is_active else None
    return versions, active


def _model_context(versions: list[ModelVersion], active: ModelVersion | None) -> dict[str, Any]:
    return {
        "versions": versions,
        "active": active,
        "runs_url": reverse("runs:list"),
        "models_url": reverse("recognition:models"),
    }


def record(request: HttpRequest) -> HttpResponse:
    """Start/stop recording, a level meter, live segments, then the full result."""
    versions, active = _versions()
    default = active or (versions[0] if versions else None)
    options = {
        "wsPath": "/ws/record/",
        "defaultModel": default.pk if default else None,
        "models": [{"id": v.pk, "label": _version_label(v), "labels": v.labels} for v in versions],
    }
    context = {**_model_context(versions, active), "default": default, "options": options}
    return render(request, "recognition/record.html", context)


class UploadForm(forms.Form):
    file = forms.FileField(label="Audio file", help_text="WAV, FLAC, MP3, Ogg, Opus, WebM, M4A/AAC …")
    model = forms.TypedChoiceField(label="Model", coerce=int, required=False, empty_value=None)

    def __init__(self, *args: Any, versions: list[ModelVersion], default: ModelVersion | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(v.pk, _version_label(v)) for v in versions]
        if default is not None:
            self.fields["model"].initial = default.pk


@upload_limited()
def upload(request: HttpRequest, upload_limit: UploadLimit | None) -> HttpResponse:
    """A form for one audio file; on success the same result view as the record page."""
    versions, active = _versions()
    default = active or (versions[0] if versions else None)
    result = None
    error = ""
    filename = ""
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES, versions=versions, default=default)
        if upload_limit is not None and upload_limit.exceeded:
            error = upload_limit.message
        elif not versions:
            error = "There is no model yet, so nothing can be classified."
        elif form.is_valid():
            uploaded = form.cleaned_data["file"]
            filename = uploaded.name
            try:
                result = uploaded_file_classify(uploaded=uploaded, version_id=form.cleaned_data["model"])
            except NoModelError as exc:
                error = str(exc)
            except AudioError as exc:
                error = f"{uploaded.name}: {exc}"
    else:
        form = UploadForm(versions=versions, default=default)
    context = {
        **_model_context(versions, active),
        "form": form,
        "result": result,
        "error": error,
        "filename": filename,
        "max_bytes": max_upload_bytes(),
    }
    if upload_limit is not None and upload_limit.exceeded:
        status = 413
    else:
        status = 400 if error or form.errors else 200
    return render(request, "recognition/upload.html", context, status=status)
