"""Celery tasks. Each receives database ids, re-fetches, and calls a service."""

from .corpora import corpus_import  # noqa: F401
from .runs import reap_stale, run_train  # noqa: F401
