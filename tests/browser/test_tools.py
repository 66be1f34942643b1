"""The tools people bring from MLflow, W&B and Gradio, in a real browser: the run list's
filters and compare ticks, overlaying any metric, notes and tags, model versions side by
side, and copying a new API token."""

from __future__ import annotations

import pytest

from tests.browser.studio_data import populate

pytestmark = pytest.mark.timeout(240)


def test_run_list_compare_and_tags(logged_in_page, user, tmp_path, screenshot):
    data = populate(tmp_path, user)
    page = logged_in_page
    page.goto(f"/runs/{data['done'].pk}/")
    page.fill("#annotate-form input[name=tags]", "baseline, synth")
    page.fill("#annotate-form textarea[name=notes]", "first try")
    page.click("#annotate-form button")
    page.wait_for_selector("text=Notes and tags saved.")

    page.goto("/runs/")
    assert page.locator("#run-table tbody tr").count() == 3
    page.select_option("#run-filters select[name=status]", "cancelled")  # applies on change
    page.wait_for_url("**status=cancelled**")
    assert page.locator("#run-table tbody tr").count() == 1
    page.goto("/runs/?tag=synth")
    assert page.locator("#run-table tbody tr").count() == 1 and page.is_visible("text=first try")
    page.goto("/runs/?sort=-test_ua")
    assert page.locator("#run-table tbody tr").first.get_attribute("data-run") == str(data["done"].pk)

    assert page.is_disabled("#compare-button")
    page.check(f"input[name=run][value='{data['done'].pk}']")
    page.check(f"input[name=run][value='{data['running'].pk}']")
    assert page.text_content("#compare-button") == "Compare 2 runs"
    page.click("#compare-button")
    page.wait_for_url("**/runs/compare/**")
    page.wait_for_function("document.getElementById('chart-compare').data.length === 2")
    ys = page.evaluate("document.getElementById('chart-compare').data[0].y")
    assert ys[-1] == pytest.approx(0.50)  # validation UA by default
    page.select_option("#compare-metric", "train_loss")
    page.wait_for_function("document.getElementById('chart-compare').layout.title.text.startsWith('Training loss')")
    assert page.evaluate("document.getElementById('chart-compare').data[0].y")[0] == pytest.approx(1.3)
    assert "metric=train_loss" in page.url
    screenshot(page, "tools-compare-390", full_page=False)
    assert page.js_errors == []


def test_model_versions_side_by_side_and_token_copy(browser, live_server_url, user, tmp_path, screenshot):
    from tests.browser.conftest import open_logged_in_page

    data = populate(tmp_path, user)
    page = open_logged_in_page(browser, live_server_url, user, microphone=False)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server_url)
    try:
        page.goto("/models/")
        assert page.is_disabled("#model-compare-button")
        page.check(f"input.pick[value='{data['first'].pk}']")
        page.check(f"input.pick[value='{data['second'].pk}']")
        page.click("#model-compare-button")
        page.wait_for_selector("#compare-scores")
        assert f"a={data['first'].pk}" in page.url and f"b={data['second'].pk}" in page.url
        assert page.locator("#compare-scores th a").all_text_contents() == ["synth model v1", "synth model v2"]
        screenshot(page, "tools-model-compare")

        page.goto("/profile/")
        page.fill("input[name=name]", "laptop script")
        page.click("text=Create token")
        secret = page.text_content("#new-token-secret").strip()
        page.click("#copy-token")
        page.wait_for_function("document.getElementById('copy-token').textContent === 'Copied'")
        assert page.evaluate("navigator.clipboard.readText()") == secret
        assert page.text_content("#copy-status") == "Copied to the clipboard."
        assert page.js_errors == []
    finally:
        page.context.close()
