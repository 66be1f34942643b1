"""Uploads that are not audio but make FFmpeg read something else, and audio whose samples
are not a recording. Shared by the engine tests, the web tests (API, page, websocket,
corpus import) and bench/attack.py.

Each playlist names ``secret.wav`` relative to the working directory (the tests ``chdir``
into a folder that holds one) and by absolute path: what an attacker would try.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from devsupport.synth import SR, speech_like, write_wav

SECRET = "secret.wav"
PLAYLIST_NAMES = (
    "ffconcat", "ffconcat-absolute", "ffconcat-file-url", "ffconcat-subfile-url", "ffconcat-http-url", "hls", "hls-http", "sdp",
)


def secret_file(folder: Path) -> Path:
    """A real WAV file the server owns: what the playlists try to make it read."""
    return write_wav(folder / SECRET, speech_like("angry", duration=1.5))


def playlists(folder: Path) -> dict[str, bytes]:
    """:data:`PLAYLIST_NAMES` -> bytes of each "file that names other files or URLs" we refuse."""
    absolute = (folder / SECRET).as_posix()
    return {
        "ffconcat": f"ffconcat version 1.0\nfile {SECRET}\n".encode(),
        "ffconcat-absolute": f"ffconcat version 1.0\nfile '{absolute}'\n".encode(),
        "ffconcat-file-url": f"ffconcat version 1.0\nfile 'file:{SECRET}'\n".encode(),
        "ffconcat-subfile-url": f"ffconcat version 1.0\nfile 'subfile,,start,0,end,0,,:{SECRET}'\n".encode(),
        "ffconcat-http-url": b"ffconcat version 1.0\nfile 'http://127.0.0.1:9/x.wav'\n",
        "hls": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:{absolute}\n#EXT-X-ENDLIST\n".encode(),
        "hls-http": b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/a.ts\n#EXT-X-ENDLIST\n",
        # An SDP description makes FFmpeg listen for RTP on the port it names.
        "sdp": b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n",
    }


def float_wav_bytes(samples: np.ndarray, sample_rate: int = SR) -> bytes:
    """A WAV file of 32-bit IEEE float samples (format tag 3), written as they are."""
    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = (3).to_bytes(2, "little") + (1).to_bytes(2, "little") + sample_rate.to_bytes(4, "little")
    fmt += (sample_rate * 4).to_bytes(4, "little") + (4).to_bytes(2, "little") + (32).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt + b"data" + len(data).to_bytes(4, "little") + data
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def huge_sine(scale: float = 1e20, seconds: float = 1.5) -> np.ndarray:
    """A 0.3-amplitude 220 Hz sine times ``scale``: finite, but no recording."""
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t) * scale).astype(np.float32)
