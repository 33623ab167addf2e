"""The service-account and OAuth token servicers: proto <-> domain, one thin method per RPC."""

from __future__ import annotations

import grpc
from tenantry.auth.v1 import service_accounts_service_pb2 as pb
from tenantry.auth.v1 import service_accounts_service_pb2_grpc as pb_grpc

from kit.context import require_principal
from kit.convert import from_struct, timestamp
from kit.db import Database
from services.auth.models import ServiceAccountCredential
from services.auth.service.client_credentials import ClientCredentialsGrant, TokenRequest
from services.auth.service.service_accounts import CLIENT_SECRET, AccountView, NewSecret, ServiceAccountService

# The trailer naming an RFC 6749 §5.2 error code; the gateway renders the OAuth error body from it.
_TYPES = {
    CLIENT_SECRET: pb.ServiceAccountCredential.TYPE_CLIENT_SECRET,
    "public_key": pb.ServiceAccountCredential.TYPE_PUBLIC_KEY,
}


def credential_message(credential: ServiceAccountCredential) -> pb.ServiceAccountCredential:
    message = pb.ServiceAccountCredential(
        id=str(credential.id),
        type=_TYPES[credential.type],
        kid=credential.kid or "",
        algorithm=credential.algorithm or "",
        secret_prefix=credential.secret_prefix or "",
        create_time=timestamp(credential.created_at),
    )
    if credential.last_used_at is not None:
        message.last_used_time.CopyFrom(timestamp(credential.last_used_at))
    return message


def account_message(view: AccountView) -> pb.ServiceAccount:
    account = view.account
    return pb.ServiceAccount(
        id=str(account.id),
        client_id=view.client_id,
        name=account.name,
        description=account.description,
        permissions=list(account.permissions),
        tenant_id=str(account.tenant_id) if account.tenant_id else "",
        created_by=str(account.created_by) if account.created_by else "",
        create_time=timestamp(account.created_at),
        credentials=[credential_message(credential) for credential in view.credentials],
    )


def secret_message(new: NewSecret) -> pb.ServiceAccountSecret:
    return pb.ServiceAccountSecret(
        credential=credential_message(new.credential), client_id=new.client_id, client_secret=new.secret
    )


class ServiceAccountApi(pb_grpc.ServiceAccountServiceServicer):
    def __init__(self, database: Database, accounts: ServiceAccountService) -> None:
        self._database = database
        self._accounts = accounts

    async def CreateServiceAccount(
        self, request: pb.CreateServiceAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServiceAccount:
        async with self._database.unit_of_work() as session:
            view = await self._accounts.create(
                session,
                require_principal(),
                name=request.name,
                description=request.description,
                permissions=list(request.permissions),
            )
        return account_message(view)

    async def ListServiceAccounts(
        self, request: pb.ListServiceAccountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListServiceAccountsResponse:
        async with self._database.unit_of_work() as session:
            views = await self._accounts.list_accounts(session, require_principal())
        return pb.ListServiceAccountsResponse(service_accounts=[account_message(view) for view in views])

    async def GetServiceAccount(
        self, request: pb.GetServiceAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServiceAccount:
        async with self._database.unit_of_work() as session:
            return account_message(await self._accounts.get(session, require_principal(), request.id))

    async def DeleteServiceAccount(
        self, request: pb.DeleteServiceAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteServiceAccountResponse:
        async with self._database.unit_of_work() as session:
            await self._accounts.delete(session, require_principal(), request.id)
        return pb.DeleteServiceAccountResponse()

    async def AddServiceAccountSecret(
        self, request: pb.AddServiceAccountSecretRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServiceAccountSecret:
        async with self._database.unit_of_work() as session:
            return secret_message(await self._accounts.add_secret(session, require_principal(), request.id))

    async def RotateServiceAccountSecret(
        self, request: pb.RotateServiceAccountSecretRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServiceAccountSecret:
        async with self._database.unit_of_work() as session:
            new = await self._accounts.add_secret(session, require_principal(), request.id, rotate=True)
        return secret_message(new)

    async def AddServiceAccountKey(
        self, request: pb.AddServiceAccountKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServiceAccountCredential:
        jwk = from_struct(request.public_key_jwk)
        async with self._database.unit_of_work() as session:
            return credential_message(await self._accounts.add_key(session, require_principal(), request.id, jwk))

    async def RevokeServiceAccountCredential(
        self, request: pb.RevokeServiceAccountCredentialRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeServiceAccountCredentialResponse:
        async with self._database.unit_of_work() as session:
            await self._accounts.revoke_credential(session, require_principal(), request.id, request.credential_id)
        return pb.RevokeServiceAccountCredentialResponse()


class OAuthApi(pb_grpc.OAuthServiceServicer):
    def __init__(self, grant: ClientCredentialsGrant) -> None:
        self._grant = grant

    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTokenResponse:
        authorization = dict(context.invocation_metadata() or ()).get("authorization", "")
        token = await self._grant.token(
            TokenRequest(
                grant_type=request.grant_type,
                scope=request.scope,
                client_id=request.client_id,
                client_secret=request.client_secret,
                client_assertion_type=request.client_assertion_type,
                client_assertion=request.client_assertion,
                authorization=str(authorization),
            )
        )
        response = pb.CreateTokenResponse(
            access_token=token.access_token, token_type="Bearer", expires_in=token.expires_in
        )
        if token.scope is not None:
            response.scope = token.scope
        return response
