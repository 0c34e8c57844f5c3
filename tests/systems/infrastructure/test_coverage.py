"""Network resources as entities, and coverage: of a point, and of the provisioned devices."""

from __future__ import annotations

import httpx

from cityhub.kit.geo import haversine_m
from tests.hub.ingest.support import provision

TENANT = {"NGSILD-Tenant": "smartcity"}
CENTRE = (113.6653, 34.7566)  # Zhengzhou, Jinshui


def site(entity_id: str, entity_type: str, lon: float, lat: float, radius: float) -> dict:
    return {
        "id": entity_id,
        "type": entity_type,
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        "coverageRadius": {"type": "Property", "value": radius, "unitCode": "MTR"},
        "operator": {"type": "Property", "value": "China Mobile"},
    }


async def test_coverage_of_points_and_devices(client: httpx.AsyncClient) -> None:
    lon, lat = CENTRE
    for body in (
        site("urn:ngsi-ld:FiveGSite:jinshui-1", "FiveGSite", lon, lat, 500),
        site("urn:ngsi-ld:FiveGSite:far", "FiveGSite", lon + 0.5, lat, 800),
        site("urn:ngsi-ld:NBIoTCell:jinshui-9", "NBIoTCell", lon + 0.01, lat, 2000),
        site("urn:ngsi-ld:FibreAccessPoint:zz-12", "FibreAccessPoint", lon, lat + 0.001, 150),
    ):
        response = await client.post("/ngsi-ld/v1/entities", json=body, headers=TENANT)
        assert response.status_code == 201, response.text
    near = lon + 0.003  # about 275 m east of the 5G site
    got = (
        await client.get("/api/v1/infrastructure/coverage", params={"lon": near, "lat": lat}, headers=TENANT)
    ).json()
    assert got["covered"] == {"5G": True, "NB-IoT": True, "fibre": False}
    assert [item["id"] for item in got["coveredBy"]] == [
        "urn:ngsi-ld:FiveGSite:jinshui-1",
        "urn:ngsi-ld:NBIoTCell:jinshui-9",
    ]
    assert got["coveredBy"][0]["distance"] == round(haversine_m(lon, lat, near, lat), 1)
    only = (
        await client.get(
            "/api/v1/infrastructure/coverage",
            params={"lon": lon, "lat": lat, "kind": "fibre"},
            headers=TENANT,
        )
    ).json()
    assert only["covered"] == {"fibre": True}
    bad = await client.get(
        "/api/v1/infrastructure/coverage", params={"lon": lon, "lat": lat, "kind": "6G"}, headers=TENANT
    )
    assert bad.status_code == 400
    # devices: one in the centre, one 5 km west, one without a position
    await provision(
        client,
        devices=[
            {
                "device_id": "air-001",
                "static_attributes": [{"name": "location", "type": "geo:point", "value": f"{lat}, {lon}"}],
            },
            {
                "device_id": "air-002",
                "static_attributes": [
                    {"name": "location", "type": "geo:point", "value": f"{lat}, {lon - 0.055}"}
                ],
            },
            {"device_id": "air-003"},
        ],
    )
    devices = (await client.get("/api/v1/infrastructure/coverage/devices", headers=TENANT)).json()
    assert devices["located"] == 2
    assert devices["unlocated"] == 1
    by_kind = {item["kind"]: item for item in devices["byKind"]}
    assert by_kind["5G"]["covered"] == 1
    assert by_kind["5G"]["uncovered"] == ["air-002"]
    assert by_kind["5G"]["ratio"] == 0.5
    assert by_kind["fibre"]["covered"] == 1
    assert by_kind["NB-IoT"]["covered"] == 1
