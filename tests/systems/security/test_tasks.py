"""Scheduled backups made by the hub itself, with retention."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.systems.security.tasks import BackupSchedule


async def _until(condition, seconds: float = 60.0) -> None:
    """Wait for ``condition`` (a bound on a hang, not a speed requirement)."""
    for _ in range(int(seconds / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def test_the_hub_backs_up_on_schedule_and_keeps_the_newest(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    settings = Settings(
        env="test",
        database_url=database_url,
        instance_name="test",
        backup_dir=folder,
        backup_interval_hours=0.0003,  # about a second
        backup_keep=1,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        schedule = app.state.hub.backups
        assert isinstance(schedule, BackupSchedule)
        await _until(lambda: schedule.made >= 2)
    names = [p.name for p in folder.iterdir()]
    assert len(names) == 1
    assert names[0].startswith("cityhub-")
    assert schedule.failed == 0


async def test_a_failed_backup_is_counted_and_the_next_one_tried(database_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    schedule = BackupSchedule(database_url, blocker, interval=0.05, keep=2)
    assert await schedule.run_once() is None
    schedule.start()
    try:
        await _until(lambda: schedule.failed >= 3)
    finally:
        await schedule.stop()
    blocker.unlink()
    assert await schedule.run_once() is not None
    assert schedule.made == 1
