"""python manage.py classify FILE [FILE ...] [--model MODEL.pt] [--segments] [--json]

The model is ``--model``, else ``$SER_MODEL``, else the registry's active ModelVersion."""

from __future__ import annotations

import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recognition.engine.audio import AudioError, decode_audio
from recognition.engine.checkpoint import CheckpointError
from recognition.engine.predictor import Predictor
from recognition.engine.vad import VadConfig
from recognition.inference import NoModelError, predictor_for


class Command(BaseCommand):
    help = "Classify the emotion of audio files (any format the engine decodes), whole or per speech segment."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument(
            "--model", default=os.environ.get("SER_MODEL"),
            help="checkpoint file (.pt); default: $SER_MODEL, else the active model version of the registry",
        )
        parser.add_argument("--segments", action="store_true", help="also cut speech segments with the VAD and classify each")
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
        model_name, predictor = self._model(options["model"])
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
            if options["segments"]:
                recording = predictor.predict_recording(wave, vad, centre=centre)
                results[i].update(recording.whole.to_dict(include_attention=False))
                results[i]["segments"] = [seg.to_dict() for seg in recording.segments]
            else:
                own = centre if centre is not None else predictor.recording_centre(wave, vad)
                results[i].update(predictor.predict(wave, own).to_dict(include_attention=False))
        if options["json"]:
            self.stdout.write(json.dumps({"model": model_name, "labels": predictor.labels, "results": results}, indent=2))
        else:
            for item in results:
                self._print(item)
        if not waves:
            raise CommandError("no file could be classified")

    def _model(self, given: str | None) -> tuple[str, Predictor]:
        """(name to report, predictor): the given file, else the registry's active ModelVersion."""
        if given:
            try:
                return given, Predictor.from_checkpoint(given)
            except CheckpointError as exc:
                raise CommandError(str(exc)) from exc
        try:
            version, predictor = predictor_for()
        except NoModelError as exc:
            raise CommandError(f"no model: {exc} Or pass --model MODEL.pt or set SER_MODEL.") from exc
        self.stderr.write(f"using the active model {version}")
        return str(version), predictor

    def _print(self, item: dict) -> None:
        if "error" in item:
            self.stderr.write(f"{item['file']}: error: {item['error']}")
            return
        top = sorted(item["probabilities"].items(), key=lambda kv: -kv[1])[:3]
        others = ", ".join(f"{k} {v:.2f}" for k, v in top[1:])
        self.stdout.write(f"{item['file']}: {item['label']} {top[0][1]:.2f} ({others}) [{item['duration']:.2f} s]")
        for seg in item.get("segments", []):
            self.stdout.write(f"    {seg['start']:7.2f}-{seg['end']:7.2f} s  {seg['label']} {seg['probabilities'][seg['label']]:.2f}")
