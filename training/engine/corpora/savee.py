"""SAVEE: ``AudioData/DC/sa01.wav`` (speaker folder) or flat ``DC_sa01.wav``.

Speakers DC, JE, JK, KL. The emotion is the whole letter prefix before the two-digit
number: a angry, d disgust, f fearful, h happy, n neutral, sa sad, su surprised. "s" alone
is not a code, and "sa"/"su" are never read from their first letter.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import CorpusScan, Match, list_files, match_fraction, scan_files

NAME = "savee"

EMOTIONS: dict[str, str] = {
    "a": "angry",
    "d": "disgust",
    "f": "fearful",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprised",
}
SPEAKERS: frozenset[str] = frozenset({"DC", "JE", "JK", "KL"})
_FLAT = re.compile(r"^([A-Za-z]{2})_([A-Za-z]+)(\d\d)$")
_IN_FOLDER = re.compile(r"^([A-Za-z]+)(\d\d)$")


def _split(path: Path) -> tuple[str, str] | str:
    """(speaker as written, emotion prefix) or a reason."""
    flat = _FLAT.match(path.stem)
    if flat:
        return flat.group(1), flat.group(2)
    inner = _IN_FOLDER.match(path.stem)
    if inner:
        if path.parent.name.upper() not in SPEAKERS:
            return (
                f"no speaker: expected a {'/'.join(sorted(SPEAKERS))} folder "
                f"or a speaker prefix, found folder {path.parent.name!r}"
            )
        return path.parent.name, inner.group(1)
    return "not a SAVEE file name (expected sa01 in a speaker folder, or DC_sa01)"


def classify(path: Path) -> Match | str:
    """Label, speaker and emotion prefix from a SAVEE path, or why it is skipped."""
    parts = _split(path)
    if isinstance(parts, str):
        return parts
    speaker, code = parts
    if speaker.upper() not in SPEAKERS:
        return f"unknown speaker {speaker!r}"
    label = EMOTIONS.get(code.lower())
    if label is None:
        return f"unknown emotion code {code!r}"
    return Match(label, speaker.upper(), code)


def _looks_like_savee(path: Path) -> bool:
    flat = _FLAT.match(path.stem)
    if flat:
        return flat.group(1).upper() in SPEAKERS
    return bool(_IN_FOLDER.match(path.stem)) and path.parent.name.upper() in SPEAKERS


def detect(root: Path, sample: list[Path] | None = None) -> float:
    """Share of audio files that sit in a SAVEE speaker folder or carry a speaker prefix."""
    files = list_files(root) if sample is None else sample
    return match_fraction(files, _looks_like_savee)


def parse(root: Path, name: str, *, probe_durations: bool = True) -> CorpusScan:
    """Scan a SAVEE folder (``AudioData`` with speaker folders, or flat prefixed names)."""
    return scan_files(Path(root), name, NAME, classify, probe_durations=probe_durations)
