"""Invitations: the only way into a tenant besides creating it.

A tenant admin names an email and a role; the invitation's token goes to that
email (through the email outbox), never to the inviter. Whoever holds the
token has proven control of the email, and accepting it is the one place a
membership is bound to an identity:
- no account yet: the person sets their name and password;
- a verified account: the person proves it, by password or access token;
- an unverified account (made by anyone, perhaps a squatter): the person sets
  a new name and password, the email becomes verified, and every session the
  account had is revoked.
The inviter's answer never depends on whether the email is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.db import Database, bind_scope
from kit.error_details import Precondition, Reason
from kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from kit.outbox import Outbox
from kit.pagination import one_page
from kit.validation import normalize_email, validate_password, validate_text
from services.auth.models import Invitation, User
from services.auth.repository import directory, emails, invitations, memberships, users
from services.auth.service.opaque_tokens import hash_opaque_token, new_opaque_token, scope_of_opaque_token
from services.auth.service.passwords import PasswordHasher
from services.auth.service.roles import OWNER, permissions_of, require_may_grant, role_name
from services.auth.service.sessions import Grant, IssuedTokens, SessionService
from services.auth.service.tenancy import tenant_of

# One message for every way a token can fail, so that it reveals nothing.
INVITATION_FAILED = "invitation token is invalid, expired, used or revoked"
INVITATION_TEMPLATE = "invitation"


@dataclass(frozen=True)
class InvitationPolicy:
    ttl: timedelta
    # Where the accept page lives: the emailed link is {public_base_url}/invitations/accept?token=...
    public_base_url: str


@dataclass(frozen=True)
class InvitationPage:
    invitations: list[Invitation]
    next_page_token: str


@dataclass(frozen=True)
class Acceptance:
    tenant_id: UUID
    tenant_slug: str
    role: str
    tokens: IssuedTokens


@dataclass(frozen=True)
class _Proof:
    """What the second step of an acceptance needs from the first."""

    user: User | None
    full_name: str
    password_hash: str | None


def invitation_status(invitation: Invitation, now: datetime) -> str:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    return "expired" if invitation.expires_at <= now else "pending"


class InvitationService:
    def __init__(
        self, *, hasher: PasswordHasher, outbox: Outbox, sessions: SessionService, policy: InvitationPolicy
    ) -> None:
        self._hasher = hasher
        self._outbox = outbox
        self._sessions = sessions
        self._policy = policy

    async def create(self, session: AsyncSession, principal: Principal, *, email: str, role: str) -> Invitation:
        """The same answer, with the same work, whatever the email is: no user is looked up."""
        tenant_id = tenant_of(principal)
        email = normalize_email("email", email)
        role = role_name("role", role)
        await memberships.lock_tenant_members(session, tenant_id)
        await require_may_grant(session, principal, tenant_id, role)
        # Membership of this tenant is something its admins can list anyway.
        if await memberships.member_status_by_email(session, tenant_id, email) in memberships.CURRENT_STATUSES:
            raise AlreadyExists("email: already a member of this tenant")
        now = datetime.now(UTC)
        replaced = await invitations.revoke_open_invitations(session, tenant_id, email, now)
        invitation = await self._send(
            session, tenant_id=tenant_id, email=email, role=role, invited_by=principal.user_id, now=now
        )
        await self._outbox.record(
            session,
            action="invitation.created",
            resource_type="invitation",
            resource_id=invitation.id,
            details={"email": email, "role": role, "replaced": [str(old) for old in replaced]},
        )
        return invitation

    async def invite_first_owner(self, session: AsyncSession, *, tenant_id: UUID, slug: str, email: str) -> None:
        """The operator's owner for a registered email: invited, never bound.
        Idempotent: an open owner invitation is left as it is."""
        open_invitation = await invitations.find_open_invitation(session, tenant_id, email)
        if open_invitation is not None and open_invitation.role == OWNER:
            return
        now = datetime.now(UTC)
        await invitations.revoke_open_invitations(session, tenant_id, email, now)
        invitation = await self._send(session, tenant_id=tenant_id, email=email, role=OWNER, invited_by=None, now=now)
        await self._outbox.record(
            session,
            action="invitation.created",
            resource_type="invitation",
            resource_id=invitation.id,
            tenant_id=tenant_id,
            details={"email": email, "role": OWNER, "reason": "tenant_creation"},
        )

    async def list_invitations(
        self, session: AsyncSession, principal: Principal, *, before: tuple[datetime, UUID] | None, page_size: int
    ) -> InvitationPage:
        rows = await invitations.list_invitations(session, tenant_of(principal), before=before, limit=page_size + 1)
        return InvitationPage(*one_page(rows, page_size, lambda row: (row.created_at, row.id)))

    async def revoke(self, session: AsyncSession, principal: Principal, *, invitation_id: UUID) -> Invitation:
        tenant_id = tenant_of(principal)
        await memberships.lock_tenant_members(session, tenant_id)
        invitation = await self._manageable(session, principal, tenant_id, invitation_id)
        now = datetime.now(UTC)
        if invitation_status(invitation, now) not in ("pending", "expired"):
            raise _not_open(invitation)
        if invitation.role == OWNER and not await self._tenant_keeps_an_owner(session, tenant_id, invitation.id):
            raise FailedPrecondition(
                "invitation_id: the tenant has no owner yet; this is its last owner invitation",
                violation=Precondition.LAST_OWNER_INVITATION,
                subject=f"invitations/{invitation.id}",
            )
        revoked = await invitations.revoke_invitation(session, invitation.id, now)
        await self._outbox.record(
            session, action="invitation.revoked", resource_type="invitation", resource_id=invitation.id
        )
        return revoked

    @staticmethod
    async def _tenant_keeps_an_owner(session: AsyncSession, tenant_id: UUID, revoking: UUID) -> bool:
        if await memberships.count_active_with_role(session, tenant_id, OWNER):
            return True
        return bool(await invitations.count_open_with_role(session, tenant_id, OWNER, excluding=revoking))

    async def resend(self, session: AsyncSession, principal: Principal, *, invitation_id: UUID) -> Invitation:
        """A new token and expiry; the old token stops working."""
        tenant_id = tenant_of(principal)
        invitation = await self._manageable(session, principal, tenant_id, invitation_id)
        now = datetime.now(UTC)
        if invitation_status(invitation, now) not in ("pending", "expired"):
            raise _not_open(invitation)
        token = new_opaque_token(tenant_id)
        renewed = await invitations.renew_invitation(
            session, invitation.id, token_hash=hash_opaque_token(token), expires_at=now + self._policy.ttl
        )
        await self._queue_email(session, renewed, token, now)
        await self._outbox.record(
            session, action="invitation.resent", resource_type="invitation", resource_id=invitation.id
        )
        return renewed

    async def _manageable(
        self, session: AsyncSession, principal: Principal, tenant_id: UUID, invitation_id: UUID
    ) -> Invitation:
        invitation = await invitations.find_invitation(session, tenant_id, invitation_id, for_update=True)
        if invitation is None:
            raise NotFound("invitation_id: no such invitation in this tenant")
        if invitation.role == OWNER and OWNER not in principal.roles:
            raise PermissionDenied(
                "invitation_id: only owners may manage owner invitations", reason=Reason.OWNER_REQUIRED
            )
        return invitation

    async def _send(
        self,
        session: AsyncSession,
        *,
        tenant_id: UUID,
        email: str,
        role: str,
        invited_by: UUID | None,
        now: datetime,
    ) -> Invitation:
        token = new_opaque_token(tenant_id)
        invitation = await invitations.insert_invitation(
            session,
            tenant_id=tenant_id,
            email=email,
            role=role,
            token_hash=hash_opaque_token(token),
            invited_by=invited_by,
            now=now,
            expires_at=now + self._policy.ttl,
        )
        await self._queue_email(session, invitation, token, now)
        return invitation

    async def _queue_email(self, session: AsyncSession, invitation: Invitation, token: str, now: datetime) -> None:
        tenant = await directory.find_tenant(session, invitation.tenant_id)
        await emails.enqueue_email(
            session,
            tenant_id=invitation.tenant_id,
            recipient=invitation.email,
            template=INVITATION_TEMPLATE,
            payload={
                "link": f"{self._policy.public_base_url.rstrip('/')}/invitations/accept?token={token}",
                "tenant_slug": tenant.slug if tenant else "",
                "role": invitation.role,
                "expires_at": invitation.expires_at.isoformat(),
            },
            now=now,
        )

    # Acceptance ---------------------------------------------------------------

    async def accept(
        self, database: Database, caller: Principal | None, *, token: str, full_name: str, password: str
    ) -> Acceptance:
        """Two short units of work around any password hashing or checking, as login does."""
        if not token:
            raise InvalidArgument("token", "is required")
        tenant_id = scope_of_opaque_token(
            token, Unauthenticated(INVITATION_FAILED, reason=Reason.INVITATION_TOKEN_INVALID)
        )
        token_hash = hash_opaque_token(token)
        async with database.unit_of_work(scope=str(tenant_id)) as session:
            invitation = await invitations.find_invitation_by_token(session, token_hash)
            if invitation is None or invitation_status(invitation, datetime.now(UTC)) != "pending":
                raise Unauthenticated(INVITATION_FAILED, reason=Reason.INVITATION_TOKEN_INVALID)
            invitee = await users.find_user_by_email(session, invitation.email)
        proof = await self._prove(caller, invitee, full_name=full_name, password=password)
        async with database.unit_of_work(scope=str(tenant_id)) as session:
            return await self._join(session, tenant_id, token_hash, proof)

    async def _prove(self, caller: Principal | None, invitee: User | None, *, full_name: str, password: str) -> _Proof:
        if caller is not None and (invitee is None or caller.user_id != invitee.id):
            raise PermissionDenied(
                "the invitation was sent to another email address than your account's",
                reason=Reason.INVITATION_EMAIL_MISMATCH,
            )
        if invitee is not None and invitee.email_verified_at is not None:
            if caller is None and not await self._hasher.verify(password, invitee.password_hash):
                raise Unauthenticated(
                    "password: wrong password for the invited account", reason=Reason.INVALID_CREDENTIALS
                )
            return _Proof(invitee, invitee.full_name, None)
        # A new account, or an unverified one that the email's owner now takes over.
        full_name = validate_text("full_name", full_name, maximum=200)
        validate_password("password", password)
        return _Proof(invitee, full_name, await self._hasher.hash(password))

    async def _join(self, session: AsyncSession, tenant_id: UUID, token_hash: bytes, proof: _Proof) -> Acceptance:
        now = datetime.now(UTC)
        await memberships.lock_tenant_members(session, tenant_id)
        invitation = await invitations.find_invitation_by_token(session, token_hash)
        if invitation is None:
            raise Unauthenticated(INVITATION_FAILED, reason=Reason.INVITATION_TOKEN_INVALID)
        user_id = await self._bind_identity(session, invitation, proof, now)
        if await invitations.redeem_invitation(session, token_hash, user_id=user_id, now=now) is None:
            raise Unauthenticated(INVITATION_FAILED, reason=Reason.INVITATION_TOKEN_INVALID)
        await bind_scope(session, tenant=tenant_id, subject=user_id)
        existing = await memberships.find_membership(session, tenant_id, user_id)
        if existing is not None and existing.status == "suspended":
            raise PermissionDenied("your membership in this tenant is suspended", reason=Reason.MEMBERSHIP_SUSPENDED)
        if existing is None:
            await memberships.insert_membership_if_absent(
                session,
                tenant_id=tenant_id,
                user_id=user_id,
                role=invitation.role,
                joined_via="invitation",
                invited_by=invitation.invited_by,
                now=now,
            )
        elif existing.status == "removed":
            await memberships.rejoin_removed_membership(
                session,
                tenant_id=tenant_id,
                user_id=user_id,
                role=invitation.role,
                invited_by=invitation.invited_by,
                now=now,
            )
        role = invitation.role if existing is None or existing.status == "removed" else existing.role
        await invitations.revoke_open_invitations(session, tenant_id, invitation.email, now)
        await self._outbox.record(
            session,
            action="invitation.accepted",
            resource_type="invitation",
            resource_id=invitation.id,
            tenant_id=tenant_id,
            user_id=user_id,
            details={"email": invitation.email, "role": role},
        )
        await self._outbox.record(
            session,
            action="membership.created",
            resource_type="membership",
            resource_id=user_id,
            tenant_id=tenant_id,
            user_id=user_id,
            details={"email": invitation.email, "role": role, "joined_via": "invitation"},
        )
        tenant = await directory.find_tenant(session, tenant_id)
        assert tenant is not None
        grant = Grant(tenant_id, role, await permissions_of(session, tenant_id, role))
        tokens = await self._sessions.start_session(session, user_id, grant, how="invitation")
        return Acceptance(tenant_id, tenant.slug, role, tokens)

    async def _bind_identity(self, session: AsyncSession, invitation: Invitation, proof: _Proof, now: datetime) -> UUID:
        """The user the invitation binds: the proven account, a new one, or an
        unverified one taken over by the email's owner."""
        if proof.password_hash is None:
            assert proof.user is not None
            return proof.user.id
        if proof.user is None:
            user_id = await users.insert_user_if_absent(
                session,
                email=invitation.email,
                full_name=proof.full_name,
                password_hash=proof.password_hash,
                now=now,
                email_verified=True,
            )
            if user_id is None:
                raise FailedPrecondition(
                    "email: an account was registered meanwhile; accept the invitation again",
                    violation=Precondition.ACCOUNT_CHANGED,
                    subject="email",
                )
            await self._outbox.record(
                session,
                action="user.created",
                resource_type="user",
                resource_id=user_id,
                tenant_id=invitation.tenant_id,
                user_id=user_id,
                details={"email": invitation.email, "email_verified": True},
            )
            return user_id
        user_id = proof.user.id
        if not await users.claim_unverified_user(
            session, user_id, full_name=proof.full_name, password_hash=proof.password_hash, now=now
        ):
            raise FailedPrecondition(
                "email: the account was verified meanwhile; accept the invitation again",
                violation=Precondition.ACCOUNT_CHANGED,
                subject="email",  # not the account's id: the caller may hold only the invitation
            )
        await bind_scope(session, tenant=invitation.tenant_id, subject=user_id)
        revoked = await self._sessions.revoke_user_sessions(session, user_id, "email_ownership_proven")
        await self._outbox.record(
            session,
            action="user.email_verified",
            resource_type="user",
            resource_id=user_id,
            tenant_id=invitation.tenant_id,
            user_id=user_id,
            details={"email": invitation.email, "password_replaced": True, "sessions_revoked": revoked},
        )
        return user_id


def _not_open(invitation: Invitation) -> FailedPrecondition:
    return FailedPrecondition(
        "invitation_id: the invitation was already accepted or revoked",
        violation=Precondition.INVITATION_NOT_OPEN,
        subject=f"invitations/{invitation.id}",
    )
