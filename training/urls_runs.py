from django.urls import path

from .views import annotations, exports, runs

app_name = "runs"

urlpatterns = [
    path("", runs.run_list, name="list"),
    path("new/", runs.run_new, name="new"),
    path("compare/", runs.run_compare, name="compare"),
    path("<int:pk>/", runs.run_detail, name="detail"),
    path("<int:pk>/cancel/", runs.run_cancel, name="cancel"),
    path("<int:pk>/resume/", runs.run_resume, name="resume"),
    path("<int:pk>/delete/", runs.run_delete, name="delete"),
    path("<int:pk>/notes/", annotations.run_annotate_view, name="annotate"),
    path("<int:pk>/metrics.csv", exports.run_metrics_csv, name="metrics_csv"),
    path("<int:pk>/confusion-<str:which>.csv", exports.run_confusion_csv, name="confusion_csv"),
]
