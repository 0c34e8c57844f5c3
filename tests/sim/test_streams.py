"""The streams' models: deterministic, and shaped like a city's day and year."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from statistics import mean

from cityhub.sim.city import KINDS, build_city
from cityhub.sim.runner import Message, Simulator
from cityhub.sim.streams import (
    FAULTS,
    Conditions,
    air,
    episode_factor,
    incident_at,
    incidents,
    light,
    noise,
    parking,
    reading,
    silent,
)
from cityhub.systems.standards.datamodels import BUILT_IN, DataModels

CITY = build_city(42)


def local(day: int, hour: float, month: int = 11) -> datetime:
    """``hour`` o'clock in Zhengzhou (UTC+8) on ``day`` of ``month`` 2026."""
    return datetime(2026, month, day, tzinfo=UTC) + timedelta(hours=hour - 8)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, messages, tally) -> None:  # type: ignore[no-untyped-def]
        self.sent.extend(messages)


async def _record(seed: int) -> list[tuple[str, tuple[dict, ...]]]:
    recorder = Recorder()
    simulator = Simulator(
        CITY, recorder, seed=seed, start=local(23, 7), speed=0, conditions=Conditions(0.01, 0.1)
    )
    await simulator.run(timedelta(hours=3))
    return sorted(
        ((m.device_id, m.readings) for m in recorder.sent), key=lambda m: (m[0], m[1][0]["TimeInstant"])
    )


async def test_same_seed_same_messages_other_seed_others() -> None:
    first = await _record(42)
    assert first == await _record(42)
    assert first != await _record(43)
    assert len(first) > 300


def _speeds(at: datetime) -> float:
    detectors = [
        s for s in CITY.of_kind("traffic") if incident_at(CITY, 42, s.static["refRoadSegment"], at) is None
    ]
    return mean(reading(CITY, 42, s, at, 300)["averageVehicleSpeed"] for s in detectors)


def test_rush_hours_are_slower_than_the_night() -> None:
    monday = 23
    night = _speeds(local(monday, 3))
    morning = _speeds(local(monday, 8))
    evening = _speeds(local(monday, 18))
    midday = _speeds(local(monday, 12))
    assert morning < midday < night
    assert evening < midday
    assert morning < 0.7 * night
    sunday_morning = _speeds(local(22, 8))
    assert sunday_morning > morning


def test_an_incident_slows_its_segments() -> None:
    start = int((local(23, 12) - datetime(2020, 1, 1, tzinfo=UTC)).total_seconds() // 86_400)
    detected = {s.static["refRoadSegment"]: s for s in CITY.of_kind("traffic")}
    # the first incident of the coming days on a segment that has a detector
    found = next(
        (incident, segment)
        for day in range(start, start + 60)
        for incident in incidents(CITY, 42, day)
        for segment in sorted(incident.segments)
        if segment in detected
    )
    incident, segment = found
    sensor = detected[segment]
    during = incident.start + (incident.end - incident.start) / 2
    assert incident_at(CITY, 42, segment, during) is incident
    slowed = reading(CITY, 42, sensor, during, 300)["averageVehicleSpeed"]
    free = sensor.static["freeFlowSpeed"]
    assert slowed < free * 0.55


def test_ozone_peaks_in_the_afternoon_and_particulates_do_not() -> None:
    station = CITY.of_kind("air")[0]
    summer = [air(42, station, local(15, h, month=7)) for h in (5, 15)]
    assert summer[1]["o3"] > 2 * summer[0]["o3"]
    winter_o3 = air(42, station, local(15, 15, month=1))["o3"]
    assert winter_o3 < summer[1]["o3"]


def test_winter_has_pollution_episodes_summer_none() -> None:
    hours = [datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(0, 24 * 90, 6)]
    factors = [episode_factor(42, at) for at in hours]
    assert max(factors) > 1.7
    assert min(factors) == 1.0
    july = [
        episode_factor(42, datetime(2026, 7, 1, tzinfo=UTC) + timedelta(hours=h))
        for h in range(0, 24 * 30, 6)
    ]
    assert set(july) == {1.0}
    station = CITY.of_kind("air")[0]
    peak = hours[factors.index(max(factors))]
    clean = hours[factors.index(1.0)]
    assert air(42, station, peak)["pm25"] > air(42, station, clean)["pm25"]


def test_noise_is_quieter_at_night_and_within_reason() -> None:
    for sensor in CITY.of_kind("noise"):
        day = noise(42, sensor, local(23, 10))["LAeq"]
        night = noise(42, sensor, local(23, 2))["LAeq"]
        assert night < day
        assert 25 < night < day < 80


def test_car_parks_fill_and_empty() -> None:
    for sensor in CITY.of_kind("parking"):
        total = sensor.static["totalSpotNumber"]
        occupancy = [parking(42, sensor, local(23, h))["occupancy"] for h in range(24)]
        assert max(occupancy) - min(occupancy) > 0.3, sensor.static["usage"]
        assert all(0 <= parking(42, sensor, local(23, h))["availableSpotNumber"] <= total for h in range(24))


def test_street_lights_are_on_at_night_only() -> None:
    lamp = CITY.of_kind("light")[0]
    assert light(42, lamp, local(23, 22))["powerState"] in ("on", "off")
    nights = [light(42, lamp, local(d, 22))["powerState"] for d in range(1, 29)]
    days = [light(42, lamp, local(d, 12))["powerState"] for d in range(1, 29)]
    assert set(days) == {"off"}
    assert nights.count("on") >= 25  # a defective lamp stays dark for a day now and then


def test_some_sensors_fall_silent_for_hours() -> None:
    conditions = Conditions(silence_rate=0.2)
    sensor = CITY.of_kind("air")[0]
    hours = [local(1, 0) + timedelta(minutes=10 * k) for k in range(6 * 24 * 28)]
    states = [silent(42, sensor, at, conditions) for at in hours]
    assert any(states)
    assert not all(states)
    # silences last hours, not single readings
    runs, current = [], 0
    for state in states:
        if state:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    assert min(runs) >= 12  # two hours of 10-minute reports
    assert not any(silent(42, sensor, at, Conditions(silence_rate=0.0)) for at in hours[:500])


def test_readings_conform_to_the_data_models_and_faults_do_not() -> None:
    models = DataModels(BUILT_IN)
    hours = [local(15, h, month=m) for m in (1, 4, 7, 10) for h in range(0, 24, 3)]
    for sensor in CITY.sensors:
        entity_type, interval = KINDS[sensor.kind]
        for at in hours:
            values = reading(CITY, 42, sensor, at, interval)
            assert models.problems(entity_type, values) == [], (sensor.device_id, at, values)
    for kind, values in FAULTS.items():
        assert models.problems(KINDS[kind][0], values), kind
