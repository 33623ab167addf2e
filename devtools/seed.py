"""`make seed`: three demo tenants, each with an owner, on a running `make run`."""

from __future__ import annotations

import os
import sys

import grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2, tenants_service_pb2_grpc

from devtools.run import DATA_DIR

DEMO_TENANTS = [
    ("Acme Corporation", "acme", tenants_pb2.SUBSCRIPTION_TIER_PREMIUM),
    ("Globex", "globex", tenants_pb2.SUBSCRIPTION_TIER_BASIC),
    ("Initech", "initech", tenants_pb2.SUBSCRIPTION_TIER_FREE),
]
DEMO_OWNER_PASSWORD = "demo-owner-password"


def main() -> None:
    auth_addr = os.environ.get("AUTH_LISTEN_ADDR", "127.0.0.1:50051")
    tenants_addr = os.environ.get("TENANTS_LISTEN_ADDR", "127.0.0.1:50052")
    email = os.environ.get("PLATFORM_ADMIN_EMAIL", "admin@tenantry.local")
    password_file = DATA_DIR / "platform-admin-password"
    password = os.environ.get("PLATFORM_ADMIN_PASSWORD") or (
        password_file.read_text().strip() if password_file.exists() else ""
    )
    with grpc.insecure_channel(auth_addr) as auth_channel, grpc.insecure_channel(tenants_addr) as tenants_channel:
        auth = auth_service_pb2_grpc.AuthServiceStub(auth_channel)
        tenants = tenants_service_pb2_grpc.TenantServiceStub(tenants_channel)
        try:
            token = auth.Login(auth_service_pb2.LoginRequest(email=email, password=password), timeout=10).access_token
        except grpc.RpcError as error:
            sys.exit(f"cannot log in as the operator ({error.code().name}: {error.details()}); is `make run` up?")
        for name, slug, tier in DEMO_TENANTS:
            owner = f"owner@{slug}.example"
            tenant = tenants.CreateTenant(
                tenants_service_pb2.CreateTenantRequest(
                    name=name,
                    slug=slug,
                    subscription_tier=tier,
                    owner=tenants_service_pb2.TenantOwner(
                        email=owner, full_name=f"{name} Owner", password=DEMO_OWNER_PASSWORD
                    ),
                ),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=30,
            )
            print(f"{tenant.slug:8} {tenant.id}  owner {owner} / {DEMO_OWNER_PASSWORD}")


if __name__ == "__main__":
    main()
