"""A run's state as the page shows it, driven by the worker's own status calls (no worker
process: the state changes are made the way the worker makes them): the form's test
speakers and estimate, the queued note that goes once the run starts, elapsed time and ETA,
the cancel confirmation, and the bars of a cancelled run that no longer look live."""

from __future__ import annotations

import threading

import pytest
from django.utils import timezone

from tests.browser.studio_data import populate
from training.models import TrainingRun
from training.services import execution
from training.services.runs import run_notify_status

pytestmark = pytest.mark.timeout(240)


def in_thread(fn) -> None:
    # From a plain thread, as in a Celery worker (Playwright keeps an event loop in this one).
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join()


def test_form_then_queued_running_cancelled(logged_in_page, user, tmp_path, screenshot):
    data = populate(tmp_path, user)
    page = logged_in_page
    page.set_viewport_size({"width": 390, "height": 860})
    page.goto("/runs/new/")
    # Speakers appear for the chosen corpus only, and only for a hold-out run.
    assert not page.locator("input[name=test_speakers]").first.is_visible()
    assert page.is_visible("#speakers-none")
    page.select_option("select[name=corpora]", label="synth-ravdess")
    assert page.locator("input[name=test_speakers]").count() == 4 and page.is_visible("text=Actor_01")
    page.select_option("select[name=protocol]", "kfold")
    assert not page.is_visible("#test-speakers")
    page.select_option("select[name=protocol]", "holdout")
    # The estimate: measured epochs of the studio's runs (all log-Mel, "small"), this form's settings.
    page.select_option("select[name=features]", "logmel")
    page.select_option("select[name=model_size]", "small")
    page.fill("input[name=epochs]", "10")
    page.fill("input[name=members]", "1")
    estimate = page.text_content("#run-estimate")
    assert "Estimated length: at most about" in estimate and "10 epochs × 1 model over 16 utterances" in estimate
    assert "10 epochs measured here on small models" in estimate
    page.fill("input[name=name]", "chosen speakers")
    page.check("input[value='synth-ravdess/Actor_02']")
    screenshot(page, "run-form-speakers-390", full_page=False)
    page.click("button[type=submit]")
    page.wait_for_url("**/runs/*/")

    run = TrainingRun.objects.get(name="chosen speakers")
    assert run.test_speakers == ["synth-ravdess/Actor_02"]
    assert "synth-ravdess/Actor_02 (chosen)" in page.text_content(".test-speakers")
    assert page.is_visible(".messages li.queued-note") and page.is_visible("#live")
    page.wait_for_function("document.getElementById('live').textContent === 'live'")

    def start() -> None:
        assert execution._claim(run.pk)  # as run_execute does
        TrainingRun.objects.filter(pk=run.pk).update(progress=0.25, started_at=timezone.now())
        run_notify_status(TrainingRun.objects.get(pk=run.pk))

    in_thread(start)
    page.wait_for_selector("#run-status.running")
    page.wait_for_selector(".messages li.queued-note", state="detached")  # "queued" is no longer true
    page.wait_for_function("document.getElementById('run-elapsed').textContent.endsWith(' s')")
    page.wait_for_selector("#run-eta-box:not([hidden])")
    assert "left" in page.text_content("#run-eta-box")

    dialogs = []

    def answer(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss() if len(dialogs) == 1 else dialog.accept()

    page.on("dialog", answer)
    page.click("#cancel-button")  # dismissed: nothing happens
    assert dialogs and dialogs[0].startswith("Cancel this run?")
    assert not TrainingRun.objects.get(pk=run.pk).cancel_requested
    page.click("#cancel-button")
    page.wait_for_selector("text=Cancel requested")
    assert TrainingRun.objects.get(pk=run.pk).cancel_requested
    page.wait_for_function("document.getElementById('live').textContent === 'live'")
    in_thread(lambda: execution._finish(run.pk, TrainingRun.Status.CANCELLED, phase="cancelled"))
    page.wait_for_selector("#run-status.cancelled")
    page.wait_for_selector("#bar-overall.stopped")
    assert page.locator("#bar-epoch").get_attribute("class").endswith("stopped")
    assert not page.is_visible("#live") and not page.is_visible("#run-eta-box")
    assert page.text_content("#run-time .muted") == "took" and page.is_visible("#run-elapsed")
    screenshot(page, "run-cancelled-390", full_page=False)
    assert page.js_errors == []

    # A run that was already cancelled when the page opened shows the same.
    page.goto(f"/runs/{data['cancelled'].pk}/")
    assert page.locator("#bar-overall").get_attribute("class").endswith("stopped") and not page.is_visible("#live")
