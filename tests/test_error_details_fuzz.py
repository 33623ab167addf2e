"""Generated bad input for every unary RPC of every service, over gRPC: each INVALID_ARGUMENT
carries a BadRequest naming a field of the request, and nothing ends as INTERNAL or UNKNOWN.

Requests come from the contracts' descriptors (tests/request_strategies.py), sent with
whatever credentials reach the method's own checks: the internal token, a tenant owner's
token, or the operator's where the owner lacks the permission.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import grpc
import jwt
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tenantry.audit.v1 import audit_service_pb2
from tenantry.auth.v1 import (
    accounts_service_pb2,
    auth_service_pb2,
    emails_service_pb2,
    members_service_pb2,
    roles_service_pb2,
)
from tenantry.common.v1 import access_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from kit.access import access_rules
from kit.permissions import missing
from tests.request_strategies import messages
from tests.stack import INTERNAL, Stack, bearer

SERVICES = {
    "audit": [audit_service_pb2],
    "auth": [accounts_service_pb2, auth_service_pb2, emails_service_pb2, members_service_pb2, roles_service_pb2],
    "tenants": [tenants_service_pb2],
}
# Methods that would end the very session the fuzzing runs on.
LEFT_OUT = {"Logout", "RevokeOtherSessions"}
# The same examples every run; FUZZ_EXAMPLES=2000 explores more, with fresh examples each time.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
# A path's first name: "owner" of "owner.full_name", "events" of "events[3].action".
_ROOT = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class Method:
    process: str
    path: str
    descriptor: MethodDescriptor

    @property
    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.descriptor.input_type)

    @property
    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.descriptor.output_type)


SERVICE_DESCRIPTORS = {
    process: [service for module in modules for service in module.DESCRIPTOR.services_by_name.values()]
    for process, modules in SERVICES.items()
}
METHODS = [
    Method(process, f"/{service.full_name}/{method.name}", method)
    for process, services in SERVICE_DESCRIPTORS.items()
    for service in services
    for method in service.methods
    if not (method.server_streaming or method.client_streaming or method.name in LEFT_OUT)
]
RULES = access_rules(*(service for services in SERVICE_DESCRIPTORS.values() for service in services))


@dataclass(frozen=True)
class Callers:
    owner: tuple[tuple[str, str], ...]
    owner_permissions: list[str]
    operator: tuple[tuple[str, str], ...]

    def metadata_for(self, method: Method) -> tuple[tuple[str, str], ...]:
        """Credentials that get the call past the access check, to the request's own checks."""
        rule = RULES[method.path]
        if rule.audience == access_pb2.AUDIENCE_INTERNAL:
            return INTERNAL
        if rule.audience == access_pb2.AUDIENCE_PUBLIC:
            return ()
        return self.operator if missing(self.owner_permissions, rule.permissions) else self.owner


@pytest.fixture(scope="module")
def callers(stack: Stack) -> Callers:
    tenant = stack.create_tenant("fuzz-details")
    permissions = jwt.decode(tenant.owner_token, options={"verify_signature": False})["perms"]
    return Callers(bearer(tenant.owner_token), list(permissions), bearer(stack.operator_token()))


def test_every_unary_method_is_fuzzed() -> None:
    names = {method.descriptor.name for method in METHODS}
    assert {"CreateTenant", "Login", "AppendAuditEvents", "CreateRole", "UpdateMember", "ListEmails"} <= names


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize="FUZZ_EXAMPLES" not in os.environ,
)
@given(data=st.data())
def test_every_invalid_argument_names_a_field_of_the_request(
    stack: Stack, callers: Callers, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(METHODS), label="method")
    request = data.draw(messages(method.request_class), label="request")
    call = stack.channels[method.process].unary_unary(
        method.path,
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=method.response_class.FromString,
    )
    try:
        call(request, metadata=callers.metadata_for(method), timeout=15)
        event("OK")
        return
    except grpc.RpcError as error:
        refused = error
    code = refused.code()  # type: ignore[attr-defined]
    event(code.name)
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (method.path, refused.details())  # type: ignore[attr-defined]
    status = rpc_status.from_call(refused)  # type: ignore[arg-type]
    if code != grpc.StatusCode.INVALID_ARGUMENT:
        return
    assert status is not None, (method.path, refused.details())  # type: ignore[attr-defined]
    bad_requests = [holder for holder in status.details if holder.Is(error_details_pb2.BadRequest.DESCRIPTOR)]
    assert len(bad_requests) == 1, status
    bad_request = error_details_pb2.BadRequest()
    bad_requests[0].Unpack(bad_request)
    (violation,) = bad_request.field_violations
    assert violation.field and violation.description
    assert status.message == f"{violation.field}: {violation.description}"
    root = _ROOT.match(violation.field)
    assert root is not None, violation.field
    assert root.group() in method.request_class.DESCRIPTOR.fields_by_name or root.group() == "request", (
        method.path,
        violation.field,
    )
