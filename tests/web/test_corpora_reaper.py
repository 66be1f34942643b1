"""An import whose worker died: its heartbeat goes stale, the reaper fails it and removes
what it left; imports that are alive or still waiting for a worker are left alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.web.corpora_helpers import leftovers, ravdess_folder, storage, upload, zip_bytes  # noqa: F401
from training.models import Corpus, Utterance
from training.services.corpora import corpus_upload_create
from training.services.corpus_import import (
    corpora_reap_stale,
    corpus_import_execute,
    media_dir,
    work_dir,
)
from training.tasks import reap_stale

pytestmark = pytest.mark.django_db


def test_a_real_import_stamps_its_heartbeat(storage, tmp_path):  # noqa: F811
    corpus = corpus_upload_create(name="beat", archive=upload(zip_bytes(ravdess_folder(tmp_path / "src"))))
    assert corpus.heartbeat_at is None  # waiting for a worker: nothing to reap
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    assert corpus.status == Corpus.Status.READY and corpus.heartbeat_at is not None


def test_stale_import_is_failed_and_its_files_removed(storage, tmp_path, client, user):  # noqa: F811
    old = timezone.now() - timedelta(seconds=600)
    dead = corpus_upload_create(name="dead", archive=upload(zip_bytes(ravdess_folder(tmp_path / "src"))))
    assert work_dir(dead.pk).exists()
    media_dir(dead).mkdir(parents=True)  # a move into media that the dead worker had started
    (media_dir(dead) / "half.wav").write_bytes(b"x")
    Utterance.objects.create(corpus=dead, path="half.wav", label="sad", duration=1.0, checksum="0" * 64)
    Corpus.objects.filter(pk=dead.pk).update(heartbeat_at=old)
    alive = Corpus.objects.create(name="alive", heartbeat_at=timezone.now())
    waiting = Corpus.objects.create(name="waiting")

    assert corpora_reap_stale(timeout=60) == [dead.pk]
    dead.refresh_from_db()
    assert dead.status == Corpus.Status.FAILED and "worker" in dead.error
    assert not Utterance.objects.filter(corpus=dead).exists()
    assert leftovers(storage) == []
    assert Corpus.objects.get(pk=alive.pk).status == Corpus.Status.IMPORTING
    assert Corpus.objects.get(pk=waiting.pk).status == Corpus.Status.IMPORTING
    assert corpora_reap_stale(timeout=60) == []  # once only


def test_the_beat_task_reaps_runs_and_imports(storage, settings):  # noqa: F811
    settings.SER_HEARTBEAT_TIMEOUT = 1
    corpus = Corpus.objects.create(name="x", heartbeat_at=timezone.now() - timedelta(seconds=30))
    assert reap_stale() == {"runs": [], "corpora": [corpus.pk], "requeued": {"runs": [], "corpora": []}}
