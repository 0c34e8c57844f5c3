"""UltraLight 2.0, the text format of FIWARE's IoT Agent for UltraLight.

Measures are ``key|value`` pairs joined by ``|``: ``t|23.4|h|40``. One payload may carry several
measure groups, separated by ``#`` or by line breaks; a group may begin with its ISO 8601 timestamp:
``2026-11-21T08:00:00Z|t|23.4|h|40#2026-11-21T08:01:00Z|t|23.5|h|41``. Commands to devices are
``<device_id>@<command>|<value>`` (or ``|k=v|k=v`` for parameters), and a device answers on
``cmdexe`` with ``<device_id>@<command>|<result>``. Values are text; the device's provisioning says
what type each attribute is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from cityhub.kit.time import parse_datetime

_GROUP_SPLIT = re.compile(r"[#\r\n]+")
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class ULError(ValueError):
    """A payload that is not UltraLight 2.0; the message says where."""


@dataclass
class MeasureGroup:
    timestamp: datetime | None
    values: dict[str, str]


def _timestamp(text: str) -> datetime | None:
    if not text[:1].isdigit() or "T" not in text:
        return None
    try:
        return parse_datetime(text)
    except ValueError:
        return None


def parse_measures(payload: str) -> list[MeasureGroup]:
    """The measure groups of a payload; raises :class:`ULError` when it is malformed."""
    if _FORBIDDEN.search(payload):
        raise ULError("control characters are not allowed in UltraLight")
    groups = [part.strip() for part in _GROUP_SPLIT.split(payload) if part.strip()]
    if not groups:
        raise ULError("the payload holds no measure")
    found = []
    for number, group in enumerate(groups, start=1):
        fields = group.split("|")
        timestamp = None
        if len(fields) % 2 == 1:
            timestamp = _timestamp(fields[0])
            if timestamp is None:
                raise ULError(
                    f"measure group {number}: {len(fields)} fields; expected key|value pairs, "
                    "optionally after a timestamp"
                )
            fields = fields[1:]
        values: dict[str, str] = {}
        for index in range(0, len(fields), 2):
            key, value = fields[index].strip(), fields[index + 1].strip()
            if not key:
                raise ULError(f"measure group {number}: an empty key before value {value!r}")
            values[key] = value
        if not values:
            raise ULError(f"measure group {number}: no key|value pair")
        found.append(MeasureGroup(timestamp, values))
    return found


def format_command(device_id: str, name: str, value: Any) -> str:
    """``device@command|value``; an object value becomes ``|k=v`` parameters."""
    if isinstance(value, Mapping):
        params = "|".join(f"{key}={_text(item)}" for key, item in value.items())
        return f"{device_id}@{name}|{params}" if params else f"{device_id}@{name}|"
    return f"{device_id}@{name}|{_text(value)}"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()


def parse_command_result(payload: str) -> tuple[str, str, str]:
    """(device id, command, result) of a ``cmdexe`` answer; raises :class:`ULError`."""
    head, sep, result = payload.strip().partition("|")
    device_id, at, name = head.partition("@")
    if not sep or not at or not device_id or not name:
        raise ULError("a command result must read <device_id>@<command>|<result>")
    return device_id, name, result
