"""A burst of logins at the real bcrypt cost does not stall other requests."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc, members_service_pb2, members_service_pb2_grpc

from devtools.stack import ServiceProcess, free_port
from tests.stack import OWNER_PASSWORD, Stack, bearer


def test_logins_hashing_at_cost_12_leave_other_rpcs_fast(stack: Stack, tmp_path: Path) -> None:
    tenant = stack.create_tenant()
    # A second auth replica on the same database: one hashing thread, a
    # two-connection pool. Holding a connection while hashing would starve it.
    address = f"127.0.0.1:{free_port()}"
    env = {
        **stack.processes["auth"].env,
        "AUTH_LISTEN_ADDR": address,
        "BCRYPT_ROUNDS": "12",
        "BCRYPT_MAX_WORKERS": "1",
        "DB_POOL_SIZE": "1",
    }
    replica = ServiceProcess("auth", address, env, log_path=tmp_path / "auth-replica.log")
    replica.start()
    try:
        replica.wait_serving()
        with grpc.insecure_channel(address) as channel:
            auth = auth_service_pb2_grpc.AuthServiceStub(channel)
            # Made through the replica, so its hash has cost 12 (a check uses the hash's own cost).
            email = f"slow-{tenant.slug}@example.test"
            stack.invite(tenant.owner_token, email, "viewer")
            auth.AcceptInvitation(
                auth_service_pb2.AcceptInvitationRequest(
                    token=stack.invitation_token(email), full_name="Slow", password=OWNER_PASSWORD
                )
            )
            members = members_service_pb2_grpc.MemberServiceStub(channel)
            login = auth_service_pb2.LoginRequest(email=email, password=OWNER_PASSWORD)
            with ThreadPoolExecutor(max_workers=8) as pool:
                started = time.monotonic()
                logins = [pool.submit(auth.Login, login, timeout=60) for _ in range(8)]
                time.sleep(0.2)  # the hashing queue is full now
                listed_at = time.monotonic()
                members.ListMembers(members_service_pb2.ListMembersRequest(), metadata=bearer(tenant.owner_token))
                listing = time.monotonic() - listed_at
                assert all(future.result().access_token for future in logins)
                burst = time.monotonic() - started
        # The burst takes eight serial hashes; the listing does not wait for them.
        assert burst > 1.0
        assert listing < burst / 3, (listing, burst)
    finally:
        replica.stop()
