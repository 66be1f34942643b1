"""Reads for the recognition app. Writes live in ``recognition.services``."""

from .model_versions import *  # noqa: F401,F403
from .model_versions import __all__ as _model_versions_all
from .tokens import *  # noqa: F401,F403
from .tokens import __all__ as _tokens_all

__all__ = [*_model_versions_all, *_tokens_all]
