"""One number and time format everywhere: the formatting functions, and one score read on
every page that shows it (model page, model list, classify dropdown, admin list)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse

from devsupport.tiny_model import register_tiny
from recognition.formatting import format_duration, format_pct, format_score, format_when


def test_scores_round_half_up_on_the_decimal_value():
    # 0.3125 is exact in binary: Python's own rounding writes 0.312, floatformat 0.313.
    assert format_score(0.3125) == "0.313"
    assert format_score(0.3135) == "0.314"  # 0.31349999… in binary, 0.3135 as written
    assert format_score(1) == "1.000" and format_score(0.0) == "0.000"
    assert format_score(None) == format_score("0.5") == format_score(float("nan")) == format_score(True) == "–"


def test_percentages_always_have_one_decimal():
    assert format_pct(0.146) == "14.6%"
    assert format_pct(0.03) == "3.0%"
    assert format_pct(1) == "100.0%" and format_pct(0.00049) == "0.0%"
    assert format_pct(None) == "–"


def test_durations_and_moments():
    assert format_duration(42.4) == "42 s"
    assert format_duration(185.5) == "3 min 06 s"
    assert format_duration(3725) == "1 h 02 min"
    assert format_duration(None) == "–"
    assert format_when(dt.datetime(2026, 12, 6, 3, 26, 59, tzinfo=dt.UTC)) == "2026-12-06 03:26"
    assert format_when(None) == "–"


@pytest.mark.django_db
def test_one_score_reads_the_same_on_every_page(admin_client, tmp_path, settings, one_thread):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    version = register_tiny(tmp_path, name="half")
    version.metrics = {**version.metrics, "ua": 0.3125, "wa": 0.5, "macro_f1": 0.25}
    version.save()
    pages = {
        "model page": reverse("recognition:model", args=[version.pk]),
        "model list": reverse("recognition:models"),
        "classify dropdown": reverse("recognition:upload"),
        "record dropdown": reverse("recognition:record"),
        "admin list": reverse("admin:recognition_modelversion_changelist"),
        "admin page": reverse("admin:recognition_modelversion_change", args=[version.pk]),
    }
    for name, url in pages.items():
        html = admin_client.get(url).content.decode()
        assert "0.313" in html, name
        assert not re.search(r"0\.312(?!\d)|31\.[23]", html), name  # the JSON views keep the raw 0.3125
    # The admin writes dates as the pages do, not "Dec. 6, 2026, 3:26 a.m.".
    html = admin_client.get(pages["admin list"]).content.decode()
    assert version.created_at.strftime("%Y-%m-%d %H:%M") in html


@pytest.mark.django_db
def test_every_page_names_the_favicon(admin_client):
    """Browsers ask for /favicon.ico unless a page names its icon: the studio's pages and the admin's do."""
    for url in (reverse("runs:list"), reverse("admin:index"), reverse("admin:recognition_modelversion_changelist")):
        assert 'rel="icon" href="/static/favicon.svg"' in admin_client.get(url).content.decode(), url
