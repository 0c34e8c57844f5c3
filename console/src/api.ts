// The hub's APIs as the console calls them: every request carries the user's token and the
// chosen tenant (NGSILD-Tenant), so the hub's one guard decides what the console may see.

export const TENANT_HEADER = "NGSILD-Tenant";
/** The broker answers at most this many entities a page. */
export const PAGE = 1000;

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  mfa_required?: boolean;
  [key: string]: unknown;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problem.detail || problem.title || `HTTP ${status}`);
  }
}

export interface TokenResponse {
  access_token: string;
  expires_in: number;
  refresh_token?: string | null;
  mfa: boolean;
}

export interface Feature {
  type: "Feature";
  id?: string | number;
  geometry: { type: string; coordinates: unknown } | null;
  properties: Record<string, unknown>;
}

export interface FeatureCollection {
  type: "FeatureCollection";
  features: Feature[];
}

/** A change from the live feed (/api/v1/console/stream). */
export interface LiveChange {
  op: "create" | "update" | "delete";
  id: string;
  type: string;
  entity: Record<string, unknown> | null;
}

type Fetch = typeof fetch;
type Params = Record<string, string | number | undefined>;

/** The path and parameters of ``ApiClient.layers``' one request (also what a prefetch asks for). */
export function layersQuery(types: readonly string[], properties?: readonly string[]): [string, Params] {
  const attrs = properties === undefined ? undefined : [...new Set(properties)].join(",");
  return ["/api/v1/console/features", { type: [...new Set(types)].join(","), attrs: attrs || undefined }];
}

export class ApiClient {
  token: string | null = null;
  tenant: string | null = null;
  /** Called when the hub answers 401 to a request that carried a token (expired, revoked). */
  onUnauthorized: (() => void) | null = null;
  /** GETs asked for ahead of the page that needs them (``prefetch``), by URL, token and tenant. */
  private readonly early = new Map<string, Promise<Response | null>>();

  constructor(
    readonly base = "",
    private readonly fetcher: Fetch = (...args) => fetch(...args),
  ) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { Accept: "application/json", ...extra };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (this.tenant) headers[TENANT_HEADER] = this.tenant;
    return headers;
  }

  url(path: string, params?: Record<string, string | number | undefined>): string {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params ?? {})) {
      if (value !== undefined) query.set(key, String(value));
    }
    const text = query.toString();
    return `${this.base}${path}${text ? `?${text}` : ""}`;
  }

  /** Ask for a GET now, as ``token`` and ``tenant`` would (what the session will most likely hold),
   *  while the console still starts: the page that opens first gets its data without waiting
   *  for the sign-in check and its own mount. The answer is used once, by a ``get`` of the same
   *  path and parameters with the same token and tenant; any other answer (an error, another
   *  tenant) is dropped and that ``get`` asks again, so nothing changes but the time. */
  prefetch(path: string, params: Params | undefined, token: string | null, tenant: string | null): void {
    const url = this.url(path, params);
    const key = `${url}\n${token ?? ""}\n${tenant ?? ""}`;
    if (this.early.has(key)) return;
    const headers: Record<string, string> = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (tenant) headers[TENANT_HEADER] = tenant;
    const answer = this.fetcher(url, { headers }).then(
      (response) => (response.ok ? response : null),
      () => null,
    );
    this.early.set(key, answer);
    // not asked for by then: the page went elsewhere (another tenant, the login)
    setTimeout(() => this.early.delete(key), 60_000);
  }

  private async prefetched(url: string): Promise<Response | null> {
    const key = `${url}\n${this.token ?? ""}\n${this.tenant ?? ""}`;
    const answer = this.early.get(key);
    if (answer === undefined) return null;
    this.early.delete(key);
    return answer;
  }

  async request(path: string, init: RequestInit & { params?: Record<string, string | number | undefined> } = {}): Promise<Response> {
    const { params, headers, ...rest } = init;
    const url = this.url(path, params);
    const plain = (rest.method ?? "GET") === "GET" && headers === undefined && rest.signal === undefined;
    const early = plain ? await this.prefetched(url) : null;
    if (early) return early;
    const response = await this.fetcher(url, {
      ...rest,
      headers: this.headers((headers as Record<string, string>) ?? {}),
    });
    if (!response.ok) {
      let problem: Problem = { status: response.status };
      try {
        problem = { ...problem, ...(await response.json()) };
      } catch {
        // not a problem-details body
      }
      if (response.status === 401 && this.token && this.onUnauthorized) this.onUnauthorized();
      throw new ApiError(response.status, problem);
    }
    return response;
  }

  async get<T>(path: string, params?: Record<string, string | number | undefined>, accept?: string): Promise<T> {
    const response = await this.request(path, accept ? { params, headers: { Accept: accept } } : { params });
    return (await response.json()) as T;
  }

  /** POST a JSON body (none when ``body`` is undefined) and read the JSON answer. */
  async post<T>(path: string, body?: unknown): Promise<T> {
    const response = await this.request(path, {
      method: "POST",
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
    });
    return (await response.json()) as T;
  }

  /** Listen to any server-sent-events endpoint of the hub (with the token and tenant headers);
   *  resolves when ``signal`` aborts or the stream ends. */
  async events(path: string, emit: (event: string, data: string) => void, signal: AbortSignal, open?: () => void): Promise<void> {
    const response = await this.request(path, { headers: { Accept: "text/event-stream" }, signal });
    if (!response.body) return;
    open?.();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new EventStreamParser(emit);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.push(value);
    }
  }

  /** OAuth 2 password grant; ``totp`` once the account has a second factor. */
  async login(username: string, password: string, totp?: string): Promise<TokenResponse> {
    const form = new URLSearchParams({ grant_type: "password", username, password });
    if (totp) form.set("totp", totp);
    const response = await this.request("/api/v1/auth/token", {
      method: "POST",
      body: form,
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    });
    return (await response.json()) as TokenResponse;
  }

  /** Entities of one type as GeoJSON (keyValues properties), page after page up to ``max``. */
  async features(type: string, max = 20000): Promise<FeatureCollection> {
    const features: Feature[] = [];
    for (let offset = 0; offset < max; offset += PAGE) {
      const page = await this.get<FeatureCollection>(
        "/ngsi-ld/v1/entities",
        { type, options: "keyValues", limit: Math.min(PAGE, max - offset), offset },
        "application/geo+json",
      );
      features.push(...page.features);
      if (page.features.length < PAGE) break;
    }
    return { type: "FeatureCollection", features };
  }

  /** Map layers in one request (/api/v1/console/features): the entities of ``types`` with their
   *  geometry, their ``type`` and only the ``properties`` named (keyValues; undefined: all). */
  async layers(types: readonly string[], properties?: readonly string[]): Promise<FeatureCollection & { truncated?: boolean }> {
    return this.get(...layersQuery(types, properties));
  }

  /** How many entities of ``type`` the tenant has. */
  async count(type: string): Promise<number> {
    const response = await this.request("/ngsi-ld/v1/entities", { params: { type, limit: 0, count: "true" } });
    return Number(response.headers.get("NGSILD-Results-Count") ?? 0);
  }

  /** Listen to the live feed; resolves when ``signal`` aborts or the stream ends. Uses fetch,
   *  not EventSource, so the request carries the token and tenant headers like any other. */
  async stream(
    types: string[],
    handlers: { change: (change: LiveChange) => void; resync: () => void; open?: () => void },
    signal: AbortSignal,
  ): Promise<void> {
    const response = await this.request("/api/v1/console/stream", {
      params: { types: types.join(",") || undefined },
      headers: { Accept: "text/event-stream" },
      signal,
    });
    if (!response.body) return;
    handlers.open?.();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new EventStreamParser((event, data) => {
      if (event === "change") handlers.change(JSON.parse(data) as LiveChange);
      else if (event === "resync") handlers.resync();
    });
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.push(value);
    }
  }
}

/** Server-sent events (text/event-stream) parsed from chunks of text. */
export class EventStreamParser {
  private buffer = "";
  private event = "message";
  private data: string[] = [];

  constructor(private readonly emit: (event: string, data: string) => void) {}

  push(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data.length) this.emit(this.event, this.data.join("\n"));
      this.event = "message";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
  }
}

/** A normalized NGSI-LD entity (a live change's) as GeoJSON keyValues properties and geometry. */
export function featureOf(entity: Record<string, unknown>): Feature {
  const properties: Record<string, unknown> = { id: entity.id, type: entity.type };
  let geometry: Feature["geometry"] = null;
  for (const [name, attr] of Object.entries(entity)) {
    if (name === "id" || name === "type" || name === "@context") continue;
    const first = Array.isArray(attr) ? attr[0] : attr;
    if (first && typeof first === "object" && "type" in first) {
      const kind = (first as Record<string, unknown>).type;
      const value =
        kind === "Relationship" ? (first as Record<string, unknown>).object : (first as Record<string, unknown>).value;
      if (name === "location" && kind === "GeoProperty") geometry = value as Feature["geometry"];
      else properties[name] = value;
    } else {
      properties[name] = attr;
    }
  }
  return { type: "Feature", id: String(entity.id), geometry, properties };
}

export const api = new ApiClient();
