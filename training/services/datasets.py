"""From database rows to the engine's corpus scans: training reads what was imported, it
never rescans folders."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from django.conf import settings

from training.engine.corpora import CorpusScan
from training.engine.corpora import Utterance as EngineUtterance
from training.models import Corpus

__all__ = ["corpus_root", "corpus_scan", "corpus_scans", "label_counts"]


def corpus_root(corpus: Corpus) -> Path:
    """Absolute folder of a corpus' audio (uploads are stored relative to MEDIA_ROOT)."""
    root = Path(corpus.root)
    return root if root.is_absolute() else Path(settings.MEDIA_ROOT) / root


def corpus_scan(corpus: Corpus) -> CorpusScan:
    root = corpus_root(corpus)
    utterances = [
        EngineUtterance(
            path=root / u["path"], label=u["label"], speaker=u["speaker"] or None, corpus=corpus.name,
            duration=u["duration"], source_label=u["source_label"],
        )
        for u in corpus.utterances.order_by("path").values("path", "label", "speaker", "duration", "source_label")
    ]
    return CorpusScan(name=corpus.name, format=corpus.format, root=root, utterances=utterances)


def corpus_scans(corpora: Iterable[Corpus]) -> list[CorpusScan]:
    return [corpus_scan(c) for c in sorted(corpora, key=lambda c: c.name)]


def label_counts(corpora: Iterable[Corpus]) -> dict[str, dict[str, int]]:
    """Corpus name → label → utterance count, from the table (no file access)."""
    from django.db.models import Count

    out: dict[str, dict[str, int]] = {}
    for corpus in corpora:
        rows = corpus.utterances.values("label").annotate(n=Count("id"))
        out[corpus.name] = {r["label"]: r["n"] for r in rows}
    return out
