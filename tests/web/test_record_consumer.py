"""ws/record/: live recognition of real WebM/Ogg Opus chunks, bad input, disconnects and limits."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from devsupport.recorder import encode_chunks
from devsupport.synth import continuous_voice, speech_like, speech_silence_speech, write_wav
from devsupport.tiny_model import LABELS, tiny_checkpoint
from recognition.engine.audio import decode_audio
from tests.web.record_helpers import TIMEOUT, communicator, expect_error, start


@pytest.fixture
def live(transactional_db, redis_server, tmp_path, user, one_thread):
    """An active tiny model, an empty predictor cache and a user; the per-user slot key is emptied."""
    from recognition.services import model_version_register
    from recognition.services.inference import predictor_cache_clear

    predictor_cache_clear()
    version = model_version_register(name="tiny", checkpoint_path=tiny_checkpoint(tmp_path / "tiny.pt"), activate=True)
    yield version
    predictor_cache_clear()


def run(coro):
    return asyncio.run(coro)


async def open_slots(user_id: int) -> int:
    import redis.asyncio as aioredis
    from django.conf import settings

    client = aioredis.Redis.from_url(settings.SER_REDIS_URL)
    try:
        return await client.zcard(f"ser:streams:{user_id}")
    finally:
        await client.aclose()


def decoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ser-stream-decoder"]


def wait_for_no_decoders() -> None:
    for thread in decoder_threads():
        thread.join(TIMEOUT)
    assert not decoder_threads()


@pytest.mark.parametrize("container,mime", [("webm", "audio/webm;codecs=opus"), ("ogg", "audio/ogg;codecs=opus")])
def test_stream_gives_segments_as_speech_pauses_and_a_final_result(live, user, settings, container, mime):
    from recognition.services.inference import predictor_for

    wave, truth = speech_silence_speech("angry", speech=1.0, silence=1.0)
    chunks = encode_chunks(wave, container=container)

    async def scenario():
        comm = communicator(user)
        ready = await start(comm, mime=mime)
        assert ready["type"] == "ready"
        assert ready["model"] == {"id": live.pk, "name": "tiny", "version": 1, "labels": LABELS}
        assert ready["limits"] == {
            "max_seconds": settings.SER_STREAM_MAX_SECONDS,
            "max_bytes_per_second": settings.SER_STREAM_MAX_BYTES_PER_SECOND,
            "max_streams": settings.SER_STREAM_MAX_PER_USER,
        }
        for chunk in chunks:
            await comm.send_to(bytes_data=chunk)
        messages = []
        # The first burst is followed by a pause: its segment comes without any stop.
        while not any(m["type"] == "segment" for m in messages):
            messages.append(await comm.receive_json_from(timeout=TIMEOUT))
        assert await open_slots(user.pk) == 1
        await comm.send_json_to({"type": "stop"})
        while messages[-1]["type"] != "final":
            messages.append(await comm.receive_json_from(timeout=TIMEOUT))
        closed = await comm.receive_output(timeout=TIMEOUT)
        await comm.disconnect(timeout=TIMEOUT)
        return messages, closed

    messages, closed = run(scenario())
    assert closed == {"type": "websocket.close", "code": 1000, "reason": ""} or closed["code"] == 1000

    segments = [m for m in messages if m["type"] == "segment"]
    assert [s["index"] for s in segments] == [0, 1]
    for seg, (start_s, end_s) in zip(segments, truth, strict=True):
        assert seg["start"] == pytest.approx(start_s, abs=0.2)  # VAD padding is 0.15 s
        assert seg["end"] == pytest.approx(end_s, abs=0.35)
        assert set(seg["probabilities"]) == set(LABELS)
        assert sum(seg["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert seg["label"] == max(seg["probabilities"], key=seg["probabilities"].get)
    live_keys = ["index", "start", "end", "label", "probabilities"]
    assert all(sorted(s) == sorted(["type", *live_keys]) for s in segments)
    progress = [m["seconds"] for m in messages if m["type"] == "progress"]
    assert progress == sorted(progress) and 2.5 <= progress[-1] <= wave.size / 16000 + 0.1

    # The final result: the live segments (with their attention now), the verdict from them,
    # no whole-recording pass, the spectrogram of the whole decoded recording.
    result = messages[-1]["result"]
    _, predictor = predictor_for()
    decoded = decode_audio(b"".join(chunks))
    assert result["duration"] == pytest.approx(decoded.size / 16000, abs=1e-3)
    assert result["whole"] is None
    assert [{k: s[k] for k in live_keys} for s in result["segments"]] == segments_without_type(segments)
    for seg in result["segments"]:  # the attention on the recording's time axis, inside its segment
        assert sum(seg["attention"]) == pytest.approx(1.0, abs=1e-3)
        assert seg["start"] <= seg["attention_offset"] < seg["end"]
    seconds = np.array([s["end"] - s["start"] for s in segments])
    expected = seconds @ np.array([[s["probabilities"][k] for k in LABELS] for s in segments]) / seconds.sum()
    assert result["verdict"]["label"] == LABELS[int(np.argmax(expected))]
    assert [result["verdict"]["probabilities"][k] for k in LABELS] == pytest.approx(list(expected), abs=1e-5)
    batch = predictor.predict_segments(decoded)
    assert [(s["start"], s["end"], s["label"]) for s in segments] == [
        (round(b.start, 4), round(b.end, 4), b.prediction.label) for b in batch
    ]
    assert len(result["spectrogram"]["db"]) == 64

    run(_no_slots(user.pk))
    wait_for_no_decoders()


def segments_without_type(segments: list[dict]) -> list[dict]:
    return [{k: v for k, v in s.items() if k != "type"} for s in segments]


async def _no_slots(user_id: int) -> None:
    assert await open_slots(user_id) == 0


def test_unauthenticated_connection_is_refused(live):
    from django.contrib.auth.models import AnonymousUser

    async def scenario():
        comm = communicator(AnonymousUser())
        connected, code = await comm.connect(timeout=TIMEOUT)
        return connected, code

    assert run(scenario()) == (False, 4401)


def test_garbage_frames_after_a_valid_start_end_the_stream(live, user):
    wave = speech_like("happy", duration=2.0)
    chunks = encode_chunks(wave)
    rng = np.random.default_rng(1)

    async def scenario():
        comm = communicator(user)
        await start(comm)
        for chunk in chunks[:3]:
            await comm.send_to(bytes_data=chunk)
        for _ in range(40):  # garbage until the server gives up (well before this many)
            await comm.send_to(bytes_data=rng.bytes(1500))
        return await expect_error(comm, "bad_audio")

    message = run(scenario())["message"]
    assert "garbage" in message or "not decodable" in message
    run(_no_slots(user.pk))
    wait_for_no_decoders()


@pytest.mark.parametrize("payload", ["random", "wav"])
def test_wrong_container_is_refused_at_once(live, user, tmp_path, payload):
    if payload == "wav":
        data = write_wav(tmp_path / "a.wav", speech_like("sad", duration=1.0)).read_bytes()[:4000]
    else:
        data = np.random.default_rng(2).bytes(3000)

    async def scenario():
        comm = communicator(user)
        await start(comm, mime="audio/webm;codecs=opus")
        await comm.send_to(bytes_data=data)
        return await expect_error(comm, "bad_audio")

    assert "not WebM audio" in run(scenario())["message"]
    run(_no_slots(user.pk))
    wait_for_no_decoders()


@pytest.mark.parametrize(
    "messages,code",
    [
        (["not json"], "bad_message"),
        ([{"type": "dance"}], "bad_message"),
        ([{"type": "stop"}], "not_started"),
        ([b"\x1a\x45\xdf\xa3"], "not_started"),
        ([{"type": "start", "mime": "audio/flac", "model": None}], "bad_audio"),
        ([{"type": "start", "mime": "audio/webm", "model": "one"}], "bad_message"),
        ([{"type": "start", "mime": "audio/webm", "model": 99999}], "no_model"),
    ],
)
def test_bad_messages_get_a_clear_error(live, user, messages, code):
    async def scenario():
        comm = communicator(user)
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected
        for message in messages:
            if isinstance(message, bytes):
                await comm.send_to(bytes_data=message)
            elif isinstance(message, str):
                await comm.send_to(text_data=message)
            else:
                await comm.send_json_to(message)
        return await expect_error(comm, code)

    run(scenario())
    run(_no_slots(user.pk))


def test_no_active_model(transactional_db, redis_server, user):
    from recognition.services.inference import predictor_cache_clear

    predictor_cache_clear()

    async def scenario():
        comm = communicator(user)
        msg = await start(comm)
        assert msg["type"] == "error" and msg["code"] == "no_model"
        assert "No model is active" in msg["message"]
        await comm.disconnect(timeout=TIMEOUT)

    run(scenario())


def _stream_live(user, chunks: list[bytes]) -> tuple[list[dict], int]:
    """Send ``chunks`` one at a time (each fully handled before the next), then stop: every
    message received, and how many came before the stop."""

    async def scenario():
        comm = communicator(user)
        assert (await start(comm))["type"] == "ready"
        messages = []
        for chunk in chunks:
            await comm.send_to(bytes_data=chunk)
            # Let the consumer finish this chunk (its provisional result included) before the next.
            while not await comm.receive_nothing(timeout=0.2):
                messages.append(await comm.receive_json_from(timeout=TIMEOUT))
        before_stop = len(messages)
        await comm.send_json_to({"type": "stop"})
        while not messages or messages[-1]["type"] != "final":
            messages.append(await comm.receive_json_from(timeout=TIMEOUT))
        await comm.disconnect(timeout=TIMEOUT)
        return messages, before_stop

    return run(scenario())


def test_continuous_speech_gets_segments_and_provisional_results_while_it_goes_on(live, user):
    """Nine seconds of voice without a pause: segments are cut at the maximum length before
    the stop, and a provisional result for the segment in progress comes in between."""
    messages, before_stop = _stream_live(user, encode_chunks(continuous_voice(9.0)))
    live_segments = [m for m in messages[:before_stop] if m["type"] == "segment"]
    assert len(live_segments) >= 2, "speech longer than the maximum is cut while it goes on"
    provisional = [m for m in messages if m["type"] == "provisional"]
    assert len(provisional) >= 3
    for p in provisional:
        assert sorted(p) == ["end", "index", "label", "probabilities", "start", "type"]
        assert p["label"] in LABELS and sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert p["end"] - p["start"] >= 0.5
    # Never after the segment it previews: each provisional index is still open when it arrives.
    for position, m in enumerate(messages):
        if m["type"] == "provisional":
            assert all(s["index"] < m["index"] for s in messages[:position] if s["type"] == "segment")
    segments = [m for m in messages if m["type"] == "segment"]
    assert [s["index"] for s in segments] == list(range(len(segments)))
    assert messages[-1]["result"]["verdict"]["segments"] == len(segments) >= 3


def test_provisional_results_give_way_when_every_inference_thread_is_busy(live, user, monkeypatch):
    """Under load (every thread of the pool has work) no provisional job is started: the
    segments' own results must not queue behind courtesies. The segments still all come."""
    import recognition.consumers as consumers
    from recognition.services import inference

    monkeypatch.setattr(consumers, "inference_busy", lambda: True)
    messages, _ = _stream_live(user, encode_chunks(continuous_voice(6.0)))
    assert not [m for m in messages if m["type"] == "provisional"]
    assert len([m for m in messages if m["type"] == "segment"]) >= 2
    assert inference._in_flight == 0  # every job counted itself down
    monkeypatch.undo()
    assert not inference.inference_busy()


@pytest.mark.parametrize("when", ["after_start", "mid_stream", "during_stop"])
def test_client_vanishing_releases_everything(live, user, when):
    from recognition.services.inference import inference_executor

    wave, _ = speech_silence_speech("happy", speech=1.0, silence=0.6)
    chunks = encode_chunks(wave)
    sent = {"after_start": 0, "mid_stream": len(chunks) * 2 // 3, "during_stop": len(chunks)}[when]

    async def scenario():
        comm = communicator(user)
        await start(comm)
        for chunk in chunks[:sent]:  # mid-stream, a segment may be in classification
            await comm.send_to(bytes_data=chunk)
        if when == "during_stop":
            await comm.send_json_to({"type": "stop"})  # the final result is computed for nobody
        assert await open_slots(user.pk) == 1
        await comm.disconnect(timeout=TIMEOUT)  # raises if the consumer raised
        assert await open_slots(user.pk) == 0

    run(scenario())
    wait_for_no_decoders()
    # The inference pool drains: nothing is left working on the vanished stream.
    assert inference_executor().submit(lambda: "idle").result(timeout=TIMEOUT) == "idle"


def test_session_length_limit(live, user, settings):
    settings.SER_STREAM_MAX_SECONDS = 1.0  # + 1 s of slack for codec padding
    chunks = encode_chunks(speech_like("angry", duration=4.0))

    async def scenario():
        comm = communicator(user)
        ready = await start(comm)
        assert ready["limits"]["max_seconds"] == 1.0
        for chunk in chunks:
            await comm.send_to(bytes_data=chunk)
        return await expect_error(comm, "too_long")

    assert "1 seconds" in run(scenario())["message"]
    run(_no_slots(user.pk))
    wait_for_no_decoders()


def test_wall_clock_limit_without_audio(live, user, settings, monkeypatch):
    import recognition.consumers

    settings.SER_STREAM_MAX_SECONDS = 0.2
    monkeypatch.setattr(recognition.consumers, "WALL_CLOCK_GRACE_SECONDS", 0.0)

    async def scenario():
        comm = communicator(user)
        await start(comm)
        return await expect_error(comm, "too_long")  # a client that sends nothing is cut too

    run(scenario())
    run(_no_slots(user.pk))


def test_bytes_per_second_limit(live, user, settings):
    settings.SER_STREAM_MAX_BYTES_PER_SECOND = 1000  # burst: 4 s worth = 4000 bytes
    chunks = encode_chunks(speech_like("angry", duration=6.0))  # ~50 kB, sent at once

    async def scenario():
        comm = communicator(user)
        await start(comm)
        for chunk in chunks:
            await comm.send_to(bytes_data=chunk)
        return await expect_error(comm, "too_fast")

    assert "1000 bytes per second" in run(scenario())["message"]
    run(_no_slots(user.pk))
    wait_for_no_decoders()


def test_streams_per_user_limit_across_connections(live, user, settings):
    settings.SER_STREAM_MAX_PER_USER = 1

    async def scenario():
        first = communicator(user)
        assert (await start(first))["type"] == "ready"
        second = communicator(user)
        refused = await start(second)
        assert refused["type"] == "error" and refused["code"] == "too_many_streams", refused
        assert (await second.receive_output(timeout=TIMEOUT))["code"] == 4429
        await second.disconnect(timeout=TIMEOUT)
        assert await open_slots(user.pk) == 1  # the refused stream took no slot
        await first.disconnect(timeout=TIMEOUT)
        third = communicator(user)
        assert (await start(third))["type"] == "ready"
        await third.disconnect(timeout=TIMEOUT)

    run(scenario())
    run(_no_slots(user.pk))


def test_a_busy_inference_thread_does_not_stall_a_stream(live, user):
    from recognition.services.inference import inference_executor

    assert inference_executor()._max_workers >= 2
    gate = threading.Event()
    blocker = inference_executor().submit(gate.wait, TIMEOUT)  # a slow classification elsewhere
    chunks = encode_chunks(speech_silence_speech("sad", speech=0.8, silence=0.8)[0])

    async def scenario():
        comm = communicator(user)
        assert (await start(comm))["type"] == "ready"
        for chunk in chunks:
            await comm.send_to(bytes_data=chunk)
        await comm.send_json_to({"type": "stop"})
        kinds = []
        while not kinds or kinds[-1] != "final":
            kinds.append((await comm.receive_json_from(timeout=TIMEOUT))["type"])
        await comm.disconnect(timeout=TIMEOUT)
        return kinds

    try:
        kinds = run(scenario())
    finally:
        gate.set()
    assert blocker.result(timeout=TIMEOUT) is True
    assert kinds.count("segment") == 2


def test_a_dead_process_slot_expires_and_racing_streams_cannot_overbook(redis_server):
    import redis.asyncio as aioredis
    from django.conf import settings

    from recognition.services.stream_limits import StreamError, StreamSlots

    async def scenario():
        client = aioredis.Redis.from_url(settings.SER_REDIS_URL)
        await client.delete("ser:streams:77")
        await client.zadd("ser:streams:77", {"crashed-process": time.time() - 1})  # its expiry passed
        slots = [StreamSlots(77) for _ in range(10)]
        outcomes = await asyncio.gather(*(s.acquire(3) for s in slots), return_exceptions=True)
        granted = [s for s, o in zip(slots, outcomes, strict=True) if o is None]
        refused = [o for o in outcomes if isinstance(o, StreamError)]
        assert len(granted) == 3 and len(refused) == 7
        assert all(o.code == "too_many_streams" for o in refused)
        assert await client.zcard("ser:streams:77") == 3
        for s in slots:
            await s.release()
        assert await client.zcard("ser:streams:77") == 0
        await client.aclose()

    run(scenario())


def test_byte_rate_is_a_token_bucket_with_a_burst():
    from recognition.services.stream_limits import ByteRateLimiter, StreamError

    now = [0.0]
    limiter = ByteRateLimiter(1000, burst_seconds=4.0, clock=lambda: now[0])
    limiter.admit(4000)  # a burst of 4 s worth
    with pytest.raises(StreamError) as exc:
        limiter.admit(1)
    assert exc.value.code == "too_fast"
    for _ in range(20):  # then the steady rate, forever
        now[0] += 0.25
        limiter.admit(250)
    now[0] += 100.0  # a long pause refills to the burst, not beyond
    limiter.admit(4000)
    with pytest.raises(StreamError):
        limiter.admit(100)
