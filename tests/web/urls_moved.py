"""A URL configuration with the recognition views under ``/v2/``: the upload guard follows it."""

from django.urls import include, path

urlpatterns = [path("v2/", include("recognition.urls"))]
