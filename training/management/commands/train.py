"""python manage.py train --corpus PATH [--corpus PATH ...] --out MODEL.pt [options]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from training import cli
from training.engine.experiment import train_holdout
from training.engine.splits import SplitError


class Command(BaseCommand):
    help = "Train an emotion model on one or more corpora with a speaker-independent hold-out split."

    def add_arguments(self, parser):
        cli.add_training_arguments(parser)
        parser.add_argument("--out", required=True, help="where to write the best checkpoint (.pt)")
        parser.add_argument("--test-speakers", nargs="+", default=None, metavar="SPEAKER",
                            help="held-out test speakers (default: a seeded 20%% of each corpus' speakers)")
        parser.add_argument("--test-fraction", type=float, default=0.2)
        parser.add_argument("--work-dir", default=None, help="checkpoints of the run (default: OUT.work/)")
        parser.add_argument("--resume", action="store_true", help="continue from the work dir's last checkpoint")
        parser.add_argument("--report", default=None, help="write the JSON report here")

    def handle(self, *args, **options):
        scans, recipe, dataset = cli.prepare_training(options, self.stdout)
        bar = cli.ProgressBar("loading audio")
        try:
            report = train_holdout(
                scans, options["out"], recipe=recipe, dataset=dataset, test_speakers=options["test_speakers"],
                test_fraction=options["test_fraction"], work_dir=options["work_dir"], cache=cli.make_cache(recipe.features, options),
                callback=cli.epoch_printer(self.stdout, bar), resume=options["resume"], progress=bar.phase,
            )
        except (SplitError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(cli.summary_line(report))
        self.stdout.write(f"model written to {options['out']}")
        cli.write_report(report, options["report"], self.stdout)
