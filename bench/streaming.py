"""Latency of live recognition over ws/record/: from the end of a speech segment to its result.

Runs against a real stack (bench.stack.LiveStack: a private data folder, the embedded Redis,
a web server subprocess, a logged-in user's session cookie) with the shipped starter model
(the default recipe: Whisper-base encoder and the BLSTM + attention head), so the inference
cost is the real one. Each
client is a ``websockets`` connection that plays a MediaRecorder: synthetic speech (voiced
syllables in utterances of 0.8-2.4 s separated by 0.9-1.5 s pauses) encoded as WebM/Opus,
sent in 250 ms chunks at the pace of audio (chunk k leaves at start + 0.25 (k + 1) s,
when a recorder would have it), then ``stop``, then the ``final`` result is awaited.

Two latencies per segment, both measured at the client on one clock:

- ``from_pause_chunk``: from sending the chunk that completes the pause the server needs
  to close the segment (the first chunk after which the decodable audio reaches the server
  VAD's end of speech + 300 ms; the VAD's end of speech is the reported ``end`` minus its
  150 ms padding), to
  the ``segment`` message. This is what the server adds: decode, VAD, inference, send.
- ``from_speech_end``: from the moment the synthetic speech really ended (the wall-clock
  instant that audio would have been spoken, start + true end) to the ``segment`` message.
  This adds the 300 ms pause the VAD must hear and the wait for the chunk to be cut (up
  to 250 ms): the delay a speaker experiences.

The chunk that completes the pause is found by decoding the chunks in the benchmark exactly
as the server does: the Opus encoder's delay leaves the last ~40 ms of a chunk's audio to
the next chunk, as a browser's recorder does too.

A true utterance counts as lost when no segment overlaps it. Scenarios: 1 stream, then
20 concurrent streams (start times spread over one chunk). Prints JSON; also writes
var/bench/streaming.json.

    python bench/streaming.py [--seconds 40] [--streams 1 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, latency_stats, machine  # noqa: E402
from bench.stack import LiveStack  # noqa: E402

STARTER_PATH = ROOT / "recognition" / "starter" / "starter.pt"

SR = 16000
CHUNK = 0.25
PAD = 0.15  # VadConfig.padding_ms
PAUSE = 0.3  # VadConfig.min_silence_ms
TARGETS = {"one_stream_p95_ms": 300, "twenty_streams_p95_ms": 800}


def synth_stream(seconds: float, seed: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Utterances of voiced syllables between pauses; returns the waveform and each utterance's (start, end)."""
    from devsupport.synth import CLASS_STYLES, voiced_burst

    rng = np.random.default_rng(seed)
    pieces, truth, t = [np.zeros(int(0.6 * SR), np.float32)], [], 0.6
    while t < seconds - 4.0:
        f0, slope, amp, _ = CLASS_STYLES[list(CLASS_STYLES)[int(rng.integers(len(CLASS_STYLES)))]]
        start, length = t, rng.uniform(0.8, 2.4)
        while t - start < length:
            syllable = voiced_burst(rng.uniform(0.15, 0.3), f0 * rng.uniform(0.9, 1.1), slope, max(amp, 0.3), rng)
            gap = np.zeros(int(rng.uniform(0.04, 0.12) * SR), np.float32)
            pieces += [syllable, gap]
            t += (syllable.size + gap.size) / SR
        t -= gap.size / SR  # the utterance ends with its last syllable
        pieces.pop()
        truth.append((start, t))
        pause = np.zeros(int(rng.uniform(0.9, 1.5) * SR), np.float32)
        pieces.append(pause)
        t += pause.size / SR
    wave = np.concatenate(pieces)
    wave += rng.normal(0, 0.003, wave.size).astype(np.float32)
    return np.clip(wave, -1, 1).astype(np.float32), truth


def session_cookies(count: int) -> list[str]:
    """One logged-in user per stream (a user may only have SER_STREAM_MAX_PER_USER streams)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    cookies = []
    for i in range(count):
        user, _ = get_user_model().objects.get_or_create(username=f"speaker{i}")
        client = Client()
        client.force_login(user)
        cookies.append(client.cookies["sessionid"].value)
    return cookies


async def one_stream(stack: LiveStack, cookie: str, wave: np.ndarray, truth: list, delay: float) -> dict:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from devsupport.recorder import encode_chunks
    from recognition.engine.stream import StreamDecoder

    chunks = encode_chunks(wave, container="webm", timeslice=CHUNK)
    # Audio seconds the server can decode once chunk k is in (the codec's delay makes it a
    # little less than 0.25 (k + 1)): found by decoding here exactly as the server does.
    decoder = StreamDecoder("audio/webm")
    covered = np.cumsum([decoder.feed(chunk).size for chunk in chunks]) / SR
    decoder.close()
    await asyncio.sleep(delay)
    uri = stack.url("/ws/record/").replace("http://", "ws://")
    headers = {"Cookie": f"sessionid={cookie}"}
    async with connect(uri, origin=stack.url("").rstrip("/"), additional_headers=headers, compression=None,
                       proxy=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "mime": "audio/webm;codecs=opus", "model": None}))
        ready = json.loads(await ws.recv())
        if ready["type"] != "ready":
            raise RuntimeError(f"no ready: {ready}")
        segments: list[tuple[float, dict]] = []
        final: dict = {}
        sent_at: list[float] = []

        errors: list[str] = []

        async def reader() -> None:
            try:
                async for text in ws:
                    msg = json.loads(text)
                    if msg["type"] == "segment":
                        segments.append((time.perf_counter(), msg))
                    elif msg["type"] == "final":
                        final.update(msg, received=time.perf_counter())
                    elif msg["type"] == "error":
                        errors.append(f"server error: {msg}")
            except ConnectionClosed as exc:
                # Counted, not fatal: e.g. this client too slow (a loaded machine) to answer the
                # server's close within Autobahn's 1 s close-handshake timeout.
                if not final:
                    errors.append(f"connection lost: {exc!r}")

        reading = asyncio.create_task(reader())
        t0 = time.perf_counter()  # the recorder starts: audio time 0
        for k, chunk in enumerate(chunks):
            await asyncio.sleep(max(0.0, t0 + CHUNK * (k + 1) - time.perf_counter()))
            await ws.send(chunk)
            sent_at.append(time.perf_counter())
        stop_at = time.perf_counter()
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reading, timeout=120)

    from_chunk, from_speech = [], []
    for received, seg in segments:
        decided = seg["end"] - PAD + PAUSE  # audio time at which the VAD can close it
        k = min(int(np.searchsorted(covered, decided - 1e-6)), len(sent_at) - 1)  # first chunk covering it
        from_chunk.append(1000 * (received - sent_at[k]))
        overlapping = [e for s, e in truth if s < seg["end"] and e > seg["start"]]
        if overlapping and received < stop_at:  # segments closed by the stop itself have no pause
            from_speech.append(1000 * (received - (t0 + max(overlapping))))
    lost = sum(not any(s < seg["end"] and e > seg["start"] for _, seg in segments) for s, e in truth)
    return {
        "from_pause_chunk": from_chunk,
        "from_speech_end": from_speech,
        "utterances": len(truth),
        "segments": len(segments),
        "lost": lost,
        "final_segments_match": len(final.get("result", {}).get("segments", [])) == len(segments),
        "final_ms": 1000 * (final["received"] - stop_at) if final else None,
        "errors": errors,
    }


async def scenario(stack: LiveStack, cookies: list[str], streams: int, seconds: float) -> dict:
    rng = np.random.default_rng(streams)
    jobs = []
    for i in range(streams):
        wave, truth = synth_stream(seconds, seed=1000 * streams + i)
        delay = float(rng.uniform(0, CHUNK)) if streams > 1 else 0.0
        jobs.append(one_stream(stack, cookies[i], wave, truth, delay=delay))
    results = await asyncio.gather(*jobs)
    from_chunk = [v for r in results for v in r["from_pause_chunk"]]
    from_speech = [v for r in results for v in r["from_speech_end"]]
    finals = [r["final_ms"] for r in results if r["final_ms"] is not None]
    return {
        "streams": streams,
        "audio_seconds_per_stream": seconds,
        "utterances": sum(r["utterances"] for r in results),
        "segments_received": sum(r["segments"] for r in results),
        "utterances_lost": sum(r["lost"] for r in results),
        "finals_received": len(finals),
        "finals_consistent": all(r["final_segments_match"] for r in results),
        "errors": [e for r in results for e in r["errors"]],
        "latency_from_pause_chunk": latency_stats(from_chunk),
        "latency_from_speech_end": latency_stats(from_speech),
        "stop_to_final": latency_stats(finals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="audio per stream")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 20])
    options = parser.parse_args()

    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    with LiveStack(daphne_log=str(out / "streaming-daphne.log")) as stack:
        from recognition.services import model_version_register

        model_version_register(name="starter", checkpoint_path=STARTER_PATH, activate=True)
        cookies = session_cookies(max(options.streams))
        asyncio.run(scenario(stack, cookies, 1, 6.0))  # warm-up: the server loads the model once
        results = [asyncio.run(scenario(stack, cookies, n, options.seconds)) for n in options.streams]
    for result in results:
        target = TARGETS["one_stream_p95_ms"] if result["streams"] == 1 else TARGETS["twenty_streams_p95_ms"]
        p95 = result["latency_from_pause_chunk"]["p95_ms"]
        result["target_p95_ms"] = target
        result["meets_target"] = (p95 is not None and p95 <= target and result["utterances_lost"] == 0
                                  and not result["errors"] and result["finals_received"] == result["streams"])
    report = {
        "benchmark": "streaming",
        "what": "ws/record/ on a real web server: end of a speech segment -> its 'segment' message at the client",
        "definitions": {
            "latency_from_pause_chunk": "send time of the first 250 ms chunk whose audio reaches the VAD's end of "
            "speech + 300 ms (the pause that closes a segment) -> segment message received; targets apply to this",
            "latency_from_speech_end": "wall-clock instant the synthetic utterance truly ended (recorder start + its "
            "end time) -> segment message received; includes the 300 ms pause and the chunking wait",
            "stop_to_final": "stop message sent -> final result (verdict from the segments + spectrogram) received",
        },
        "setup": {"chunk_s": CHUNK, "pacing": "real time", "model": "the shipped starter (Whisper-base encoder, BLSTM + attention heads; per-speaker means of the speech so far)",
                  "container": "WebM/Opus", "server": "one web server process (uvicorn), SER_INFERENCE_THREADS default"},
        "machine": machine(),
        "scenarios": results,
    }
    (out / "streaming.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
