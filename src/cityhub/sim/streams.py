"""What the demo city's sensors measure, as pure functions of the seed, the sensor and the time.

Nothing here keeps state or reads a clock: the same seed, sensor and instant always give the same
reading, so a run can be replayed and tests can ask "what would the 8 o'clock reading be". Slow
random variation is value noise (random values at fixed knots, smoothly interpolated); the random
values are hashes of the seed and a key (BLAKE2), or :class:`random.Random` seeded with a string,
neither of which depends on Python's hash seed.

Local time is China Standard Time (UTC+8): rush hours, the daily pollution cycle and street lights
follow the city's clock, not UTC.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from cityhub.sim.city import NOISE_LIMITS, City, Sensor

CST = timezone(timedelta(hours=8), "CST")
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

#: Impossible values a faulty sensor sends now and then (the data models refuse them): the
#: classic 0xFFFF of an unread register, a negative count, a speed no car reaches.
FAULTS: dict[str, dict[str, Any]] = {
    "air": {"pm25": 65535.0},
    "water": {"pH": 15.7},
    "noise": {"LAeq": 255.0},
    "traffic": {"averageVehicleSpeed": 655.35},
    "parking": {"availableSpotNumber": -1},
    "light": {"illuminanceLevel": 6.5535},
}


@dataclass(frozen=True)
class Conditions:
    """Knobs of a run: how often a sensor sends an impossible value, how often one falls silent."""

    fault_rate: float = 0.002
    silence_rate: float = 0.04


def uniform(*key: object) -> float:
    """A uniform number in [0, 1) fixed by ``key`` (a hash: the same on every run and machine)."""
    digest = hashlib.blake2b("|".join(map(str, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _noise(seed: int, key: str, t: float, period: float) -> float:
    """Smooth noise in [-1, 1] at ``t`` seconds, varying over about ``period`` seconds."""
    knot = math.floor(t / period)
    frac = t / period - knot
    a = uniform(seed, key, knot) * 2 - 1
    b = uniform(seed, key, knot + 1) * 2 - 1
    w = (1 - math.cos(math.pi * frac)) / 2
    return a + (b - a) * w


def _seconds(at: datetime) -> float:
    return (at - EPOCH).total_seconds()


def _local(at: datetime) -> tuple[float, int, int]:
    """Local hour of day (fractional), weekday (0 = Monday), day of year."""
    local = at.astimezone(CST)
    return local.hour + local.minute / 60 + local.second / 3600, local.weekday(), local.timetuple().tm_yday


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2))


# -- traffic ----------------------------------------------------------------------------------------


def traffic_demand(at: datetime) -> float:
    """Demand as a share of road capacity (volume / capacity), city-wide, by local time."""
    hour, weekday, _ = _local(at)
    if weekday < 5:
        base = 0.08 + 0.50 * _bump(hour, 13.0, 6.0)
        return base + 0.62 * _bump(hour, 7.9, 0.9) + 0.66 * _bump(hour, 18.0, 1.1)
    return 0.08 + 0.62 * _bump(hour, 15.0, 4.5)


@dataclass(frozen=True)
class Incident:
    road: str
    start: datetime
    end: datetime
    segments: frozenset[str]
    #: the share of the usual speed left while it lasts
    factor: float


@lru_cache(maxsize=64)
def incidents(city: City, seed: int, day: int) -> tuple[Incident, ...]:
    """The incidents of one day (days since 2020-01-01, UTC): 1 to 4, each slowing a few
    consecutive segments of one road for 30 to 150 minutes."""
    rng = random.Random(f"incidents|{seed}|{day}")
    roads: dict[str, list[str]] = {}
    for segment in city.roads:
        if segment.road_class != "secondary":
            roads.setdefault(segment.road, []).append(segment.id)
    names = sorted(roads)
    found = []
    for _ in range(rng.randint(1, 4)):
        road = rng.choice(names)
        ids = roads[road]
        first = rng.randrange(len(ids))
        span = frozenset(ids[first : first + rng.randint(1, 3)])
        start = EPOCH + timedelta(days=day, seconds=rng.uniform(0, 86_400))
        end = start + timedelta(minutes=rng.uniform(30, 150))
        found.append(Incident(road, start, end, span, rng.uniform(0.2, 0.5)))
    return tuple(found)


def incident_at(city: City, seed: int, segment: str, at: datetime) -> Incident | None:
    day = int(_seconds(at) // 86_400)
    for d in (day - 1, day):  # an incident may have started the day before
        for incident in incidents(city, seed, d):
            if segment in incident.segments and incident.start <= at < incident.end:
                return incident
    return None


def traffic(city: City, seed: int, sensor: Sensor, at: datetime, interval: int) -> dict[str, Any]:
    free = float(sensor.static["freeFlowSpeed"])
    lanes = int(sensor.static["laneCount"])
    t = _seconds(at)
    local = 1 + 0.12 * _noise(seed, sensor.device_id, t, 3600)
    load = max(0.02, traffic_demand(at) * local)
    # BPR: travel time grows with (volume / capacity)^4
    speed = free / (1 + 1.0 * load**4)
    incident = incident_at(city, seed, str(sensor.static["refRoadSegment"]), at)
    if incident is not None:
        speed *= incident.factor
        load = min(load * 1.3, 1.3)
    speed *= 1 + 0.04 * _noise(seed, sensor.device_id + "s", t, 600)
    capacity = 1800 * lanes  # vehicles an hour, one direction
    flow = capacity * min(load, 1.0) * (0.6 if incident else 1.0)
    return {
        "averageVehicleSpeed": round(speed, 1),
        "intensity": round(flow * interval / 3600),
        "occupancy": round(min(0.95, 0.04 + 0.55 * load**2), 3),
        "congested": speed < free * 0.5,
    }


# -- air ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def episodes(seed: int, year: int) -> tuple[tuple[datetime, datetime, float], ...]:
    """Winter pollution episodes of a heating season (from November of ``year``): several a season,
    2 to 5 days each, building up and cleared by a cold front."""
    rng = random.Random(f"episodes|{seed}|{year}")
    found = []
    at = datetime(year, 11, 1, tzinfo=UTC)
    end = datetime(year + 1, 3, 1, tzinfo=UTC)
    while at < end:
        at += timedelta(days=rng.uniform(3, 12))
        length = timedelta(days=rng.uniform(2, 5))
        found.append((at, at + length, rng.uniform(1.8, 3.2)))
        at += length
    return tuple(found)


def episode_factor(seed: int, at: datetime) -> float:
    """How many times the usual particulate level an episode adds at ``at`` (1 outside them)."""
    for year in (at.year - 1, at.year):
        for start, end, peak in episodes(seed, year):
            if start <= at < end:
                # a slow build-up, then a sharp clearance in the last sixth
                share = (at - start) / (end - start)
                rise = min(1.0, share / 0.83) if share < 0.83 else max(0.0, (1 - share) / 0.17)
                return 1 + (peak - 1) * rise
    return 1.0


def _season(day_of_year: int) -> float:
    """1 in mid-January, -1 in mid-July."""
    return math.cos(2 * math.pi * (day_of_year - 15) / 365)


def air(seed: int, sensor: Sensor, at: datetime) -> dict[str, Any]:
    hour, _, doy = _local(at)
    t = _seconds(at)
    winter = _season(doy)
    site = 0.85 + 0.35 * uniform(seed, sensor.device_id, "site")
    slow = 1 + 0.25 * _noise(seed, sensor.device_id + "pm", t, 6 * 3600)
    # particulates: low in the afternoon when the boundary layer is deep, high at night
    daily = 1 + 0.25 * math.cos(2 * math.pi * (hour - 22) / 24)
    pm25 = (55 + 35 * winter) * site * slow * daily * episode_factor(seed, at)
    pm10 = pm25 * (1.55 + 0.2 * _noise(seed, sensor.device_id + "pm10", t, 3 * 3600))
    # ozone: photochemical, an afternoon peak, far higher in summer
    sun = max(0.0, math.sin(math.pi * (hour - 7) / 12)) ** 2 if 7 <= hour <= 19 else 0.0
    o3 = (25 + (150 - 90 * winter) * sun) * (1 + 0.15 * _noise(seed, sensor.device_id + "o3", t, 3 * 3600))
    rush = _bump(hour, 8.0, 1.2) + _bump(hour, 18.5, 1.5)
    no2 = (28 + 12 * winter + 30 * rush) * site
    so2 = (9 + 7 * max(0.0, winter)) * (1 + 0.2 * _noise(seed, sensor.device_id + "so2", t, 4 * 3600))
    co = (0.7 + 0.5 * max(0.0, winter) + 0.4 * rush) * (1 + 0.1 * (episode_factor(seed, at) - 1))
    temperature = 15 - 13 * winter + 5 * math.sin(math.pi * (hour - 9) / 12)
    humidity = 0.55 + 0.2 * _noise(seed, "humidity", t, 12 * 3600) - 0.1 * sun
    return {
        "pm25": round(pm25, 1),
        "pm10": round(pm10, 1),
        "o3": round(o3, 1),
        "no2": round(no2, 1),
        "so2": round(so2, 1),
        "co": round(co, 2),
        "temperature": round(temperature, 1),
        "relativeHumidity": round(min(0.99, max(0.1, humidity)), 2),
    }


# -- water, noise, parking, lights ------------------------------------------------------------------


def water(seed: int, sensor: Sensor, at: datetime) -> dict[str, Any]:
    _, _, doy = _local(at)
    t = _seconds(at)
    winter = _season(doy)
    key = sensor.device_id
    yellow = sensor.static.get("river") == "黄河"
    temperature = 15 - 11 * winter + 1.5 * _noise(seed, key + "t", t, 86_400)
    return {
        "temperature": round(temperature, 1),
        "pH": round(7.8 + 0.3 * _noise(seed, key + "ph", t, 2 * 86_400), 2),
        "O2": round(14.6 - 0.4 * temperature + 0.8 * _noise(seed, key + "o2", t, 86_400), 2),
        "NH4": round(
            max(0.05, (0.35 if yellow else 0.8) + 0.25 * _noise(seed, key + "nh4", t, 2 * 86_400)), 2
        ),
        "turbidity": round((180 if yellow else 12) * (1 + 0.3 * _noise(seed, key + "tu", t, 86_400)), 1),
        "conductivity": round((850 if yellow else 620) * (1 + 0.05 * _noise(seed, key + "c", t, 86_400))),
    }


def noise(seed: int, sensor: Sensor, at: datetime) -> dict[str, Any]:
    hour, _, _ = _local(at)
    day_limit, night_limit = NOISE_LIMITS[str(sensor.static["zoneClass"])]
    daytime = 6 <= hour < 22
    base = (day_limit if daytime else night_limit) - 4
    if sensor.static["zoneClass"] == "4a":
        base += 6 * (traffic_demand(at) - 0.4)
    level = base + 2.5 * _noise(seed, sensor.device_id, _seconds(at), 1800)
    return {"LAeq": round(level, 1), "LAmax": round(level + 9 + 4 * uniform(seed, sensor.device_id, at), 1)}


#: Occupancy by hour for each kind of car park (weekday; weekends shift towards shops and parks).
def _parking_share(usage: str, hour: float, weekend: bool) -> float:
    if usage == "office":
        return 0.1 + (0.25 if weekend else 0.8) * _bump(hour, 13.0, 3.8)
    if usage == "hospital":
        return 0.15 + 0.8 * _bump(hour, 10.0, 2.5) + 0.4 * _bump(hour, 15.0, 2.0)
    if usage == "station":
        return 0.35 + 0.45 * _bump(hour, 9.0, 3.0) + 0.35 * _bump(hour, 18.0, 3.0)
    if usage == "park":
        return 0.05 + (0.85 if weekend else 0.45) * _bump(hour, 15.0, 3.5)
    return 0.08 + (0.9 if weekend else 0.7) * _bump(hour, 19.0, 3.0) + 0.3 * _bump(hour, 12.5, 1.5)


def parking(seed: int, sensor: Sensor, at: datetime) -> dict[str, Any]:
    hour, weekday, _ = _local(at)
    total = int(sensor.static["totalSpotNumber"])
    share = _parking_share(str(sensor.static["usage"]), hour, weekday >= 5)
    share *= 1 + 0.08 * _noise(seed, sensor.device_id, _seconds(at), 1800)
    occupied = min(total, max(0, round(total * share)))
    return {"availableSpotNumber": total - occupied, "occupancy": round(occupied / total, 3)}


def _dark(hour: float, doy: int) -> bool:
    """Between dusk and dawn in Zhengzhou (sunset about 17:20 in December, 19:40 in June)."""
    summer = -_season(doy)
    dusk = 18.5 + 1.15 * summer
    dawn = 6.3 - 1.0 * summer
    return hour >= dusk or hour < dawn


def light(seed: int, sensor: Sensor, at: datetime) -> dict[str, Any]:
    hour, _, doy = _local(at)
    day = int(_seconds(at) // 86_400)
    defective = uniform(seed, sensor.device_id, "lamp", day) < 0.01
    on = _dark(hour, doy) and not defective
    level = (0.6 if 0.5 <= hour < 5 else 1.0) if on else 0.0
    return {
        "powerState": "on" if on else "off",
        "illuminanceLevel": level,
        "powerConsumption": round(float(sensor.static["ratedPower"]) * level, 3),
        "status": "defectiveLamp" if defective else "ok",
    }


# -- one reading ---------------------------------------------------------------------------------------


def silent(seed: int, sensor: Sensor, at: datetime, conditions: Conditions) -> bool:
    """Whether the sensor is silent at ``at``: on some days (``silence_rate``) one falls silent for
    2 to 8 hours (a flat battery, a lost link), long enough for device health to notice."""
    day = int(_seconds(at) // 86_400)
    for d in (day - 1, day):
        window = _silence(seed, sensor.device_id, d, conditions.silence_rate)
        if window is not None and window[0] <= at < window[1]:
            return True
    return False


@lru_cache(maxsize=4096)
def _silence(seed: int, device_id: str, day: int, rate: float) -> tuple[datetime, datetime] | None:
    rng = random.Random(f"silence|{seed}|{device_id}|{day}")
    if rng.random() >= rate:
        return None
    start = EPOCH + timedelta(days=day, seconds=rng.uniform(0, 86_400))
    return start, start + timedelta(hours=rng.uniform(2, 8))


def faulty(seed: int, sensor: Sensor, at: datetime, conditions: Conditions) -> bool:
    return uniform("fault", seed, sensor.device_id, at.isoformat()) < conditions.fault_rate


def reading(city: City, seed: int, sensor: Sensor, at: datetime, interval: int) -> dict[str, Any]:
    """The measures ``sensor`` reports at ``at``, by attribute name."""
    if sensor.kind == "traffic":
        return traffic(city, seed, sensor, at, interval)
    if sensor.kind == "air":
        return air(seed, sensor, at)
    if sensor.kind == "water":
        return water(seed, sensor, at)
    if sensor.kind == "noise":
        return noise(seed, sensor, at)
    if sensor.kind == "parking":
        return parking(seed, sensor, at)
    if sensor.kind == "light":
        return light(seed, sensor, at)
    raise ValueError(f"unknown sensor kind {sensor.kind}")
