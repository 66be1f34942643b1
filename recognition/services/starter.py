"""The starter model that ships with the project: registered as the active version on first
start, so recording, classifying and the API work before anything is trained.

The checkpoint (a BLSTM + attention head on the Whisper-base encoder's states, trained on
RAVDESS and nEMO) and its model card live in ``recognition/starter/``; ``manage.py
build_starter`` rebuilds them from the corpora.
"""

from __future__ import annotations

from pathlib import Path

from django.core.files import File
from django.db import IntegrityError, transaction

from recognition.engine.checkpoint import load_checkpoint
from recognition.engine.tta import tta_speeds

from ..models import ModelVersion
from .model_versions import _test_metrics, file_sha256

__all__ = ["STARTER_DIR", "STARTER_NAME", "STARTER_PATH", "model_version_register_starter"]

STARTER_DIR = Path(__file__).resolve().parent.parent / "starter"
STARTER_PATH = STARTER_DIR / "starter.pt"
STARTER_NAME = "Starter (Whisper-base, RAVDESS + nEMO)"


def model_version_register_starter(*, path: Path = STARTER_PATH) -> ModelVersion | None:
    """Register the shipped starter as the active version when no version exists at all.

    Returns the new version, or None when there was one already. Safe when several
    processes start together: the row is inserted as version 1 of a fixed name, so the
    unique (name, version) constraint lets exactly one of them win, and a loser removes the
    file copy it made. A missing or refused checkpoint raises (``CheckpointError`` says why).
    """
    if ModelVersion.objects.exists():
        return None
    ck = load_checkpoint(path)
    metrics, confusion = _test_metrics(ck.metrics)
    digest = file_sha256(path)
    version = ModelVersion(
        name=STARTER_NAME,
        version=1,
        sha256=digest,
        size_bytes=path.stat().st_size,
        labels=list(ck.labels),
        feature_config=ck.feature_config.to_dict(),
        model_config=ck.model_config.to_dict(),
        metrics=metrics,
        confusion=confusion,
        lineage={"source": "starter model shipped with the project", "corpora": list(ck.extra.get("corpora") or []),
                 "model_card": "recognition/starter/MODEL_CARD.md"},
        inference={"members": ck.n_members, "speeds": list(tta_speeds(ck.extra.get("train_config")))},
        notes="Trained on every speaker of RAVDESS and nEMO; licence CC BY-NC-SA 4.0 (see the model card).",
        is_active=True,
    )
    with open(path, "rb") as fh:
        version.checkpoint.save(f"starter-{digest[:8]}.pt", File(fh), save=False)
    try:
        with transaction.atomic():
            if ModelVersion.objects.exists():
                raise IntegrityError("a version exists already")
            version.save()
    except IntegrityError:
        version.checkpoint.delete(save=False)
        return None
    return version
