"""The device gateway: from a message (HTTP or MQTT, JSON or UltraLight) to entity updates queued
for the writer, or to a dead letter. Nothing a device sends is dropped: every message ends as
updates in the broker or as a dead letter with its reason, and its sender is answered (HTTP) or
acknowledged (MQTT PUBACK) only after one of them is committed.

Checks, in order: API key and device (``unknown-apikey``, ``unknown-device``), size
(``too-large``), the device's rate (``rate-limited``), the payload (``invalid-payload``), and
the values against the attribute types and the data model (``validation-failed``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.hub.ingest import autoprovision, measures, profiles, ul
from cityhub.hub.ingest.measures import Profile, Rejected
from cityhub.hub.ingest.tasks import Letter, Update, Writer
from cityhub.kit.time import utcnow
from cityhub.systems.standards.datamodels import DataModels

log = logging.getLogger(__name__)

#: How long a device's provisioning (or its absence) is remembered by a gateway process, by default
#: (``CITYHUB_INGEST_PROFILE_TTL``); a change of provisioning anywhere reaches every process sooner,
#: as a ``ProvisioningChanged`` event.
PROFILE_TTL = 30.0


@dataclass(frozen=True)
class Limits:
    max_payload_bytes: int
    device_rate: float
    device_burst: int


class RateLimiter:
    """A token bucket per device: ``rate`` messages a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def allow(self, key: tuple[str, str]) -> bool:
        if math.isinf(self.rate):  # no limit (a bulk import)
            return True
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True


class Gateway:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        models: DataModels,
        limits: Limits,
        *,
        default_tenant: str,
        batch_size: int,
        profile_ttl: float = PROFILE_TTL,
    ) -> None:
        self.sessions = sessions
        self.profile_ttl = profile_ttl
        self.models = models
        self.limits = limits
        self.default_tenant = default_tenant
        self.writer = Writer(sessions, batch_size=batch_size)
        self.rates = RateLimiter(limits.device_rate, limits.device_burst)
        self.expand: Callable[[str], str] = lambda name: name
        self._profiles: dict[str, tuple[profiles.KeyProfiles, float]] = {}
        self.on_forget: list[Callable[[], None]] = []
        #: Told of every message refused for an API key no service group has (api key, transport,
        #: source): the security system makes it a security event.
        self.on_unknown_key: list[Callable[[str, str, str | None], None]] = []
        #: Told of every message refused because its API key was disabled (same arguments).
        self.on_disabled_key: list[Callable[[str, str, str | None], None]] = []
        self.rejected: Counter[str] = Counter()
        self.accepted = 0

    async def start(self, expand: Callable[[str], str]) -> None:
        """``expand`` turns attribute and type names into IRIs (the NGSI-LD core @context's)."""
        self.expand = expand
        await self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()

    def forget(self) -> None:
        """Provisioning changed: look devices up again."""
        self._profiles.clear()
        for listener in self.on_forget:
            listener()

    def forget_apikey(self, apikey: str) -> None:
        """A device of ``apikey`` was provisioned here (autoprovisioning): look its key up again."""
        self._profiles.pop(apikey, None)
        for listener in self.on_forget:
            listener()

    async def profile(self, apikey: str, device_id: str) -> Profile:
        """The device's provisioning; every device of the key is read at once and kept
        ``profile_ttl`` seconds (provisioning changed in any hub process is seen as soon as the bus
        brings its ``ProvisioningChanged``)."""
        cached = self._profiles.get(apikey)
        if cached is None or cached[1] <= time.monotonic():
            async with self.sessions() as session:
                found = await profiles.profiles_of_apikey(session, apikey)
            if len(self._profiles) > 100_000:  # random keys from a misbehaving sender
                self._profiles.clear()
            cached = (found, time.monotonic() + self.profile_ttl)
            self._profiles[apikey] = cached
        return cached[0].profile(apikey, device_id)

    def reject(
        self,
        error: Rejected,
        *,
        tenant: str | None,
        transport: str,
        payload: bytes,
        apikey: str | None,
        device_id: str | None,
        source: str | None,
    ) -> asyncio.Future[Letter | None]:
        self.rejected[error.reason] += 1
        if error.reason == measures.UNKNOWN_APIKEY and apikey is not None:
            for listener in self.on_unknown_key:
                listener(apikey, transport, source)
        if error.reason == measures.APIKEY_DISABLED and apikey is not None:
            for listener in self.on_disabled_key:
                listener(apikey, transport, source)
        letter = Letter(
            tenant=tenant or self.default_tenant,
            transport=transport,
            reason=error.reason,
            detail=error.detail,
            payload=payload,
            apikey=apikey,
            device_id=device_id,
            source=source,
        )
        return self.writer.submit([], letter)

    async def receive(
        self,
        transport: str,
        apikey: str,
        device_id: str,
        payload: bytes,
        *,
        fmt: str | None = None,
        object_id: str | None = None,
        source: str | None = None,
        tenant: str | None = None,
    ) -> asyncio.Future[Letter | None]:
        """Check and convert one message and queue it; the future resolves once it is stored
        (None) or dead-lettered (its :class:`Letter`)."""
        profile: Profile | None = None
        try:
            profile = await self.profile(apikey, device_id)
            if len(payload) > self.limits.max_payload_bytes:
                raise Rejected(
                    measures.TOO_LARGE,
                    f"{len(payload)} bytes; a message may hold {self.limits.max_payload_bytes}",
                )
            if not self.rates.allow((profile.tenant, device_id)):
                raise Rejected(
                    measures.RATE_LIMITED,
                    f"device {device_id} sends more than {self.limits.device_rate:g} messages/s "
                    f"(burst {self.limits.device_burst})",
                )
            updates = self.updates(profile, payload, fmt=fmt, object_id=object_id)
            if profile.provisional:  # a valid first message of a device its group autoprovisions
                await autoprovision.provision(self, profile)
        except Rejected as error:
            return self.reject(
                error,
                tenant=profile.tenant if profile else error.tenant or tenant,
                transport=transport,
                payload=payload,
                apikey=apikey,
                device_id=device_id,
                source=source,
            )
        self.accepted += 1
        return self.writer.submit(updates)

    def updates(
        self, profile: Profile, payload: bytes, *, fmt: str | None, object_id: str | None
    ) -> list[Update]:
        received = utcnow()
        groups = parse(payload, fmt or profile.protocol, object_id)
        found = []
        for observed, values in groups:
            converted = measures.to_attributes(
                profile, values, observed or received, self.models, self.expand
            )
            found.append(
                Update(
                    tenant=profile.tenant,
                    entity_id=profile.entity_id,
                    types=[self.expand(profile.entity_type)],
                    scope=profile.scope,
                    attrs=converted.attrs,
                    device_id=profile.device_id,
                    seen_at=received,
                    battery=converted.battery,
                    rssi=converted.rssi,
                    expected_interval=profile.expected_interval,
                )
            )
        return found


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Rejected(measures.INVALID_PAYLOAD, f"not UTF-8 text: {error}") from None


def sniff(payload: bytes) -> str:
    return "JSON" if payload.lstrip()[:1] in (b"{", b"[") else "UL"


def parse(payload: bytes, fmt: str | None, object_id: str | None = None) -> list[tuple[Any, dict[str, Any]]]:
    """The measure groups of a payload: (device timestamp or None, {object_id: raw value})."""
    kind = (fmt or sniff(payload)).upper()
    if object_id is not None:  # a per-attribute topic: the payload is the value
        text = _text(payload).strip()
        if (kind == "JSON" and text[:1] in ("{", "[", '"')) or text in ("true", "false"):
            try:
                return [(None, {object_id: orjson.loads(text)})]
            except orjson.JSONDecodeError:
                raise Rejected(measures.INVALID_PAYLOAD, "the value is not valid JSON") from None
        if not text:
            raise Rejected(measures.INVALID_PAYLOAD, "the message holds no value")
        return [(None, {object_id: text})]
    if kind == "JSON":
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise Rejected(measures.INVALID_PAYLOAD, f"not valid JSON: {error}") from None
        items = body if isinstance(body, list) else [body]
        if not items or not all(isinstance(item, dict) for item in items):
            raise Rejected(measures.INVALID_PAYLOAD, "a JSON measure is an object, or an array of objects")
        found = []
        for item in items:
            values = dict(item)
            observed = measures.device_time(values)
            found.append((observed, values))
        return found
    try:
        groups = ul.parse_measures(_text(payload))
    except ul.ULError as error:
        raise Rejected(measures.INVALID_PAYLOAD, f"not UltraLight 2.0: {error}") from None
    return [(group.timestamp, dict(group.values)) for group in groups]
