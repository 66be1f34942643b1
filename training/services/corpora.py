"""Corpora: upload, import from a server path, delete.

An upload is checked in the request (name, format, size, every archive path) before
anything is stored; then it is written to ``DATA_DIR/tmp/corpus-<id>/`` and the Celery task
runs :func:`~training.services.corpus_import.corpus_import_execute`: it unpacks into that
staging folder, reads it with the engine, checks every file, and only then moves the
folder to ``MEDIA_ROOT/corpora/<id>-<slug>/`` and commits the rows in one transaction. Any
failure leaves a ``failed`` Corpus with the reason, no Utterance rows and no files.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat

from training.engine.corpora import FORMATS
from training.models import Corpus
from training.selectors.corpora import corpus_blocking_runs

from .archive import ArchiveError, archive_inspect, paths_check
from .corpus_import import (
    UNPACK_END,
    CorpusImportError,
    ImportProgress,
    ProgressFn,
    corpus_import_execute,
    import_fail,
    import_heartbeat,
    import_tree,
    media_dir,
    staging_root,
    work_dir,
)
from .queue import corpus_import_enqueue

log = logging.getLogger(__name__)

__all__ = [
    "CorpusImportError",
    "corpus_delete",
    "corpus_import_execute",
    "corpus_import_path",
    "corpus_request_limit",
    "corpus_upload_create",
]


def corpus_request_limit() -> int:
    """The largest upload request body that can hold an allowed corpus upload, in bytes.

    The files may total ``SER_MAX_UPLOAD_BYTES``; on top of that comes room for the form
    fields and the multipart framing: 1 MiB, plus 1 KiB per file (a folder upload sends one
    part, with its own headers, per file). The ASGI guard refuses a body over this before
    Django reads it; the view's byte-counting UploadLimit enforces the file limit itself.
    """
    return settings.SER_MAX_UPLOAD_BYTES + 1024**2 + 1024 * settings.SER_MAX_ARCHIVE_FILES


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise CorpusImportError("Give the corpus a name.", field="name")
    if len(name) > Corpus._meta.get_field("name").max_length:
        raise CorpusImportError("The name is too long (100 characters at most).", field="name")
    if Corpus.objects.filter(name__iexact=name).exists():
        raise CorpusImportError(f"A corpus named {name!r} already exists; choose another name.", field="name")
    return name


def _check_format(format: str) -> str:
    format = (format or "").strip().lower()
    if format and format not in FORMATS:
        raise CorpusImportError(
            f"Unknown corpus format {format!r}; choose one of {', '.join(FORMATS)} or automatic.", field="format"
        )
    return format


def _save(upload: UploadedFile, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as out:
        for chunk in upload.chunks():
            out.write(chunk)


def corpus_upload_create(
    *,
    name: str,
    format: str = "",
    user: AbstractBaseUser | None = None,
    archive: UploadedFile | None = None,
    files: Sequence[tuple[str, UploadedFile]] = (),
) -> Corpus:
    """Check an upload (a zip, or a folder as (relative path, file) pairs), store it for the
    import and create the Corpus in ``importing`` state; the import task is queued on commit.

    Raises CorpusImportError before anything is stored when the name is taken, the format is
    unknown, the upload is too large, not a zip, or holds an unsafe path or too many files.
    """
    name, format = _check_name(name), _check_format(format)
    if (archive is None) == (not files):
        raise CorpusImportError("Upload either a zip archive or a folder.")
    size = archive.size if archive is not None else sum(f.size or 0 for _, f in files)
    if size > settings.SER_MAX_UPLOAD_BYTES:
        raise CorpusImportError(
            f"The upload is {filesizeformat(size)}; the limit is {filesizeformat(settings.SER_MAX_UPLOAD_BYTES)}. "
            "Import large corpora from a server path with the import_corpus command."
        )
    limits = {"max_files": settings.SER_MAX_ARCHIVE_FILES, "max_bytes": settings.SER_MAX_UNZIPPED_BYTES}
    try:
        if archive is not None:
            archive.seek(0)
            archive_inspect(archive, **limits)
            archive.seek(0)
        else:
            paths = paths_check([p for p, _ in files], max_files=limits["max_files"])
    except ArchiveError as exc:
        raise CorpusImportError(str(exc)) from exc

    pending = staging_root() / f"upload-{uuid.uuid4().hex}"
    moved: Path | None = None
    try:
        if archive is not None:
            _save(archive, pending / "upload.zip")
        else:
            for path, (_, upload) in zip(paths, files, strict=True):
                try:
                    _save(upload, pending.joinpath("upload", *path.parts))
                except (FileExistsError, NotADirectoryError) as exc:
                    raise CorpusImportError(f"The folder has conflicting paths at {path.as_posix()!r}.") from exc
        with transaction.atomic():
            corpus = Corpus.objects.create(name=name, format=format, uploaded_by=user)
            moved = work_dir(corpus.pk)
            shutil.rmtree(moved, ignore_errors=True)
            pending.rename(moved)
            transaction.on_commit(lambda: _enqueue(corpus.pk))
    except BaseException as exc:
        # Nothing of a refused or failed upload stays on disk (the row was rolled back).
        shutil.rmtree(pending, ignore_errors=True)
        if moved is not None:
            shutil.rmtree(moved, ignore_errors=True)
        if isinstance(exc, IntegrityError):
            raise CorpusImportError(f"A corpus named {name!r} already exists; choose another name.", field="name") from exc
        raise
    return corpus


def _enqueue(corpus_id: int) -> None:
    try:
        corpus_import_enqueue(corpus_id)
    except Exception as exc:  # noqa: BLE001 — an unreachable broker must not leave it "importing" forever
        log.exception("could not queue the import of corpus %s", corpus_id)
        import_fail(corpus_id, f"Could not queue the import (is the task queue running?): {exc}", notify=True)
        shutil.rmtree(work_dir(corpus_id), ignore_errors=True)


def corpus_import_path(
    *,
    path: str | os.PathLike,
    name: str,
    format: str = "",
    copy: bool = False,
    user: AbstractBaseUser | None = None,
    progress: ProgressFn | None = None,
) -> Corpus:
    """Import a corpus from a folder on the server, synchronously (the import_corpus command).

    Without ``copy`` the files stay where they are (``Corpus.root`` is the absolute path);
    with it they are copied into media first. Raises CorpusImportError: before creating
    anything for a bad folder, name or format; after marking the corpus failed when the
    import itself fails.
    """
    source = Path(path).expanduser()
    if not source.is_dir():
        raise CorpusImportError(f"Not a folder: {source}")
    source = source.resolve()
    name, format = _check_name(name), _check_format(format)
    try:
        corpus = Corpus.objects.create(name=name, format=format, uploaded_by=user)
    except IntegrityError as exc:
        raise CorpusImportError(f"A corpus named {name!r} already exists; choose another name.", field="name") from exc
    reporter = ImportProgress(corpus.pk, notify=False, callback=progress)
    work = work_dir(corpus.pk)
    with import_heartbeat(corpus.pk):
        try:
            if not copy:
                return import_tree(corpus, source, reporter, destination=None, strict=False, shown=str(source))
            tree = work / "corpus"
            _copy_tree(source, tree, reporter.stage(0.0, UNPACK_END, "copying"))
            return import_tree(corpus, tree, reporter, destination=media_dir(corpus), strict=True, shown=str(source))
        except Exception as exc:
            message = str(exc) if isinstance(exc, CorpusImportError) else f"The import failed: {exc}"
            import_fail(corpus.pk, message, notify=False)
            raise CorpusImportError(message) from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _copy_tree(source: Path, dest: Path, step: Callable[[int, int], None]) -> None:
    """Copy every visible regular file below ``source`` (symlinked files by content)."""
    files = []
    for folder, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        files.extend(Path(folder) / n for n in sorted(names) if not n.startswith("."))
    files = [f for f in files if f.is_file()]
    for index, file in enumerate(files, start=1):
        target = dest / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
        step(index, len(files))


def _owned_folder(corpus: Corpus) -> Path | None:
    """The corpus' folder when the app owns it (under MEDIA_ROOT/corpora); never a server-path import."""
    if not corpus.root or Path(corpus.root).is_absolute():
        return None
    base = (Path(settings.MEDIA_ROOT) / "corpora").resolve()
    folder = (Path(settings.MEDIA_ROOT) / corpus.root).resolve()
    return folder if folder.is_relative_to(base) and folder != base else None


def corpus_delete(*, corpus: Corpus) -> None:
    """Delete a corpus, its utterances and (for uploaded or copied corpora) its files.

    Refused while it is being imported and while a queued, running or resumable run uses it.
    Files of a corpus imported in place from a server path are never touched.
    """
    if corpus.status == Corpus.Status.IMPORTING:
        raise CorpusImportError(f"{corpus.name!r} is still being imported; delete it once it is ready or has failed.")
    runs = list(corpus_blocking_runs(corpus).values_list("pk", "name"))
    if runs:
        names = ", ".join(f"#{pk} {name}" for pk, name in runs)
        raise CorpusImportError(
            f"{corpus.name!r} is used by run(s) {names} that are queued, running or interrupted; "
            "cancel or delete them first."
        )
    folder = _owned_folder(corpus)
    with transaction.atomic():
        corpus.delete()
        if folder is not None:
            transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
