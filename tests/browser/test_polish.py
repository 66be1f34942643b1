"""Consistency and polish in a real browser: the dark theme follows the system and the
toggle, the skip link, the favicon, charts with accessible names, and numbers and times
written by the browser as the server writes them."""

from __future__ import annotations

import re

import pytest

from recognition.formatting import format_duration, format_pct, format_score
from tests.browser.conftest import open_logged_in_page
from tests.browser.studio_data import populate

pytestmark = pytest.mark.timeout(240)

BACKGROUND = "getComputedStyle(document.body).backgroundColor"


def _dark(rgb: str) -> bool:
    r, g, b = (int(v) for v in re.findall(r"\d+", rgb)[:3])
    return r + g + b < 150


def test_theme_follows_the_system_and_the_toggle(browser, live_server_url, user, tmp_path, screenshot):
    data = populate(tmp_path, user)
    page = open_logged_in_page(browser, live_server_url, user, microphone=False)
    try:
        page.emulate_media(color_scheme="dark")
        page.goto(f"/runs/{data['done'].pk}/")
        page.wait_for_function("document.querySelectorAll('#chart-acc .gtitle').length")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark" and _dark(page.evaluate(BACKGROUND))
        # Charts take the theme's ink (light text on the dark page).
        title_fill = page.evaluate("getComputedStyle(document.querySelector('#chart-acc .gtitle')).fill")
        assert not _dark(title_fill)

        page.click("#theme-toggle")  # the user's choice wins over the system's, and is kept
        assert page.evaluate("document.documentElement.dataset.theme") == "light" and not _dark(page.evaluate(BACKGROUND))
        # …and the charts are redrawn with dark ink.
        page.wait_for_function(
            "getComputedStyle(document.querySelector('#chart-acc .gtitle')).fill.match(/\\d+/g).slice(0, 3)"
            ".reduce((a, b) => a + Number(b), 0) < 150")
        page.reload()
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
        assert page.get_attribute("#theme-toggle", "aria-pressed") == "false"

        page.click("#theme-toggle")  # back to what the system shows: follow the system again
        assert page.evaluate("localStorage.getItem('ser-theme')") is None
        page.emulate_media(color_scheme="light")
        page.wait_for_function("document.documentElement.dataset.theme === 'light'")
        page.emulate_media(color_scheme="dark")
        page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
        screenshot(page, "polish-run-dark", full_page=False)
        assert page.js_errors == []
    finally:
        page.context.close()


def test_skip_link_favicon_and_chart_names(browser, live_server_url, user, tmp_path):
    data = populate(tmp_path, user)
    page = open_logged_in_page(browser, live_server_url, user, microphone=False)
    failed = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    try:
        page.goto(f"/runs/{data['done'].pk}/")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link"
        assert page.locator(".skip-link").is_visible()  # shown once it has the focus
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"

        icon = page.get_attribute("link[rel=icon]", "href")
        assert page.request.get(live_server_url + icon).status == 200
        page.wait_for_function("document.getElementById('chart-acc').getAttribute('aria-label')")
        label = page.get_attribute("#chart-acc", "aria-label")
        # The summary says what the chart shows, in the studio's number format.
        assert label.startswith("Accuracy.") and "val UA: 5 points, last 0.500" in label
        confusion = page.get_attribute("#chart-confusion", "aria-label")
        assert "neutral 75.0%, happy 50.0%, sad 75.0%, angry 75.0%" in confusion, confusion
        assert failed == [] and page.js_errors == []
    finally:
        page.context.close()


def test_browser_writes_numbers_and_times_as_the_server(browser, live_server_url, user, tmp_path):
    data = populate(tmp_path, user)
    page = open_logged_in_page(browser, live_server_url, user, microphone=False)
    try:
        page.goto(f"/runs/{data['done'].pk}/")
        values = [0.3125, 0.3135, 0.0005, 0.9995, 1, 0, 0.146, 0.03, 0.123456]
        assert page.evaluate("(vs) => vs.map(fmt.score)", values) == [format_score(v) for v in values]
        assert page.evaluate("(vs) => vs.map(fmt.pct)", values) == [format_pct(v) for v in values]
        seconds = [0, 42.4, 185.5, 3725, 59.5]
        assert page.evaluate("(vs) => vs.map(fmt.duration)", seconds) == [format_duration(s) for s in seconds]
        # Times: the stored epochs' moments in the event log, 24-hour, in the server's zone.
        created = data["done"].epochs.first().created_at
        assert page.evaluate(f"fmt.datetime({created.timestamp()})") == created.strftime("%Y-%m-%d %H:%M")
        first_line = page.text_content("#event-log div")
        assert first_line.startswith(created.strftime("%H:%M:%S")), first_line
        assert "AM" not in page.text_content("#event-log") and "PM" not in page.text_content("#event-log")
    finally:
        page.context.close()
