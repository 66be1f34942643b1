"""The record and upload pages in a real Chromium against a real Daphne server.

The record test speaks into Chromium's fake microphone (a synthetic WAV with pauses, then
continuous voice, see conftest.py), streams it over the websocket to the real consumer, and
checks what the person sees: live segments, a provisional emotion for the segment in
progress, the final emotion (from the speech segments), the timeline, and the attention
drawn over the spectrogram. Screenshots land in var/screenshots/.
"""

from __future__ import annotations

import http.client
import json
import re

import numpy as np
import pytest

from devsupport.synth import speech_silence_speech, write_wav
from devsupport.tiny_model import LABELS, register_tiny
from tests.browser.conftest import launch_chromium, open_logged_in_page

pytestmark = pytest.mark.slow


@pytest.fixture
def model(transactional_db, tmp_path):
    # Shaped as the default recipe trains them: per-speaker normalised (the live path keeps a
    # running mean), a seed ensemble (each segment goes through every model) trained with
    # speed augmentation.
    from training.engine.experiment import Recipe

    train = Recipe().train
    return register_tiny(tmp_path, activate=True, speaker_cmn=True, train_config=train.to_dict(), members=train.members)


def plot_traces(page, selector: str) -> list[dict]:
    """Type, name and number of points of each trace of the Plotly chart at ``selector``."""
    return page.evaluate(
        """(sel) => (document.querySelector(sel).data || []).map(t => ({
              type: t.type, name: t.name, n: (t.type === 'heatmap' ? t.z[0].length : (t.x || []).length),
              colors: t.marker ? t.marker.color : null }))""",
        selector,
    )


def test_record_live(logged_in_page, model, screenshot):
    page = logged_in_page
    page.goto("/record/")
    assert page.locator("#model-select").input_value() == str(model.pk)
    assert page.locator("#start").is_enabled() and page.locator("#stop").is_disabled()
    page.click("#start")
    page.wait_for_selector("#stop:enabled")
    # While someone speaks, the segment in progress gets a provisional emotion, marked as such.
    page.wait_for_selector("#result .rv-label[data-provisional=true] .rv-provisional", timeout=30_000)
    assert page.locator("#result .rv-provisional").text_content() == "provisional"
    assert page.locator("#result .rv-name").text_content() in LABELS
    assert "provisional" in page.locator("#result .rv-caption").text_content()
    screenshot(page, "record-provisional")
    # Speak for about ten seconds of recorded time: bursts with pauses, then six seconds of voice
    # without a pause. Segments arrive while recording, the long stretch cut into pieces.
    page.wait_for_function("() => parseFloat(document.getElementById('rec-time').textContent) >= 10.0", timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('#result .rv-segments tbody tr').length >= 4", timeout=30_000)
    assert page.locator("#result").get_attribute("data-state") == "live"
    level = page.evaluate("() => parseFloat(document.querySelector('#meter > div').style.width)")
    screenshot(page, "record-live")
    page.click("#stop")
    page.wait_for_selector("#result[data-state=final]", timeout=60_000)
    screenshot(page, "record-final")

    assert level > 0, "the level meter shows the microphone's signal"
    assert page.locator("#rec-error").is_hidden(), page.locator("#rec-error").text_content()
    label = page.locator("#result .rv-name").text_content()
    assert label in LABELS
    assert page.locator("#result .rv-provisional").count() == 0
    caption = page.locator("#result .rv-caption").text_content()
    assert caption.startswith("From the speech:")
    # Every chunk arrived and was decoded: the server heard (about) what was recorded.
    assert float(re.search(r"in ([\d.]+) s", caption).group(1)) >= 9.5, caption
    bars = page.locator("#result .rv-bars .emotion-bar")
    assert bars.count() == len(LABELS)
    rows = page.locator("#result .rv-segments tbody tr").count()
    assert rows >= 4, "the fake microphone's pauses and the maximum length cut the speech into segments"
    timeline = plot_traces(page, "#result .rv-timeline")
    assert [t["name"] for t in timeline] == LABELS and all(t["n"] == rows for t in timeline)
    spec = plot_traces(page, "#result .rv-spec")
    assert spec[0]["type"] == "heatmap" and spec[0]["n"] > 50
    attention = spec[1:]  # one trace per segment, so the filled area never bridges a pause
    assert len(attention) == rows and all(t["type"] == "scatter" and t["name"] == "attention" for t in attention)
    assert sum(t["n"] for t in attention) > 10

    # The recording is listed, playable from the chunks kept in the browser.
    item = page.locator("#recordings li")
    assert item.count() == 1
    assert label in item.text_content()
    size = page.evaluate("async () => (await (await fetch(document.querySelector('#recordings audio').src)).blob()).size")
    assert size > 10_000
    # The browser can decode it as media (the chunks form one valid file).
    page.evaluate("() => document.querySelector('#recordings audio').load()")
    page.wait_for_function("() => document.querySelector('#recordings audio').readyState >= 2")
    # A second recording; then the first one's result can be shown again.
    page.click("#start")
    page.wait_for_selector("#stop:enabled")
    page.wait_for_function("() => parseFloat(document.getElementById('rec-time').textContent) >= 1.5")
    page.click("#stop")
    page.wait_for_function("() => document.querySelectorAll('#recordings li').length === 2", timeout=60_000)
    second = page.locator("#recordings li[data-number='2']").text_content()
    assert float(re.search(r"([\d.]+) s", second).group(1)) >= 1.0, second
    first = page.locator("#recordings li[data-number='1']")
    first.locator("button", has_text="Show result").click()
    assert page.locator("#result .rv-segments tbody tr").count() == rows
    assert "selected" in (first.get_attribute("class") or "")
    assert "recording 1" in page.locator("#rec-status").text_content()
    screenshot(page, "record-list")
    assert page.js_errors == []


def test_record_without_model(logged_in_page, transactional_db, screenshot):
    page = logged_in_page
    page.goto("/record/")
    assert page.locator("#no-model").is_visible()
    assert page.locator("#start").is_disabled()
    screenshot(page, "record-no-model", full_page=False)
    assert page.js_errors == []


@pytest.mark.parametrize("daphne_extra_env", [{"SER_STREAM_MAX_SECONDS": "2"}])
def test_record_stops_at_the_server_limit(logged_in_page, model, daphne_extra_env):
    """The page learns the limit from "ready" and stops just before it, so the recording
    gets its result instead of a "too long" error."""
    page = logged_in_page
    page.goto("/record/")
    page.click("#start")
    page.wait_for_selector("#result[data-state=final]", timeout=60_000)
    assert "limit of 2 s" in page.locator("#rec-status").text_content()
    assert page.locator("#rec-error").is_hidden()
    assert page.locator("#recordings li").count() == 1
    assert page.js_errors == []


def test_record_model_deleted_meanwhile(logged_in_page, model, screenshot):
    """The server's error message reaches the user, and the page recovers."""
    page = logged_in_page
    page.goto("/record/")
    pk = model.pk
    model.delete()  # an administrator removes the version while the page is open
    page.click("#start")
    error = page.locator("#rec-error")
    error.wait_for()
    assert f"no model version with id {pk}" in error.text_content()
    page.wait_for_selector("#start:enabled")
    assert page.locator("#stop").is_disabled()
    assert page.locator("#recordings li").count() == 0
    assert page.locator("#result .rv").count() == 0  # no "Listening…" left behind
    screenshot(page, "record-server-error", full_page=False)
    assert page.js_errors == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("denied", "Microphone access was denied"),
        ("missing", "No microphone was found"),
        ("insecure", "only available on secure pages"),
    ],
)
def test_record_microphone_problems(playwright_session, daphne_server, user, model, fake_microphone_wav, screenshot,
                                    case, expected):
    """Real Chromium behaviour: a blocked permission prompt, a machine without a microphone,
    and a plain-http origin other than localhost (no navigator.mediaDevices at all)."""
    base_url = daphne_server.url
    if case == "denied":
        chromium = launch_chromium(playwright_session, microphone_wav=fake_microphone_wav, fake_ui=False)
    elif case == "missing":
        chromium = launch_chromium(playwright_session, microphone_wav=None)
    else:
        chromium = launch_chromium(playwright_session, microphone_wav=fake_microphone_wav,
                                   args=["--host-resolver-rules=MAP insecure.test 127.0.0.1"])
        base_url = base_url.replace("127.0.0.1", "insecure.test")
    try:
        page = open_logged_in_page(chromium, base_url, user, microphone=False)
        page.goto("/record/")
        if case != "insecure":
            page.click("#start")
        error = page.locator("#rec-error")
        error.wait_for()
        assert expected in error.text_content()
        # Nothing is left half-started: Start works again (or stays off when it cannot work).
        assert page.locator("#stop").is_disabled()
        assert page.locator("#start").is_enabled() == (case != "insecure")
        assert page.locator("#recordings li").count() == 0
        screenshot(page, f"record-mic-{case}", full_page=False)
        assert page.js_errors == []
    finally:
        chromium.close()


def test_upload_page(logged_in_page, model, tmp_path, screenshot):
    """Several files at once: each gets its card with a player and its result, in order; a
    file that is not decodable gets its error in its own card and the others still work."""
    page = logged_in_page
    wave, _ = speech_silence_speech("happy", speech=1.0, silence=0.8)
    wav = write_wav(tmp_path / "two bursts.wav", wave)
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00garbage" * 200)
    page.goto("/classify/")
    page.set_input_files("input[name=file]", [str(wav), str(bad)])
    page.click("#classify-button")
    good, broken = page.locator(".file-result").nth(1), page.locator(".file-result").nth(0)  # newest on top
    good.locator(".rv-spec .main-svg").first.wait_for()
    broken.locator(".file-error").wait_for()
    assert good.locator(".file-name").text_content() == "two bursts.wav"
    assert good.locator(".rv-name").text_content() in LABELS
    assert good.locator(".rv-segments tbody tr").count() == 2
    assert good.locator("audio.file-audio").get_attribute("src").startswith("blob:")
    assert page.evaluate("document.querySelectorAll('.file-result audio')[1].duration") == pytest.approx(wave.size / 16000, abs=0.05)
    spec = plot_traces(page, "#file-result-1 .rv-spec")
    assert [t["type"] for t in spec] == ["heatmap", "scatter", "scatter"]  # the attention of each of the two segments
    assert "broken.mp3" in broken.locator(".file-error").text_content()
    assert broken.locator(".rv-current").count() == 0 and broken.locator(".file-state").text_content() == "failed"
    screenshot(page, "upload-result")

    # Digital silence: no speech, never an emotion.
    silence = write_wav(tmp_path / "silence.wav", np.zeros(10 * 16000, np.float32))
    page.set_input_files("input[name=file]", str(silence))
    page.click("#classify-button")
    card = page.locator(".file-result").first
    card.locator(".rv-spec .main-svg").first.wait_for()
    assert card.locator(".file-name").text_content() == "silence.wav"
    assert card.locator(".rv-no-speech").text_content() == "No speech"
    assert card.locator(".rv-name").count() == 0 and card.locator(".rv-bars .emotion-bar").count() == 0
    screenshot(page, "upload-silence")
    assert page.js_errors == []


def test_upload_page_takes_dropped_files_and_examples(logged_in_page, model, screenshot):
    page = logged_in_page
    page.goto("/classify/")
    # A file dropped on the box, as a file manager drops it.
    dropped = page.evaluate_handle("""async () => {
      const blob = await (await fetch(document.querySelector('[data-example]').dataset.example)).blob();
      const data = new DataTransfer();
      data.items.add(new File([blob], 'dropped.wav', { type: 'audio/wav' }));
      return data;
    }""")
    page.dispatch_event("#drop-zone", "dragover", {"dataTransfer": dropped})
    assert "dragging" in page.get_attribute("#drop-zone", "class")
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})
    page.locator(".file-result .rv-current .rv-name").first.wait_for()
    assert page.locator(".file-name").first.text_content() == "dropped.wav"
    assert "dragging" not in page.get_attribute("#drop-zone", "class")
    # An example clip, made by the project's own synthesiser, classified the same way.
    page.click("button[data-example$='sad.wav']")
    page.wait_for_function("document.querySelectorAll('.file-result .rv-current').length === 2")
    assert page.locator(".file-name").first.text_content() == "sad.wav"
    assert page.locator(".file-result .rv-name").first.text_content() in LABELS
    screenshot(page, "upload-examples")
    assert page.js_errors == []


def _multipart(fields: dict[str, tuple[str, bytes] | str]) -> tuple[bytes, str]:
    boundary = "ser-test-boundary-7d1f"
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data = value
            head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: audio/wav'
        else:
            head, data = f'Content-Disposition: form-data; name="{name}"', value.encode()
        parts.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("daphne_extra_env", [{"SER_API_MAX_UPLOAD_BYTES": "120000"}])
def test_api_over_daphne(daphne_server, model, user, tmp_path, daphne_extra_env):
    """The API through the real ASGI stack (Daphne, the upload guard, Django): a token request
    classifies a file; one over the limit gets the JSON 413."""
    from recognition.services.tokens import api_token_create

    _, secret = api_token_create(user=user, name="daphne")

    def post(seconds_of_speech: float) -> tuple[int, dict]:
        wave, _ = speech_silence_speech("sad", speech=seconds_of_speech, silence=0.8)
        data = write_wav(tmp_path / "speech.wav", wave).read_bytes()
        body, content_type = _multipart({"file": ("speech.wav", data), "model": str(model.pk)})
        conn = http.client.HTTPConnection("127.0.0.1", daphne_server.port, timeout=60)
        try:
            conn.request("POST", "/api/classify", body=body,
                         headers={"Content-Type": content_type, "Authorization": f"Bearer {secret}"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    status, data = post(0.8)  # ~108 kB
    assert status == 200, data
    assert data["model"]["id"] == model.pk and data["label"] in LABELS and len(data["segments"]) == 2
    status, data = post(2.5)  # ~220 kB
    assert status == 413 and data["code"] == "too_large", data


def test_profile_tokens(logged_in_page, screenshot):
    """Create a token (its secret is shown once), then revoke it after confirming."""
    from recognition.models import ApiToken
    from recognition.services.tokens import api_token_authenticate

    page = logged_in_page
    page.goto("/profile/")
    page.fill("input[name=name]", "lab laptop")
    page.click("text=Create token")
    secret = page.locator("#new-token-secret").text_content().strip()
    assert api_token_authenticate(secret=secret) is not None
    screenshot(page, "profile-new-token")
    page.reload()
    assert page.locator("#new-token-secret").count() == 0
    assert "lab laptop" in page.locator("#tokens").text_content()
    page.once("dialog", lambda dialog: dialog.dismiss())  # changing one's mind keeps the token
    page.click("#tokens button:has-text('Revoke')")
    assert ApiToken.objects.count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#tokens button:has-text('Revoke')")
    page.wait_for_selector("#no-tokens")
    assert "The token was revoked" in page.locator(".messages").text_content()
    assert ApiToken.objects.count() == 0
    assert page.js_errors == []
