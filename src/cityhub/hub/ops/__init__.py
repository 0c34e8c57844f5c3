"""Operating the hub: liveness, readiness, metrics, the installed applications and indicators."""
