"""The Celery application. Broker: Redis (embedded or ``REDIS_URL``); results are not used,
because every task keeps its state in our own tables."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ser_site.settings")

app = Celery("ser_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
