"""Writes the example clips of the classify page (static/examples/) with the project's own
speech-like synthesiser (devsupport/synth.py): voiced tones whose pitch contour, loudness and
tempo follow the training tests' emotion styles. They are not recordings of people, so a
model trained on real speech may hear anything in them; they let the page be tried with no
file at hand, and they are small (16 kHz mono 16-bit, about 1.5 s, two phrases each).

    .venv/bin/python -m tests.make_examples          # rewrites static/examples/*.wav
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from devsupport.synth import SR, speech_like, write_wav

FOLDER = Path(__file__).resolve().parent.parent / "static" / "examples"
# (file stem, synthesiser style, seed): seeds fixed so the files are the same every time.
EXAMPLES = (("angry", "angry", 11), ("happy", "happy", 12), ("sad", "sad", 13), ("neutral", "neutral", 14))


def example_waveform(style: str, seed: int) -> np.ndarray:
    """Two short phrases with a pause between them (so the page shows two segments). Shape: (samples,)."""
    first = speech_like(style, duration=0.6, seed=seed, lead_silence=0.1)
    second = speech_like(style, duration=0.5, seed=seed + 100, lead_silence=0.1)
    pause = np.zeros(int(0.35 * SR), np.float32)
    return np.concatenate([first, pause, second]).astype(np.float32)


def write_examples(folder: Path = FOLDER) -> list[Path]:
    return [write_wav(folder / f"{stem}.wav", example_waveform(style, seed)) for stem, style, seed in EXAMPLES]


if __name__ == "__main__":
    for path in write_examples(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER):
        print(path, path.stat().st_size)
