"""Corpus pages: login required, upload (zip and folder) then import, detail, audio, delete."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from tests.web.corpora_helpers import (  # noqa: F401
    folder_post_data,
    leftovers,
    ravdess_folder,
    storage,
    upload,
    zip_bytes,
)
from training.models import Corpus, TrainingRun
from training.services.datasets import corpus_root
from training.tasks.corpora import corpus_import

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer")]
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def ready(storage, tmp_path, auth_client, django_capture_on_commit_callbacks):  # noqa: F811
    """A corpus uploaded through the page and imported by the task, run in-process."""
    data = zip_bytes(ravdess_folder(tmp_path / "src"), extra={"notes.txt": b"hello"})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = auth_client.post(reverse("corpora:upload"), {"name": "Mini", "format": "", "archive": upload(data)})
    corpus = Corpus.objects.get(name="Mini")
    assert response.status_code == 302 and response.url == reverse("corpora:detail", args=[corpus.pk])
    assert len(callbacks) == 1  # the import is queued only once the row is committed
    corpus_import(corpus.pk)
    corpus.refresh_from_db()
    assert corpus.status == Corpus.Status.READY, corpus.error
    return corpus


@pytest.mark.parametrize("name", ["list", "upload"])
def test_anonymous_users_are_sent_to_login(client, name):
    response = client.get(reverse(f"corpora:{name}"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_anonymous_users_cannot_reach_corpus_pages_or_audio(client):
    corpus = Corpus.objects.create(name="c", status=Corpus.Status.READY)
    for url in (reverse("corpora:detail", args=[corpus.pk]), reverse("corpora:audio", args=[1])):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
    response = client.post(reverse("corpora:delete", args=[corpus.pk]))
    assert response.status_code == 302 and Corpus.objects.filter(pk=corpus.pk).exists()


def test_list_and_upload_pages_render(auth_client):
    Corpus.objects.create(name="Importing one", progress=0.4)
    Corpus.objects.create(name="Broken one", status=Corpus.Status.FAILED, error="The archive is corrupt")
    page = auth_client.get(reverse("corpora:list")).content.decode()
    assert "Importing one" in page and 'badge importing' in page and "width: 40%" in page
    assert "The archive is corrupt" in page and reverse("corpora:upload") in page
    page = auth_client.get(reverse("corpora:upload")).content.decode()
    assert 'webkitdirectory' in page and 'name="archive"' in page and '<option value="ravdess">' in page
    assert 'js/corpus.js' in page


def test_upload_import_and_detail_page(ready, auth_client, storage):  # noqa: F811
    page = auth_client.get(reverse("corpora:detail", args=[ready.pk])).content.decode()
    for element in ("chart-labels", "chart-speakers", "chart-durations", "plotly.min.js", "corpus-data", "<audio"):
        assert element in page
    assert "notes.txt" in page and "not an audio file" in page
    data = json.loads(page.split('<script id="corpus-data" type="application/json">')[1].split("</script>")[0])
    assert data["status"] == "ready" and data["summary"]["labels"] == {"neutral": 4, "happy": 4, "sad": 4, "angry": 4}
    listing = auth_client.get(reverse("corpora:list")).content.decode()
    assert "badge ready" in listing and ">16<" in listing


def test_audio_view_streams_the_stored_file_by_id(ready, auth_client):
    utterance = ready.utterances.order_by("path").first()
    response = auth_client.get(reverse("corpora:audio", args=[utterance.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    assert b"".join(response.streaming_content) == (corpus_root(ready) / utterance.path).read_bytes()
    assert auth_client.get(reverse("corpora:audio", args=[10**6])).status_code == 404
    Corpus.objects.filter(pk=ready.pk).update(status=Corpus.Status.FAILED)
    assert auth_client.get(reverse("corpora:audio", args=[utterance.pk])).status_code == 404


def test_json_upload_answers_with_the_detail_url(storage, tmp_path, auth_client):  # noqa: F811
    data = zip_bytes(ravdess_folder(tmp_path / "src", actors=1, statements=1))
    response = auth_client.post(reverse("corpora:upload"), {"name": "js", "archive": upload(data)}, **JSON)
    corpus = Corpus.objects.get(name="js")
    assert response.status_code == 201
    assert response.json() == {"ok": True, "corpus": corpus.pk, "url": reverse("corpora:detail", args=[corpus.pk])}
    page = auth_client.get(reverse("corpora:detail", args=[corpus.pk])).content.decode()
    assert 'id="import-progress"' in page and f"/ws/corpora/{corpus.pk}/import/" in page


def test_folder_upload_through_the_view(storage, tmp_path, auth_client):  # noqa: F811
    folder = ravdess_folder(tmp_path / "src", actors=1)
    (folder / "Actor_01" / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    response = auth_client.post(reverse("corpora:upload"), {"name": "Folder", **folder_post_data(folder)}, **JSON)
    assert response.status_code == 201, response.content
    corpus = Corpus.objects.get(name="Folder")
    corpus_import(corpus.pk)
    corpus.refresh_from_db()
    assert corpus.status == Corpus.Status.READY, corpus.error
    assert corpus.utterances.count() == 8
    assert corpus.utterances.filter(path="mycorpus/Actor_01/03-01-05-01-01-01-01.wav", label="angry").exists()
    assert corpus.skipped == [{"path": "mycorpus/Actor_01/cover.jpg", "reason": "not an audio file"}]


def test_folder_upload_with_unsafe_or_missing_paths_is_refused(storage, tmp_path, auth_client):  # noqa: F811
    folder = ravdess_folder(tmp_path / "src", actors=1, statements=1)
    data = folder_post_data(folder)
    data["paths"] = upload(json.dumps(["../../evil.wav", "a.wav", "b.wav", "c.wav"]).encode(), "paths.json")
    response = auth_client.post(reverse("corpora:upload"), {"name": "bad", **data}, **JSON)
    assert response.status_code == 400 and "climb out" in response.json()["error"]
    data = folder_post_data(folder)
    del data["paths"]
    response = auth_client.post(reverse("corpora:upload"), {"name": "bad", **data}, **JSON)
    assert response.status_code == 400 and "relative paths" in response.json()["error"]
    assert not Corpus.objects.exists() and leftovers(storage) == []


@pytest.mark.parametrize(
    ("archive", "message"),
    [(b"definitely not a zip", "not a readable zip"), (None, "Upload either a zip archive or a folder")],
)
def test_bad_uploads_get_a_clear_error(storage, auth_client, archive, message):  # noqa: F811
    data = {"name": "x"} | ({"archive": upload(archive, "x.zip")} if archive else {})
    response = auth_client.post(reverse("corpora:upload"), data, **JSON)
    assert response.status_code == 400 and message in response.json()["error"]
    response = auth_client.post(reverse("corpora:upload"), data | ({"archive": upload(archive, "x.zip")} if archive else {}))
    assert response.status_code == 400 and message in response.content.decode()
    assert not Corpus.objects.exists() and leftovers(storage) == []


def test_taken_name_is_reported_on_the_name_field(storage, auth_client):  # noqa: F811
    Corpus.objects.create(name="RAVDESS", status=Corpus.Status.READY)
    response = auth_client.post(reverse("corpora:upload"), {"name": "ravdess", "archive": upload(b"PK")}, **JSON)
    assert response.status_code == 400
    assert "already exists" in response.json()["errors"]["name"][0]
    assert Corpus.objects.count() == 1 and leftovers(storage) == []


def test_oversized_uploads_are_refused_with_413(storage, auth_client):  # noqa: F811
    storage.SER_MAX_UPLOAD_BYTES = 2_000
    body = upload(b"\1" * 20_000)  # within the Content-Length allowance: stopped while the body is parsed
    response = auth_client.post(reverse("corpora:upload"), {"name": "big", "archive": body}, **JSON)
    assert response.status_code == 413 and "limit" in response.json()["error"]
    storage.SER_MAX_ARCHIVE_FILES = 1
    body = upload(b"\1" * (1024**2 + 10_000))  # over corpus_request_limit (the ASGI guard's 413); the view counts too
    response = auth_client.post(reverse("corpora:upload"), {"name": "big", "archive": body}, **JSON)
    assert response.status_code == 413 and "import_corpus" in response.json()["error"]
    assert not Corpus.objects.exists() and leftovers(storage) == []


@pytest.mark.parametrize("length", ["abc", "-5", "1e9"])
def test_a_malformed_content_length_is_a_400_not_a_500(storage, auth_client, length):  # noqa: F811
    response = auth_client.post(reverse("corpora:upload"), {"name": "x", "archive": upload(b"PK")}, CONTENT_LENGTH=length, **JSON)
    assert response.status_code == 400 and not Corpus.objects.exists() and leftovers(storage) == []


def test_upload_checks_csrf(storage, user, tmp_path):  # noqa: F811
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse("corpora:upload"), {"name": "x", "archive": upload(b"PK")})
    assert response.status_code == 403 and not Corpus.objects.exists()


def test_delete_rules(ready, auth_client, django_capture_on_commit_callbacks):
    url = reverse("corpora:delete", args=[ready.pk])
    assert auth_client.get(url).status_code == 405
    run = TrainingRun.objects.create(name="busy run", status=TrainingRun.Status.RUNNING)
    run.corpora.add(ready)
    response = auth_client.post(url, follow=True)
    assert "busy run" in response.content.decode() and Corpus.objects.filter(pk=ready.pk).exists()
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.SUCCEEDED)

    Corpus.objects.filter(pk=ready.pk).update(status=Corpus.Status.IMPORTING)
    response = auth_client.post(url, follow=True)
    assert "still being imported" in response.content.decode() and Corpus.objects.filter(pk=ready.pk).exists()
    Corpus.objects.filter(pk=ready.pk).update(status=Corpus.Status.READY)

    folder = corpus_root(ready)
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post(url)
    assert response.status_code == 302 and response.url == reverse("corpora:list")
    assert not Corpus.objects.filter(pk=ready.pk).exists() and not folder.exists()
    assert TrainingRun.objects.filter(pk=run.pk).exists()


def test_only_the_uploader_or_staff_may_delete(ready, client, admin_client, django_user_model):
    other = django_user_model.objects.create_user(username="bob", password="bob-password-123")
    client.force_login(other)
    page = client.get(reverse("corpora:detail", args=[ready.pk]))
    assert page.status_code == 200 and reverse("corpora:delete", args=[ready.pk]).encode() not in page.content
    assert client.post(reverse("corpora:delete", args=[ready.pk])).status_code == 403
    assert Corpus.objects.filter(pk=ready.pk).exists()
    assert admin_client.post(reverse("corpora:delete", args=[ready.pk])).status_code == 302
    assert not Corpus.objects.filter(pk=ready.pk).exists()
