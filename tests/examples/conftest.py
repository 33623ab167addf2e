"""The tickets example as `make run EXAMPLES=tickets` runs it: its own process, behind a gateway process."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import examples
from devtools.stack import ServiceProcess, free_port
from tests.gateway.conftest import start_gateway, tenantry_gateway_env
from tests.stack import INTERNAL_API_TOKEN, Stack


def tickets_env(stack: Stack, address: str) -> dict[str, str]:
    return {
        "DATABASE_URL": stack.database_url,
        "INTERNAL_API_TOKEN": INTERNAL_API_TOKEN,
        "AUTH_SERVICE_ADDR": stack.processes["auth"].address,
        "AUDIT_SERVICE_ADDR": stack.processes["audit"].address,
        "TICKETS_LISTEN_ADDR": address,
    }


@pytest.fixture(scope="session")
def tickets_service(stack: Stack) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    log_path = stack.log_dir / "tickets.log"
    process = ServiceProcess(
        "tickets", address, tickets_env(stack, address), module="examples.tickets", log_path=log_path
    )
    process.start()
    try:
        process.wait_serving()
        yield address
    finally:
        process.stop()


@pytest.fixture(scope="session")
def tickets_gateway(stack: Stack, tickets_service: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    example = dataclasses.replace(examples.KNOWN["tickets"], default_address=tickets_service)
    contracts = Path(tmp_path_factory.mktemp("contracts")) / "contracts.binpb"
    env = examples.gateway_env([example], tenantry_gateway_env(stack), contracts)
    gateway = start_gateway("gateway-tickets", env, stack.log_dir)
    try:
        yield f"http://{gateway.address}"
    finally:
        gateway.stop()
