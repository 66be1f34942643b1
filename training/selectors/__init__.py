"""Reads for the training app (pages, consumers). Writes live in ``training.services``."""

from .corpora import *  # noqa: F401,F403
from .corpora import __all__ as _corpora_all
from .runs import *  # noqa: F401,F403
from .runs import __all__ as _runs_all

__all__ = [*_corpora_all, *_runs_all]
