// What the cockpit asks the hub for when it opens.

import { api, layersQuery } from "./api";
import { layers, mapProperties } from "./layers";

export const HEALTH = "/api/v1/ingest/health";
export const INDICATORS = "/api/v1/indicators";

/** The cockpit's map layers (what its first load waits for longest), asked for while the console
 *  starts, so the request travels beside the sign-in check instead of after it. The KPI cards ask
 *  when the page is built: their answers are quick or, for a large tenant's indicators, work the
 *  hub had better not do while it serves the page's start. */
export function prefetchCockpit(token: string | null, tenant: string | null): void {
  const defs = layers();
  api.prefetch(...layersQuery(defs.map((def) => def.entityType), mapProperties(defs)), token, tenant);
}
