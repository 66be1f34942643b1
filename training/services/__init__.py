"""Writes for the training app. Import from the submodules: ``training.services.runs``,
``training.services.corpora``, ``training.services.datasets``."""
