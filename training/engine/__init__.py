"""Framework-free training engine: corpus formats, label sets, splits, batching, trainer, metrics.

Nothing in this package imports Django, Channels or Celery; it can be used from a plain
Python prompt. It may import ``recognition.engine`` (dependencies point training -> recognition).
"""
