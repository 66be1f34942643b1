"""One way to write numbers and times on every page, in the admin and in the dropdowns.

- Scores (UA, WA, macro-F1, recall, precision): three decimals, ``0.313``.
- Shares (probabilities, progress): a percentage with one decimal, ``14.6%``.
- Durations: ``42 s``, ``3 min 05 s``, ``1 h 02 min``.
- Moments: ``2026-12-06 03:26`` in the server's time zone (``TIME_ZONE``).

Rounding is half up on the number's shortest decimal form, as Django's ``floatformat`` does
and as ``static/js/site.js`` (``window.fmt``) does in the browser, so a score reads the same
wherever it is shown (binary rounding would write 0.3125 as 0.312 here and 0.313 there).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

__all__ = ["EMPTY", "format_score", "format_pct", "format_duration", "format_when"]

EMPTY = "–"


def _decimal(value: object) -> Decimal | None:
    """The number's shortest decimal form (``repr`` of a float), or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return number if number.is_finite() else None


def _rounded(number: Decimal, digits: int) -> Decimal:
    return number.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def format_score(value: object) -> str:
    """0.3125 → ``"0.313"``; None or not a number → ``"–"``."""
    number = _decimal(value)
    return EMPTY if number is None else str(_rounded(number, 3))


def format_pct(value: object) -> str:
    """A share 0..1 as a percentage: 0.146 → ``"14.6%"``."""
    number = _decimal(value)
    return EMPTY if number is None else f"{_rounded(number * 100, 1)}%"


def format_duration(seconds: object) -> str:
    """Seconds as ``"42 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``."""
    number = _decimal(seconds)
    if number is None:
        return EMPTY
    total = max(0, int(_rounded(number, 0)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def format_when(moment: dt.datetime | None) -> str:
    """``2026-12-06 03:26`` in the current time zone."""
    if moment is None:
        return EMPTY
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.strftime("%Y-%m-%d %H:%M")
