"""The run page across a server restart: epochs stored while Daphne is down are drawn once
it is back (the page reconnects with its last epoch and the server replays the rest), with
no gap and no duplicate."""

from __future__ import annotations

import threading

import pytest
from django.utils import timezone

from tests.browser.conftest import DaphneServer
from training.engine.events import EpochReport
from training.models import TrainingRun
from training.services.execution import RunReporter

pytestmark = pytest.mark.timeout(180)

LABELS = ["happy", "sad", "angry"]


def epoch_event(epoch: int, **place: int) -> EpochReport:
    return EpochReport(
        **place, epoch=epoch, epochs=10, train_loss=1.0, train_acc=0.5, val_loss=1.0, wa=0.5, ua=0.3 + 0.05 * epoch,
        macro_f1=0.4, confusion=[[2, 1, 0], [0, 3, 0], [1, 0, 2]], per_class_recall={"happy": 0.6, "sad": 1.0, "angry": 0.6},
        lr=1e-3, duration=1.0, is_best=True,
    )


def report(reporter: RunReporter, epochs: range) -> None:
    # From a plain thread, as in a Celery worker (Playwright keeps an event loop in this one).
    thread = threading.Thread(target=lambda: [reporter(epoch_event(e)) for e in epochs])
    thread.start()
    thread.join()


def test_page_catches_up_after_a_server_restart(daphne_server, logged_in_page, screenshot):
    run = TrainingRun.objects.create(name="restart", labels=LABELS, status="running", heartbeat_at=timezone.now(),
                                     hyperparameters={"train": {"epochs": 10}})
    reporter = RunReporter(run)
    report(reporter, range(1, 3))  # stored before the page opens: drawn from the history
    page = logged_in_page
    page.goto(f"/runs/{run.pk}/")
    page.wait_for_function("document.getElementById('live').textContent === 'live'")
    report(reporter, range(3, 5))  # live
    page.wait_for_function("document.getElementById('chart-acc').data[0].x.length === 4")
    # The overall bar follows epoch messages too (these epochs send no batch messages).
    assert page.text_content("#bar-overall-label") == "40.0%"
    assert page.text_content("#run-phase") == "training"

    daphne_server.stop()
    page.wait_for_function("document.getElementById('live').textContent !== 'live'")
    report(reporter, range(5, 8))  # while the server is down: stored, sent to nobody

    again = DaphneServer(daphne_server.env, daphne_server.log_path)
    again.port, again.url = daphne_server.port, daphne_server.url  # same address: the page reconnects to it
    again.start()
    try:
        page.wait_for_function("document.getElementById('live').textContent === 'live'", timeout=30_000)
        page.wait_for_function("document.getElementById('chart-acc').data[0].x.length === 7")
        report(reporter, range(8, 9))
        page.wait_for_function("document.getElementById('chart-acc').data[0].x.length === 8")
        xs = page.evaluate("document.getElementById('chart-acc').data.map(t => t.x)")
        assert all(x == [1, 2, 3, 4, 5, 6, 7, 8] for x in xs), xs  # every trace: no gap, no duplicate
        screenshot(page, "run_reconnected")
        assert page.js_errors == []
    finally:
        again.stop()
        daphne_server.proc = None  # already stopped; the fixture must not stop it again


def test_a_seed_ensemble_draws_a_series_per_model(daphne_server, logged_in_page, screenshot):
    run = TrainingRun.objects.create(name="trio", labels=LABELS, status="running", heartbeat_at=timezone.now(),
                                     hyperparameters={"train": {"epochs": 10, "members": 2}})
    reporter = RunReporter(run)

    def report_member(member: int, epochs: range) -> None:
        events = [epoch_event(e, member=member, members=2) for e in epochs]
        thread = threading.Thread(target=lambda: [reporter(event) for event in events])
        thread.start()
        thread.join()

    report_member(1, range(1, 4))  # model 1 stored before the page opens
    page = logged_in_page
    page.goto(f"/runs/{run.pk}/")
    page.wait_for_function("document.getElementById('live').textContent === 'live'")
    report_member(2, range(1, 3))  # model 2 live, its epochs from 1 again
    page.wait_for_function("document.getElementById('chart-acc').data.length === 6 "
                           "&& document.getElementById('chart-acc').data[5].x.length === 2")
    expected = {f"{name} (model {m})": list(range(1, 4 if m == 1 else 3))
                for m in (1, 2) for name in ("train acc", "val WA", "val UA")}

    def drawn() -> dict:
        page.wait_for_function("document.getElementById('confusion-caption').textContent.includes('model 2')")
        assert "epoch 2, model 2" in page.text_content("#confusion-caption")  # the latest epoch
        return {t["name"]: t["x"] for t in page.evaluate("document.getElementById('chart-acc').data")}

    assert drawn() == expected
    assert page.text_content("#bar-overall-label") == "60.0%"  # live: model 2 of 2 at epoch 2 of 10
    assert page.text_content("#run-phase") == "training model 2/2"
    assert page.text_content("#run-best-note") == "(best single model so far; the ensemble when it finishes)"
    screenshot(page, "run_ensemble")
    page.reload()  # mid-run: everything now comes from the stored history
    page.wait_for_function("document.getElementById('live').textContent === 'live'")
    assert drawn() == expected
    assert page.text_content("#bar-overall-label") == "60.0%"  # stored: model 2 of 2 at epoch 2 of 10
    assert page.js_errors == []
