"""API keys at the edge: exchanged through the contracts' ExchangeApiKey, cached (kit.api_keys)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from gateway.descriptors import Contracts
from gateway.upstreams import Upstreams
from kit.api_keys import EXCHANGE_TIMEOUT_SECONDS, ApiKeyTokens, exchange_through


def edge_api_keys(contracts: Contracts, upstreams: Upstreams, method: str) -> ApiKeyTokens | None:
    """The gateway's cache of exchanged keys; None when the contracts serve no such
    public RPC (then every API key is refused with 401)."""
    rpc = next((b.rpc for b in contracts.bindings if b.rpc.path == method and b.rpc.public), None)
    if rpc is None:
        return None

    def call(api_key: str) -> Awaitable[Any]:
        return upstreams.callable(rpc)(rpc.request_class(api_key=api_key), timeout=EXCHANGE_TIMEOUT_SECONDS)

    return ApiKeyTokens(exchange_through(call))
