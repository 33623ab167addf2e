"""Internal channels retry a call that fails with UNAVAILABLE (a peer restarting, a connection lost)."""

from __future__ import annotations

import asyncio

import grpc

from kit.clients import internal_channel

METHOD = "/tenantry.testing.Probe/Call"


async def call_flaky_server(failures: int) -> tuple[bytes | grpc.StatusCode, int]:
    attempts = 0

    async def flaky(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal attempts
        attempts += 1
        if attempts <= failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return b"done"

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "tenantry.testing.Probe", {"Call": grpc.unary_unary_rpc_method_handler(flaky)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = internal_channel(f"127.0.0.1:{port}")
    try:
        reply: bytes | grpc.StatusCode = await channel.unary_unary(METHOD)(b"", timeout=10)
    except grpc.aio.AioRpcError as error:
        reply = error.code()
    finally:
        await channel.close()
        await server.stop(0)
    return reply, attempts


def test_an_internal_call_answered_unavailable_is_retried_until_it_succeeds() -> None:
    assert asyncio.run(call_flaky_server(failures=2)) == (b"done", 3)


def test_internal_retries_stop_after_four_attempts() -> None:
    assert asyncio.run(call_flaky_server(failures=10)) == (grpc.StatusCode.UNAVAILABLE, 4)
