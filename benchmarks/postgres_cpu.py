"""CPU time of a database's PostgreSQL backends, read by the server itself from /proc.

The benchmarked services talk to a PostgreSQL that may run in a container,
whose process ids the benchmark cannot see; the server can (pg_read_file
needs a superuser, which the benchmarks' throwaway server has). Linux only.
"""

from __future__ import annotations

import os

import asyncpg

_TICKS = os.sysconf("SC_CLK_TCK")

_BACKEND_STATS = """
    SELECT pg_read_file('/proc/' || pid || '/stat') FROM pg_stat_activity
    WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()
"""


async def backend_cpu_seconds(admin_url: str, database: str, application_name: str) -> float | None:
    """CPU seconds the backends serving application_name in database have used so far; None
    where the server does not let us read them. Backends that have ended no longer count, so
    compare two readings only across a stretch in which the application keeps its pool."""
    try:
        connection = await asyncpg.connect(admin_url)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        stats = await connection.fetch(_BACKEND_STATS, database, application_name)
    except asyncpg.PostgresError:
        return None
    finally:
        await connection.close()
    total = 0
    for (stat,) in stats:
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS
