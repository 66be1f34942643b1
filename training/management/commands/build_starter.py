"""python manage.py build_starter [--corpora DIR] [--out recognition/starter/starter.pt] [--skip-evaluation]

Rebuilds the starter model that ships with the project: the default recipe (Whisper-base
front end) on every speaker of RAVDESS and nEMO, seven classes (calm merged into neutral).
First a three-fold leave-speakers-out cross-validation of the same recipe on the same
pooled data gives the scores the model card and the registry show; then the shipped model
trains on every speaker for the recipe's epochs (no speaker is held out, so the last epoch
is kept: there is nobody left to select on).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recognition.engine.checkpoint import load_checkpoint, save_checkpoint
from recognition.services.starter import STARTER_PATH
from training import cli
from training.engine.corpora import CorpusError, scan_corpus
from training.engine.data import WaveformCache
from training.engine.experiment import Recipe, build_dataset, cross_validate
from training.engine.trainer import Trainer

STARTER_LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
CORPORA = ("ravdess", "nemo")  # TESS's licence (CC BY-NC-ND) forbids derived models
FOLDS = 3


class Command(BaseCommand):
    help = "Rebuild the shipped starter model from RAVDESS and nEMO (cross-validate the recipe, then train on every speaker)."

    def add_arguments(self, parser):
        default = os.environ.get("SER_CORPORA_DIR") or str(Path(settings.BASE_DIR).parent / "shared" / "corpora")
        parser.add_argument("--corpora", default=default, help=f"folder holding ravdess/ and nemo/ (default {default})")
        parser.add_argument("--out", default=str(STARTER_PATH), help="where to write the checkpoint")
        parser.add_argument("--work-dir", default=None, help="checkpoints of the folds and the final model (default: OUT.work/)")
        parser.add_argument("--skip-evaluation", action="store_true", help="train the final model only (the checkpoint then carries no test scores)")
        parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
        parser.add_argument("--cache-dir", default=None, help="decoded-audio and encoder-state cache (default: SER_FEATURE_CACHE_DIR)")
        parser.add_argument("--report", default=None, help="write the cross-validation report (JSON) here")

    def handle(self, *args, **options):
        started = time.perf_counter()
        root = Path(options["corpora"])
        try:
            scans = [scan_corpus(root / name, name={"ravdess": "RAVDESS", "nemo": "nEMO"}[name]) for name in CORPORA]
            dataset = build_dataset(scans, mode="all", mapping={"calm": "neutral"}, include=STARTER_LABELS)
        except (CorpusError, ValueError) as exc:
            raise CommandError(f"{exc} (give --corpora, the folder holding ravdess/ and nemo/)") from exc
        recipe = Recipe()
        recipe = replace(recipe, train=replace(recipe.train, num_threads=options["threads"]))
        cache = WaveformCache(recipe.features, options["cache_dir"] or settings.SER_FEATURE_CACHE_DIR)
        out = Path(options["out"])
        work = Path(options["work_dir"]) if options["work_dir"] else out.with_suffix(".work")
        bar = cli.ProgressBar("loading audio")
        self.stdout.write(f"labels: {', '.join(dataset.labels)} ({len(dataset.utterances)} utterances, "
                          f"{len({(u.corpus, u.speaker) for u in dataset.utterances})} speakers)")

        evaluation = None
        if not options["skip_evaluation"]:
            report = cross_validate(scans, work / "cv", folds=FOLDS, recipe=recipe, dataset=dataset, cache=cache,
                                    callback=cli.epoch_printer(self.stdout, bar), progress=bar.phase)
            self.stdout.write(cli.summary_line(report))
            cli.write_report(report, options["report"], self.stdout)
            evaluation = {
                "protocol": f"{report['protocol']}, of this recipe on the same pooled data (the shipped model "
                "itself trained on every speaker)",
                **{k: report[k] for k in ("wa", "ua", "macro_f1", "wa_std", "ua_std", "macro_f1_std", "per_class", "confusion") if k in report},
                "per_corpus": {name: {k: v[k] for k in ("wa", "ua", "macro_f1") if k in v} for name, v in (report.get("per_corpus") or {}).items()},
            }

        examples = dataset.examples(cache, bar.phase, recipe.train.device)
        final = replace(recipe.train, patience=0)  # every epoch runs; nothing is held out to stop on
        trainer = Trainer(labels=dataset.labels, feature_config=recipe.features, model_config=recipe.model_config(len(dataset.labels)),
                          train_config=final, out_dir=work / "final", callback=cli.epoch_printer(self.stdout, bar),
                          metadata={"label_set": dataset.label_set.to_dict(), "corpora": [s.name for s in scans]})
        # Every speaker trains; a tenth of the utterances is scored each epoch only to show progress.
        result = trainer.fit(examples, examples[::10])
        ck = load_checkpoint(result.last_path)  # the last epoch's weights (see the module docstring)
        ck.extra.pop("trainer", None)  # optimiser and random states: resume-only, not shipped
        ck.metrics = {"test": evaluation, "protocol": evaluation["protocol"]} if evaluation else {}
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out, ck)
        self.stdout.write(f"starter written to {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.0f} s")
        if evaluation:
            self.stdout.write(json.dumps({k: evaluation[k] for k in ("wa", "ua", "macro_f1", "ua_std")}))
