"""Background work of the security system: scheduled backups."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

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
        self._task: asyncio.Task[None] | None = None

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

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.run_once()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cityhub-backups")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
