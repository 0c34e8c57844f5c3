"""The one platform: tenancy, the context broker, ingestion, rules, dispatch, catalog."""
