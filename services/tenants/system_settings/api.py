"""The system settings servicer: proto <-> domain, nothing else."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from tenantry.tenants.v1 import system_settings_service_pb2 as messages
from tenantry.tenants.v1 import system_settings_service_pb2_grpc

from kit.context import current_principal, require_principal
from kit.convert import timestamp
from kit.db import PLATFORM_SCOPE, Database
from kit.errors import InvalidArgument
from services.tenants.system_settings.repository import SystemSettingRow
from services.tenants.system_settings.service import MISSING, SettingInput, SystemSettings, manages


def _value(message: struct_pb2.Value) -> Any:
    if message.WhichOneof("kind") is None:
        return MISSING
    return json_format.MessageToDict(message)


def setting_message(row: SystemSettingRow, *, for_operator: bool) -> messages.SystemSetting:
    value = struct_pb2.Value()
    json_format.ParseDict(row.value, value)
    return messages.SystemSetting(
        key=row.key,
        value=value,
        description=row.description,
        is_public=row.is_public,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
        updated_by=str(row.updated_by) if for_operator and row.updated_by else "",
    )


def _input(setting: messages.SystemSetting) -> SettingInput:
    return SettingInput(setting.key, _value(setting.value), setting.description, setting.is_public)


class SystemSettingsApi(system_settings_service_pb2_grpc.SystemSettingsServiceServicer):
    def __init__(self, database: Database, settings: SystemSettings) -> None:
        self._database = database
        self._settings = settings

    def _reader_scope(self) -> tuple[str, bool]:
        """Operators read in the platform scope; anyone else in none, where only public rows are visible."""
        operator = manages(current_principal())
        return (PLATFORM_SCOPE if operator else ""), operator

    async def ListSystemSettings(
        self, request: messages.ListSystemSettingsRequest, context: grpc.aio.ServicerContext
    ) -> messages.ListSystemSettingsResponse:
        scope, operator = self._reader_scope()
        async with self._database.unit_of_work(scope=scope) as session:
            rows = await self._settings.visible(session)
        return messages.ListSystemSettingsResponse(
            settings=[setting_message(row, for_operator=operator) for row in rows]
        )

    async def GetSystemSetting(
        self, request: messages.GetSystemSettingRequest, context: grpc.aio.ServicerContext
    ) -> messages.SystemSetting:
        scope, operator = self._reader_scope()
        async with self._database.unit_of_work(scope=scope) as session:
            row = await self._settings.get(session, request.key)
        return setting_message(row, for_operator=operator)

    async def CreateSystemSetting(
        self, request: messages.CreateSystemSettingRequest, context: grpc.aio.ServicerContext
    ) -> messages.SystemSetting:
        principal = require_principal()
        async with self._database.unit_of_work(scope=PLATFORM_SCOPE) as session:
            row = await self._settings.create(session, principal, _input(request.setting))
        return setting_message(row, for_operator=True)

    async def UpdateSystemSetting(
        self, request: messages.UpdateSystemSettingRequest, context: grpc.aio.ServicerContext
    ) -> messages.SystemSetting:
        principal = require_principal()
        async with self._database.unit_of_work(scope=PLATFORM_SCOPE) as session:
            if request.setting.key and request.setting.key != request.key:
                raise InvalidArgument("setting.key", "must be empty or the key being updated")
            changed = replace(_input(request.setting), key=request.key)
            row = await self._settings.update(session, principal, changed, list(request.update_mask.paths))
        return setting_message(row, for_operator=True)

    async def DeleteSystemSetting(
        self, request: messages.DeleteSystemSettingRequest, context: grpc.aio.ServicerContext
    ) -> messages.DeleteSystemSettingResponse:
        principal = require_principal()
        async with self._database.unit_of_work(scope=PLATFORM_SCOPE) as session:
            await self._settings.delete(session, principal, request.key)
        return messages.DeleteSystemSettingResponse()
