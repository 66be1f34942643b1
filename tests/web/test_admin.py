"""The admin: model versions (upload through the engine's loader, activation, download,
deletion with the file, read-only checkpoint fields) and the read-only training pages."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from django.conf import settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from recognition.models import ModelVersion
from tests.web.registry_helpers import LABELS, PROTOCOL, register, write_checkpoint
from training.models import Corpus, EpochMetric, TrainingRun, Utterance

CHANGELIST = "admin:recognition_modelversion_changelist"


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path, one_thread):
    """Media in a private folder (and one torch thread for the tiny models)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


def stored_files() -> list[Path]:
    return sorted(p for p in (Path(settings.MEDIA_ROOT) / "models").glob("*") if p.is_file())


def temp_leftovers() -> list[Path]:
    """Copies of uploaded checkpoints left in the temporary folder (there must be none)."""
    return sorted((Path(settings.DATA_DIR) / "tmp").rglob("*.pt"))


def upload(admin_client, path: Path, *, name: str = "", notes: str = "", filename: str | None = None):
    data = SimpleUploadedFile(filename or path.name, path.read_bytes(), content_type="application/octet-stream")
    return admin_client.post(reverse("admin:recognition_modelversion_add"), {"name": name, "notes": notes, "checkpoint": data})


# ---- access --------------------------------------------------------------------------------

@pytest.mark.django_db
def test_admin_requires_staff(client, auth_client, tmp_path):
    version = register(tmp_path)
    urls = [reverse("admin:index"), reverse(CHANGELIST), reverse("admin:recognition_modelversion_download", args=[version.pk])]
    for c in (client, auth_client):
        for url in urls:
            response = c.get(url)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    response = auth_client.post(reverse("admin:recognition_modelversion_activate", args=[version.pk]))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    version.refresh_from_db()
    assert not version.is_active


# ---- list, change page ---------------------------------------------------------------------

@pytest.mark.django_db
def test_changelist_columns_and_filters(admin_client, tmp_path):
    register(tmp_path, "alpha", activate=True)
    register(tmp_path, "beta", seed=1)
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    for text in ("alpha", "beta", "0.639", "0.714", "0.611", "neutral, happy, sad", "By is active", "By name", "By created at"):
        assert text in html, text
    for query, shown in (("?is_active__exact=1", ["alpha"]), ("?q=beta", ["beta"]), ("?name=beta", ["beta"]), ("", ["beta", "alpha"])):
        response = admin_client.get(reverse(CHANGELIST) + query)
        assert [v.name for v in response.context["cl"].result_list] == shown, query


@pytest.mark.django_db
def test_only_notes_are_editable(admin_client, tmp_path):
    version = register(tmp_path)
    url = reverse("admin:recognition_modelversion_change", args=[version.pk])
    html = admin_client.get(url).content.decode()
    assert 'name="notes"' in html and 'name="sha256"' not in html and 'name="labels"' not in html
    assert version.sha256 in html and PROTOCOL in html and "Make active" in html and "Download checkpoint" in html
    response = admin_client.post(url, {"notes": "good on happy", "sha256": "0" * 64, "labels": '["x"]', "is_active": "on"})
    assert response.status_code == 302
    before = version.sha256
    version.refresh_from_db()
    assert version.notes == "good on happy"
    assert version.sha256 == before and version.labels == LABELS and not version.is_active


# ---- activation ----------------------------------------------------------------------------

@pytest.mark.django_db
def test_make_active_button(admin_client, tmp_path):
    first = register(tmp_path, "first", activate=True)
    second = register(tmp_path, "second", seed=1)
    url = reverse("admin:recognition_modelversion_activate", args=[second.pk])
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:recognition_modelversion_change", args=[second.pk])
    assert "is now the active model" in response.content.decode()
    assert list(ModelVersion.objects.filter(is_active=True)) == [second]
    first.refresh_from_db()
    assert not first.is_active


@pytest.mark.django_db
def test_make_active_action_takes_exactly_one(admin_client, tmp_path):
    first = register(tmp_path, "first", activate=True)
    second = register(tmp_path, "second", seed=1)
    third = register(tmp_path, "third", seed=2)
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "make_active", ACTION_CHECKBOX_NAME: [second.pk, third.pk]}, follow=True
    )
    assert "Select exactly one version" in response.content.decode()
    assert list(ModelVersion.objects.filter(is_active=True)) == [first]
    response = admin_client.post(reverse(CHANGELIST), {"action": "make_active", ACTION_CHECKBOX_NAME: [third.pk]}, follow=True)
    assert "is now the active model" in response.content.decode()
    assert list(ModelVersion.objects.filter(is_active=True)) == [third]


# ---- upload --------------------------------------------------------------------------------

@pytest.mark.django_db
def test_upload_a_valid_checkpoint(admin_client, admin_user, tmp_path):
    path = write_checkpoint(tmp_path / "mine.pt")
    page = admin_client.get(reverse("admin:recognition_modelversion_add")).content.decode()
    assert 'enctype="multipart/form-data"' in page and 'name="checkpoint"' in page
    response = upload(admin_client, path, notes="from my laptop")
    version = ModelVersion.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:recognition_modelversion_change", args=[version.pk])
    assert (version.name, version.version, version.notes, version.created_by) == ("mine", 1, "from my laptop", admin_user)
    assert version.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert version.labels == LABELS and version.metrics["protocol"] == PROTOCOL
    assert version.lineage["source"] == "uploaded checkpoint"
    assert stored_files() == [Path(settings.MEDIA_ROOT) / version.checkpoint.name]
    # A second upload under the same name is version 2.
    upload(admin_client, write_checkpoint(tmp_path / "other.pt", seed=1), name="mine")
    assert sorted(ModelVersion.objects.values_list("version", flat=True)) == [1, 2]
    assert temp_leftovers() == []


def _tampered_labels(tmp_path: Path) -> Path:
    """A real checkpoint whose label list no longer matches its classifier."""
    path = write_checkpoint(tmp_path / "labels.pt")
    payload = torch.load(path, weights_only=True)
    payload["labels"] = ["neutral", "happy"]
    torch.save(payload, path)
    return path


def _truncated(tmp_path: Path) -> Path:
    path = write_checkpoint(tmp_path / "cut.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _flipped_weight(tmp_path: Path) -> Path:
    """One weight overwritten with NaN: loads as a torch file, but is not a usable model."""
    path = write_checkpoint(tmp_path / "nan.pt")
    payload = torch.load(path, weights_only=True)
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    payload["state_dict"][key].view(-1)[0] = float("nan")
    torch.save(payload, path)
    return path


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_tampered_labels, "labels that do not match its classifier"),
        (_truncated, "not a readable checkpoint"),
        (_flipped_weight, "non-finite weights"),
    ],
)
def test_upload_of_a_tampered_checkpoint_is_refused_and_leaves_nothing(admin_client, tmp_path, make, message):
    response = upload(admin_client, make(tmp_path), name="bad", filename="bad-upload.pt")
    assert response.status_code == 200
    form = response.context["form"]
    assert any(message in error for error in form.errors["checkpoint"]), form.errors
    assert "Refused:" in response.content.decode() and message in response.content.decode()
    assert form.errors["checkpoint"][0].startswith("Refused: bad-upload.pt ")  # names the user's file
    assert ModelVersion.objects.count() == 0
    assert stored_files() == [] and temp_leftovers() == []


@pytest.mark.django_db
def test_a_checkpoint_already_registered_is_refused_naming_its_version(admin_client, tmp_path):
    path = write_checkpoint(tmp_path / "mine.pt")
    upload(admin_client, path, notes="first")
    first = ModelVersion.objects.get()
    response = upload(admin_client, path, name="again", filename="copy-of-mine.pt")  # same bytes, other names
    assert response.status_code == 200
    (error,) = response.context["form"].errors["checkpoint"]
    assert error == (f"Refused: copy-of-mine.pt is already registered as mine v1 (id {first.pk}); nothing was stored. "
                     "Open that version, or change its notes there.")
    assert list(ModelVersion.objects.all()) == [first]
    assert stored_files() == [Path(settings.MEDIA_ROOT) / first.checkpoint.name] and temp_leftovers() == []


@pytest.mark.django_db
def test_upload_needs_a_pt_file(admin_client, tmp_path):
    path = write_checkpoint(tmp_path / "model.pt")
    response = upload(admin_client, path, filename="model.bin")
    assert response.status_code == 200 and "Choose a .pt checkpoint" in response.content.decode()
    assert ModelVersion.objects.count() == 0 and stored_files() == []


@pytest.mark.django_db
def test_non_staff_cannot_upload(auth_client, tmp_path):
    path = write_checkpoint(tmp_path / "model.pt")
    response = upload(auth_client, path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert ModelVersion.objects.count() == 0


# ---- download and delete -------------------------------------------------------------------

@pytest.mark.django_db
def test_admin_download(admin_client, tmp_path):
    version = register(tmp_path, "tiny")
    response = admin_client.get(reverse("admin:recognition_modelversion_download", args=[version.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="tiny-v1.pt"'
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == version.sha256
    assert response["X-Checkpoint-SHA256"] == version.sha256


@pytest.mark.django_db
def test_deleting_removes_the_file(admin_client, tmp_path, django_capture_on_commit_callbacks):
    one = register(tmp_path, "one")
    two = register(tmp_path, "two", seed=1)
    three = register(tmp_path, "three", seed=2)
    assert len(stored_files()) == 3
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:recognition_modelversion_delete", args=[one.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not ModelVersion.objects.filter(pk=one.pk).exists()
    assert sorted(p.name for p in stored_files()) == sorted(Path(v.checkpoint.name).name for v in (two, three))
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse(CHANGELIST), {"action": "delete_selected", ACTION_CHECKBOX_NAME: [two.pk, three.pk], "post": "yes"})
    assert ModelVersion.objects.count() == 0 and stored_files() == []


# ---- training pages ------------------------------------------------------------------------

@pytest.fixture
def corpus_with_runs(db, admin_user):
    corpus = Corpus.objects.create(name="synth", format="folders", status=Corpus.Status.READY, uploaded_by=admin_user,
                                   summary={"labels": {"happy": 2, "sad": 1}})
    Utterance.objects.bulk_create([
        Utterance(corpus=corpus, path=f"spk{s}_{label}.wav", label=label, speaker=f"spk{s}", duration=1.0, checksum="0" * 64)
        for s, label in ((1, "happy"), (2, "happy"), (2, "sad"))
    ])
    other = Corpus.objects.create(name="other", format="tess", status=Corpus.Status.FAILED, error="no audio")
    Utterance.objects.create(corpus=other, path="x.wav", label="angry", speaker="OAF", duration=1.0, checksum="1" * 64)
    done = TrainingRun.objects.create(
        name="finished run", status=TrainingRun.Status.SUCCEEDED, progress=1.0, best_ua=0.7321, created_by=admin_user,
        labels=["happy", "sad"], hyperparameters={"train": {"epochs": 2, "lr": 0.003}}, test_metrics={"ua": 0.7},
    )
    done.corpora.add(corpus)
    for epoch in (1, 2):
        EpochMetric.objects.create(run=done, epoch=epoch, train_loss=1.0 / epoch, train_acc=0.5, val_loss=1.1, wa=0.6,
                                   ua=0.61 + epoch / 100, macro_f1=0.5, lr=0.001, duration=3.0, is_best=epoch == 2)
    running = TrainingRun.objects.create(name="busy run", status=TrainingRun.Status.RUNNING, progress=0.4)
    return corpus, other, done, running


@pytest.mark.django_db
def test_corpus_and_utterance_admin(admin_client, corpus_with_runs):
    corpus, other, _, _ = corpus_with_runs
    html = admin_client.get(reverse("admin:training_corpus_changelist")).content.decode()
    for text in ("synth", "other", "ready", "failed", "folders", "tess", "By status"):
        assert text in html, text
    assert '<td class="field-utterance_count">3</td>' in html and '<td class="field-utterance_count">1</td>' in html
    page = admin_client.get(reverse("admin:training_corpus_change", args=[corpus.pk])).content.decode()
    assert f"?corpus__id__exact={corpus.pk}" in page and "3 utterances" in page and "&quot;happy&quot;: 2" in page
    assert admin_client.get(reverse("admin:training_corpus_add")).status_code == 403
    url = reverse("admin:training_utterance_changelist")
    html = admin_client.get(url + f"?corpus__id__exact={corpus.pk}").content.decode()
    assert "spk1_happy.wav" in html and "x.wav" not in html
    html = admin_client.get(url + "?label=sad").content.decode()
    assert "spk2_sad.wav" in html and "spk1_happy.wav" not in html
    html = admin_client.get(url + "?speaker=OAF").content.decode()
    assert "x.wav" in html and "spk2_sad.wav" not in html


@pytest.mark.django_db
def test_training_run_admin(admin_client, corpus_with_runs, django_capture_on_commit_callbacks):
    _, _, done, running = corpus_with_runs
    html = admin_client.get(reverse("admin:training_trainingrun_changelist")).content.decode()
    for text in ("finished run", "busy run", "100.0%", "40.0%", "0.732", "By status", "By protocol"):
        assert text in html, text
    html = admin_client.get(reverse("admin:training_trainingrun_change", args=[done.pk])).content.decode()
    assert f'href="/runs/{done.pk}/"' in html and "&quot;lr&quot;: 0.003" in html
    assert html.count("field-ua") >= 2 and "0.63" in html  # the epoch inline, read-only
    assert 'name="name"' not in html and 'name="epochs-0-ua"' not in html
    # A running run cannot be deleted; a finished one goes through the run service.
    assert admin_client.post(reverse("admin:training_trainingrun_delete", args=[running.pk]), {"post": "yes"}).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:training_trainingrun_delete", args=[done.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert list(TrainingRun.objects.values_list("pk", flat=True)) == [running.pk]
    assert EpochMetric.objects.count() == 0
