"""Berlin Emo-DB: ``wav/03a01Fa.wav``.

Positions: speaker (2 digits), text code (3 chars), emotion letter (German initial), version
letter. Case matters: the emotion is upper case, the version lower case. The release's ten
texts are a01 a02 a04 a05 a07 b01 b02 b03 b09 b10 (there is no a03, a06 or b04-b08).
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import CorpusScan, Match, list_files, match_fraction, scan_files

NAME = "emodb"

# W Wut, L Langeweile, E Ekel, A Angst, F Freude, T Trauer, N neutral.
EMOTIONS: dict[str, str] = {
    "W": "angry",
    "L": "boredom",
    "E": "disgust",
    "A": "fearful",
    "F": "happy",
    "T": "sad",
    "N": "neutral",
}
SPEAKERS: frozenset[str] = frozenset({"03", "08", "09", "10", "11", "12", "13", "14", "15", "16"})
TEXTS: frozenset[str] = frozenset({"a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10"})
_SHAPE = re.compile(r"^(\d\d)([a-z]\d\d)([A-Z])([a-z])$")


def classify(path: Path) -> Match | str:
    """Label, speaker and emotion letter from an Emo-DB file name, or why it is skipped."""
    found = _SHAPE.match(path.stem)
    if not found:
        return "not an Emo-DB file name (expected 03a01Fa)"
    speaker, text, emotion, _version = found.groups()
    if speaker not in SPEAKERS:
        return f"unknown speaker {speaker!r}"
    if text not in TEXTS:
        return f"unknown text code {text!r}"
    if emotion not in EMOTIONS:
        return f"unknown emotion code {emotion!r}"
    return Match(EMOTIONS[emotion], speaker, emotion)


def detect(root: Path, sample: list[Path] | None = None) -> float:
    """Share of audio files whose names have the Emo-DB shape."""
    files = list_files(root) if sample is None else sample
    return match_fraction(files, lambda p: bool(_SHAPE.match(p.stem)))


def parse(root: Path, name: str, *, probe_durations: bool = True) -> CorpusScan:
    """Scan an Emo-DB folder (the audio is usually under ``wav/``)."""
    return scan_files(Path(root), name, NAME, classify, probe_durations=probe_durations)
