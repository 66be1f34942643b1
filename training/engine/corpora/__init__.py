"""Corpus formats: detect how an emotional-speech corpus is laid out and read it.

Each format module offers ``detect(root, sample=None) -> float`` (share of files that look
like that format, 0..1) and ``parse(root, name, *, probe_durations=True, ...) -> CorpusScan``.
:func:`scan_corpus` is the entry point: it detects (or takes) the format, parses, and probes
every file's duration. Files that cannot be used are never dropped silently: they are
listed in :attr:`CorpusScan.skipped` with a reason.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

from . import crema_d, emodb, folders, iemocap, manifest, nemo, ravdess, savee, tess
from .base import (
    AUDIO_EXTENSIONS,
    CorpusError,
    CorpusScan,
    Skipped,
    Utterance,
    check_root,
    is_audio,
    list_files,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "FORMATS",
    "CorpusError",
    "CorpusScan",
    "Skipped",
    "Utterance",
    "detect_format",
    "detection_scores",
    "scan_corpus",
]

# Priority order: an explicit manifest wins, then layouts with their own label files (nEMO's
# names carry its labels too, but its data.tsv is the authority), then file-name
# conventions, and the generic folder-per-emotion layout last.
_MODULES: dict[str, ModuleType] = {
    "csv": manifest,
    "iemocap": iemocap,
    "nemo": nemo,
    "ravdess": ravdess,
    "crema-d": crema_d,
    "tess": tess,
    "emodb": emodb,
    "savee": savee,
    "folders": folders,
}
FORMATS: tuple[str, ...] = tuple(_MODULES)

_ALIASES = {
    "cremad": "crema-d",
    "crema_d": "crema-d",
    "emo-db": "emodb",
    "emo_db": "emodb",
    "folder": "folders",
    "manifest": "csv",
}
MIN_SCORE = 0.5  # at least half the audio files must fit a naming convention
_TIE = 0.05  # scores this close count as a tie, broken by FORMATS order
_SAMPLE_SIZE = 400


def _format_name(format: str) -> str:
    key = format.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _MODULES:
        raise CorpusError(f"Unknown corpus format {format!r}; known formats: {', '.join(FORMATS)}.")
    return key


def _sample(files: list[Path]) -> list[Path]:
    """Evenly spaced audio files, so a huge corpus is judged on a fair cross-section quickly."""
    audio = [p for p in files if is_audio(p)]
    if len(audio) <= _SAMPLE_SIZE:
        return audio
    step = len(audio) / _SAMPLE_SIZE
    return [audio[int(i * step)] for i in range(_SAMPLE_SIZE)]


def detection_scores(root: Path) -> dict[str, float]:
    """Each format's score (0..1) for the folder ``root``, in FORMATS order."""
    root = check_root(Path(root))
    sample = _sample(list_files(root))
    return {fmt: float(module.detect(root, sample)) for fmt, module in _MODULES.items()}


def detect_format(root: Path) -> str:
    """The format that best explains the files under ``root``.

    Raises:
        CorpusError: the folder is missing, holds no audio, or no format fits at least half
            of the audio files (the message lists every format's score).
    """
    root = check_root(Path(root))
    scores = detection_scores(root)
    best = max(scores.values())
    if best < MIN_SCORE:
        if not any(is_audio(p) for p in list_files(root)):
            raise CorpusError(f"No audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) found in {root}.")
        listing = ", ".join(f"{fmt} {score:.0%}" for fmt, score in scores.items())
        raise CorpusError(
            f"Could not recognise the corpus layout of {root}: no format fits at least "
            f"{MIN_SCORE:.0%} of the audio files (share matching: {listing}). Use one folder per "
            "emotion, a CSV manifest (path,label[,speaker]), or choose the format explicitly."
        )
    return next(fmt for fmt, score in scores.items() if score >= best - _TIE)


def scan_corpus(
    root: Path,
    *,
    format: str | None = None,
    name: str | None = None,
    probe_durations: bool = True,
    **options: Any,
) -> CorpusScan:
    """Read the corpus in ``root``: every usable utterance, and every skipped file with a reason.

    Args:
        root: the corpus folder.
        format: one of :data:`FORMATS` to skip detection.
        name: the corpus name stored on each utterance; defaults to the folder name.
        probe_durations: read each file's duration (and skip unreadable files); without it
            durations are 0.0.
        **options: format-specific options, e.g. ``speaker_regex`` for "folders" or
            ``manifest`` for "csv".

    Raises:
        CorpusError: missing folder, unknown format or option, or no recognisable layout.
    """
    root = check_root(Path(root))
    fmt = _format_name(format) if format else detect_format(root)
    module = _MODULES[fmt]
    accepted = set(inspect.signature(module.parse).parameters) - {"root", "name", "probe_durations"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        allowed = ", ".join(sorted(accepted)) or "none"
        raise CorpusError(f"Format {fmt!r} does not take option(s) {', '.join(unknown)} (accepted: {allowed}).")
    corpus_name = name or root.resolve().name
    return module.parse(root, corpus_name, probe_durations=probe_durations, **options)
