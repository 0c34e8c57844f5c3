from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.apps.environment import service
from cityhub.apps.environment.api import build_router
from cityhub.apps.environment.daycache import KeptDailyAqi
from cityhub.apps.environment.limits import SOIL_SCREENING
from cityhub.apps.environment.settings import EnvironmentSettings
from cityhub.apps.environment.tasks import Consumer
from cityhub.plugins import (
    AppContext,
    EntitiesChanged,
    HubApp,
    Indicator,
    IndicatorValue,
    Manifest,
    utcnow,
)

#: Alert rule templates, in the rule engine's definition contract.
RULE_TEMPLATES: dict[str, tuple[str, str, dict[str, object]]] = {
    "aqi-high-in-district": (
        "区县空气质量指数持续超限",
        "AQI above a threshold for a while in a district",
        {
            "name": "AQI high",
            "entity_type": "AirQualityObserved",
            "when": {
                "all": [
                    {"attr": "airQualityIndex", "op": ">", "value": {"param": "threshold"}},
                    {"attr": "district", "op": "==", "value": {"param": "district"}},
                ]
            },
            "for": {"param": "duration"},
            "severity": "major",
            "message_zh": "{entity} 空气质量指数 {value}，持续超过阈值",
            "message_en": "{entity}: AQI {value}, above the threshold for the whole period",
            "open_case": {"category": "air-pollution"},
            "channels": ["in-app"],
            "suppress": "PT6H",
            "params": {
                "threshold": {
                    "type": "number",
                    "default": 200,
                    "title_zh": "AQI 阈值",
                    "title_en": "AQI threshold",
                },
                "duration": {
                    "type": "string",
                    "default": "PT2H",
                    "title_zh": "持续时间",
                    "title_en": "Duration",
                },
                "district": {
                    "type": "string",
                    "default": "410102",
                    "title_zh": "区县代码",
                    "title_en": "District code",
                },
            },
        },
    ),
    "water-worse-than-target": (
        "水质劣于目标类别",
        "Water worse than its target class",
        {
            "name": "Water worse than target",
            "entity_type": "WaterQualityObserved",
            "when": {"attr": "waterQualityWorseThanTarget", "op": "==", "value": True},
            "severity": "major",
            "message_zh": "{entity} 水质类别劣于目标类别",
            "message_en": "{entity}: water quality worse than its target class",
            "open_case": {"category": "water-pollution"},
            "channels": ["in-app"],
            "suppress": "PT12H",
            "params": {},
        },
    ),
    "noise-over-limit-at-night": (
        "夜间噪声超标",
        "Noise over the limit at night",
        {
            "name": "Night noise over limit",
            "entity_type": "NoiseLevelObserved",
            "when": {
                "all": [
                    {"attr": "noisePeriod", "op": "==", "value": "night"},
                    {"attr": "noiseExcess", "op": ">", "value": {"param": "margin"}},
                ]
            },
            "for": {"param": "duration"},
            "severity": "minor",
            "message_zh": "{entity} 夜间噪声超标 {value} dB",
            "message_en": "{entity}: night noise {value} dB over the limit",
            "channels": ["in-app"],
            "suppress": "PT8H",
            "params": {
                "margin": {"type": "number", "default": 0, "title_zh": "容差 dB", "title_en": "Margin (dB)"},
                "duration": {
                    "type": "string",
                    "default": "PT30M",
                    "title_zh": "持续时间",
                    "title_en": "Duration",
                },
            },
        },
    ),
    "site-dust-high": (
        "工地扬尘 PM10 超标",
        "Construction-site PM10 above its limit",
        {
            "name": "Site dust high",
            "entity_type": "AirQualityObserved",
            "when": {
                "all": [
                    {"attr": "stationType", "op": "==", "value": "constructionSite"},
                    {"attr": "pm10", "op": ">", "value": {"param": "limit"}},
                ]
            },
            "for": "PT1H",
            "severity": "warning",
            "message_zh": "{entity} 扬尘 PM10 {value} µg/m³ 超过限值",
            "message_en": "{entity}: site PM10 {value} µg/m³ above the limit",
            "channels": ["in-app"],
            "params": {
                "limit": {
                    "type": "number",
                    "default": 150,
                    "title_zh": "PM10 限值",
                    "title_en": "PM10 limit",
                },
            },
        },
    ),
}


def _num(minimum: float, maximum: float, unit: str | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"type": "number", "minimum": minimum, "maximum": maximum}
    if unit is not None:
        spec["unitCode"] = unit
    return spec


#: Entity types the app owns, with the physical ranges ingestion validates (beyond: dead letter).
ENTITY_TYPES: dict[str, tuple[str, str, dict[str, object]]] = {
    "RadiationObserved": (
        "环境辐射观测",
        "Ambient radiation observed",
        {"properties": {"gammaDoseRate": _num(0, 10_000_000)}},  # nGy/h
    ),
    "SoilQualityObserved": (
        "土壤质量观测",
        "Soil quality observed",
        {"properties": {"pH": _num(0, 14), **{m: _num(0, 100_000) for m in SOIL_SCREENING}}},  # mg/kg
    ),
    "EnergyConsumptionObserved": (
        "重点用能单位能耗",
        "Key energy user's consumption",
        {"properties": {"consumption": _num(0, 1e9), "output": _num(0, 1e12), "quota": _num(0, 1e9)}},
    ),
    "PollutionSourceObserved": (
        "重点污染源排放",
        "Key pollution source emissions",
        {"properties": {p: _num(0, 1e6, "GQ") for p in ("so2", "nox", "particulates", "cod", "nh3n")}},
    ),
}


class EnvironmentApp(HubApp):
    manifest = Manifest(
        name="environment",
        version="0.1.0",
        title_zh="生态环境监测",
        title_en="Environmental monitoring",
        indicators=(Indicator.SMART_ECO_ENVIRONMENT,),
        settings_model=EnvironmentSettings,
    )

    async def setup(self, ctx: AppContext) -> None:
        settings = ctx.settings
        assert isinstance(settings, EnvironmentSettings)
        tz = ZoneInfo(settings.timezone)
        consumer = Consumer(
            ctx.sessions, settings.aqi_standard, tz, settings.noise_day_start, settings.noise_night_start
        )

        kept = KeptDailyAqi(ctx.sessions, settings.aqi_standard, tz)

        async def good_days(session: AsyncSession, tenant: str) -> IndicatorValue:
            now = utcnow()
            last = now.astimezone(tz).date() - timedelta(days=1)
            city = await kept.city_daily(session, tenant, last - timedelta(days=29), last, now)
            _, _, ratio = service.good_day_ratio(city)
            return IndicatorValue(
                indicator=Indicator.SMART_ECO_ENVIRONMENT,
                value=round((ratio or 0.0) * 100, 2),
                unit="%",
                label_zh="近30天空气质量优良天数比例",
                label_en="Share of good air days, last 30 days",
            )

        ctx.registry.subscribe("score", [EntitiesChanged], consumer, shared=True)
        ctx.registry.add_router(build_router(settings, tz), prefix="/api/v1/environment")
        ctx.registry.add_indicator_provider(Indicator.SMART_ECO_ENVIRONMENT, good_days)
        for name, (title_zh, title_en, schema) in ENTITY_TYPES.items():
            ctx.registry.add_entity_type(name, title_zh=title_zh, title_en=title_en, schema=schema)
        for key, (title_zh, title_en, definition) in RULE_TEMPLATES.items():
            ctx.registry.add_rule_template(key, title_zh=title_zh, title_en=title_en, definition=definition)
