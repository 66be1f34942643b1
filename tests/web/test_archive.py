"""Safe unpacking: hostile archives and uploads are refused with a clear message and leave nothing behind.

Decided behaviour: what can be seen in the request (unsafe paths, links, declared sizes, file
counts, non-zips, oversized uploads) is refused before anything is stored: no Corpus row,
no files. What only shows while unpacking (bytes beyond the headers, corrupt data) ends as
a ``failed`` Corpus with the reason, no Utterance rows and no files.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import PurePosixPath

import pytest

from tests.web.corpora_helpers import (  # noqa: F401
    entries_zip,
    leftovers,
    ravdess_folder,
    storage,
    symlink_zip,
    upload,
    zip_bytes,
)
from training.models import Corpus, Utterance
from training.services import archive
from training.services.archive import (
    ArchiveError,
    archive_extract,
    archive_inspect,
    safe_relative_path,
)
from training.services.corpora import CorpusImportError, corpus_upload_create
from training.services.corpus_import import corpus_import_execute, work_dir

LIMITS = {"max_files": 100, "max_bytes": 10**7}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../x.wav", "climb out"),
        ("a/../../x.wav", "climb out"),
        ("..\\..\\x.wav", "climb out"),
        ("/etc/x.wav", "absolute"),
        ("C:\\x.wav", "absolute"),
        ("a\x01b.wav", "control characters"),
        ("./", "names no file"),
    ],
)
def test_unsafe_relative_paths_are_refused(name, message):
    with pytest.raises(ArchiveError, match=message):
        safe_relative_path(name)


def test_safe_relative_path_normalises():
    assert safe_relative_path("a/./b//c.wav") == PurePosixPath("a/b/c.wav")
    assert safe_relative_path("Actor_01\\x.wav") == PurePosixPath("Actor_01/x.wav")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (entries_zip(["ok.wav", "../x.wav"]), "climb out"),
        (entries_zip(["/abs/x.wav"]), "absolute"),
        (symlink_zip(), "symbolic link"),
        (entries_zip(["a.wav", "a.wav"]), "twice"),
        (entries_zip(["dir/"]), "no files"),
        (b"this is not a zip at all", "not a readable zip"),
        (b"", "not a readable zip"),
    ],
)
def test_inspect_refuses_hostile_archives(data, message):
    with pytest.raises(ArchiveError, match=message):
        archive_inspect(io.BytesIO(data), **LIMITS)


def test_inspect_limits_file_count_and_declared_size():
    with pytest.raises(ArchiveError, match="more than 3 files"):
        archive_inspect(io.BytesIO(entries_zip([f"{i}.wav" for i in range(5)])), max_files=3, max_bytes=10**6)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.wav", b"\0" * 200_000)  # compresses to a few hundred bytes
    assert len(bomb.getvalue()) < 2_000
    with pytest.raises(ArchiveError, match="unpacks to more than"):
        archive_inspect(io.BytesIO(bomb.getvalue()), max_files=10, max_bytes=100_000)


def test_extract_counts_the_bytes_actually_written(tmp_path, monkeypatch):
    """A reader that believed understated headers would still be stopped by the written-bytes count."""
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.wav", b"\0" * 50_000)
        z.writestr("b.wav", b"\0" * 50_000)
    real_inspect = archive.archive_inspect
    monkeypatch.setattr(archive, "archive_inspect", lambda source, **kw: real_inspect(source, max_files=10, max_bytes=10**9))
    with pytest.raises(ArchiveError, match="more than its headers declare"):
        archive_extract(path, tmp_path / "out", max_files=10, max_bytes=60_000)


def test_extract_writes_only_inside_the_target(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(entries_zip(["x/y/z.wav", "top.wav"], b"data"))
    written = archive_extract(path, tmp_path / "out", **LIMITS)
    assert sorted(p.as_posix() for p in written) == ["top.wav", "x/y/z.wav"]
    assert (tmp_path / "out" / "x" / "y" / "z.wav").read_bytes() == b"data"


# --- hostile uploads through the service: refused before anything is stored ---------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (entries_zip(["Actor_01/../../x.wav"]), "climb out"),
        (entries_zip(["/tmp/x.wav"]), "absolute"),
        (symlink_zip(), "symbolic link"),
        (b"PK\x03\x04 garbage that only starts like a zip", "not a readable zip"),
    ],
)
def test_hostile_upload_is_refused_and_nothing_is_stored(storage, data, message):  # noqa: F811
    with pytest.raises(CorpusImportError, match=message):
        corpus_upload_create(name="evil", archive=upload(data))
    assert not Corpus.objects.exists()
    assert leftovers(storage) == []


@pytest.mark.django_db
def test_zip_bomb_by_count_and_by_declared_size(storage):  # noqa: F811
    storage.SER_MAX_ARCHIVE_FILES = 4
    with pytest.raises(CorpusImportError, match="more than 4 files"):
        corpus_upload_create(name="many", archive=upload(entries_zip([f"{i}.wav" for i in range(10)])))
    storage.SER_MAX_ARCHIVE_FILES = 100
    storage.SER_MAX_UNZIPPED_BYTES = 100_000
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Actor_01/03-01-05-01-01-01-01.wav", b"\0" * 5_000_000)
    with pytest.raises(CorpusImportError, match="unpacks to more than"):
        corpus_upload_create(name="bomb", archive=upload(bomb.getvalue()))
    assert not Corpus.objects.exists()
    assert leftovers(storage) == []


@pytest.mark.django_db
def test_oversized_upload_is_refused_before_storing(storage):  # noqa: F811
    storage.SER_MAX_UPLOAD_BYTES = 1_000
    with pytest.raises(CorpusImportError, match="limit is"):
        corpus_upload_create(name="big", archive=upload(entries_zip(["a.wav"], b"\1" * 5_000)))
    assert not Corpus.objects.exists()
    assert leftovers(storage) == []


@pytest.mark.django_db
def test_archive_whose_headers_lie_fails_the_import_and_leaves_nothing(storage, tmp_path):  # noqa: F811
    """The central directory declares 100 bytes for a 2 MB member: accepted in the request (within
    the limit), stopped while unpacking; the corpus is failed, without rows or files."""
    storage.SER_MAX_UNZIPPED_BYTES = 1_000_000
    data = bytearray(zip_bytes(ravdess_folder(tmp_path / "c", actors=1, statements=1),
                               extra={"Actor_01/03-01-05-01-02-01-01.wav": b"\0" * 2_000_000}))
    # Rewrite the declared size of the big member (the last central-directory record).
    record = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, record + 24, 100)
    corpus = corpus_upload_create(name="liar", archive=upload(bytes(data)))
    assert (work_dir(corpus.pk) / "upload.zip").is_file()
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    assert corpus.status == Corpus.Status.FAILED
    assert "corrupt" in corpus.error, corpus.error
    assert not Utterance.objects.exists()
    assert leftovers(storage) == []


@pytest.mark.django_db
def test_folder_upload_paths_are_checked(storage):  # noqa: F811
    one = upload(b"RIFF", name="x.wav")
    for path, message in [("../x.wav", "climb out"), ("/abs/x.wav", "absolute")]:
        with pytest.raises(CorpusImportError, match=message):
            corpus_upload_create(name="folder", files=[(path, one)])
    with pytest.raises(CorpusImportError, match="twice"):
        corpus_upload_create(name="folder", files=[("a/x.wav", one), ("a//x.wav", one)])
    storage.SER_MAX_ARCHIVE_FILES = 1
    with pytest.raises(CorpusImportError, match="more than 1 files"):
        corpus_upload_create(name="folder", files=[("a.wav", one), ("b.wav", one)])
    assert not Corpus.objects.exists()
    assert leftovers(storage) == []
