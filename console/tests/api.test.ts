import { describe, expect, it } from "vitest";
import { ApiClient, ApiError, EventStreamParser, featureOf, layersQuery } from "../src/api";

interface Call { url: string; headers: Record<string, string>; init: RequestInit }

function recording(respond: (url: string) => Response = () => Response.json({ ok: true })) {
  const calls: Call[] = [];
  const fetcher = (async (input: RequestInfo | URL, init: RequestInit = {}) => {
    calls.push({ url: String(input), headers: init.headers as Record<string, string>, init });
    return respond(String(input));
  }) as typeof fetch;
  return { calls, client: new ApiClient("", fetcher) };
}

describe("API client", () => {
  it("sends the token and the chosen tenant on every request", async () => {
    const { calls, client } = recording();
    await client.get("/api/v1/ingest/health");
    expect(calls[0].headers.Authorization).toBeUndefined();
    expect(calls[0].headers["NGSILD-Tenant"]).toBeUndefined();
    client.token = "t0k3n";
    client.tenant = "410102";
    await client.get("/ngsi-ld/v1/entities", { type: "AirQualityObserved", limit: 5, skipped: undefined });
    expect(calls[1].url).toBe("/ngsi-ld/v1/entities?type=AirQualityObserved&limit=5");
    expect(calls[1].headers).toMatchObject({ Authorization: "Bearer t0k3n", "NGSILD-Tenant": "410102" });
    client.tenant = "410105";
    await client.count("Device");
    expect(calls[2].headers["NGSILD-Tenant"]).toBe("410105");
  });

  it("turns problem details into errors and reports an expired token", async () => {
    let expired = 0;
    const { client } = recording(() => Response.json({ title: "Authentication required", detail: "the access token expired", status: 401 }, { status: 401 }));
    client.token = "old";
    client.onUnauthorized = () => (expired += 1);
    const error = (await client.get("/api/v1/auth/me").catch((e: unknown) => e)) as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(401);
    expect(error.message).toBe("the access token expired");
    expect(expired).toBe(1);
  });

  it("hands a prefetched answer once to the same request with the same token and tenant", async () => {
    let n = 0;
    const { calls, client } = recording(() => Response.json({ n: (n += 1) }));
    client.prefetch(...layersQuery(["Road", "Device", "Road"], ["name"]), "t0k3n", "410102");
    client.prefetch("/api/v1/indicators", undefined, "t0k3n", "410102");
    expect(calls).toHaveLength(2);
    expect(calls[0].url).toBe("/api/v1/console/features?type=Road%2CDevice&attrs=name");
    expect(calls[0].headers).toMatchObject({ Authorization: "Bearer t0k3n", "NGSILD-Tenant": "410102" });
    client.token = "t0k3n";
    client.tenant = "410102";
    expect(await client.layers(["Road", "Device"], ["name"])).toEqual({ n: 1 });
    expect(calls).toHaveLength(2); // the prefetched answer, not a new request
    expect(await client.layers(["Road", "Device"], ["name"])).toEqual({ n: 3 }); // used once only
    // another tenant than the prefetch's: asked again, the early answer is left alone
    client.tenant = "410105";
    expect(await client.get("/api/v1/indicators")).toEqual({ n: 4 });
    expect(calls[3].headers["NGSILD-Tenant"]).toBe("410105");
  });

  it("asks again when a prefetch failed, so the page sees the real answer", async () => {
    let expired = 0;
    let first = true;
    const { calls, client } = recording(() => {
      const answer = first ? Response.json({ status: 503 }, { status: 503 }) : Response.json({ title: "Authentication required", status: 401 }, { status: 401 });
      first = false;
      return answer;
    });
    client.prefetch("/api/v1/ingest/health", undefined, "old", "410102");
    client.token = "old";
    client.tenant = "410102";
    client.onUnauthorized = () => (expired += 1);
    const error = (await client.get("/api/v1/ingest/health").catch((e: unknown) => e)) as ApiError;
    expect(calls).toHaveLength(2);
    expect(error.status).toBe(401);
    expect(expired).toBe(1); // reported by the page's own request, not by the prefetch
  });

  it("signs in with the password grant and the one-time code", async () => {
    const { calls, client } = recording(() => Response.json({ access_token: "a", expires_in: 900, mfa: true }));
    const token = await client.login("chief", "secret", "123456");
    expect(token.access_token).toBe("a");
    const body = new URLSearchParams(String(calls[0].init.body));
    expect(Object.fromEntries(body)).toEqual({ grant_type: "password", username: "chief", password: "secret", totp: "123456" });
  });

  it("pages through GeoJSON features a thousand at a time", async () => {
    const { calls, client } = recording((url) => {
      const offset = Number(new URL(url, "http://hub").searchParams.get("offset"));
      const size = offset < 2000 ? 1000 : 7;
      return Response.json({ type: "FeatureCollection", features: Array.from({ length: size }, (_, i) => ({ type: "Feature", id: `e${offset + i}`, geometry: null, properties: {} })) });
    });
    const all = await client.features("Device");
    expect(all.features).toHaveLength(2007);
    expect(calls).toHaveLength(3);
    expect(calls[0].headers.Accept).toBe("application/geo+json");
  });

  it("fetches map layers in one request, with only the properties they name", async () => {
    const { calls, client } = recording(() => Response.json({ type: "FeatureCollection", features: [], truncated: false }));
    await client.layers(["AirQualityObserved", "Device", "AirQualityObserved"], ["airQualityIndex", "name", "airQualityIndex"]);
    await client.layers(["WasteContainer"]);
    expect(calls.map((call) => call.url)).toEqual([
      "/api/v1/console/features?type=AirQualityObserved%2CDevice&attrs=airQualityIndex%2Cname",
      "/api/v1/console/features?type=WasteContainer",
    ]);
  });
});

describe("server-sent events", () => {
  it("parses events split across chunks, ignoring comments", () => {
    const seen: [string, string][] = [];
    const parser = new EventStreamParser((event, data) => seen.push([event, data]));
    parser.push("retry: 3000\n: connected\n\nevent: change\ndata: {\"op\":");
    parser.push("\"create\"}\n\n: keep-alive\n\nevent: resync\r\ndata: {}\r\n\r\n");
    expect(seen).toEqual([
      ["change", '{"op":"create"}'],
      ["resync", "{}"],
    ]);
  });

  it("turns a normalized entity into a feature", () => {
    const feature = featureOf({
      id: "urn:ngsi-ld:Device:1",
      type: "Device",
      deviceState: { type: "Property", value: "online" },
      refRoad: { type: "Relationship", object: "urn:ngsi-ld:Road:1" },
      location: { type: "GeoProperty", value: { type: "Point", coordinates: [113.6, 34.7] } },
    });
    expect(feature.geometry).toEqual({ type: "Point", coordinates: [113.6, 34.7] });
    expect(feature.properties).toEqual({ id: "urn:ngsi-ld:Device:1", type: "Device", deviceState: "online", refRoad: "urn:ngsi-ld:Road:1" });
  });
});
