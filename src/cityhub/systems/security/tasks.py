"""Background work of the security system: scheduled backups."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from cityhub.kit.periodic import Periodic
from cityhub.systems.security import backup

log = logging.getLogger(__name__)


class BackupSchedule:
    """Backs the database up every ``interval`` seconds into ``directory``, keeping the ``keep``
    newest files. A failed backup is logged and tried again at the next interval."""

    def __init__(self, url: str, directory: Path, *, interval: float, keep: int) -> None:
        self.url = url
        self.directory = directory
        self.interval = interval
        self.keep = keep
        self.made = 0
        self.failed = 0
        self._periodic = Periodic("scheduled backup", interval, self.run_once)

    async def run_once(self) -> Path | None:
        try:
            path = await asyncio.to_thread(backup.backup, self.url, self.directory)
            removed = await asyncio.to_thread(backup.prune, self.directory, self.keep)
        except Exception:
            self.failed += 1
            log.exception("scheduled backup into %s failed", self.directory)
            return None
        self.made += 1
        log.info("scheduled backup %s written, %d old one(s) removed", path.name, len(removed))
        return path

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
