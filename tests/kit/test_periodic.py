from __future__ import annotations

import asyncio

from cityhub.kit.periodic import Periodic


async def test_a_job_repeats_outlives_its_failures_and_stops() -> None:
    runs: list[int] = []

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) == 2:
            raise RuntimeError("the second run fails")

    periodic = Periodic("test job", 0.01, job)
    periodic.start()
    for _ in range(500):  # at most 5 s
        if len(runs) >= 4:
            break
        await asyncio.sleep(0.01)
    await periodic.stop()
    assert len(runs) >= 4  # the failure did not end it
    stopped_at = len(runs)
    await asyncio.sleep(0.05)
    assert len(runs) == stopped_at


async def test_no_interval_means_never() -> None:
    runs: list[int] = []

    async def job() -> None:
        runs.append(1)

    periodic = Periodic("never", 0, job)
    periodic.start()
    await asyncio.sleep(0.05)
    await periodic.stop()
    assert runs == []
