"""CREMA-D: ``AudioWAV/1001_DFA_ANG_XX.wav``.

Fields: actor id (1001-1091), sentence code (one of the 12 sentences), emotion (ANG DIS
FEA HAP NEU SAD) and intensity (LO MD HI, XX for unspecified; a single X also occurs).
Codes are matched case-insensitively but must each be a known value.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import CorpusScan, Match, list_files, match_fraction, scan_files

NAME = "crema-d"

EMOTIONS: dict[str, str] = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
SENTENCES: frozenset[str] = frozenset(
    {"IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"}
)
INTENSITIES: frozenset[str] = frozenset({"LO", "MD", "HI", "XX", "X"})
_SHAPE = re.compile(r"^(\d{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{1,2})$")


def classify(path: Path) -> Match | str:
    """Label, speaker and emotion code from a CREMA-D file name, or why it is skipped."""
    found = _SHAPE.match(path.stem)
    if not found:
        return "not a CREMA-D file name (expected 1001_DFA_ANG_XX)"
    actor, sentence, emotion, intensity = found.groups()
    sentence, emotion, intensity = sentence.upper(), emotion.upper(), intensity.upper()
    if not 1001 <= int(actor) <= 1091:
        return f"unknown actor id {actor!r}"
    if sentence not in SENTENCES:
        return f"unknown sentence code {sentence!r}"
    if emotion not in EMOTIONS:
        return f"unknown emotion code {emotion!r}"
    if intensity not in INTENSITIES:
        return f"unknown intensity code {intensity!r}"
    return Match(EMOTIONS[emotion], actor, emotion)


def detect(root: Path, sample: list[Path] | None = None) -> float:
    """Share of audio files whose names have the CREMA-D four-field shape."""
    files = list_files(root) if sample is None else sample
    return match_fraction(files, lambda p: bool(_SHAPE.match(p.stem)))


def parse(root: Path, name: str, *, probe_durations: bool = True) -> CorpusScan:
    """Scan a CREMA-D folder (usually ``AudioWAV/``)."""
    return scan_files(Path(root), name, NAME, classify, probe_durations=probe_durations)
