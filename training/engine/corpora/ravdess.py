"""RAVDESS: ``Actor_NN/MM-VC-EE-II-SS-RR-AA.ext``, seven two-digit fields.

Fields: modality (01 audio-video, 02 video-only, 03 audio-only), vocal channel (01 speech,
02 song), emotion (01-08), intensity (01 normal, 02 strong; neutral has no strong),
statement (01/02), repetition (01/02), actor (01-24 in the release). Every field is
checked; a file with any unknown code is skipped with the code in the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import CorpusScan, Match, list_files, match_fraction, scan_files

NAME = "ravdess"

EMOTIONS: dict[str, str] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
_FIELDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("modality", frozenset({"01", "02", "03"})),
    ("vocal channel", frozenset({"01", "02"})),
    ("emotion", frozenset(EMOTIONS)),
    ("intensity", frozenset({"01", "02"})),
    ("statement", frozenset({"01", "02"})),
    ("repetition", frozenset({"01", "02"})),
)
_SHAPE = re.compile(r"^\d\d(?:-\d\d){6}$")
_ACTOR_FOLDER = re.compile(r"^actor_?(\d+)$", re.IGNORECASE)


def speaker_id(actor: str) -> str:
    """Stable speaker id for an actor field: "01" -> "Actor_01" (the release's folder name)."""
    return f"Actor_{int(actor):02d}"


def classify(path: Path) -> Match | str:
    """Label, speaker and emotion code from a RAVDESS file name, or why it is skipped."""
    stem = path.stem
    if not _SHAPE.match(stem):
        return "not a RAVDESS file name (expected MM-VC-EE-II-SS-RR-AA)"
    codes = stem.split("-")
    for (field, allowed), code in zip(_FIELDS, codes, strict=False):
        if code not in allowed:
            return f"unknown {field} code {code!r}"
    actor = codes[6]
    if actor == "00":
        return f"unknown actor code {actor!r}"
    emotion, intensity = codes[2], codes[3]
    if emotion == "01" and intensity == "02":
        return "neutral has no strong intensity (02) in RAVDESS"
    speaker = speaker_id(actor)
    folder = _ACTOR_FOLDER.match(path.parent.name)
    # The folder is redundant with the actor field; a disagreement means a misplaced file.
    if folder and int(folder.group(1)) != int(actor):
        return f"actor field {actor!r} disagrees with folder {path.parent.name!r}"
    return Match(EMOTIONS[emotion], speaker, emotion)


def detect(root: Path, sample: list[Path] | None = None) -> float:
    """Share of audio files whose names have the seven-field RAVDESS shape."""
    files = list_files(root) if sample is None else sample
    return match_fraction(files, lambda p: bool(_SHAPE.match(p.stem)))


def parse(root: Path, name: str, *, probe_durations: bool = True) -> CorpusScan:
    """Scan a RAVDESS folder (speech and/or song, any depth)."""
    return scan_files(Path(root), name, NAME, classify, probe_durations=probe_durations)
