"""One real PostgreSQL per run, one migrated database, one running stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.postgres import create_database, drop_database
from kit import migrations
from tests.postgres import chosen_server, describe_server, postgres_server
from tests.stack import Stack

ARTIFACTS = Path(__file__).resolve().parent.parent / ".test-artifacts"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[DATABASE_CHOICE] = chosen_server()


def pytest_report_header(config: pytest.Config) -> str:
    return describe_server(config.stash[DATABASE_CHOICE])


DATABASE_CHOICE = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def postgres_admin_url(pytestconfig: pytest.Config) -> Iterator[str]:
    with postgres_server(pytestconfig.stash[DATABASE_CHOICE]) as url:
        yield url


@pytest.fixture(scope="session")
def fresh_database(postgres_admin_url: str) -> Iterator[callable]:  # type: ignore[valid-type]
    """Makes empty databases on the run's server and drops them afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"tenantry_test_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return create_database(postgres_admin_url, name)

    yield make
    for name in made:
        drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
def database_url(fresh_database) -> str:  # type: ignore[no-untyped-def]
    url = fresh_database()
    for service in ("audit", "auth", "tenants"):
        migrations.upgrade(service, url)
    return url


@pytest.fixture(scope="session")
def stack(database_url: str) -> Iterator[Stack]:
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("*.log"):
        old.unlink()
    running = Stack(database_url, ARTIFACTS)
    try:
        running.start()
        yield running
    finally:
        running.stop()
