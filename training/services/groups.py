"""Channel-layer group names: the one place that spells them.

Services send to these groups (the Celery worker), consumers join them (the websocket side).
"""

from __future__ import annotations

__all__ = ["import_group", "run_group"]


def run_group(run_id: int) -> str:
    """The group of a training run's live updates (``run.epoch``, ``run.progress``, ``run.status``, ``run.log``)."""
    return f"run-{run_id}"


def import_group(corpus_id: int) -> str:
    """The group of a corpus import's progress (``import.progress``, ``import.status``)."""
    return f"import-{corpus_id}"
