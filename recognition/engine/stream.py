"""Incremental decoding of a live audio stream (MediaRecorder chunks) to 16 kHz mono float32.

FFmpeg's demuxers pull their input through a read callback. :class:`StreamDecoder` gives
them one that blocks until the next chunk arrives, and runs the demuxer, the decoder and
the resampler in a thread of its own: each byte is read and decoded once, so a stream
costs O(n) overall, however many chunks it comes in. :meth:`StreamDecoder.feed` hands a
chunk to that thread, waits until the thread has used every byte it was given (it is
then blocked asking for more), and returns the samples decoded meanwhile. Results thus
do not depend on thread timing: the same chunks give the same samples.

Containers: WebM/Matroska with Opus (Chrome, Firefox), Ogg/Opus (Firefox) and fragmented
MP4/AAC (Safari), or anything FFmpeg recognises when the MIME type names none of them.

Every failure is an :class:`~recognition.engine.audio.AudioError` raised by the next
``feed`` (or ``close``), promptly:

- a wrong container, or garbage before the header: as soon as FFmpeg has read enough to
  tell, and at the latest once ``max_header_bytes`` arrived without a readable header;
- garbage later in the stream: FFmpeg's WebM and Ogg demuxers skip it silently while they
  look for the next valid block, so the bytes are counted instead. Bytes that end up in no
  packet beyond a small allowance per packet (container overhead) mean garbage, and so do
  ``max_undecodable_bytes`` received without one decoded sample;
- a demuxer that stops before the stream was closed (MP4 after garbage): at once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator

import av
import numpy as np

from . import SAMPLE_RATE
from .audio import _DECODE_ERRORS, AudioError, _reason, _to_mono, open_input

__all__ = ["StreamDecoder", "container_for_mime"]

# MIME type (without parameters) -> FFmpeg demuxer. None: let FFmpeg probe the bytes.
_MIME_FORMATS = {
    "audio/webm": "matroska",
    "video/webm": "matroska",
    "audio/x-matroska": "matroska",
    "audio/ogg": "ogg",
    "application/ogg": "ogg",
    "audio/mp4": "mp4",
    "video/mp4": "mp4",
}

# How each container's stream begins, checked on its first bytes so that another format
# (WAV, a text, random bytes) is refused with the first chunk: FFmpeg's demuxers sometimes
# read on through a wrong stream, waiting for more data, before they give up.
_SIGNATURES = {
    "matroska": ((0, b"\x1a\x45\xdf\xa3"),),  # EBML header
    "ogg": ((0, b"OggS"),),
    "mp4": tuple((4, box) for box in (b"ftyp", b"styp", b"moov", b"moof", b"free", b"skip", b"wide")),
}
_SIGNATURE_BYTES = 8

# Undecodable packets tolerated (a glitch) before the stream counts as corrupt: more than
# this many in a row, or more than 2 % of all packets once a stream is long.
_MAX_BAD_RUN = 3
_MAX_BAD_SHARE = 0.02
# Bytes that may end up in no packet: the header (WebM ~0.4 kB, MP4 ~0.7 kB), a packet cut
# in half by a chunk boundary, and per packet the container's framing (WebM ~10 bytes per
# block, Ogg ~30 per page, fragmented MP4 ~130 per fragment and entry). Digital silence
# makes 3-byte Opus packets, so the allowance is per packet, not a share of the bytes.
_SKIP_ALLOWANCE = 16 * 1024
_SKIP_PER_PACKET = 200


def container_for_mime(mime: str | None) -> str | None:
    """FFmpeg demuxer name for a MediaRecorder MIME type such as ``audio/webm;codecs=opus``.

    Returns None for an empty type (FFmpeg then probes the bytes).

    Raises:
        AudioError: a type that names no audio container we decode.
    """
    base = (mime or "").split(";", 1)[0].strip().lower()
    if not base:
        return None
    if base not in _MIME_FORMATS:
        raise AudioError(f"Unsupported audio type {base!r}: send WebM/Opus, Ogg/Opus or MP4/AAC.")
    return _MIME_FORMATS[base]


class _ChunkReader:
    """The blocking file object FFmpeg reads from; chunks come from :meth:`StreamDecoder.feed`."""

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        self.chunks: deque[memoryview] = deque()
        self.eof = False
        self.waiting = False  # the decoder thread is blocked in read() with nothing left to read

    def read(self, size: int = -1) -> bytes:
        with self._cond:
            while not self.chunks and not self.eof:
                self.waiting = True
                self._cond.notify_all()
                self._cond.wait()
            self.waiting = False
            if not self.chunks:
                return b""  # end of stream
            head = self.chunks[0]
            if 0 < size < len(head):
                self.chunks[0] = head[size:]
                return bytes(head[:size])
            self.chunks.popleft()
            return bytes(head)


class StreamDecoder:
    """Decode one live stream chunk by chunk; one thread per stream while it is open.

    Args:
        mime: the MediaRecorder MIME type (``audio/webm;codecs=opus``...); empty to probe.
        sample_rate: output rate of the mono float32 samples.
        max_header_bytes: bytes within which the container's header must be readable.
        max_undecodable_bytes: this many bytes received since the last decoded sample
            make the stream "not decodable audio".
        timeout: seconds :meth:`feed` waits for the decoder thread before giving up.

    Raises:
        AudioError: an unsupported MIME type.
    """

    def __init__(
        self,
        mime: str | None,
        *,
        sample_rate: int = SAMPLE_RATE,
        max_header_bytes: int = 16 * 1024,
        max_undecodable_bytes: int = 64 * 1024,
        timeout: float = 10.0,
    ) -> None:
        self._format = container_for_mime(mime)
        self.sample_rate = sample_rate
        self._max_header = max_header_bytes
        self._max_undecodable = max_undecodable_bytes
        self._timeout = timeout
        self._cond = threading.Condition()
        self._reader = _ChunkReader(self._cond)
        self._out: list[np.ndarray] = []
        self._error: AudioError | None = None
        self._opened = False  # the container's header was read
        self._done = False  # the decoder thread has ended
        self._closed = False
        self._packets = 0
        self._packet_bytes = 0
        self._bytes_since_audio = 0
        self._head = b""  # the first bytes, until the signature is checked
        self.bytes_received = 0
        self._thread = threading.Thread(target=self._run, name="ser-stream-decoder", daemon=True)
        self._thread.start()

    # -- caller side ---------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        """Add the next chunk; returns the samples ``(n,)`` float32 it completed (maybe none).

        Raises:
            AudioError: the stream is not decodable audio (also for later calls), or the
                decoder thread did not finish the chunk within ``timeout`` seconds.
            RuntimeError: the decoder was closed.
        """
        if self._closed:
            self._raise_error()
            raise RuntimeError("this StreamDecoder is closed")
        if len(data) and len(self._head) < _SIGNATURE_BYTES:
            self._check_signature(bytes(data[: _SIGNATURE_BYTES - len(self._head)]))
        if len(data):
            with self._cond:
                self.bytes_received += len(data)
                self._bytes_since_audio += len(data)
                self._reader.chunks.append(memoryview(bytes(data)))
                self._reader.waiting = False
                self._cond.notify_all()
                idle = self._cond.wait_for(
                    lambda: self._done or (self._reader.waiting and not self._reader.chunks), self._timeout
                )
                done, opened = self._done, self._opened
                skipped = self.bytes_received - self._packet_bytes
                allowed = _SKIP_ALLOWANCE + _SKIP_PER_PACKET * self._packets
            if not idle:
                self._fail(AudioError("The audio decoder did not keep up with the stream."))
            elif done and self._error is None:
                self._fail(AudioError(f"The {self._describe()} stream ended before the recording did; what followed is not audio."))
            elif not opened and self.bytes_received > self._max_header:
                self._fail(AudioError(f"The stream is not {self._describe()}: no header in its first {self.bytes_received} bytes."))
            elif skipped > allowed:
                self._fail(AudioError(f"The stream carries garbage: {skipped} of its {self.bytes_received} bytes are not audio data."))
        samples = self._take()
        if self._bytes_since_audio > self._max_undecodable:
            self._fail(AudioError(f"The stream is not decodable audio: {self._bytes_since_audio} bytes without a sample."))
        self._raise_error()
        return samples

    def _check_signature(self, more: bytes) -> None:
        self._head += more
        if len(self._head) < _SIGNATURE_BYTES or self._format not in _SIGNATURES:
            return
        if not any(self._head[at : at + len(magic)] == magic for at, magic in _SIGNATURES[self._format]):
            self._fail(AudioError(f"The stream is not {self._describe()}: its first bytes are not that format's header."))
            self._raise_error()

    def close(self) -> np.ndarray:
        """End of stream: flush the decoder and return the last samples ``(n,)``.

        Raises:
            AudioError: the stream was not decodable audio.
        """
        if self._closed:
            self._raise_error()
            return np.zeros(0, np.float32)
        self._closed = True
        with self._cond:
            self._reader.eof = True
            self._cond.notify_all()
        self._thread.join(self._timeout)
        samples = self._take()
        if self._thread.is_alive():
            self._fail(AudioError("The audio decoder did not finish the stream."))
        self._raise_error()
        return samples

    def abort(self) -> None:
        """Stop without waiting (the client went away): the thread sees end-of-stream and exits."""
        self._closed = True
        with self._cond:
            self._reader.eof = True
            self._reader.chunks.clear()
            self._out.clear()
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        """Whether the decoder thread is still running."""
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the decoder thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _take(self) -> np.ndarray:
        with self._cond:
            out, self._out = self._out, []
        if not out:
            return np.zeros(0, np.float32)
        samples = np.concatenate(out).astype(np.float32, copy=False)
        if samples.size:
            self._bytes_since_audio = 0
            if not np.all(np.isfinite(samples)):
                self._fail(AudioError("The audio contains non-finite samples (NaN or infinity)."))
        return samples

    def _fail(self, error: AudioError) -> None:
        self._set_error(error)
        self.abort()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _describe(self) -> str:
        names = {"matroska": "WebM audio", "ogg": "Ogg audio", "mp4": "MP4 audio"}
        return names.get(self._format or "", "audio in a known format")

    # -- decoder thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._decode()
        except AudioError as exc:
            self._set_error(exc)
        except _DECODE_ERRORS as exc:
            self._set_error(AudioError(f"The {self._describe()} stream is corrupt ({_reason(exc)})."))
        except Exception as exc:  # noqa: BLE001 — whatever FFmpeg raises, the caller gets an AudioError
            self._set_error(AudioError(f"The audio stream could not be decoded ({type(exc).__name__}: {exc})."))
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _set_error(self, error: AudioError) -> None:
        with self._cond:
            if self._error is None:
                self._error = error

    def _decode(self) -> None:
        try:
            # Read no further than the header needs: a live stream has no more bytes yet.
            # (Not fflags=nobuffer: it drops the packets read while probing.)
            container = open_input(self._reader, format=self._format, options={"probesize": "4096", "analyzeduration": "0"})
        except AudioError as exc:
            if self._reader.eof and self.bytes_received == 0:
                return  # closed before anything arrived: nothing to report
            if self._format is None:
                raise
            raise AudioError(f"The stream is not {self._describe()}.") from exc
        try:
            with self._cond:
                self._opened = True
            if not container.streams.audio:
                raise AudioError("The stream has no audio track.")
            for samples in _to_mono(self._frames(container, container.streams.audio[0]), self.sample_rate):
                if samples.size:
                    with self._cond:
                        self._out.append(samples)
        finally:
            container.close()

    def _frames(self, container: av.container.InputContainer, stream: av.audio.AudioStream) -> Iterator[av.AudioFrame]:
        """Decoded frames, tolerating a few undecodable packets (a glitch) but not a broken stream."""
        packets = bad = run = 0
        for packet in container.demux():  # every stream, so that their bytes are accounted for
            with self._cond:
                self._packets += 1
                self._packet_bytes += packet.size
            if packet.stream.index != stream.index:
                continue
            packets += 1
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as exc:
                bad += 1
                run += 1
                if run > _MAX_BAD_RUN or (packets >= 100 and bad > _MAX_BAD_SHARE * packets):
                    raise AudioError(f"The audio data is corrupt: {bad} of {packets} packets undecodable ({_reason(exc)}).") from exc
                continue
            run = 0
            yield from frames
        # The last, empty packet of the demuxer flushed the decoder above.
