"""The write-back consumer: scores what stations report and writes the results to the entities.

Consumes the broker's ``EntitiesChanged`` (at least once, shared across the cluster). It acts only
on changes of the attributes it reads, so its own writes (which change only the attributes it
computes) do not set it off again; a redelivered change writes nothing more, and results of an
earlier reading never overwrite those of a later one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.apps.environment import noise, water
from cityhub.apps.environment.aqi import AqiResult, MissingPollutants, Standard
from cityhub.apps.environment.service import (
    AIR,
    NOISE,
    NOISE_INPUTS,
    POLLUTANTS,
    WATER,
    WATER_INPUTS,
    UnusableReading,
    check_units,
    hour_of,
    hourly_aqi,
    observed_at,
    observed_property,
    value_of,
)
from cityhub.plugins import EntitiesChanged, Event, entities

log = logging.getLogger("cityhub.apps.environment")


@dataclass
class Consumer:
    sessions: async_sessionmaker[AsyncSession]
    standard: Standard
    tz: tzinfo
    day_start: Any
    night_start: Any

    async def __call__(self, event: Event) -> None:
        assert isinstance(event, EntitiesChanged)
        if event.tenant is None:
            return
        watched = {entities.expand(t): t for t in (AIR, WATER, NOISE)}
        work = []
        for change in event.changes:
            if change.get("entity") is None:
                continue
            kinds = [watched[t] for t in change.get("types", []) if t in watched]
            if kinds:
                work.append((kinds[0], change))
        if not work:
            return
        async with self.sessions() as session, session.begin():
            for kind, change in work:
                touched = set(change.get("created", [])) | set(change.get("updated", []))
                entity = entities.compact_entity(change["entity"])
                try:
                    if kind == AIR and touched & _expanded(POLLUTANTS):
                        await self.air(session, event.tenant, entity)
                    elif kind == WATER and touched & _expanded((*WATER_INPUTS, "targetWaterClass")):
                        await self.water(session, event.tenant, entity)
                    elif kind == NOISE and touched & _expanded(NOISE_INPUTS):
                        await self.noise(session, event.tenant, entity)
                except (ValueError, KeyError, TypeError) as problem:  # impossible values, units, zones
                    log.warning("%s %s: not scored: %s", event.tenant, entity["id"], problem)

    async def air(self, session: AsyncSession, tenant: str, entity: dict[str, Any]) -> None:
        check_units(entity)
        for pollutant in POLLUTANTS:
            v = value_of(entity, pollutant)
            if v is not None and (not isinstance(v, int | float) or v < 0):
                raise UnusableReading(f"{pollutant}: {v!r}")
        at = observed_at(entity, POLLUTANTS) or datetime.now(UTC)
        try:
            result = await hourly_aqi(session, tenant, entity["id"], hour_of(at), self.standard)
        except MissingPollutants as missing:
            log.info("%s %s: no hourly AQI, missing %s", tenant, entity["id"], ", ".join(missing.missing))
            return
        await _write_back(session, tenant, AIR, entity, air_attributes(result, at))

    async def water(self, session: AsyncSession, tenant: str, entity: dict[str, Any]) -> None:
        attrs = {name: value_of(entity, name) for name in WATER_INPUTS}
        measures = water.measures_of(attrs)
        if not measures:
            return
        lake = value_of(entity, "waterBodyType") in water.LAKE_TYPES
        found = water.classify(measures, lake=lake)
        at = observed_at(entity, WATER_INPUTS)
        out: dict[str, Any] = {
            "waterQualityClass": observed_property(found.water_class, at),
            "waterQualityDeterminingItems": observed_property(found.determining, at),
        }
        target = value_of(entity, "targetWaterClass")
        if isinstance(target, str) and target in water.CLASSES:
            out["waterQualityWorseThanTarget"] = observed_property(found.worse_than(target), at)
        await _write_back(session, tenant, WATER, entity, out)

    async def noise(self, session: AsyncSession, tenant: str, entity: dict[str, Any]) -> None:
        zone = value_of(entity, "acousticZone")
        zone = str(zone) if isinstance(zone, int) and not isinstance(zone, bool) else zone  # 2 -> "2"
        level = value_of(entity, "LAeq")
        if zone not in noise.LIMITS or level is None:
            return
        at = observed_at(entity, ("LAeq",)) or datetime.now(UTC)
        period = noise.period_of(at.astimezone(self.tz), self.day_start, self.night_start)
        found = noise.comply(zone, period, level)
        out = {
            "noisePeriod": observed_property(period, at),
            "noiseLimit": observed_property(found.limit, at),
            "noiseCompliant": observed_property(found.compliant, at),
            "noiseExcess": observed_property(found.excess, at),
        }
        lmax = value_of(entity, "LAmax")
        if period == "night" and lmax is not None:
            out["noiseNightLmaxCompliant"] = observed_property(noise.night_lmax_ok(zone, lmax), at)
        await _write_back(session, tenant, NOISE, entity, out)


async def _write_back(
    session: AsyncSession, tenant: str, kind: str, entity: dict[str, Any], out: dict[str, Any]
) -> None:
    """Write ``out`` to the entity unless it already holds exactly that (a redelivered change) or
    holds results of a later reading (changes handled out of order)."""
    current = await entities.read_entity(session, tenant, entity["id"])
    if current is None:
        return  # deleted since
    if all(_same(current.get(name), prop) for name, prop in out.items()):
        return
    ours = _when(next(iter(out.values())).get("observedAt"))
    for name in out:
        held = current.get(name)
        theirs = _when(held.get("observedAt")) if isinstance(held, dict) else None
        if ours is not None and theirs is not None and theirs > ours:
            return
    await entities.write_entities(session, tenant, [{"id": entity["id"], "type": kind, **out}])


def _same(held: Any, prop: dict[str, Any]) -> bool:
    if not isinstance(held, dict) or held.get("value") != prop["value"]:
        return False
    return _when(held.get("observedAt")) == _when(prop.get("observedAt"))


def _when(text: Any) -> datetime | None:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None


def _expanded(names: tuple[str, ...]) -> set[str]:
    return {entities.expand(n) for n in names}


def air_attributes(result: AqiResult, at: datetime) -> dict[str, Any]:
    cat = result.category
    return {
        "airQualityIndex": observed_property(result.aqi, at),
        "airQualityLevel": observed_property(cat.label_en.lower(), at),
        "aqiCategory": observed_property(
            {"level": cat.level, "label_zh": cat.label_zh, "label_en": cat.label_en, "colour": cat.colour}, at
        ),
        "primaryPollutant": observed_property(", ".join(result.primary_pollutants) or "none", at),
        "aqiStandard": observed_property(str(result.standard), at),
    }
