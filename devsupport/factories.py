"""Database objects for the run tests and bench/cancel_delay.py, built from real synthetic audio files."""

from __future__ import annotations

from pathlib import Path

from devsupport.synth import make_folder_corpus
from training.engine.corpora import scan_corpus
from training.models import Corpus, Utterance


def ready_corpus(root: Path, *, name: str = "synth", labels=("angry", "sad", "happy"), speakers: int = 4, per_class: int = 3) -> Corpus:
    """A folder corpus on disk, registered as a ready Corpus with its Utterances (server-path style)."""
    make_folder_corpus(root, list(labels), speakers=speakers, per_class=per_class)
    scan = scan_corpus(root, format="folders", name=name, speaker_regex=r"^(?P<speaker>spk\d+)_")
    corpus = Corpus.objects.create(name=name, format=scan.format, status=Corpus.Status.READY, root=str(root), progress=1.0)
    Utterance.objects.bulk_create([
        Utterance(
            corpus=corpus, path=str(u.path.relative_to(root)), label=u.label, source_label=u.source_label,
            speaker=u.speaker or "", duration=u.duration, sample_rate=16000, checksum="0" * 64,
        )
        for u in scan.utterances
    ])
    return corpus
