"""Actions on one case at the same time: each is judged on the state the one before it left, so an
action no longer allowed is refused (409) instead of applied twice from one state."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from tests.hub.dispatch.support import CASES, act, city, open_case

OPERATORS = 8


async def test_the_same_action_at_once_is_taken_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    case = await open_case(client)
    answers = await asyncio.gather(
        *(act(client, case["id"], "file", actor=f"operator-{n}") for n in range(OPERATORS))
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [409] * (OPERATORS - 1), [a.text for a in answers if a.status_code != 409]
    history = (await client.get(f"{CASES}/{case['id']}/history")).json()
    assert [(h["action"], h["from_state"]) for h in history].count(("file", "collected")) == 1


async def test_exclusive_actions_at_once_one_wins(app: FastAPI, client: httpx.AsyncClient) -> None:
    # once filed, a case is either dispatched or sent back: of the two asked at once, the later is
    # judged on the state the earlier left
    await city(app, client)
    case = await open_case(client)
    assert (await act(client, case["id"], "file")).status_code == 200
    allowed = (await client.get(f"{CASES}/{case['id']}")).json()["allowed_actions"]
    assert "dispatch" in allowed
    rival = next(name for name in allowed if name != "dispatch")
    answers = await asyncio.gather(
        *(
            act(client, case["id"], "dispatch" if n % 2 else rival, note="并发", actor=f"operator-{n}")
            for n in range(OPERATORS)
        )
    )
    history = (await client.get(f"{CASES}/{case['id']}/history")).json()
    sources = [h["from_state"] for h in history]
    assert sources.count("filed") == 1, history
    assert sum(answer.status_code == 200 for answer in answers) >= 1
    assert all(answer.status_code in (200, 409) for answer in answers), [a.text for a in answers]
