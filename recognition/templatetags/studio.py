"""Template filters writing numbers and times the one way the studio writes them
(:mod:`recognition.formatting`): ``{{ x|score }}``, ``{{ x|pct }}``, ``{{ s|duration }}``,
``{{ t|when }}``."""

from __future__ import annotations

from django import template

from recognition.formatting import format_duration, format_pct, format_score, format_when

register = template.Library()
register.filter("score", format_score)
register.filter("pct", format_pct)
register.filter("duration", format_duration)
register.filter("when", format_when)
