"""Writes and work for the recognition app, one topic per module (as in ``training.services``):

- ``model_versions``: register, activate and delete ModelVersions (re-exported here: the
  training app registers its models through them);
- ``inference``: the per-process predictor cache and the inference thread pool;
- ``classify``: the one classify path of the upload page, the API, the live stream's final
  result and the ``classify`` command;
- ``uploads``: the upload size limit; ``streaming`` and ``stream_limits``: live recognition;
- ``tokens``: personal API tokens.
"""

from .model_versions import *  # noqa: F401,F403
from .model_versions import __all__  # noqa: F401
