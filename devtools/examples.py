"""Example services of backends built on Tenantry, started by `make run EXAMPLES=tickets`.

Each example is a process of its own, with its own contract: the gateway
serves it beside Tenantry's contracts (one descriptor set holding both, which
gateways with and without several GATEWAY_DESCRIPTOR_SET entries read alike)
and routes its package to it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

from devtools import protogen
from devtools.stack import ServiceProcess, port_taken


@dataclass(frozen=True)
class Example:
    name: str
    module: str
    package: str
    listen_variable: str
    default_address: str

    def address(self) -> str:
        return os.environ.get(self.listen_variable) or self.default_address

    def descriptor_set(self) -> bytes:
        """Every example keeps its contract in `<module>.contract`, compiled from its own protos."""
        contract: Any = importlib.import_module(f"{self.module}.contract")
        return bytes(contract.compile_descriptor_set())


KNOWN = {
    "tickets": Example("tickets", "examples.tickets", "acme.tickets.v1", "TICKETS_LISTEN_ADDR", "127.0.0.1:50070"),
}


def requested(setting: str | None = None) -> list[Example]:
    """The examples named in EXAMPLES (comma-separated); SystemExit naming an unknown one or a taken port."""
    names = [name.strip() for name in (setting or os.environ.get("EXAMPLES", "")).split(",") if name.strip()]
    unknown = sorted(set(names) - KNOWN.keys())
    if unknown:
        raise SystemExit(f"EXAMPLES: unknown example {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}")
    examples = [KNOWN[name] for name in dict.fromkeys(names)]
    for example in examples:
        if port_taken(example.address()):
            where = f"the {example.name} example, set by {example.listen_variable}"
            raise SystemExit(f"{example.address()} ({where}) is taken")
    return examples


def processes(examples: list[Example], service_env: Mapping[str, str], **options: object) -> list[ServiceProcess]:
    """One process per example, with the services' environment (database, addresses, internal token)."""
    return [
        ServiceProcess(
            example.name,
            example.address(),
            {**service_env, example.listen_variable: example.address()},
            module=example.module,
            **options,  # type: ignore[arg-type]
        )
        for example in examples
    ]


def gateway_env(examples: list[Example], gateway_env: Mapping[str, str], contracts_path: Path) -> dict[str, str]:
    """The gateway's settings with the examples' contracts and upstreams added."""
    if not examples:
        return dict(gateway_env)
    merged = descriptor_pb2.FileDescriptorSet.FromString(
        (protogen.GENERATED_ROOT / protogen.DESCRIPTOR_SET_NAME).read_bytes()
    )
    known = {file.name for file in merged.file}
    for example in examples:
        for file in descriptor_pb2.FileDescriptorSet.FromString(example.descriptor_set()).file:
            if file.name not in known:
                merged.file.append(file)
                known.add(file.name)
    contracts_path.parent.mkdir(parents=True, exist_ok=True)
    contracts_path.write_bytes(merged.SerializeToString())
    upstreams = ";".join(f"{example.package}={example.address()}" for example in examples)
    # The examples' contracts name no Tenantry access rule: every call needs a
    # valid token (said outright, though it is the gateway's default).
    policy = ";".join(f"{example.package}=authenticated" for example in examples)
    return {
        **gateway_env,
        "GATEWAY_DESCRIPTOR_SET": str(contracts_path),
        "GATEWAY_UPSTREAMS": f"{gateway_env['GATEWAY_UPSTREAMS']};{upstreams}",
        "GATEWAY_ACCESS_POLICY": ";".join(filter(None, [gateway_env.get("GATEWAY_ACCESS_POLICY", ""), policy])),
    }
