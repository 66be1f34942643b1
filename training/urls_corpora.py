from django.urls import path

from .views import corpora

app_name = "corpora"

urlpatterns = [
    path("", corpora.corpus_list, name="list"),
]
