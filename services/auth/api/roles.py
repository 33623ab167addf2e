"""The role servicer: proto <-> domain, one thin method per RPC."""

from __future__ import annotations

import grpc
from tenantry.auth.v1 import auth_pb2, roles_service_pb2, roles_service_pb2_grpc

from kit.context import require_principal
from kit.db import Database
from kit.errors import InvalidArgument
from services.auth.api.messages import role_message
from services.auth.service.roles import APPLICATION_PATTERN, CATALOGUE, RoleService

UPDATABLE_FIELDS = ("description", "permissions")
UPDATABLE = "allowed: description, permissions"


class RoleApi(roles_service_pb2_grpc.RoleServiceServicer):
    def __init__(self, database: Database, roles: RoleService) -> None:
        self._database = database
        self._roles = roles

    async def ListRoles(
        self, request: roles_service_pb2.ListRolesRequest, context: grpc.aio.ServicerContext
    ) -> roles_service_pb2.ListRolesResponse:
        async with self._database.unit_of_work() as session:
            roles = await self._roles.list_roles(session, require_principal())
        return roles_service_pb2.ListRolesResponse(roles=[role_message(role) for role in roles])

    async def CreateRole(
        self, request: roles_service_pb2.CreateRoleRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.Role:
        async with self._database.unit_of_work() as session:
            role = await self._roles.create(
                session,
                require_principal(),
                name=request.name,
                description=request.description,
                permissions=list(request.permissions),
            )
        return role_message(role)

    async def UpdateRole(
        self, request: roles_service_pb2.UpdateRoleRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.Role:
        paths = set(request.update_mask.paths)
        unknown = paths - set(UPDATABLE_FIELDS)
        if unknown:
            raise InvalidArgument("update_mask", f"'{sorted(unknown)[0]}' cannot be updated ({UPDATABLE})")
        if not paths:  # no mask: every field the request populates
            paths = {"description"} if request.HasField("description") else set()
            paths |= {"permissions"} if request.permissions else set()
        description = request.description if "description" in paths else None
        permissions = list(request.permissions) if "permissions" in paths else None
        if description is None and permissions is None:
            raise InvalidArgument("update_mask", "name at least one field to change: description, permissions")
        async with self._database.unit_of_work() as session:
            role = await self._roles.update(
                session, require_principal(), name=request.name, description=description, permissions=permissions
            )
        return role_message(role)

    async def DeleteRole(
        self, request: roles_service_pb2.DeleteRoleRequest, context: grpc.aio.ServicerContext
    ) -> roles_service_pb2.DeleteRoleResponse:
        async with self._database.unit_of_work() as session:
            await self._roles.delete(session, require_principal(), name=request.name)
        return roles_service_pb2.DeleteRoleResponse()

    async def ListPermissions(
        self, request: roles_service_pb2.ListPermissionsRequest, context: grpc.aio.ServicerContext
    ) -> roles_service_pb2.ListPermissionsResponse:
        return roles_service_pb2.ListPermissionsResponse(
            permissions=[auth_pb2.Permission(name=name, description=text) for name, text in CATALOGUE.items()],
            application_pattern=APPLICATION_PATTERN,
        )
