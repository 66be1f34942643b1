"""python manage.py register_starter: make the shipped starter model the active version when
the registry holds no model at all (``make run`` does this on every start)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from recognition.engine.checkpoint import CheckpointError
from recognition.services.starter import model_version_register_starter


class Command(BaseCommand):
    help = "Register the shipped starter model as the active version if no model version exists."

    def handle(self, *args, **options):
        try:
            version = model_version_register_starter()
        except (OSError, CheckpointError) as exc:
            raise CommandError(f"the starter model could not be registered: {exc}") from exc
        self.stdout.write(f"registered {version}" if version else "a model version exists already; nothing registered")
