"""What classifying one uploaded recording costs on the app's path: front-end work and time.

Builds the default recipe's model of a front end (``--front-end whisper``: one medium model over
Whisper-base encoder states; ``logmel``: a seed ensemble of five medium CNN EmotionNets; both with
per-speaker means and the recipe's training settings; random weights, so the inference cost is
the real one),
encodes a synthetic 20 s recording with pauses (utterances of 0.8-2.4 s) as WAV, and classifies
it the way the upload page and the API do, from the WAV bytes to the result dict. The front
end is counted by wrapping ``FeatureExtractor.uncentred`` (every feature computation goes
through it): calls and seconds of audio passed through it. One torch thread.

Runs on the tree it sits in; on a tree before the one classify path (``recognition.analysis``)
it measures that path with the same model and audio, for a before/after comparison:

    python bench/classify_path.py [--front-end whisper|logmel] [--runs 10] [--seconds 20]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ser_site.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--front-end", default="whisper", choices=["whisper", "logmel"])
    options = parser.parse_args()

    import django

    django.setup()
    import torch

    from bench.common import machine
    from bench.streaming import synth_stream
    from devsupport.synth import write_wav
    from recognition.engine.features import FeatureExtractor
    from recognition.engine.predictor import Predictor

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="classify-path-"))
    predictor = Predictor.from_checkpoint(_checkpoint(work / "medium.pt", options.front_end), device="cpu")
    wave, truth = synth_stream(options.seconds, seed=7)
    data = write_wav(work / "speech.wav", wave).read_bytes()
    version = types.SimpleNamespace(pk=1, name="bench", version=1)

    try:  # the one classify path
        from recognition.services.classify import file_classify

        def classify() -> dict:
            return file_classify(predictor=predictor, source=io.BytesIO(data), version=version)

        path = "recognition.services.classify.file_classify"
    except ImportError:  # before it
        from recognition.analysis import analyse_file

        def classify() -> dict:
            return analyse_file(version=version, predictor=predictor, source=io.BytesIO(data), max_seconds=600)

        path = "recognition.analysis.analyse_file"

    counted = {"calls": 0, "samples": 0}
    original = FeatureExtractor.uncentred

    def counting(self, waveforms, lengths):
        counted["calls"] += 1
        counted["samples"] += int(lengths.sum())
        return original(self, waveforms, lengths)

    FeatureExtractor.uncentred = counting
    classify()  # warm-up, and the counts of one classification
    calls, samples = counted["calls"], counted["samples"]
    FeatureExtractor.uncentred = original
    times = []
    for _ in range(options.runs):
        start = time.perf_counter()
        result = classify()
        times.append(1000 * (time.perf_counter() - start))
    report = {
        "benchmark": "classify_path",
        "path": path,
        "recording_seconds": round(wave.size / 16000, 2),
        "speech_seconds_true": round(sum(e - s for s, e in truth), 2),
        "segments": len(result["segments"]),
        "model": f"{predictor.checkpoint.n_members} medium EmotionNet(s) over {options.front_end}, speeds "
                 f"{list(predictor.speeds)}, speaker-normalised: {predictor.speaker_normalised}",
        "front_end_calls": calls,
        "front_end_audio_seconds": round(samples / 16000, 1),
        "front_end_audio_per_recording_second": round(samples / wave.size, 2),
        "classify_ms": {"median": round(statistics.median(times), 1), "min": round(min(times), 1), "runs": len(times)},
        "threads": 1,
        "machine": machine(),
    }
    print(json.dumps(report))


def _checkpoint(path: Path, front_end: str) -> Path:
    """The default recipe's model shape, features and training settings for ``front_end``
    (a tree before ``Recipe.for_front_end``: its one default recipe), random weights."""
    import torch

    from devsupport.synth import speech_like
    from recognition.engine.checkpoint import Checkpoint, save_checkpoint
    from recognition.engine.features import FeatureExtractor, FeatureStats, prepare_waveform
    from recognition.engine.model import EmotionNet, ModelConfig
    from training.engine.experiment import Recipe

    torch.manual_seed(0)
    recipe = Recipe.for_front_end(front_end) if hasattr(Recipe, "for_front_end") else Recipe()
    labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    features = recipe.features
    config = recipe.model_config(len(labels)) if hasattr(recipe, "model_config") else ModelConfig(
        n_features=features.n_features, n_classes=len(labels))
    extractor = FeatureExtractor(features)
    with torch.inference_mode():
        feats = [extractor.extract(prepare_waveform(speech_like(label, seed=i), features), normalise=False)
                 for i, label in enumerate(["neutral", "happy", "sad", "angry", "fearful"] * 2)]
    states = [EmotionNet(config).state_dict() for _ in range(recipe.train.members)]
    ckpt = Checkpoint(model_config=config, feature_config=features, labels=labels, stats=FeatureStats.accumulate(feats),
                      state_dict=states[0], member_states=states[1:], extra={"train_config": recipe.train.to_dict()})
    return save_checkpoint(path, ckpt)


if __name__ == "__main__":
    main()
