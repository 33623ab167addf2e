"""The contracts as the gateway knows them: a FileDescriptorSet, nothing else.

Each annotated RPC becomes a route (its additional_bindings too); its request
and response classes are built from the descriptors at start-up, so adding an
annotated RPC to a proto exposes it over REST with no gateway code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor

from gateway.access_policy import AccessPolicy, PolicyAccess
from gateway.descriptor_sets import load_files
from gateway.templates import PathTemplate, TemplateError, parse

# Option of our own contracts; a method without it follows the gateway's access policy.
ACCESS_OPTION = "tenantry.common.v1.access"
AUDIENCE_PUBLIC = 1
AUDIENCE_AUTHENTICATED = 2
AUDIENCE_INTERNAL = 3


@dataclass(frozen=True)
class ContractRule:
    """The part of a method's (tenantry.common.v1.access) rule the gateway acts on."""

    audience: int
    permissions: tuple[str, ...]
    accepts_bearer: bool


@dataclass(frozen=True)
class Rpc:
    service: str
    method: MethodDescriptor
    path: str  # "/package.Service/Method"
    request_class: type[Any]
    response_class: type[Any]
    server_streaming: bool
    public: bool
    comment: str
    # Every one must be in the token's `perms` (kit.permissions); checked at the edge too.
    permissions: tuple[str, ...] = ()
    # The access comes from GATEWAY_ACCESS_POLICY: the contract names no rule.
    by_policy: bool = False
    # Public, and a bearer token, when sent, names the caller (it is verified).
    accepts_bearer: bool = False


@dataclass(frozen=True)
class Binding:
    http_method: str
    template: PathTemplate
    body: str  # "", "*" or a top-level field name
    response_body: str
    rpc: Rpc


class Contracts:
    """Every annotated RPC of one or more descriptor sets, as routes.

    Loading several sets (Tenantry's and each team's) is one pool: see
    gateway.descriptor_sets for files that come in more than one."""

    def __init__(self, descriptor_sets: Path | Sequence[Path], policy: AccessPolicy | None = None) -> None:
        self.policy = policy or AccessPolicy({})
        self.pool, files = load_files([descriptor_sets] if isinstance(descriptor_sets, Path) else descriptor_sets)
        comments: dict[str, str] = {}
        # Leading comments of message fields by full name: their documented limits.
        self.field_comments: dict[str, str] = {}
        for file in files:
            comments.update(_method_comments(file))
            self.field_comments.update(_field_comments(file))
        self.services: list[ServiceDescriptor] = []
        self.bindings: list[Binding] = []
        # Served RPCs whose contract names no access rule: what the policy governs.
        self.methods_by_policy: list[str] = []
        for file in files:
            for service_proto in file.service:
                service = self.pool.FindServiceByName(f"{file.package}.{service_proto.name}")
                self.services.append(service)
                for method in service.methods:
                    self.bindings.extend(self._bindings_of(service, method, comments.get(method.full_name, "")))
        self.policy.check_every_entry_is_used(self.methods_by_policy)

    def _bindings_of(self, service: ServiceDescriptor, method: MethodDescriptor, comment: str) -> list[Binding]:
        options = descriptor_pb2.MethodOptions.FromString(method.GetOptions().SerializeToString())
        rule = _extension(options, annotations_pb2.http)
        if rule is None or method.client_streaming:
            return []  # not annotated, or a client stream, which REST has no way to send
        contract_rule = _access_rule(self.pool, method)
        by_policy = contract_rule is None
        if contract_rule is None:
            self.methods_by_policy.append(method.full_name)
            access = self.policy.access_for(method.full_name)
            if access == PolicyAccess.DENY:
                return []
            contract_rule = ContractRule(
                audience=AUDIENCE_PUBLIC if access == PolicyAccess.PUBLIC else AUDIENCE_AUTHENTICATED,
                permissions=(),
                accepts_bearer=access == PolicyAccess.PUBLIC,
            )
        if contract_rule.audience == AUDIENCE_INTERNAL:
            return []  # never exposed, even if annotated by mistake
        public = contract_rule.audience == AUDIENCE_PUBLIC
        rpc = Rpc(
            service=service.full_name,
            method=method,
            path=f"/{service.full_name}/{method.name}",
            request_class=message_factory.GetMessageClass(method.input_type),  # type: ignore[arg-type]
            response_class=message_factory.GetMessageClass(method.output_type),  # type: ignore[arg-type]
            server_streaming=bool(method.server_streaming),
            public=public,
            comment=comment,
            permissions=() if public else contract_rule.permissions,
            by_policy=by_policy,
            accepts_bearer=public and contract_rule.accepts_bearer,
        )
        bindings = []
        for http_rule in [rule, *rule.additional_bindings]:
            verb, template = _verb_and_path(http_rule)
            try:
                parsed = parse(template)
            except TemplateError as error:
                raise ValueError(f"{method.full_name}: bad path template {template!r}: {error}") from None
            bindings.append(Binding(verb, parsed, http_rule.body, http_rule.response_body, rpc))
        return bindings


def _extension(options: descriptor_pb2.MethodOptions, extension: Any) -> Any:
    return options.Extensions[extension] if options.HasExtension(extension) else None


def _access_rule(pool: descriptor_pool.DescriptorPool, method: MethodDescriptor) -> ContractRule | None:
    try:
        extension: Any = pool.FindExtensionByName(ACCESS_OPTION)
    except KeyError:
        return None
    rule_class = message_factory.GetMessageClass(extension.message_type)
    # Re-read the options through this pool so that our extension is known.
    raw = method.GetOptions().SerializeToString()
    options_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("google.protobuf.MethodOptions"))
    options: Any = options_class.FromString(raw)
    if not options.HasExtension(extension):
        return None
    rule: Any = rule_class()
    rule.CopyFrom(options.Extensions[extension])
    return ContractRule(
        audience=int(rule.audience),
        permissions=tuple(rule.permissions),
        accepts_bearer=bool(rule.accepts_bearer),
    )


def _verb_and_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    if kind is None:
        raise ValueError("google.api.http rule without a pattern")
    return kind.upper(), getattr(rule, kind)


def field_behaviors(field: FieldDescriptor) -> set[int]:
    """The field's (google.api.field_behavior) values, read through the known extension."""
    options = descriptor_pb2.FieldOptions.FromString(field.GetOptions().SerializeToString())
    return set(options.Extensions[field_behavior_pb2.field_behavior])


def _field_comments(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    comments: dict[str, str] = {}
    for location in file.source_code_info.location:
        path = list(location.path)
        comment = " ".join(line.strip() for line in location.leading_comments.strip().splitlines())
        # 4 = FileDescriptorProto.message_type, 3 = nested_type, 2 = field
        if not comment or len(path) < 4 or path[0] != 4 or path[-2] != 2 or len(path) % 2:
            continue
        message = file.message_type[path[1]]
        names = [file.package, message.name]
        for kind, index in zip(path[2:-2:2], path[3:-2:2], strict=True):
            if kind != 3:
                break
            message = message.nested_type[index]
            names.append(message.name)
        else:
            comments[".".join([*names, message.field[path[-1]].name])] = comment
    return comments


def _method_comments(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    """Leading comments of RPCs, from source info: the OpenAPI descriptions."""
    comments: dict[str, str] = {}
    for location in file.source_code_info.location:
        path = list(location.path)
        # 6 = FileDescriptorProto.service, 2 = ServiceDescriptorProto.method
        if len(path) == 4 and path[0] == 6 and path[2] == 2:
            service = file.service[path[1]]
            method = service.method[path[3]]
            comments[f"{file.package}.{service.name}.{method.name}"] = " ".join(
                line.strip() for line in location.leading_comments.strip().splitlines()
            )
    return comments
