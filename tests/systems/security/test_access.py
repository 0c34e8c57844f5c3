"""Access control with CITYHUB_AUTH_MODE=on: the broker, the hub's APIs and the applications'.

The isolation test tries a few thousand random (user, tenant, object, operation) combinations
against an oracle written from the rules themselves, not from the code under test, and counts every
answer that lets a caller past a boundary.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.systems.security.conftest import add_user, bearer, client_for, secure_settings

SENSOR = "https://uri.etsi.org/ngsi-ld/default-context/Sensor"
CITY = "410100"
COUNTIES = ("410102", "410105", "410122")
OTHER_CITY = "410200"
TENANTS = (CITY, *COUNTIES, OTHER_CITY)


def entity(entity_id: str) -> dict[str, Any]:
    return {"id": entity_id, "type": "Sensor", "temperature": {"type": "Property", "value": 21.5}}


async def test_the_broker_refuses_anonymous_writes_and_reads(sclient: httpx.AsyncClient) -> None:
    created = await sclient.post("/ngsi-ld/v1/entities", json=entity("urn:ngsi-ld:Sensor:anon"))
    assert created.status_code == 401
    assert created.json()["status"] == 401
    assert (await sclient.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Sensor:anon")).status_code == 401
    assert (await sclient.post("/ngsi-ld/v1/entityOperations/upsert", json=[])).status_code == 401
    assert (await sclient.get("/api/v1/system/status")).status_code == 401, "applications' routes too"
    assert (await sclient.get("/api/v1/tenants")).status_code == 401
    assert (await sclient.get("/metrics")).status_code == 401
    assert (await sclient.get("/readyz")).status_code == 200


async def test_roles_decide_reads_and_writes(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    operator = await bearer(sclient, await add_user(secure_app, "410102", [("410102", "operator")]))
    viewer = await bearer(sclient, await add_user(secure_app, "410102", [("410102", "viewer")]))
    auditor = await bearer(sclient, await add_user(secure_app, "410102", [("410102", "auditor")]))
    county = {"NGSILD-Tenant": "410102"}
    created = await sclient.post(
        "/ngsi-ld/v1/entities", json=entity("urn:ngsi-ld:Sensor:a"), headers=operator | county
    )
    assert created.status_code == 201, created.text
    assert (
        await sclient.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Sensor:a", headers=viewer | county)
    ).status_code == 200
    # a POST that only reads is a read
    query = await sclient.post(
        "/ngsi-ld/v1/entityOperations/query",
        json={"type": "Query", "entities": [{"type": "Sensor"}]},
        headers=viewer | county,
    )
    assert query.status_code == 200, query.text
    denied = await sclient.patch(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Sensor:a/attrs",
        json={"temperature": {"type": "Property", "value": 1}},
        headers=viewer | county,
    )
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/json"  # NGSI-LD answers ProblemDetails as JSON
    assert denied.json()["type"] == "urn:cityhub:problem:forbidden"
    assert (
        await sclient.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Sensor:a", headers=auditor | county)
    ).status_code == 403
    # platform-wide operations: tenants are managed by platform administrators only
    assert (
        await sclient.post("/api/v1/tenants", json={"code": "410103"}, headers=operator)
    ).status_code == 403
    assert (await sclient.get("/api/v1/tenants", headers=viewer)).status_code == 200
    assert (await sclient.get("/metrics", headers=operator)).status_code == 200
    assert (await sclient.get("/metrics", headers=viewer)).status_code == 403


async def test_a_refusal_does_not_tell_whether_the_object_exists(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    owner = await bearer(sclient, await add_user(secure_app, "410105", [("410105", "operator")]))
    stranger = await bearer(sclient, await add_user(secure_app, "410102", [("410102", "operator")]))
    other = {"NGSILD-Tenant": "410105"}
    await sclient.post("/ngsi-ld/v1/entities", json=entity("urn:ngsi-ld:Sensor:real"), headers=owner | other)
    answers = []
    for entity_id in ("urn:ngsi-ld:Sensor:real", "urn:ngsi-ld:Sensor:never"):
        response = await sclient.get(f"/ngsi-ld/v1/entities/{entity_id}", headers=stranger | other)
        assert response.status_code == 403
        body = response.json()
        body.pop("instance")
        answers.append(body)
    assert answers[0] == answers[1]
    # a tenant that does not exist is refused the same way as one that does
    for tenant in ("410105", "419999", "urn:ngsi-ld:tenant:x"):
        response = await sclient.get("/ngsi-ld/v1/types", headers=stranger | {"NGSILD-Tenant": tenant})
        assert response.status_code == 403
        assert tenant in response.json()["detail"]
    # inside its own tenant, the stranger finds nothing of the other's
    missing = await sclient.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Sensor:real", headers=stranger | {"NGSILD-Tenant": "410102"}
    )
    assert missing.status_code == 404


async def test_city_roles_reach_counties_only_by_policy(database_url: str) -> None:
    for cascade, expected in ((True, 200), (False, 403)):
        app = __import__("cityhub.app", fromlist=["create_app"]).create_app(
            secure_settings(database_url, auth_city_sees_counties=cascade)
        )
        async with app.router.lifespan_context(app), client_for(app) as http:
            from cityhub.hub.tenancy.service import ensure_tenant_with_ancestors

            async with app.state.hub.sessions() as session, session.begin():
                await ensure_tenant_with_ancestors(session, "410102")
            city = await bearer(http, await add_user(app, CITY, [(CITY, "viewer")]))
            county = await bearer(http, await add_user(app, "410102", [("410102", "viewer")]))
            seen = await http.get("/ngsi-ld/v1/types", headers=city | {"NGSILD-Tenant": "410102"})
            assert seen.status_code == expected
            # never upwards: a county's role does not reach its city
            assert (
                await http.get("/ngsi-ld/v1/types", headers=county | {"NGSILD-Tenant": CITY})
            ).status_code == 403


class Oracle:
    """Who may do what, from the rules as the issue states them: a county user sees their county;
    a city user sees the city and its counties; readers read, operators read and write."""

    def __init__(self) -> None:
        self.grants: dict[str, tuple[str, str]] = {}  # user → (tenant, role)
        self.entities: dict[str, set[str]] = {tenant: set() for tenant in TENANTS}

    def reaches(self, user: str, tenant: str) -> bool:
        home, _ = self.grants[user]
        if home == tenant:
            return True
        return home == CITY and tenant in COUNTIES

    def may(self, user: str, tenant: str, operation: str) -> bool:
        _, role = self.grants[user]
        if not self.reaches(user, tenant):
            return False
        return role == "operator" or (role == "viewer" and operation == "read")


async def test_no_leak_across_boundaries_in_random_combinations(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    rng = random.Random(20261121)
    oracle = Oracle()
    headers: dict[str, dict[str, str]] = {}
    homes = [CITY, CITY, *COUNTIES, *COUNTIES, OTHER_CITY]
    for index, home in enumerate(homes):
        role = "operator" if index % 2 == 0 else "viewer"
        account = await add_user(secure_app, home, [(home, role)])
        oracle.grants[account.username] = (home, role)
        headers[account.username] = await bearer(sclient, account)
    admin = await add_user(secure_app, CITY, platform_admin=True, totp=True)
    admin_headers = await bearer(sclient, admin)
    for tenant in TENANTS:
        for number in range(4):
            entity_id = f"urn:ngsi-ld:Sensor:{tenant}-{number}"
            response = await sclient.post(
                "/ngsi-ld/v1/entities",
                json=entity(entity_id),
                headers=admin_headers | {"NGSILD-Tenant": tenant},
            )
            assert response.status_code == 201, response.text
            oracle.entities[tenant].add(entity_id)
    every_id = [*sorted(set().union(*oracle.entities.values())), "urn:ngsi-ld:Sensor:none"]
    users = sorted(oracle.grants)
    leaks: list[str] = []
    mistakes: list[str] = []
    created = 0
    for attempt in range(2500):
        user = rng.choice(users)
        tenant = rng.choice(TENANTS)
        operation = rng.choice(("read", "read", "update", "create"))
        target = rng.choice(every_id)
        request_headers = headers[user] | {"NGSILD-Tenant": tenant}
        if operation == "read":
            response = await sclient.get(f"/ngsi-ld/v1/entities/{target}", headers=request_headers)
            expected = (
                (200 if target in oracle.entities[tenant] else 404)
                if oracle.may(user, tenant, "read")
                else 403
            )
        elif operation == "update":
            response = await sclient.patch(
                f"/ngsi-ld/v1/entities/{target}/attrs",
                json={"temperature": {"type": "Property", "value": attempt}},
                headers=request_headers,
            )
            expected = (
                (204 if target in oracle.entities[tenant] else 404)
                if oracle.may(user, tenant, "write")
                else 403
            )
        else:
            target = f"urn:ngsi-ld:Sensor:new-{attempt}"
            response = await sclient.post(
                "/ngsi-ld/v1/entities", json=entity(target), headers=request_headers
            )
            expected = 201 if oracle.may(user, tenant, "write") else 403
            if response.status_code == 201:
                oracle.entities[tenant].add(target)
                created += 1
        if response.status_code < 400 and expected == 403:
            leaks.append(f"{user} {operation} {target} in {tenant}: {response.status_code}")
        elif response.status_code != expected:
            mistakes.append(
                f"{user} {operation} {target} in {tenant}: {response.status_code}, expected {expected}"
            )
        if response.status_code == 403:
            body = response.json()
            assert body.pop("instance") == response.request.url.path  # the caller's own path
            assert target not in str(body), "a refusal names no object"
    assert leaks == []
    assert mistakes == []
    assert created > 50  # the combinations did include allowed writes


@pytest.mark.parametrize("tenant", ["urn:ngsi-ld:tenant:free-name", "410102"])
async def test_platform_admins_reach_every_tenant(
    secure_app: FastAPI, sclient: httpx.AsyncClient, tenant: str
) -> None:
    admin = await bearer(sclient, await add_user(secure_app, CITY, platform_admin=True, totp=True))
    created = await sclient.post(
        "/ngsi-ld/v1/entities", json=entity("urn:ngsi-ld:Sensor:x"), headers=admin | {"NGSILD-Tenant": tenant}
    )
    assert created.status_code == 201, created.text


async def test_the_api_description_says_which_operations_need_a_token(sclient: httpx.AsyncClient) -> None:
    schema = (await sclient.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/ngsi-ld/v1/entities/{entity_id}"]["get"]["security"] == [{"bearer": []}]
    assert schema["paths"]["/api/v1/system/status"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/api/v1/auth/token"]["post"]
    assert "security" not in schema["paths"]["/healthz"]["get"]


async def test_out_of_range_paging_is_a_bad_request(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    """Found by schemathesis: an offset past SQLite's integers was a 500."""
    admin = await bearer(sclient, await add_user(secure_app, CITY, platform_admin=True, totp=True))
    for path, parameter in (
        ("/api/v1/users", "offset"),
        ("/api/v1/tenants", "offset"),
        ("/api/v1/audit/records", "after"),
    ):
        response = await sclient.get(path, params={parameter: 2**70}, headers=admin)
        assert response.status_code == 400, (path, response.text)
        assert (await sclient.get(path, params={parameter: 3}, headers=admin)).status_code == 200


async def test_tenant_administrators_cannot_touch_platform_administrators(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    chief = await add_user(secure_app, CITY, platform_admin=True, totp=True)
    city_admin = await bearer(sclient, await add_user(secure_app, CITY, [(CITY, "admin")], totp=True))
    for method, path, body in (
        ("PATCH", f"/api/v1/users/{chief.user.id}", {"active": False}),
        ("POST", f"/api/v1/users/{chief.user.id}/revoke-tokens", None),
        ("POST", f"/api/v1/users/{chief.user.id}/grants", {"role": "viewer"}),
        ("DELETE", f"/api/v1/users/{chief.user.id}/grants/{CITY}/admin", None),
    ):
        response = await sclient.request(method, path, json=body, headers=city_admin)
        assert response.status_code == 403, (method, path, response.text)
    # an ordinary user of the same tenant is theirs to manage
    clerk = await add_user(secure_app, CITY, [(CITY, "viewer")])
    granted = await sclient.post(
        f"/api/v1/users/{clerk.user.id}/grants", json={"role": "operator"}, headers=city_admin
    )
    assert granted.status_code == 201, granted.text
    # and a grant never reaches above the user's home, nor where the granter has no say
    county_clerk = await add_user(secure_app, "410102", [("410102", "viewer")])
    county_headers = city_admin | {"NGSILD-Tenant": "410102"}
    upwards = await sclient.post(
        f"/api/v1/users/{county_clerk.user.id}/grants",
        json={"role": "viewer", "tenant_code": CITY},
        headers=county_headers,
    )
    assert upwards.status_code == 400
    elsewhere = await sclient.post(
        f"/api/v1/users/{clerk.user.id}/grants",
        json={"role": "viewer", "tenant_code": OTHER_CITY},
        headers=city_admin,
    )
    assert elsewhere.status_code == 403
