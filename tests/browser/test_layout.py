"""Every page at phone width (390 px) and desktop width (1280 px), light and dark: no
horizontal scroll, the navigation fits, charts stay inside their cards, and nothing on the
page raises. Screenshots of each go to var/screenshots/layout-<page>-<width>-<scheme>.png.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import open_logged_in_page
from tests.browser.studio_data import pages, populate

pytestmark = pytest.mark.timeout(400)

WIDTHS = (390, 1280)

OVERFLOW = """() => {
  const doc = document.documentElement;
  const wide = [...document.querySelectorAll('body *')].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.right > doc.clientWidth + 1 && getComputedStyle(el).position !== 'fixed'
      && !el.closest('.scroll-x');
  }).slice(0, 5).map((el) => `${el.tagName.toLowerCase()}#${el.id}.${[...el.classList].join('.')} right=${Math.round(el.getBoundingClientRect().right)}`);
  // Plotly's toolbar (shown on hover) must never sit on a chart's title.
  const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const covered = [...document.querySelectorAll('.js-plotly-plot')].filter((plot) => {
    const title = plot.querySelector('.gtitle'), bar = plot.querySelector('.modebar');
    return title && bar && title.textContent && hit(title.getBoundingClientRect(), bar.getBoundingClientRect());
  }).map((plot) => plot.id);
  const unnamed = [...document.querySelectorAll('.js-plotly-plot')].filter((p) => !p.getAttribute('aria-label')).map((p) => p.id);
  return {scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, wide, covered, unnamed};
}"""


def _settle(page) -> None:
    page.wait_for_load_state("load")
    # Plotly draws after load; responsive charts resize on the next frame.
    page.wait_for_timeout(300)


def _check_navigation(page, width: int) -> None:
    """Desktop: the links are in the bar. Phone: they fold behind the menu button, which
    opens them inside the screen and closes them again."""
    runs = page.locator("#site-menu nav a", has_text="Runs")
    toggle = page.locator("#nav-toggle")
    if width >= 1000:
        assert runs.is_visible() and not toggle.is_visible()
        return
    assert not runs.is_visible() and toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    for link in page.locator("#site-menu a").all():
        box = link.bounding_box()
        assert link.is_visible() and box["x"] >= 0 and box["x"] + box["width"] <= width, link.text_content()
    toggle.click()
    assert not runs.is_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_phone_and_desktop(browser, live_server_url, user, tmp_path, screenshot, scheme):
    data = populate(tmp_path, user)
    page = open_logged_in_page(browser, live_server_url, user, microphone=False)
    page.emulate_media(color_scheme=scheme)
    try:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 860})
            for name, url in pages(data).items():
                page.goto(url)
                _settle(page)
                found = page.evaluate(OVERFLOW)
                screenshot(page, f"layout-{name}-{width}-{scheme}")
                assert found["scrollWidth"] <= found["clientWidth"], f"{name} at {width} px scrolls sideways: {found}"
                assert found["wide"] == [], f"{name} at {width} px: elements stick out: {found['wide']}"
                assert found["covered"] == [], f"{name} at {width} px: the toolbar covers the title of {found['covered']}"
                assert found["unnamed"] == [], f"{name} at {width} px: charts without an accessible name: {found['unnamed']}"
                _check_navigation(page, width)
        assert page.js_errors == []
    finally:
        page.context.close()
