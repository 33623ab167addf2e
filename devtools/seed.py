"""`make seed`: three demo tenants, each with an owner, on a running `make run`. Safe to run again."""

from __future__ import annotations

import os
import sys

import grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2, tenants_service_pb2_grpc

from devtools.run import DEFAULT_OPERATOR_EMAIL, OPERATOR_PASSWORD_FILE, shown

DEMO_TENANTS = [
    ("Acme Corporation", "acme", tenants_pb2.SUBSCRIPTION_TIER_PREMIUM),
    ("Globex", "globex", tenants_pb2.SUBSCRIPTION_TIER_BASIC),
    ("Initech", "initech", tenants_pb2.SUBSCRIPTION_TIER_FREE),
]
DEMO_OWNER_PASSWORD = "demo-owner-password"


def operator_token(auth: auth_service_pb2_grpc.AuthServiceStub, auth_address: str) -> str:
    email = os.environ.get("PLATFORM_ADMIN_EMAIL") or DEFAULT_OPERATOR_EMAIL
    password = os.environ.get("PLATFORM_ADMIN_PASSWORD")
    source = "PLATFORM_ADMIN_PASSWORD"
    if not password:
        source = shown(OPERATOR_PASSWORD_FILE)
        if not OPERATOR_PASSWORD_FILE.exists():
            sys.exit(f"make seed: {source} does not exist yet: start `make run` first (it creates the operator)")
        password = OPERATOR_PASSWORD_FILE.read_text().strip()
    try:
        return str(auth.Login(auth_service_pb2.LoginRequest(email=email, password=password), timeout=30).access_token)
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            sys.exit(f"make seed: nothing answers at {auth_address} (AUTH_LISTEN_ADDR): start `make run` first")
        if error.code() == grpc.StatusCode.UNAUTHENTICATED:
            sys.exit(
                f"make seed: the operator {email} does not accept the password from {source}\n"
                "(the database keeps the password the operator was created with). If `make run` has"
                " PLATFORM_ADMIN_PASSWORD, set the same here; else `make reset-operator-password` sets it to that one"
            )
        sys.exit(f"make seed: the operator's login failed: {error.code().name}: {error.details()}")


Metadata = tuple[tuple[str, str], ...]


def existing_slugs(tenants: tenants_service_pb2_grpc.TenantServiceStub, metadata: Metadata) -> set[str]:
    slugs: set[str] = set()
    page_token = ""
    while True:
        page = tenants.ListTenants(
            tenants_service_pb2.ListTenantsRequest(page_size=100, page_token=page_token), metadata=metadata, timeout=10
        )
        slugs.update(tenant.slug for tenant in page.tenants)
        page_token = page.next_page_token
        if not page_token:
            return slugs


def owner_note(auth: auth_service_pb2_grpc.AuthServiceStub, owner: str, slug: str) -> str:
    """What to log in with, checked: a tenant made elsewhere may have another owner or password."""
    try:
        auth.Login(
            auth_service_pb2.LoginRequest(email=owner, password=DEMO_OWNER_PASSWORD, tenant_slug=slug), timeout=30
        )
    except grpc.RpcError:
        return f"(its owner is not {owner} / {DEMO_OWNER_PASSWORD}: it was made or changed outside `make seed`)"
    return f"owner {owner} / {DEMO_OWNER_PASSWORD}"


def main() -> None:
    auth_address = os.environ.get("AUTH_LISTEN_ADDR") or "127.0.0.1:50051"
    tenants_address = os.environ.get("TENANTS_LISTEN_ADDR") or "127.0.0.1:50052"
    with grpc.insecure_channel(auth_address) as auth_channel, grpc.insecure_channel(tenants_address) as tenants_channel:
        auth = auth_service_pb2_grpc.AuthServiceStub(auth_channel)
        tenants = tenants_service_pb2_grpc.TenantServiceStub(tenants_channel)
        metadata = (("authorization", f"Bearer {operator_token(auth, auth_address)}"),)
        try:
            present = existing_slugs(tenants, metadata)
        except grpc.RpcError as error:
            sys.exit(f"make seed: cannot list tenants at {tenants_address}: {error.code().name}: {error.details()}")
        failed = False
        for name, slug, tier in DEMO_TENANTS:
            owner = f"owner@{slug}.example"
            if slug in present:
                print(f"{slug:8} already exists  {owner_note(auth, owner, slug)}", flush=True)
                continue
            try:
                tenant = tenants.CreateTenant(
                    tenants_service_pb2.CreateTenantRequest(
                        name=name,
                        slug=slug,
                        subscription_tier=tier,
                        owner=tenants_service_pb2.TenantOwner(
                            email=owner, full_name=f"{name} Owner", password=DEMO_OWNER_PASSWORD
                        ),
                    ),
                    metadata=metadata,
                    timeout=30,
                )
            except grpc.RpcError as error:
                print(f"{slug:8} not created: {error.code().name}: {error.details()}", file=sys.stderr, flush=True)
                failed = True
                continue
            print(f"{slug:8} created         {owner_note(auth, owner, slug)}  (id {tenant.id})", flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
