"""A daemon thread that calls ``beat()`` every ``interval`` seconds while work runs in a
Celery task: it stamps the row's heartbeat (so a reaper can tell a live task from one whose
worker died) and can mirror flags such as a run's cancel request."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import close_old_connections

log = logging.getLogger(__name__)

__all__ = ["Heartbeat"]


class Heartbeat(threading.Thread):
    def __init__(self, name: str, interval: float, beat: Callable[[], None]) -> None:
        super().__init__(name=f"heartbeat-{name}", daemon=True)
        self.interval = interval
        self.beat = beat
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.wait(self.interval):
                try:
                    self.beat()
                except Exception:  # noqa: BLE001 — a lost beat is retried next time; the work goes on
                    log.warning("%s: heartbeat failed", self.name, exc_info=True)
        finally:
            close_old_connections()

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(timeout=5)
