"""The import service on small synthetic corpora: zip and folder uploads, skipped files, failures."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from devsupport.synth import speech_like, write_wav
from tests.web.corpora_helpers import (  # noqa: F401
    EMOTIONS,
    NEMO_EMOTIONS,
    NEMO_HEADER,
    leftovers,
    nemo_folder,
    ravdess_folder,
    storage,
    upload,
    zip_bytes,
)
from training.models import Corpus, Utterance
from training.services.corpora import CorpusImportError, corpus_delete, corpus_upload_create
from training.services.corpus_import import corpus_import_execute, duration_histogram, work_dir
from training.services.datasets import corpus_root, corpus_scan

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer")]


def test_zip_import_creates_utterances_and_summary(storage, tmp_path, user):  # noqa: F811
    folder = ravdess_folder(tmp_path / "src")
    whole = (folder / "Actor_01" / "03-01-01-01-01-01-01.wav").read_bytes()
    extra = {
        "ravdess/README.txt": b"not audio",
        "ravdess/Actor_01/03-01-03-01-01-02-01.wav": whole[: len(whole) // 3],  # header promises more than it holds
        "ravdess/Actor_02/03-01-05-01-01-02-02.wav": b"garbage bytes, not a wav" * 10,  # corrupt audio
        "__MACOSX/._junk": b"finder litter",
    }
    corpus = corpus_upload_create(name="Ravdess mini", user=user, archive=upload(zip_bytes(folder, prefix="ravdess/", extra=extra)))
    assert corpus.status == Corpus.Status.IMPORTING and corpus.uploaded_by == user
    corpus = corpus_import_execute(corpus_id=corpus.pk)

    assert corpus.status == Corpus.Status.READY, corpus.error
    assert corpus.format == "ravdess" and corpus.progress == 1.0 and corpus.imported_at
    assert corpus.root == f"corpora/{corpus.pk}-ravdess-mini"
    rows = list(corpus.utterances.order_by("path"))
    assert len(rows) == 16
    first = rows[0]
    assert first.path == "ravdess/Actor_01/03-01-01-01-01-01-01.wav"
    assert (first.label, first.source_label, first.speaker, first.sample_rate) == ("neutral", "01", "Actor_01", 16000)
    stored = corpus_root(corpus) / first.path
    assert first.checksum == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert 0.5 < first.duration < 2.5
    assert {r.label for r in rows} == set(EMOTIONS.values())

    reasons = {s["path"]: s["reason"] for s in corpus.skipped}
    assert reasons["ravdess/README.txt"] == "not an audio file"
    assert "not a supported audio format" in reasons["ravdess/Actor_02/03-01-05-01-01-02-02.wav"]
    assert "truncated" in reasons["ravdess/Actor_01/03-01-03-01-01-02-01.wav"]
    totals = corpus.summary["totals"]
    assert totals == {"utterances": 16, "hours": pytest.approx(sum(r.duration for r in rows) / 3600, abs=1e-3),
                      "speakers": 2, "labels": 4, "skipped": 3}
    assert corpus.summary["labels"] == {"neutral": 4, "happy": 4, "sad": 4, "angry": 4}
    assert corpus.summary["speakers"] == {"Actor_01": 8, "Actor_02": 8}
    hist = corpus.summary["histogram"]
    assert sum(hist["counts"]) == 16 and len(hist["edges"]) == len(hist["counts"]) + 1

    # Training reads the rows back as an engine scan with real files.
    scan = corpus_scan(corpus)
    assert len(scan.utterances) == 16 and all(u.path.is_file() for u in scan.utterances)
    assert [p.name for p in (Path(storage.DATA_DIR) / "tmp").iterdir()] == []


def test_folder_upload_import(storage, tmp_path):  # noqa: F811
    folder = ravdess_folder(tmp_path / "src", actors=1)
    files = [(f"top/{p.relative_to(folder).as_posix()}", upload(p.read_bytes(), p.name)) for p in sorted(folder.rglob("*.wav"))]
    corpus = corpus_upload_create(name="folder", files=files)
    assert (work_dir(corpus.pk) / "upload" / "top" / "Actor_01").is_dir()
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    assert corpus.status == Corpus.Status.READY, corpus.error
    assert corpus.utterances.count() == 8
    assert corpus.utterances.filter(path="top/Actor_01/03-01-04-01-02-01-01.wav", label="sad").exists()
    assert leftovers(storage) == [Path(storage.MEDIA_ROOT) / "corpora" / f"{corpus.pk}-folder"]


def test_format_override_and_folder_layout(storage, tmp_path):  # noqa: F811
    for label in ("angry", "sad"):
        for i in range(3):
            write_wav(tmp_path / "src" / label / f"clip{i}.wav", speech_like(label, duration=0.5, seed=i))
    corpus = corpus_upload_create(name="folders", format="folders", archive=upload(zip_bytes(tmp_path / "src")))
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    assert corpus.status == Corpus.Status.READY and corpus.format == "folders"
    assert corpus.summary["labels"] == {"sad": 3, "angry": 3} or corpus.summary["labels"] == {"angry": 3, "sad": 3}
    assert set(corpus.utterances.values_list("speaker", flat=True)) == {""}
    assert corpus.summary["totals"]["speakers"] == 0


def test_zip_of_nemo_keeps_its_table_and_detects_the_format(storage, tmp_path):  # noqa: F811
    folder = nemo_folder(tmp_path / "src")
    corpus = corpus_upload_create(name="nEMO mini", archive=upload(zip_bytes(folder, prefix="nemo/")))
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    assert corpus.status == Corpus.Status.READY, corpus.error
    assert corpus.format == "nemo"
    rows = {r.path: (r.label, r.source_label, r.speaker, r.sample_rate) for r in corpus.utterances.all()}
    assert rows["nemo/samples/EB0_anger_1.ogg"] == ("angry", "anger", "EB0", 48000)
    assert len(rows) == 6 and {r[0] for r in rows.values()} == set(NEMO_EMOTIONS.values())
    assert corpus.summary["speakers"] == {"EB0": 3, "WR0": 3}
    # The table came through the unpacking and was read: its row without a file is reported.
    assert corpus.skipped == [{"path": "nemo/WR0_anger_9.wav", "reason": "listed in data.tsv (line 8) but the audio file is missing"}]
    assert (corpus_root(corpus) / "nemo" / "data.tsv").is_file()


def test_zip_of_nemo_with_a_corrupt_table_fails_clearly(storage, tmp_path):  # noqa: F811
    folder = nemo_folder(tmp_path / "src")
    (folder / "data.tsv").write_bytes(NEMO_HEADER.encode() + b"EB0_anger_1.wav\tanger\t\xff\xfe\t\tEB0\tmale\t23\n")
    corpus = corpus_upload_create(name="broken nEMO", archive=upload(zip_bytes(folder)))
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    assert corpus.status == Corpus.Status.FAILED
    assert corpus.error.startswith("data.tsv line 2 is not UTF-8 text")
    assert not Utterance.objects.exists() and leftovers(storage) == []


def test_import_with_only_unusable_files_fails_and_leaves_nothing(storage, tmp_path):  # noqa: F811
    # Fixed text, not random bytes: random data now and then looks like an MP3 frame to FFmpeg.
    extra = {f"Actor_01/03-01-0{i}-01-01-01-01.wav": b"this is not audio %d; " % i * 100 for i in (3, 4, 5)}
    corpus = corpus_upload_create(name="broken", archive=upload(zip_bytes(tmp_path, extra=extra)))
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    assert corpus.status == Corpus.Status.FAILED
    assert "No usable audio files in the upload" in corpus.error and "Skipped: 3 × This is not a supported audio format" in corpus.error
    assert not Utterance.objects.exists() and corpus.root == ""
    assert leftovers(storage) == []


def test_unrecognised_layout_fails_with_the_engine_message(storage, tmp_path):  # noqa: F811
    write_wav(tmp_path / "src" / "a" / "b" / "c" / "whatever.wav", speech_like("sad", duration=0.5))
    corpus = corpus_upload_create(name="odd", archive=upload(zip_bytes(tmp_path / "src")))
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    assert corpus.status == Corpus.Status.FAILED
    assert "Could not recognise the corpus layout of the upload" in corpus.error
    assert str(storage.DATA_DIR) not in corpus.error  # no server paths in messages for uploads
    assert leftovers(storage) == []


def test_name_must_be_unique_and_format_known(storage, tmp_path):  # noqa: F811
    Corpus.objects.create(name="Taken", status=Corpus.Status.READY)
    with pytest.raises(CorpusImportError, match="already exists") as info:
        corpus_upload_create(name="taken", archive=upload(b"PK"))
    assert info.value.field == "name"
    with pytest.raises(CorpusImportError, match="Unknown corpus format"):
        corpus_upload_create(name="new", format="mp3", archive=upload(b"PK"))
    assert leftovers(storage) == []


def test_task_ignores_a_corpus_that_is_not_importing(storage):  # noqa: F811
    corpus = Corpus.objects.create(name="done", status=Corpus.Status.READY)
    assert corpus_import_execute(corpus_id=corpus.pk).status == Corpus.Status.READY
    assert corpus_import_execute(corpus_id=10**6) is None


def test_missing_upload_fails_clearly(storage):  # noqa: F811
    corpus = Corpus.objects.create(name="lost")
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    assert corpus.status == Corpus.Status.FAILED and "missing" in corpus.error


def test_delete_removes_rows_and_files_but_never_in_place_folders(storage, tmp_path, django_capture_on_commit_callbacks):  # noqa: F811
    corpus = corpus_upload_create(name="gone", archive=upload(zip_bytes(ravdess_folder(tmp_path / "src", actors=1))))
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    folder = corpus_root(corpus)
    assert folder.is_dir()
    with django_capture_on_commit_callbacks(execute=True):
        corpus_delete(corpus=corpus)
    assert not Corpus.objects.exists() and not Utterance.objects.exists()
    assert not folder.exists()

    in_place = Corpus.objects.create(name="server", status=Corpus.Status.READY, root=str(tmp_path / "src"))
    with django_capture_on_commit_callbacks(execute=True):
        corpus_delete(corpus=in_place)
    assert (tmp_path / "src" / "Actor_01").is_dir()


def test_duration_histogram_bins():
    hist = duration_histogram([0.8, 1.0, 1.05, 1.4])
    assert hist["width"] == 0.05
    assert hist["edges"][0] == 0.8 and hist["edges"][-1] == pytest.approx(1.45)
    assert sum(hist["counts"]) == 4 and hist["counts"][0] == 1
    wide = duration_histogram([1.0, 300.0])
    assert len(wide["counts"]) <= 30
    assert duration_histogram([]) == {"edges": [], "counts": [], "width": 0.0}


def test_import_task_goes_to_the_default_queue():
    from ser_site.celery import app

    route = app.amqp.router.route({}, "training.tasks.corpus_import", args=(1,), kwargs={})
    assert route["queue"].name == "default"  # not "training", which only GPU workers may consume
