"""Service accounts and the client-credentials grant, over gRPC against the real services."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from tenantry.auth.v1 import roles_service_pb2
from tenantry.auth.v1 import service_accounts_service_pb2 as pb
from tenantry.auth.v1 import service_accounts_service_pb2_grpc as pb_grpc
from tenantry.tenants.v1 import tenants_service_pb2

from kit.error_details import details_in
from tests.stack import Stack, Tenant, bearer, eventually, rpc_error

TOKEN_URL = "http://127.0.0.1:8080/api/v1/oauth/token"  # PUBLIC_BASE_URL's default
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def accounts(stack: Stack) -> pb_grpc.ServiceAccountServiceStub:
    return pb_grpc.ServiceAccountServiceStub(stack.channels["auth"])


def oauth(stack: Stack) -> pb_grpc.OAuthServiceStub:
    return pb_grpc.OAuthServiceStub(stack.channels["auth"])


def basic(client_id: str, secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()),)


def new_account(stack: Stack, token: str, *permissions: str, name: str | None = None) -> pb.ServiceAccount:
    return accounts(stack).CreateServiceAccount(
        pb.CreateServiceAccountRequest(name=name or f"svc-{uuid.uuid4().hex[:8]}", permissions=list(permissions)),
        metadata=bearer(token),
        timeout=10,
    )


def new_secret(stack: Stack, token: str, account: pb.ServiceAccount) -> pb.ServiceAccountSecret:
    return accounts(stack).AddServiceAccountSecret(
        pb.AddServiceAccountSecretRequest(id=account.id), metadata=bearer(token), timeout=10
    )


def token_with_secret(stack: Stack, client_id: str, secret: str, **fields: str) -> pb.CreateTokenResponse:
    return oauth(stack).CreateToken(
        pb.CreateTokenRequest(grant_type="client_credentials", **fields), metadata=basic(client_id, secret), timeout=10
    )


def my_tenant(stack: Stack, token: str) -> Any:
    return stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(token), timeout=10)


def oauth_error(error: grpc.RpcError) -> str | None:
    """The RFC 6749 error code the refusal's ErrorInfo reason names (OAUTH_INVALID_CLIENT: invalid_client)."""
    infos = [d for d in details_in(error.trailing_metadata()) if isinstance(d, error_details_pb2.ErrorInfo)]  # type: ignore[attr-defined]
    return infos[0].reason.removeprefix("OAUTH_").lower() if infos and infos[0].reason.startswith("OAUTH_") else None


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> Tenant:
    return stack.create_tenant("sa")


def test_client_secret_by_basic_and_by_form_gives_a_token_that_works_on_a_real_rpc(
    stack: Stack, tenant: Tenant
) -> None:
    account = new_account(stack, tenant.owner_token, "tenant.read")
    secret = new_secret(stack, tenant.owner_token, account)
    assert secret.client_secret.startswith("tsa_") and secret.client_id == account.client_id

    by_basic = token_with_secret(stack, account.client_id, secret.client_secret)
    by_form = oauth(stack).CreateToken(
        pb.CreateTokenRequest(
            grant_type="client_credentials", client_id=account.client_id, client_secret=secret.client_secret
        ),
        timeout=10,
    )
    for reply in (by_basic, by_form):
        assert reply.token_type == "Bearer" and 300 <= reply.expires_in <= 900
        claims = jwt.decode(reply.access_token, options={"verify_signature": False})
        assert claims["sub"] == account.id and claims["actor_type"] == "service_account"
        assert claims["tid"] == tenant.id and claims["perms"] == ["tenant.read"]
        assert my_tenant(stack, reply.access_token).id == tenant.id
    # Only the hash is stored, and the listing never shows the secret.
    stored = stack.sql("SELECT secret_hash FROM auth.service_account_credentials WHERE account_id = %s", (account.id,))
    assert stored and secret.client_secret.encode() not in bytes(stored[0][0])
    listed = accounts(stack).GetServiceAccount(
        pb.GetServiceAccountRequest(id=account.id), metadata=bearer(tenant.owner_token)
    )
    assert secret.client_secret not in str(listed)


def test_a_wrong_secret_or_an_unknown_client_is_invalid_client(stack: Stack, tenant: Tenant) -> None:
    account = new_account(stack, tenant.owner_token, "tenant.read")
    new_secret(stack, tenant.owner_token, account)
    for client_id, secret in [
        (account.client_id, "tsa_wrong"),
        ("sa_platform_" + uuid.uuid4().hex, "x"),
        ("nope", "x"),
    ]:
        error = rpc_error(lambda c=client_id, s=secret: token_with_secret(stack, c, s))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED and oauth_error(error) == "invalid_client"
    unsupported = rpc_error(lambda: oauth(stack).CreateToken(pb.CreateTokenRequest(grant_type="password"), timeout=10))
    assert oauth_error(unsupported) == "unsupported_grant_type"
    # Two authentication methods at once are refused (RFC 6749 §2.3).
    both = rpc_error(
        lambda: oauth(stack).CreateToken(
            pb.CreateTokenRequest(grant_type="client_credentials", client_id=account.client_id, client_secret="x"),
            metadata=basic(account.client_id, "x"),
            timeout=10,
        )
    )
    assert oauth_error(both) == "invalid_request"


def test_scope_narrows_the_token_and_cannot_widen_it(stack: Stack, tenant: Tenant) -> None:
    account = new_account(stack, tenant.owner_token, "tenant.read", "members.read")
    secret = new_secret(stack, tenant.owner_token, account)
    narrowed = token_with_secret(stack, account.client_id, secret.client_secret, scope="members.read")
    assert narrowed.scope == "members.read"
    assert jwt.decode(narrowed.access_token, options={"verify_signature": False})["perms"] == ["members.read"]
    error = rpc_error(lambda: token_with_secret(stack, account.client_id, secret.client_secret, scope="audit.read"))
    assert oauth_error(error) == "invalid_scope"


# private_key_jwt --------------------------------------------------------------


def registered_key(stack: Stack, tenant: Tenant, account: pb.ServiceAccount) -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    jwk = jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    kid = f"k-{uuid.uuid4().hex[:6]}"
    document = struct_pb2.Struct()
    document.update({**jwk, "kid": kid})
    added = accounts(stack).AddServiceAccountKey(
        pb.AddServiceAccountKeyRequest(id=account.id, public_key_jwk=document), metadata=bearer(tenant.owner_token)
    )
    assert added.type == pb.ServiceAccountCredential.TYPE_PUBLIC_KEY and added.algorithm == "EdDSA"
    return private, kid


def assertion(private: Any, kid: str, client_id: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid})


def token_with_assertion(stack: Stack, signed: str, client_id: str = "") -> pb.CreateTokenResponse:
    return oauth(stack).CreateToken(
        pb.CreateTokenRequest(
            grant_type="client_credentials",
            client_id=client_id,
            client_assertion_type=JWT_BEARER,
            client_assertion=signed,
        ),
        timeout=10,
    )


def test_private_key_jwt_is_accepted_once_and_checked_strictly(stack: Stack, tenant: Tenant) -> None:
    account = new_account(stack, tenant.owner_token, "tenant.read")
    private, kid = registered_key(stack, tenant, account)
    signed = assertion(private, kid, account.client_id)
    reply = token_with_assertion(stack, signed, account.client_id)
    assert my_tenant(stack, reply.access_token).id == tenant.id

    refused = {
        "replayed": signed,
        "wrong audience": assertion(private, kid, account.client_id, aud="https://elsewhere.test/token"),
        "expired": assertion(private, kid, account.client_id, exp=int(time.time()) - 60),
        "too long-lived": assertion(private, kid, account.client_id, exp=int(time.time()) + 3600),
        "sub differs": assertion(private, kid, account.client_id, sub="sa_platform_" + uuid.uuid4().hex),
        "no jti": jwt.encode(
            {"iss": account.client_id, "sub": account.client_id, "aud": TOKEN_URL, "exp": int(time.time()) + 60},
            private,
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
        "alg none": jwt.encode(
            {
                "iss": account.client_id,
                "sub": account.client_id,
                "aud": TOKEN_URL,
                "exp": int(time.time()) + 60,
                "jti": uuid.uuid4().hex,
            },
            None,
            algorithm="none",
            headers={"kid": kid},
        ),
        "another key": assertion(Ed25519PrivateKey.generate(), kid, account.client_id),
        "HS256 with the public key": jwt.api_jws.PyJWS().encode(
            jwt.utils.force_bytes('{"iss":"x"}'), b"k" * 32, algorithm="HS256", headers={"kid": kid}
        ),
    }
    for why, bad in refused.items():
        error = rpc_error(lambda b=bad: token_with_assertion(stack, b, account.client_id))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, why
        assert oauth_error(error) == "invalid_client", why


def test_keys_that_are_private_symmetric_or_weak_are_refused(stack: Stack, tenant: Tenant) -> None:
    account = new_account(stack, tenant.owner_token)
    private = Ed25519PrivateKey.generate()
    bad_keys = [
        {**jwt.algorithms.OKPAlgorithm.to_jwk(private, as_dict=True), "kid": "private"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "symmetric"},
        {**jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)},  # no kid
        {**jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": "k", "alg": "RS256"},
    ]
    for jwk in bad_keys:
        document = struct_pb2.Struct()
        document.update(jwk)
        error = rpc_error(
            lambda d=document: accounts(stack).AddServiceAccountKey(
                pb.AddServiceAccountKeyRequest(id=account.id, public_key_jwk=d), metadata=bearer(tenant.owner_token)
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "public_key_jwk" in error.details(), jwk


# Isolation, escalation, rotation, revocation -----------------------------------------


def test_a_tenant_account_cannot_reach_another_tenant(stack: Stack, tenant: Tenant) -> None:
    other = stack.create_tenant("sa-other")
    account = new_account(stack, tenant.owner_token, "tenant.read")
    secret = new_secret(stack, tenant.owner_token, account)
    token = token_with_secret(stack, account.client_id, secret.client_secret).access_token
    assert my_tenant(stack, token).id == tenant.id  # the tenant comes from the token alone

    # The other tenant's admins neither see nor touch it.
    listed = accounts(stack).ListServiceAccounts(pb.ListServiceAccountsRequest(), metadata=bearer(other.owner_token))
    assert account.id not in [each.id for each in listed.service_accounts]
    for call in (
        lambda: accounts(stack).GetServiceAccount(
            pb.GetServiceAccountRequest(id=account.id), metadata=bearer(other.owner_token)
        ),
        lambda: new_secret(stack, other.owner_token, account),
    ):
        assert rpc_error(call).code() == grpc.StatusCode.NOT_FOUND
    # Naming the account under the other tenant's scope finds nothing.
    forged = f"sa_{uuid.UUID(other.id).hex}_{uuid.UUID(account.id).hex}"
    assert oauth_error(rpc_error(lambda: token_with_secret(stack, forged, secret.client_secret))) == "invalid_client"
    # Nor is the row readable under the other tenant's binding, even to a query without filters.
    rows = stack.sql("SELECT id FROM auth.service_accounts", role="tenantry_auth", tenant=other.id)
    assert str(account.id) not in [str(row[0]) for row in rows]


def test_nobody_gives_an_account_more_than_they_hold(stack: Stack, tenant: Tenant) -> None:
    stack.roles.CreateRole(
        roles_service_pb2.CreateRoleRequest(name="robots", permissions=["service_accounts.manage", "tenant.read"]),
        metadata=bearer(tenant.owner_token),
        timeout=10,
    )
    member = stack.add_member(tenant, f"robots-{uuid.uuid4().hex[:6]}@sa.test", role="robots").access_token
    assert new_account(stack, member, "tenant.read").permissions == ["tenant.read"]
    escalation = rpc_error(lambda: new_account(stack, member, "members.manage"))
    assert escalation.code() == grpc.StatusCode.PERMISSION_DENIED
    for platform_only in ("audit.ingest", "auth.revocations.watch"):
        error = rpc_error(lambda p=platform_only: new_account(stack, tenant.owner_token, p))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    viewer = stack.add_member(tenant, f"viewer-{uuid.uuid4().hex[:6]}@sa.test", role="viewer").access_token
    assert rpc_error(lambda: new_account(stack, viewer)).code() == grpc.StatusCode.PERMISSION_DENIED


def test_rotating_one_accounts_secret_leaves_the_others_working(stack: Stack, tenant: Tenant) -> None:
    rotated, untouched = (new_account(stack, tenant.owner_token, "tenant.read") for _ in range(2))
    old = new_secret(stack, tenant.owner_token, rotated)
    other = new_secret(stack, tenant.owner_token, untouched)
    old_token = token_with_secret(stack, rotated.client_id, old.client_secret).access_token
    other_token = token_with_secret(stack, untouched.client_id, other.client_secret).access_token

    new = accounts(stack).RotateServiceAccountSecret(
        pb.RotateServiceAccountSecretRequest(id=rotated.id), metadata=bearer(tenant.owner_token)
    )
    assert new.client_secret != old.client_secret
    assert (
        oauth_error(rpc_error(lambda: token_with_secret(stack, rotated.client_id, old.client_secret)))
        == "invalid_client"
    )
    eventually(
        lambda: rpc_error(lambda: my_tenant(stack, old_token)).code() == grpc.StatusCode.UNAUTHENTICATED, timeout=1
    )
    assert my_tenant(stack, token_with_secret(stack, rotated.client_id, new.client_secret).access_token).id == tenant.id
    assert my_tenant(stack, other_token).id == tenant.id
    assert token_with_secret(stack, untouched.client_id, other.client_secret).access_token


def test_deleting_an_account_or_revoking_a_credential_ends_its_tokens_within_a_second(
    stack: Stack, tenant: Tenant
) -> None:
    account = new_account(stack, tenant.owner_token, "tenant.read")
    first, second = new_secret(stack, tenant.owner_token, account), new_secret(stack, tenant.owner_token, account)
    first_token = token_with_secret(stack, account.client_id, first.client_secret).access_token
    second_token = token_with_secret(stack, account.client_id, second.client_secret).access_token

    accounts(stack).RevokeServiceAccountCredential(
        pb.RevokeServiceAccountCredentialRequest(id=account.id, credential_id=first.credential.id),
        metadata=bearer(tenant.owner_token),
    )
    started = time.monotonic()
    eventually(
        lambda: rpc_error(lambda: my_tenant(stack, first_token)).code() == grpc.StatusCode.UNAUTHENTICATED, timeout=1
    )
    assert time.monotonic() - started < 1
    assert my_tenant(stack, second_token).id == tenant.id

    accounts(stack).DeleteServiceAccount(
        pb.DeleteServiceAccountRequest(id=account.id), metadata=bearer(tenant.owner_token)
    )
    eventually(
        lambda: rpc_error(lambda: my_tenant(stack, second_token)).code() == grpc.StatusCode.UNAUTHENTICATED, timeout=1
    )
    assert (
        oauth_error(rpc_error(lambda: token_with_secret(stack, account.client_id, second.client_secret)))
        == "invalid_client"
    )


def test_changes_and_token_issuance_are_audited(stack: Stack, tenant: Tenant) -> None:
    account = new_account(stack, tenant.owner_token, "tenant.read")
    secret = new_secret(stack, tenant.owner_token, account)
    token_with_secret(stack, account.client_id, secret.client_secret)
    rpc_error(lambda: token_with_secret(stack, account.client_id, "tsa_wrong"))

    def actions() -> set[str]:
        events = stack.audit_events(tenant.owner_token, resource_type="service_account")
        found = {event.action for event in events if event.resource_id == account.id}
        assert {
            "service_account.created",
            "service_account.credential_added",
            "auth.service_account.token_issued",
            "auth.service_account.authentication_failed",
        } <= found, found
        return found

    eventually(actions)


def test_the_operator_manages_platform_accounts_with_platform_permissions_only(stack: Stack) -> None:
    operator = stack.operator_token()
    account = new_account(stack, operator, "audit.ingest")
    assert account.client_id.startswith("sa_platform_") and account.tenant_id == ""
    assert rpc_error(lambda: new_account(stack, operator, "tenant.read")).code() == grpc.StatusCode.INVALID_ARGUMENT
    secret = new_secret(stack, operator, account)
    claims = jwt.decode(
        token_with_secret(stack, account.client_id, secret.client_secret).access_token,
        options={"verify_signature": False},
    )
    assert "tid" not in claims and claims["perms"] == ["audit.ingest"]


def test_suspending_the_tenant_ends_its_accounts_tokens_and_refuses_new_ones(stack: Stack) -> None:
    tenant = stack.create_tenant("sa-suspended")
    account = new_account(stack, tenant.owner_token, "tenant.read")
    secret = new_secret(stack, tenant.owner_token, account)
    token = token_with_secret(stack, account.client_id, secret.client_secret).access_token
    stack.tenants.SuspendTenant(
        tenants_service_pb2.SuspendTenantRequest(tenant_id=tenant.id),
        metadata=bearer(stack.operator_token()),
        timeout=30,
    )
    eventually(lambda: rpc_error(lambda: my_tenant(stack, token)).code() == grpc.StatusCode.UNAUTHENTICATED, timeout=1)
    refused = rpc_error(lambda: token_with_secret(stack, account.client_id, secret.client_secret))
    assert oauth_error(refused) == "unauthorized_client"
