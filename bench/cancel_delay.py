"""Seconds from "Cancel" to a cancelled run, through a real Celery worker.

A LiveStack (private data folder, SQLite, the embedded Redis) plus a training worker
subprocess; a synthetic corpus; runs of the default recipe (small model) are cancelled
``--repeat`` times once they are training (progress > 0), each at a random moment in an epoch.
The flag travels: the page's POST sets ``cancel_requested`` -> the run's heartbeat thread
reads it every ``SER_HEARTBEAT_SECONDS`` -> the trainer checks it between batches.

    python bench/cancel_delay.py [--repeat 3] [--heartbeat 10]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT  # noqa: E402
from bench.stack import LiveStack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--heartbeat", type=float, default=10.0, help="SER_HEARTBEAT_SECONDS of the worker")
    args = parser.parse_args()
    with LiveStack(extra_env={"SER_HEARTBEAT_SECONDS": str(args.heartbeat), "SER_TRAIN_THREADS": "1"}) as stack:
        from devsupport.factories import ready_corpus
        from training.models import TrainingRun
        from training.services import runs

        corpus = ready_corpus(stack.dir / "corpus", labels=("angry", "sad", "happy"), speakers=4, per_class=12)
        log = open(stack.dir / "worker.log", "wb")  # noqa: SIM115 — closed below
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "ser_site", "worker", "-Q", "training", "-c", "1",
                                   "--without-mingle", "--without-gossip", "-l", "INFO"],
                                  cwd=ROOT, env=stack.django_env(), stdout=log, stderr=subprocess.STDOUT)
        delays = []
        try:
            for attempt in range(args.repeat):
                recipe = runs.recipe_build(model_size="small", epochs=200, members=1, patience=0)
                run = runs.run_create(name=f"cancel {attempt}", corpora=[corpus], recipe=recipe)
                deadline = time.monotonic() + 600
                while TrainingRun.objects.get(pk=run.pk).progress <= 0:
                    if time.monotonic() > deadline or worker.poll() is not None:
                        raise RuntimeError((stack.dir / "worker.log").read_text()[-3000:])
                    time.sleep(0.1)
                time.sleep(random.uniform(0, 5))
                asked = time.monotonic()
                runs.run_cancel(run=run)
                while TrainingRun.objects.get(pk=run.pk).status != TrainingRun.Status.CANCELLED:
                    time.sleep(0.05)
                delays.append(round(time.monotonic() - asked, 2))
        finally:
            worker.terminate()
            worker.wait(60)
            log.close()
    print(json.dumps({"benchmark": "cancel_delay", "heartbeat_seconds": args.heartbeat, "cpu_threads": 1,
                      "delays_s": delays, "max_s": max(delays)}, indent=1))


if __name__ == "__main__":
    main()
