from django.urls import path

from .views import runs

app_name = "runs"

urlpatterns = [
    path("", runs.run_list, name="list"),
    path("new/", runs.run_new, name="new"),
    path("compare/", runs.run_compare, name="compare"),
    path("<int:pk>/", runs.run_detail, name="detail"),
    path("<int:pk>/cancel/", runs.run_cancel, name="cancel"),
    path("<int:pk>/resume/", runs.run_resume, name="resume"),
    path("<int:pk>/delete/", runs.run_delete, name="delete"),
]
