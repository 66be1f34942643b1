from django.urls import path

from .views import corpora

app_name = "corpora"

urlpatterns = [
    path("", corpora.corpus_list, name="list"),
    path("upload/", corpora.corpus_upload, name="upload"),
    path("<int:pk>/", corpora.corpus_detail, name="detail"),
    path("<int:pk>/delete/", corpora.corpus_delete, name="delete"),
    path("utterances/<int:pk>/audio/", corpora.utterance_audio, name="audio"),
]
