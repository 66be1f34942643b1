"""The decoder refuses playlists and other demuxers that read further files or URLs, audio
whose samples are not a recording, and audio too short to classify (issue 29, items 2-3)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from devsupport.hostile_audio import (
    PLAYLIST_NAMES,
    float_wav_bytes,
    huge_sine,
    playlists,
    secret_file,
)
from devsupport.synth import SR
from recognition.engine.audio import (
    ALLOWED_DEMUXERS,
    MAX_SAMPLE_MAGNITUDE,
    AudioError,
    decode_audio,
    native_sample_rate,
    open_input,
    probe_duration,
)
from recognition.engine.stream import StreamDecoder


@pytest.fixture
def server_folder(tmp_path, monkeypatch):
    """The working directory holds a real WAV file, as the server's own data folder does."""
    secret_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _refused_cleanly(message: str, folder) -> None:
    assert "not a supported audio format" in message
    assert str(folder) not in message and "secret" not in message and "Errno" not in message


@pytest.mark.parametrize("name", PLAYLIST_NAMES)
def test_playlists_are_refused_as_bytes_file_objects_and_paths(server_folder, name):
    data = playlists(server_folder)[name]
    path = server_folder / f"upload.{name}"
    path.write_bytes(data)
    named = io.BytesIO(data)
    named.name = "upload.m3u8" if name.startswith("hls") else "upload.wav"
    for source in (data, named, path):
        with pytest.raises(AudioError) as caught:
            decode_audio(source)
        _refused_cleanly(str(caught.value), server_folder)
    with pytest.raises(AudioError) as caught:
        probe_duration(path)
    _refused_cleanly(str(caught.value), server_folder)


@pytest.mark.parametrize("name", ["ffconcat", "hls", "sdp"])
def test_playlists_are_refused_by_the_stream_decoder_without_a_mime_type(server_folder, name):
    decoder = StreamDecoder(None)
    try:
        decoder.feed(playlists(server_folder)[name])
        with pytest.raises(AudioError) as caught:
            decoder.close()
    finally:
        decoder.abort()
    _refused_cleanly(str(caught.value), server_folder)


def test_open_input_allows_only_the_listed_demuxers(server_folder):
    with open(server_folder / "secret.wav", "rb") as handle:
        container = open_input(handle)
        try:
            assert container.format.name in ALLOWED_DEMUXERS
        finally:
            container.close()
    assert native_sample_rate(server_folder / "secret.wav") == SR
    with pytest.raises(AudioError, match="not a supported audio format"):
        open_input(io.BytesIO(playlists(server_folder)["ffconcat"]), format="concat")


@pytest.mark.parametrize("scale", [1e20, 1e6, MAX_SAMPLE_MAGNITUDE / 0.3 * 1.1])
def test_huge_finite_samples_are_refused(scale):
    with pytest.raises(AudioError, match="out of range"):
        decode_audio(float_wav_bytes(huge_sine(scale)))


def test_samples_a_little_over_full_scale_are_kept_as_they_are():
    wave = huge_sine(1.5 / 0.3)  # peak 1.5: float formats allow headroom
    decoded = decode_audio(float_wav_bytes(wave))
    np.testing.assert_allclose(decoded, wave, rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(bad):
    wave = huge_sine(1.0)
    wave[100] = bad
    with pytest.raises(AudioError, match="non-finite"):
        decode_audio(float_wav_bytes(wave))


def test_huge_samples_are_refused_in_a_stream_too():
    # Opus cannot carry such values: a float WAV, fed in chunks without a MIME type, can.
    data = float_wav_bytes(huge_sine(1e20))
    decoder = StreamDecoder(None)
    try:
        with pytest.raises(AudioError, match="out of range"):
            for start in range(0, len(data), 4096):
                decoder.feed(data[start : start + 4096])
            decoder.close()
    finally:
        decoder.abort()


@pytest.mark.parametrize("samples", [1, 160])  # one sample, 10 ms
def test_too_short_audio_is_refused(samples):
    wave = huge_sine(1.0, seconds=samples / SR)
    with pytest.raises(AudioError, match="too short"):
        decode_audio(float_wav_bytes(wave))
