"""The installation's secret key when ``SECRET_KEY`` is not set: generated once, kept in a file.

Imported by the settings, so it uses no Django.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["secret_key_load_or_create"]

_KEY_BYTES = 50


def secret_key_load_or_create(path: Path) -> str:
    """The key stored in ``path``; a new random one (mode 0600) when the file does not exist.

    Processes that start together (web server, workers) may race to create it: the key is
    written to a private temporary file and linked into place, so exactly one key wins and
    every process reads that one, never a half-written file.
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(_KEY_BYTES) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won the race: use its key
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text().strip()
    if len(key) < _KEY_BYTES:
        raise RuntimeError(f"{path} holds no usable secret key; delete it to have a new one generated")
    return key
