// Who is signed in, in which tenant: the state every page reads.

import { reactive } from "vue";
import { ApiError, api } from "./api";

export interface Grant {
  tenant_code: string;
  role: string;
}

export interface Me {
  username: string;
  display_name: string | null;
  tenant_code: string;
  platform_admin: boolean;
  mfa: boolean;
  grants: Grant[];
  permissions: string[];
}

export interface Tenant {
  code: string;
  name: string;
  name_en: string | null;
  level: string;
  parent_code: string | null;
}

const TOKEN = "cityhub.token";
const TENANT = "cityhub.tenant";

export const session = reactive({
  /** "on": the hub wants a token; "off": CITYHUB_AUTH_MODE=off, no login at all. */
  authMode: "unknown" as "unknown" | "on" | "off",
  me: null as Me | null,
  tenants: [] as Tenant[],
  tenant: null as string | null,
  /** Bumped on each tenant switch, so pages reload their data. */
  generation: 0,
});

/** Tenants the switcher offers: where the user holds a role, and a city role's districts below. */
export function visibleTenants(all: Tenant[], me: Me | null): Tenant[] {
  if (me === null || me.platform_admin) {
    const city = all.find((t) => t.level === "city") ?? all[0];
    return city ? all.filter((t) => t.code === city.code || t.parent_code === city.code) : [];
  }
  const held = new Set(me.grants.map((g) => g.tenant_code));
  return all.filter((t) => held.has(t.code) || (t.parent_code !== null && held.has(t.parent_code)));
}

export function can(permission: string): boolean {
  if (session.authMode === "off") return true;
  return session.me?.permissions.includes(permission) ?? false;
}

async function loadMe(): Promise<void> {
  session.me = await api.get<Me>("/api/v1/auth/me");
}

async function loadTenants(): Promise<void> {
  const page = await api.get<{ items: Tenant[] }>("/api/v1/tenants", { limit: 1000 });
  session.tenants = visibleTenants(page.items, session.me);
  const stored = sessionStorage.getItem(TENANT);
  const choice =
    session.tenants.find((t) => t.code === stored) ??
    session.tenants.find((t) => t.code === session.me?.tenant_code) ??
    session.tenants[0];
  session.tenant = choice ? choice.code : null;
  api.tenant = session.tenant;
  // kept for the next load of the page, which can then ask for its data at once (prefetch)
  if (session.tenant) sessionStorage.setItem(TENANT, session.tenant);
}

/** The token and tenant this browser tab last used, before the session has started. */
export function storedSession(): { token: string | null; tenant: string | null } {
  return { token: sessionStorage.getItem(TOKEN), tenant: sessionStorage.getItem(TENANT) };
}

/** Find out whether the hub wants a login and, with a stored token, who we are. */
export async function start(): Promise<void> {
  api.token = sessionStorage.getItem(TOKEN);
  api.onUnauthorized = () => logout();
  try {
    await loadMe();
    session.authMode = "on";
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      session.authMode = "off"; // the hub has no identity API: access control is off
    } else if (error instanceof ApiError && error.status === 401) {
      session.authMode = "on";
      api.token = null;
      sessionStorage.removeItem(TOKEN);
      return;
    } else {
      throw error;
    }
  }
  await loadTenants();
}

export function signedIn(): boolean {
  return session.authMode === "off" || session.me !== null;
}

export async function login(username: string, password: string, totp?: string): Promise<void> {
  const token = await api.login(username, password, totp);
  api.token = token.access_token;
  sessionStorage.setItem(TOKEN, token.access_token);
  await loadMe();
  await loadTenants();
}

export function logout(): void {
  api.token = null;
  session.me = null;
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(TENANT);
  if (location.pathname !== "/login") location.assign("/login");
}

export async function switchTenant(code: string): Promise<void> {
  session.tenant = code;
  api.tenant = code;
  sessionStorage.setItem(TENANT, code);
  if (session.authMode === "on") await loadMe(); // permissions are per tenant
  session.generation += 1;
}
