"""Another team's contract behind the gateway: no Tenantry option in it, two
descriptor sets, the access policy, and token keys from an auth upstream whose
contract is not loaded (or from a JWKS URL)."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests
from openapi_spec_validator import validate

from devtools.stack import ROOT, free_port
from tests.gateway.conftest import start_gateway
from tests.gateway.foreign import (
    CONF_PROTO,
    TICKETS_PROTO,
    RecordingUpstream,
    TokenIssuer,
    build_set,
    jwks_auth_upstream,
    jwks_http_server,
    recording_upstream,
)

TENANTRY_SET = ROOT / "gen" / "tenantry.binpb"
POLICY = (
    "conf.v1=public;"
    "acme.tickets.v1.TicketService=authenticated;"
    "acme.tickets.v1.TicketService.GetAttachment=public;"
    "acme.tickets.v1.TicketService.PurgeTickets=deny"
)


@dataclass
class Foreign:
    url: str
    tickets: RecordingUpstream
    conf: RecordingUpstream
    issuer: TokenIssuer
    jwks_fetches: list[float]


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("foreign-sets")
    return build_set(folder / "tickets.binpb", TICKETS_PROTO), build_set(folder / "conf.binpb", CONF_PROTO)


@pytest.fixture(scope="module")
def foreign(sets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Foreign]:
    """Two teams' sets, each with its upstream; keys from an auth upstream's GetJwks."""
    tickets_set, conf_set = sets
    issuer = TokenIssuer()
    with (
        recording_upstream(tickets_set) as tickets,
        recording_upstream(conf_set) as conf,
        jwks_auth_upstream(issuer) as (auth_address, fetches),
    ):
        gateway = start_gateway(
            "gateway-foreign",
            {
                "GATEWAY_DESCRIPTOR_SET": f"{tickets_set},{conf_set}",
                "GATEWAY_UPSTREAMS": f"acme.tickets.v1={tickets.address};conf.v1={conf.address};"
                f"tenantry.auth.v1={auth_address}",
                "GATEWAY_ACCESS_POLICY": POLICY,
            },
            tmp_path_factory.mktemp("foreign-gateway"),
        )
        try:
            yield Foreign(f"http://{gateway.address}", tickets, conf, issuer, fetches)
        finally:
            gateway.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_package_public_by_policy_is_served_without_a_token(foreign: Foreign) -> None:
    reply = requests.get(f"{foreign.url}/v1/config", params={"client": "web"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"client": "web", "flags": {}}
    call = foreign.conf.last()
    assert call.method == "/conf.v1.ConfigService/GetConfig"
    assert not {"authorization", "x-user-id", "x-tenant-id"} & call.metadata.keys()


def test_a_token_sent_to_a_public_route_is_verified_and_names_the_caller(foreign: Foreign) -> None:
    tenant, user = str(uuid.uuid4()), str(uuid.uuid4())
    reply = requests.get(f"{foreign.url}/v1/config", headers=bearer(foreign.issuer.token(tid=tenant, sub=user)))
    assert reply.status_code == 200, reply.text
    assert foreign.conf.last().metadata["x-tenant-id"] == tenant
    assert foreign.conf.last().metadata["x-user-id"] == user
    calls = len(foreign.conf.calls)
    forged = TokenIssuer(foreign.issuer.kid).token()
    refused = requests.get(f"{foreign.url}/v1/config", headers=bearer(forged))
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert len(foreign.conf.calls) == calls


def test_a_service_authenticated_by_policy_needs_a_token(foreign: Foreign) -> None:
    calls = len(foreign.tickets.calls)
    reply = requests.get(f"{foreign.url}/v1/tickets/t1")
    assert reply.status_code == 401 and reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert len(foreign.tickets.calls) == calls


def test_a_valid_token_reaches_the_upstream_with_its_tenant_and_user(foreign: Foreign) -> None:
    tenant, user = str(uuid.uuid4()), str(uuid.uuid4())
    token = foreign.issuer.token(tid=tenant, sub=user)
    reply = requests.get(f"{foreign.url}/v1/tickets/t1", headers={**bearer(token), "X-Request-Id": "req-1"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["name"] == "tickets/t1"
    metadata = foreign.tickets.last().metadata
    assert metadata["authorization"] == f"Bearer {token}"
    assert (metadata["x-tenant-id"], metadata["x-user-id"], metadata["x-request-id"]) == (tenant, user, "req-1")
    # The keys came from the auth upstream, although auth's contract is not loaded.
    assert foreign.jwks_fetches


def test_client_sent_identity_headers_are_never_passed_on(foreign: Foreign) -> None:
    token = foreign.issuer.token()
    forged_tenant = str(uuid.uuid4())
    headers = {**bearer(token), "X-Tenant-Id": forged_tenant, "X-User-Id": forged_tenant}
    assert requests.get(f"{foreign.url}/v1/tickets/t1", headers=headers).status_code == 200
    assert forged_tenant not in foreign.tickets.last().metadata.values()


def _other_key_same_kid(issuer: TokenIssuer) -> str:
    return TokenIssuer(issuer.kid).token()


def _hs256_with_the_public_key(issuer: TokenIssuer) -> str:
    return jwt.encode({"sub": str(uuid.uuid4())}, issuer.jwk()["x"], algorithm="HS256", headers={"kid": issuer.kid})


def _unsigned(issuer: TokenIssuer) -> str:
    header, payload, _ = issuer.token().split(".")
    return f"{header}.{payload}."


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_other_key_same_kid, "invalid"),
        (lambda issuer: issuer.token(lifetime=-60), "expired"),
        (lambda issuer: issuer.token(aud="someone-else"), "invalid"),
        (lambda issuer: issuer.token(iss="someone-else"), "invalid"),
        (lambda issuer: issuer.token(typ="refresh"), "not an access token"),
        (_hs256_with_the_public_key, "algorithm"),
        (_unsigned, "invalid"),
        (lambda issuer: issuer.token(kid="made-up"), "unknown key"),
    ],
    ids=["forged", "expired", "audience", "issuer", "refresh-type", "hs256", "unsigned", "unknown-kid"],
)
def test_forged_and_expired_tokens_are_refused_before_the_upstream(foreign: Foreign, forge, reason: str) -> None:  # type: ignore[no-untyped-def]
    calls = len(foreign.tickets.calls)
    reply = requests.get(f"{foreign.url}/v1/tickets/t1", headers=bearer(forge(foreign.issuer)))
    assert reply.status_code == 401, reply.text
    assert reason in reply.json()["message"]
    assert len(foreign.tickets.calls) == calls


def test_unknown_kids_refetch_the_keys_at_most_once_a_second(foreign: Foreign) -> None:
    before = len(foreign.jwks_fetches)
    for _ in range(20):
        token = foreign.issuer.token(kid=f"made-up-{uuid.uuid4()}")
        assert requests.get(f"{foreign.url}/v1/tickets/t1", headers=bearer(token)).status_code == 401
    fetched = foreign.jwks_fetches[before:]
    assert len(fetched) < 20
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(fetched))


def test_a_denied_method_is_not_served_even_with_a_token(foreign: Foreign) -> None:
    calls = len(foreign.tickets.calls)
    reply = requests.post(f"{foreign.url}/v1/tickets:purge", json={}, headers=bearer(foreign.issuer.token()))
    assert reply.status_code == 404 and reply.json()["code"] == 5
    assert len(foreign.tickets.calls) == calls
    document = requests.get(f"{foreign.url}/openapi.json").json()
    validate(document)
    assert "/v1/tickets:purge" not in document["paths"]
    assert document["paths"]["/v1/config"]["get"]["security"] == [{}, {"bearerAuth": []}, {"apiKeyAuth": []}]


def test_a_method_entry_beats_its_service_entry(foreign: Foreign) -> None:
    reply = requests.get(f"{foreign.url}/v1/attachments/a/b/c.txt")
    assert reply.status_code == 200, reply.text
    assert reply.json()["path"] == "a/b/c.txt"


def test_double_star_matches_zero_segments(foreign: Foreign) -> None:
    reply = requests.get(f"{foreign.url}/v1/attachments")
    assert reply.status_code == 200, reply.text
    assert foreign.tickets.last().method == "/acme.tickets.v1.TicketService/GetAttachment"
    assert foreign.tickets.last().request == {}


def test_every_additional_binding_is_served(foreign: Foreign) -> None:
    headers = bearer(foreign.issuer.token())
    by_query = requests.get(f"{foreign.url}/v1/tickets:lookup", params={"reference": "R-1"}, headers=headers)
    by_path = requests.get(f"{foreign.url}/v1/lookup/R-2", headers=headers)
    by_body = requests.post(f"{foreign.url}/v1/tickets:lookup", json={"reference": "R-3"}, headers=headers)
    assert [reply.status_code for reply in (by_query, by_path, by_body)] == [200, 200, 200]
    assert [call.request["reference"] for call in foreign.tickets.calls[-3:]] == ["R-1", "R-2", "R-3"]


@contextmanager
def tickets_gateway(tickets_set: Path, jwks_url: str, folder: Path) -> Iterator[tuple[str, RecordingUpstream]]:
    """A gateway for the tickets set alone, no policy, keys from jwks_url; its URL and upstream."""
    with recording_upstream(tickets_set) as tickets:
        environment = {
            "GATEWAY_DESCRIPTOR_SET": str(tickets_set),
            "GATEWAY_UPSTREAMS": f"acme.tickets.v1={tickets.address}",
            "GATEWAY_JWKS_URL": jwks_url,
        }
        gateway = start_gateway(f"gateway-{folder.name}", environment, folder)
        try:
            yield f"http://{gateway.address}", tickets
        finally:
            gateway.stop()


def test_keys_from_a_jwks_url(sets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    issuer = TokenIssuer("url-key")
    with (
        jwks_http_server(issuer) as (url, fetches),
        tickets_gateway(sets[0], url, tmp_path_factory.mktemp("jwks-url")) as (base, _),
    ):
        # No policy: everything without a contract rule needs a token (fail closed).
        assert requests.get(f"{base}/v1/attachments").status_code == 401
        assert requests.post(f"{base}/v1/tickets:purge", json={}).status_code == 401
        reply = requests.get(f"{base}/v1/tickets/t9", headers=bearer(issuer.token()))
        assert reply.status_code == 200, reply.text
        assert len(fetches) == 1
        forged = requests.get(f"{base}/v1/tickets/t9", headers=bearer(TokenIssuer("url-key").token()))
        assert forged.status_code == 401


def test_no_keys_to_be_had_is_503_naming_the_reason(
    sets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    with tickets_gateway(sets[0], nowhere, tmp_path_factory.mktemp("no-jwks")) as (base, tickets):
        reply = requests.get(f"{base}/v1/tickets/t1", headers=bearer(TokenIssuer().token()))
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "1"
        assert "signing keys" in reply.json()["message"]
        assert not tickets.calls


def test_a_failing_jwks_source_is_not_hammered(
    sets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    with (
        jwks_http_server(TokenIssuer(), status=500) as (url, fetches),
        tickets_gateway(sets[0], url, tmp_path_factory.mktemp("failing-jwks")) as (base, tickets),
    ):
        started = time.monotonic()
        for _ in range(30):
            reply = requests.get(f"{base}/v1/tickets/t1", headers=bearer(TokenIssuer().token()))
            assert reply.status_code == 503
        elapsed = time.monotonic() - started
        # One fetch, then none for half a second after each failure, however many tokens arrive.
        assert 1 <= len(fetches) <= elapsed / 0.5 + 1
        assert not tickets.calls


def test_permissions_a_contract_names_are_checked_at_the_edge(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tenantry's own contract, in front of a recording upstream that checks nothing itself."""
    issuer = TokenIssuer()
    with recording_upstream(TENANTRY_SET) as tenants, jwks_auth_upstream(issuer) as (auth_address, _):
        gateway = start_gateway(
            "gateway-permissions",
            {"GATEWAY_UPSTREAMS": f"tenantry.tenants.v1={tenants.address};tenantry.auth.v1={auth_address}"},
            tmp_path_factory.mktemp("permissions"),
        )
        url = f"http://{gateway.address}/api/v1/tenants/me"
        try:
            refused = requests.get(url, headers=bearer(issuer.token(perms=["members.read"])))
            assert refused.status_code == 403, refused.text
            assert refused.json()["message"] == "requires the permission: tenant.read"
            assert not tenants.calls
            tenant = str(uuid.uuid4())
            allowed = requests.get(url, headers=bearer(issuer.token(perms=["tenant.*"], tid=tenant)))
            assert allowed.status_code == 200, allowed.text
            assert tenants.last().metadata["x-tenant-id"] == tenant
        finally:
            gateway.stop()
