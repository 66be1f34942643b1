"""IEMOCAP: labels in ``Session*/dialog/EmoEvaluation/*.txt``, audio in
``Session*/sentences/wav/<dialog>/<utterance>.wav``.

A label line reads ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5, 2.5, 2.5]``.
Only the top-level ``*.txt`` files of ``EmoEvaluation`` are read (its sub-folders hold the
individual annotators' votes). The speaker is the session plus the gender letter that
starts the utterance's last field (``Ses01F_impro01_M003`` -> ``Ses01M``): each session
has one female and one male actor. Only ``sentences/wav`` is scanned; the rest of the
release (dialog wavs, video, motion capture, transcripts) is not part of the corpus here.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import (
    NOT_AUDIO,
    CorpusScan,
    Match,
    Skipped,
    build_scan,
    check_root,
    is_audio,
    list_files,
)

NAME = "iemocap"

EMOTIONS: dict[str, str] = {
    "neu": "neutral",
    "hap": "happy",
    "sad": "sad",
    "ang": "angry",
    "fea": "fearful",
    "dis": "disgust",
    "sur": "surprised",
    "fru": "frustrated",
    "exc": "excited",
}
NO_AGREEMENT: frozenset[str] = frozenset({"xxx", "oth"})
_SESSION = re.compile(r"^Session\d+$", re.IGNORECASE)
_LINE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s+(\S+)\s+(\S+)")
_UTTERANCE = re.compile(r"^(Ses\d+)[FM]_.+_([A-Za-z])[^_]*$")


def sessions(root: Path) -> list[Path]:
    """The ``Session<N>`` folders directly under ``root`` that have an EmoEvaluation folder."""
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir()
        if p.is_dir() and _SESSION.match(p.name) and (p / "dialog" / "EmoEvaluation").is_dir()
    )


def read_labels(session: Path) -> tuple[dict[str, str], list[Skipped]]:
    """utterance id -> lower-case code for one session, plus entries labelled twice differently."""
    labels: dict[str, str] = {}
    conflicts: dict[str, str] = {}
    for txt in sorted((session / "dialog" / "EmoEvaluation").glob("*.txt")):
        if txt.name.startswith("."):
            continue
        for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
            found = _LINE.match(line.strip())
            if not found:
                continue  # annotator lines ("C-E1: ..."), headers and blank lines
            utt, code = found.group(1), found.group(2).lower()
            if utt in labels and labels[utt] != code:
                conflicts[utt] = f"conflicting labels in EmoEvaluation ({labels[utt]!r} and {code!r})"
            labels.setdefault(utt, code)
    skipped = [Skipped(wav_path(session, utt), reason) for utt, reason in conflicts.items()]
    for utt in conflicts:
        del labels[utt]
    return labels, skipped


def wav_path(session: Path, utterance: str) -> Path:
    """Where the release keeps the audio of ``utterance``."""
    dialog = utterance.rsplit("_", 1)[0]
    return session / "sentences" / "wav" / dialog / f"{utterance}.wav"


def speaker_of(utterance: str) -> str | None:
    """``Ses01F_impro01_M003`` -> ``Ses01M``; None when the id does not have that shape."""
    found = _UTTERANCE.match(utterance)
    if not found or found.group(2).upper() not in ("F", "M"):
        return None
    return found.group(1) + found.group(2).upper()


def detect(root: Path, sample: list[Path] | None = None) -> float:
    """1.0 when ``root`` holds IEMOCAP session folders with EmoEvaluation labels, else 0.0."""
    return 1.0 if sessions(Path(root)) else 0.0


def parse(root: Path, name: str, *, probe_durations: bool = True) -> CorpusScan:
    """Scan an IEMOCAP release folder (the one containing ``Session1`` ... ``Session5``)."""
    root = check_root(Path(root))
    matches: list[tuple[Path, Match]] = []
    skipped: list[Skipped] = []
    for session in sessions(root):
        labels, conflicts = read_labels(session)
        skipped.extend(conflicts)
        labelled: set[Path] = set()
        for utt, code in labels.items():
            path = wav_path(session, utt)
            labelled.add(path)
            if not path.is_file():
                skipped.append(Skipped(path, "labelled in EmoEvaluation but the audio file is missing"))
            elif code in NO_AGREEMENT:
                skipped.append(Skipped(path, f"no agreed label ({code!r})"))
            elif code not in EMOTIONS:
                skipped.append(Skipped(path, f"unknown emotion code {code!r}"))
            elif (speaker := speaker_of(utt)) is None:
                skipped.append(Skipped(path, f"cannot tell the speaker of {utt!r}"))
            else:
                matches.append((path, Match(EMOTIONS[code], speaker, code)))
        wav_root = session / "sentences" / "wav"
        if wav_root.is_dir():
            for path in list_files(root, wav_root):
                if path in labelled:
                    continue
                reason = "no label in EmoEvaluation" if is_audio(path) else NOT_AUDIO
                skipped.append(Skipped(path, reason))
    return build_scan(name, NAME, root, matches, skipped, probe_durations=probe_durations)
