"""Corpora in a real browser: upload a zip and a folder, follow the import live, see the charts,
play a sample, and get a clear message for a hostile archive. Screenshots in var/screenshots/."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.browser.conftest import open_logged_in_page
from tests.web.corpora_helpers import entries_zip, ravdess_folder, zip_bytes

pytestmark = pytest.mark.timeout(300)


def test_upload_zip_and_folder_then_see_the_corpus(browser, live_server_url, celery_worker, user, tmp_path, screenshot):
    from training.models import Corpus

    source = ravdess_folder(tmp_path / "ravdess", actors=2, statements=2)
    (tmp_path / "corpus.zip").write_bytes(zip_bytes(source, extra={"ravdess/readme.txt": b"hello"}))
    (tmp_path / "evil.zip").write_bytes(entries_zip(["Actor_01/../../../etc/x.wav"]))
    page = open_logged_in_page(browser, live_server_url, user, microphone=False)
    try:
        # A hostile archive: refused with the reason, nothing created.
        page.goto("/corpora/upload/")
        page.fill("input[name=name]", "evil")
        page.set_input_files("input[name=archive]", str(tmp_path / "evil.zip"))
        page.click("#upload-button")
        page.wait_for_function("document.getElementById('upload-error').textContent.length > 0")
        assert "climb out" in page.inner_text("#upload-error")
        assert not Corpus.objects.exists()
        screenshot(page, "corpus_upload_refused")

        # The zip: upload progress, then the corpus page follows the import and redraws when ready.
        page.fill("input[name=name]", "Mini RAVDESS")
        page.set_input_files("input[name=archive]", str(tmp_path / "corpus.zip"))
        page.click("#upload-button")
        page.wait_for_url("**/corpora/*/", timeout=60_000)
        page.wait_for_selector(".badge.ready", timeout=120_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=30_000)
        colours = page.evaluate("document.getElementById('chart-labels').data[0].marker.color")
        assert colours == page.evaluate("['neutral','happy','sad','angry'].map(emotionColor)")
        assert "readme.txt" in page.inner_text("#skipped-table")
        duration = page.evaluate(
            """() => new Promise((resolve, reject) => {
                 const audio = document.querySelector('#samples audio');
                 audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
                 audio.addEventListener('error', () => reject(new Error('audio failed to load')));
                 audio.load();
               })"""
        )
        assert 0.5 < duration < 3
        screenshot(page, "corpus_detail")

        # A folder through the directory picker, with its relative paths.
        page.goto("/corpora/upload/")
        page.fill("input[name=name]", "Folder RAVDESS")
        page.check("input[name=source][value=folder]")
        page.set_input_files("input[name=files]", str(source))
        page.click("#upload-button")
        page.wait_for_url("**/corpora/*/", timeout=60_000)
        page.wait_for_selector(".badge.ready", timeout=120_000)
        corpus = Corpus.objects.get(name="Folder RAVDESS")
        assert corpus.utterances.count() == 16
        assert corpus.utterances.filter(path__startswith="ravdess/Actor_01/").count() == 8

        page.goto("/corpora/")
        assert page.locator("#corpus-table tbody tr").count() == 2
        screenshot(page, "corpus_list")
        page.on("dialog", lambda dialog: dialog.accept())
        page.click(f"tr[data-corpus='{corpus.pk}'] button.danger")
        page.wait_for_selector("text=Deleted the corpus Folder RAVDESS")
        assert not Corpus.objects.filter(pk=corpus.pk).exists()
        assert page.js_errors == []
    finally:
        page.context.close()


def group_send(group: str, message: dict) -> None:
    """Send as the worker does, from a thread without Playwright's event loop."""
    from ser_site.channels_util import group_send as send

    with ThreadPoolExecutor(1) as pool:
        pool.submit(send, group, message).result()


def test_import_page_follows_the_websocket(logged_in_page, screenshot):
    """The corpus page of an import in progress moves its bar on import.progress and reloads on import.status."""
    from training.models import Corpus

    corpus = Corpus.objects.create(name="In progress", progress=0.25)
    page = logged_in_page
    page.goto(f"/corpora/{corpus.pk}/")
    page.wait_for_function("document.querySelector('#import-progress').title === '25.0%'")  # the state sent on connect
    group = f"import-{corpus.pk}"
    group_send(group, {"type": "import.progress", "corpus": corpus.pk, "progress": 0.6, "done": 9, "total": 16,
                       "phase": "checking audio"})
    page.wait_for_function("document.getElementById('import-phase').textContent.includes('9 / 16')")
    assert page.evaluate("document.querySelector('#import-progress > div').style.width") == "60%"
    screenshot(page, "corpus_importing")
    Corpus.objects.filter(pk=corpus.pk).update(status=Corpus.Status.FAILED, error="No usable audio files in the upload.")
    group_send(group, {"type": "import.status", "corpus": corpus.pk, "status": "failed", "progress": 0.6,
                       "error": "No usable audio files in the upload."})
    page.wait_for_selector("#corpus-error")
    assert "No usable audio files" in page.inner_text("#corpus-error")
    screenshot(page, "corpus_failed")
    assert page.js_errors == []
