"""The gateway as a real process, in front of the echo server or of the real services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devtools.stack import ServiceProcess, free_port, gateway_env
from tests.gateway.echo_server import build_descriptor_set, start_echo_server
from tests.stack import GATEWAY_TOKEN, Stack

ALLOWED_ORIGIN = "https://app.example.test"


def start_gateway(name: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    from devtools.stack import http_responds

    address = f"127.0.0.1:{free_port()}"
    host, _, port = address.rpartition(":")
    process = ServiceProcess(
        name,
        address,
        {"GATEWAY_HOST": host, "GATEWAY_PORT": port, "CORS_ORIGINS": ALLOWED_ORIGIN, **env},
        log_path=log_dir / f"{name}.log",
        module="gateway",
        probe=http_responds,
    )
    process.start()
    process.wait_serving()
    return process


@contextmanager
def echo_behind_gateway(folder: Path, name: str, env: dict[str, str]) -> Iterator[str]:
    """The echo upstream behind a gateway process with these settings; its base URL."""
    descriptor_set = build_descriptor_set(folder / "echo.binpb")
    server, address = start_echo_server(descriptor_set)
    settings = {
        "GATEWAY_DESCRIPTOR_SET": str(descriptor_set),
        "GATEWAY_UPSTREAMS": f"tenantry.testing.echo.v1={address}",
    }
    gateway = start_gateway(name, {**settings, **env}, folder)
    try:
        yield f"http://{gateway.address}"
    finally:
        gateway.stop()
        server.stop(0)


@pytest.fixture(scope="session")
def echo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "GATEWAY_MAX_BODY_BYTES": "2048",
        "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "2",
        "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    with echo_behind_gateway(tmp_path_factory.mktemp("echo"), "gateway-echo", env) as url:
        yield url


@pytest.fixture(scope="session")
def echo_json_names_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The echo upstream behind a gateway answering by json_name (GATEWAY_JSON_NAMES=json)."""
    folder = tmp_path_factory.mktemp("echo-json-names")
    with echo_behind_gateway(folder, "gateway-echo-json-names", {"GATEWAY_JSON_NAMES": "json"}) as url:
        yield url


@pytest.fixture(scope="session")
def balanced_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One gateway in front of two echo replicas."""
    folder = tmp_path_factory.mktemp("balanced")
    descriptor_set = build_descriptor_set(folder / "echo.binpb")
    first, first_address = start_echo_server(descriptor_set, "first")
    second, second_address = start_echo_server(descriptor_set, "second")
    gateway = start_gateway(
        "gateway-balanced",
        {
            "GATEWAY_DESCRIPTOR_SET": str(descriptor_set),
            "GATEWAY_UPSTREAMS": f"tenantry.testing.echo.v1.EchoService={first_address},{second_address}",
        },
        folder,
    )
    try:
        yield f"http://{gateway.address}"
    finally:
        gateway.stop()
        first.stop(0)
        second.stop(0)


def tenantry_gateway_env(stack: Stack) -> dict[str, str]:
    addresses = {name: process.address for name, process in stack.processes.items()}
    env = gateway_env(addresses, "127.0.0.1:0", gateway_token=GATEWAY_TOKEN)
    return {
        "GATEWAY_UPSTREAMS": env["GATEWAY_UPSTREAMS"],
        "GATEWAY_TOKEN": env["GATEWAY_TOKEN"],
        "GATEWAY_RATE_LIMIT_PER_MINUTE": "100000",
    }


@contextmanager
def gateway_in_front(stack: Stack, name: str) -> Iterator[str]:
    """A gateway process in front of the stack's services; its base URL."""
    process = start_gateway(name, tenantry_gateway_env(stack), stack.log_dir)
    try:
        yield f"http://{process.address}"
    finally:
        process.stop()


@pytest.fixture(scope="session")
def gateway(stack: Stack) -> Iterator[str]:
    with gateway_in_front(stack, "gateway") as url:
        yield url
