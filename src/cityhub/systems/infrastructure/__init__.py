"""The information-infrastructure system: network resources (5G sites, NB-IoT cells, fibre access
points) and their coverage. Device registry and health live with the gateways in ``hub/ingest``."""
