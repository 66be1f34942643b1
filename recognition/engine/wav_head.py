"""The head of an audio input, peeked without consuming it, and the length a WAV header
promises: the trace of a cut-off WAV upload that FFmpeg would quietly shorten."""

from __future__ import annotations

import os
from typing import BinaryIO

__all__ = ["AudioSource", "peek_head", "wav_promised_seconds"]

AudioSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

# How much of the input is read ahead to find a WAV file's data chunk (chunks such as
# LIST, bext or iXML may come before it).
_WAV_HEAD_BYTES = 1 << 16


def peek_head(source: AudioSource) -> bytes:
    """The first bytes of ``source`` without consuming it; empty when it cannot be peeked."""
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return bytes(source[:_WAV_HEAD_BYTES])
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as handle:
                return handle.read(_WAV_HEAD_BYTES)
        if source.seekable():
            position = source.tell()
            try:
                return bytes(source.read(_WAV_HEAD_BYTES))
            finally:
                source.seek(position)
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # audio._open reports unreadable sources with a proper message
    return b""


def wav_promised_seconds(head: bytes) -> float | None:
    """Length promised by a RIFF/WAVE data chunk, or None when there is none.

    FFmpeg quietly shortens a WAV whose data chunk runs past the end of the file to what
    is there, so a cut-off upload would pass as a shorter clip; the header's own number
    is the only trace of the loss. Streaming writers leave 0 or 0xFFFFFFFF as a
    placeholder size: those promise nothing.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position, byte_rate = 12, 0
    while position + 8 <= len(head):
        chunk, size = (
            head[position : position + 4],
            int.from_bytes(head[position + 4 : position + 8], "little"),
        )
        body = position + 8
        if chunk == b"fmt " and body + 12 <= len(head):
            byte_rate = int.from_bytes(head[body + 8 : body + 12], "little")
        elif chunk == b"data":
            if byte_rate <= 0 or size == 0 or size >= 0x7FFFFFFF:
                return None
            return size / byte_rate
        position = body + size + (size & 1)  # chunks are padded to even sizes
    return None
