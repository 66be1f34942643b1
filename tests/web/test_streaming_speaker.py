"""A live session with a speaker-normalised model: each segment is centred on all speech so far."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recognition.engine.predictor import Predictor
from recognition.engine.stream import encode_chunks
from tests.synth import speech_silence_speech
from tests.tiny_model import tiny_checkpoint


@pytest.fixture(params=[None, "tta"], ids=["one_speed", "tta"])
def session_parts(request, db, tmp_path, one_thread):
    """A speaker-normalised model, without and with trained speeds (one speaker mean per speed)."""
    from recognition.services import model_version_register
    from training.engine.trainer import TrainConfig

    train_config = TrainConfig().to_dict() if request.param else None
    path = tiny_checkpoint(tmp_path / "spk.pt", speaker_cmn=True, train_config=train_config)
    version = model_version_register(name="spk", checkpoint_path=path, activate=True)
    predictor = Predictor.from_checkpoint(path, device="cpu")
    assert len(predictor.speeds) == (3 if request.param else 1)
    return version, predictor


def test_segments_carry_the_running_speaker_mean_and_the_result_uses_all_speech(session_parts):
    from recognition.streaming import StreamLimits, StreamSession

    version, predictor = session_parts
    session = StreamSession(
        version=version, predictor=predictor, mime="audio/webm;codecs=opus",
        limits=StreamLimits(max_seconds=60, max_bytes_per_second=10**7, max_streams=2),
    )
    wave, _ = speech_silence_speech("angry", speech=1.0, silence=1.0)
    jobs = []
    for chunk in encode_chunks(wave, container="webm"):
        jobs += session.feed(chunk)
    jobs += session.finish()
    assert [j.index for j in jobs] == [0, 1]

    first = predictor.speaker_centre([jobs[0].samples]).value
    both = predictor.speaker_centre([jobs[0].samples, jobs[1].samples]).value
    torch.testing.assert_close(jobs[0].centre, first)  # the first segment is centred on itself
    torch.testing.assert_close(jobs[1].centre, both)
    assert not torch.allclose(first, both)

    segments = [session.classify(j) for j in jobs]
    for job, seg in zip(jobs, segments, strict=True):
        expected = predictor.predict(job.samples, job.centre).probabilities
        assert seg["probabilities"] == pytest.approx(expected, abs=1e-5)
    result = session.result(segments)
    whole = predictor.predict(session.audio.view(), both).probabilities
    assert result["whole"]["probabilities"] == pytest.approx(whole, abs=1e-5)
    assert np.isclose(sum(result["whole"]["probabilities"].values()), 1.0, atol=1e-4)
