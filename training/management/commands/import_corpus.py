"""python manage.py import_corpus PATH --name NAME [--format F] [--copy]"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from training.cli import ProgressBar
from training.engine.corpora import FORMATS
from training.services.corpora import CorpusImportError, corpus_import_path


class Command(BaseCommand):
    help = (
        "Import a corpus from a folder on the server, for corpora too large to upload. By default the files "
        "are referenced where they are; --copy copies them into the media folder first."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the corpus folder")
        parser.add_argument("--name", required=True, help="a unique name for the corpus")
        parser.add_argument("--format", choices=FORMATS, default=None, help="skip format detection")
        parser.add_argument("--copy", action="store_true", help="copy the files into the media folder")

    def handle(self, *args, **options):
        bar = ProgressBar("importing", stream=sys.stderr)

        def progress(done: int, total: int, phase: str) -> None:
            if total:
                bar.label = phase
                bar(done, total)

        try:
            corpus = corpus_import_path(
                path=options["path"], name=options["name"], format=options["format"] or "", copy=options["copy"],
                progress=progress,
            )
        except CorpusImportError as exc:
            raise CommandError(str(exc)) from exc
        totals = corpus.summary["totals"]
        where = "copied to" if options["copy"] else "referenced in place at"
        self.stdout.write(
            f"Imported {corpus.name!r} (id {corpus.pk}, format {corpus.format}): {totals['utterances']} utterances, "
            f"{totals['hours']:.2f} h, {totals['speakers']} speakers, {totals['skipped']} files skipped."
        )
        self.stdout.write(f"Files {where} {corpus.root}")
        for reason in corpus.summary.get("skipped_reasons", [])[:5]:
            self.stdout.write(f"  skipped {reason['count']}: {reason['reason']}")
