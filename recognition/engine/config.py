"""Shared rule for the engine's config dataclasses: a stored settings dict may only hold
known fields (a checkpoint or form with a misspelt key fails loudly, never silently)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

__all__ = ["known_fields"]


def known_fields(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    """A copy of ``data`` after checking every key is a field of dataclass ``cls``.

    Raises:
        ValueError: naming the unknown keys and the allowed ones.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what}: {unknown}; allowed: {sorted(known)}")
    return dict(data)
