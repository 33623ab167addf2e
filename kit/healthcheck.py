"""`python -m kit.healthcheck ADDRESS`: exit 0 when the gRPC service there is SERVING (for containers)."""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def is_serving(address: str, timeout: float = 1.0) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m kit.healthcheck HOST:PORT")
    if not is_serving(sys.argv[1], timeout=2):
        raise SystemExit("unhealthy")


if __name__ == "__main__":
    main()
