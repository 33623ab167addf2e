"""An embedded PostgreSQL for `make run` and for tests on a machine without one.

pgserver ships PostgreSQL's binaries in its wheel, so nothing but PyPI is
needed. The server listens on a Unix socket inside its data folder only.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import asyncpg


def start_embedded(data_dir: Path) -> tuple[Any, str]:
    """Starts (or reuses) the cluster in data_dir; returns it and its admin URL."""
    with warnings.catch_warnings():
        # pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (CI,
        # containers, su): harmless, it falls back to a private folder.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
        import pgserver  # imported here: only the embedded case needs it

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
        return server, server.get_uri()


def with_database(url: str, database: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")


async def _create_database(admin_url: str, database: str, *, drop_first: bool) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        if drop_first:
            await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()


def create_database(admin_url: str, database: str, *, drop_first: bool = False) -> str:
    asyncio.run(_create_database(admin_url, database, drop_first=drop_first))
    return with_database(admin_url, database)


async def _drop_database(admin_url: str, database: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await connection.close()


def drop_database(admin_url: str, database: str) -> None:
    asyncio.run(_drop_database(admin_url, database))
