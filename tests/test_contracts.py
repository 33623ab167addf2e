"""The contracts: generated code is current, and every RPC says who may call it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from google.api import annotations_pb2
from tenantry.audit.v1 import audit_service_pb2
from tenantry.auth.v1 import api_keys_service_pb2, auth_service_pb2, emails_service_pb2
from tenantry.common.v1 import access_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from devtools import protogen
from kit.access import access_rules

SERVICES = [
    *auth_service_pb2.DESCRIPTOR.services_by_name.values(),
    *emails_service_pb2.DESCRIPTOR.services_by_name.values(),
    *api_keys_service_pb2.DESCRIPTOR.services_by_name.values(),
    *tenants_service_pb2.DESCRIPTOR.services_by_name.values(),
    *audit_service_pb2.DESCRIPTOR.services_by_name.values(),
]
METHODS = [(service, method) for service in SERVICES for method in service.methods]


def test_generated_code_matches_the_protos() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        protogen.generate(Path(scratch))
        fresh = protogen.generated_files(Path(scratch))
    committed = protogen.generated_files(protogen.GENERATED_ROOT)
    stale = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert not stale, f"gen/ is stale, run `make proto`: {stale}"


@pytest.mark.parametrize(("service", "method"), METHODS, ids=lambda m: getattr(m, "full_name", ""))
def test_every_rpc_declares_its_audience(service, method) -> None:  # type: ignore[no-untyped-def]
    rule = access_rules(service)[f"/{service.full_name}/{method.name}"]
    assert rule.audience != access_pb2.AUDIENCE_UNSPECIFIED


@pytest.mark.parametrize(("service", "method"), METHODS, ids=lambda m: getattr(m, "full_name", ""))
def test_only_external_rpcs_have_a_rest_mapping(service, method) -> None:  # type: ignore[no-untyped-def]
    rule = access_rules(service)[f"/{service.full_name}/{method.name}"]
    has_http = method.GetOptions().HasExtension(annotations_pb2.http)
    assert has_http == (rule.audience != access_pb2.AUDIENCE_INTERNAL)


def test_no_proto_package_is_named_platform() -> None:
    packages = {service.file.package for service in SERVICES}
    assert all("platform" not in package.split(".") for package in packages)
