"""Every service refuses every forged, altered, expired or misdirected token."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tenantry.audit.v1 import audit_service_pb2
from tenantry.auth.v1 import auth_service_pb2, members_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from tests.stack import INTERNAL, Stack, Tenant, bearer, eventually, rpc_error


@pytest.fixture(scope="module")
def victim(stack: Stack) -> Tenant:
    return stack.create_tenant("victim")


@pytest.fixture(scope="module")
def real_key(stack: Stack) -> tuple[str, Ed25519PrivateKey, bytes]:
    """The auth service's real signing key, so that forged claims carry a valid signature."""
    kid, pem, x = stack.sql(
        "SELECT kid, private_key_pem, public_jwk->>'x' FROM auth.signing_keys WHERE retired_at IS NULL"
    )[0]
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return kid, private, base64.urlsafe_b64decode(x + "==")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def good_claims(tenant: Tenant) -> dict[str, Any]:
    return jwt.decode(tenant.owner_token, options={"verify_signature": False})


def sign(claims: dict[str, Any], key: Any, kid: str, **header: Any) -> str:
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt", **header})


def attacks(victim: Tenant, real_key: tuple[str, Ed25519PrivateKey, bytes]) -> dict[str, str]:
    kid, private, public_raw = real_key
    claims = good_claims(victim)
    now = int(time.time())
    header, payload, signature = victim.owner_token.split(".")
    tampered_payload = _b64(json.dumps({**claims, "roles": ["platform_admin"]}).encode())
    other_tenant = {**claims, "tid": str(uuid.uuid4())}
    forged: dict[str, str] = {
        "alg_none": _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": kid}).encode()) + "." + payload + ".",
        "another_key_same_kid": sign(claims, Ed25519PrivateKey.generate(), kid),
        "unknown_kid": sign(claims, private, "not-a-key"),
        "hs256_with_public_key": jwt.encode(
            claims, public_raw.hex(), algorithm="HS256", headers={"kid": kid, "typ": "at+jwt"}
        ),
        "hs256_with_public_key_bytes": _hs256_raw(header_kid=kid, claims=claims, secret=public_raw),
        "tampered_payload": f"{header}.{tampered_payload}.{signature}",
        "tampered_signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "expired": sign({**claims, "exp": now - 60, "iat": now - 1000, "nbf": now - 1000}, private, kid),
        "not_yet_valid": sign({**claims, "nbf": now + 600, "exp": now + 1200}, private, kid),
        "wrong_issuer": sign({**claims, "iss": "https://evil.test"}, private, kid),
        "wrong_audience": sign({**claims, "aud": "another-api"}, private, kid),
        "refresh_typ_claim": sign({**claims, "typ": "refresh"}, private, kid),
        "id_token_header": sign(claims, private, kid, typ="JWT"),
        "missing_exp": sign({k: v for k, v in claims.items() if k != "exp"}, private, kid),
        "missing_sid": sign({k: v for k, v in claims.items() if k != "sid"}, private, kid),
        "non_uuid_subject": sign({**claims, "sub": "root"}, private, kid),
        "refresh_token_as_bearer": victim.owner_refresh,
        "garbage": "not.a.token",
        "empty_segments": "..",
    }
    # Signed by the real key: claims are authentic, so it must work (control).
    forged["control_other_tenant_signed"] = sign(other_tenant, private, kid)
    return forged


def _hs256_raw(*, header_kid: str, claims: dict[str, Any], secret: bytes) -> str:
    import hashlib
    import hmac

    head = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": header_kid}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


ATTACKS = [
    "alg_none",
    "another_key_same_kid",
    "unknown_kid",
    "hs256_with_public_key",
    "hs256_with_public_key_bytes",
    "tampered_payload",
    "tampered_signature",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "refresh_typ_claim",
    "id_token_header",
    "missing_exp",
    "missing_sid",
    "non_uuid_subject",
    "refresh_token_as_bearer",
    "garbage",
    "empty_segments",
]


def calls(stack: Stack) -> dict[str, Callable[[str], Any]]:
    return {
        "auth": lambda token: stack.members.ListMembers(
            members_service_pb2.ListMembersRequest(), metadata=bearer(token)
        ),
        "tenants": lambda token: stack.tenants.GetMyTenant(
            tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(token)
        ),
        "audit": lambda token: stack.audit.ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(), metadata=bearer(token)
        ),
    }


@pytest.mark.parametrize("service", ["auth", "tenants", "audit"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_forged_token_is_unauthenticated(stack: Stack, victim: Tenant, real_key, service: str, attack: str) -> None:  # type: ignore[no-untyped-def]
    token = attacks(victim, real_key)[attack]
    error = rpc_error(lambda: calls(stack)[service](token))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()


@pytest.mark.parametrize("service", ["auth", "tenants", "audit"])
def test_genuine_token_is_accepted(stack: Stack, victim: Tenant, service: str) -> None:
    calls(stack)[service](victim.owner_token)


@pytest.mark.parametrize("service", ["auth", "tenants", "audit"])
@pytest.mark.parametrize("metadata", [(), (("authorization", "Basic dXNlcjpwYXNz"),), (("authorization", "Bearer "),)])
def test_missing_or_non_bearer_credentials_are_unauthenticated(stack: Stack, service: str, metadata) -> None:  # type: ignore[no-untyped-def]
    stubs = {
        "auth": lambda: stack.members.ListMembers(members_service_pb2.ListMembersRequest(), metadata=metadata),
        "tenants": lambda: stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=metadata),
        "audit": lambda: stack.audit.ListAuditEvents(audit_service_pb2.ListAuditEventsRequest(), metadata=metadata),
    }
    assert rpc_error(stubs[service]).code() == grpc.StatusCode.UNAUTHENTICATED


def test_introspection_reports_forged_tokens_inactive(stack: Stack, victim: Tenant, real_key) -> None:  # type: ignore[no-untyped-def]
    for attack, token in attacks(victim, real_key).items():
        reply = stack.auth_internal.IntrospectToken(
            auth_service_pb2.IntrospectTokenRequest(token=token), metadata=INTERNAL
        )
        assert reply.active == attack.startswith("control_"), attack
    genuine = stack.auth_internal.IntrospectToken(
        auth_service_pb2.IntrospectTokenRequest(token=victim.owner_token), metadata=INTERNAL
    )
    assert genuine.active and genuine.tid == victim.id and list(genuine.roles) == ["owner"]
    claims = jwt.decode(victim.owner_token, options={"verify_signature": False})
    assert genuine.expires_at.seconds == claims["exp"] and genuine.sid == claims["sid"]


def test_introspection_reports_a_token_inactive_once_its_session_ends_though_it_was_answered_before(
    stack: Stack,
) -> None:
    tenant = stack.create_tenant()

    def introspect() -> auth_service_pb2.IntrospectTokenResponse:
        return stack.auth_internal.IntrospectToken(
            auth_service_pb2.IntrospectTokenRequest(token=tenant.owner_token), metadata=INTERNAL
        )

    first, again = introspect(), introspect()
    assert first.active and again == first
    stack.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=bearer(tenant.owner_token))
    assert eventually(lambda: not introspect().active)


def test_introspection_needs_the_internal_token(stack: Stack, victim: Tenant) -> None:
    for metadata in [(), (("x-internal-token", "wrong-token-wrong-token"),), bearer(victim.owner_token)]:
        error = rpc_error(
            lambda m=metadata: stack.auth_internal.IntrospectToken(
                auth_service_pb2.IntrospectTokenRequest(token=victim.owner_token), metadata=m
            )
        )
        # A person's valid token is authenticated, but no platform service account: refused as such.
        expected = grpc.StatusCode.PERMISSION_DENIED if metadata and metadata[0][0] == "authorization" else None
        assert error.code() == (expected or grpc.StatusCode.UNAUTHENTICATED)


def test_roles_are_checked_per_rpc(stack: Stack, victim: Tenant) -> None:
    error = rpc_error(
        lambda: stack.tenants.ListTenants(tenants_service_pb2.ListTenantsRequest(), metadata=bearer(victim.owner_token))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
