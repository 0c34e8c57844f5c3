"""The ``system`` application: platform status per tenant.

The smallest useful application, and the one that keeps the plug-in path honest: it is loaded
through its entry point like any third-party app and uses only ``cityhub.plugins``.
"""

from __future__ import annotations

from cityhub.apps.system.app import SystemApp

__all__ = ["SystemApp"]
