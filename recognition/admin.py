"""Admin for the model registry.

Versions come from finished training runs or from an uploaded checkpoint (the add page is
replaced by an upload form that runs the engine's loader). Everything a checkpoint defines
is read-only; only the notes are edited here. "Make active" is an action and a button on
each version; deleting a version removes its file too.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.validators import FileExtensionValidator
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from . import services
from .engine.checkpoint import CheckpointError
from .formatting import format_score
from .models import ApiToken, ModelVersion
from .presentation import checkpoint_response, download_name

__all__ = ["ModelVersionAdmin", "ApiTokenAdmin", "CheckpointUploadForm", "pretty_json"]


def pretty_json(value: Any) -> str:
    """Indented JSON in a <pre>, for read-only JSON fields."""
    if value in (None, "", [], {}):
        return "—"
    return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>', json.dumps(value, indent=2, sort_keys=True))


def _score(value: Any) -> str:
    return format_score(value)


class CheckpointUploadForm(forms.Form):
    name = forms.CharField(
        max_length=100, required=False,
        help_text="Versions count up per name. Empty: the file name without .pt.",
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False)
    checkpoint = forms.FileField(
        validators=[FileExtensionValidator(["pt"], message="Choose a .pt checkpoint written by this engine.")],
        help_text="A .pt file from manage.py train or a training run. It is checked by the engine's loader before it is stored.",
    )


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "ua_display", "wa_display", "macro_f1_display", "labels_display", "is_active", "created_at")
    list_display_links = ("name", "version")
    list_filter = ("is_active", "name", "created_at")
    search_fields = ("name", "notes", "sha256")
    date_hierarchy = "created_at"
    actions = ["make_active"]
    change_form_template = "admin/recognition/modelversion/change_form.html"
    upload_template = "admin/recognition/modelversion/upload.html"
    fieldsets = (
        (None, {"fields": ("name", "version", "is_active", "notes")}),
        ("Scores", {"fields": ("metrics_summary", "confusion_table", "metrics_pretty")}),
        ("Checkpoint", {"fields": ("checkpoint_link", "sha256", "size_bytes", "labels_display",
                                   "feature_config_pretty", "model_config_pretty", "inference_pretty")}),
        ("Lineage", {"fields": ("lineage_pretty", "created_by", "created_at")}),
    )
    readonly_fields = (
        "name", "version", "is_active", "metrics_summary", "confusion_table", "metrics_pretty", "checkpoint_link",
        "sha256", "size_bytes", "labels_display", "feature_config_pretty", "model_config_pretty", "inference_pretty",
        "lineage_pretty", "created_by", "created_at",
    )

    # ---- list columns ----------------------------------------------------------------
    @admin.display(description="UA")
    def ua_display(self, obj: ModelVersion) -> str:
        return _score(obj.metrics.get("ua"))

    @admin.display(description="WA")
    def wa_display(self, obj: ModelVersion) -> str:
        return _score(obj.metrics.get("wa"))

    @admin.display(description="macro-F1")
    def macro_f1_display(self, obj: ModelVersion) -> str:
        return _score(obj.metrics.get("macro_f1"))

    @admin.display(description="labels")
    def labels_display(self, obj: ModelVersion) -> str:
        full = ", ".join(obj.labels)
        if len(obj.labels) <= 4:
            return full
        return format_html('<span title="{}">{} labels</span>', full, len(obj.labels))  # the list is in the tooltip

    # ---- read-only detail fields -------------------------------------------------------
    @admin.display(description="test scores")
    def metrics_summary(self, obj: ModelVersion) -> str:
        m = obj.metrics or {}
        return format_html(
            "UA {} · WA {} · macro-F1 {}<br><span style='color:#666'>{} split; {}</span>",
            _score(m.get("ua")), _score(m.get("wa")), _score(m.get("macro_f1")),
            m.get("split", "unknown"), m.get("protocol") or "protocol not recorded",
        )

    @admin.display(description="confusion (rows = true)")
    def confusion_table(self, obj: ModelVersion) -> str:
        labels, matrix = list(obj.labels), obj.confusion or []
        if len(matrix) != len(labels) or not labels:
            return "—"
        head = format_html_join("", "<th>{}</th>", ((label,) for label in labels))
        body = format_html_join(
            "", "<tr><th>{}</th>{}</tr>",
            ((labels[i], format_html_join("", "<td style='text-align:right'>{}</td>", ((c,) for c in row)))
             for i, row in enumerate(matrix)),
        )
        return format_html("<table><thead><tr><th>true \\ predicted</th>{}</tr></thead><tbody>{}</tbody></table>", head, body)

    @admin.display(description="metrics (JSON)")
    def metrics_pretty(self, obj: ModelVersion) -> str:
        return pretty_json(obj.metrics)

    @admin.display(description="feature config")
    def feature_config_pretty(self, obj: ModelVersion) -> str:
        return pretty_json(obj.feature_config)

    @admin.display(description="model config")
    def model_config_pretty(self, obj: ModelVersion) -> str:
        return pretty_json(obj.model_config)

    @admin.display(description="inference (models averaged, trained speeds)")
    def inference_pretty(self, obj: ModelVersion) -> str:
        return pretty_json(obj.inference)

    @admin.display(description="lineage")
    def lineage_pretty(self, obj: ModelVersion) -> str:
        return pretty_json(obj.lineage)

    @admin.display(description="checkpoint file")
    def checkpoint_link(self, obj: ModelVersion) -> str:
        if not obj.pk or not obj.checkpoint:
            return "—"
        url = reverse("admin:recognition_modelversion_download", args=[obj.pk])
        return format_html('<a href="{}">{}</a> <span style="color:#666">(stored as {})</span>', url, download_name(obj), obj.checkpoint.name)

    # ---- activation --------------------------------------------------------------------
    @admin.action(description="Make the selected version active", permissions=["change"])
    def make_active(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        versions = list(queryset[:2])
        if len(versions) != 1:
            self.message_user(request, "Select exactly one version to make active.", messages.ERROR)
            return
        version = services.model_version_activate(version=versions[0])
        self.message_user(request, f"{version} is now the active model.", messages.SUCCESS)

    def activate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        version = get_object_or_404(ModelVersion, pk=object_id)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        services.model_version_activate(version=version)
        self.log_change(request, version, [{"changed": {"fields": ["is_active"]}}])
        self.message_user(request, f"{version} is now the active model.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:recognition_modelversion_change", args=[version.pk]))

    def download_view(self, request: HttpRequest, object_id: str) -> FileResponse:
        version = get_object_or_404(ModelVersion, pk=object_id)
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        return checkpoint_response(version)

    def get_urls(self):
        wrap = self.admin_site.admin_view  # staff login, like every admin page
        return [
            path("<path:object_id>/activate/", wrap(require_POST(self.activate_view)), name="recognition_modelversion_activate"),
            path("<path:object_id>/download/", wrap(self.download_view), name="recognition_modelversion_download"),
            *super().get_urls(),
        ]

    # ---- upload instead of the add form ------------------------------------------------
    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CheckpointUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            uploaded = form.cleaned_data["checkpoint"]
            name = form.cleaned_data["name"].strip() or uploaded.name.rsplit("/", 1)[-1].removesuffix(".pt")
            try:
                version = services.model_version_register_upload(
                    name=name, uploaded=uploaded, notes=form.cleaned_data["notes"], created_by=request.user
                )
            except CheckpointError as exc:
                form.add_error("checkpoint", f"Refused: {exc}")
            else:
                self.log_addition(request, version, [{"added": {}}])
                self.message_user(request, f"Registered {version} (sha256 {version.sha256[:12]}…).", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:recognition_modelversion_change", args=[version.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload a checkpoint",
            "opts": self.model._meta,
            "form": form,
            "media": self.media + form.media,
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.upload_template, context)

    # ---- deletion removes the file -----------------------------------------------------
    def delete_model(self, request: HttpRequest, obj: ModelVersion) -> None:
        services.model_version_delete(version=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for version in queryset:
            services.model_version_delete(version=version)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created by their owners on the profile page; staff can see and revoke them."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at")
    list_filter = ("created_at",)
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at")
    exclude = ("key_hash",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
