"""Per-RPC access rules, read from the contracts' (tenantry.common.v1.access) option."""

from __future__ import annotations

from google.protobuf.descriptor import ServiceDescriptor
from tenantry.common.v1 import access_pb2

AccessRule = access_pb2.AccessRule

# Standard infrastructure every server exposes without credentials.
INFRASTRUCTURE_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def access_rules(*services: ServiceDescriptor) -> dict[str, AccessRule]:
    """Maps each full method path ("/pkg.Service/Method") to its rule."""
    rules: dict[str, AccessRule] = {}
    for service in services:
        for method in service.methods:
            rule = AccessRule()
            options = method.GetOptions()
            if options.HasExtension(access_pb2.access):
                rule.CopyFrom(options.Extensions[access_pb2.access])
            rules[f"/{service.full_name}/{method.name}"] = rule
    return rules


def is_infrastructure(method: str) -> bool:
    return method.startswith(INFRASTRUCTURE_PREFIXES)
