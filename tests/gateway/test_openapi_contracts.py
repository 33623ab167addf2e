"""The OpenAPI document of every contract the gateway may load, alone or together:
valid OpenAPI 3.1, unique operationIds with additional_bindings, security from
the access rule or policy, required fields and bounds, and the error schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from devtools.stack import ROOT
from gateway.access_policy import parse_access_policy
from gateway.descriptors import Contracts
from gateway.openapi import openapi_document
from gateway.routes import check_no_clashes
from tests.gateway.echo_server import build_descriptor_set
from tests.gateway.foreign import CONF_PROTO, TICKETS_PROTO, build_set

TENANTRY_SET = ROOT / "gen" / "tenantry.binpb"
POLICY = "conf.v1=public;acme.tickets.v1.TicketService.PurgeTickets=deny"
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("openapi-sets")
    return {
        "tenantry": TENANTRY_SET,
        "echo": build_descriptor_set(folder / "echo.binpb"),
        "tickets": build_set(folder / "tickets.binpb", TICKETS_PROTO),
        "tickets-v2": build_set(folder / "tickets-v2.binpb", "acme/tickets/v2/tickets.proto"),
        "conf": build_set(folder / "conf.binpb", CONF_PROTO),
    }


def document_of(sets: dict[str, Path], *names: str, json_names: bool = False) -> dict[str, Any]:
    contracts = Contracts([sets[name] for name in names], parse_access_policy(POLICY if "conf" in names else ""))
    check_no_clashes(contracts.bindings)
    return openapi_document(contracts, title="test", version="1", json_names=json_names)


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every operation by its "METHOD path"."""
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


@pytest.mark.parametrize(
    "names",
    [
        ("tenantry",),
        ("echo",),
        ("tickets",),
        ("tickets", "conf"),
        ("tenantry", "echo", "tickets", "tickets-v2", "conf"),
    ],
    ids=["tenantry", "echo", "tickets", "two-teams", "all-together"],
)
def test_the_document_is_valid_openapi_with_unique_operation_ids(sets: dict[str, Path], names: tuple[str, ...]) -> None:
    document = document_of(sets, *names)
    validate(document)
    ids = [operation["operationId"] for operation in operations(document).values()]
    assert len(ids) == len(set(ids)) and ids


def test_additional_bindings_get_numbered_operation_ids(sets: dict[str, Path]) -> None:
    found = operations(document_of(sets, "tickets", "conf"))
    assert found["GET /v1/tickets:lookup"]["operationId"] == "TicketService_Lookup"
    assert found["GET /v1/lookup/{reference}"]["operationId"] == "TicketService_Lookup2"
    assert found["POST /v1/tickets:lookup"]["operationId"] == "TicketService_Lookup3"
    # An RPC named Lookup2 keeps its own id; Lookup's second binding skips it.
    assert found["GET /v1/config/{reference}"]["operationId"] == "ConfigService_Lookup"
    assert found["GET /v1/config2/{reference}"]["operationId"] == "ConfigService_Lookup2"
    assert found["GET /v1/configs/{reference}"]["operationId"] == "ConfigService_Lookup3"


def test_services_sharing_a_name_are_told_apart_by_package(sets: dict[str, Path]) -> None:
    found = operations(document_of(sets, "tickets", "tickets-v2"))
    assert found["GET /v1/tickets/{ticket}"]["operationId"] == "acme_tickets_v1_TicketService_GetTicket"
    assert found["GET /v2/tickets/{ticket}"]["operationId"] == "acme_tickets_v2_TicketService_GetTicket"


def test_security_follows_the_contract_rule_or_the_policy(sets: dict[str, Path]) -> None:
    found = operations(document_of(sets, "tenantry", "echo", "tickets", "conf"))
    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyAuth": []}]
    assert found["GET /v1/tickets/{ticket}"]["security"] == bearer  # the policy's default
    assert "(GATEWAY_ACCESS_POLICY)" in found["GET /v1/tickets/{ticket}"]["description"]
    assert found["GET /v1/config"]["security"] == [{}, *bearer]  # public by policy: a token is optional
    assert found["GET /v1/echo/{id}"]["security"] == []  # public by its contract
    assert found["GET /v1/secret"]["security"] == bearer
    assert found["GET /api/v1/auth/me"]["security"] == bearer
    assert "permissions: tenant.read" in found["GET /api/v1/tenants/me"]["description"]
    assert found["POST /api/v1/auth/login"]["security"] == []


def test_denied_and_internal_rpcs_are_not_documented(sets: dict[str, Path]) -> None:
    found = operations(document_of(sets, "echo", "tickets", "conf"))
    assert "POST /v1/tickets:purge" not in found
    assert "GET /v1/hidden" not in found
    assert not any(operation["summary"] == "PurgeTickets" for operation in found.values())


def test_required_fields_and_bounds_come_from_the_contract(sets: dict[str, Path]) -> None:
    document = document_of(sets, "tickets", "tickets-v2", "conf")
    schemas = document["components"]["schemas"]
    ticket = schemas["acme.tickets.v1.Ticket"]
    assert ticket["required"] == ["title"]
    assert ticket["properties"]["title"]["minLength"] == 1
    assert ticket["properties"]["create_time"]["readOnly"] is True
    assert (ticket["properties"]["priority"]["minimum"], ticket["properties"]["priority"]["maximum"]) == (
        -(2**31),
        2**31 - 1,
    )
    assert schemas["acme.tickets.v2.Ticket"]["properties"]["title"]["maxLength"] == 120
    found = operations(document)
    create = found["POST /v1/tickets"]
    assert create["requestBody"]["required"] is True
    lookup = {parameter["name"]: parameter for parameter in found["GET /v1/tickets:lookup"]["parameters"]}
    assert lookup["reference"]["required"] is True and lookup["name"]["required"] is False


def test_multi_segment_variables_are_written_out_as_segments(sets: dict[str, Path]) -> None:
    found = operations(document_of(sets, "echo", "tickets"))
    get_ticket = found["GET /v1/tickets/{ticket}"]
    assert [parameter["name"] for parameter in get_ticket["parameters"]] == ["ticket"]
    assert "`name`" in get_ticket["parameters"][0]["description"]
    assert "GET /v1/attachments/{path}" in found
    assert "GET /v1/shelves/{shelve}/books/{book}" in found


def test_the_error_schema_names_the_google_rpc_details(sets: dict[str, Path]) -> None:
    schemas = document_of(sets, "tickets")["components"]["schemas"]
    items = schemas["Error"]["properties"]["details"]["items"]["anyOf"]
    names = [item["$ref"].rsplit("/", 1)[-1] for item in items if "$ref" in item]
    assert names == ["Error.BadRequest", "Error.ErrorInfo", "Error.RetryInfo", "Error.PreconditionFailure"]
    bad_request = schemas["Error.BadRequest"]
    assert bad_request["properties"]["@type"] == {"const": "type.googleapis.com/google.rpc.BadRequest"}
    assert "@type" in bad_request["required"] and "field_violations" in bad_request["properties"]
    assert "retry_delay" in schemas["Error.RetryInfo"]["properties"]
    # Details of any other type still validate: their @type is all that is known.
    assert any(item.get("properties", {}).get("@type") == {"type": "string"} for item in items)


def test_json_names_are_documented_when_the_gateway_writes_them(sets: dict[str, Path]) -> None:
    document = document_of(sets, "tickets", json_names=True)
    validate(document)
    schemas = document["components"]["schemas"]
    assert "createTime" in schemas["acme.tickets.v1.Ticket"]["properties"]
    assert "fieldViolations" in schemas["Error.BadRequest"]["properties"]
