"""Timestamps as platforms write them, read strictly into UTC (shared by every connector).

Like :mod:`connectors._readers`: each reader takes a decoded JSON value and ``where`` (the field's path)
and returns a timezone-aware UTC datetime, or raises :class:`PayloadError` naming that field. Pure.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors._readers import describe
from connectors.base import PayloadError, parse_time

_OFFSET: Final = re.compile(r"([+-])(\d{2}):?(\d{2})")
_ZONE_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+\-/]{0,63}")
_MONTHS: Final = {name: number for number, name in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun"), 1)} | {
    name: number for number, name in enumerate(("Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 7)
}
# What JavaScript's Date.toString() writes; only ASCII digits and offset minutes below 60, as strptime's %z.
_JS_DATE: Final = re.compile(
    r"(?:Sun|Mon|Tue|Wed|Thu|Fri|Sat) (" + "|".join(_MONTHS) + r") ([0-9]{2}) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT([+-][0-9]{2}[0-5][0-9])"
)
# Zones without DST that must work where the OS lacks tzdata (Riyadh has had no DST since 1950).
_FIXED_ZONES: Final[dict[str, tzinfo]] = {"Asia/Riyadh": timezone(timedelta(hours=3), "Asia/Riyadh")}


def read_time(value: Any, where: str) -> datetime:
    """An ISO-8601 timestamp (naive means UTC), or an already parsed datetime; returned in UTC."""
    parsed = value if isinstance(value, datetime) else parse_time(value, field_name=where)
    try:
        # 9999-12-31T23:00-05:00 parses but cannot be stored: find out here, not in the worker.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError as exc:
        raise PayloadError(f"{where}: timestamp out of range") from exc


def read_local_time(value: Any, where: str, zone: str) -> datetime:
    """A timestamp in UTC from ISO-8601, a JavaScript date (``Sun Jun 26 2022 12:21:48 GMT+0300``) or PHP's
    DateTime as JSON (``{"date": …, "timezone": "Asia/Riyadh" | "+03:00"}``); a naive time is in ``zone``."""
    moment, zone_name = (value.get("date"), value.get("timezone", zone)) if isinstance(value, dict) else (value, zone)
    local = _zone(zone_name, f"{where}.timezone")
    if not isinstance(moment, str) or not moment.strip() or len(moment) > 64:
        raise PayloadError(f"{where}: expected a timestamp, got {describe(moment)}")
    raw = moment.strip().split(" (")[0]  # JS dates may end in "(Arabia Standard Time)"
    try:
        # e.g. Salla's envelope: "Sun Jun 26 2022 12:21:48 GMT+0300"
        parsed = js_date(raw) if "GMT" in raw else datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=local)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise PayloadError(f"{where}: not a timestamp: {moment[:64]!r}") from exc


def js_date(raw: str) -> datetime:
    """A JavaScript date string (``Sun Jun 26 2022 12:21:48 GMT+0300``), as ``strptime`` reads it.

    The spelling JavaScript writes is read directly (2 µs against ``strptime``'s 11, paid by every Salla
    webhook); any other spelling ``strptime`` takes (full names, other case, one-digit fields, ``+03:00``)
    goes to ``strptime``. ValueError when it is no such date, as from ``strptime``.
    """
    found = _JS_DATE.fullmatch(raw)
    if found is None:
        return datetime.strptime(raw, "%a %b %d %Y %H:%M:%S GMT%z")
    month, day, year, hour, minute, second, offset = found.groups()
    zone = _offset_zone(offset)
    return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=zone)


@lru_cache(maxsize=64)  # a few offsets recur; building a timezone costs more than the rest of the date
def _offset_zone(offset: str) -> timezone:
    """``+HHMM`` as a fixed zone; ValueError from 24 hours on, as ``strptime``'s."""
    delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
    return timezone(-delta if offset[0] == "-" else delta)


def _zone(name: Any, where: str) -> tzinfo:
    if not isinstance(name, str) or not name.strip():
        raise PayloadError(f"{where}: expected a time zone, got {describe(name)}")
    name = name.strip()
    offset = _OFFSET.fullmatch(name)  # PHP timezone_type 1: "+03:00"
    if offset and int(offset[2]) < 24 and int(offset[3]) < 60:
        sign = -1 if offset[1] == "-" else 1
        return timezone(sign * timedelta(hours=int(offset[2]), minutes=int(offset[3])))
    if _ZONE_NAME.fullmatch(name):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            if name in _FIXED_ZONES:
                return _FIXED_ZONES[name]
    raise PayloadError(f"{where}: unknown time zone {name[:64]!r}")
