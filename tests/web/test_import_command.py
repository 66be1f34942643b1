"""manage.py import_corpus: in place (files referenced where they are) or --copy into media."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.web.corpora_helpers import leftovers, nemo_folder, ravdess_folder, storage  # noqa: F401
from training.models import Corpus, Utterance
from training.services.datasets import corpus_root, corpus_scan

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_corpus", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_import_in_place_references_the_folder(storage, tmp_path):  # noqa: F811
    folder = ravdess_folder(tmp_path / "server" / "ravdess")
    (folder / "Actor_01" / "03-01-05-01-01-02-01.wav").write_bytes(b"corrupt, not audio " * 150)  # corrupt: skipped (fixed bytes: random ones can pass as MP3)
    output = run(str(folder), "--name", "RAVDESS (server)")
    corpus = Corpus.objects.get(name="RAVDESS (server)")
    assert corpus.status == Corpus.Status.READY and corpus.format == "ravdess"
    assert corpus.root == str(folder.resolve()) and corpus_root(corpus) == folder.resolve()
    assert corpus.utterances.count() == 16
    assert corpus.skipped == [{"path": "Actor_01/03-01-05-01-01-02-01.wav", "reason": corpus.skipped[0]["reason"]}]
    assert "16 utterances" in output and "1 files skipped" in output and "referenced in place" in output
    assert leftovers(storage) == []  # nothing copied, nothing staged
    assert all(u.path.is_file() for u in corpus_scan(corpus).utterances)


def test_import_with_copy_stores_the_files_in_media(storage, tmp_path):  # noqa: F811
    folder = ravdess_folder(tmp_path / "server", actors=1)
    output = run(str(folder), "--name", "copied", "--copy", "--format", "ravdess")
    corpus = Corpus.objects.get(name="copied")
    assert corpus.status == Corpus.Status.READY
    assert corpus.root == f"corpora/{corpus.pk}-copied" and "copied to" in output
    stored = corpus_root(corpus)
    assert stored.is_relative_to(Path(storage.MEDIA_ROOT)) and len(list(stored.rglob("*.wav"))) == 8
    assert leftovers(storage) == [stored]
    assert not (Path(storage.DATA_DIR) / "tmp" / f"corpus-{corpus.pk}").exists()


def test_import_of_nemo_detects_the_format(storage, tmp_path):  # noqa: F811
    folder = nemo_folder(tmp_path / "server" / "nemo")
    output = run(str(folder), "--name", "nEMO")
    corpus = Corpus.objects.get(name="nEMO")
    assert corpus.status == Corpus.Status.READY and corpus.format == "nemo"
    assert corpus.utterances.count() == 6 and corpus.utterances.filter(path="samples/WR0_sadness_2.ogg", label="sad", speaker="WR0").exists()
    assert "format nemo" in output and "6 utterances" in output and "1 files skipped" in output


def test_command_errors_are_clear(storage, tmp_path):  # noqa: F811
    with pytest.raises(CommandError, match="Not a folder"):
        run(str(tmp_path / "missing"), "--name", "x")
    with pytest.raises(CommandError, match="invalid choice"):
        run(str(tmp_path), "--name", "x", "--format", "wav")
    Corpus.objects.create(name="taken", status=Corpus.Status.READY)
    with pytest.raises(CommandError, match="already exists"):
        run(str(tmp_path), "--name", "taken")
    assert Corpus.objects.count() == 1


def test_failed_import_leaves_a_failed_corpus_and_no_copies(storage, tmp_path):  # noqa: F811
    (tmp_path / "empty" / "docs").mkdir(parents=True)
    (tmp_path / "empty" / "docs" / "readme.txt").write_text("no audio here")
    with pytest.raises(CommandError, match="No audio files"):
        run(str(tmp_path / "empty"), "--name", "empty", "--copy")
    corpus = Corpus.objects.get(name="empty")
    assert corpus.status == Corpus.Status.FAILED and "No audio files" in corpus.error
    assert not Utterance.objects.exists() and leftovers(storage) == []
