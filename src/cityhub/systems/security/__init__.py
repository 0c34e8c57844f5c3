"""Cybersecurity system: identity, access control, the audit chain and situational awareness."""
