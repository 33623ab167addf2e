"""The one real PostgreSQL of a test run.

TEST_DATABASE_URL when set (a server where the suite may create databases);
otherwise a throwaway container when a Docker engine is reachable; otherwise
a throwaway embedded cluster in a temporary folder. Never a mock, never SQLite.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit


def docker_has_images(*images: str) -> bool:
    """A Docker engine answers and already holds these images (no registry may be reachable to pull them)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        for image in images:
            client.images.get(image)
        return True
    except Exception:
        return False


def chosen_server() -> str:
    """Which server the run uses: "url" (TEST_DATABASE_URL), "docker" or "embedded"."""
    if os.environ.get("TEST_DATABASE_URL"):
        return "url"
    if os.environ.get("TENANTRY_TEST_DOCKER", "auto") != "off" and docker_has_images("postgres:15"):
        return "docker"
    return "embedded"


def describe_server(choice: str) -> str:
    """One line for the start of the run; a URL's password is not shown."""
    if choice == "url":
        parts = urlsplit(os.environ["TEST_DATABASE_URL"])
        where = f"{parts.hostname or 'local socket'}{f':{parts.port}' if parts.port else ''}{parts.path}"
        return f"database: TEST_DATABASE_URL ({parts.username or 'default user'}@{where})"
    if choice == "docker":
        return "database: a throwaway postgres:15 container (Docker engine found; TENANTRY_TEST_DOCKER=off skips it)"
    return "database: a throwaway embedded PostgreSQL (pgserver: no TEST_DATABASE_URL, no Docker postgres:15)"


@contextlib.contextmanager
def postgres_server(choice: str | None = None) -> Iterator[str]:
    """Yields an admin URL (postgresql://...) of a server the suite may use freely."""
    choice = choice or chosen_server()
    if choice == "url":
        yield os.environ["TEST_DATABASE_URL"]
        return
    if choice == "docker":
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:
            from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:15", driver=None) as container:
            yield container.get_connection_url()
        return
    from devtools.postgres import start_embedded

    # Short path: the server's Unix socket lives inside it.
    with tempfile.TemporaryDirectory(prefix="tnt-pg-") as folder:
        server, url = start_embedded(Path(folder) / "data")
        try:
            yield url
        finally:
            server.cleanup()
