"""Tenants: administrative divisions (province → city → county) sharing one city hub."""
