"""python manage.py evaluate MODEL.pt --corpus PATH [--speakers ...] [--report R.json]"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recognition.engine.checkpoint import CheckpointError
from training import cli
from training.engine.experiment import evaluate_checkpoint


class Command(BaseCommand):
    help = "Score a trained model on corpora (optionally only some speakers)."

    def add_arguments(self, parser):
        parser.add_argument("model", help="checkpoint file (.pt)")
        cli.add_corpus_arguments(parser)
        parser.add_argument("--speakers", nargs="+", default=None, help="only these speakers (e.g. Actor_01 or ravdess/Actor_01)")
        parser.add_argument("--cache-dir", default=None)
        parser.add_argument("--report", default=None, help="write the JSON report here")

    def handle(self, *args, **options):
        scans = cli.scan_corpora(options, self.stdout)
        try:
            report = evaluate_checkpoint(
                options["model"], scans, speakers=options["speakers"],
                cache_dir=options["cache_dir"] or settings.SER_FEATURE_CACHE_DIR, progress=cli.ProgressBar("loading audio").phase,
            )
        except (CheckpointError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(cli.summary_line(report))
        cli.write_report(report, options["report"], self.stdout)
