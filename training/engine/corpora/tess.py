"""TESS: ``<SPK>_<emotion folder>/<SPK>_<word>_<emo>.ext``.

Speakers OAF (older) and YAF (younger); emotion codes angry, disgust, fear, happy, neutral,
ps (pleasant surprise), sad, matched case-insensitively ("Fear" occurs). The label comes
from the file name's last field. Folder names such as ``YAF_pleasant_surprised`` or
``OAF_Fear`` are a second opinion: when the folder names an emotion or a speaker it must
agree with the file name, otherwise the file is skipped (it was probably misfiled).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..labels import canonical_label
from .base import CorpusScan, Match, list_files, match_fraction, scan_files

NAME = "tess"

EMOTIONS: dict[str, str] = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprised",
    "sad": "sad",
}
SPEAKERS: frozenset[str] = frozenset({"OAF", "YAF"})
_SHAPE = re.compile(r"^([A-Za-z]+)_(.+)_([A-Za-z]+)$")
_FOLDER = re.compile(r"^(OAF|YAF)[_ ](.+)$", re.IGNORECASE)


def classify(path: Path) -> Match | str:
    """Label, speaker and emotion code from a TESS file name, or why it is skipped."""
    found = _SHAPE.match(path.stem)
    if not found:
        return "not a TESS file name (expected SPK_word_emotion)"
    speaker, _word, code = found.groups()
    speaker = speaker.upper()
    if speaker not in SPEAKERS:
        return f"unknown speaker {found.group(1)!r}"
    label = EMOTIONS.get(code.lower())
    if label is None:
        return f"unknown emotion code {code!r}"
    folder = _FOLDER.match(path.parent.name)
    if folder:
        folder_speaker, folder_emotion = folder.group(1).upper(), canonical_label(folder.group(2))
        if folder_speaker != speaker:
            return f"speaker {speaker!r} disagrees with folder {path.parent.name!r}"
        if folder_emotion is not None and folder_emotion != label:
            return f"emotion code {code!r} disagrees with folder {path.parent.name!r}"
    else:
        folder_emotion = canonical_label(path.parent.name)
        if folder_emotion is not None and folder_emotion != label:
            return f"emotion code {code!r} disagrees with folder {path.parent.name!r}"
    return Match(label, speaker, code)


def _looks_like_tess(path: Path) -> bool:
    found = _SHAPE.match(path.stem)
    return bool(found) and found.group(1).upper() in SPEAKERS


def detect(root: Path, sample: list[Path] | None = None) -> float:
    """Share of audio files named ``OAF_..._x`` or ``YAF_..._x``."""
    files = list_files(root) if sample is None else sample
    return match_fraction(files, _looks_like_tess)


def parse(root: Path, name: str, *, probe_durations: bool = True) -> CorpusScan:
    """Scan a TESS folder."""
    return scan_files(Path(root), name, NAME, classify, probe_durations=probe_durations)
