"""A small gRPC echo server for the transcoder's tests, built from descriptors alone."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, duration_pb2, message_factory
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from grpc_tools import protoc

from devtools.protogen import _include_paths

HERE = Path(__file__).resolve().parent
SERVICE = "tenantry.testing.echo.v1.EchoService"
# Ids of the streams whose caller went away before their end (the server runs in the tests' process).
CANCELLED_STREAMS: list[str] = []
ECHOED_METADATA = ("authorization", "x-tenant-id", "x-user-id", "x-request-id", "traceparent", "x-forwarded-for")


def build_descriptor_set(target: Path) -> Path:
    args = [
        "grpc_tools.protoc",
        f"-I{HERE / 'protos'}",
        *(f"-I{path}" for path in _include_paths()),
        f"--descriptor_set_out={target}",
        "--include_imports",
        "tenantry/testing/echo/v1/echo.proto",
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on the echo proto")
    return target


def start_echo_server(descriptor_set: Path, name: str = "echo") -> tuple[grpc.Server, str]:
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    request_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("tenantry.testing.echo.v1.EchoRequest"))
    response_class = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tenantry.testing.echo.v1.EchoResponse")
    )

    def reply(method: str, request: Any, context: grpc.ServicerContext) -> Any:
        received = dict(context.invocation_metadata())
        return response_class(
            request=request,
            method=method,
            metadata=[f"{key}={received[key]}" for key in ECHOED_METADATA if key in received]
            + [f"served-by={name}"]
            # The paths as the upstream holds them (the JSON form would re-encode them in camelCase).
            + ([f"update_mask={','.join(request.update_mask.paths)}"] if request.update_mask.paths else []),
        )

    book_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("tenantry.testing.echo.v1.Book"))

    def unary(method: str) -> Any:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            if method == "FailRich":
                fail_rich(request, context, book_class, grpc_code(request.count))
            if method == "Fail":
                context.abort(grpc_code(request.count), f"failed with {request.count}")
            if method == "Slow":
                time.sleep(request.wait.seconds + request.wait.nanos / 1e9)
            return reply(method, request, context)

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString,
        )

    def stream(request: Any, context: grpc.ServicerContext) -> Any:
        # Told at the call's end, whatever ends it: a cancel that arrives while a message is being sent
        # makes gRPC drop the generator without resuming it, so a check inside the loop could miss it.
        streamed_all = threading.Event()
        context.add_callback(lambda: None if streamed_all.is_set() else CANCELLED_STREAMS.append(request.id))
        for index in range(request.count):
            if index and request.HasField("wait"):
                time.sleep(request.wait.seconds + request.wait.nanos / 1e9)
                if not context.is_active():
                    return
            yield response_class(request=request_class(id=str(index)), method="Stream")
        streamed_all.set()
        if request.name == "rich":
            fail_rich(request, context, book_class, grpc.StatusCode.INVALID_ARGUMENT)
        if request.flag:
            context.abort(grpc.StatusCode.DATA_LOSS, "stream broke")

    handlers = {
        name: unary(name)
        for name in (
            "Echo",
            "GetBook",
            "UpdateBook",
            "GetFile",
            "Cancel",
            "Fail",
            "Slow",
            "Secret",
            "Hidden",
            "Unannotated",
            "UpdateShelf",
            "FailRich",
        )
    }
    handlers["Stream"] = grpc.unary_stream_rpc_method_handler(
        stream, request_deserializer=request_class.FromString, response_serializer=response_class.SerializeToString
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def grpc_code(number: int) -> grpc.StatusCode:
    return next(code for code in grpc.StatusCode if code.value[0] == number)


def fail_rich(request: Any, context: grpc.ServicerContext, book_class: Any, code: grpc.StatusCode) -> None:
    """Aborts with a google.rpc.Status in grpc-status-details-bin, as grpcio-status writes it;
    `text` picks a malformed variant ("garbage", "mismatch") or the older retry-after trailer."""
    if request.text == "garbage":
        context.set_trailing_metadata((("grpc-status-details-bin", b"\xff\x00 not a status"),))
        context.abort(code, "garbled details")
    if request.text == "trailer":
        context.set_trailing_metadata((("retry-after", "7"),))
        context.abort(code, "busy")
    violations = [
        error_details_pb2.BadRequest.FieldViolation(field="book.title", description="must not be empty"),
        error_details_pb2.BadRequest.FieldViolation(field="book.pages", description="must be positive"),
    ]
    details = [
        error_details_pb2.BadRequest(field_violations=violations),
        error_details_pb2.ErrorInfo(reason="BOOK_INVALID", domain="echo.tenantry.test", metadata={"shelf": "s1"}),
        book_class(name="shelves/s1/books/b1", title=""),
    ]
    if request.HasField("wait"):
        details.append(
            error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(seconds=request.wait.seconds, nanos=request.wait.nanos)
            )
        )
    packed = []
    for detail in details:
        entry = any_pb2.Any()
        entry.Pack(detail)
        packed.append(entry)
    packed.append(any_pb2.Any(type_url="type.googleapis.com/acme.v1.Unknown", value=b"\x08\x2a"))
    status = status_pb2.Status(code=code.value[0], message="the book is not valid", details=packed)
    if request.text == "mismatch":
        # A Status whose code is not the call's: what no well-behaved server sends.
        status.code = grpc.StatusCode.NOT_FOUND.value[0]
        context.set_trailing_metadata(((rpc_status.GRPC_DETAILS_METADATA_KEY, status.SerializeToString()),))
        context.abort(code, status.message)
    context.abort_with_status(rpc_status.to_status(status))
