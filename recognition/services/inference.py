"""Shared model loading and the process-wide inference thread pool.

A web process serves many connections but holds each model once: :func:`predictor_for`
keeps one :class:`~recognition.engine.predictor.Predictor` per ``(version id, sha256)``,
loaded under a per-key lock so concurrent first requests load it once. The predictor is
safe to share between threads (see its module docstring), so the pool's threads use it
without a lock.

Async code (consumers) never runs a model on the event loop: :func:`run_inference` sends
the call to :func:`inference_executor`, a pool of ``SER_INFERENCE_THREADS`` threads. One
slow classification then occupies one pool thread, while the event loop keeps serving
every other connection and the other threads keep classifying.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings

from recognition.engine.checkpoint import CheckpointError
from recognition.engine.predictor import Predictor
from recognition.engine.whisper import WhisperWeightsError
from recognition.models import ModelVersion
from recognition.selectors import model_version_active

__all__ = [
    "NoModelError",
    "UnknownVersionError",
    "predictor_for",
    "predictor_load",
    "model_version_resolve",
    "inference_executor",
    "run_inference",
    "predictor_cache_clear",
]

T = TypeVar("T")

# Versions kept in memory at once. Usually one (the active version) is used; a few more let
# people compare versions without reloading on every request, while memory stays bounded.
_CACHE_SIZE = 4

_cache: OrderedDict[tuple[int, str], Predictor] = OrderedDict()
_cache_lock = threading.Lock()  # guards _cache and _key_locks, held only briefly
_key_locks: dict[tuple[int, str], threading.Lock] = {}

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


class NoModelError(Exception):
    """No model can serve the request: none is active, the id is unknown, or its file is unusable.

    The message is written for the person using the page or the API.
    """


class UnknownVersionError(NoModelError):
    """An explicitly requested version id names no version (the caller's mistake, not the server's)."""


def model_version_resolve(version_id: int | None = None) -> ModelVersion:
    """The requested version (``None``: the active one). Touches the database.

    Raises:
        NoModelError: no version is active.
        UnknownVersionError: ``version_id`` names no version.
    """
    if version_id is None:
        version = model_version_active()
        if version is None:
            raise NoModelError("No model is active yet. An administrator must activate a model version first.")
        return version
    try:
        return ModelVersion.objects.get(pk=int(version_id))
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise UnknownVersionError(f"There is no model version with id {version_id!r}.") from None


def predictor_load(version: ModelVersion) -> Predictor:
    """The shared predictor of ``version``, loading its checkpoint on first use. No database access.

    Thread-safe: concurrent callers for one version wait for a single load; callers for
    other, already loaded versions are not held up by it.

    Raises:
        NoModelError: the checkpoint file is missing or refused by the engine's loader, or its
            front end's encoder weights are missing or altered (the message says how to fix it).
    """
    key = (int(version.pk), str(version.sha256))
    with _cache_lock:
        predictor = _cache.get(key)
        if predictor is not None:
            _cache.move_to_end(key)
            return predictor
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _cache_lock:  # another thread may have finished the load while we waited
            predictor = _cache.get(key)
        if predictor is not None:
            return predictor
        try:
            path = version.checkpoint.path
        except (ValueError, NotImplementedError) as exc:
            raise NoModelError(f"Model {version} has no usable checkpoint file ({exc}).") from exc
        try:
            # The CPU is the right place for interactive inference of this small model even on
            # a GPU host: no transfer latency, and the GPU stays free for training.
            predictor = Predictor.from_checkpoint(path, device="cpu", tta=settings.SER_TEST_TIME_AUGMENTATION)
        except (CheckpointError, WhisperWeightsError) as exc:
            raise NoModelError(f"Model {version} cannot be loaded: {exc}") from exc
        with _cache_lock:
            _cache[key] = predictor
            _cache.move_to_end(key)
            while len(_cache) > _CACHE_SIZE:
                old_key, _ = _cache.popitem(last=False)
                _key_locks.pop(old_key, None)
    return predictor


def predictor_for(version_id: int | None = None) -> tuple[ModelVersion, Predictor]:
    """``(version, predictor)`` for ``version_id`` (``None``: the active version), cached per process.

    Sync code (views, the API) calls this directly. Async code should resolve the version
    with ``database_sync_to_async(model_version_resolve)`` and load it with
    ``run_inference(predictor_load, version)``, so neither step blocks the event loop.

    Raises:
        UnknownVersionError: ``version_id`` names no version.
        NoModelError: no active version, or an unloadable checkpoint.
    """
    version = model_version_resolve(version_id)
    return version, predictor_load(version)


def predictor_cache_clear() -> None:
    """Forget every loaded predictor (tests; after a checkpoint file was replaced)."""
    with _cache_lock:
        _cache.clear()
        _key_locks.clear()


def _worker_init() -> None:
    # Each pool thread runs one model call at a time with one intra-op thread: with
    # SER_INFERENCE_THREADS about the number of cores this keeps the cores busy without the
    # oversubscription of N threads each spawning N more.
    import torch

    torch.set_num_threads(1)


def inference_executor() -> ThreadPoolExecutor:
    """The process-wide pool for inference off the event loop (``SER_INFERENCE_THREADS`` threads)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            workers = max(1, int(settings.SER_INFERENCE_THREADS))
            _executor = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="ser-inference", initializer=_worker_init
            )
        return _executor


_in_flight = 0  # jobs given to the pool and not finished yet, over the whole process
_in_flight_lock = threading.Lock()


def inference_busy() -> bool:
    """Whether every thread of the pool has work. Optional jobs (provisional results) are
    skipped then, so under load the segments' own results never queue behind them."""
    return _in_flight >= max(1, int(settings.SER_INFERENCE_THREADS))


async def run_inference(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in :func:`inference_executor` and await its result.

    If the awaiting task is cancelled (the client went away) the call still finishes in
    its thread, but nobody waits for it and its result is dropped.
    """
    global _in_flight

    def counted() -> T:
        global _in_flight
        try:
            return fn(*args, **kwargs)
        finally:
            with _in_flight_lock:
                _in_flight -= 1

    with _in_flight_lock:
        _in_flight += 1
    try:
        future = asyncio.get_running_loop().run_in_executor(inference_executor(), counted)
    except BaseException:  # never submitted: nothing will count it down
        with _in_flight_lock:
            _in_flight -= 1
        raise
    return await future  # cancelled or not, the job runs to its end and counts itself down
