"""Helpers shared by the corpus tests: tiny WAV and Ogg files, scan accessors, an IEMOCAP layout,
where the real corpora are."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from devsupport.synth import write_ogg, write_wav
from training.engine.corpora import CorpusScan

TINY = (0.1 * np.sin(np.linspace(0, 200, 800))).astype(np.float32)  # 0.05 s at 16 kHz
CORPORA = Path(os.environ.get("SER_CORPORA_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora")


def wav(root: Path, *relative: str) -> list[Path]:
    """Write a 0.05 s WAV at each relative path."""
    return [write_wav(root / rel, TINY) for rel in relative]


def ogg(root: Path, *relative: str) -> list[Path]:
    """Write a 0.05 s Ogg/Opus file at each relative path."""
    return [write_ogg(root / rel, TINY) for rel in relative]


def only_reason(scan: CorpusScan) -> str:
    assert scan.utterances == [], [u.path.name for u in scan.utterances]
    assert len(scan.skipped) == 1
    return scan.skipped[0].reason


def parsed(scan: CorpusScan) -> dict[str, tuple[str, str | None, str]]:
    """file name -> (label, speaker, source label)"""
    return {u.path.name: (u.label, u.speaker, u.source_label) for u in scan.utterances}


def _iemocap(root: Path) -> Path:
    ev = root / "Session1" / "dialog" / "EmoEvaluation"
    ev.mkdir(parents=True)
    (ev / "Ses01F_impro01.txt").write_text(
        "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
        "C-E2:\tNeutral;\t()\n"
        "[10.0 - 11.5]\tSes01F_impro01_M001\tfru\t[2.0, 3.0, 3.0]\n"
        "[12.0 - 13.0]\tSes01F_impro01_F002\txxx\t[2.0, 3.0, 3.0]\n"
        "[14.0 - 15.0]\tSes01F_impro01_M003\toth\t[2.0, 3.0, 3.0]\n"
        "[16.0 - 17.0]\tSes01F_impro01_F004\tang\t[2.0, 3.0, 3.0]\n"
        "[18.0 - 19.0]\tSes01F_impro01_F005\tzzz\t[2.0, 3.0, 3.0]\n"
    )
    # Annotator sub-folders hold other opinions and must not be read.
    (ev / "Categorical").mkdir()
    (ev / "Categorical" / "Ses01F_impro01_e1_cat.txt").write_text(
        "[6.2901 - 8.2357]\tSes01F_impro01_F000\tang\t[1, 1, 1]\n"
    )
    ev2 = root / "Session2" / "dialog" / "EmoEvaluation"
    ev2.mkdir(parents=True)
    (ev2 / "Ses02M_script01_1.txt").write_text(
        "[1.0 - 2.0]\tSes02M_script01_1_F010\texc\t[4.0, 4.0, 3.0]\n"
        "[3.0 - 4.0]\tSes02M_script01_1_M011\thap\t[4.0, 4.0, 3.0]\n"
    )
    wav(
        root,
        *(f"Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_{u}.wav" for u in ("F000", "M001", "F002", "M003", "F005", "M099")),
        "Session2/sentences/wav/Ses02M_script01_1/Ses02M_script01_1_F010.wav",
        "Session2/sentences/wav/Ses02M_script01_1/Ses02M_script01_1_M011.wav",
        "Session1/dialog/wav/Ses01F_impro01.wav",  # whole dialog: not part of the corpus
    )
    return root


def layout(root: Path, fmt: str, files: dict[str, list[str]]) -> None:
    """A tiny corpus of format ``fmt`` under ``root``: IEMOCAP's tree, a CSV manifest with its
    audio, or the silent files ``files[fmt]`` names."""
    if fmt == "iemocap":
        _iemocap(root)
    elif fmt == "csv":
        wav(root, "angry/1.wav", "Actor_01/03-01-05-01-01-01-01.wav")
        (root / "labels.csv").write_text("path,label\nangry/1.wav,angry\n")
    else:
        wav(root, *files[fmt])

