"""Shared rule for the engine's config dataclasses: a stored settings dict may only hold
known fields (a checkpoint or form with a misspelt key fails loudly, never silently).

Options that were measured, not adopted and then removed (bench/RESULTS.md keeps the findings)
stay readable where they were off: every checkpoint and stored recipe wrote them out, at their
off value unless someone switched them on. A stored value that switches one on is refused, as
this version cannot reproduce what it trained."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

__all__ = ["known_fields"]


def known_fields(cls: type, data: dict[str, Any], what: str, retired: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``data`` after checking every key is a field of dataclass ``cls``.

    ``retired``: removed option → its off value; such a key is dropped when it holds that value.

    Raises:
        ValueError: naming the unknown keys and the allowed ones, or a retired option switched on.
    """
    data = dict(data)
    for key, off in (retired or {}).items():
        if key in data and (value := data.pop(key)) != off:
            raise ValueError(f"{what}: {key}={value!r} switches on an option this version no longer has "
                             "(measured, not adopted and removed; see bench/RESULTS.md)")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what}: {unknown}; allowed: {sorted(known)}")
    return data
