"""Device ingestion: provisioning (FIWARE IoT Agent shape), HTTP and MQTT gateways for JSON and
UltraLight 2.0, commands to devices, dead letters. See docs/ingest.md."""
