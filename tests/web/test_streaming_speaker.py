"""A live session with a speaker-normalised model: each segment is centred on all speech so far."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devsupport.recorder import encode_chunks
from devsupport.synth import speech_silence_speech
from devsupport.tiny_model import tiny_checkpoint
from recognition.engine.predictor import Predictor


@pytest.fixture(params=[None, "tta"], ids=["one_speed", "tta"])
def live(request, db, tmp_path, one_thread):
    """A stream session over a speaker-normalised model, without and with trained speeds (one
    speaker mean per speed), and that model's predictor."""
    from recognition.services import model_version_register
    from recognition.services.stream_limits import StreamLimits
    from recognition.services.streaming import StreamSession
    from training.engine.trainer import TrainConfig

    train_config = TrainConfig().to_dict() if request.param else None
    path = tiny_checkpoint(tmp_path / "spk.pt", speaker_cmn=True, train_config=train_config)
    version = model_version_register(name="spk", checkpoint_path=path, activate=True)
    predictor = Predictor.from_checkpoint(path, device="cpu")
    assert len(predictor.speeds) == (3 if request.param else 1)
    session = StreamSession(
        version=version, predictor=predictor, mime="audio/webm;codecs=opus",
        limits=StreamLimits(max_seconds=60, max_bytes_per_second=10**7, max_streams=2),
    )
    return session, predictor


def test_segments_are_centred_on_the_running_speaker_mean_and_the_result_uses_all_speech(live):
    session, predictor = live
    wave, _ = speech_silence_speech("angry", speech=1.0, silence=1.0)
    jobs = []
    for chunk in encode_chunks(wave, container="webm"):
        jobs += session.feed(chunk)
    jobs += session.finish()
    assert [j.index for j in jobs] == [0, 1]

    first = predictor.speaker_centre([jobs[0].samples]).value
    both = predictor.speaker_centre([jobs[0].samples, jobs[1].samples]).value
    assert not torch.allclose(first, both)

    # Each segment's front end runs once: for its result and for the speaker's running mean.
    extractor = predictor._extractor
    passes = []
    original = extractor.uncentred
    extractor.uncentred = lambda *a, **k: passes.append(1) or original(*a, **k)
    try:
        segments = [session.classify(j) for j in jobs]
    finally:
        del extractor.uncentred
    assert len(passes) == 2
    torch.testing.assert_close(session.speaker.value, both)
    # The first segment is centred on itself, the second on both.
    for job, centre, seg in zip(jobs, (first, both), segments, strict=True):
        expected = predictor.predict(job.samples, centre).probabilities
        assert seg.prediction.probabilities == pytest.approx(expected, abs=1e-5)
    result = session.result(segments)
    # The final verdict is the live segments' (as the listener saw them), weighted by duration.
    seconds = np.array([s.end - s.start for s in segments])
    labels = predictor.labels
    expected = seconds @ np.array([[s.prediction.probabilities[k] for k in labels] for s in segments]) / seconds.sum()
    assert [result["verdict"]["probabilities"][k] for k in labels] == pytest.approx(list(expected), abs=1e-5)
    assert [s["probabilities"] for s in result["segments"]] == [
        pytest.approx(s.prediction.probabilities, abs=1e-5) for s in segments
    ]
    assert result["whole"] is None


def test_provisional_jobs_preview_the_segment_in_progress_about_once_a_second(live):
    from recognition.services.streaming import PROVISIONAL_EVERY_SECONDS

    session, predictor = live
    wave, truth = speech_silence_speech("angry", speech=2.5, silence=1.0)
    previews, ended = [], []
    for chunk in encode_chunks(wave, container="webm"):
        for segment in session.feed(chunk):  # classified as they end, as the consumer does
            session.classify(segment)
            ended.append(segment)
        job = session.provisional_job()
        if job is not None:
            previews.append((job, len(ended)))
    ended += session.finish()
    assert len(ended) == 2
    assert len(previews) >= 3
    for (job, _), (later, _) in zip(previews, previews[1:], strict=False):
        assert later.end - job.end >= PROVISIONAL_EVERY_SECONDS
    for job, ended_before in previews:
        assert job.index == ended_before  # the index the open segment will get
        assert job.end - job.start >= 0.5
        assert job.samples.size == pytest.approx((job.end - job.start) * 16000, abs=400)
        burst = truth[job.index]
        assert burst[0] - 0.3 <= job.start <= burst[0]
        fields = session.classify_provisional(job)
        assert fields["index"] == job.index and fields["start"] == job.start
        expected = predictor.predict(job.samples, job.centre).probabilities
        assert fields["probabilities"] == pytest.approx(expected, abs=1e-5)
    # The second burst's previews are centred on the speech that ended before it.
    second = [job for job, _ in previews if job.index == 1]
    assert second and all(job.centre is not None for job in second) == predictor.speaker_normalised
