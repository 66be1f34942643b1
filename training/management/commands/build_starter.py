"""python manage.py build_starter [--corpora DIR] [--out recognition/starter/starter.pt] [--cross-validate | --evaluate-only]

Rebuilds the starter model that ships with the project: the default recipe (Whisper-base
front end) on every speaker of RAVDESS and nEMO, seven classes (calm merged into neutral).
Optionally (``--cross-validate``) a three-fold leave-speakers-out cross-validation of the
same recipe on the same pooled data first; then the shipped model trains on every speaker
for the recipe's epochs (no speaker is held out, so the last epoch is kept: there is nobody
left to select on). Last, it is scored on TESS, a corpus it never heard (two speakers,
the same seven classes; TESS's licence allows evaluating on it, not shipping a model
trained on it): those are the test scores the registry shows. ``--evaluate-only`` redoes
that last step on an existing file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recognition.engine.checkpoint import load_checkpoint, save_checkpoint
from recognition.services.starter import STARTER_PATH
from training import cli
from training.engine.corpora import CorpusError, scan_corpus
from training.engine.data import WaveformCache
from training.engine.ensemble import combine_checkpoints
from training.engine.experiment import Recipe, build_dataset, cross_validate, evaluate_checkpoint
from training.engine.trainer import Trainer


def half_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One model's weights with every floating tensor as float16."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


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
        parser.add_argument("--cross-validate", action="store_true", help="first cross-validate the recipe on the pooled data (three folds)")
        parser.add_argument("--evaluate-only", action="store_true", help="only score the existing OUT on TESS and store the scores in it")
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

        if options["evaluate_only"]:
            self._score_on_tess(out, root, cache, bar)
            return
        evaluation = None
        if options["cross_validate"]:
            report = cross_validate(scans, work / "cv", folds=FOLDS, recipe=recipe, dataset=dataset, cache=cache,
                                    callback=cli.epoch_printer(self.stdout, bar), progress=bar.phase)
            self.stdout.write(cli.summary_line(report))
            cli.write_report(report, options["report"], self.stdout)
            evaluation = {
                "protocol": f"{report['protocol']}, of this recipe on the same pooled data (the shipped model "
                "itself trained on every speaker)",
                **{k: report[k] for k in ("wa", "ua", "macro_f1", "wa_std", "ua_std", "macro_f1_std") if k in report},
            }

        examples = dataset.examples(cache, bar.phase, recipe.train.device)
        final = replace(recipe.train, patience=0)  # every epoch runs; nothing is held out to stop on
        trainer = Trainer(labels=dataset.labels, feature_config=recipe.features, model_config=recipe.model_config(len(dataset.labels)),
                          train_config=final, out_dir=work / "final", callback=cli.epoch_printer(self.stdout, bar),
                          metadata={"label_set": dataset.label_set.to_dict(), "corpora": [s.name for s in scans]})
        # Every speaker trains; a tenth of the utterances is scored each epoch only to show progress.
        result = trainer.fit(examples, examples[::10])
        # Each model's last epoch (see the module docstring); a seed ensemble's saved together.
        ck = combine_checkpoints([r.last_path for r in result.members or [result]])
        ck.extra.pop("trainer", None)  # optimiser and random states: resume-only, not shipped
        ck.extra["train_config"] = final.to_dict()  # the run's, not its first model's
        # Weights stored as float16 keep the shipped file small (loading widens them to float32).
        ck.state_dict, ck.member_states = half_weights(ck.state_dict), [half_weights(w) for w in ck.member_states]
        ck.metrics = {"cross_validation": evaluation} if evaluation else {}
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out, ck)
        self.stdout.write(f"starter written to {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.0f} s")
        self._score_on_tess(out, root, cache, bar)

    def _score_on_tess(self, out: Path, root: Path, cache: WaveformCache, bar: cli.ProgressBar) -> None:
        """Score ``out`` on TESS (never trained on) and keep the scores in it as its test scores."""
        if not (root / "tess").is_dir():
            self.stdout.write(f"no TESS under {root}: the starter carries no held-out test scores")
            return
        scores = evaluate_checkpoint(out, [scan_corpus(root / "tess", name="TESS")], cache_dir=cache.cache_dir, progress=bar.phase)
        ck = load_checkpoint(out)
        keep = ("wa", "ua", "macro_f1", "n", "per_class", "confusion", "per_speaker")
        ck.metrics = {**ck.metrics, "protocol": f"cross-corpus: trained on RAVDESS and nEMO, tested on all {scores['utterances']} "
                      "TESS utterances (2 speakers never heard in training), each speaker centred on their own mean",
                      "test": {k: scores[k] for k in keep if k in scores}}
        save_checkpoint(out, ck)
        self.stdout.write(json.dumps({"tess": {k: round(scores[k], 4) for k in ("wa", "ua", "macro_f1")}}))
