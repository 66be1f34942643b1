"""Shared types and helpers for corpus parsers: utterances, skipped files, scans, file walking.

A parser turns each file into either a :class:`Match` (label, speaker, corpus code) or a
reason string; :func:`build_scan` then probes durations and assembles the
:class:`CorpusScan`. Nothing is ever dropped silently except hidden files and ``__MACOSX``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from recognition.engine.audio import AudioError, probe_duration

from ..labels import CANONICAL_LABELS

__all__ = [
    "AUDIO_EXTENSIONS",
    "NOT_AUDIO",
    "CorpusError",
    "CorpusScan",
    "Match",
    "Skipped",
    "Utterance",
    "build_scan",
    "check_root",
    "is_audio",
    "list_files",
    "match_fraction",
    "natural_key",
    "scan_files",
]

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".opus", ".webm", ".m4a", ".mp4", ".aac"}
)
NOT_AUDIO = "not an audio file"
_EXAMPLES_PER_REASON = 20


class CorpusError(ValueError):
    """The folder cannot be read as a corpus at all (missing, empty, unknown layout, bad option)."""


@dataclass(frozen=True)
class Utterance:
    """One usable audio file: canonical label, speaker (None when the corpus has none), duration in s."""

    path: Path
    label: str
    speaker: str | None
    corpus: str
    duration: float
    source_label: str


@dataclass(frozen=True)
class Skipped:
    """A file (or manifest row) that was not imported, and why."""

    path: Path
    reason: str


class Match(NamedTuple):
    """What a parser read from one file's name: canonical label, speaker, the corpus' own code."""

    label: str
    speaker: str | None
    source_label: str


def natural_key(text: str) -> list[Any]:
    """Sort key that orders "spk2" before "spk10"."""
    # re.split with a capturing group alternates text, digits, text, ... so types line up.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


@dataclass
class CorpusScan:
    """The result of reading a corpus folder: usable utterances and everything skipped."""

    name: str
    format: str
    root: Path
    utterances: list[Utterance] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def label_counts(self) -> dict[str, int]:
        """Utterances per canonical label, in :data:`CANONICAL_LABELS` order."""
        counts = Counter(u.label for u in self.utterances)
        order = {name: i for i, name in enumerate(CANONICAL_LABELS)}
        return {label: counts[label] for label in sorted(counts, key=lambda x: order.get(x, len(order)))}

    def speaker_counts(self) -> dict[str, int]:
        """Utterances per speaker (utterances without a speaker are not counted), natural order."""
        counts = Counter(u.speaker for u in self.utterances if u.speaker is not None)
        return {speaker: counts[speaker] for speaker in sorted(counts, key=natural_key)}

    def speakers(self) -> list[str]:
        """Distinct speakers in natural order ("Actor_2" before "Actor_10")."""
        return list(self.speaker_counts())

    @property
    def has_speakers(self) -> bool:
        """True when every utterance has a speaker, so speaker-independent splits are possible."""
        return bool(self.utterances) and all(u.speaker is not None for u in self.utterances)

    def _display(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def summary(self) -> dict[str, Any]:
        """A JSON-able overview for import reports and the corpus page."""
        durations = [u.duration for u in self.utterances]
        total = float(sum(durations))
        by_reason: dict[str, list[Skipped]] = {}
        for item in self.skipped:
            by_reason.setdefault(item.reason, []).append(item)
        reasons = [
            {
                "reason": reason,
                "count": len(items),
                "examples": [self._display(s.path) for s in items[:_EXAMPLES_PER_REASON]],
            }
            for reason, items in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ]
        return {
            "name": self.name,
            "format": self.format,
            "root": str(self.root),
            "utterances": len(self.utterances),
            "skipped": len(self.skipped),
            "total_duration": round(total, 3),
            "mean_duration": round(total / len(durations), 3) if durations else 0.0,
            "min_duration": round(min(durations), 3) if durations else 0.0,
            "max_duration": round(max(durations), 3) if durations else 0.0,
            "labels": self.label_counts(),
            "speakers": self.speaker_counts(),
            "has_speakers": self.has_speakers,
            "skipped_reasons": reasons,
        }


def is_audio(path: Path) -> bool:
    """True for a recognised audio extension (case-insensitive)."""
    return path.suffix.lower() in AUDIO_EXTENSIONS


def _ignored(name: str) -> bool:
    # Finder/AppleDouble litter from zips made on macOS; never part of a corpus.
    return name.startswith(".") or name == "__MACOSX"


def list_files(root: Path, under: Path | None = None) -> list[Path]:
    """Every regular file below ``under`` (default ``root``), sorted; hidden files and
    ``__MACOSX`` folders are left out silently."""
    start = under or root
    found: list[Path] = []
    for folder, dirs, files in os.walk(start):
        dirs[:] = sorted(d for d in dirs if not _ignored(d))
        found.extend(Path(folder) / f for f in files if not _ignored(f))
    return sorted(found)


def check_root(root: Path) -> Path:
    """``root`` as a Path, or CorpusError when it is missing or not a folder."""
    root = Path(root)
    if not root.exists():
        raise CorpusError(f"Corpus folder does not exist: {root}")
    if not root.is_dir():
        raise CorpusError(f"Not a folder: {root}")
    return root


def build_scan(
    name: str,
    format: str,
    root: Path,
    matches: Iterable[tuple[Path, Match]],
    skipped: Iterable[Skipped],
    *,
    probe_durations: bool = True,
) -> CorpusScan:
    """Probe each matched file's duration and assemble a deterministic scan.

    A file the audio layer cannot read becomes :class:`Skipped` with the AudioError message.
    Without probing, durations are 0.0.
    """
    utterances: list[Utterance] = []
    skipped = list(skipped)
    for path, match in matches:
        duration = 0.0
        if probe_durations:
            try:
                duration = float(probe_duration(path))
            except AudioError as exc:
                skipped.append(Skipped(path, str(exc)))
                continue
            except OSError as exc:  # permissions, vanished file: still a per-file problem
                skipped.append(Skipped(path, f"cannot read the file ({exc.strerror or exc})"))
                continue
            if not duration > 0:
                skipped.append(Skipped(path, "the audio is empty"))
                continue
        utterances.append(Utterance(path, match.label, match.speaker, name, duration, match.source_label))
    utterances.sort(key=lambda u: u.path)
    skipped.sort(key=lambda s: (s.path, s.reason))
    return CorpusScan(name=name, format=format, root=root, utterances=utterances, skipped=skipped)


def scan_files(
    root: Path,
    name: str,
    format: str,
    classify: Callable[[Path], Match | str],
    *,
    probe_durations: bool = True,
    files: list[Path] | None = None,
) -> CorpusScan:
    """The common loop of name-based formats: every file is audio-checked, then ``classify``
    returns a :class:`Match` or the reason it is skipped."""
    root = check_root(root)
    matches: list[tuple[Path, Match]] = []
    skipped: list[Skipped] = []
    for path in list_files(root) if files is None else files:
        if not is_audio(path):
            skipped.append(Skipped(path, NOT_AUDIO))
            continue
        result = classify(path)
        if isinstance(result, str):
            skipped.append(Skipped(path, result))
        else:
            matches.append((path, result))
    return build_scan(name, format, root, matches, skipped, probe_durations=probe_durations)


def match_fraction(sample: list[Path], test: Callable[[Path], bool]) -> float:
    """Share of the audio files in ``sample`` for which ``test`` holds (0.0 for none)."""
    audio = [p for p in sample if is_audio(p)]
    if not audio:
        return 0.0
    return sum(1 for p in audio if test(p)) / len(audio)
