"""Password login: tokens, claims, and failures that reveal nothing."""

from __future__ import annotations

import hashlib
import time

import grpc
import jwt
import pytest
from tenantry.auth.v1 import auth_service_pb2

from tests.stack import OPERATOR_EMAIL, OPERATOR_PASSWORD, OWNER_PASSWORD, Stack, eventually, rpc_error


def claims_of(token: str) -> dict:  # type: ignore[type-arg]
    return jwt.decode(token, options={"verify_signature": False})


def test_login_returns_a_bearer_pair_with_every_claim(stack: Stack) -> None:
    tenant = stack.create_tenant()
    tokens = stack.login(tenant.owner_email, OWNER_PASSWORD)
    assert tokens.token_type == "Bearer"
    assert tokens.expires_in == 15 * 60
    assert tokens.refresh_token and tokens.refresh_token != tokens.access_token
    header = jwt.get_unverified_header(tokens.access_token)
    assert header["alg"] == "EdDSA" and header["typ"] == "at+jwt" and header["kid"]
    claims = claims_of(tokens.access_token)
    assert set(claims) >= {"iss", "aud", "sub", "tid", "roles", "perms", "sid", "jti", "typ", "iat", "nbf", "exp"}
    assert claims["tid"] == tenant.id
    assert claims["roles"] == ["owner"]
    assert claims["typ"] == "access"
    assert claims["iss"] == "tenantry" and claims["aud"] == "tenantry-api"
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert abs(claims["iat"] - time.time()) < 30


def test_access_token_verifies_against_the_published_jwks(stack: Stack) -> None:
    tokens = stack.login(OPERATOR_EMAIL, OPERATOR_PASSWORD)
    jwks = stack.auth.GetJwks(auth_service_pb2.GetJwksRequest())
    kid = jwt.get_unverified_header(tokens.access_token)["kid"]
    key = next(key for key in jwks.keys if key.kid == kid)
    assert (key.kty, key.crv, key.alg, key.use) == ("OKP", "Ed25519", "EdDSA", "sig")
    public = jwt.PyJWK({"kty": key.kty, "crv": key.crv, "x": key.x, "kid": key.kid}, algorithm="EdDSA")
    claims = jwt.decode(tokens.access_token, public.key, algorithms=["EdDSA"], audience="tenantry-api")
    assert claims["sub"]


def test_operator_login_without_tenant_gets_platform_admin(stack: Stack) -> None:
    claims = claims_of(stack.operator_token())
    assert claims["roles"] == ["platform_admin"]
    assert "tid" not in claims


def test_unknown_user_and_wrong_password_fail_the_same_way(stack: Stack) -> None:
    tenant = stack.create_tenant()
    unknown = rpc_error(lambda: stack.login("nobody@nowhere.test", OWNER_PASSWORD))
    wrong = rpc_error(lambda: stack.login(tenant.owner_email, "wrong-password"))
    assert unknown.code() == wrong.code() == grpc.StatusCode.UNAUTHENTICATED
    assert unknown.details() == wrong.details() == "invalid email or password"


def test_email_is_case_insensitive(stack: Stack) -> None:
    tenant = stack.create_tenant()
    assert stack.login(tenant.owner_email.upper(), OWNER_PASSWORD).access_token


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [("", "password-1", "email"), ("not-an-email", "password-1", "email"), ("a@b.test", "", "password")],
)
def test_malformed_login_names_the_field(stack: Stack, email: str, password: str, field: str) -> None:
    error = rpc_error(lambda: stack.login(email, password))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}:")


def test_password_over_72_bytes_is_refused_not_truncated(stack: Stack) -> None:
    tenant = stack.create_tenant()
    error = rpc_error(lambda: stack.login(tenant.owner_email, OWNER_PASSWORD + "x" * 80))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "72 bytes" in error.details()


def test_login_carries_the_memberships_permissions(stack: Stack) -> None:
    tenant = stack.create_tenant()
    claims = claims_of(stack.login(tenant.owner_email, OWNER_PASSWORD).access_token)
    assert {"tenant.read", "members.invite", "roles.manage", "audit.read", "app.*"} <= set(claims["perms"])
    operator = claims_of(stack.operator_token())
    assert set(operator["perms"]) == {
        "platform.tenants.read",
        "platform.tenants.manage",
        "audit.read",
        "platform.emails.read",
        "service_accounts.manage",
        "platform.settings.manage",
    }


def test_login_to_a_tenant_the_user_is_not_in_is_denied(stack: Stack) -> None:
    mine, other = stack.create_tenant(), stack.create_tenant()
    error = rpc_error(lambda: stack.login(mine.owner_email, OWNER_PASSWORD, other.slug))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_an_unknown_email_too_long_for_a_resource_id_is_refused_and_audited(stack: Stack) -> None:
    email = f"someone@{'d' * 230}.test"  # 244 characters: a valid address, longer than resource_id's 200
    error = rpc_error(lambda: stack.login(email, "wrong-password-1"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    digest = "sha256:" + hashlib.sha256(email.encode()).hexdigest()
    recorded = eventually(
        lambda: stack.sql("SELECT details->>'email' FROM audit.events WHERE resource_id = %s", (digest,))
    )
    assert recorded == [(email,)]
