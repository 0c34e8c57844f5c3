// Pages and the menu: a page is a route under the layout with meta.menu (its i18n key) and
// meta.permission (what the user needs in the current tenant). Later pages (alert centre, case
// centre, environment, traffic) are added the same way, with registerPage().

import { createRouter, createWebHistory, type RouteRecordRaw, type Router } from "vue-router";
import CockpitView from "./views/CockpitView.vue";
import LayoutView from "./views/LayoutView.vue";
import LoginView from "./views/LoginView.vue";
import { prefetchCockpit } from "./cockpit";
import { session, signedIn, start, storedSession } from "./session";

declare module "vue-router" {
  interface RouteMeta {
    public?: boolean;
    menu?: string;
    permission?: string;
    order?: number;
    /** Ask for the page's first data while the console starts, when it opens on this page. */
    prefetch?: (token: string | null, tenant: string | null) => void;
  }
}

export const LAYOUT = "layout";

export const pages: RouteRecordRaw[] = [
  { path: "cockpit", name: "cockpit", component: CockpitView, meta: { menu: "menu.cockpit", permission: "data:read", order: 10, prefetch: prefetchCockpit } },
  { path: "map", name: "map", component: () => import("./views/MapView.vue"), meta: { menu: "menu.map", permission: "data:read", order: 20 } },
  { path: "traffic", name: "traffic", component: () => import("./views/TrafficView.vue"), meta: { menu: "traffic.menu", permission: "data:read", order: 25 } },
  { path: "devices", name: "devices", component: () => import("./views/DevicesView.vue"), meta: { menu: "menu.devices", permission: "data:read", order: 30 } },
  { path: "environment", name: "environment", component: () => import("./views/EnvironmentView.vue"), meta: { menu: "environment.menu", permission: "data:read", order: 35 } },
  { path: "alerts", name: "alerts", component: () => import("./views/AlertsView.vue"), meta: { menu: "menu.alerts", permission: "data:read", order: 40 } },
  { path: "cases", name: "cases", component: () => import("./views/CasesView.vue"), meta: { menu: "menu.cases", permission: "data:read", order: 50 } },
];

export function createConsoleRouter(): Router {
  const router = createRouter({
    history: createWebHistory("/"),
    routes: [
      { path: "/login", name: "login", component: LoginView, meta: { public: true } },
      { path: "/", name: LAYOUT, component: LayoutView, redirect: "/cockpit", children: pages },
      { path: "/:unknown(.*)*", redirect: "/cockpit" },
    ],
  });
  router.beforeEach(async (to) => {
    if (session.authMode === "unknown") await start();
    if (to.meta.public) return session.authMode === "off" ? "/cockpit" : true;
    if (!signedIn()) return { name: "login", query: { next: to.fullPath } };
    return true;
  });
  return router;
}

/** Ask for the data of the page at ``path`` (following a redirect) with the tab's stored token and
 *  tenant, before the session starts; nothing for a tab without a stored tenant (its tenant is
 *  not known until the hub says which it may see). */
export function prefetchPage(router: Router, path: string): void {
  const { token, tenant } = storedSession();
  if (!tenant) return;
  let route = router.resolve(path);
  const redirect = route.matched[route.matched.length - 1]?.redirect;
  if (typeof redirect === "string") route = router.resolve(redirect);
  route.meta.prefetch?.(token, tenant);
}

/** Add a page to the console (and to the menu when it has meta.menu). */
export function registerPage(router: Router, page: RouteRecordRaw): void {
  router.addRoute(LAYOUT, page);
}
