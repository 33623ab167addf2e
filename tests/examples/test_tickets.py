"""The tickets example behind the gateway, end to end: REST with real tokens,
tenant isolation under row-level security, and the audit event in the
tenant's trail."""

from __future__ import annotations

import grpc
import pytest
import requests
from tenantry.auth.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc

from examples.tickets.contract import SERVICE_NAME, load_contract
from tests.stack import Stack, Tenant, bearer, eventually, rpc_error


@pytest.fixture(scope="module")
def tenants(stack: Stack) -> tuple[Tenant, Tenant]:
    return stack.create_tenant("tix-a"), stack.create_tenant("tix-b")


def create(gateway: str, token: str, title: str, **headers: str) -> requests.Response:
    return requests.post(
        f"{gateway}/acme/v1/tickets",
        json={"title": title, "description": "by the school"},
        headers={"Authorization": f"Bearer {token}", **headers},
        timeout=10,
    )


def listed(gateway: str, token: str, **headers: str) -> list[dict]:
    reply = requests.get(
        f"{gateway}/acme/v1/tickets", headers={"Authorization": f"Bearer {token}", **headers}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    return list(reply.json()["tickets"])


def test_a_ticket_created_over_rest_is_listed_for_its_tenant(
    tickets_gateway: str, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    reply = create(tickets_gateway, a.owner_token, "Street light out on Elm Street")
    assert reply.status_code == 200, reply.text
    ticket = reply.json()
    assert ticket["title"] == "Street light out on Elm Street"
    assert ticket["id"] and ticket["reporter_id"] and ticket["create_time"]
    assert ticket["id"] in [each["id"] for each in listed(tickets_gateway, a.owner_token)]


def test_another_tenant_sees_none_of_its_tickets_even_naming_the_tenant(
    tickets_gateway: str, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    created = create(tickets_gateway, a.owner_token, "Missed collection").json()
    forged = {"x-tenant-id": a.id, "X-Tenant-Id": a.id}
    seen_by_b = listed(tickets_gateway, b.owner_token, **forged)
    assert created["id"] not in [each["id"] for each in seen_by_b]
    b_ticket = create(tickets_gateway, b.owner_token, "Pothole", **forged).json()
    assert b_ticket["id"] in [each["id"] for each in listed(tickets_gateway, b.owner_token)]
    assert b_ticket["id"] not in [each["id"] for each in listed(tickets_gateway, a.owner_token)]


def test_a_forged_tenant_header_straight_to_the_service_is_refused(
    stack: Stack, tickets_service: str, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    contract = load_contract()
    with grpc.insecure_channel(tickets_service) as channel:
        list_tickets = channel.unary_unary(
            f"/{SERVICE_NAME}/ListTickets",
            request_serializer=contract.message("ListTicketsRequest").SerializeToString,
            response_deserializer=contract.message("ListTicketsResponse").FromString,
        )
        error = rpc_error(
            lambda: list_tickets(
                contract.message("ListTicketsRequest")(), metadata=(*bearer(b.owner_token), ("x-tenant-id", a.id))
            )
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        error = rpc_error(lambda: list_tickets(contract.message("ListTicketsRequest")()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_rows_are_invisible_to_the_runtime_role_without_a_bound_tenant(
    stack: Stack, tickets_gateway: str, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    create(tickets_gateway, a.owner_token, "Graffiti on the bridge")
    everything = stack.sql("SELECT count(*) FROM acme_tickets.tickets")[0][0]
    assert everything >= 1
    assert stack.sql("SELECT count(*) FROM acme_tickets.tickets", role="acme_tickets_app")[0][0] == 0
    own = stack.sql("SELECT count(DISTINCT tenant_id) FROM acme_tickets.tickets", role="acme_tickets_app", tenant=a.id)
    assert own[0][0] == 1


def test_the_tenants_trail_gets_tickets_created(
    stack: Stack, tickets_gateway: str, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    ticket = create(tickets_gateway, a.owner_token, "Broken bench").json()

    def arrived() -> list:
        return [e for e in stack.audit_events(a.owner_token, action="tickets.created") if e.resource_id == ticket["id"]]

    (event,) = eventually(arrived)
    assert event.tenant_id == a.id
    assert event.resource_type == "ticket"
    assert event.user_id == ticket["reporter_id"]
    assert event.details["title"] == "Broken bench"
    assert event.request_id
    assert not [e for e in stack.audit_events(b.owner_token, action="tickets.created") if e.resource_id == ticket["id"]]
    assert stack.sql("SELECT count(*) FROM acme_tickets.audit_outbox WHERE resource_id = %s", (ticket["id"],)) == [(0,)]


def test_refusals_over_rest(stack: Stack, tickets_gateway: str, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    viewer = stack.add_member(a, f"viewer-{a.slug}@example.test", role="viewer")
    assert create(tickets_gateway, viewer.access_token, "Not allowed").status_code == 403
    assert requests.get(f"{tickets_gateway}/acme/v1/tickets", timeout=10).status_code == 401
    assert create(tickets_gateway, a.owner_token + "x", "Forged").status_code == 401
    assert create(tickets_gateway, a.owner_token, "").status_code == 400
    assert create(tickets_gateway, a.owner_token, "x" * 201).status_code == 400
    bad_page = requests.get(
        f"{tickets_gateway}/acme/v1/tickets?page_token=bm9wZQ",
        headers={"Authorization": f"Bearer {a.owner_token}"},
        timeout=10,
    )
    assert bad_page.status_code == 400


def test_pages_follow_each_other_without_overlap(tickets_gateway: str, stack: Stack) -> None:
    tenant = stack.create_tenant("tix-pages")
    made = {create(tickets_gateway, tenant.owner_token, f"Ticket {n}").json()["id"] for n in range(5)}
    seen: list[str] = []
    token = ""
    while True:
        reply = requests.get(
            f"{tickets_gateway}/acme/v1/tickets",
            params={"page_size": 2, "page_token": token},
            headers={"Authorization": f"Bearer {tenant.owner_token}"},
            timeout=10,
        ).json()
        seen += [each["id"] for each in reply["tickets"]]
        token = reply.get("next_page_token", "")
        if not token:
            break
    assert sorted(seen) == sorted(made)


def test_the_gateway_documents_the_example(tickets_gateway: str) -> None:
    document = requests.get(f"{tickets_gateway}/openapi.json", timeout=10).json()
    assert "/acme/v1/tickets" in document["paths"]
    assert requests.get(f"{tickets_gateway}/docs", timeout=10).status_code == 200
    health = requests.get(f"{tickets_gateway}/health", timeout=10).json()
    assert health["upstreams"][SERVICE_NAME]


def test_an_api_key_opens_tickets_over_rest_and_grpc_within_its_permissions(
    stack: Stack, tickets_gateway: str, tickets_service: str, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    keys = api_keys_service_pb2_grpc.ApiKeyServiceStub(stack.channels["auth"])
    key = keys.CreateApiKey(
        api_keys_service_pb2.CreateApiKeyRequest(name="citizen-portal", permissions=["app.tickets.write"]),
        metadata=bearer(a.owner_token),
        timeout=10,
    ).secret
    over_rest = requests.post(
        f"{tickets_gateway}/acme/v1/tickets", json={"title": "Via key"}, headers={"x-api-key": key}, timeout=10
    )
    assert over_rest.status_code == 200, over_rest.text
    assert over_rest.json()["id"] in [each["id"] for each in listed(tickets_gateway, a.owner_token)]
    # The key may write but not read.
    assert requests.get(f"{tickets_gateway}/acme/v1/tickets", headers={"x-api-key": key}, timeout=10).status_code == 403

    contract = load_contract()
    with grpc.insecure_channel(tickets_service) as channel:
        create_ticket = channel.unary_unary(
            f"/{SERVICE_NAME}/CreateTicket",
            request_serializer=contract.message("CreateTicketRequest").SerializeToString,
            response_deserializer=contract.message("Ticket").FromString,
        )
        request = contract.message("CreateTicketRequest")(ticket=contract.message("Ticket")(title="Via gRPC"))
        ticket = create_ticket(request, metadata=(("x-api-key", key),), timeout=10)
    assert ticket.title == "Via gRPC"
