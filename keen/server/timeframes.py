"""Timestamps, timezones, timeframes and interval buckets of the local Keen server.

Choices where keen-api.md leaves room ([INF] points):

* ``keen.timestamp`` and timeframe boundaries accept any ISO-8601 offset (``Z``, ``+02:00``,
  ``-0800``); a value without an offset is UTC, also inside an absolute timeframe (the query
  ``timezone`` only moves relative timeframes and interval boundaries).
* Relative timeframes (section 7.3): ``this_N_units`` runs from the start of the unit N-1 units
  before the current one to the *end* of the current unit; ``previous_N_units`` covers the N
  complete units before the current one. Weeks start on Sunday 00:00. Singular units are accepted
  (``this_2_day``). Shortcuts: ``this_minute``, ``this_hour``, ``this_day``/``today``,
  ``this_week``, ``this_month``, ``this_year``, ``previous_minute``, ``previous_hour``,
  ``previous_day``/``yesterday``, ``previous_week``, ``previous_month``, ``previous_year``.
* Calendar arithmetic for days, weeks, months and years is done on the wall clock of the query
  timezone (so a day across a DST change lasts 23 or 25 hours in a named zone): boundary ``k``
  is the local date ``k`` units after the one at or before the reference instant, and it starts
  at the first instant whose wall clock reads that date's midnight or later (``first_instant``):
  a day whose midnight was skipped starts when the clock jumps (01:00 in America/Havana on
  2026-03-08), a midnight shown twice counts from its first occurrence. Boundaries are computed
  from the origin each time, never from the previous one, so nothing drifts after a change.
  Minutes and hours are absolute durations counted from the last whole minute or hour of the
  zone's clock at the reference instant.
* Named timezones come from :mod:`zoneinfo` (``US/Pacific`` and other aliases included); a number
  (or numeric string) is a fixed offset in seconds east of UTC.
* Intervals: buckets start at the calendar boundary of the unit at or before the timeframe start
  (``every_6_hours`` is anchored at the floor-to-hour of the start, then steps six hours) and the
  first and last buckets are clipped to the timeframe. At most ``MAX_BUCKETS`` buckets. A
  boundary after the year 9999 stands for "after the end" (the last bucket is clipped); a unit
  that would start before the year 1 in the query timezone is a 400.
* Limits (:mod:`keen.server.limits`): a timezone has at most ``MAX_TIMEZONE_LENGTH``
  characters and the N of ``this_N_units`` / ``every_N_units`` at most ``MAX_UNIT_DIGITS``
  digits (400 ``InvalidTimezoneError`` / ``TimeframeDefinitionError`` /
  ``InvalidIntervalError``).
* Boundaries are rendered in UTC as ``YYYY-MM-DDTHH:MM:SS.mmmZ``, the year always in four
  digits (``format_timestamp``, the one renderer; ``parse_iso`` reads it back).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keen.server._errors import QueryError, bad_request
from keen.server.limits import MAX_TIMEZONE_LENGTH, MAX_UNIT_DIGITS

__all__ = [
    "MAX_BUCKETS",
    "format_timestamp",
    "interval_buckets",
    "parse_interval",
    "parse_iso",
    "resolve_timeframe",
    "resolve_timezone",
    "to_micros",
]

MAX_BUCKETS = 10_000
UNITS = ("minute", "hour", "day", "week", "month", "year")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)
_RELATIVE_RE = re.compile(r"(this|previous)_(\d+)_(minute|hour|day|week|month|year)s?")
_INTERVAL_RE = re.compile(r"every_(\d+)_(minute|hour|day|week|month|year)s?")
_SHORTCUTS = {
    "today": "this_1_days",
    "yesterday": "previous_1_days",
    **{f"this_{unit}": f"this_1_{unit}s" for unit in UNITS},
    **{f"previous_{unit}": f"previous_1_{unit}s" for unit in UNITS},
}
_NAMED_INTERVALS = {
    "minutely": "minute",
    "hourly": "hour",
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
    "yearly": "year",
}


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 date-time (any offset; none = UTC) into an aware UTC datetime.

    Raises ``ValueError`` when ``text`` is not one.
    """
    match = _ISO_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO-8601 date-time: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction + "000000")[:6]) if fraction else 0
    if offset is None or offset in "Zz":
        tz: tzinfo = timezone.utc
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
        tz = timezone(sign * timedelta(minutes=minutes))
    value = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
        micros, tzinfo=tz,
    )
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"{text!r} is outside the years 1-9999 in UTC") from None


def to_micros(value: datetime) -> int:
    """Microseconds since the Unix epoch of an aware (or naive = UTC) datetime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime of a microsecond epoch value."""
    return _EPOCH + timedelta(microseconds=micros)


def format_timestamp(value: datetime | int) -> str:
    """Render as the API does: UTC, millisecond precision, ``Z`` (``2015-01-01T00:00:00.000Z``),
    the year always in four digits (``0999-12-31T23:59:59.999Z``). The one renderer of
    timestamps in the server's answers; ``parse_iso`` reads back everything it writes."""
    if isinstance(value, int):
        value = from_micros(value)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    v = value.astimezone(timezone.utc)
    # Not strftime: its %Y gives "999" for the year 999 on some platforms, which parse_iso
    # (and the hosted API) refuse.
    return (f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:"
            f"{v.second:02d}.{v.microsecond // 1000:03d}Z")


def resolve_timezone(tz: Any) -> tzinfo:
    """The tzinfo for a query ``timezone``: None = UTC, seconds offset (number or numeric
    string), or an IANA name. Raises ``QueryError`` (400) otherwise."""
    if tz is None or tz == "":
        return timezone.utc
    if isinstance(tz, bool):
        raise _bad_timezone(tz)
    if isinstance(tz, str):
        text = tz.strip()
        if len(text) > MAX_TIMEZONE_LENGTH:
            raise _bad_timezone(tz[:MAX_TIMEZONE_LENGTH] + "...")
        if re.fullmatch(r"[+-]?\d+(\.0*)?", text):
            tz = int(float(text))
        else:
            try:
                return ZoneInfo(text)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                raise _bad_timezone(tz) from None
    if isinstance(tz, float) and tz.is_integer():
        tz = int(tz)
    if isinstance(tz, int) and -86_400 < tz < 86_400:
        return timezone(timedelta(seconds=tz))
    raise _bad_timezone(tz)


def _bad_timezone(tz: Any) -> QueryError:
    return bad_request(
        "InvalidTimezoneError",
        f"The timezone {tz!r} is not valid: give an IANA name such as 'US/Pacific' or an offset "
        "in seconds such as -28800.",
    )


def _timeframe_error(detail: str) -> QueryError:
    return bad_request(
        "TimeframeDefinitionError",
        f"You sent in an invalid definition for the timeframe: {detail!r}.",
    )


def _floor(wall: datetime, unit: str) -> datetime:
    """Start of the calendar ``unit`` (day or longer) containing the naive wall time ``wall``."""
    day = wall.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":  # weeks start on Sunday; Python's weekday() has Monday = 0
        return day - timedelta(days=(day.weekday() + 1) % 7)
    if unit == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def _wall(instant: datetime, zone: tzinfo) -> datetime:
    """The naive wall-clock time of ``zone`` at the aware ``instant``."""
    return instant.astimezone(zone).replace(tzinfo=None)


def first_instant(wall: datetime, zone: tzinfo) -> datetime:
    """The first instant (aware UTC) at which the clock of ``zone`` reads ``wall`` or later.

    That is ``wall`` itself when it exists (its first occurrence when the clock is set back and
    shows it twice), and the instant of the change when daylight saving time skipped it: a day
    whose midnight does not exist starts when its first minute does (01:00 when 00:00-01:00 was
    skipped).
    """
    early = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    if _wall(early, zone) == wall:  # it exists; fold=0 is the first of two occurrences
        return early
    # Skipped: fold=0 reads it with the offset before the change (an instant after the change),
    # fold=1 with the offset after it (an instant before). The change lies in between.
    low = to_micros(wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc))
    high = to_micros(early)
    while high - low > 1:
        middle = (low + high) // 2
        if _wall(from_micros(middle), zone) >= wall:
            high = middle
        else:
            low = middle
    return from_micros(high)


class _Calendar:
    """The boundaries of one unit in one zone, numbered from the one at or before an instant
    (boundary 0; 1 is the next, -1 the previous).

    Minutes and hours are absolute durations counted from the last whole minute or hour of the
    zone's clock; days, weeks, months and years are calendar dates of the zone's clock, each
    starting at ``first_instant`` of its date.
    """

    def __init__(self, instant: datetime, unit: str, zone: tzinfo) -> None:
        self.unit, self.zone = unit, zone
        wall = _wall(instant, zone)
        self.origin: datetime  # aware UTC for minutes and hours, naive wall time otherwise
        if unit in ("minute", "hour"):
            self.origin = instant.astimezone(timezone.utc) - timedelta(
                minutes=wall.minute if unit == "hour" else 0,
                seconds=wall.second,
                microseconds=wall.microsecond,
            )
        else:
            self.origin = _floor(wall, unit)

    def edge(self, index: int) -> datetime:
        """Boundary ``index`` as an aware UTC datetime (OverflowError or ValueError beyond the
        years 1-9999)."""
        unit, origin = self.unit, self.origin
        if unit == "minute":
            return origin + timedelta(minutes=index)
        if unit == "hour":
            return origin + timedelta(hours=index)
        if unit in ("day", "week"):
            wall = origin + timedelta(days=index * (7 if unit == "week" else 1))
        else:
            years, month0 = divmod(origin.month - 1 + index * (12 if unit == "year" else 1), 12)
            wall = origin.replace(year=origin.year + years, month=month0 + 1)
        return first_instant(wall, self.zone)


def resolve_timeframe(tf: Any, tz: Any, now: datetime) -> tuple[datetime, datetime]:
    """``(start, end)`` as aware UTC datetimes, start inclusive and end exclusive.

    ``tf`` is a relative string or ``{"start": iso, "end": iso}``; ``tz`` the query timezone.
    Raises ``QueryError`` (400 ``TimeframeDefinitionError``) for anything else, and 400 when
    ``tf`` is missing (the API requires a timeframe).
    """
    if tf is None or tf == "":
        raise bad_request(
            "TimeframeDefinitionError",
            "A timeframe is required: give a relative timeframe such as 'this_7_days' or "
            '{"start": "<ISO-8601>", "end": "<ISO-8601>"}.',
        )
    zone = resolve_timezone(tz)
    if isinstance(tf, str) and tf.lstrip()[:1] == "{":  # JSON text where an object was due
        try:
            tf = json.loads(tf)
        except (ValueError, RecursionError):
            raise _timeframe_error(f"{tf!r} is not valid JSON") from None
    if isinstance(tf, dict):
        return _absolute(tf)
    if not isinstance(tf, str):
        raise _timeframe_error("You have multiple values for timeframe specified." if isinstance(
            tf, list) else f"{tf!r} is neither a relative timeframe nor a start/end object")
    text = tf.strip()
    text = _SHORTCUTS.get(text, text)
    match = _RELATIVE_RE.fullmatch(text)
    if match is None:
        raise _timeframe_error(f"{tf!r} is not a relative timeframe like 'this_7_days'")
    kind, count_text, unit = match.groups()
    if len(count_text.lstrip("0")) > MAX_UNIT_DIGITS:
        raise _timeframe_error(f"{tf[:40]!r}...: the number of units has more than "
                               f"{MAX_UNIT_DIGITS} digits")
    count = int(count_text)
    if count < 1:
        raise _timeframe_error(f"{tf!r}: the number of units must be at least 1")
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    try:
        calendar = _Calendar(now, unit, zone)
        if kind == "this":
            return calendar.edge(-(count - 1)), calendar.edge(1)
        return calendar.edge(-count), calendar.edge(0)
    except (OverflowError, ValueError):
        raise _timeframe_error(f"{tf!r} reaches outside the supported calendar") from None


def _absolute(tf: dict[str, Any]) -> tuple[datetime, datetime]:
    unknown = set(tf) - {"start", "end"}
    if unknown or not isinstance(tf.get("start"), str) or not isinstance(tf.get("end"), str):
        raise _timeframe_error(
            "an absolute timeframe is {\"start\": \"<ISO-8601>\", \"end\": \"<ISO-8601>\"}"
        )
    try:
        start, end = parse_iso(tf["start"]), parse_iso(tf["end"])
    except ValueError as exc:
        raise _timeframe_error(str(exc)) from None
    if end < start:
        raise _timeframe_error("the timeframe end is before its start")
    return start, end


def parse_interval(interval: Any) -> tuple[int, str]:
    """``(N, unit)`` of a named (``daily``) or ``every_N_units`` interval; QueryError if bad."""
    if isinstance(interval, str):
        text = interval.strip()
        if text in _NAMED_INTERVALS:
            return 1, _NAMED_INTERVALS[text]
        match = _INTERVAL_RE.fullmatch(text)
        if match is not None and len(match.group(1).lstrip("0")) > MAX_UNIT_DIGITS:
            raise bad_request("InvalidIntervalError",
                              f"The interval {text[:40]!r}... has more than {MAX_UNIT_DIGITS} "
                              "digits in its number of units.")
        if match is not None and int(match.group(1)) >= 1:
            return int(match.group(1)), match.group(2)
    raise bad_request(
        "InvalidIntervalError",
        f"The interval {str(interval)[:100]!r} is not valid: use minutely, hourly, daily, "
        "weekly, monthly, yearly or every_N_units (for example every_6_hours).",
    )


def interval_buckets(
    start: datetime, end: datetime, interval: Any, tz: Any
) -> list[tuple[int, int]]:
    """Calendar-aligned buckets ``[(start_us, end_us), ...]`` covering ``[start, end)``,
    the first and last clipped to it. Empty when the timeframe is empty.

    Boundary ``k`` is the unit boundary at or before ``start`` moved by ``k * N`` units (see
    ``_Calendar``); a boundary beyond the year 9999 stands for "after the end".
    """
    count, unit = parse_interval(interval)
    zone = resolve_timezone(tz)
    start_us, end_us = to_micros(start), to_micros(end)
    try:
        calendar = _Calendar(start, unit, zone)
    except (OverflowError, ValueError):  # the unit's start is before the year 1
        raise _timeframe_error(
            f"interval {interval!r} buckets reach outside the supported calendar"
        ) from None
    buckets: list[tuple[int, int]] = []
    lower, index = start_us, 0
    while lower < end_us:
        index += count
        try:
            upper = min(to_micros(calendar.edge(index)), end_us)
        except (OverflowError, ValueError):  # after the year 9999, so after the end
            upper = end_us
        if upper > lower:
            buckets.append((lower, upper))
            if len(buckets) > MAX_BUCKETS:
                raise bad_request(
                    "InvalidIntervalError",
                    f"The interval {interval!r} splits the timeframe into more than "
                    f"{MAX_BUCKETS} buckets; use a longer interval or a shorter timeframe.",
                )
        lower = max(lower, upper)
    return buckets
