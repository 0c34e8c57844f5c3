"""Kept daily values: each ambient station's daily AQI inputs of past local days, so that the
cockpit's good-air-days ratio does not compute a month of every station's history on each call.

A past day's inputs change only when its history does after the fact, which the broker counts
per entity and UTC day (``plugins.entities.history_revisions``); a station's kept inputs of a day
are trusted while the revisions of the UTC days the day overlaps add up to the figure kept with
them (``StationDay.revision``). ``basis`` names the standard and time zone they were computed
under, so hubs of other settings keep their own."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import BigInteger, Date, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.plugins import Base, JSONType, TenantOwned


class AqiDayKept(TenantOwned, Base):
    """A past local day whose stations' inputs are kept, and which stations they cover (one that
    became an air station later is computed when it is first needed)."""

    __tablename__ = "environment_aqi_day"
    __table_args__ = (PrimaryKeyConstraint("tenant_code", "basis", "day"),)

    basis: Mapped[str] = mapped_column(String(80), nullable=False)
    day: Mapped[date] = mapped_column(Date(), nullable=False)
    #: The air stations computed for the day; one with no input and no revision has no row.
    stations: Mapped[list[str]] = mapped_column(JSONType, nullable=False)


class StationDay(TenantOwned, Base):
    """A station's daily AQI inputs (24h means, O3 maxima; None where coverage leaves one
    undetermined) of a kept day, with the history revision they were computed at."""

    __tablename__ = "environment_station_day"
    __table_args__ = (PrimaryKeyConstraint("tenant_code", "basis", "day", "entity_id"),)

    basis: Mapped[str] = mapped_column(String(80), nullable=False)
    day: Mapped[date] = mapped_column(Date(), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    items: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    #: The station's history revision of the day (the sum over the UTC days it overlaps) the
    #: inputs were computed at.
    revision: Mapped[int] = mapped_column(BigInteger(), nullable=False)
