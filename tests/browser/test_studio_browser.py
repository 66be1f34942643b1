"""The dashboard in a real browser, with a real Celery worker behind a real Daphne server:
upload a corpus zip, see its charts, train, watch the charts fill, cancel a second run,
make the registered version active in the admin. Screenshots go to var/screenshots/."""

from __future__ import annotations

import pytest

from tests.browser.conftest import open_logged_in_page
from tests.web.corpora_helpers import ravdess_folder, zip_bytes

pytestmark = pytest.mark.timeout(420)


def test_upload_train_watch_cancel_activate(browser, live_server_url, celery_worker, admin_user, tmp_path, screenshot):
    from recognition.models import ModelVersion
    from training.models import TrainingRun

    archive = tmp_path / "tiny-ravdess.zip"
    archive.write_bytes(zip_bytes(ravdess_folder(tmp_path / "ravdess", actors=4, statements=2)))
    page = open_logged_in_page(browser, live_server_url, admin_user, microphone=False)
    try:
        # 1. Upload the zip; the import runs in the worker and the page follows it live.
        page.goto("/corpora/upload/")
        page.fill("input[name=name]", "tiny-ravdess")
        page.set_input_files("input[name=archive]", str(archive))
        page.click("#upload-button")
        page.wait_for_url("**/corpora/*/", timeout=60_000)
        page.wait_for_selector(".badge.ready", timeout=120_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=30_000)
        screenshot(page, "studio_corpus")

        # 2. Start a short run and watch the accuracy curve and the confusion matrix appear.
        page.goto("/runs/new/")
        page.fill("input[name=name]", "browser run")
        page.select_option("select[name=corpora]", label="tiny-ravdess")
        page.select_option("select[name=model_size]", "small")
        page.fill("input[name=epochs]", "4")
        page.fill("input[name=batch_size]", "8")
        page.fill("input[name=patience]", "0")
        page.uncheck("input[name=augment]")
        assert page.input_value("select[name=mean_norm]") == "speaker"  # the engine's default recipe
        assert page.input_value("select[name=features]") == "whisper"  # the default recipe: the Whisper front end
        assert page.input_value("input[name=members]") == "3"  # three heads on the encoder's states, left as it is
        screenshot(page, "studio_run_form")
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")
        page.wait_for_function(
            "(document.getElementById('chart-acc').data || []).some(t => t.x.length >= 2)", timeout=240_000
        )
        page.wait_for_function("document.querySelector('#chart-confusion .js-plotly-plot, #chart-confusion.js-plotly-plot')")
        page.wait_for_selector("#run-status.succeeded", timeout=240_000)
        page.wait_for_load_state()  # the page reloads once to show the registered model
        page.wait_for_selector("text=Registered as")
        body = page.inner_text("body")
        assert "per-speaker normalised" in body and "Whisper-base encoder" in body
        screenshot(page, "studio_run_succeeded")
        run = TrainingRun.objects.get(name="browser run")
        assert run.status == "succeeded"
        assert sorted(run.epochs.values_list("member", "epoch")) == [(m, e) for m in (1, 2, 3) for e in (1, 2, 3, 4)]
        assert len(page.evaluate("document.getElementById('chart-acc').data")) == 9  # three curves for each model

        # 3. A second, long run: cancel it from its page while it runs.
        page.goto("/runs/new/")
        page.fill("input[name=name]", "to cancel")
        page.select_option("select[name=corpora]", label="tiny-ravdess")
        page.select_option("select[name=model_size]", "small")
        page.fill("input[name=epochs]", "300")
        # No early stopping: the cancel flag reaches the worker with its next heartbeat (10 s), and
        # a run that stops early on this tiny corpus could succeed before then.
        page.fill("input[name=patience]", "0")
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")
        page.wait_for_selector("#run-status.running", timeout=60_000)
        page.once("dialog", lambda dialog: dialog.accept())  # "Cancel this run?"
        page.click("#cancel-button")
        page.wait_for_selector("#run-status.cancelled", timeout=120_000)
        screenshot(page, "studio_run_cancelled")
        assert TrainingRun.objects.get(name="to cancel").status == "cancelled"

        # 4. Make the registered version active in the admin.
        version = ModelVersion.objects.get()
        assert not version.is_active and version.inference["members"] == 3
        page.goto("/admin/recognition/modelversion/")
        page.check(f"input[name=_selected_action][value='{version.pk}']")
        page.select_option("select[name=action]", "make_active")
        page.click("button[name=index]")
        page.wait_for_selector(".messagelist")
        screenshot(page, "studio_admin_active")
        version.refresh_from_db()
        assert version.is_active
        page.goto("/runs/")
        screenshot(page, "studio_run_list")
        assert page.js_errors == []
    finally:
        page.context.close()
