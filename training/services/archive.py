"""Safe unpacking of uploaded corpora: zip archives and browser folder uploads.

Nothing here trusts the client. Every path must be relative and stay inside the target
folder (no ``..``, no absolute or drive paths, no control characters); symbolic links and
other special entries are refused; the number of files and the unpacked size are limited
both by what the archive declares and by the bytes actually written. Violations raise
:class:`ArchiveError` with a sentence for the user; the caller removes what was written.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from django.template.defaultfilters import filesizeformat

__all__ = ["ArchiveError", "ArchiveEntry", "safe_relative_path", "archive_inspect", "archive_extract", "paths_check"]

_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
ProgressFn = Callable[[int, int], None]


class ArchiveError(ValueError):
    """The upload cannot be unpacked safely; the message is for the user."""


@dataclass(frozen=True)
class ArchiveEntry:
    """One regular file of an archive: its zip record and its checked relative path."""

    info: zipfile.ZipInfo
    path: PurePosixPath


def safe_relative_path(name: str) -> PurePosixPath:
    """``name`` as a clean relative path, or ArchiveError when it could land outside the target.

    Backslashes count as separators (zips made on Windows use them), so ``..\\x`` is caught too.
    """
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise ArchiveError(f"Unsafe path {name!r}: it contains control characters.")
    text = name.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise ArchiveError(f"Unsafe path {name!r}: absolute paths are not allowed.")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"Unsafe path {name!r}: '..' would climb out of the corpus folder.")
    if not parts:
        raise ArchiveError(f"Unsafe path {name!r}: it names no file.")
    return PurePosixPath(*parts)


def _open_zip(source: Path | BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise ArchiveError(f"The file is not a readable zip archive ({exc}).") from exc


def archive_inspect(source: Path | BinaryIO, *, max_files: int, max_bytes: int) -> list[ArchiveEntry]:
    """Check every record of a zip archive without extracting anything.

    Returns the regular files in archive order. Raises ArchiveError for a non-zip or corrupt
    file, an unsafe path, a symbolic link or special file, an encrypted entry, a path that
    appears twice, more than ``max_files`` files or a declared unpacked size over ``max_bytes``.
    """
    with _open_zip(source) as archive:
        infos = archive.infolist()
    entries: list[ArchiveEntry] = []
    seen: set[PurePosixPath] = set()
    declared = 0
    for info in infos:
        path = safe_relative_path(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(f"The archive contains a symbolic link ({info.filename!r}); links are not allowed.")
        if info.is_dir() or stat.S_ISDIR(mode):
            continue
        file_type = stat.S_IFMT(mode)  # 0 when the zip was made without Unix modes
        if file_type and file_type != stat.S_IFREG:
            raise ArchiveError(f"The archive contains a special file ({info.filename!r}); only regular files are allowed.")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"The archive entry {info.filename!r} is encrypted; upload an unencrypted zip.")
        if path in seen:
            raise ArchiveError(f"The archive contains {path.as_posix()!r} twice.")
        seen.add(path)
        entries.append(ArchiveEntry(info, path))
        if len(entries) > max_files:
            raise ArchiveError(f"The archive holds more than {max_files} files (the limit).")
        declared += info.file_size
        if declared > max_bytes:
            raise ArchiveError(
                f"The archive unpacks to more than {filesizeformat(max_bytes)} (the limit); split the corpus or import it "
                "from a server path with the import_corpus command."
            )
    if not entries:
        raise ArchiveError("The archive holds no files.")
    return entries


def archive_extract(
    source: Path, dest: Path, *, max_files: int, max_bytes: int, progress: ProgressFn | None = None
) -> list[PurePosixPath]:
    """Unpack the zip ``source`` into the empty or new folder ``dest`` after :func:`archive_inspect`.

    The bytes actually written are counted against ``max_bytes`` as they are written, so an
    archive whose headers understate its sizes is stopped too. Returns the written paths.
    Raises ArchiveError; ``dest`` may then hold a partial tree the caller must remove.
    """
    entries = archive_inspect(source, max_files=max_files, max_bytes=max_bytes)
    dest.mkdir(parents=True, exist_ok=True)
    real_dest = dest.resolve()
    written = 0
    with _open_zip(source) as archive:
        for index, entry in enumerate(entries, start=1):
            target = dest.joinpath(*entry.path.parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                # Belt and braces after the path check: the real location must be inside dest.
                if not target.parent.resolve().is_relative_to(real_dest):
                    raise ArchiveError(f"Unsafe path {entry.info.filename!r}: it leads outside the corpus folder.")
                with archive.open(entry.info) as src, open(target, "xb") as out:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise ArchiveError(
                                f"The archive unpacks to more than {filesizeformat(max_bytes)} (the limit), more than its "
                                "headers declare."
                            )
                        out.write(chunk)
            except ArchiveError:
                raise
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
                raise ArchiveError(f"The archive is corrupt at {entry.path.as_posix()!r} ({exc}).") from exc
            except (FileExistsError, NotADirectoryError) as exc:
                raise ArchiveError(f"The archive has conflicting entries at {entry.path.as_posix()!r}.") from exc
            except OSError as exc:
                raise ArchiveError(f"Could not unpack {entry.path.as_posix()!r}: {exc.strerror or exc}.") from exc
            if progress is not None:
                progress(index, len(entries))
    return [e.path for e in entries]


def paths_check(paths: Iterable[str], *, max_files: int) -> list[PurePosixPath]:
    """The relative paths of a folder upload, checked like archive entries (safe, unique, not too many)."""
    checked: list[PurePosixPath] = []
    seen: set[PurePosixPath] = set()
    for raw in paths:
        path = safe_relative_path(raw)
        if path in seen:
            raise ArchiveError(f"The upload contains {path.as_posix()!r} twice.")
        seen.add(path)
        checked.append(path)
        if len(checked) > max_files:
            raise ArchiveError(f"The folder holds more than {max_files} files (the limit).")
    if not checked:
        raise ArchiveError("The folder holds no files.")
    return checked
