"""python manage.py crossval --corpus PATH [--corpus PATH ...] --folds K [--fold I ...] [--report R.json]"""

from __future__ import annotations

import tempfile

from django.core.management.base import BaseCommand, CommandError

from training import cli
from training.engine.experiment import cross_validate
from training.engine.splits import SplitError


class Command(BaseCommand):
    help = "Leave-speakers-out k-fold cross-validation (consecutive speaker groups; RAVDESS 6 folds = actors 1-4, 5-8, ...)."

    def add_arguments(self, parser):
        cli.add_training_arguments(parser)
        parser.add_argument("--folds", type=int, required=True)
        parser.add_argument("--fold", type=int, action="append", default=None, metavar="I",
                            help="run only fold I (1-based; repeatable)")
        parser.add_argument("--work-dir", default=None, help="keep each fold's checkpoints here (default: a temporary folder)")
        parser.add_argument("--report", default=None, help="write the JSON report here")

    def handle(self, *args, **options):
        scans, recipe, dataset = cli.prepare_training(options, self.stdout)
        bar = cli.ProgressBar("loading audio")
        only = None if not options["fold"] else [f - 1 for f in options["fold"]]

        def on_fold(index: int, fold: dict) -> None:
            self.stdout.write(f"fold {index + 1}: test speakers {', '.join(fold['split']['test_speakers'])}: "
                              f"WA {fold['wa']:.3f}  UA {fold['ua']:.3f}  macro-F1 {fold['macro_f1']:.3f} "
                              f"(best epoch {fold['best_epoch']}, {fold['train_seconds']:.0f}s)")

        with tempfile.TemporaryDirectory(prefix="ser-crossval-") as tmp:
            try:
                report = cross_validate(
                    scans, options["work_dir"] or tmp, folds=options["folds"], only_folds=only, recipe=recipe,
                    dataset=dataset, cache=cli.make_cache(recipe.features, options), callback=cli.epoch_printer(self.stdout, bar),
                    progress=bar.phase, on_fold=on_fold,
                )
            except (SplitError, ValueError) as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(cli.summary_line(report))
        cli.write_report(report, options["report"], self.stdout)
