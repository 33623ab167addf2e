"""Wires the auth service: keys, hashing, sessions, revocations, outbox relay."""

from __future__ import annotations

from datetime import timedelta

from tenantry.auth.v1 import (
    accounts_service_pb2,
    accounts_service_pb2_grpc,
    api_keys_service_pb2,
    api_keys_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
    emails_service_pb2,
    emails_service_pb2_grpc,
    members_service_pb2,
    members_service_pb2_grpc,
    roles_service_pb2,
    roles_service_pb2_grpc,
)

from kit.api_keys import ApiKeyTokens, ExchangedToken
from kit.db import Database
from kit.outbox import Outbox, relay_jobs
from kit.revocations import RevokedSessions
from kit.server import ServiceHost
from kit.settings import ServiceSettings
from kit.tokens import AccessTokenVerifier
from services.auth.api.accounts import AccountApi
from services.auth.api.api_keys import ApiKeyApi
from services.auth.api.auth import AuthApi, AuthInternalApi
from services.auth.api.emails import EmailApi
from services.auth.api.members import MemberApi
from services.auth.api.roles import RoleApi
from services.auth.models import DB_ROLE, outbox
from services.auth.service.account_emails import AccountEmailPolicy, AccountEmails
from services.auth.service.accounts import AccountService
from services.auth.service.api_keys import ApiKeyPolicy, ApiKeyService
from services.auth.service.email_delivery import email_sender_jobs
from services.auth.service.invitations import InvitationPolicy, InvitationService
from services.auth.service.memberships import MembershipService
from services.auth.service.operators import ensure_platform_admin
from services.auth.service.password_reset import PasswordReset
from services.auth.service.passwords import PasswordHasher
from services.auth.service.registration import Registration
from services.auth.service.revocation_feed import RevocationFeed
from services.auth.service.roles import RoleService
from services.auth.service.sessions import SessionService, TokenPolicy
from services.auth.service.signing_keys import SigningKeys
from services.auth.service.verification import EmailVerification
from services.auth.settings import AuthSettings


def build(settings: ServiceSettings) -> ServiceHost:
    assert isinstance(settings, AuthSettings)
    database = Database(settings.database_url, role=DB_ROLE, pool_size=settings.db_pool_size)
    keys = SigningKeys(database)
    revoked = RevokedSessions()
    verifier = AccessTokenVerifier(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience, revoked=revoked)
    hasher = PasswordHasher(
        rounds=settings.bcrypt_rounds, max_workers=settings.bcrypt_max_workers, max_queue=settings.bcrypt_max_queue
    )
    audit_outbox = Outbox(outbox)
    sessions = SessionService(
        keys=keys,
        hasher=hasher,
        outbox=audit_outbox,
        revoked=revoked,
        policy=TokenPolicy(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_ttl=timedelta(minutes=settings.access_token_expire_minutes),
            refresh_ttl=timedelta(days=settings.refresh_token_expire_days),
        ),
    )
    invitations = InvitationService(
        hasher=hasher,
        outbox=audit_outbox,
        sessions=sessions,
        policy=InvitationPolicy(
            ttl=timedelta(hours=settings.invitation_ttl_hours), public_base_url=settings.public_base_url
        ),
    )
    api_keys = ApiKeyService(
        outbox=audit_outbox,
        keys=keys,
        revoked=revoked,
        policy=ApiKeyPolicy(
            hash_key=settings.api_key_hash_key.get_secret_value().encode() if settings.api_key_hash_key else None,
            token_ttl=timedelta(seconds=settings.api_key_token_ttl_seconds),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        ),
    )
    memberships = MembershipService(
        hasher=hasher,
        outbox=audit_outbox,
        sessions=sessions,
        invitations=invitations,
        end_api_key_tokens=api_keys.end_tenant_tokens,
    )
    roles = RoleService(outbox=audit_outbox, revoke_members=sessions.revoke_member_sessions)
    accounts = AccountService(outbox=audit_outbox, sessions=sessions)
    account_emails = AccountEmails(AccountEmailPolicy(public_base_url=settings.public_base_url))
    registration = Registration(hasher=hasher, outbox=audit_outbox, emails=account_emails)
    verification = EmailVerification(outbox=audit_outbox, emails=account_emails)
    passwords = PasswordReset(hasher=hasher, outbox=audit_outbox, emails=account_emails, sessions=sessions)

    async def exchange_api_key(api_key: str) -> ExchangedToken:
        return await api_keys.exchange(database, api_key)

    feed = RevocationFeed(database, settings.database_url, revoked)
    relay, close_relay = relay_jobs(audit_outbox, database, settings)
    email_jobs = email_sender_jobs(database, settings)

    async def start() -> None:
        await keys.load()
        # Loaded before serving; the feed loads again once it listens, to
        # close the gap between this read and its LISTEN.
        await feed.load_live()
        if settings.platform_admin_email and settings.platform_admin_password:
            await ensure_platform_admin(
                database,
                hasher,
                audit_outbox,
                email=settings.platform_admin_email,
                password=settings.platform_admin_password.get_secret_value(),
            )

    async def stop() -> None:
        await close_relay()
        hasher.close()

    service = auth_service_pb2.DESCRIPTOR.services_by_name
    return ServiceHost(
        name="auth",
        listen_addr=settings.listen_addr,
        settings=settings,
        database=database,
        verifier=verifier,
        revocations=revoked,
        servicers=[
            (
                service["AuthService"],
                auth_service_pb2_grpc.add_AuthServiceServicer_to_server,
                AuthApi(database, sessions, accounts, invitations, keys),
            ),
            (
                accounts_service_pb2.DESCRIPTOR.services_by_name["AccountService"],
                accounts_service_pb2_grpc.add_AccountServiceServicer_to_server,
                AccountApi(database, accounts, registration, verification, passwords),
            ),
            (
                members_service_pb2.DESCRIPTOR.services_by_name["MemberService"],
                members_service_pb2_grpc.add_MemberServiceServicer_to_server,
                MemberApi(database, memberships, invitations),
            ),
            (
                roles_service_pb2.DESCRIPTOR.services_by_name["RoleService"],
                roles_service_pb2_grpc.add_RoleServiceServicer_to_server,
                RoleApi(database, roles),
            ),
            (
                emails_service_pb2.DESCRIPTOR.services_by_name["EmailService"],
                emails_service_pb2_grpc.add_EmailServiceServicer_to_server,
                EmailApi(database),
            ),
            (
                api_keys_service_pb2.DESCRIPTOR.services_by_name["ApiKeyService"],
                api_keys_service_pb2_grpc.add_ApiKeyServiceServicer_to_server,
                ApiKeyApi(database, api_keys),
            ),
            (
                service["AuthInternalService"],
                auth_service_pb2_grpc.add_AuthInternalServiceServicer_to_server,
                AuthInternalApi(database, memberships, verifier, revoked),
            ),
        ],
        background=[feed.run, feed.prune, relay, *email_jobs],
        on_start=[start],
        on_stop=[stop],
        # Keys presented to auth itself are exchanged in process, cached like anywhere else.
        api_keys=ApiKeyTokens(exchange_api_key),
    )
