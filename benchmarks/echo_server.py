"""The ceiling of any Python gRPC service here: a grpc.aio server answering each
unary call with its own request bytes, no deserialization, no work.

Run as `python -m benchmarks.echo_server PORT` (loopback only).
"""

from __future__ import annotations

import asyncio
import sys

import grpc

ECHO_METHOD = "/tenantry.bench.Echo/Echo"


async def _echo(request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
    return request


async def serve(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "tenantry.bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
