"""What judging each change by the subscriber department's current access costs the notifier.

    .venv/bin/python bench/catalog_notify.py [--entities 200] [--requests 300]
                                             [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Two counties hold the same 20 datasets (of one owner department) and the same ``--entities`` ``Open``
entities, and 10 subscriptions to ``Open`` each, made by a reader department: in 410105 they are
restricted (made by a caller the catalog restricts, so each batch of changes looks the
department's access up: two small queries) and the reader holds a field-level approval of one
dataset; in 410102 they are not (as made by an administrator), the baseline. ``--requests``
events of one change each are matched (``Notifier.on_changes``, which queues a notification per
subscription), alternating between the counties event by event so that drift of the machine hits
both alike. Prints the p50 wall time and the mean CPU time per event and the ratios (restricted /
baseline). No delivery loop runs: only matching and queueing are timed.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta
from typing import Any

from scratch import run_on_scratch
from sqlalchemy import update

from cityhub import migrate
from cityhub.hub.broker import events as broker_events
from cityhub.hub.broker.context import ContextStore
from cityhub.hub.broker.events import EntitiesChanged
from cityhub.hub.broker.models import BrokerSubscription
from cityhub.hub.broker.notifier import Notifier
from cityhub.hub.catalog import access
from cityhub.hub.catalog import service as catalog
from cityhub.hub.catalog.access import Caller
from cityhub.hub.catalog.models import APPROVED, SharingRequest
from cityhub.hub.catalog.schemas import DatasetCreate
from cityhub.hub.tenancy.service import ensure_tenant_with_ancestors
from cityhub.kit.db import create_engine, scope_to_tenant, session_factory
from cityhub.kit.time import isoformat, utcnow
from cityhub.systems.security import service
from cityhub.systems.security.schemas import DepartmentCreate

BASELINE, RESTRICTED = "410102", "410105"
SUBSCRIPTIONS = 10
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"


def thing(index: int, level: int) -> dict[str, Any]:
    now = isoformat(utcnow())
    return {
        "id": f"urn:ngsi-ld:Open:{index}",
        "type": [DEFAULT + "Open"],
        "createdAt": now,
        "modifiedAt": now,
        "attrs": {
            DEFAULT + "name": [{"type": "Property", "value": f"Open {index}"}],
            DEFAULT + "level": [{"type": "Property", "value": level}],
        },
    }


async def prepare(sessions: Any) -> None:
    async with sessions() as session, session.begin():
        for county in (BASELINE, RESTRICTED):
            await ensure_tenant_with_ancestors(session, county)
        for tenant in (BASELINE, RESTRICTED):
            owner = await service.create_department(
                session, DepartmentCreate(code="urban", name="城管局"), tenant=tenant, actor="bench"
            )
            reader = await service.create_department(
                session, DepartmentCreate(code="ecology", name="生态环境局"), tenant=tenant, actor="bench"
            )
            scope_to_tenant(session, tenant)
            specs = [("open", "Open", "conditional")]
            specs += [(f"other-{n}", f"Other{n}", ("conditional", "not_shared")[n % 2]) for n in range(19)]
            for code, entity_type, sharing in specs:
                body = DatasetCreate(
                    code=code,
                    title=code,
                    department_id=owner.id,
                    entity_types=[entity_type],
                    sharing=sharing,  # type: ignore[arg-type]
                    conditions="法定" if sharing != "unconditional" else None,
                )
                dataset = await catalog.create_dataset(session, body, Caller.unrestricted("bench"))
                if code == "open":
                    now = utcnow()
                    session.add(
                        SharingRequest(
                            dataset_id=dataset.id,
                            applicant_department_id=reader.id,
                            applicant="bench",
                            purpose="bench",
                            fields=[DEFAULT + "level"],
                            starts_at=now - timedelta(days=1),
                            ends_at=now + timedelta(days=30),
                            expires_at=now + timedelta(days=30),
                            status=APPROVED,
                        )
                    )
            for number in range(SUBSCRIPTIONS):
                row = BrokerSubscription(
                    subscription_id=f"urn:ngsi-ld:Subscription:{number}",
                    kind="entities",
                    context=None,
                    data={
                        "id": f"urn:ngsi-ld:Subscription:{number}",
                        "type": "Subscription",
                        "entities": [{"type": "Open"}],
                        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
                    },
                    active=True,
                    times_sent=0,
                    times_failed=0,
                    created_at=utcnow() - timedelta(days=1),
                    modified_at=utcnow(),
                    restricted=tenant == RESTRICTED,
                    department_id=reader.id if tenant == RESTRICTED else None,
                )
                session.add(row)
        await session.flush()
        await session.execute(update(BrokerSubscription).values(created_at=utcnow() - timedelta(days=1)))


async def run(url: str, entities: int, requests: int) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        sessions = session_factory(engine)
        await prepare(sessions)
        notifier = Notifier(
            sessions, ContextStore(), default_tenant="410100", department_access=access.department_access
        )
        rng = random.Random(7)
        wall: dict[str, list[float]] = {BASELINE: [], RESTRICTED: []}
        cpu: dict[str, list[float]] = {BASELINE: [], RESTRICTED: []}
        for number in range(requests + 30):
            index = rng.randrange(entities)
            order = [BASELINE, RESTRICTED]
            rng.shuffle(order)
            for tenant in order:
                change = broker_events.diff(thing(index, number), thing(index, number + 1))
                event = EntitiesChanged(tenant=tenant, changes=[change])
                began, began_cpu = time.perf_counter(), time.process_time()
                await notifier.on_changes(event)
                elapsed, elapsed_cpu = time.perf_counter() - began, time.process_time() - began_cpu
                if number >= 30:  # the first events warm caches up
                    wall[tenant].append(elapsed * 1000)
                    cpu[tenant].append(elapsed_cpu * 1000)
    finally:
        await engine.dispose()
    print(f"{requests} events of one change per county, {SUBSCRIPTIONS} subscriptions each")
    print(f"{'figure':<44}{'restricted':>12}{'baseline':>12}{'ratio':>8}")
    for label, values, measure in (
        ("on_changes p50 wall ms", wall, statistics.median),
        ("on_changes mean CPU ms", cpu, statistics.mean),
    ):
        restricted, base = measure(values[RESTRICTED]), measure(values[BASELINE])
        print(f"{label:<44}{restricted:>12.3f}{base:>12.3f}{restricted / base:>8.3f}")


if __name__ == "__main__":
    run_on_scratch(__doc__, "catalog_notify", run, entities=200, requests=300)
