"""Writes for the model registry: register a checkpoint as a ModelVersion, activate one.

Every checkpoint passes the engine's loader before it is accepted, so the registry never
holds a file the predictor would refuse.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import Max

from recognition.engine.checkpoint import CheckpointError, load_checkpoint
from recognition.engine.tta import tta_speeds
from recognition.models import ModelVersion

__all__ = [
    "CheckpointError",
    "file_sha256",
    "model_version_activate",
    "model_version_delete",
    "model_version_register",
    "model_version_register_upload",
]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _test_metrics(metrics: dict[str, Any]) -> tuple[dict, list]:
    """Pick the test metrics (else validation) out of a checkpoint's metrics dict."""
    source = metrics.get("test") or metrics.get("validation") or {}
    kept = {k: source[k] for k in ("wa", "ua", "macro_f1", "n", "per_class") if k in source}
    kept["split"] = "test" if metrics.get("test") else ("validation" if metrics.get("validation") else "none")
    if metrics.get("protocol"):
        kept["protocol"] = metrics["protocol"]
    # Scores as the app classifies (test-time augmentation) and of lone recordings, where
    # the trainer recorded them: the model page shows them beside the one-pass scores.
    kept.update({key: metrics[key] for key in ("tta", "alone") if isinstance(metrics.get(key), dict)})
    return kept, list(source.get("confusion") or [])


def model_version_register(
    *,
    name: str,
    checkpoint_path: str | os.PathLike,
    lineage: dict | None = None,
    metrics: dict | None = None,
    confusion: list | None = None,
    notes: str = "",
    created_by: AbstractBaseUser | None = None,
    activate: bool = False,
) -> ModelVersion:
    """Validate a checkpoint with the engine's loader, copy it into media, record it.

    ``metrics``/``confusion`` override what the checkpoint carries (k-fold runs pass their
    fold means). The version number counts up per name. Raises ``CheckpointError`` for a file
    the engine refuses; nothing is stored then.
    """
    name = name.strip()[:100] or "model"
    ck = load_checkpoint(checkpoint_path)  # raises CheckpointError with a clear message
    ck_metrics, ck_confusion = _test_metrics(ck.metrics)
    digest = file_sha256(checkpoint_path)
    size = Path(checkpoint_path).stat().st_size
    for _ in range(5):  # two registrations of one name at once: retry on the unique constraint
        try:
            with transaction.atomic():
                number = (ModelVersion.objects.filter(name=name).aggregate(m=Max("version"))["m"] or 0) + 1
                version = ModelVersion(
                    name=name,
                    version=number,
                    sha256=digest,
                    size_bytes=size,
                    labels=list(ck.labels),
                    feature_config=ck.feature_config.to_dict(),
                    model_config=ck.model_config.to_dict(),
                    metrics=metrics if metrics is not None else ck_metrics,
                    confusion=confusion if confusion is not None else ck_confusion,
                    lineage=lineage or {},
                    inference={"members": ck.n_members, "speeds": list(tta_speeds(ck.extra.get("train_config")))},
                    notes=notes,
                    created_by=created_by,
                )
                with open(checkpoint_path, "rb") as fh:
                    version.checkpoint.save(f"{_slug(name)}-v{number}-{digest[:8]}.pt", File(fh), save=False)
                try:
                    version.save()
                except BaseException:
                    version.checkpoint.delete(save=False)
                    raise
            break
        except IntegrityError:
            continue
    else:
        raise IntegrityError(f"could not allocate a version number for {name!r}")
    if activate:
        model_version_activate(version=version)
    return version


def model_version_register_upload(
    *, name: str, uploaded: Any, notes: str = "", created_by: AbstractBaseUser | None = None
) -> ModelVersion:
    """Register an uploaded checkpoint file (admin). The upload is validated from a temporary
    copy; a refused file raises ``CheckpointError`` and leaves nothing behind. A file already
    in the registry (same sha256) is refused with the version that holds it."""
    tmp_dir = Path(settings.DATA_DIR) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    filename = Path(str(getattr(uploaded, "name", "") or "upload.pt").replace("\x00", "")).name[-120:] or "upload.pt"
    folder = Path(tempfile.mkdtemp(dir=tmp_dir))
    # The copy keeps the upload's own name, so a refusal message names the user's file.
    tmp = folder / (filename if filename.endswith(".pt") else filename + ".pt")
    try:
        with open(tmp, "wb") as out:
            for chunk in uploaded.chunks():
                out.write(chunk)
        existing = ModelVersion.objects.filter(sha256=file_sha256(tmp)).order_by("pk").first()
        if existing is not None:
            raise CheckpointError(
                f"{filename} is already registered as {existing} (id {existing.pk}); nothing was stored. "
                "Open that version, or change its notes there."
            )
        return model_version_register(
            name=name, checkpoint_path=tmp, lineage={"source": "uploaded checkpoint", "filename": filename},
            notes=notes, created_by=created_by,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the one active version. The partial unique index guarantees that two
    concurrent activations cannot both win; the loser's transaction fails and is retried."""
    for _ in range(5):
        try:
            with transaction.atomic():
                ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
                ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
            break
        except IntegrityError:
            continue
    else:
        raise IntegrityError(f"could not activate model version {version.pk} after 5 attempts")
    version.refresh_from_db()
    return version


def model_version_delete(*, version: ModelVersion) -> None:
    """Delete the row and its checkpoint file."""
    with transaction.atomic():
        version.delete()
        transaction.on_commit(lambda: version.checkpoint.delete(save=False))


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower())
    return keep.strip("-")[:40] or "model"

