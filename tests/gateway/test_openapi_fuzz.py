"""Schemathesis against the live gateway's /openapi.json, as an owner and as the operator.

Every operation of the document (new RPCs too, as soon as their contracts carry
google.api.http) gets generated requests, valid and invalid. No answer may be a
5xx, and every answer must conform to the document: its status, content type,
headers and body schema.
"""

from __future__ import annotations

import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.gateway.test_rest_api import login, new_tenant
from tests.stack import OPERATOR_EMAIL, OPERATOR_PASSWORD

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Bounded so that the whole run stays well under a minute on a small machine, and the
# same examples every run; FUZZ_EXAMPLES=500 explores more, with fresh examples each time.
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "20"))


@pytest.fixture(scope="module")
def operations(gateway: str) -> list[APIOperation]:
    document = requests.get(f"{gateway}/openapi.json", timeout=10).json()
    return [result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()]


def fuzz(operations: list[APIOperation], gateway: str, email: str, password: str) -> list[str]:
    """Each operation with valid and invalid generated requests; returns what failed, per operation."""
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # A fresh token per operation: one that logs out must not blind the others.
            token = login(gateway, email, password)["access_token"]
            try:
                fuzz_operation(operation, mode, gateway, token)
            except Unsatisfiable:
                pass  # nothing to make invalid: the operation takes no input
            except Exception as error:
                failures.append(f"{operation.label} ({mode.value}): {error}")
    return failures


def fuzz_operation(operation: APIOperation, mode: GenerationMode, gateway: str, token: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @FUZZ
    def run(case: schemathesis.Case) -> None:
        headers = {"Authorization": f"Bearer {token}", **(case.headers or {})}
        case.call_and_validate(base_url=gateway, headers=headers, checks=CHECKS, timeout=30)

    run()


FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_every_operation_answers_an_owner_without_5xx_and_as_documented(
    operations: list[APIOperation], gateway: str
) -> None:
    _, email, _ = new_tenant(gateway)
    failures = fuzz(operations, gateway, email, "rest-owner-pass")
    assert not failures, "\n\n".join(failures)


def test_every_operation_answers_the_operator_without_5xx_and_as_documented(
    operations: list[APIOperation], gateway: str
) -> None:
    failures = fuzz(operations, gateway, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    assert not failures, "\n\n".join(failures)


def test_the_document_says_which_fields_are_required_and_their_limits(gateway: str) -> None:
    document = requests.get(f"{gateway}/openapi.json", timeout=10).json()
    schemas = document["components"]["schemas"]
    create = schemas["tenantry.tenants.v1.CreateTenantRequest"]
    assert create["required"] == ["name", "slug", "owner"]
    assert "3 to 63" in create["properties"]["slug"]["description"]
    assert schemas["tenantry.tenants.v1.TenantOwner"]["required"] == ["email", "full_name", "password"]
    assert schemas["tenantry.tenants.v1.TenantOwner"]["properties"]["password"]["writeOnly"] is True
    assert schemas["tenantry.tenants.v1.Tenant"]["properties"]["id"]["readOnly"] is True
    suspend = document["paths"]["/api/v1/tenants/{tenant_id}:suspend"]["post"]
    body = suspend["requestBody"]["content"]["application/json"]["schema"]
    assert "tenant_id" not in body["properties"], "a path-bound field is not the body's"
