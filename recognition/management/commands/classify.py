"""python manage.py classify FILE [FILE ...] [--model MODEL.pt] [--segments] [--whole] [--json]

The model is ``--model``, else ``$SER_MODEL``, else the registry's active ModelVersion. Each
file's verdict comes from its speech segments (:mod:`recognition.services.classify`, the path
the upload page and the API take); a file without speech says "no speech"."""

from __future__ import annotations

import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recognition.engine.audio import AudioError, decode_audio
from recognition.engine.checkpoint import CheckpointError
from recognition.engine.predictor import Predictor
from recognition.engine.vad import VadConfig
from recognition.models import ModelVersion
from recognition.services.classify import recording_classify
from recognition.services.inference import NoModelError, predictor_for


class Command(BaseCommand):
    help = "Classify the emotion of audio files (any format the engine decodes) from their speech segments."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument(
            "--model", default=os.environ.get("SER_MODEL"),
            help="checkpoint file (.pt); default: $SER_MODEL, else the active model version of the registry",
        )
        parser.add_argument("--segments", action="store_true", help="also list each speech segment and its emotion")
        parser.add_argument(
            "--whole", action="store_true",
            help="also classify each whole file as one utterance, silences included (one more pass per file)",
        )
        parser.add_argument("--aggressiveness", type=int, default=VadConfig().aggressiveness, choices=range(4))
        parser.add_argument(
            "--one-speaker", action="store_true",
            help="the files are all one speaker's: a speaker-normalised model centres them on their common mean "
            "(otherwise each file is its own speaker)",
        )
        parser.add_argument(
            "--no-tta", action="store_true",
            help="ask each model once, at the recorded speed, not also at the other speeds it was trained at "
            "(test-time augmentation, on by default: more accurate, one pass per model and speed)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")

    def handle(self, *args, **options):
        model_name, version, predictor = self._model(options["model"])
        if options["no_tta"]:
            predictor = Predictor(predictor.checkpoint, device="cpu", tta=False)
        vad = VadConfig(aggressiveness=options["aggressiveness"])
        results, waves = [], {}
        for i, path in enumerate(options["files"]):
            try:
                waves[i] = decode_audio(path, max_seconds=settings.SER_MAX_AUDIO_SECONDS)
            except AudioError as exc:
                results.append({"file": path, "error": str(exc)})
                continue
            results.append({"file": path})
        speaker = predictor.speaker_centre(list(waves.values())) if options["one_speaker"] and waves else None
        centre = speaker.value if speaker is not None else None
        for i, wave in waves.items():
            # Without --one-speaker a speaker-normalised model centres each file on its own
            # speech segments' mean, as the classify page does.
            found = recording_classify(
                predictor=predictor, waveform=wave, version=version, centre=centre, vad_config=vad,
                whole=options["whole"], spectrogram=False,
            )
            verdict = found["verdict"] or {}
            results[i].update(
                speech=bool(verdict), label=verdict.get("label"), probabilities=verdict.get("probabilities"),
                duration=found["duration"], speech_seconds=verdict.get("speech_seconds", 0.0),
            )
            if options["segments"]:
                results[i]["segments"] = [
                    {k: seg[k] for k in ("start", "end", "label", "probabilities")} for seg in found["segments"]
                ]
            if options["whole"]:
                results[i]["whole"] = {k: found["whole"][k] for k in ("label", "probabilities")}
        if options["json"]:
            self.stdout.write(json.dumps({"model": model_name, "labels": predictor.labels, "results": results}, indent=2))
        else:
            for item in results:
                self._print(item)
        if not waves:
            raise CommandError("no file could be classified")

    def _model(self, given: str | None) -> tuple[str, ModelVersion | None, Predictor]:
        """(name to report, registered version or None, predictor): the given file, else the
        registry's active ModelVersion."""
        if given:
            try:
                return given, None, Predictor.from_checkpoint(given)
            except CheckpointError as exc:
                raise CommandError(str(exc)) from exc
        try:
            version, predictor = predictor_for()
        except NoModelError as exc:
            raise CommandError(f"no model: {exc} Or pass --model MODEL.pt or set SER_MODEL.") from exc
        self.stderr.write(f"using the active model {version}")
        return str(version), version, predictor

    def _print(self, item: dict) -> None:
        if "error" in item:
            self.stderr.write(f"{item['file']}: error: {item['error']}")
            return
        if not item["speech"]:
            self.stdout.write(f"{item['file']}: no speech [{item['duration']:.2f} s]")
        else:
            self.stdout.write(f"{item['file']}: {_top(item['probabilities'])} "
                              f"[{item['speech_seconds']:.2f} s of speech in {item['duration']:.2f} s]")
        if "whole" in item:
            self.stdout.write(f"    whole file as one utterance: {_top(item['whole']['probabilities'])}")
        for seg in item.get("segments", []):
            self.stdout.write(f"    {seg['start']:7.2f}-{seg['end']:7.2f} s  {seg['label']} {seg['probabilities'][seg['label']]:.2f}")


def _top(probabilities: dict[str, float]) -> str:
    """``"angry 0.61 (sad 0.20, calm 0.09)"``: the top label and the next two."""
    top = sorted(probabilities.items(), key=lambda kv: -kv[1])[:3]
    others = ", ".join(f"{k} {v:.2f}" for k, v in top[1:])
    return f"{top[0][0]} {top[0][1]:.2f} ({others})"
