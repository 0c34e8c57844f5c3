// What the cockpit asks the hub for when it opens.

import { api, layersQuery } from "./api";
import { layers, mapProperties } from "./layers";

export const HEALTH = "/api/v1/ingest/health";
export const INDICATORS = "/api/v1/indicators";

/** The cockpit's first requests (its map's layers, the KPI cards' two answers), asked for while
 *  the console starts, so they travel beside the sign-in check instead of after it. */
export function prefetchCockpit(token: string | null, tenant: string | null): void {
  const defs = layers();
  api.prefetch(...layersQuery(defs.map((def) => def.entityType), mapProperties(defs)), token, tenant);
  api.prefetch(HEALTH, undefined, token, tenant);
  api.prefetch(INDICATORS, undefined, token, tenant);
}
