"""Helpers for plain JSON data (the dicts and lists the broker stores)."""

from __future__ import annotations

import copy
from typing import Any, TypeVar

import orjson

T = TypeVar("T")


def json_copy(value: T) -> T:
    """A deep copy of JSON data, through orjson: about ten times faster than ``copy.deepcopy``,
    which matters when a 1,000-entity batch copies every stored entity it changes. Values orjson
    cannot encode (integers beyond 64 bits) fall back to ``deepcopy``."""
    try:
        copied: Any = orjson.loads(orjson.dumps(value))
    except orjson.JSONEncodeError:
        return copy.deepcopy(value)
    return copied  # type: ignore[no-any-return]
