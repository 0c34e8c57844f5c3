from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from cityhub.apps.environment.aqi import AqiResult, Standard


class AqiRequest(BaseModel):
    concentrations: dict[str, float] = Field(
        description="Item → concentration (µg/m³; CO mg/m³), e.g. pm25_24h, o3_8h, so2_1h"
    )
    period: Literal["hour", "day"] = "day"
    standard: Standard | None = Field(None, description="Default: the app setting (HJ633-2026)")


class AqiAnswer(BaseModel):
    standard: Standard
    period: str
    aqi: int
    level: int
    category_zh: str
    category_en: str
    colour: str
    rgb: tuple[int, int, int]
    primary_pollutants: list[str]
    primary_items: list[str]
    exceeding_items: list[str] | None
    iaqi: dict[str, int]

    @classmethod
    def of(cls, r: AqiResult) -> AqiAnswer:
        c = r.category
        return cls(
            standard=r.standard,
            period=r.period,
            aqi=r.aqi,
            level=c.level,
            category_zh=c.label_zh,
            category_en=c.label_en,
            colour=c.colour,
            rgb=c.rgb,
            primary_pollutants=r.primary_pollutants,
            primary_items=r.primary,
            exceeding_items=r.exceeding,
            iaqi=r.iaqi,
        )


class WaterRequest(BaseModel):
    measures: dict[str, float] = Field(
        description="GB 3838 item → mg/L: DO, CODMn, COD, BOD5, NH3-N, TP, TN, pH"
    )
    water_body_type: Literal["river", "lake", "reservoir"] = "river"
    target_class: str | None = None


class WaterAnswer(BaseModel):
    water_class: str
    determining_items: list[str]
    by_item: dict[str, str]
    worse_than_target: bool | None


class NoiseRequest(BaseModel):
    zone: Literal["0", "1", "2", "3", "4a", "4b"]
    laeq: float
    period: Literal["day", "night"] | None = None
    at: datetime | None = Field(None, description="When measured; sets the period if none is given")
    lmax: float | None = None


class NoiseAnswer(BaseModel):
    zone: str
    period: str
    level: float
    limit: float
    compliant: bool
    excess: float
    night_lmax_compliant: bool | None


class NoiseLine(BaseModel):
    day: date
    period: str
    leq: float | None
    readings: int
    limit: float
    compliant: bool | None


class ExceedanceLine(BaseModel):
    item: str
    value: float
    limit: float
    ratio: float
    exceeded: bool


class SoilRequest(BaseModel):
    ph: float
    values: dict[str, float] = Field(description="mg/kg: Cd, Hg, As, Pb, Cr, Cu, Ni, Zn")


class LimitsRequest(BaseModel):
    values: dict[str, float]
    limits: dict[str, float]


class EnergyRequest(BaseModel):
    consumption_tce: float
    output: float
    quota: float | None = None


class EnergyAnswer(BaseModel):
    consumption_tce: float
    output: float
    intensity: float
    quota: float | None
    within_quota: bool | None


class StationLine(BaseModel):
    id: str
    name: str | None
    district: str | None
    aqi: int | None
    category: dict[str, Any] | None
    primary_pollutant: str | None
    observed_at: str | None


class DayLine(BaseModel):
    day: date
    aqi: int | None
    category_zh: str | None
    primary_pollutants: list[str]
    missing: list[str]


class HourLine(BaseModel):
    hour: datetime
    aqi: int | None
    category_zh: str | None
    primary_pollutants: list[str]
    missing: list[str]


class RankLine(BaseModel):
    rank: int
    key: str
    mean_aqi: float
    days: int
    good_days: int


class Ranking(BaseModel):
    standard: Standard
    start: date
    end: date
    by: str
    lines: list[RankLine]


class GoodDays(BaseModel):
    start: date
    end: date
    good_days: int
    valid_days: int
    ratio: float | None


class Trend(BaseModel):
    start: date
    end: date
    slope_per_day: float | None
    days: list[DayLine]


class ForecastLine(BaseModel):
    at: datetime
    aqi: float


class Forecast(BaseModel):
    station: str
    model: str
    values: list[ForecastLine]
