"""The ``urban`` application: digital urban management 数字化城市管理 (GB/T 30428) on the hub's
case workflow: the component inventory, the supervision and command centres' queues, grid
statistics, department evaluation and the monthly report. It uses only ``cityhub.plugins``."""

from __future__ import annotations

from cityhub.apps.urban.app import UrbanApp

__all__ = ["UrbanApp"]
