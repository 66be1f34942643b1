"""Generic layout: one folder per emotion, optionally one level of speaker folders above.

``root/<emotion>/<file>`` (no speaker information) or ``root/<speaker>/<emotion>/<file>``.
Emotion folder names go through :func:`canonical_label` ("Anger", "fear", "ps" ...).
Folders that every file shares and that are not emotions (a zip's wrapper folder such as
``mycorpus/``) are looked through first, so a single speaker folder above everything is
treated as such a wrapper. Speakers can instead come from the file names with
``speaker_regex``: a pattern with a named group ``speaker``, searched in the file stem.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..labels import canonical_label
from .base import (
    NOT_AUDIO,
    CorpusError,
    CorpusScan,
    Match,
    Skipped,
    build_scan,
    check_root,
    is_audio,
    list_files,
    match_fraction,
)

NAME = "folders"
_LAYOUT = "expected <emotion>/<file> or <speaker>/<emotion>/<file>"


def compile_speaker_regex(pattern: str | None) -> re.Pattern[str] | None:
    """Compile a speaker pattern, or CorpusError when it is invalid or lacks ``(?P<speaker>...)``."""
    if pattern is None or pattern == "":
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise CorpusError(f"Invalid speaker pattern {pattern!r}: {exc}.") from exc
    if "speaker" not in compiled.groupindex:
        raise CorpusError(f"The speaker pattern {pattern!r} needs a named group (?P<speaker>...).")
    return compiled


def wrapper_depth(relative: list[tuple[str, ...]]) -> int:
    """How many leading folders all files share that are not emotions (wrapper folders).

    Stops while every file still has at least an emotion folder and a name below it.
    """
    depth = 0
    while relative and all(len(parts) - depth >= 3 for parts in relative):
        first = {parts[depth] for parts in relative}
        if len(first) != 1 or canonical_label(next(iter(first))) is not None:
            break
        depth += 1
    return depth


def classify(parts: tuple[str, ...], stem: str, speaker_regex: re.Pattern[str] | None) -> Match | str:
    """Label and speaker from a file's path parts below the wrapper folders, or a reason."""
    if len(parts) == 1:
        return f"not inside an emotion folder ({_LAYOUT})"
    if len(parts) > 3:
        return f"folder too deep ({_LAYOUT})"
    folder = parts[-2]
    label = canonical_label(folder)
    if label is None:
        return f"unknown emotion folder {folder!r}"
    speaker = parts[0] if len(parts) == 3 else None
    if speaker_regex is not None:
        found = speaker_regex.search(stem)
        if not found or not found.group("speaker"):
            return "file name does not match the speaker pattern"
        speaker = found.group("speaker")
    return Match(label, speaker, folder)


def detect(root: Path, sample: list[Path] | None = None) -> float:
    """Share of audio files whose parent folder is an emotion name."""
    files = list_files(root) if sample is None else sample
    return match_fraction(files, lambda p: canonical_label(p.parent.name) is not None)


def parse(
    root: Path,
    name: str,
    *,
    probe_durations: bool = True,
    speaker_regex: str | None = None,
) -> CorpusScan:
    """Scan a folder-per-emotion corpus (see the module docstring for the layouts)."""
    root = check_root(Path(root))
    pattern = compile_speaker_regex(speaker_regex)
    files = list_files(root)
    audio = [p for p in files if is_audio(p)]
    depth = wrapper_depth([p.relative_to(root).parts for p in audio])
    matches: list[tuple[Path, Match]] = []
    skipped = [Skipped(p, NOT_AUDIO) for p in files if not is_audio(p)]
    for path in audio:
        result = classify(path.relative_to(root).parts[depth:], path.stem, pattern)
        if isinstance(result, str):
            skipped.append(Skipped(path, result))
        else:
            matches.append((path, result))
    return build_scan(name, NAME, root, matches, skipped, probe_durations=probe_durations)
