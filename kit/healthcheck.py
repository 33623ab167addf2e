"""`python -m kit.healthcheck ADDRESS`: exit 0 when the gRPC service there is SERVING (for containers)."""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m kit.healthcheck HOST:PORT")
    with grpc.insecure_channel(sys.argv[1]) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as error:
            raise SystemExit(f"unhealthy: {error.code().name}") from None
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit("unhealthy: NOT_SERVING")


if __name__ == "__main__":
    main()
