"""Admin for corpora, their utterances and training runs: read-only views.

Corpora are imported and runs are launched from the studio's pages (they start Celery
tasks), so the admin adds nothing and edits nothing here. It is where staff look into
what the pages summarise: every utterance with its label and speaker, a run's raw JSON,
its per-epoch table. Runs can be deleted (through the run service, which refuses a running
one and removes the run's files); corpora are not deleted here, because their audio and
the runs that used them need the corpora page's care.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from recognition.admin import pretty_json
from recognition.formatting import format_pct, format_score
from training.models import Corpus, EpochMetric, TrainingRun, Utterance
from training.services.runs import RunError, run_delete

__all__ = ["CorpusAdmin", "UtteranceAdmin", "TrainingRunAdmin"]


class ReadOnlyMixin:
    """View-only in the admin: no add, no change form (fields are shown read-only)."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _page_link(name: str, pk: int, text: str) -> str:
    try:
        return format_html('<a href="{}">{}</a>', reverse(name, args=[pk]), text)
    except NoReverseMatch:
        return "—"


@admin.register(Corpus)
class CorpusAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("name", "status", "format", "utterance_count", "uploaded_by", "created_at", "imported_at")
    list_filter = ("status", "format", "created_at")
    search_fields = ("name",)
    fields = (
        "name", "status", "format", "progress", "error", "root", "utterances_link", "uploaded_by", "created_at",
        "imported_at", "summary_pretty", "skipped_pretty",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Corpus]:
        return super().get_queryset(request).select_related("uploaded_by").annotate(n_utterances=Count("utterances"))

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="utterances", ordering="n_utterances")
    def utterance_count(self, obj: Corpus) -> int:
        return obj.n_utterances

    @admin.display(description="utterances")
    def utterances_link(self, obj: Corpus) -> str:
        url = reverse("admin:training_utterance_changelist") + f"?corpus__id__exact={obj.pk}"
        return format_html('<a href="{}">{} utterances</a>', url, obj.n_utterances)

    @admin.display(description="summary")
    def summary_pretty(self, obj: Corpus) -> str:
        return pretty_json(obj.summary)

    @admin.display(description="skipped files")
    def skipped_pretty(self, obj: Corpus) -> str:
        return pretty_json(obj.skipped)


@admin.register(Utterance)
class UtteranceAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("path", "corpus", "label", "source_label", "speaker", "duration", "sample_rate")
    list_filter = ("corpus", "label", "speaker")
    search_fields = ("path", "speaker", "source_label")
    list_select_related = ("corpus",)
    show_full_result_count = False  # corpora have tens of thousands of rows
    list_per_page = 200

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # an utterance belongs to its corpus import; it goes with the corpus


class EpochMetricInline(admin.TabularInline):
    model = EpochMetric
    fields = ("fold", "member", "epoch", "train_loss", "train_acc_score", "val_loss", "wa_score", "ua_score", "macro_f1_score",
              "lr", "duration", "is_best")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    # Scores written as every page writes them (recognition.formatting).
    @admin.display(description="train acc")
    def train_acc_score(self, obj: EpochMetric) -> str:
        return format_score(obj.train_acc)

    @admin.display(description="WA")
    def wa_score(self, obj: EpochMetric) -> str:
        return format_score(obj.wa)

    @admin.display(description="UA")
    def ua_score(self, obj: EpochMetric) -> str:
        return format_score(obj.ua)

    @admin.display(description="macro-F1")
    def macro_f1_score(self, obj: EpochMetric) -> str:
        return format_score(obj.macro_f1)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "name", "status", "progress_display", "best_ua_display", "protocol", "created_at", "created_by")
    list_display_links = ("id", "name")
    list_filter = ("status", "protocol", "created_at")
    search_fields = ("name",)
    list_select_related = ("created_by",)
    date_hierarchy = "created_at"
    inlines = [EpochMetricInline]
    fieldsets = (
        (None, {"fields": ("name", "page_link", "status", "phase", "progress_display", "error", "created_by", "created_at",
                           "started_at", "finished_at", "worker", "heartbeat_at", "celery_task_id")}),
        ("Data", {"fields": ("corpora", "label_mode", "label_mapping_pretty", "labels_pretty", "protocol", "folds")}),
        ("Recipe", {"fields": ("hyperparameters_pretty",)}),
        ("Result", {"fields": ("best_ua_display", "model_version_link", "test_metrics_pretty", "current_fold", "current_epoch")}),
        ("Report (JSON)", {"classes": ("collapse",), "fields": ("report_pretty",)}),
    )
    readonly_fields = (
        "name", "page_link", "status", "phase", "progress_display", "error", "created_by", "created_at", "started_at",
        "finished_at", "worker", "heartbeat_at", "celery_task_id", "corpora", "label_mode", "label_mapping_pretty",
        "labels_pretty", "protocol", "folds", "hyperparameters_pretty", "best_ua_display", "model_version_link",
        "test_metrics_pretty", "current_fold", "current_epoch", "report_pretty",
    )

    @admin.display(description="progress", ordering="progress")
    def progress_display(self, obj: TrainingRun) -> str:
        return format_pct(obj.progress or 0)

    @admin.display(description="best UA", ordering="best_ua")
    def best_ua_display(self, obj: TrainingRun) -> str:
        return format_score(obj.best_ua)

    @admin.display(description="run page")
    def page_link(self, obj: TrainingRun) -> str:
        return _page_link("runs:detail", obj.pk, f"/runs/{obj.pk}/")

    @admin.display(description="model version")
    def model_version_link(self, obj: TrainingRun) -> str:
        if obj.model_version_id is None:
            return "—"
        return _page_link("admin:recognition_modelversion_change", obj.model_version_id, str(obj.model_version))

    @admin.display(description="label mapping")
    def label_mapping_pretty(self, obj: TrainingRun) -> str:
        return pretty_json(obj.label_mapping)

    @admin.display(description="labels")
    def labels_pretty(self, obj: TrainingRun) -> str:
        return ", ".join(obj.labels) or "—"

    @admin.display(description="hyperparameters")
    def hyperparameters_pretty(self, obj: TrainingRun) -> str:
        return pretty_json(obj.hyperparameters)

    @admin.display(description="test metrics")
    def test_metrics_pretty(self, obj: TrainingRun) -> str:
        return pretty_json(obj.test_metrics)

    @admin.display(description="report")
    def report_pretty(self, obj: TrainingRun) -> str:
        return pretty_json(obj.report)

    # ---- deletion goes through the service (refuses running runs, removes files) ----------
    def has_delete_permission(self, request: HttpRequest, obj: TrainingRun | None = None) -> bool:
        if obj is not None and obj.status == TrainingRun.Status.RUNNING:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: TrainingRun) -> None:
        run_delete(run=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TrainingRun]) -> None:
        for run in queryset:
            try:
                run_delete(run=run)
            except RunError as exc:
                self.message_user(request, f"{run}: {exc}", messages.WARNING)
