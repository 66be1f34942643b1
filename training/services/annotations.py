"""Notes and tags on runs: what a person wants to remember about a run and find it by."""

from __future__ import annotations

import re

from training.models import TrainingRun

from .runs import RunError

__all__ = ["parse_tags", "run_annotate", "MAX_TAGS", "MAX_NOTES"]

MAX_TAGS = 12
MAX_NOTES = 5000
_TAG = re.compile(r"^[\w.+-]{1,30}$")


def parse_tags(text: str) -> list[str]:
    """``"baseline, whisper  ravdess"`` → ``["baseline", "whisper", "ravdess"]``: split on commas
    and spaces, lower case, duplicates dropped, order kept. Raises RunError for a tag with
    other characters than letters, digits and ``. + - _``, or over 30 characters, or too many."""
    tags: list[str] = []
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        tag = part.lower()
        if not _TAG.match(tag):
            raise RunError(f"Tags are up to 30 letters, digits or . + - _ each; {part!r} is not.")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise RunError(f"At most {MAX_TAGS} tags per run; got {len(tags)}.")
    return tags


def run_annotate(*, run: TrainingRun, notes: str, tags: str) -> TrainingRun:
    """Replace a run's notes and tags (any state: a note is often written after the fact)."""
    notes = notes.replace("\r\n", "\n").strip()
    if len(notes) > MAX_NOTES:
        raise RunError(f"Notes are limited to {MAX_NOTES} characters; these have {len(notes)}.")
    parsed = parse_tags(tags)
    TrainingRun.objects.filter(pk=run.pk).update(notes=notes, tags=parsed)
    run.notes, run.tags = notes, parsed
    return run
