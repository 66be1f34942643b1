"""StreamDecoder: incremental WebM/Ogg/MP4 decoding, prompt errors, no leftover threads."""

from __future__ import annotations

import numpy as np
import pytest

from devsupport.recorder import encode_chunks
from devsupport.synth import SR, speech_like, speech_silence_speech, write_wav
from recognition.engine.audio import AudioError, decode_audio
from recognition.engine.stream import StreamDecoder, container_for_mime
from recognition.engine.vad import StreamingVad, segment_speech

MIMES = {"webm": "audio/webm;codecs=opus", "ogg": "audio/ogg;codecs=opus", "mp4": "audio/mp4"}


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    return speech_silence_speech("angry", speech=1.0, silence=1.0)[0]


def decode_stream(chunks: list[bytes], mime: str) -> tuple[list[np.ndarray], np.ndarray]:
    decoder = StreamDecoder(mime)
    parts = [decoder.feed(chunk) for chunk in chunks]
    last = decoder.close()
    assert decoder.join(10)
    return parts, last


@pytest.mark.parametrize("container", ["webm", "ogg", "mp4"])
def test_chunks_decode_to_what_the_whole_file_decodes_to(wave, container):
    chunks = encode_chunks(wave, container=container)
    assert len(chunks) == int(np.ceil(wave.size / SR / 0.25))
    parts, last = decode_stream(chunks, MIMES[container])
    streamed = np.concatenate([*parts, last])
    whole = decode_audio(b"".join(chunks))
    np.testing.assert_array_equal(streamed, whole)
    assert abs(streamed.size - wave.size) < 0.05 * SR  # codec padding only
    # Each chunk's audio is out as soon as the chunk is in (minus the resampler's few samples).
    decoded = np.cumsum([p.size for p in parts]) / SR
    for k, seconds in enumerate(decoded[:-1]):
        assert seconds >= (k + 1) * 0.25 - 0.05, (k, seconds)


@pytest.mark.parametrize("size", [1, 97, 5000])
def test_any_chunking_gives_the_same_samples(wave, size):
    data = b"".join(encode_chunks(wave[: 2 * SR]))
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    parts, last = decode_stream(chunks, MIMES["webm"])
    np.testing.assert_array_equal(np.concatenate([*parts, last]), decode_audio(data))


def test_streaming_vad_on_decoded_chunks_matches_the_batch_segmentation():
    wave, truth = speech_silence_speech("happy", speech=0.8, silence=0.7)
    chunks = encode_chunks(wave)
    decoder, vad, found = StreamDecoder(MIMES["webm"]), StreamingVad(), []
    for chunk in chunks:
        found += vad.push(decoder.feed(chunk))
    found += vad.push(decoder.close()) + vad.flush()
    assert found == segment_speech(decode_audio(b"".join(chunks)))
    assert len(found) == len(truth)


def test_the_first_segment_is_known_before_the_stream_ends():
    wave, truth = speech_silence_speech("angry", speech=1.0, silence=1.0)
    decoder, vad = StreamDecoder(MIMES["webm"]), StreamingVad()
    chunks_until_segment = None
    for k, chunk in enumerate(encode_chunks(wave)):
        if vad.push(decoder.feed(chunk)) and chunks_until_segment is None:
            chunks_until_segment = k + 1
    # End of speech + 300 ms of pause + at most one 250 ms chunk and a frame.
    assert chunks_until_segment is not None
    assert chunks_until_segment * 0.25 <= truth[0][1] + 0.3 + 0.25 + 0.05
    decoder.abort()
    assert decoder.join(10)


@pytest.mark.parametrize("mime,expected", [("audio/webm;codecs=opus", "matroska"), ("AUDIO/OGG", "ogg"), ("", None), ("audio/mp4", "mp4")])
def test_mime_types(mime, expected):
    assert container_for_mime(mime) == expected


def test_unsupported_mime_type():
    with pytest.raises(AudioError, match="Unsupported audio type 'audio/flac'"):
        StreamDecoder("audio/flac")


@pytest.mark.parametrize("container", ["webm", "ogg", "mp4"])
def test_another_format_is_refused_with_the_first_chunk(tmp_path, container):
    wav = write_wav(tmp_path / "a.wav", speech_like("sad", duration=1.0)).read_bytes()
    decoder = StreamDecoder(MIMES[container])
    with pytest.raises(AudioError, match="not (WebM|Ogg|MP4) audio"):
        decoder.feed(wav[:4000])
    with pytest.raises(AudioError):  # and for good
        decoder.feed(wav[4000:8000])
    assert decoder.join(10)


def test_random_bytes_are_refused_at_once():
    rng = np.random.default_rng(0)
    for _ in range(5):
        decoder = StreamDecoder(MIMES["webm"])
        with pytest.raises(AudioError, match="not WebM audio"):
            decoder.feed(rng.bytes(2000))
        assert decoder.join(10)


def test_webm_announced_as_ogg_is_refused():
    decoder = StreamDecoder(MIMES["ogg"])
    with pytest.raises(AudioError, match="not Ogg audio"):
        decoder.feed(encode_chunks(speech_like("sad", duration=0.5))[0])


def test_a_bad_header_behind_a_good_signature_is_refused_promptly():
    rng = np.random.default_rng(3)
    decoder = StreamDecoder(MIMES["webm"])
    with pytest.raises(AudioError, match="not WebM audio"):
        decoder.feed(b"\x1a\x45\xdf\xa3" + rng.bytes(1000))
        for _ in range(20):  # 20 kB: past the header allowance at the latest
            decoder.feed(rng.bytes(1000))
    assert decoder.join(10)


@pytest.mark.parametrize("garbage", ["random", "zeros"])
def test_garbage_after_a_valid_start_ends_the_stream(wave, garbage):
    chunks = encode_chunks(wave)
    rng = np.random.default_rng(4)
    decoder = StreamDecoder(MIMES["webm"])
    got = sum(decoder.feed(chunk).size for chunk in chunks[:4])
    assert got > 0.9 * SR
    sent = 0
    with pytest.raises(AudioError, match="garbage|not decodable"):
        while sent < 200_000:
            block = rng.bytes(2000) if garbage == "random" else bytes(2000)
            sent += len(block)
            decoder.feed(block)
    assert sent <= 32 * 1024  # the allowance, plus a chunk
    assert decoder.join(10)


def test_a_truncated_stream_keeps_what_was_decoded(wave):
    chunks = encode_chunks(wave)
    decoder = StreamDecoder(MIMES["webm"])
    got = sum(decoder.feed(chunk).size for chunk in chunks[:4])
    got += decoder.feed(chunks[4][:50]).size + decoder.close().size
    assert got == pytest.approx(SR, abs=0.05 * SR)


def test_close_without_data_and_abort_end_the_thread(wave):
    decoder = StreamDecoder(MIMES["webm"])
    assert decoder.close().size == 0
    assert decoder.join(10)

    decoder = StreamDecoder(MIMES["webm"])
    decoder.feed(encode_chunks(wave)[0])
    assert decoder.alive  # waiting for the next chunk
    decoder.abort()
    assert decoder.join(10)
    with pytest.raises(RuntimeError, match="closed"):
        decoder.feed(b"more")


def test_encode_chunks_cuts_at_timeslices(wave):
    for container in ("webm", "ogg", "mp4"):
        chunks = encode_chunks(wave, container=container, timeslice=0.5)
        assert len(chunks) == 8
        assert all(chunks)
        decoded = decode_audio(b"".join(chunks))
        assert abs(decoded.size - wave.size) < 0.05 * SR
