"""Channels to other Tenantry services: one per address, reused for every call."""

from __future__ import annotations

import grpc

from kit.context import current_request
from kit.interceptors.access import INTERNAL_TOKEN_HEADER

CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Reconnect quickly after a peer restarts, so queued work resumes soon.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)


def internal_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)


def internal_metadata(internal_api_token: str) -> tuple[tuple[str, str], ...]:
    return ((INTERNAL_TOKEN_HEADER, internal_api_token),)


def with_request_id(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Carries the current request's id on to the service being called."""
    request = current_request()
    return (*metadata, ("x-request-id", request.request_id)) if request else metadata
