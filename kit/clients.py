"""Channels to other Tenantry services: one per address, reused for every call.

Keepalive is agreed between both ends: clients ping every GRPC_KEEPALIVE_TIME_MS
even with no call open (so an idle revocation stream or relay notices a dead
peer), and servers (kit.server) allow exactly that, instead of gRPC's default
policy that answers such pings with GOAWAY `too_many_pings`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from functools import cache
from typing import Any

import grpc
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kit.context import current_request
from kit.interceptors.access import INTERNAL_TOKEN_HEADER
from kit.service_identity import ServiceTokens, bearer_interceptors, client_credentials_fetcher
from kit.settings import ServiceSettings

# Reconnect quickly after a peer restarts (at most ~0.25 s with gRPC's 20 %
# jitter), so revocation streams and queued work resume at once. A dead peer
# costs a refused connect a few times a second, nothing more.
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 200),
)

# Internal calls are idempotent (relays dedupe by event id, provisioning and
# status changes are idempotent, reads are reads), so one that fails with
# UNAVAILABLE (a connection lost, a peer restarting) is retried a few times.
INTERNAL_RETRY_POLICY = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class KeepaliveSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    keepalive_time_ms: int = Field(default=10_000, ge=100, validation_alias="GRPC_KEEPALIVE_TIME_MS")
    keepalive_timeout_ms: int = Field(default=5_000, ge=100, validation_alias="GRPC_KEEPALIVE_TIMEOUT_MS")


@cache
def keepalive_settings() -> KeepaliveSettings:
    return KeepaliveSettings()


def client_keepalive_options() -> tuple[tuple[str, int], ...]:
    settings = keepalive_settings()
    return (
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        # Keep pinging an idle connection (the default stops after two pings
        # without data, and an idle stream would then never notice a dead peer).
        ("grpc.http2.max_pings_without_data", 0),
    )


def server_keepalive_options() -> tuple[tuple[str, int], ...]:
    """What a server allows, in step with client_keepalive_options."""
    settings = keepalive_settings()
    return (
        ("grpc.keepalive_permit_without_calls", 1),
        # Half the clients' interval: timers drift, and a ping a little early
        # must not count as a strike.
        ("grpc.http2.min_ping_interval_without_data_ms", settings.keepalive_time_ms // 2),
        ("grpc.http2.max_pings_without_data", 0),
        # The server probes its clients too, so a dead subscriber's stream ends.
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
    )


def channel_options(*, retry_policy: str | None = None) -> tuple[tuple[str, str | int], ...]:
    options: tuple[tuple[str, str | int], ...] = (*client_keepalive_options(), *RECONNECT_OPTIONS)
    if retry_policy:
        options = (*options, ("grpc.service_config", retry_policy), ("grpc.enable_retries", 1))
    return options


def internal_channel(address: str, tokens: ServiceTokens | None = None) -> grpc.aio.Channel:
    """A channel to another service; with tokens, every call carries this service's access token."""
    return grpc.aio.insecure_channel(
        address,
        options=channel_options(retry_policy=INTERNAL_RETRY_POLICY),
        interceptors=bearer_interceptors(tokens) if tokens is not None else None,
    )


def internal_metadata(internal_api_token: str, tokens: ServiceTokens | None = None) -> tuple[tuple[str, str], ...]:
    """The deprecated shared token: sent only by a service without service-account tokens, while one is configured."""
    return ((INTERNAL_TOKEN_HEADER, internal_api_token),) if internal_api_token and tokens is None else ()


def with_request_id(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Carries the current request's id on to the service being called."""
    request = current_request()
    return (*metadata, ("x-request-id", request.request_id)) if request else metadata


async def _nothing() -> None:
    return None


def service_tokens(settings: ServiceSettings) -> tuple[ServiceTokens | None, Callable[[], Coroutine[Any, Any, None]]]:
    """Tokens from the service's own credentials (None without them: only the
    deprecated internal token is sent), and the job closing their channel."""
    secret = settings.service_client_secret.get_secret_value()
    if not settings.service_client_id or not secret:
        return None, _nothing
    # No interceptor here: the token RPC is public, and this channel fetches the token the others send.
    # It reconnects as fast as the others, so a service started while auth was down gets going at once.
    channel = grpc.aio.insecure_channel(settings.auth_service_addr, options=channel_options())
    return ServiceTokens(client_credentials_fetcher(channel, settings.service_client_id, secret)), channel.close
