"""The import pipeline: unpack, read with the engine, check every file, move, commit.

:func:`corpus_import_execute` is the Celery task's body for uploads; :func:`import_tree` is
shared with server-path imports (``training.services.corpora.corpus_import_path``). The
staging folder is ``DATA_DIR/tmp/corpus-<id>/``; a finished import leaves nothing there.
Every file is decoded once, as training will decode it, so that only audio the trainer can
read becomes an Utterance; anything else is listed in ``Corpus.skipped`` with the reason.
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from recognition.engine import SAMPLE_RATE
from recognition.engine.audio import AudioError, decode_audio, native_sample_rate
from ser_site.channels_util import group_send
from training.engine.corpora import CorpusError, CorpusScan, Skipped, scan_corpus
from training.models import Corpus, Utterance
from training.selectors.corpora import corpus_import_state

from .archive import ArchiveError, archive_extract
from .groups import import_group
from .heartbeat import Heartbeat

log = logging.getLogger(__name__)

__all__ = [
    "CorpusImportError",
    "ImportProgress",
    "audio_check",
    "corpus_import_execute",
    "corpus_summary",
    "duration_histogram",
    "import_fail",
    "import_tree",
    "media_dir",
    "staging_root",
    "work_dir",
]

SKIPPED_STORED = 500  # Corpus.skipped keeps this many entries; summary["skipped"] has the full count
UNPACK_END, CHECK_END = 0.3, 0.95  # progress shares: unpack/copy, then decode every file, then commit
ProgressFn = Callable[[int, int, str], None]
_BIN_WIDTHS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class CorpusImportError(ValueError):
    """A corpus cannot be uploaded, imported or deleted as asked; the message is for the user.

    ``field`` names the upload-form field the message belongs to (None: the whole form).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    sample_rate: int
    sha256: str


def staging_root() -> Path:
    """Where uploads wait and imports are staged; nothing stays here after an import."""
    return Path(settings.DATA_DIR) / "tmp"


def work_dir(corpus_id: int) -> Path:
    return staging_root() / f"corpus-{corpus_id}"


def media_dir(corpus: Corpus) -> Path:
    return Path(settings.MEDIA_ROOT) / "corpora" / f"{corpus.pk}-{slugify(corpus.name) or 'corpus'}"


class ImportProgress:
    """Writes import progress to the Corpus row and, for uploads, to the ``import-<id>`` group.

    Updates are sent at most once per percent (and at every phase change and phase end), so a
    corpus of 100 000 files does not flood the database or the websocket.
    """

    def __init__(self, corpus_id: int, *, notify: bool, callback: ProgressFn | None = None) -> None:
        self.corpus_id, self.notify, self.callback = corpus_id, notify, callback
        self.last, self.phase = -1.0, ""

    def __call__(self, fraction: float, *, phase: str, done: int = 0, total: int = 0) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction < self.last + 0.01 and phase == self.phase and done < total:
            return
        self.last, self.phase = fraction, phase
        Corpus.objects.filter(pk=self.corpus_id).update(progress=fraction)
        if self.notify:
            group_send(import_group(self.corpus_id), {
                "type": "import.progress", "corpus": self.corpus_id, "progress": round(fraction, 4),
                "done": done, "total": total, "phase": phase,
            })
        if self.callback is not None:
            self.callback(done, total, phase)

    def stage(self, start: float, end: float, phase: str) -> Callable[[int, int], None]:
        return lambda done, total: self(start + (end - start) * done / max(total, 1), phase=phase, done=done, total=total)

    def status(self) -> None:
        if not self.notify:
            return
        state = corpus_import_state(self.corpus_id)
        if state is not None:
            group_send(import_group(self.corpus_id), {"type": "import.status", **state})


def import_fail(corpus_id: int, message: str, *, notify: bool) -> None:
    with transaction.atomic():
        Utterance.objects.filter(corpus_id=corpus_id).delete()
        Corpus.objects.filter(pk=corpus_id).update(status=Corpus.Status.FAILED, error=message)
    ImportProgress(corpus_id, notify=notify).status()


def audio_check(path: Path) -> AudioInfo:
    """Decode ``path`` completely (as training will) and hash it.

    Raises:
        AudioError: the file is not audio the trainer can use (corrupt, truncated, empty, too long).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    waveform = decode_audio(path, sample_rate=SAMPLE_RATE)
    try:
        rate = native_sample_rate(path)
    except AudioError:  # the file decoded; the native rate is only informative
        rate = 0
    return AudioInfo(duration=waveform.size / SAMPLE_RATE, sample_rate=rate, sha256=digest.hexdigest())


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _check_utterance(path: Path, root: Path, real_root: Path, strict: bool) -> AudioInfo | str:
    """The file's audio facts, or why it is skipped. ``strict``: the real file must be inside the root."""
    relative = _relative(path, root)
    if PurePosixPath(relative).is_absolute() or (strict and not path.resolve().is_relative_to(real_root)):
        return "the file is outside the corpus folder"
    if len(relative) > Utterance._meta.get_field("path").max_length:
        return "the path is longer than 500 characters"
    try:
        return audio_check(path)
    except AudioError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    except Exception as exc:  # noqa: BLE001 — one hostile file must never sink the whole import
        return f"unreadable audio ({type(exc).__name__}: {exc})"


def _nothing_usable(shown: str, skipped: list[Skipped]) -> str:
    reasons: dict[str, int] = {}
    for item in skipped:
        reasons[item.reason] = reasons.get(item.reason, 0) + 1
    top = "; ".join(f"{n} × {reason.rstrip('.')}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
    return f"No usable audio files in {shown}." + (f" Skipped: {top}." if top else "")


def import_tree(
    corpus: Corpus, tree: Path, progress: ImportProgress, *, destination: Path | None, strict: bool, shown: str
) -> Corpus:
    """Read ``tree``, check every file, move it to ``destination`` (None: keep in place) and commit."""
    progress(UNPACK_END, phase="reading the corpus")
    try:
        scan = scan_corpus(tree, format=corpus.format or None, name=corpus.name, probe_durations=False)
    except CorpusError as exc:
        raise CorpusImportError(str(exc).replace(str(tree), shown)) from exc
    real_root = tree.resolve()
    skipped, checked = list(scan.skipped), []
    step = progress.stage(UNPACK_END, CHECK_END, "checking audio")
    for index, utterance in enumerate(scan.utterances, start=1):
        result = _check_utterance(utterance.path, tree, real_root, strict)
        if isinstance(result, str):
            skipped.append(Skipped(utterance.path, result))
        else:
            checked.append((replace(utterance, duration=result.duration), result))
        step(index, len(scan.utterances))
    if not checked:
        raise CorpusImportError(_nothing_usable(shown, skipped))
    skipped.sort(key=lambda s: (s.path, s.reason))
    final = CorpusScan(corpus.name, scan.format, tree, [u for u, _ in checked], skipped)
    rows = [
        Utterance(
            corpus_id=corpus.pk, path=_relative(u.path, tree), label=u.label, source_label=u.source_label[:60],
            speaker=(u.speaker or "")[:100], duration=info.duration, sample_rate=info.sample_rate, checksum=info.sha256,
        )
        for u, info in checked
    ]
    skipped_rows = [{"path": _relative(s.path, tree), "reason": s.reason} for s in skipped[:SKIPPED_STORED]]
    progress(CHECK_END, phase="saving")
    root_value = str(real_root)
    if destination is not None:
        shutil.rmtree(destination, ignore_errors=True)  # left by an attempt that died before its commit
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tree), str(destination))
        root_value = destination.relative_to(settings.MEDIA_ROOT).as_posix()
    try:
        with transaction.atomic():
            Utterance.objects.filter(corpus_id=corpus.pk).delete()
            Utterance.objects.bulk_create(rows, batch_size=500)
            updated = Corpus.objects.filter(pk=corpus.pk, status=Corpus.Status.IMPORTING).update(
                status=Corpus.Status.READY, format=scan.format, root=root_value, summary=corpus_summary(final),
                skipped=skipped_rows, progress=1.0, error="", imported_at=timezone.now(),
            )
            if updated != 1:
                raise CorpusImportError("The corpus was deleted or changed while it was being imported.")
    except BaseException:
        if destination is not None:
            shutil.rmtree(destination, ignore_errors=True)
        raise
    progress.status()
    corpus.refresh_from_db()
    return corpus


def duration_histogram(durations: Sequence[float], *, max_bins: int = 30) -> dict[str, Any]:
    """Counts of durations in bins of a round width (0.05 s ... 10 min): ``edges`` has one more entry than ``counts``."""
    if not durations:
        return {"edges": [], "counts": [], "width": 0.0}
    def index(d: float, w: float) -> int:
        return math.floor(d / w + 1e-9)  # 1.4 / 0.05 is 27.999...: count it in the bin that starts at 1.4

    low, high = min(durations), max(durations)
    width = next((w for w in _BIN_WIDTHS if index(high, w) - index(low, w) < max_bins), _BIN_WIDTHS[-1])
    first = index(low, width)
    bins = index(high, width) - first + 1
    counts = [0] * bins
    for d in durations:
        counts[min(max(index(d, width) - first, 0), bins - 1)] += 1
    return {"edges": [round((first + i) * width, 3) for i in range(bins + 1)], "counts": counts, "width": width}


def corpus_summary(scan: CorpusScan) -> dict[str, Any]:
    """What the corpus page draws: the engine's summary plus totals and a duration histogram."""
    summary = scan.summary()
    summary.pop("root", None)
    summary["histogram"] = duration_histogram([u.duration for u in scan.utterances])
    summary["totals"] = {
        "utterances": len(scan.utterances),
        "hours": round(summary["total_duration"] / 3600, 3),
        "speakers": len(summary["speakers"]),
        "labels": len(summary["labels"]),
        "skipped": len(scan.skipped),
    }
    return summary


def corpus_import_execute(*, corpus_id: int) -> Corpus | None:
    """Import an uploaded corpus (the Celery task's body). Does nothing unless it is ``importing``.

    Never raises for bad data: the Corpus ends ``ready`` or ``failed`` with the reason.
    """
    corpus = Corpus.objects.filter(pk=corpus_id).first()
    if corpus is None or corpus.status != Corpus.Status.IMPORTING:
        log.info("corpus %s: nothing to import (%s)", corpus_id, corpus and corpus.status)
        return corpus
    work = work_dir(corpus_id)
    progress = ImportProgress(corpus_id, notify=True)
    progress.status()
    with import_heartbeat(corpus_id):
        try:
            zip_path, folder = work / "upload.zip", work / "upload"
            if zip_path.is_file():
                tree = work / "corpus"
                shutil.rmtree(tree, ignore_errors=True)  # a redelivered task starts over
                archive_extract(
                    zip_path, tree, max_files=settings.SER_MAX_ARCHIVE_FILES, max_bytes=settings.SER_MAX_UNZIPPED_BYTES,
                    progress=progress.stage(0.0, UNPACK_END, "unpacking"),
                )
            elif folder.is_dir():
                tree = folder
            else:
                raise CorpusImportError("The uploaded files are missing; upload the corpus again.")
            return import_tree(corpus, tree, progress, destination=media_dir(corpus), strict=True, shown="the upload")
        except (CorpusImportError, ArchiveError) as exc:
            import_fail(corpus_id, str(exc), notify=True)
        except Exception as exc:  # noqa: BLE001 — recorded on the corpus; the task itself has nothing to retry
            log.exception("corpus %s: import failed", corpus_id)
            import_fail(corpus_id, f"The import failed unexpectedly: {exc}", notify=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return Corpus.objects.filter(pk=corpus_id).first()


def import_heartbeat(corpus_id: int) -> Heartbeat:
    """The heartbeat of a running import (use as a context manager); the first beat is now."""

    def beat() -> None:
        Corpus.objects.filter(pk=corpus_id, status=Corpus.Status.IMPORTING).update(heartbeat_at=timezone.now())

    beat()
    return Heartbeat(f"import-{corpus_id}", settings.SER_HEARTBEAT_SECONDS, beat)


def corpora_reap_stale(*, timeout: float | None = None) -> list[int]:
    """Fail imports whose task stopped stamping its heartbeat (the worker was killed or the
    machine restarted), and remove what they left: the staged upload and any files already
    moved into media. Imports still waiting for a worker (no heartbeat yet) are left alone."""
    timeout = settings.SER_HEARTBEAT_TIMEOUT if timeout is None else timeout
    limit = timezone.now() - timedelta(seconds=timeout)
    stale = Corpus.objects.filter(status=Corpus.Status.IMPORTING, heartbeat_at__lt=limit)
    failed = []
    for corpus in stale:
        changed = Corpus.objects.filter(pk=corpus.pk, status=Corpus.Status.IMPORTING, heartbeat_at__lt=limit).update(
            status=Corpus.Status.FAILED,
            error="The import stopped because its worker was stopped or died. Delete this corpus and upload it again.",
        )
        if not changed:
            continue
        Utterance.objects.filter(corpus_id=corpus.pk).delete()
        shutil.rmtree(work_dir(corpus.pk), ignore_errors=True)
        shutil.rmtree(media_dir(corpus), ignore_errors=True)
        ImportProgress(corpus.pk, notify=True).status()
        log.warning("corpus %s: import heartbeat older than %.0f s, marked failed", corpus.pk, timeout)
        failed.append(corpus.pk)
    return failed


