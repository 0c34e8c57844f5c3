"""Backups and restores of the hub's database, and the fingerprints a restore drill compares.

SQLite is copied with SQLite's online backup API (a consistent copy while the hub keeps running);
PostgreSQL with ``pg_dump --format=custom`` and restored with ``pg_restore``. Files are named
``cityhub-<UTC time>.sqlite3`` or ``.pgdump`` so that ``--keep`` can prune the oldest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cityhub.kit.time import utcnow

PREFIX = "cityhub-"
SUFFIXES = {"sqlite": ".sqlite3", "postgresql": ".pgdump"}


class BackupError(Exception):
    """A backup or restore that could not be made; the message says why."""


def _sqlite_file(url: str) -> Path:
    path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    if not path or path.startswith(":memory:"):
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(path)


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection options for the PostgreSQL client programs, the password in the environment."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    args = ["--host", parts.hostname or "127.0.0.1", "--port", str(parts.port or 5432)]
    if parts.username:
        args += ["--username", unquote(parts.username)]
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    database = parts.path.lstrip("/")
    if not database:
        raise BackupError("the PostgreSQL URL names no database")
    return [*args, "--dbname", database], env


def _run(command: list[str], env: dict[str, str]) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} is not installed (it comes with the PostgreSQL client)")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip() or done.stdout.strip()}")


def _backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def _sqlite_copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    # sqlite3's context manager commits but does not close
    src.close()
    dst.close()


def backup(url: str, directory: Path) -> Path:
    """Write a backup of the database at ``url`` into ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    backend = _backend(url)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    target = directory / f"{PREFIX}{stamp}{SUFFIXES[backend]}"
    partial = target.with_name(target.name + ".partial")
    if backend == "sqlite":
        source = _sqlite_file(url)
        if not source.is_file():
            raise BackupError(f"no database file at {source}")
        _sqlite_copy(source, partial)
    else:
        args, env = _pg_args(url)
        _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(partial), *args], env)
    partial.rename(target)  # a backup is either complete or absent
    return target


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest backups in ``directory``; returns those deleted."""
    found = sorted(
        (p for p in directory.glob(f"{PREFIX}*") if p.suffix in SUFFIXES.values()),
        key=lambda p: p.name,
    )
    doomed = found[:-keep] if keep > 0 else found
    for path in doomed:
        path.unlink()
    return doomed


def restore(url: str, source: Path) -> None:
    """Replace the database at ``url`` with the backup ``source``. Stop the hub first."""
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    backend = _backend(url)
    if source.suffix != SUFFIXES[backend]:
        raise BackupError(f"{source.name} is not a {backend} backup (expected {SUFFIXES[backend]})")
    if backend == "sqlite":
        target = _sqlite_file(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            staged = Path(scratch) / "restore.sqlite3"
            _sqlite_copy(source, staged)  # checks the file is a database before anything is touched
            for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
                leftover.unlink(missing_ok=True)
            os.replace(staged, target)
        return
    args, env = _pg_args(url)
    _run(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            *args,
            str(source),
        ],
        env,
    )


@dataclass(frozen=True)
class TableFingerprint:
    rows: int
    sha256: str


async def fingerprints(engine: AsyncEngine) -> dict[str, TableFingerprint]:
    """Row count and a SHA-256 over every row (in primary-key order) of every table."""

    def tables(sync: object) -> list[tuple[str, list[str]]]:
        inspector = inspect(sync)
        found = []
        for name in sorted(inspector.get_table_names()):
            keys = inspector.get_pk_constraint(name).get("constrained_columns") or []
            columns = [c["name"] for c in inspector.get_columns(name)]
            found.append((name, keys or columns))
        return found

    result: dict[str, TableFingerprint] = {}
    async with engine.connect() as connection:
        for name, order in await connection.run_sync(tables):
            ordering = ", ".join(f'"{column}"' for column in order)
            rows = await connection.execute(text(f'SELECT * FROM "{name}" ORDER BY {ordering}'))
            digest = hashlib.sha256()
            count = 0
            for row in rows:
                digest.update(repr(tuple(row)).encode())
                count += 1
            result[name] = TableFingerprint(count, digest.hexdigest())
    return result


async def wipe(engine: AsyncEngine) -> None:
    """Drop every table (the "disaster" of a restore drill)."""
    if engine.dialect.name == "postgresql":
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        return
    async with engine.connect() as connection:
        await connection.execute(text("PRAGMA foreign_keys=OFF"))
        # virtual tables (the broker's R*Tree) first: dropping one drops its shadow tables
        virtual = await connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")
        )
        for (name,) in virtual.all():
            await connection.execute(text(f'DROP TABLE "{name}"'))
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        for name in names:
            await connection.execute(text(f'DROP TABLE "{name}"'))
        await connection.commit()
