"""The /jsonldContexts API: add, list, serve, delete and reload @context documents."""

from __future__ import annotations

from urllib.parse import quote

import httpx

BASE = "/ngsi-ld/v1/jsonldContexts"
DOCUMENT = {"@context": {"pm25": "https://smartdatamodels.org/dataModel.Environment/pm25"}}


async def add(client: httpx.AsyncClient) -> str:
    response = await client.post(BASE, json=DOCUMENT)
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location.startswith(f"{BASE}/")
    return location


async def test_add_serve_list_and_delete(client: httpx.AsyncClient) -> None:
    location = await add(client)
    served = await client.get(location)
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    hosted = (await client.get(BASE, params={"kind": "Hosted"})).json()
    assert len(hosted) == 1
    assert hosted[0].endswith(location)
    details = (await client.get(BASE, params={"details": "true"})).json()
    mine = next(d for d in details if d["URL"].endswith(location))
    assert mine["kind"] == "Hosted"
    assert mine["localId"] == location.rsplit("/", 1)[1]
    one = (await client.get(location, params={"details": "true"})).json()
    assert one["URL"] == mine["URL"]
    assert (await client.delete(location)).status_code == 204
    assert (await client.get(location)).status_code == 404
    assert (await client.delete(location)).status_code == 404


async def test_a_hosted_context_is_usable_in_requests(client: httpx.AsyncClient) -> None:
    location = await add(client)
    url = f"http://hub{location}"
    link = f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    entity = {"id": "urn:ngsi-ld:AirQualityObserved:ctx-1", "type": "AirQualityObserved", "pm25": 12}
    created = await client.post("/ngsi-ld/v1/entities", json=entity, headers={"Link": link})
    assert created.status_code == 201, created.text
    got = (await client.get(f"/ngsi-ld/v1/entities/{entity['id']}")).json()
    assert "https://smartdatamodels.org/dataModel.Environment/pm25" in got
    uses = (await client.get(location, params={"details": "true"})).json()
    assert uses["numberOfHits"] >= 1


async def test_core_context_is_cached_and_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    cached = (await client.get(BASE, params={"kind": "Cached"})).json()
    core = next(url for url in cached if "ngsi-ld-core-context" in url)
    served = await client.get(f"{BASE}/{quote(core, safe='')}")
    assert "@context" in served.json()
    refused = await client.delete(f"{BASE}/{quote(core, safe='')}")
    assert refused.status_code == 400


async def test_bad_requests(client: httpx.AsyncClient) -> None:
    assert (await client.get(BASE, params={"kind": "Other"})).status_code == 400
    assert (await client.get(BASE, params={"details": "maybe"})).status_code == 400
    assert (await client.post(BASE, json={"no": "context"})).status_code == 400
    assert (await client.post(BASE, json=[1, 2])).status_code == 400
    bad = await client.post(BASE, content=b"{", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert (await client.get(f"{BASE}/nothing-here")).status_code == 404
    assert (await client.delete(f"{BASE}/nothing-here")).status_code == 404
    # reloading names a context to fetch again: an unknown one is the request's fault
    unknown = await client.delete(f"{BASE}/nothing-here", params={"reload": "true"})
    assert unknown.status_code == 400
    assert unknown.json()["type"].endswith("/BadRequestData")
    location = await add(client)
    # only cached contexts can be reloaded
    assert (await client.delete(location, params={"reload": "true"})).status_code == 400


async def test_an_array_context_is_implicitly_created(client: httpx.AsyncClient) -> None:
    """A subscription written with an array @context names an ImplicitlyCreated context as its
    jsonldContext; that context is listed, served, usable in requests, and can be deleted but not
    reloaded. The same array always gets the same URL."""
    location = await add(client)
    subscription = {
        "id": "urn:ngsi-ld:Subscription:implicit",
        "type": "Subscription",
        "entities": [{"type": "AirQualityObserved"}],
        "watchedAttributes": ["pm25"],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/unused"}},
        "@context": [
            f"http://hub{location}",
            {"no2": "https://smartdatamodels.org/dataModel.Environment/no2"},
        ],
    }
    created = await client.post(
        "/ngsi-ld/v1/subscriptions",
        content=__import__("orjson").dumps(subscription),
        headers={"content-type": "application/ld+json"},
    )
    assert created.status_code == 201, created.text
    shown = (await client.get("/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:implicit")).json()
    implicit = shown["jsonldContext"]
    assert "/jsonldContexts/implicit-" in implicit
    listed = (await client.get(BASE, params={"kind": "ImplicitlyCreated", "details": "true"})).json()
    assert [entry["URL"] for entry in listed] == [implicit]
    assert listed[0]["kind"] == "ImplicitlyCreated"
    local = f"{BASE}/{implicit.rsplit('/', 1)[1]}"
    assert (await client.get(local)).json() == {"@context": subscription["@context"]}
    # usable as a Link: both of its parts are in force
    entity = {"id": "urn:ngsi-ld:AirQualityObserved:1", "type": "AirQualityObserved", "pm25": 30, "no2": 40}
    link = f'<{implicit}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    assert (await client.post("/ngsi-ld/v1/entities", json=entity, headers={"link": link})).status_code == 201
    stored = (await client.get(f"/ngsi-ld/v1/entities/{entity['id']}")).json()
    assert "https://smartdatamodels.org/dataModel.Environment/no2" in stored
    reload = await client.delete(local, params={"reload": "true"})
    assert reload.status_code == 400
    assert (await client.delete(local)).status_code == 204
    again = (await client.get("/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:implicit")).json()
    assert again["jsonldContext"] == implicit  # made again, under the same name
