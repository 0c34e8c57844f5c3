"""The city's daily AQI over many days with past days' station inputs kept (``models``), so that the
cockpit's good-air-days ratio reads a month of kept values instead of a month of every station's
history.

A local day is kept once it ended more than :data:`SETTLED` ago; later days (today's partial day
among them) are computed from history on every call. A station's kept inputs of a day are trusted
while the broker's revisions of its history of the UTC days the day overlaps
(``entities.history_revisions``: bumped in the same transaction as any history written, changed
or deleted after the fact, by any hub process) add up to the figure kept with them; otherwise that
station's day is computed again (and the day kept anew). The revisions are read before the
history, so inputs kept are never newer than the revision they are kept with. A write
whose instances are less than the broker's lateness margin (15 minutes) behind it bumps nothing:
:data:`SETTLED` leaves such a write of a day's last readings 45 minutes to commit before the day
can be kept.

The figures are those of :func:`service.city_daily`: the same inputs per station and day
(:func:`averages.daily_items` of the same hourly means), combined by the same
:func:`service.city_day`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.apps.environment import averages, service
from cityhub.apps.environment.aqi import Standard
from cityhub.apps.environment.models import AqiDayKept, StationDay
from cityhub.plugins import entities

log = logging.getLogger("cityhub.apps.environment")

#: How long after its end a local day is kept (before that it is computed on every call).
SETTLED = timedelta(hours=1)
#: The inputs a station's day has (all None: the station had none that day).
ITEMS: tuple[str, ...] = tuple(averages.daily_items({}, date(2000, 1, 1), UTC))
_NONE: dict[str, float | None] = dict.fromkeys(ITEMS)

Items = dict[str, float | None]


def _utc_days(day: date, tz: tzinfo) -> list[date]:
    """The UTC days a local day overlaps (one or two)."""
    start, end = service.days_span(day, day, tz)
    first = start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) spans."""
    spans: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if spans and spans[-1][1] + timedelta(days=1) == day:
            spans[-1] = (spans[-1][0], day)
        else:
            spans.append((day, day))
    return spans


@dataclass
class KeptDailyAqi:
    """The city's daily AQI for a hub's standard and time zone, past days kept in the database."""

    sessions: async_sessionmaker[AsyncSession]
    standard: Standard
    tz: tzinfo

    @property
    def basis(self) -> str:
        return f"{self.standard.value} {self.tz}"

    async def city_daily(
        self, session: AsyncSession, tenant: str, first: date, last: date, now: datetime
    ) -> list[service.DailyAqi]:
        """As ``service.city_daily(...)[1]``: the tenant's daily AQI of each day from ``first`` to
        ``last``, reading kept inputs where they hold and keeping those computed that may be."""
        air = await service.stations(session, tenant)
        ids = [s["id"] for s in air]
        ambient = [s["id"] for s in air if service.is_ambient(s)]
        days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
        keepable = [d for d in days if service.days_span(d, d, self.tz)[1] + SETTLED <= now]
        revised: dict[str, dict[date, int]] = {}
        overlaps = {d: _utc_days(d, self.tz) for d in keepable}
        if keepable:
            utc = [u for d in keepable for u in overlaps[d]]
            revised = await entities.history_revisions(session, tenant, min(utc), max(utc))

        def revision(entity_id: str, day: date) -> int:
            of = revised.get(entity_id)
            return sum(of.get(u, 0) for u in overlaps[day]) if of else 0

        # the revision is read before any history: inputs kept are never newer than it says
        covered, rows = await self._read(session, tenant, keepable)
        held: dict[date, dict[str, Items]] = {d: {} for d in days}
        pending: dict[date, list[str]] = {}
        for day in days:
            if day not in covered:
                pending[day] = ids
                continue
            kept, waiting = rows.get(day, {}), []
            for entity_id in ids:
                # a covered station without a row was kept with no inputs at revision 0
                items, at = kept.get(entity_id, (None, 0))
                if entity_id not in covered[day] or at != revision(entity_id, day):
                    waiting.append(entity_id)
                elif items:
                    held[day][entity_id] = items
            pending[day] = waiting
        for day, values in (await self._compute(session, tenant, pending)).items():
            held[day].update(values)
        renewed = {d: held[d] for d in keepable if pending[d]}
        if renewed:
            await self._keep(tenant, renewed, revision, ids, before=first)
        city = []
        for day in days:
            values = held[day]
            stations = [values[i] for i in ambient if i in values]
            if ambient:
                stations.append(_NONE)  # every input named, as the uncached path names them
            city.append(service.city_day(day, stations, self.standard))
        return city

    async def _read(
        self, session: AsyncSession, tenant: str, days: list[date]
    ) -> tuple[dict[date, set[str]], dict[date, dict[str, tuple[Items, int]]]]:
        """Which stations each kept day covers, and their kept inputs with their revisions."""
        if not days:
            return {}, {}
        kept = await session.execute(
            select(AqiDayKept.day, AqiDayKept.stations).where(
                AqiDayKept.tenant_code == tenant, AqiDayKept.basis == self.basis, AqiDayKept.day.in_(days)
            )
        )
        covered = {day: set(stations) for day, stations in kept}
        rows: dict[date, dict[str, tuple[Items, int]]] = {day: {} for day in covered}
        if covered:
            found = await session.execute(
                select(StationDay.day, StationDay.entity_id, StationDay.items, StationDay.revision).where(
                    StationDay.tenant_code == tenant,
                    StationDay.basis == self.basis,
                    StationDay.day.in_(list(covered)),
                )
            )
            for day, entity_id, items, revision in found:
                if day in rows:
                    rows[day][entity_id] = (items, revision)
        return covered, rows

    async def _compute(
        self, session: AsyncSession, tenant: str, pending: dict[date, list[str]]
    ) -> dict[date, dict[str, Items]]:
        """The inputs of each pending station and day (stations with none left out), from one
        history read per run of consecutive days."""
        out: dict[date, dict[str, Items]] = {}
        for first, last in _runs(d for d, ids in pending.items() if ids):
            span = [first + timedelta(days=k) for k in range((last - first).days + 1)]
            ids = sorted({i for d in span for i in pending[d]})
            start, end = service.days_span(first, last, self.tz)
            histories = await entities.read_histories(
                session, tenant, ids, list(service.POLLUTANTS), start, end
            )
            wanted_by = {d: set(pending[d]) for d in span}
            for entity_id in ids:
                history = histories[entity_id]
                if not any(history.values()):
                    continue
                series = service.hourly(history)
                # a day without one hourly value has no input: only the days its hours fall in
                hours = {hour for values in series.values() for hour in values}
                for day in sorted({hour.astimezone(self.tz).date() for hour in hours}):
                    if entity_id not in wanted_by.get(day, ()):
                        continue
                    items = averages.daily_items(series, day, self.tz)
                    if any(v is not None for v in items.values()):
                        out.setdefault(day, {})[entity_id] = items
        return out

    async def _keep(
        self,
        tenant: str,
        days: dict[date, dict[str, Items]],
        revision: Callable[[str, date], int],
        stations: Sequence[str],
        *,
        before: date,
    ) -> None:
        """Keep the days' inputs of ``stations`` with the revisions they were computed at, whole
        days in a transaction of their own; days older than ``before`` go. Another process keeping
        the same days at the same time wins: this one's are dropped (computed when next needed)."""
        keys = list(days)
        rows: list[dict[str, Any]] = []
        for day, values in days.items():
            for entity_id in stations:
                items, at = values.get(entity_id), revision(entity_id, day)
                if items or at:
                    rows.append({"tenant_code": tenant, "basis": self.basis, "day": day,
                                 "entity_id": entity_id, "items": items or {}, "revision": at})  # fmt: skip
        marks = [
            {"tenant_code": tenant, "basis": self.basis, "day": day, "stations": list(stations)}
            for day in keys
        ]
        async with self.sessions() as session:
            try:
                for model in (StationDay, AqiDayKept):
                    await session.execute(
                        delete(model).where(
                            model.tenant_code == tenant,
                            model.basis == self.basis,
                            (model.day.in_(keys)) | (model.day < before),
                        )
                    )
                if rows:
                    await session.execute(insert(StationDay), rows)
                await session.execute(insert(AqiDayKept), marks)
                await session.commit()
            except (IntegrityError, DBAPIError) as problem:
                await session.rollback()
                log.info("daily AQI of %s not kept (kept by another process meanwhile?): %s", tenant, problem)
