"""The service's contract, compiled from protos/ when the service starts.

One compilation gives both what the gateway loads (a descriptor set with
imports and comments, for routes and /docs) and the message classes the
service uses, so nothing generated is kept in the repository.
"""

from __future__ import annotations

import importlib.resources
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import ServiceDescriptor
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent / "protos"
PROTO_FILE = "acme/tickets/v1/tickets.proto"
SERVICE_NAME = "acme.tickets.v1.TicketService"


def compile_descriptor_set() -> bytes:
    import google.api

    googleapis = Path(next(iter(google.api.__path__))).parent.parent
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "tickets.binpb"
        arguments = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"-I{googleapis}",
            f"--descriptor_set_out={output}",
            "--include_imports",
            "--include_source_info",
            PROTO_FILE,
        ]
        if protoc.main(arguments) != 0:
            raise RuntimeError(f"protoc could not compile {PROTO_FILE}")
        return output.read_bytes()


@dataclass(frozen=True)
class Contract:
    descriptor_set: bytes
    service: ServiceDescriptor
    messages: dict[str, Any]

    def message(self, name: str) -> Any:
        return self.messages[f"acme.tickets.v1.{name}"]


def load_contract() -> Contract:
    descriptor_set = compile_descriptor_set()
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
    # A pool of its own: the service's types never clash with anything else loaded.
    pool = descriptor_pool.DescriptorPool()
    messages = message_factory.GetMessages(list(files), pool=pool)
    return Contract(descriptor_set, pool.FindServiceByName(SERVICE_NAME), messages)
