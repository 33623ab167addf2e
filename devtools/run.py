"""`make run`: Tenantry on this machine, with an embedded database unless DATABASE_URL is set."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from pathlib import Path

from devtools.postgres import create_database, start_embedded
from devtools.stack import ROOT, SERVICES, ServiceProcess, gateway_env, http_healthy, service_env
from kit import migrations

DATA_DIR = ROOT / ".data"


def _secret_file(path: Path, make: int) -> str:
    """A generated secret, kept across runs in .data (never printed)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(make))
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> None:
    started = time.monotonic()
    database_url = os.environ.get("DATABASE_URL")
    server = None
    if not database_url:
        server, admin_url = start_embedded(DATA_DIR / "postgres")
        database_url = create_database(admin_url, "tenantry")
    for name in SERVICES:
        migrations.upgrade(name, database_url)

    addresses = {
        "auth": os.environ.get("AUTH_LISTEN_ADDR", "127.0.0.1:50051"),
        "tenants": os.environ.get("TENANTS_LISTEN_ADDR", "127.0.0.1:50052"),
        "audit": os.environ.get("AUDIT_LISTEN_ADDR", "127.0.0.1:50053"),
    }
    admin_email = os.environ.get("PLATFORM_ADMIN_EMAIL", "admin@tenantry.local")
    password_file = DATA_DIR / "platform-admin-password"
    gateway_token = os.environ.get("GATEWAY_TOKEN") or _secret_file(DATA_DIR / "gateway-token", 32)
    env = service_env(
        database_url,
        os.environ.get("INTERNAL_API_TOKEN") or _secret_file(DATA_DIR / "internal-api-token", 32),
        addresses,
        audit_chain_key=os.environ.get("AUDIT_CHAIN_KEY") or _secret_file(DATA_DIR / "audit-chain-key", 32),
        gateway_token=gateway_token,
    )
    env["PLATFORM_ADMIN_EMAIL"] = admin_email
    env["PLATFORM_ADMIN_PASSWORD"] = os.environ.get("PLATFORM_ADMIN_PASSWORD") or _secret_file(password_file, 18)

    gateway_address = os.environ.get("GATEWAY_ADDR", "127.0.0.1:8080")
    services = [ServiceProcess(name, addresses[name], env) for name in ("audit", "auth", "tenants")]
    gateway = ServiceProcess(
        "gateway",
        gateway_address,
        gateway_env(addresses, gateway_address, gateway_token=gateway_token),
        module="gateway",
        probe=http_healthy,
    )
    processes = [*services, gateway]
    try:
        for process in services:
            process.start()
        for process in services:
            process.wait_serving()
        gateway.start()
        gateway.wait_serving()
        print(f"\nTenantry is serving ({time.monotonic() - started:.1f}s):", flush=True)
        for process in services:
            print(f"  {process.name:8} grpc://{process.address}", flush=True)
        print(f"  gateway  http://{gateway_address}  (docs: http://{gateway_address}/docs)", flush=True)
        print(
            f"  operator  {admin_email} (password in {password_file.relative_to(ROOT)}"
            " unless PLATFORM_ADMIN_PASSWORD is set)",
            flush=True,
        )
        print("Ctrl-C stops everything.\n", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while all(process.process and process.process.poll() is None for process in processes):
            time.sleep(0.5)
        print("a service stopped; shutting down", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(processes):
            process.stop()
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
