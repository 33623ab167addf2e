"""Upstreams per gRPC service: several addresses each, balanced round-robin.

Configured by service full name or by package prefix ("tenantry.auth.v1"); the
longest key that prefixes a service's name wins. One channel per address,
made once and reused, with the services' keepalive (kit.clients). No retry
policy: a client's call may not be idempotent. gRPC still retries, on its own,
a call that never reached the server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.descriptors import Rpc
from gateway.status import GatewayError
from kit.clients import channel_options


def parse_upstreams(text: str) -> dict[str, list[str]]:
    """'tenantry.auth.v1=127.0.0.1:50051,127.0.0.1:60051;tenantry.tenants.v1=...'"""
    config: dict[str, list[str]] = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        key, _, addresses = entry.partition("=")
        targets = [address.strip() for address in addresses.split(",") if address.strip()]
        if not key.strip() or not targets:
            raise ValueError(f"GATEWAY_UPSTREAMS: '{entry}' is not SERVICE=ADDRESS[,ADDRESS...]")
        config[key.strip()] = targets
    return config


class Upstreams:
    def __init__(self, config: dict[str, list[str]]) -> None:
        self._config = config
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._turns: dict[str, Iterator[int]] = {key: itertools.count() for key in config}
        self._callables: dict[tuple[str, str, Any], Any] = {}
        self._keys: dict[str, str | None] = {}

    def _key_for(self, service: str) -> str | None:
        if service not in self._keys:  # a few services, asked on every call
            matches = [key for key in self._config if service == key or service.startswith(key + ".")]
            self._keys[service] = max(matches, key=len) if matches else None
        return self._keys[service]

    def addresses(self, service: str) -> list[str]:
        key = self._key_for(service)
        return list(self._config[key]) if key else []

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address, options=channel_options())
        return channel

    def pick(self, service: str) -> str:
        key = self._key_for(service)
        if key is None:
            raise GatewayError(grpc.StatusCode.UNAVAILABLE, f"no upstream is configured for {service}")
        addresses = self._config[key]
        return addresses[next(self._turns[key]) % len(addresses)]

    def callable(self, rpc: Rpc) -> Any:
        """The rpc's multicallable on the next address in turn, made once per address."""
        return self._multicallable(
            rpc.service,
            rpc.path,
            streaming=rpc.server_streaming,
            request_serializer=rpc.request_class.SerializeToString,
            response_deserializer=rpc.response_class.FromString,
        )

    def unary_unary(self, service: str, path: str, *, request_serializer: Any, response_deserializer: Any) -> Any:
        """A unary method of an upstream whose contract need not be loaded (auth's GetJwks)."""
        return self._multicallable(
            service,
            path,
            streaming=False,
            request_serializer=request_serializer,
            response_deserializer=response_deserializer,
        )

    def _multicallable(
        self, service: str, path: str, *, streaming: bool, request_serializer: Any, response_deserializer: Any
    ) -> Any:
        address = self.pick(service)
        # By message class too: the same method may be called with the loaded contract's classes and the stubs'.
        key = (address, path, response_deserializer)
        call = self._callables.get(key)
        if call is None:
            channel = self._channel(address)
            factory = channel.unary_stream if streaming else channel.unary_unary
            call = factory(path, request_serializer=request_serializer, response_deserializer=response_deserializer)
            self._callables[key] = call
        return call

    async def health(self, service: str, address: str, timeout: float = 1.0) -> str:
        """The upstream's own view of itself, which includes its database."""
        try:
            reply = await health_pb2_grpc.HealthStub(self._channel(address)).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.aio.AioRpcError as error:
            return (
                "UNREACHABLE"
                if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                else error.code().name
            )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
