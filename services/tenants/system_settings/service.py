"""Use cases of system settings: anyone reads the public ones, operators manage all of them, audited."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.error_details import Precondition, Reason
from kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from kit.outbox import Outbox
from kit.permissions import grants
from services.tenants.system_settings import repository
from services.tenants.system_settings.repository import SystemSettingRow

MANAGE = "platform.settings.manage"
KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
MAX_KEY = 100
MAX_DESCRIPTION = 1000
MAX_VALUE_BYTES = 64 * 1024
MAX_SETTINGS = 1000
UPDATABLE = ("value", "description", "is_public")
# The value absent from a request (a google.protobuf.Value with no kind), told apart from JSON null.
MISSING = object()


@dataclass(frozen=True)
class SettingInput:
    key: str
    value: Any
    description: str
    is_public: bool


def manages(principal: Principal | None) -> bool:
    """Operators with the permission see and change every setting; tenant tokens never do."""
    return principal is not None and principal.is_platform_admin and grants(principal.permissions, MANAGE)


def validate_key(field: str, key: str) -> str:
    if not key:
        raise InvalidArgument(field, "is required")
    if len(key) > MAX_KEY or not KEY.fullmatch(key):
        raise InvalidArgument(
            field,
            f"must be at most {MAX_KEY} characters of lowercase dotted parts, each a letter then letters,"
            " digits or underscores (e.g. documents.max_upload_mb)",
        )
    return key


def _validate_value(field: str, value: Any) -> Any:
    if value is MISSING:
        raise InvalidArgument(field, "is required (any JSON value; null is written as null)")
    if len(json.dumps(value, separators=(",", ":"))) > MAX_VALUE_BYTES:
        raise InvalidArgument(field, f"must be at most {MAX_VALUE_BYTES} bytes as JSON")
    return value


def _validate_description(field: str, description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(field, f"must be at most {MAX_DESCRIPTION} characters")
    return description


class SystemSettings:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def visible(self, session: AsyncSession) -> list[SystemSettingRow]:
        """What the caller's scope may read: row-level security leaves anyone else the public rows."""
        return await repository.list_visible(session)

    async def get(self, session: AsyncSession, key: str) -> SystemSettingRow:
        found = await repository.find(session, validate_key("key", key))
        if found is None:
            raise NotFound(f"no system setting {key}")
        return found

    async def create(self, session: AsyncSession, principal: Principal, new: SettingInput) -> SystemSettingRow:
        self._require_operator(principal)
        values = {
            "key": validate_key("setting.key", new.key),
            "value": _validate_value("setting.value", new.value),
            "description": _validate_description("setting.description", new.description),
            "is_public": new.is_public,
        }
        if await repository.count(session) >= MAX_SETTINGS:
            raise FailedPrecondition(
                f"there are {MAX_SETTINGS} system settings already; delete one first",
                violation=Precondition.SETTINGS_LIMIT,
                subject="system_settings",
            )
        now = datetime.now(UTC)
        row = await repository.insert_new(
            session, {**values, "created_at": now, "updated_at": now, "updated_by": principal.user_id}
        )
        if row is None:
            raise AlreadyExists(f"system setting {new.key} exists")
        await self._record(session, "system_setting.created", row, sorted(values))
        return row

    async def update(
        self, session: AsyncSession, principal: Principal, changed: SettingInput, fields: list[str]
    ) -> SystemSettingRow:
        self._require_operator(principal)
        key = validate_key("key", changed.key)
        for field in fields:
            if field not in UPDATABLE:
                raise InvalidArgument("update_mask", f"'{field}' cannot be updated (allowed: {', '.join(UPDATABLE)})")
        fields = sorted(set(fields or UPDATABLE))
        changes: dict[str, Any] = {"updated_at": datetime.now(UTC), "updated_by": principal.user_id}
        if "value" in fields:
            changes["value"] = _validate_value("setting.value", changed.value)
        if "description" in fields:
            changes["description"] = _validate_description("setting.description", changed.description)
        if "is_public" in fields:
            changes["is_public"] = changed.is_public
        row = await repository.change(session, key, changes)
        if row is None:
            raise NotFound(f"no system setting {key}")
        await self._record(session, "system_setting.updated", row, fields)
        return row

    async def delete(self, session: AsyncSession, principal: Principal, key: str) -> None:
        self._require_operator(principal)
        found = await repository.find(session, validate_key("key", key))
        if found is None or not await repository.remove(session, key):
            raise NotFound(f"no system setting {key}")
        await self._record(session, "system_setting.deleted", found, [])

    @staticmethod
    def _require_operator(principal: Principal) -> None:
        # The access rule already asked for the permission; a tenant's token can never be an operator's.
        if not manages(principal):
            raise PermissionDenied(
                "only platform operators manage system settings", reason=Reason.PLATFORM_OPERATOR_REQUIRED
            )

    async def _record(self, session: AsyncSession, action: str, row: SystemSettingRow, fields: list[str]) -> None:
        details: dict[str, Any] = {"key": row.key, "is_public": row.is_public, "fields": fields}
        if action != "system_setting.deleted":
            details["value"] = row.value
        # The platform's own trail (no tenant): operators audit each other there.
        await self._outbox.record(
            session, action=action, resource_type="system_setting", resource_id=row.key, details=details
        )
