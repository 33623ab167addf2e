"""The API key servicer: proto <-> domain, one thin method per RPC."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from tenantry.auth.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc

from kit.context import require_principal
from kit.convert import from_timestamp, timestamp
from kit.db import Database
from kit.pagination import page_size
from services.auth.api.messages import required_uuid
from services.auth.models import ApiKey
from services.auth.service.api_keys import ApiKeyService, key_state

STATES = {
    "active": api_keys_service_pb2.API_KEY_STATE_ACTIVE,
    "expired": api_keys_service_pb2.API_KEY_STATE_EXPIRED,
    "revoked": api_keys_service_pb2.API_KEY_STATE_REVOKED,
}


def api_key_message(key: ApiKey) -> api_keys_service_pb2.ApiKey:
    message = api_keys_service_pb2.ApiKey(
        id=str(key.id),
        name=key.name,
        prefix=key.prefix,
        permissions=sorted(key.permissions),
        created_by=str(key.created_by),
        created_at=timestamp(key.created_at),
        state=STATES[key_state(key, datetime.now(UTC))],
    )
    if key.last_used_at is not None:
        message.last_used_at.CopyFrom(timestamp(key.last_used_at))
    if key.expires_at is not None:
        message.expire_time.CopyFrom(timestamp(key.expires_at))
    if key.revoked_at is not None:
        message.revoked_at.CopyFrom(timestamp(key.revoked_at))
    return message


class ApiKeyApi(api_keys_service_pb2_grpc.ApiKeyServiceServicer):
    def __init__(self, database: Database, api_keys: ApiKeyService) -> None:
        self._database = database
        self._api_keys = api_keys

    async def CreateApiKey(
        self, request: api_keys_service_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> api_keys_service_pb2.CreateApiKeyResponse:
        expires_at = from_timestamp(request.expire_time) if request.HasField("expire_time") else None
        async with self._database.unit_of_work() as session:
            created = await self._api_keys.create(
                session,
                require_principal(),
                name=request.name,
                permissions=list(request.permissions),
                expires_at=expires_at,
            )
        return api_keys_service_pb2.CreateApiKeyResponse(api_key=api_key_message(created.key), secret=created.secret)

    async def ListApiKeys(
        self, request: api_keys_service_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> api_keys_service_pb2.ListApiKeysResponse:
        size = page_size(request.page_size)
        async with self._database.unit_of_work() as session:
            keys, next_page_token = await self._api_keys.list_keys(
                session, require_principal(), page_size=size, page_token=request.page_token
            )
        return api_keys_service_pb2.ListApiKeysResponse(
            api_keys=[api_key_message(key) for key in keys], next_page_token=next_page_token
        )

    async def GetApiKey(
        self, request: api_keys_service_pb2.GetApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> api_keys_service_pb2.ApiKey:
        key_id = required_uuid("id", request.id)
        async with self._database.unit_of_work() as session:
            key = await self._api_keys.get(session, require_principal(), key_id=key_id)
        return api_key_message(key)

    async def RevokeApiKey(
        self, request: api_keys_service_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> api_keys_service_pb2.ApiKey:
        key_id = required_uuid("id", request.id)
        async with self._database.unit_of_work() as session:
            key = await self._api_keys.revoke(session, require_principal(), key_id=key_id)
        return api_key_message(key)

    async def ExchangeApiKey(
        self, request: api_keys_service_pb2.ExchangeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> api_keys_service_pb2.ExchangeApiKeyResponse:
        exchanged = await self._api_keys.exchange(self._database, request.api_key)
        return api_keys_service_pb2.ExchangeApiKeyResponse(
            access_token=exchanged.access_token, token_type="Bearer", expires_in=int(exchanged.expires_in)
        )
